"""Capacity: compute environments, the Fargate quota, placement, blocked queues and job state time limits, each
test quoting the AWS documentation sentence it checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import BatchEnv, Venue, describe, statuses, stays, submit, wait_status, wait_until
from .test_events_logs import _drain, _route_to_queue

MAX_RESOURCE = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - "
    "All compute environments have a maxVcpu setting that is smaller than the job requirements."
)
REQUIREMENT = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - "
    "All compute environments have no connected instances that meet the job requirements."
)


def _max_running(client: Any, job_ids: list[str], until: Callable[[list[str]], bool], timeout: float = 10) -> int:
    """Polls until ``until(statuses)``; the most jobs seen STARTING or RUNNING at once."""
    most = 0
    deadline = time.monotonic() + timeout
    while True:
        now = [j["status"] for chunk in (job_ids,) for j in client.describe_jobs(jobs=chunk)["jobs"]]
        most = max(most, sum(s in ("STARTING", "RUNNING") for s in now))
        if until(now):
            return most
        assert time.monotonic() < deadline, now
        time.sleep(0.02)


# -- the rules of the AWS documentation --------------------------------------------------------------------------
def test_a_job_terminated_for_its_timeout_is_not_retried(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # AWS (Job timeouts): "If a job is terminated for exceeding the timeout duration, it isn't retried."
    batch_control.set_durations(default=5, min_timeout=1)
    job_id = submit(
        batch_client, batch_env, "slow", retryStrategy={"attempts": 3}, timeout={"attemptDurationSeconds": 1}
    )
    job = wait_status(batch_client, job_id, "FAILED", timeout=5)
    assert job["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(job["attempts"]) == 1


def test_a_disabled_queue_refuses_new_jobs_but_lets_its_jobs_finish(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # AWS (UpdateJobQueue state): "If the job queue state is DISABLED, new jobs can't be added to the queue, but
    # jobs already in the queue can finish."
    with batch_control.held("RUNNING", name_glob="inside"):
        inside = submit(batch_client, batch_env, "inside")
        wait_status(batch_client, inside, "RUNNING")
        batch_client.update_job_queue(jobQueue=batch_env.queue, state="DISABLED")
        with pytest.raises(ClientError) as refused:
            submit(batch_client, batch_env, "late")
    assert refused.value.response["Error"]["Message"] == (
        "Job queue emu-queue is DISABLED: new jobs can't be added to it"
    )
    assert wait_status(batch_client, inside, "SUCCEEDED")["status"] == "SUCCEEDED"


def test_a_disabled_compute_environment_gets_no_jobs_until_enabled(
    batch_client: Any, batch_control: Any, venue: Venue
) -> None:
    # AWS (UpdateComputeEnvironment state): "If the state is DISABLED, then the AWS Batch scheduler doesn't attempt
    # to place jobs within the environment."
    env = venue.environment("off", state="DISABLED")
    queue = venue.queue("q", env)
    job_id = venue.submit("waits", queue, venue.definition("d"))
    job = stays(batch_client, wait_status(batch_client, job_id, "RUNNABLE")["jobId"], "RUNNABLE")
    assert "statusReason" not in job  # nothing is misconfigured: the job waits for an environment
    batch_client.update_compute_environment(computeEnvironment=env, state="ENABLED")
    assert wait_status(batch_client, job_id, "SUCCEEDED")["status"] == "SUCCEEDED"


def test_a_job_larger_than_every_environment_blocks_the_queue_until_its_time_limit_cancels_it(
    batch_client: Any, batch_control: Any, venue: Venue, aws: Callable[[str], Any]
) -> None:
    # AWS (Job states, RUNNABLE): "jobs can remain in this state indefinitely when sufficient resources are
    # unavailable"; (Jobs stuck in RUNNABLE): "If AWS Batch detects that you have a RUNNABLE job at the head and
    # blocking the queue, you'll receive a Job queue blocked events event from Amazon CloudWatch Events with the
    # reason. The same reason is also updated into the statusReason field"; "When a job has been in a RUNNABLE
    # state with the defined statusReason, AWS Batch performs the action specified after maxTimeSeconds".
    sqs, url = _route_to_queue(aws, {"source": ["aws.batch"], "detail-type": ["Batch Job Queue Blocked"]})
    batch_control.set_durations(time_limit_scale=0.002)  # 600 s -> 1.2 s
    queue = venue.queue(
        "q",
        venue.environment("small", max_vcpus=4),
        jobStateTimeLimitActions=[
            {
                "reason": "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
                "state": "RUNNABLE",
                "maxTimeSeconds": 600,
                "action": "CANCEL",
            }
        ],
    )
    big = venue.submit("big", queue, venue.definition("big", vcpus=8, memory=16384))
    behind = venue.submit("behind", queue, venue.definition("small", vcpus=1))
    blocked = wait_until(batch_client, big, lambda j: j.get("statusReason") == MAX_RESOURCE)
    assert blocked["status"] == "RUNNABLE"
    assert describe(batch_client, behind)["status"] == "RUNNABLE"  # the blocked head holds the queue
    event = _drain(sqs, url, lambda got: bool(got))[0]
    assert (event["detail-type"], event["detail"]["jobId"], event["detail"]["statusReason"]) == (
        "Batch Job Queue Blocked",
        big,
        MAX_RESOURCE,
    )
    assert event["resources"] == [event["detail"]["jobArn"], queue]
    cancelled = wait_status(batch_client, big, "FAILED", timeout=5)
    assert cancelled["statusReason"] == (
        "Terminated by JobStateTimeLimit action due to reason: MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
    )
    assert (cancelled["isCancelled"], cancelled["isTerminated"]) == (True, False)
    assert "startedAt" not in cancelled  # it never ran
    assert wait_status(batch_client, behind, "SUCCEEDED")["status"] == "SUCCEEDED"  # the next job advanced


def test_a_job_no_instance_type_can_hold_is_blocked_with_the_requirement_reason(
    batch_client: Any, venue: Venue
) -> None:
    # AWS JobDetail.statusReason: "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - All compute environments have no
    # connected instances that meet the job requirements."
    queue = venue.queue("q", venue.environment("ec2", kind="EC2", max_vcpus=64, instance_types=("m5.large",)))
    job_id = venue.submit("wide", queue, venue.definition("wide", vcpus=4, memory=4096))  # m5.large: 2 vCPUs
    assert wait_until(batch_client, job_id, lambda j: "statusReason" in j)["statusReason"] == REQUIREMENT


def test_share_identifier_is_required_on_a_fair_share_queue_and_refused_elsewhere(
    batch_client: Any, batch_env: BatchEnv, venue: Venue
) -> None:
    # AWS SubmitJob shareIdentifier: "If the job queue has a scheduling policy, then this parameter must be
    # specified. If the job queue doesn't have a scheduling policy, then this parameter must not be specified."
    policy = batch_client.create_scheduling_policy(name="fair", fairsharePolicy={"shareDistribution": []})["arn"]
    fair = venue.queue("fair", venue.environment("env"), schedulingPolicyArn=policy)
    definition = venue.definition("d")
    with pytest.raises(ClientError, match="Job queue fair has a scheduling policy: shareIdentifier must be specified"):
        venue.submit("no-share", fair, definition)
    with pytest.raises(ClientError, match="has no scheduling policy: shareIdentifier must not be specified"):
        submit(batch_client, batch_env, "share", shareIdentifier="a")
    job_id = venue.submit("shared", fair, definition, shareIdentifier="a")
    assert describe(batch_client, job_id)["shareIdentifier"] == "a"


def test_scheduling_priority_override_is_between_0_and_9999(
    batch_client: Any, batch_env: BatchEnv, venue: Venue
) -> None:
    # AWS SubmitJob schedulingPriorityOverride: "The minimum supported value is 0 and the maximum supported value
    # is 9999."
    policy = batch_client.create_scheduling_policy(name="fair", fairsharePolicy={"shareDistribution": []})["arn"]
    fair = venue.queue("fair", venue.environment("env"), schedulingPolicyArn=policy)
    definition = venue.definition("d")
    for bad in (10000, -1):
        with pytest.raises(ClientError, match=f"schedulingPriorityOverride must be between 0 and 9999, got {bad}"):
            venue.submit("prio", fair, definition, shareIdentifier="a", schedulingPriorityOverride=bad)
    job_id = venue.submit("prio", fair, definition, shareIdentifier="a", schedulingPriorityOverride=9999)
    assert describe(batch_client, job_id)["schedulingPriority"] == 9999


def test_job_detail_says_whether_a_job_was_cancelled_or_terminated(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # AWS JobDetail: isCancelled "Indicates whether the job is canceled."; isTerminated "Indicates whether the job
    # is terminated."
    batch_control.hold("RUNNABLE", name_glob="cancelled")
    batch_control.hold("RUNNING", name_glob="terminated")
    cancelled = submit(batch_client, batch_env, "cancelled")
    terminated = submit(batch_client, batch_env, "terminated")
    finished = submit(batch_client, batch_env, "finished")
    wait_status(batch_client, cancelled, "RUNNABLE")
    wait_status(batch_client, terminated, "RUNNING")
    batch_client.cancel_job(jobId=cancelled, reason="not needed")
    batch_client.terminate_job(jobId=terminated, reason="stop")
    flags = {
        j: (d["isCancelled"], d["isTerminated"])
        for j in (cancelled, terminated, finished)
        for d in [wait_status(batch_client, j, "SUCCEEDED", "FAILED")]
    }
    assert flags == {cancelled: (True, False), terminated: (False, True), finished: (False, False)}


def test_job_state_time_limit_actions_are_validated_and_described(batch_client: Any, venue: Venue) -> None:
    # AWS JobStateTimeLimitAction: maxTimeSeconds "The minimum value is 600 (10 minutes) and the maximum value is
    # 86,400 (24 hours)."; state "The state of the job needed to trigger the action. The only supported value is
    # RUNNABLE."
    env = venue.environment("env")

    def action(**change: Any) -> dict[str, Any]:
        base = {"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "state": "RUNNABLE", "maxTimeSeconds": 600}
        return {**base, "action": "CANCEL", **change}

    for bad, message in (
        (
            action(maxTimeSeconds=599),
            "jobStateTimeLimitActions[0].maxTimeSeconds must be between 600 and 86400, got 599",
        ),
        (action(maxTimeSeconds=86401), "maxTimeSeconds must be between 600 and 86400, got 86401"),
        (action(state="STARTING"), "jobStateTimeLimitActions[0].state must be RUNNABLE, got 'STARTING'"),
    ):
        with pytest.raises(ClientError) as refused:
            venue.queue("bad", env, jobStateTimeLimitActions=[bad])
        assert message in refused.value.response["Error"]["Message"]
    venue.queue("good", env, jobStateTimeLimitActions=[action(maxTimeSeconds=86400)])
    described = batch_client.describe_job_queues(jobQueues=["good"])["jobQueues"][0]["jobStateTimeLimitActions"]
    assert described == [action(maxTimeSeconds=86400)]
    batch_client.update_job_queue(jobQueue="good", jobStateTimeLimitActions=[action(action="TERMINATE")])
    described = batch_client.describe_job_queues(jobQueues=["good"])["jobQueues"][0]["jobStateTimeLimitActions"]
    assert described == [action(action="TERMINATE")]


def test_array_children_enter_pending_when_spawned(
    batch_client: Any, batch_env: BatchEnv, aws: Callable[[str], Any]
) -> None:
    # AWS JobSummary.createdAt: "For array child jobs, this is when the child job was spawned by its parent and
    # entered the PENDING state."
    sqs, url = _route_to_queue(aws)
    array = submit(batch_client, batch_env, "spawned", arrayProperties={"size": 2})
    child = f"{array}:1"
    events = _drain(
        sqs, url, lambda got: any(e["detail"]["jobId"] == child and e["detail"]["status"] == "SUCCEEDED" for e in got)
    )
    child_events = [e["detail"] for e in events if e["detail"]["jobId"] == child]
    assert [e["status"] for e in child_events] == ["PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    assert all(e["createdAt"] == child_events[0]["createdAt"] for e in child_events)
    assert describe(batch_client, child)["createdAt"] == child_events[0]["createdAt"]


# -- the capacity model ------------------------------------------------------------------------------------------
def test_running_jobs_hold_an_environments_vcpus_until_they_end(
    batch_client: Any, batch_control: Any, venue: Venue
) -> None:
    # A RUNNABLE job starts only when an environment of its queue has room; what runs holds capacity till it ends.
    batch_control.set_durations(default=0.2)
    queue = venue.queue("q", venue.environment("four", max_vcpus=4))
    definition = venue.definition("two", vcpus=2)
    jobs = [venue.submit(f"j{i}", queue, definition) for i in range(5)]
    most = _max_running(batch_client, jobs, lambda now: all(s == "SUCCEEDED" for s in now))
    assert most == 2


def test_the_fargate_quota_caps_running_fargate_vcpus_across_environments(
    batch_client: Any, batch_control: Any, venue: Venue
) -> None:
    # AWS Fargate quotas: "Fargate On-Demand vCPU resource count" (L-3032A538), 6 vCPUs for a new account -- the
    # emulator's default; the environments' maxvCpus (64 each) would allow far more.
    assert batch_control.quota() == {"fargate": 6.0, "fargate_spot": 6.0}
    batch_control.set_durations(default=0.2)
    first, second = venue.environment("env-a", max_vcpus=64), venue.environment("env-b", max_vcpus=64)
    queue = venue.queue("q", first, second)
    definition = venue.definition("two", vcpus=2)
    jobs = [venue.submit(f"j{i}", queue, definition) for i in range(6)]
    assert _max_running(batch_client, jobs, lambda now: all(s == "SUCCEEDED" for s in now)) == 3
    assert batch_control.quota(fargate=4) == {"fargate": 4.0, "fargate_spot": 6.0}
    jobs = [venue.submit(f"k{i}", queue, definition) for i in range(4)]
    assert _max_running(batch_client, jobs, lambda now: all(s == "SUCCEEDED" for s in now)) == 2


def test_jobs_go_to_the_next_environment_in_order_when_the_first_is_full(
    batch_client: Any, batch_control: Any, venue: Venue
) -> None:
    batch_control.hold("RUNNING", name_glob="*")
    queue = venue.queue("q", venue.environment("first", max_vcpus=2), venue.environment("second", kind="FARGATE_SPOT"))
    definition = venue.definition("two", vcpus=2)
    jobs = [venue.submit(f"j{i}", queue, definition) for i in range(4)]
    wait_until(batch_client, jobs[2], lambda j: j["status"] == "RUNNING")
    time.sleep(0.2)
    # "first" (2 vCPUs) holds one job, "second" (maxvCpus 4) two more; the fourth waits for room
    assert sorted(statuses(batch_client, jobs)) == ["RUNNABLE", "RUNNING", "RUNNING", "RUNNING"]
    batch_control.release()
    for job_id in jobs:
        wait_status(batch_client, job_id, "SUCCEEDED")


def test_raising_max_vcpus_unblocks_a_queue(batch_client: Any, venue: Venue) -> None:
    env = venue.environment("env", max_vcpus=2)
    queue = venue.queue("q", env)
    job_id = venue.submit("big", queue, venue.definition("big", vcpus=4))
    wait_until(batch_client, job_id, lambda j: j.get("statusReason") == MAX_RESOURCE)
    batch_client.update_compute_environment(computeEnvironment=env, computeResources={"maxvCpus": 8})
    job = wait_status(batch_client, job_id, "SUCCEEDED")
    assert job["statusReason"] == "Essential container in task exited"
