"""CancelJob vs TerminateJob: which states each can stop, reasons, arrays, and dependents."""

from __future__ import annotations

import time
from typing import Any

from .conftest import BatchEnv, describe, submit, wait_status, wait_until


def test_cancel_of_a_running_job_is_a_no_op_but_terminate_fails_it(batch_client: Any, batch_env: BatchEnv,
                                                                  batch_control: Any) -> None:
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


def test_cancel_of_a_pending_job_fails_it_with_the_reason(batch_client: Any, batch_env: BatchEnv,
                                                         batch_control: Any) -> None:
    batch_control.set_durations(by_name={"blocker": 60})
    blocker = submit(batch_client, batch_env, "blocker")
    waiting = submit(batch_client, batch_env, "waiting", dependsOn=[{"jobId": blocker}])
    wait_status(batch_client, blocker, "RUNNING")
    assert describe(batch_client, waiting)["status"] == "PENDING"
    batch_client.cancel_job(jobId=waiting, reason="not needed")
    job = describe(batch_client, waiting)
    assert (job["status"], job["statusReason"]) == ("FAILED", "not needed")
    assert describe(batch_client, blocker)["status"] == "RUNNING"


def test_cancel_after_success_changes_nothing(batch_client: Any, batch_env: BatchEnv) -> None:
    job_id = submit(batch_client, batch_env, "finished")
    wait_status(batch_client, job_id, "SUCCEEDED")
    batch_client.cancel_job(jobId=job_id, reason="late")
    batch_client.terminate_job(jobId=job_id, reason="late")
    job = describe(batch_client, job_id)
    assert job["status"] == "SUCCEEDED" and job["statusReason"] != "late"


def test_terminate_of_an_array_parent_stops_children_and_fails_dependents(batch_client: Any, batch_env: BatchEnv,
                                                                         batch_control: Any) -> None:
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


def test_cancel_of_an_array_parent_only_stops_children_not_yet_started(batch_client: Any, batch_env: BatchEnv,
                                                                      batch_control: Any) -> None:
    batch_control.set_durations(by_name={"gate": 60, "mixed": 60})
    gate = submit(batch_client, batch_env, "gate")
    array = submit(batch_client, batch_env, "mixed", arrayProperties={"size": 3},
                   dependsOn=[{"jobId": gate}])
    wait_status(batch_client, gate, "RUNNING")
    batch_client.cancel_job(jobId=array, reason="cancelled while pending")
    parent = describe(batch_client, array)
    assert parent["status"] == "FAILED"
    assert parent["arrayProperties"]["statusSummary"]["FAILED"] == 3
    assert parent["statusReason"] == "cancelled while pending"
    assert describe(batch_client, gate)["status"] == "RUNNING"
