"""The loader: the original schema still loads, and every bad file gets one exact, located message per problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from yaml_files import problems, write

from confluence_runtime.config import Mount, load_config
from confluence_runtime.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_original_file_loads_unchanged(tmp_path: Path) -> None:
    # GIVEN the original tool's file: only log_file, submission_file and stages
    path = write(
        tmp_path,
        """
        log_file: /mnt/logs/confluence.log
        submission_file: /mnt/logs/submission.csv
        stages:
          input:
            input:
              num_jobs: 1
              array_size: 214
              arguments: []
          flpe:
            hivdi: {num_jobs: 1, array_size: 214, arguments: ["-i", "-235"]}
            sad: {num_jobs: 2, array_size: 0, arguments: "-r reaches.json --flag"}
        """,
    )
    config = load_config(path)
    # THEN defaults fill in the names the original deployment used
    assert config.prefix == "confluence-dev"
    assert config.log_file == "/mnt/logs/confluence.log"
    assert [s.name for s in config.stages] == ["input", "flpe"]
    hivdi, sad = config.stage("flpe").modules
    assert (hivdi.job_queue, hivdi.job_definition) == ("confluence-dev-flpe", "confluence-dev-hivdi")
    assert hivdi.arguments == ("-i", "-235")
    assert sad.arguments == ("-r", "reaches.json", "--flag")
    assert (sad.num_jobs, sad.is_array, sad.retries) == (2, False, None)


def test_venue_sets_prefix_and_templates_expand(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        queue_mode: shared
        defaults: {job_definition: "{prefix}-{stage}-{module}"}
        stages:
          input: {input: {mounts: {input: /mnt/data/input}}}
          flpe:
            sad: {array_size: 5, arguments: [--fn, "{prefix}-renew"], mounts: {flpe: /mnt/data/flpe, input: "/mnt/data/input:ro"}}
        """,
    )
    module = load_config(path, venue="dev1").stage("flpe").modules[0]
    assert module.job_queue == "confluence-dev1-jobs"
    assert module.job_definition == "confluence-dev1-flpe-sad"
    assert module.arguments == ("--fn", "confluence-dev1-renew")
    assert module.mounts == (Mount("flpe", "/mnt/data/flpe"), Mount("input", "/mnt/data/input", read_only=True))


def test_shipped_workflow() -> None:
    config = load_config(ROOT / "confluence.yaml")
    assert [s.name for s in config.stages] == [
        "datagen", "combine_data", "input", "disable_renew", "prediagnostics", "priors", "flpe",
        "postdiagnostics_flpe", "moi", "postdiagnostics_moi", "offline", "validation", "output",
    ]  # fmt: skip
    sizes = {m.name: m.array_size for m in config.modules}
    assert sizes["metroman"] == 22 and sizes["sic4dvar"] == 93 and sizes["input"] == 214
    assert [m.name for m in config.stage("flpe").modules] == ["neobam", "hivdi", "metroman", "momma", "sad", "sic4dvar"]
    assert all(m.timeout and m.timeout >= 60 for m in config.modules)


