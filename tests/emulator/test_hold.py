"""Holds: a test (or a person at a shell) keeps a job in a state until it says so, whatever the clock does."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from batch_emulator.control import ControlError

from .conftest import BatchEnv, describe, submit, wait_status
from .test_cli import emulator

POLLS = 5


def _stays(client: Any, job_id: str, status: str, seconds: float) -> None:
    """Polls over ``seconds`` (several job durations): every answer is ``status``."""
    for _ in range(POLLS):
        time.sleep(seconds / POLLS)
        assert describe(client, job_id)["status"] == status


def test_a_job_held_running_stays_running_until_released_then_succeeds(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(default=0.05)
    hold_id = batch_control.hold("RUNNING", name_glob="held-*")
    job_id = submit(batch_client, batch_env, "held-1")
    other = submit(batch_client, batch_env, "free-1")
    wait_status(batch_client, job_id, "RUNNING")
    assert wait_status(batch_client, other, "SUCCEEDED")["status"] == "SUCCEEDED"
    _stays(batch_client, job_id, "RUNNING", 0.5)  # ten times its 0.05 s duration
    assert batch_control.holds() == [
        {"hold_id": hold_id, "state": "RUNNING", "job_id": None, "name_glob": "held-*", "held": [job_id]}
    ]
    released = batch_control.release(hold_id)
    assert [h["hold_id"] for h in released] == [hold_id]
    job = wait_status(batch_client, job_id, "SUCCEEDED", "FAILED")
    assert job["status"] == "SUCCEEDED"
    assert batch_control.holds() == []


@pytest.mark.parametrize("state", ["RUNNABLE", "STARTING"])
def test_a_job_held_by_id_before_it_runs_never_starts_until_released(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any, state: str
) -> None:
    batch_control.pause()  # the job cannot move before the hold exists
    job_id = submit(batch_client, batch_env, "by-id")
    batch_control.hold(state, job_id=job_id)
    batch_control.resume()
    wait_status(batch_client, job_id, state)
    _stays(batch_client, job_id, state, 0.3)
    assert "startedAt" not in describe(batch_client, job_id)
    batch_control.release()
    assert wait_status(batch_client, job_id, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"


def test_one_array_child_held_while_its_siblings_finish(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.pause()
    array = submit(batch_client, batch_env, "array", arrayProperties={"size": 3})
    batch_control.hold("RUNNING", job_id=f"{array}:1")
    batch_control.resume()
    wait_status(batch_client, f"{array}:2", "SUCCEEDED")
    wait_status(batch_client, f"{array}:0", "SUCCEEDED")
    _stays(batch_client, f"{array}:1", "RUNNING", 0.3)
    assert describe(batch_client, array)["status"] == "PENDING"
    batch_control.release()
    assert wait_status(batch_client, array, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"


def test_a_held_pending_job_waits_after_its_dependency_and_terminate_still_ends_a_held_job(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.hold("PENDING", name_glob="after")
    first = submit(batch_client, batch_env, "first")
    after = submit(batch_client, batch_env, "after", dependsOn=[{"jobId": first}])
    wait_status(batch_client, first, "SUCCEEDED")
    _stays(batch_client, after, "PENDING", 0.3)
    batch_control.release()
    assert wait_status(batch_client, after, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"
    batch_control.hold("RUNNING", name_glob="stuck")
    stuck = submit(batch_client, batch_env, "stuck")
    wait_status(batch_client, stuck, "RUNNING")
    batch_client.terminate_job(jobId=stuck, reason="operator")
    assert wait_status(batch_client, stuck, "FAILED")["statusReason"] == "operator"


def test_a_bad_hold_is_refused_with_the_reason(batch_control: Any) -> None:
    with pytest.raises(ControlError, match=r"HTTP 400: hold: state must be one of SUBMITTED \| PENDING"):
        batch_control.hold("SUCCEEDED", name_glob="x")
    with pytest.raises(ControlError, match="give exactly one of job_id or name_glob"):
        batch_control.hold("RUNNING")


def test_hold_holds_and_release_from_the_shell(batch_server: Any, batch_client: Any, batch_env: BatchEnv) -> None:
    url = batch_server.url
    result = emulator("hold", "running", "--name", "sh-*", url=url)
    assert (result.returncode, result.stdout) == (0, "hold 1: sh-* stays RUNNING\n")
    job_id = submit(batch_client, batch_env, "sh-1")
    wait_status(batch_client, job_id, "RUNNING")
    time.sleep(0.3)
    listed = json.loads(emulator("holds", url=url).stdout)
    assert listed == [{"held": [job_id], "hold_id": 1, "job_id": None, "name_glob": "sh-*", "state": "RUNNING"}]
    assert emulator("release", "--all", url=url).stdout == "released 1 hold(s) 1\n"
    assert wait_status(batch_client, job_id, "SUCCEEDED")["status"] == "SUCCEEDED"
    neither = emulator("hold", "RUNNING", url=url)
    assert neither.returncode == 2
    assert "give exactly one of --job-id or --name" in neither.stderr
