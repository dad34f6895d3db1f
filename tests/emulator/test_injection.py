"""Failure injection, retry strategies, HTTP throttling seen by botocore, and call counters."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from .conftest import BatchEnv, describe, submit, wait_status


def _client(url: str, retries: dict[str, Any]) -> Any:
    return boto3.client(
        "batch",
        region_name="us-west-2",
        endpoint_url=url,
        config=Config(retries=retries),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_exit_code_and_host_reason_failures_look_like_aws(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.fail("exits", exit_code=3)
    batch_control.fail("spot", reason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
    exits = wait_status(batch_client, submit(batch_client, batch_env, "exits"), "FAILED")
    assert exits["container"]["exitCode"] == 3
    assert exits["statusReason"] == "Essential container in task exited"
    spot = wait_status(batch_client, submit(batch_client, batch_env, "spot"), "FAILED")
    assert spot["statusReason"] == "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    assert spot["container"]["reason"] == "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    assert "exitCode" not in spot["container"]


def test_seeded_share_of_children_fails_reproducibly(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.fail("share-*", share=0.3, seed=42)
    failed_sets = []
    for name in ("share-a", "share-a"):
        array = submit(batch_client, batch_env, name, arrayProperties={"size": 40})
        wait_status(batch_client, array, "FAILED")
        failed = batch_client.list_jobs(arrayJobId=array, jobStatus="FAILED")["jobSummaryList"]
        failed_sets.append({j["arrayProperties"]["index"] for j in failed})
    assert failed_sets[0] == failed_sets[1]
    assert 4 <= len(failed_sets[0]) <= 20


def test_retries_consume_attempts_until_success(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.fail("flaky", times=2)
    job = wait_status(
        batch_client, submit(batch_client, batch_env, "flaky", retryStrategy={"attempts": 3}), "SUCCEEDED", "FAILED"
    )
    assert job["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [1, 1, 0]
    starts = [a["startedAt"] for a in job["attempts"]]
    assert starts == sorted(starts)


def test_retries_stop_when_attempts_run_out(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.fail("doomed")
    job = wait_status(batch_client, submit(batch_client, batch_env, "doomed", retryStrategy={"attempts": 2}), "FAILED")
    assert len(job["attempts"]) == 2


def test_evaluate_on_exit_first_matching_rule_wins(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "CAPACITY:*", "action": "RETRY"},
            {"onExitCode": "*", "action": "EXIT"},
        ],
    }
    batch_control.fail("capacity", reason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", times=1)
    batch_control.fail("crash", exit_code=2)
    capacity = wait_status(
        batch_client, submit(batch_client, batch_env, "capacity", retryStrategy=strategy), "SUCCEEDED", "FAILED"
    )
    assert capacity["status"] == "SUCCEEDED" and len(capacity["attempts"]) == 2
    crash = wait_status(batch_client, submit(batch_client, batch_env, "crash", retryStrategy=strategy), "FAILED")
    assert len(crash["attempts"]) == 1


def test_retry_strategy_from_the_job_definition(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_client.register_job_definition(
        jobDefinitionName="retrying",
        type="container",
        retryStrategy={"attempts": 2},
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128},
    )
    batch_control.fail("def-retry", times=1)
    job_id = batch_client.submit_job(jobName="def-retry", jobQueue=batch_env.queue, jobDefinition="retrying")["jobId"]
    job = wait_status(batch_client, job_id, "SUCCEEDED", "FAILED")
    assert job["status"] == "SUCCEEDED" and len(job["attempts"]) == 2


def test_throttled_submit_is_seen_by_botocore_and_adaptive_retries_recover(
    batch_server: Any,
    batch_env: BatchEnv,
    batch_control: Any,
    batch_client: Any,
) -> None:
    batch_control.throttle(share=1.0, operations=["SubmitJob"])
    plain = _client(batch_server.url, {"total_max_attempts": 1})
    with pytest.raises(ClientError) as error:
        submit(plain, batch_env, "throttled")
    assert error.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert batch_client.list_jobs(jobQueue=batch_env.queue)["jobSummaryList"] == []  # other operations pass

    batch_control.throttle(share=0.3, operations=["SubmitJob"], seed=1)
    adaptive = _client(batch_server.url, {"mode": "adaptive", "total_max_attempts": 10})
    ids = [submit(adaptive, batch_env, f"ok-{i}") for i in range(4)]
    assert len(set(ids)) == 4
    counters = batch_control.counters()
    assert counters["injected"]["SubmitJob"] >= 1
    assert counters["calls"]["SubmitJob"] == 4 + counters["injected"]["SubmitJob"]  # the first 429 included
    assert counters["calls"]["ListJobs"] == 1


def test_server_errors_are_aws_shaped(batch_server: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.throttle(share=1.0, status=500, operations=["DescribeJobs"])
    plain = _client(batch_server.url, {"total_max_attempts": 1})
    with pytest.raises(ClientError) as error:
        plain.describe_jobs(jobs=["x"])
    assert error.value.response["Error"]["Code"] == "ServerException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    standard = _client(batch_server.url, {"mode": "standard", "total_max_attempts": 3})
    with pytest.raises(ClientError) as retried:
        standard.describe_jobs(jobs=["x"])
    assert retried.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert batch_control.counters()["injected"]["DescribeJobs"] == 4


def test_submit_rate_cap(batch_server: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.throttle(submit_rate=3)
    plain = _client(batch_server.url, {"total_max_attempts": 1})
    outcomes = []
    for i in range(6):
        try:
            submit(plain, batch_env, f"rate-{i}")
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    assert outcomes.count("ok") in (3, 4, 5, 6) and "TooManyRequestsException" in outcomes


def test_counters_count_calls_per_operation_and_reset(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    job_id = submit(batch_client, batch_env, "counted")
    describe(batch_client, job_id)
    describe(batch_client, job_id)
    calls = batch_control.counters()["calls"]
    assert (calls["SubmitJob"], calls["DescribeJobs"]) == (1, 2)
    batch_control.reset()
    assert batch_control.counters() == {
        "calls": {},
        "injected": {},
        "effects": {"events_published": 0, "events_duplicated": 0, "events_dropped": 0, "log_streams": 0},
    }
