"""Real-world faults on demand: Spot reclaims, out-of-memory kills, lost and tag-less events; from Python and from
``python -m batch_emulator``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from .conftest import BatchEnv, Venue, submit, wait_status
from .test_cli import emulator
from .test_events_logs import _drain, _route_to_queue

FARGATE_SPOT = "Your Spot Task was interrupted."
EC2_SPOT = re.compile(r"^Host EC2 \(instance i-[0-9a-f]{17}\) terminated\.$")
OOM = "OutOfMemoryError: Container killed due to memory usage"


def test_a_fargate_spot_reclaim_has_awss_reason_and_the_retry_strategy_recovers(
    batch_client: Any, batch_control: Any, venue: Venue
) -> None:
    # AWS: a Fargate Spot task that is interrupted stops with "Your Spot Task was interrupted." (two minutes'
    # notice); Batch retries it as its retryStrategy says.
    queue = venue.queue("spot", venue.environment("fargate-spot", kind="FARGATE_SPOT"))
    batch_control.spot_reclaim("spotty", times=1)
    job_id = venue.submit("spotty", queue, venue.definition("d"), retryStrategy={"attempts": 2})
    job = wait_status(batch_client, job_id, "SUCCEEDED", "FAILED")
    assert job["status"] == "SUCCEEDED"
    first, second = job["attempts"]
    assert (first["statusReason"], first["container"]["reason"]) == (FARGATE_SPOT, FARGATE_SPOT)
    assert "exitCode" not in first["container"]
    assert second["statusReason"] == "Essential container in task exited"


def test_an_ec2_spot_reclaim_names_the_host_and_an_exit_rule_on_it_decides(
    batch_client: Any, batch_control: Any, venue: Venue
) -> None:
    # AWS: an EC2 Spot reclaim fails the attempt with "Host EC2 (instance i-...) terminated."; evaluateOnExit
    # patterns allow one trailing "*", so "Host EC2*" is the rule that matches it.
    queue = venue.queue("spot", venue.environment("ec2-spot", kind="SPOT", max_vcpus=16))
    batch_control.spot_reclaim("reclaimed-*")
    strategy = {"attempts": 3, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "EXIT"}]}
    job_id = venue.submit("reclaimed-1", queue, venue.definition("d"), retryStrategy=strategy)
    job = wait_status(batch_client, job_id, "FAILED")
    assert len(job["attempts"]) == 1  # the EXIT rule matched: no retry
    assert EC2_SPOT.match(job["statusReason"]), job["statusReason"]
    assert job["container"]["reason"] == job["statusReason"]


def test_a_spot_reclaim_never_touches_on_demand_capacity(batch_client: Any, batch_control: Any, venue: Venue) -> None:
    queue = venue.queue("on-demand", venue.environment("fargate", kind="FARGATE"))
    batch_control.spot_reclaim("*")
    job = wait_status(batch_client, venue.submit("safe", queue, venue.definition("d")), "SUCCEEDED", "FAILED")
    assert (job["status"], len(job["attempts"])) == ("SUCCEEDED", 1)


def test_an_out_of_memory_kill_reads_as_ecs_reports_it_and_obeys_the_retry_strategy(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # ECS: a container killed for exceeding its memory has reason "OutOfMemoryError: Container killed due to
    # memory usage" and exit code 137; the task stopped because its essential container exited.
    batch_control.oom("hungry", times=1)
    batch_control.oom("greedy")
    recovered = wait_status(
        batch_client, submit(batch_client, batch_env, "hungry", retryStrategy={"attempts": 2}), "SUCCEEDED", "FAILED"
    )
    assert recovered["status"] == "SUCCEEDED"
    oom = recovered["attempts"][0]
    assert (oom["container"]["exitCode"], oom["container"]["reason"], oom["statusReason"]) == (
        137,
        OOM,
        "Essential container in task exited",
    )
    strategy = {"attempts": 3, "evaluateOnExit": [{"onReason": "OutOfMemoryError*", "action": "EXIT"}]}
    failed = wait_status(batch_client, submit(batch_client, batch_env, "greedy", retryStrategy=strategy), "FAILED")
    assert (len(failed["attempts"]), failed["container"]["exitCode"], failed["container"]["reason"]) == (1, 137, OOM)


def test_events_can_lose_their_tags_and_a_share_can_be_dropped(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any, aws: Callable[[str], Any]
) -> None:
    # AWS's documented example event carries "tags": {"resourceArn": ...}, not the job's tags: a consumer must not
    # depend on them. EventBridge delivery can fail; a share of deliveries dropped rehearses a lost event.
    sqs, url = _route_to_queue(aws)
    batch_control.events(tags=False)
    tagged = submit(batch_client, batch_env, "tagged", tags={"confluence:run": "r1"})
    events = _drain(sqs, url, lambda got: any(e["detail"]["status"] == "SUCCEEDED" for e in got))
    assert [e["detail"]["jobId"] for e in events] == [tagged] * 4
    assert all("tags" not in e["detail"] for e in events)
    batch_control.events(drop=1.0)
    lost = submit(batch_client, batch_env, "lost")
    wait_status(batch_client, lost, "SUCCEEDED")
    time.sleep(0.4)  # longer than any reorder hold: whatever would arrive has arrived
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []) == []
    assert batch_control.counters()["effects"]["events_dropped"] == 4


def test_faults_quota_and_time_limit_scale_from_the_shell(
    batch_server: Any, batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    url = batch_server.url
    assert emulator("spot", "spot-*", "--share", "0.5", "--seed", "3", url=url).stdout == "reclaiming spot-*\n"
    assert (
        emulator("oom", "oom-*", "--indices", "0,2", "--times", "1", url=url).stdout
        == "oom-killing oom-* indices 0,2\n"
    )
    quota = emulator("quota", "--fargate", "12", url=url)
    assert (quota.returncode, json.loads(quota.stdout)) == (0, {"fargate": 12.0, "fargate_spot": 6.0})
    assert emulator("quota", url=url).stdout.startswith('{\n  "fargate": 12.0')
    assert emulator("events", "--drop", "0.25", "--no-tags", url=url).stdout == "events on\n"
    assert emulator("durations", "--time-limit-scale", "0.001", url=url).stdout == "durations set\n"
    array = submit(batch_client, batch_env, "oom-array", arrayProperties={"size": 3})
    wait_status(batch_client, array, "FAILED")
    failed = batch_client.list_jobs(arrayJobId=array, jobStatus="FAILED")["jobSummaryList"]
    assert sorted(j["arrayProperties"]["index"] for j in failed) == [0, 2]
    assert {j["container"]["reason"] for j in failed} == {OOM}
    bad = emulator("events", "--drop", "2", url=url)
    assert bad.returncode == 1
    assert "drop must be a share between 0 and 1, got 2.0" in bad.stderr
