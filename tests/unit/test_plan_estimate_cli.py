"""What ``plan`` and ``plan --estimate`` show before anything is submitted (no AWS call), and the pre-flight
judgements on compute environments and quotas (pure functions over DescribeX answers)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from confluence_runtime.apply.run import fit_problems, quota_warnings
from confluence_runtime.cli import main
from confluence_runtime.config import load_config
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.ledger import ChildOutcome, JobOutcome, open_ledger
from confluence_runtime.records.record import Row

RUN = "20261125T000000-abcd"
CONFIG = """
    log_file: {tmp}/confluence.log
    submission_file: {tmp}/submission.csv
    infrastructure: {{max_vcpus: 100}}
    stages:
      prepare:
        setup: {{vcpus: 4, memory: 8192, expected_duration: 10}}
      reaches:
        fit: {{array_size: 2500, items_per_child: 10, vcpus: 1, memory: 2048, expected_duration: 12}}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "confluence.yaml"
    path.write_text(textwrap.dedent(CONFIG.format(tmp=tmp_path)).lstrip())
    return path


def invoke(*args: str, columns: int = 160) -> tuple[int, str]:
    # The console takes its width when it renders: COLUMNS in the runner's environment decides it.
    result = CliRunner(env={"COLUMNS": str(columns), "AWS_REGION": "us-east-1"}).invoke(main, list(args))
    return result.exit_code, result.output


def test_plan_shows_containers_launch_time_and_the_bound(config_path: Path) -> None:
    code, output = invoke("plan", "-c", str(config_path), "--run-id", RUN)
    assert code == 0, output
    text = " ".join(output.split())
    # 250 children of 1 vCPU want more than Spot's 100: Spot and On-Demand launch 125 each, from their own buckets
    assert (
        "251 containers; launching them takes at least 1.2 s at Fargate's 20 tasks/s (burst 100) per account and "
        "purchase option (On-Demand and Spot counted apart), stages one after another." in text
    )
    # AND the minimum run time is headlined with what bounds it: 250 children x 10 items x 12 s over 200 vCPUs
    assert (
        "Minimum run time: 2 min 40 s (each stage at least the largest of its launching, its vCPU-time over the "
        "usable vCPUs and its longest child; bound by longest child in 1 stage, vCPUs in 1 stage). Longest stage: "
        "reaches, 2 min 30 s: 8.3 vCPU-hours over 200 usable vCPUs (max_vcpus (100))." in text
    )
    assert "│ reaches │ 250 │ 1.2 s │ 200 of 250 │" in text and "2 min 30 s (vCPUs) │" in text
    assert "Compute: Fargate Spot 100 vCPUs (max_vcpus (100)), Fargate 100 vCPUs (max_vcpus (100))." in output
    # 250 children of 1 vCPU exceed 100 + 100 vCPUs: 200 at once
    code, output = invoke("plan", "-c", str(config_path), "--run-id", RUN, "--format", "json")
    reaches = json.loads(output)["stage_loads"][1]
    assert (reaches["bound"], reaches["at_once"], reaches["vcpus_wanted"]) == ("max_vcpus (100)", 200, 250)


