"""Batch Job State Change events through a real EventBridge rule into SQS, and CloudWatch Logs streams per
attempt, all inside the one emulator server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .conftest import BatchEnv, submit, wait_status

PATTERN = {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"]}


def _route_to_queue(aws: Callable[[str], Any], pattern: dict[str, Any] = PATTERN) -> tuple[Any, str]:
    sqs, events = aws("sqs"), aws("events")
    url = sqs.create_queue(QueueName="batch-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="batch-state", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="batch-state", Targets=[{"Id": "queue", "Arn": arn}])
    return sqs, url


def _drain(
    sqs: Any,
    url: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 5.0,
) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not until(received):
        assert time.monotonic() < deadline, [(e["detail"]["jobId"], e["detail"]["status"]) for e in received]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not messages:
            time.sleep(0.05)
    return received


def _states(events: list[dict[str, Any]], job_id: str) -> list[str]:
    return [e["detail"]["status"] for e in events if e["detail"]["jobId"] == job_id]


def test_state_changes_reach_sqs_through_an_eventbridge_rule(
    batch_client: Any, batch_env: BatchEnv, aws: Callable[[str], Any]
) -> None:
    sqs, url = _route_to_queue(aws)
    job_id = submit(batch_client, batch_env, "evented", tags={"confluence:run": "r1"})
    events = _drain(sqs, url, lambda got: "SUCCEEDED" in _states(got, job_id))
    # AWS: no event for the initial submission; one per later state, in order when nothing is injected.
    assert _states(events, job_id) == ["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    last = events[-1]
    assert (last["source"], last["detail-type"], last["resources"]) == (
        "aws.batch",
        "Batch Job State Change",
        [last["detail"]["jobArn"]],
    )
    assert last["time"].endswith("Z")
    detail = last["detail"]
    described = batch_client.describe_jobs(jobs=[job_id])["jobs"][0]
    assert detail == described  # "detail" is shaped like the DescribeJobs job
    assert detail["jobQueue"].startswith("arn:aws:batch:")
    assert detail["tags"] == {"confluence:run": "r1"}


def test_array_children_emit_events_with_their_index_and_the_parent_with_its_summary(
    batch_client: Any,
    batch_env: BatchEnv,
    batch_control: Any,
    aws: Callable[[str], Any],
) -> None:
    pattern = {**PATTERN, "detail": {"status": ["SUCCEEDED", "FAILED"]}}
    sqs, url = _route_to_queue(aws, pattern)
    batch_control.fail("pair", indices=[1])
    array = submit(batch_client, batch_env, "pair", arrayProperties={"size": 2})
    events = _drain(sqs, url, lambda got: "FAILED" in _states(got, array))
    by_id = {e["detail"]["jobId"]: e["detail"] for e in events}
    assert by_id[f"{array}:0"]["status"] == "SUCCEEDED"
    assert by_id[f"{array}:0"]["arrayProperties"] == {"index": 0}
    assert by_id[f"{array}:1"]["container"]["exitCode"] == 1
    assert by_id[array]["arrayProperties"]["size"] == 2
    assert by_id[array]["arrayProperties"]["statusSummary"]["FAILED"] == 1
    assert len(events) == 3  # the rule's detail.status pattern filtered every other state


def test_injected_duplicates_and_reordering(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any, aws: Callable[[str], Any]
) -> None:
    # AWS delivers events at least once and documents no ordering: a consumer must cope with both.
    sqs, url = _route_to_queue(aws)
    batch_control.events(duplicates=1.0, reorder_window=8, seed=3)
    job_id = submit(batch_client, batch_env, "shuffled")
    wait_status(batch_client, job_id, "SUCCEEDED")
    events = _drain(sqs, url, lambda got: len(_states(got, job_id)) == 8)
    states = _states(events, job_id)
    assert sorted(states) == sorted(["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"] * 2)
    assert states != sorted(states, key=["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"].index)
    effects = batch_control.counters()["effects"]
    assert (effects["events_published"], effects["events_duplicated"]) == (8, 4)


def test_a_failed_jobs_log_stream_ends_with_the_failure_rules_lines(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any, aws: Callable[[str], Any]
) -> None:
    batch_control.fail(
        "crashes",
        times=1,
        exit_code=3,
        log=["Traceback (most recent call last):", "ValueError: reach 17 has no observations"],
    )
    job = wait_status(
        batch_client, submit(batch_client, batch_env, "crashes", retryStrategy={"attempts": 2}), "SUCCEEDED", "FAILED"
    )
    first, second = (a["container"]["logStreamName"] for a in job["attempts"])
    # AWS: one stream per attempt, PREFIX/default/TASK_ID, in /aws/batch/job unless the definition says otherwise
    assert first != second
    assert job["container"]["logStreamName"] == second
    assert first.startswith(f"{batch_env.definition}/default/")
    logs = aws("logs")
    lines = [
        e["message"]
        for e in logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=first, startFromHead=True)["events"]
    ]
    assert lines == [
        f"batch emulator: job crashes ({job['jobId']}) attempt 1 started",
        "command: run",
        "Traceback (most recent call last):",
        "ValueError: reach 17 has no observations",
    ]
    lines = [
        e["message"]
        for e in logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=second, startFromHead=True)["events"]
    ]
    assert lines[-1] == "batch emulator: exit code 0"


def test_awslogs_group_and_stream_prefix_of_the_job_definition(
    batch_client: Any, batch_env: BatchEnv, aws: Callable[[str], Any]
) -> None:
    batch_client.register_job_definition(
        jobDefinitionName="logged",
        type="container",
        containerProperties={
            "image": "busybox",
            "vcpus": 1,
            "memory": 128,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/confluence/jobs", "awslogs-stream-prefix": "input"},
            },
        },
    )
    job_id = batch_client.submit_job(jobName="with-prefix", jobQueue=batch_env.queue, jobDefinition="logged")["jobId"]
    stream = wait_status(batch_client, job_id, "SUCCEEDED")["container"]["logStreamName"]
    assert stream.startswith("input/default/")
    streams = aws("logs").describe_log_streams(logGroupName="/confluence/jobs")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