BAD_FILES = [
    pytest.param(
        """
        stages:
          flpe:
            metroman: {array_size: -3, num_jobs: 0}
        """,
        [
            "3: stages.flpe.metroman.num_jobs: expected a whole number from 1 to 10,000, got 0 (int)",
            "3: stages.flpe.metroman.array_size: expected a whole number from 0 to 1,000,000 (0 or 1 = a plain job), got -3 (int)",
        ],
        id="negative-sizes",
    ),
    pytest.param(
        """
        stages:
          input:
            input: {array_size: 2, arguments: [-i, -235], colour: blue}
        """,
        [
            "3: stages.input.input.colour: unknown key; expected one of: num_jobs, array_size, arguments, job_queue, "
            "job_definition, vcpus, memory, timeout, retries, retry_on, environment, tags, image, image_tag, mounts, "
            "s3_credentials, items_per_child, expected_duration, compute, secrets, buckets, items, tolerated_failure, "
            "internet, consumes, requests_per_item, spot_reclaims_before_on_demand, oom_retry_memory"
        ],
        id="unknown-module-key",
    ),
    pytest.param(
        """
        stages:
          flpe:
            sad: {array_size: 2}
            sad: {array_size: 3}
        """,
        ["4: stages.flpe.sad: duplicate key (first defined on line 3)"],
        id="duplicate-module",
    ),
    pytest.param(
        """
        log_file: a.log
        log_file: b.log
        stages: {s: {m: {}}}
        """,
        ["2: log_file: duplicate key (first defined on line 1)"],
        id="duplicate-top-level",
    ),
    pytest.param(
        """
        stages:
          input: {}
        """,
        ["2: stages.input: has no modules; expected at least one module name -> settings"],
        id="empty-stage",
    ),
    pytest.param(
        "stages: {}\n",
        ["1: stages: is empty; expected at least one stage"],
        id="no-stages",
    ),
    pytest.param(
        "log_file: x\n",
        ["1: stages: missing; expected an ordered mapping of stage name -> module name -> settings"],
        id="missing-stages",
    ),
    pytest.param(
        """
        stages:
          flpe:
            "bad.name": {array_size: 2}
        """,
        [
            "3: stages.flpe.bad.name: module name 'bad.name' is not a valid AWS Batch name (at most 128 characters: "
            "a letter or digit, then letters, digits, '-' or '_')"
        ],
        id="bad-module-name",
    ),
    pytest.param(
        """
        stages:
          flpe:
            sad: {timeout: 30, retries: 11, vcpus: "two", memory: 1.5}
        """,
        [
            "3: stages.flpe.sad.vcpus: expected a positive number of vCPUs, got 'two' (str)",
            "3: stages.flpe.sad.memory: expected a positive whole number of MiB, got 1.5 (float)",
            "3: stages.flpe.sad.timeout: expected a whole number of seconds from 60 to 2,147,483,647, got 30 (int)",
            "3: stages.flpe.sad.retries: expected a whole number of attempts from 1 to 10, got 11 (int)",
        ],
        id="limits",
    ),
    pytest.param(
        """
        stages:
          flpe:
            sad:
              retries: 3
              retry_on:
                - {action: RETRY, on_exit_code: "1"}
                - {action: RETRY, on_exit_code: "2"}
                - {action: RETRY, on_exit_code: "3"}
                - {action: RETRY, on_exit_code: "4"}
                - {action: RETRY, on_exit_code: "5"}
                - {action: EXIT, on_reason: "*"}
        """,
        ["5: stages.flpe.sad.retry_on: AWS Batch allows at most 5 evaluate-on-exit rules, got 6"],
        id="too-many-exit-rules",
    ),
    pytest.param(
        """
        stages:
          a: {m: {array_size: 3}}
          b:
            dependency: per_index
            n: {array_size: 4}
        """,
        [
            "3: stages.b.dependency: per_index needs array jobs of one size in this stage and the previous one; "
            "got array_size a.m=3, b.n=4"
        ],
        id="per-index-sizes",
    ),
    pytest.param(
        """
        stages:
          a: {m: {arguments: {x: 1}, environment: [1], mounts: {Scratch: /tmp}}}
        """,
        [
            "2: stages.a.m.arguments: expected a list of strings or one string, got a mapping",
            "2: stages.a.m.environment: expected a mapping of names to strings, got a list",
            "2: stages.a.m.mounts.Scratch: area 'Scratch' is not a usable area name (lowercase letters, digits, '-' "
            "or '_', at most 64, starting with a letter or digit)",
        ],
        id="wrong-types",
    ),
    pytest.param(
        "stages:\n  a: [unclosed\n",
        ["3: invalid YAML: expected ',' or ']', but got '<stream end>'"],
        id="syntax-error",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_files_report_every_problem_with_location(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_error_message_lists_all_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "stages:\n  a: {m: {array_size: -1, num_jobs: x}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"2 problems in {path}:\n"
        f"  - {path}:2: stages.a.m.num_jobs: expected a whole number from 1 to 10,000, got 'x' (str)\n"
        f"  - {path}:2: stages.a.m.array_size: expected a whole number from 0 to 1,000,000 (0 or 1 = a plain job), got -1 (int)"
    )
    assert caught.value.exit_code == 2


def test_unknown_venue_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "stages: {a: {m: {}}}\n")
    with pytest.raises(ConfigError, match=r"venue: unknown venue 'prod'; expected one of: dev, dev1, dev2, ops"):
        load_config(path, venue="prod")
    with pytest.raises(ConfigError, match=r"nope.yaml: file not found"):
        load_config(tmp_path / "nope.yaml")


def test_the_loader_records_the_line_of_every_key_it_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        queue_mode: shared
        defaults:
          vcpus: 1
        infrastructure:
          runnable_timeout: 900
        stages:
          flpe:
            sad:
              array_size: 4
              memory: 4096
        """,
    )
    config = load_config(path)
    assert config.line("queue_mode") == 1
    assert config.line("defaults", "vcpus") == 3
    assert config.line("infrastructure", "runnable_timeout") == 5
    assert config.line("stages", "flpe", "sad") == 8
    assert config.line("stages", "flpe", "sad", "memory") == 10
    assert config.line("stages", "flpe", "sad", "vcpus") is None  # inherited, not written here
    assert config.modules[0].line == 8
