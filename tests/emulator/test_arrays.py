"""Array jobs: child ids and indices, listing, the parent's status and statusSummary, size limits, scale."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import BatchEnv, describe, submit, wait_status, wait_until


def test_children_have_ids_indices_and_are_listable(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.fail("kids", indices=[2])
    array = submit(batch_client, batch_env, "kids", arrayProperties={"size": 4})
    parent = wait_status(batch_client, array, "FAILED")
    child = describe(batch_client, f"{array}:3")
    assert child["jobId"] == f"{array}:3"
    assert child["jobArn"].endswith(f"job/{array}:3")
    assert child["arrayProperties"] == {"index": 3}
    # AWS: statusSummaryLastUpdatedAt is "the Unix timestamp (in milliseconds) for when the statusSummary was
    # last updated" -- here, when the last child finished.
    assert parent["arrayProperties"] == {
        "size": 4,
        "statusSummary": {
            "SUBMITTED": 0,
            "PENDING": 0,
            "RUNNABLE": 0,
            "STARTING": 0,
            "RUNNING": 0,
            "SUCCEEDED": 3,
            "FAILED": 1,
        },
        "statusSummaryLastUpdatedAt": parent["stoppedAt"],
    }
    succeeded = batch_client.list_jobs(arrayJobId=array, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [j["arrayProperties"]["index"] for j in succeeded] == [0, 1, 3]
    failed = batch_client.list_jobs(arrayJobId=array, jobStatus="FAILED")["jobSummaryList"]
    assert [j["jobId"] for j in failed] == [f"{array}:2"]
    assert failed[0]["container"]["exitCode"] == 1


def test_parent_is_pending_while_children_run_and_succeeds_when_all_do(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"wide": 0.4})
    array = submit(batch_client, batch_env, "wide", arrayProperties={"size": 5})
    # AWS: a parent is only SUBMITTED, PENDING, SUCCEEDED or FAILED; PENDING once a child is RUNNABLE
    running = wait_until(batch_client, array, lambda j: j["arrayProperties"]["statusSummary"]["RUNNING"] == 5)
    assert running["status"] == "PENDING"
    done = wait_status(batch_client, array, "SUCCEEDED")
    assert done["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 5
    assert "stoppedAt" in done


@pytest.mark.parametrize("size", [1, 10_001])
def test_array_size_limits(batch_client: Any, batch_env: BatchEnv, size: int) -> None:
    with pytest.raises(ClientError) as error:
        submit(batch_client, batch_env, "bad-size", arrayProperties={"size": size})
    assert error.value.response["Error"]["Code"] == "ClientException"


def test_ten_thousand_children(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    # No wall-clock bounds here (they fail on a loaded 2-core CI machine); the wait_until deadline is the bound.
    batch_control.set_durations(by_name={"huge": 60})  # long enough to be seen RUNNING on a loaded machine
    array = submit(batch_client, batch_env, "huge", arrayProperties={"size": 10_000})
    parent = wait_until(
        batch_client, array, lambda j: j["arrayProperties"]["statusSummary"]["RUNNING"] == 10_000, timeout=30
    )
    assert parent["status"] == "PENDING"
    page = batch_client.list_jobs(arrayJobId=array, jobStatus="RUNNING", maxResults=100)
    assert len(page["jobSummaryList"]) == 100
    assert page["nextToken"] == "100"
    assert describe(batch_client, f"{array}:9999")["arrayProperties"] == {"index": 9999}
    batch_client.terminate_job(jobId=array, reason="done")
    assert describe(batch_client, array)["arrayProperties"]["statusSummary"]["FAILED"] == 10_000
