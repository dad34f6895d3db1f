"""dependsOn as AWS documents it: plain, on arrays, N_TO_N, SEQUENTIAL, failure propagation, limits."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import BatchEnv, describe, submit, wait_status

DEPENDENT_FAILED = "Dependent Job failed"


def test_dependent_stays_pending_until_the_parent_succeeds(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"parent": 0.5})
    parent = submit(batch_client, batch_env, "parent")
    child = submit(batch_client, batch_env, "child", dependsOn=[{"jobId": parent}])
    wait_status(batch_client, parent, "RUNNING")
    assert describe(batch_client, child)["status"] == "PENDING"
    done_parent = wait_status(batch_client, parent, "SUCCEEDED")
    done_child = wait_status(batch_client, child, "SUCCEEDED")
    assert done_child["startedAt"] >= done_parent["stoppedAt"]
    assert done_child["dependsOn"] == [{"jobId": parent}]


def test_failed_dependency_fails_the_whole_chain_without_running_it(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.fail("broken")
    first = submit(batch_client, batch_env, "broken")
    second = submit(batch_client, batch_env, "second", dependsOn=[{"jobId": first}])
    third = submit(batch_client, batch_env, "third", dependsOn=[{"jobId": second}])
    assert wait_status(batch_client, first, "FAILED")["container"]["exitCode"] == 1
    for job_id in (second, third):
        job = wait_status(batch_client, job_id, "FAILED")
        assert job["statusReason"] == DEPENDENT_FAILED
        assert job["attempts"] == []
        assert "startedAt" not in job


def test_dependency_on_a_finished_job(batch_client: Any, batch_env: BatchEnv) -> None:
    parent = submit(batch_client, batch_env, "early")
    wait_status(batch_client, parent, "SUCCEEDED")
    late = submit(batch_client, batch_env, "late", dependsOn=[{"jobId": parent}])
    assert wait_status(batch_client, late, "SUCCEEDED")["status"] == "SUCCEEDED"


def test_plain_dependency_on_an_array_waits_for_every_child(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"arr": 0.3})
    array = submit(batch_client, batch_env, "arr", arrayProperties={"size": 3})
    after = submit(batch_client, batch_env, "after", dependsOn=[{"jobId": array}])
    wait_until_running = wait_status(batch_client, f"{array}:2", "RUNNING")
    assert wait_until_running["arrayProperties"] == {"index": 2}
    assert describe(batch_client, after)["status"] == "PENDING"
    last_stop = max(wait_status(batch_client, f"{array}:{i}", "SUCCEEDED")["stoppedAt"] for i in range(3))
    assert wait_status(batch_client, after, "SUCCEEDED")["startedAt"] >= last_stop


def test_n_to_n_pairs_child_i_with_parent_child_i(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.fail("left", indices=[1])
    left = submit(batch_client, batch_env, "left", arrayProperties={"size": 3})
    right = submit(
        batch_client, batch_env, "right", arrayProperties={"size": 3}, dependsOn=[{"jobId": left, "type": "N_TO_N"}]
    )
    right_jobs = [wait_status(batch_client, f"{right}:{i}", "SUCCEEDED", "FAILED") for i in range(3)]
    left_jobs = [describe(batch_client, f"{left}:{i}") for i in range(3)]
    assert [j["status"] for j in right_jobs] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert right_jobs[1]["statusReason"] == DEPENDENT_FAILED
    for i in (0, 2):
        assert right_jobs[i]["startedAt"] >= left_jobs[i]["stoppedAt"]
    assert wait_status(batch_client, right, "FAILED")["arrayProperties"]["statusSummary"]["FAILED"] == 1


def test_n_to_n_child_starts_as_soon_as_its_own_parent_child_finishes(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # both children of the first array run for a minute; child 0 is terminated early
    batch_control.set_durations(by_name={"slow-left": 60})
    left = submit(batch_client, batch_env, "slow-left", arrayProperties={"size": 2})
    right = submit(
        batch_client,
        batch_env,
        "fast-right",
        arrayProperties={"size": 2},
        dependsOn=[{"jobId": left, "type": "N_TO_N"}],
    )
    wait_status(batch_client, f"{left}:1", "RUNNING")
    batch_client.terminate_job(jobId=f"{left}:0", reason="stop child zero")
    assert wait_status(batch_client, f"{right}:0", "FAILED")["statusReason"] == DEPENDENT_FAILED
    assert describe(batch_client, f"{right}:1")["status"] == "PENDING"


def test_n_to_n_needs_arrays_of_the_same_size(batch_client: Any, batch_env: BatchEnv) -> None:
    left = submit(batch_client, batch_env, "three", arrayProperties={"size": 3})
    with pytest.raises(ClientError) as error:
        submit(
            batch_client, batch_env, "two", arrayProperties={"size": 2}, dependsOn=[{"jobId": left, "type": "N_TO_N"}]
        )
    assert error.value.response["Error"]["Code"] == "ClientException"


def test_sequential_runs_children_in_index_order(batch_client: Any, batch_env: BatchEnv) -> None:
    array = submit(batch_client, batch_env, "seq", arrayProperties={"size": 4}, dependsOn=[{"type": "SEQUENTIAL"}])
    wait_status(batch_client, array, "SUCCEEDED")
    children = batch_client.describe_jobs(jobs=[f"{array}:{i}" for i in range(4)])["jobs"]
    for before, after in itertools.pairwise(children):
        assert after["startedAt"] >= before["stoppedAt"]


def test_sequential_failure_fails_the_rest(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.fail("seqfail", indices=[1])
    array = submit(batch_client, batch_env, "seqfail", arrayProperties={"size": 4}, dependsOn=[{"type": "SEQUENTIAL"}])
    parent = wait_status(batch_client, array, "FAILED")
    assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 1
    assert parent["arrayProperties"]["statusSummary"]["FAILED"] == 3
    assert describe(batch_client, f"{array}:3")["statusReason"] == DEPENDENT_FAILED


def test_at_most_twenty_dependencies(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.pause()
    parents = [submit(batch_client, batch_env, f"p{i:02d}") for i in range(21)]
    ok = submit(batch_client, batch_env, "twenty", dependsOn=[{"jobId": p} for p in parents[:20]])
    assert describe(batch_client, ok)["status"] == "SUBMITTED"
    with pytest.raises(ClientError) as error:
        submit(batch_client, batch_env, "twenty-one", dependsOn=[{"jobId": p} for p in parents])
    assert error.value.response["Error"]["Code"] == "ClientException"
    assert "20" in error.value.response["Error"]["Message"]


def test_unknown_dependency_is_rejected(batch_client: Any, batch_env: BatchEnv) -> None:
    with pytest.raises(ClientError) as error:
        submit(batch_client, batch_env, "orphan", dependsOn=[{"jobId": "does-not-exist"}])
    assert error.value.response["Error"]["Code"] == "ClientException"
    assert "does-not-exist" in error.value.response["Error"]["Message"]


def test_many_dependents_are_released_together(batch_client: Any, batch_env: BatchEnv) -> None:
    root = submit(batch_client, batch_env, "root")
    leaves = [submit(batch_client, batch_env, f"leaf-{i}", dependsOn=[{"jobId": root}]) for i in range(10)]
    started = time.monotonic()
    for job_id in leaves:
        wait_status(batch_client, job_id, "SUCCEEDED")
    assert time.monotonic() - started < 2
