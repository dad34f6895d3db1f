"""Every name the runtime builds parses back to what built it, and names are built in names.py only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from confluence_runtime import names
from confluence_runtime.config import NAME_RE
from confluence_runtime.planning.shaping import map_chunks

ROOT = Path(__file__).resolve().parents[2]
# Run ids, stages and modules as the config and the planner accept them (NAME_RE; run ids at most 40).
word = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,15}\Z")
index = st.integers(min_value=0, max_value=10_000)
generation = st.integers(min_value=1, max_value=99)


@given(word, word, word, index, st.none() | st.integers(min_value=0, max_value=9))
def test_a_plan_job_name_stands_for_itself(run_id: str, stage: str, module: str, i: int, shard: int | None) -> None:
    name = names.job_name(run_id, stage, module, i, shard)
    assert NAME_RE.match(name)
    assert name.startswith(names.run_name_prefix(run_id))
    parsed = names.parse_name(name)
    assert (parsed.kind, parsed.generation, parsed.plan_name) == ("plan", 0, name)


@given(word, word, index)
def test_a_barrier_is_a_plan_job(run_id: str, stage: str, number: int) -> None:
    name = names.barrier_name(run_id, stage, number)
    assert name == f"{run_id}_{stage}_barrier-{number}"
    assert names.parse_name(name).plan_name == name


@given(word, word, word, index, st.none() | st.integers(min_value=0, max_value=9), generation)
def test_a_rerun_names_its_plan_job_and_generation(
    run_id: str, stage: str, module: str, i: int, shard: int | None, gen: int
) -> None:
    plan_job = names.job_name(run_id, stage, module, i, shard)
    parsed = names.parse_name(names.rerun_name(plan_job, gen))
    assert (parsed.kind, parsed.generation, parsed.plan_name) == ("rerun", gen, plan_job)
    assert names.generation(names.rerun_name(plan_job, gen)) == gen


@given(word, word, word, index, generation, st.integers(min_value=0, max_value=50))
def test_a_compact_retry_names_its_logical_job_generation_and_chunk(
    run_id: str, stage: str, module: str, i: int, gen: int, chunk: int
) -> None:
    name = names.retry_name(run_id, stage, module, i, gen, chunk)
    parsed = names.parse_name(name)
    assert (parsed.kind, parsed.generation, parsed.chunk) == ("retry", gen, chunk)
    assert parsed.base == names.job_name(run_id, stage, module, i)
    assert parsed.plan_name is None  # it stands for failed indices, not for one plan job
    assert name.startswith(names.run_name_prefix(run_id))


@given(word, word, generation, index)
def test_a_retry_barrier_belongs_to_its_generation_and_stands_for_no_plan_job(
    run_id: str, stage: str, gen: int, number: int
) -> None:
    parsed = names.parse_name(names.retry_barrier_name(run_id, stage, gen, number))
    assert (parsed.kind, parsed.generation, parsed.chunk, parsed.plan_name) == ("retry-barrier", gen, number, None)


def test_documented_examples() -> None:
    assert names.generation("r1_flpe_sad_0-3") == 0
    assert names.generation("r1_flpe_sad_0_retry-2") == 2
    assert names.generation("r1_flpe_sad_0_retry-2-1") == 2
    assert names.plan_name("r1_output_output_0_rerun-3") == "r1_output_output_0"
    assert names.plan_name("r1_flpe_sad_0_retry-1") is None
    assert names.plan_name("r1_flpe_sad_0-3") == "r1_flpe_sad_0-3"


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=50, unique=True))
def test_index_maps_read_back_as_written(indices: list[int]) -> None:
    environment = names.index_environment(indices)
    assert names.indices_from_environment(environment) == indices
    assert (names.ENV_INDEX in environment) == (len(indices) == 1)


def test_job_tags_always_carry_every_identity_tag_and_the_config_cannot_override_them() -> None:
    extra = {"team": "hydro", names.TAG_PREFIX: "someone-else", names.TAG_RUN: "x"}
    tags = names.job_tags("confluence-dev", "r1", "flpe", "sad", "r1_flpe_sad_0", extra=extra, generation=2)
    assert tags == {
        "team": "hydro",
        names.TAG_PREFIX: "confluence-dev",
        names.TAG_RUN: "r1",
        names.TAG_STAGE: "flpe",
        names.TAG_MODULE: "sad",
        names.TAG_JOB: "r1_flpe_sad_0",
        names.TAG_KIND: "retry",
        names.TAG_GENERATION: "2",
    }


def test_venue_resource_names() -> None:
    assert names.venue_prefix("dev1") == "confluence-dev1"
    assert names.barrier_definition("confluence-dev1") == "confluence-dev1-barrier"
    assert names.compute_environment("p", spot=True) == "p-fargate-spot"
    assert names.compute_environment("p", spot=False) == "p-fargate"
    assert names.compute_environment("p", spot=True, ec2=True) == "p-ec2-spot"
    assert names.compute_environment("p", spot=False, ec2=True) == "p-ec2"
    assert names.barrier_definition("p", names.PLATFORM_EC2) == "p-barrier-ec2"
    # Batch tries a queue's environments in order: Spot first, On-Demand after; EC2 and Fargate never mixed
    assert names.queue_environments("ec2_spot") == ((True, True), (True, False))
    assert names.queue_environments("fargate_spot", fargate_spot=False) == ((False, False),)
    assert (names.efs_queue("p"), names.efs_job_definition("p", "ls")) == ("p-efs", "p-efs-ls")
    assert names.secret_name("p", "hydrocron-api-key") == "/p/hydrocron-api-key"
    assert names.area_path("flpe", "momma") == "/flpe/momma"
    assert (names.renew_function("p"), names.renew_schedule("p")) == ("p-renew", "p-renew")
    assert names.credential_parameters("p") == {
        "key": "/p/s3_creds_key",
        "secret": "/p/s3_creds_secret",
        "token": "/p/s3_creds_token",
        "expiration": "/p/s3_creds_expiration",
    }


# What building a name of a run or a venue looks like inside a string literal; only names.py may hold these
# (the renew Lambda keeps its own copy, checked in tests/renew/test_names.py).
PATTERNS = {
    "barrier names": r"barrier-$|-barrier$",
    "rerun and retry names": r"_rerun-|_retry-|-retry-",
    "renew function and schedule": r"(?<!-)-renew\b",
    "credential parameters": r"s3_creds_",
    "compute environments": r"-fargate",
    "EC2 queues, environments and definitions": r"-ec2(-spot)?$",
    "efs tool names": r"-efs\b|^efs-",
    "CONFLUENCE_* variables": r"^CONFLUENCE_[A-Z_]+$",
    "job tags": r"^confluence:(run|stage|module|prefix|kind|retry-generation|tool)$",
}


def string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module (f-string parts included), without docstrings, which only describe."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_each_name_pattern_is_built_in_names_py_only() -> None:
    sources = [*sorted((ROOT / "confluence_runtime").rglob("*.py")), *sorted((ROOT / "stacks").rglob("*.py"))]
    literals = {path: string_literals(path) for path in sources if path.name != "names.py"}
    for what, pattern in PATTERNS.items():
        found = [
            f"{path.relative_to(ROOT)}:{line}: {text!r}"
            for path, strings in literals.items()
            for line, text in strings
            if re.search(pattern, text)
        ]
        assert found == [], f"{what} built outside names.py"


def test_index_maps_are_split_to_fit_the_override_budget() -> None:
    assert map_chunks([1, 22, 333], budget=100) == [(1, 22, 333)]
    # "1,22" is 4 characters; adding ",333" would make 8 > 6
    assert map_chunks([1, 22, 333], budget=6) == [(1, 22), (333,)]
    assert [len(c) for c in map_chunks(list(range(12_000)), budget=10**9)] == [10_000, 2_000]
