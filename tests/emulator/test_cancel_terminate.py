"""CancelJob vs TerminateJob: which states each can stop, reasons, arrays, and dependents."""

from __future__ import annotations

import time
from typing import Any

from .conftest import BatchEnv, describe, submit, wait_status, wait_until


def test_cancel_of_a_running_job_is_a_no_op_but_terminate_fails_it(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"busy": 60})
    job_id = submit(batch_client, batch_env, "busy")
    wait_status(batch_client, job_id, "RUNNING")
    # AWS: CancelJob answers 200 for a RUNNING job and changes nothing
    batch_client.cancel_job(jobId=job_id, reason="please stop")
    time.sleep(0.1)
    assert describe(batch_client, job_id)["status"] == "RUNNING"
    batch_client.terminate_job(jobId=job_id, reason="stopped by test")
    job = describe(batch_client, job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "stopped by test"
    assert len(job["attempts"]) == 1 and job["attempts"][0]["stoppedAt"] == job["stoppedAt"]


def test_cancel_of_a_pending_job_waits_for_its_dependency(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # AWS CancelJob: "A PENDING job is canceled after all dependency jobs are completed."
    batch_control.set_durations(by_name={"blocker": 60})
    blocker = submit(batch_client, batch_env, "blocker")
    waiting = submit(batch_client, batch_env, "waiting", dependsOn=[{"jobId": blocker}])
    wait_status(batch_client, blocker, "RUNNING")
    assert describe(batch_client, waiting)["status"] == "PENDING"
    batch_client.cancel_job(jobId=waiting, reason="not needed")
    time.sleep(0.1)
    assert describe(batch_client, waiting)["status"] == "PENDING"
    batch_client.terminate_job(jobId=blocker, reason="stopped by test")
    job = wait_status(batch_client, waiting, "FAILED")
    assert job["statusReason"] == "not needed"
    assert job["attempts"] == []
    assert "stoppedAt" not in job  # AWS: stoppedAt is when a job went from RUNNING to a final state
    assert "logStreamName" not in job["container"]


def test_cancelled_pending_job_never_runs_even_when_its_dependency_succeeds(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"slow-ok": 0.3})
    blocker = submit(batch_client, batch_env, "slow-ok")
    waiting = submit(batch_client, batch_env, "never", dependsOn=[{"jobId": blocker}])
    wait_status(batch_client, blocker, "RUNNING")
    batch_client.cancel_job(jobId=waiting, reason="changed my mind")
    assert wait_status(batch_client, blocker, "SUCCEEDED")["status"] == "SUCCEEDED"
    job = wait_status(batch_client, waiting, "FAILED")
    assert (job["statusReason"], job["attempts"]) == ("changed my mind", [])


def test_cancel_after_success_changes_nothing(batch_client: Any, batch_env: BatchEnv) -> None:
    job_id = submit(batch_client, batch_env, "finished")
    wait_status(batch_client, job_id, "SUCCEEDED")
    batch_client.cancel_job(jobId=job_id, reason="late")
    batch_client.terminate_job(jobId=job_id, reason="late")
    job = describe(batch_client, job_id)
    assert job["status"] == "SUCCEEDED" and job["statusReason"] != "late"


def test_terminate_of_an_array_parent_stops_children_and_fails_dependents(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"fleet": 60})
    array = submit(batch_client, batch_env, "fleet", arrayProperties={"size": 3})
    downstream = submit(batch_client, batch_env, "downstream", dependsOn=[{"jobId": array}])
    wait_until(batch_client, array, lambda j: j["arrayProperties"]["statusSummary"]["RUNNING"] == 3)
    batch_client.terminate_job(jobId=array, reason="run cancelled")
    parent = describe(batch_client, array)
    assert parent["status"] == "FAILED"
    assert parent["arrayProperties"]["statusSummary"]["FAILED"] == 3
    assert describe(batch_client, f"{array}:1")["statusReason"] == "run cancelled"
    assert wait_status(batch_client, downstream, "FAILED")["statusReason"] == "Dependent Job failed"


def test_cancel_of_a_pending_array_parent_waits_for_its_dependency(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"gate": 60, "mixed": 60})
    gate = submit(batch_client, batch_env, "gate")
    array = submit(batch_client, batch_env, "mixed", arrayProperties={"size": 3}, dependsOn=[{"jobId": gate}])
    wait_status(batch_client, gate, "RUNNING")
    batch_client.cancel_job(jobId=array, reason="cancelled while pending")
    # AWS: "A PENDING job is canceled after all dependency jobs are completed."
    time.sleep(0.1)
    assert describe(batch_client, array)["status"] == "PENDING"
    batch_client.terminate_job(jobId=gate, reason="gate stopped")
    parent = wait_status(batch_client, array, "FAILED")
    assert parent["arrayProperties"]["statusSummary"]["FAILED"] == 3
    assert parent["statusReason"] == "cancelled while pending"
    assert describe(batch_client, f"{array}:0")["statusReason"] == "cancelled while pending"


def test_cancel_of_an_array_parent_lets_running_children_finish_then_cancels_the_parent(
    batch_client: Any,
    batch_env: BatchEnv,
    batch_control: Any,
) -> None:
    # AWS CancelJob: "When you try to cancel an array parent job in PENDING, AWS Batch attempts to cancel all
    # child jobs. The array parent job is canceled when all child jobs are completed."
    batch_control.set_durations(by_name={"half": 0.5})
    array = submit(batch_client, batch_env, "half", arrayProperties={"size": 4}, dependsOn=[{"type": "SEQUENTIAL"}])
    wait_status(batch_client, f"{array}:0", "RUNNING")
    downstream = submit(batch_client, batch_env, "after-half", dependsOn=[{"jobId": array}])
    batch_client.cancel_job(jobId=array, reason="run cancelled")
    assert describe(batch_client, array)["status"] == "PENDING"  # child 0 still runs
    running = describe(batch_client, f"{array}:0")
    assert running["status"] == "RUNNING"
    parent = wait_status(batch_client, array, "FAILED")
    assert parent["statusReason"] == "run cancelled"
    assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 1  # the child that ran finished normally
    assert parent["arrayProperties"]["statusSummary"]["FAILED"] == 3
    assert describe(batch_client, f"{array}:3")["statusReason"] == "run cancelled"
    assert wait_status(batch_client, downstream, "FAILED")["statusReason"] == "Dependent Job failed"