def test_plan_estimate_in_json_prices_each_module(config_path: Path) -> None:
    code, output = invoke("plan", "-c", str(config_path), "--run-id", RUN, "--estimate", "--format", "json")
    assert code == 0, output
    data = json.loads(output)
    estimate = data["estimate"]
    vcpu, gb = 0.04048, 0.004445  # us-east-1, prices.yaml of 2026-11-01
    setup = 60 / 3600 * (4 * vcpu + 8 * gb)  # 20 s start-up + 10 s: the one-minute minimum
    fit = 250 * (20 + 10 * 12) / 3600 * (1 * vcpu + 2 * gb)  # 250 children of 10 items x 12 s
    assert [(m["module"], m["containers"], m["items"]) for m in estimate["modules"]] == [
        ("setup", 1, 1),
        ("fit", 250, 2500),
    ]
    assert estimate["on_demand_usd"] == pytest.approx(setup + fit, abs=1e-4)
    assert estimate["spot_share"] == 1.0  # fargate_spot is on by default: Batch fills Spot first
    assert estimate["with_spot_usd"] == pytest.approx((setup + fit) * 0.3, abs=1e-4)
    assert estimate["step_functions_transitions"] == 2 * 2501
    assert [(s["stage"], s["containers"], s["launch_seconds"]) for s in data["stage_loads"]] == [
        ("prepare", 1, 0.0),
        ("reaches", 250, 1.25),
    ]
    assert data["run_time"] == {
        "min_seconds": (20 + 10) + 250 * (20 + 120) / 200,  # 20 s of start-up counted in every child
        "bounds": {"longest child": 1, "vCPUs": 1},
        "slowest_stage": "reaches",
        "slowest_bound": "9.7 vCPU-hours over 200 usable vCPUs (max_vcpus (100))",
    }


def test_plan_estimate_says_what_it_cannot_price_instead_of_zero_dollars(tmp_path: Path) -> None:
    # GIVEN one module with a duration and one without
    path = tmp_path / "confluence.yaml"
    path.write_text("stages:\n  s:\n    m: {array_size: 5}\n    n: {array_size: 5, expected_duration: 30}\n")
    code, output = invoke("plan", "-c", str(path), "--estimate")
    assert code == 0, output
    text = " ".join(output.split())
    # THEN the module without one is "not priced" and the totals are a lower bound that names it
    assert "│ s │ m │ 5 │ 5 │ no duration │ - │ not priced │" in text
    assert "Fargate On-Demand: at least $" in text
    assert (
        "Not priced (no duration), so not in the totals: s.m. Set expected_duration (seconds per item) on those "
        "modules, or pass --durations-from RUN_ID (a finished run of this workflow)."
    ) in text
    # AND with no duration at all (the shipped workflow) there is no table of question marks and no "$0.00"
    code, output = invoke("plan", "-c", str(Path(__file__).resolve().parents[2] / "confluence.yaml"), "--estimate")
    text = " ".join(output.split())
    assert code == 0, output
    assert "Cannot price this run: no module has a duration (18 modules, 2,267 containers)." in text
    assert "$0.00" not in text and "│ ? │" not in text and "Estimated cost" not in text


def test_durations_from_an_earlier_run_come_from_its_ledger(config_path: Path) -> None:
    # GIVEN an earlier run whose ledger recorded a plain job of 40 s and array children of 150 and 170 s
    config = load_config(config_path)
    plan = build_plan(config, "earlier")
    ledger = open_ledger(config.submission_file)
    with ledger.recorder("earlier") as recorder:
        for number, submission in enumerate(plan.submissions):
            recorder.append(Row.for_submission(submission, f"id-{number}", "earlier", plan.digest))

    def child(index: int, seconds: int) -> ChildOutcome:
        return ChildOutcome(
            index,
            "SUCCEEDED",
            started_at="2026-11-25T10:00:00+00:00",
            stopped_at=f"2026-11-25T10:{seconds // 60:02d}:{seconds % 60:02d}+00:00",
        )

    ledger.observe(
        "earlier",
        [
            JobOutcome(
                "id-0",
                plan.submissions[0].name,
                "SUCCEEDED",
                "2026-11-25T11:00:00+00:00",
                started_at="2026-11-25T10:00:00+00:00",
                stopped_at="2026-11-25T10:00:40+00:00",
            ),
            JobOutcome(
                "id-1",
                plan.submissions[1].name,
                "SUCCEEDED",
                "2026-11-25T11:00:00+00:00",
                array_size=250,
                slowest=(child(3, 170), child(9, 150)),
            ),
        ],
    )
    # WHEN the next run is priced from it
    code, output = invoke("plan", "-c", str(config_path), "--durations-from", "earlier", "--format", "json")
    assert code == 0, output
    modules = {m["module"]: m for m in json.loads(output)["estimate"]["modules"]}
    # THEN a plain job's item took 40 s, and fit's child of 10 items the median 160 s: 16 s per item
    assert (modules["setup"]["item_seconds"], modules["fit"]["item_seconds"]) == (40.0, 16.0)


