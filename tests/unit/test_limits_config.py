"""The limits a run meets, as confluence.yaml declares them: consumable resources, what a module consumes, its
requests per item, Spot reclaims before On-Demand and the memory of an out-of-memory retry; and the pure judgement
of how an attempt ended (confluence_runtime/attempts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from yaml_files import problems, write

from confluence_runtime.attempts import (
    FAILED,
    OUT_OF_MEMORY,
    RECLAIMED,
    SUCCEEDED,
    TIMED_OUT,
    Size,
    classify_job,
    count_outcomes,
    next_memory,
    reclaims,
)
from confluence_runtime.config import ConsumableResource, OomMemory, load_config

HYDROCRON = """
    infrastructure:
      consumable_resources:
        hydrocron: {type: replenishable, total: 3}
        hydrocron_month: {type: non_replenishable, total: 15000000}
    stages:
      input:
        input:
          array_size: 214
          consumes: {hydrocron: 1}
          requests_per_item: 70
          spot_reclaims_before_on_demand: 3
          oom_retry_memory: 2x
"""


def test_consumable_resources_and_what_a_module_consumes(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, HYDROCRON))
    assert config.infrastructure.consumable_resources == (
        ConsumableResource("hydrocron", "REPLENISHABLE", 3),
        ConsumableResource("hydrocron_month", "NON_REPLENISHABLE", 15_000_000),
    )
    (module,) = config.modules
    assert (module.consumes, module.requests_per_item) == ((("hydrocron", 1),), 70.0)
    assert (module.spot_reclaims_before_on_demand, module.oom_retry_memory) == (3, OomMemory(factor=2.0))


def test_defaults_without_the_keys(tmp_path: Path) -> None:
    (module,) = load_config(write(tmp_path, "stages:\n  s:\n    m: {}\n")).modules
    assert (module.consumes, module.requests_per_item, module.oom_retry_memory) == ((), None, None)
    assert module.spot_reclaims_before_on_demand == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stages:\n  s:\n    m: {consumes: {hydrocron: 1}}\n",
            [
                "3: stages.s.m.consumes.hydrocron: no consumable resource 'hydrocron' in "
                "infrastructure.consumable_resources (none declared)"
            ],
        ),
        (
            "infrastructure: {consumable_resources: {hydrocron: {type: replenishable, total: 3}}}\n"
            "stages:\n  s:\n    m: {consumes: {hydrocron: 4}}\n",
            ["4: stages.s.m.consumes.hydrocron: 4 units of hydrocron, which has 3 in all: no job could ever start"],
        ),
        (
            "infrastructure: {consumable_resources: {hydrocron: {type: sometimes, total: -1}}}\nstages: {s: {m: {}}}\n",
            [
                "1: infrastructure.consumable_resources.hydrocron.type: expected replenishable or non_replenishable, "
                "got 'sometimes' (str)",
                "1: infrastructure.consumable_resources.hydrocron.total: expected a whole number >= 0 (units), got -1 "
                "(int)",
            ],
        ),
        (
            "infrastructure: {consumable_resources: {hydrocron: {total: 3}}}\nstages: {s: {m: {}}}\n",
            [
                "1: infrastructure.consumable_resources.hydrocron.type: missing; expected a mapping NAME -> {type: "
                "replenishable or non_replenishable, total: a whole number >= 0}"
            ],
        ),
        (
            "stages:\n  s:\n    m: {oom_retry_memory: 20x}\n",
            [
                '3: stages.s.m.oom_retry_memory: expected a factor such as "2x" (1.1x to 8x) or a memory in MiB, got '
                "'20x' (a factor from 1.1 to 8)"
            ],
        ),
        (
            "stages:\n  s:\n    m: {oom_retry_memory: lots, spot_reclaims_before_on_demand: 0}\n",
            [
                "3: stages.s.m.spot_reclaims_before_on_demand: expected a whole number from 1 to 10, got 0 (int)",
                '3: stages.s.m.oom_retry_memory: expected a factor such as "2x" (1.1x to 8x) or a memory in MiB, '
                "got 'lots' (str)",
            ],
        ),
    ],
    ids=["unknown-resource", "over-total", "bad-resource", "missing-type", "factor-too-large", "bad-values"],
)
def test_bad_limits_are_refused_with_file_line_and_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def attempt(status_reason: str, reason: str | None = None, exit_code: int | None = 1) -> dict:
    return {"statusReason": status_reason, "container": {"reason": reason, "exitCode": exit_code}}


def test_how_an_attempt_ended_in_aws_words() -> None:
    fargate_spot = attempt("Your Spot Task was interrupted.", exit_code=None)
    ec2_spot = attempt("Host EC2 (instance i-0123456789abcdef0) terminated.", exit_code=None)
    oom = attempt("Essential container in task exited", "OutOfMemoryError: Container killed due to memory usage", 137)
    failed = attempt("Essential container in task exited", exit_code=1)
    job = {"status": "FAILED", "attempts": [fargate_spot, ec2_spot, oom]}
    assert (classify_job(job), reclaims(job)) == (OUT_OF_MEMORY, 2)
    assert classify_job({"status": "FAILED", "attempts": [failed]}) == FAILED
    assert classify_job({"status": "FAILED", "attempts": [fargate_spot]}) == RECLAIMED
    # A timeout is said on the job ("If a job is terminated for exceeding the timeout duration, it isn't retried.")
    timed_out = {"status": "FAILED", "statusReason": "Job attempt duration exceeded timeout", "attempts": [failed]}
    assert classify_job(timed_out) == TIMED_OUT
    assert classify_job({"status": "SUCCEEDED", "attempts": [fargate_spot, attempt("x", exit_code=0)]}) == SUCCEEDED
    # "Host EC2" alone (an instance that stopped for another reason) is not a reclaim
    assert classify_job({"status": "FAILED", "attempts": [attempt("Host EC2 unreachable")]}) == FAILED
    counts = count_outcomes([job, timed_out, {"status": "SUCCEEDED", "attempts": [fargate_spot]}])
    assert counts == {SUCCEEDED: 1, RECLAIMED: 0, OUT_OF_MEMORY: 1, TIMED_OUT: 1, FAILED: 0, "reclaims": 3}


def test_an_out_of_memory_retry_asks_for_a_size_fargate_offers() -> None:
    double = OomMemory(factor=2.0)
    assert next_memory(Size(1, 2048), double) == Size(1, 4096)
    # 1 vCPU offers at most 8 GiB: 16 GiB needs 2 vCPUs
    assert next_memory(Size(1, 8192), double) == Size(2, 16384)
    # 0.25 vCPU has no 1536 MiB: the next size up
    assert next_memory(Size(0.25, 768), OomMemory(factor=1.5)) == Size(0.25, 2048)
    assert next_memory(Size(4, 16384), OomMemory(mib=20000)) == Size(4, 20480)
    # Past Fargate's largest (16 vCPUs, 120 GiB) there is nothing to retry with; nor with less memory
    assert next_memory(Size(16, 122880), double) is None
    assert next_memory(Size(1, 4096), OomMemory(mib=2048)) is None
    # On EC2 the factor alone
    assert next_memory(Size(1, 3000), double, fargate=False) == Size(1, 6000)