def test_durations_from_an_unknown_run_is_an_error(config_path: Path) -> None:
    code, output = invoke("plan", "-c", str(config_path), "--durations-from", "nope")
    assert code == 2
    assert "--durations-from nope: no such run in the ledger beside" in output


def managed(name: str, kind: str, max_vcpus: int) -> dict[str, object]:
    return {
        "computeEnvironmentName": name,
        "computeEnvironmentArn": f"arn:ce/{name}",
        "computeResources": {"type": kind, "maxvCpus": max_vcpus},
    }


def test_a_job_larger_than_every_environment_of_its_queue_is_refused(config_path: Path) -> None:
    plan = build_plan(load_config(config_path), RUN)
    queue = plan.submissions[0].job_queue
    queues = {
        q: {"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "arn:ce/small"}]}
        for q in {s.job_queue for s in plan.submissions}
    }
    definitions = {
        s.job_definition: {
            "containerProperties": {
                "resourceRequirements": [
                    {"type": "VCPU", "value": "4" if s.module == "setup" else "1"},
                    {"type": "MEMORY", "value": "8192" if s.module == "setup" else "2048"},
                ]
            }
        }
        for s in plan.submissions
    }
    environments = {"arn:ce/small": managed("small", "FARGATE", 2)}
    assert fit_problems(plan, queues, definitions, environments) == [
        f"prepare.setup (confluence-dev-setup) needs 4 vCPUs and 8192 MiB; the compute environments of queue "
        f"{queue} allow at most 2 vCPUs"
    ]
    # an unmanaged environment (the sandbox's) promises nothing, so nothing is judged
    assert fit_problems(plan, queues, definitions, {"arn:ce/small": {"computeEnvironmentName": "small"}}) == []


def test_quota_warnings_name_the_quota_to_raise_or_say_it_could_not_be_read() -> None:
    environments = [managed("c-fargate", "FARGATE", 256), managed("c-fargate-spot", "FARGATE_SPOT", 256)]
    assert quota_warnings(environments, {"L-3032A538": 6.0, "L-36FBB829": "AccessDeniedException: no"}) == [
        "the account's Fargate On-Demand vCPU quota L-3032A538 is 6 vCPUs, below max_vcpus 256 of c-fargate: at "
        "most 6 vCPUs will run at once; request an increase of L-3032A538 in Service Quotas",
        "could not read the Fargate Spot vCPU quota L-36FBB829 (AccessDeniedException: no): check in Service "
        "Quotas that it covers max_vcpus 256 of c-fargate-spot",
    ]
    assert quota_warnings(environments, {"L-3032A538": 4000.0, "L-36FBB829": 4000.0}) == []


def test_the_console_takes_its_width_when_it_renders(config_path: Path) -> None:
    """COLUMNS (or the terminal) decides each command's width, whatever it was when the CLI was imported: the
    containers table fits 60 columns by shortening its words, and has room for them at 160."""

    def table(columns: int) -> list[str]:
        code, output = invoke("plan", "-c", str(config_path), "--run-id", RUN, columns=columns)
        assert code == 0, output
        return [line for line in output.splitlines() if line[:1] in "┏┃┡│└"]

    narrow, wide = table(60), table(160)
    assert narrow and max(len(line) for line in narrow) <= 60
    assert any(line.startswith("│ reaches ") for line in narrow)  # a stage's name is never cut, at any width
    assert not any("containers" in line for line in narrow)  # the headers fold instead
    assert any("containers" in line for line in wide) and not any("…" in line for line in wide)
