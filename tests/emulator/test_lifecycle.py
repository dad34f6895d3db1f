"""Plain jobs: AWS state order on the controlled clock, timestamps, recorded request fields, lookups, listing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import BatchEnv, describe, submit, wait_status


def test_plain_job_walks_the_aws_states_in_order_and_finishes_fast(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # GIVEN phases long enough to be seen by polling even on a loaded 2-core machine (0.2 s phases were missed)
    batch_control.set_durations(default=1.0, queue=0.75)
    job_id = submit(batch_client, batch_env, "walk")
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while (not seen or seen[-1] != "SUCCEEDED") and time.monotonic() < deadline:
        status = describe(batch_client, job_id)["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.02)
    # THEN no dependency means no PENDING, and states only move forward
    assert seen == ["SUBMITTED", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]


def test_default_timing_and_aws_timestamps(batch_client: Any, batch_env: BatchEnv) -> None:
    job = wait_status(batch_client, submit(batch_client, batch_env, "quick"), "SUCCEEDED")
    # The default timing is quick in the emulator's own clock (the timestamps it reports), not in wall-clock time
    # on a loaded machine: how fast the emulator is belongs in bench/.
    assert job["stoppedAt"] - job["createdAt"] < 1000
    assert job["createdAt"] <= job["startedAt"] < job["stoppedAt"]
    assert job["createdAt"] > 1_600_000_000_000  # epoch milliseconds, as AWS
    assert job["stoppedAt"] - job["startedAt"] == pytest.approx(100, abs=30)
    assert job["container"]["exitCode"] == 0
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [0]


def test_durations_by_run_name_and_definition(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.set_durations(
        by_run={"run-7": 0.6}, by_name={"slow-*": 0.4}, by_definition={batch_env.definition: 0.3}
    )
    by_run = submit(batch_client, batch_env, "slow-tagged", tags={"confluence:run": "run-7"})
    by_name = submit(batch_client, batch_env, "slow-named")
    by_def = submit(batch_client, batch_env, "other")
    runs = {}
    for job_id in (by_run, by_name, by_def):
        job = wait_status(batch_client, job_id, "SUCCEEDED")
        runs[job_id] = job["stoppedAt"] - job["startedAt"]
    assert runs[by_run] == pytest.approx(600, abs=40)
    assert runs[by_name] == pytest.approx(400, abs=40)
    assert runs[by_def] == pytest.approx(300, abs=40)


def test_state_advances_without_api_calls_and_pause_freezes_it(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.pause()
    job_id = submit(batch_client, batch_env, "paused")
    time.sleep(0.3)
    assert describe(batch_client, job_id)["status"] == "SUBMITTED"
    batch_control.resume()
    time.sleep(0.4)  # no calls meanwhile: the ticker thread finishes the job
    job = describe(batch_client, job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["stoppedAt"] - job["createdAt"] < 400


def test_describe_returns_request_fields_like_aws(batch_client: Any, batch_env: BatchEnv) -> None:
    job_id = submit(
        batch_client,
        batch_env,
        "fields",
        containerOverrides={"command": ["echo", "hi"], "environment": [{"name": "STAGE", "value": "s1"}]},
        tags={"confluence:run": "r1"},
        propagateTags=True,
        timeout={"attemptDurationSeconds": 600},
        retryStrategy={"attempts": 2},
    )
    job = describe(batch_client, job_id)
    assert job["container"]["command"] == ["echo", "hi"]
    assert {"name": "STAGE", "value": "s1"} in job["container"]["environment"]
    assert {"name": "FROM_DEF", "value": "1"} in job["container"]["environment"]
    assert job["tags"] == {"confluence:run": "r1"}
    assert job["propagateTags"] is True
    assert job["timeout"] == {"attemptDurationSeconds": 600}
    assert job["retryStrategy"] == {"attempts": 2}
    assert job["jobDefinition"] == batch_env.definition_arn
    assert batch_client.list_tags_for_resource(resourceArn=job["jobArn"])["tags"] == {"confluence:run": "r1"}


def test_attempt_timeout_fails_the_job(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    # AWS: "The minimum value for the timeout is 60 seconds." This test opts into a 1 s minimum.
    batch_control.set_durations(default=5, min_timeout=1)
    job_id = submit(batch_client, batch_env, "too-long", timeout={"attemptDurationSeconds": 1})
    job = wait_status(batch_client, job_id, "FAILED", timeout=3)
    assert job["statusReason"] == "Job attempt duration exceeded timeout"


def test_job_definition_resolution_and_missing_resources(batch_client: Any, batch_env: BatchEnv) -> None:
    second = batch_client.register_job_definition(
        jobDefinitionName=batch_env.definition,
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128},
    )
    assert second["revision"] == 2
    by_name = describe(batch_client, submit(batch_client, batch_env, "latest"))
    assert by_name["jobDefinition"] == second["jobDefinitionArn"]
    pinned = batch_client.submit_job(
        jobName="pinned", jobQueue=batch_env.queue, jobDefinition=f"{batch_env.definition}:1"
    )["jobId"]
    assert describe(batch_client, pinned)["jobDefinition"] == batch_env.definition_arn
    by_arn = batch_client.submit_job(
        jobName="by-arn", jobQueue=batch_env.queue, jobDefinition=batch_env.definition_arn
    )["jobId"]
    assert describe(batch_client, by_arn)["jobDefinition"] == batch_env.definition_arn
    # AWS: a bare name means the latest ACTIVE revision
    batch_client.deregister_job_definition(jobDefinition=second["jobDefinitionArn"])
    again = describe(batch_client, submit(batch_client, batch_env, "after-dereg"))
    assert again["jobDefinition"] == batch_env.definition_arn

    with pytest.raises(ClientError) as missing_def:
        batch_client.submit_job(jobName="x1", jobQueue=batch_env.queue, jobDefinition="nope")
    assert missing_def.value.response["Error"]["Code"] == "ClientException"
    assert "nope" in missing_def.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing_queue:
        batch_client.submit_job(jobName="x2", jobQueue="no-queue", jobDefinition=batch_env.definition)
    assert missing_queue.value.response["Error"]["Code"] == "ClientException"
    assert "no-queue" in missing_queue.value.response["Error"]["Message"]


def test_describe_jobs_limit_and_unknown_ids(batch_client: Any, batch_env: BatchEnv) -> None:
    job_id = submit(batch_client, batch_env, "one")
    assert [j["jobId"] for j in batch_client.describe_jobs(jobs=[job_id, "unknown"])["jobs"]] == [job_id]
    with pytest.raises(ClientError) as error:
        batch_client.describe_jobs(jobs=[job_id] * 101)
    assert error.value.response["Error"]["Code"] == "ClientException"


def test_list_jobs_status_default_and_name_prefix_filter(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"long-*": 60})
    running = submit(batch_client, batch_env, "long-a")
    done = submit(batch_client, batch_env, "short-b")
    wait_status(batch_client, running, "RUNNING")
    wait_status(batch_client, done, "SUCCEEDED")
    # AWS: no jobStatus and no filters lists RUNNING jobs only
    assert [j["jobId"] for j in batch_client.list_jobs(jobQueue=batch_env.queue)["jobSummaryList"]] == [running]
    succeeded = batch_client.list_jobs(jobQueue=batch_env.queue, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [j["jobId"] for j in succeeded] == [done]
    # filters ignore jobStatus and match every status; a trailing * is a prefix match
    named = batch_client.list_jobs(
        jobQueue=batch_env.queue, jobStatus="FAILED", filters=[{"name": "JOB_NAME", "values": ["short*"]}]
    )["jobSummaryList"]
    assert [j["jobId"] for j in named] == [done]
    exact = batch_client.list_jobs(jobQueue=batch_env.queue, filters=[{"name": "JOB_NAME", "values": ["long"]}])
    assert exact["jobSummaryList"] == []


def test_list_jobs_paginates_most_recent_first(batch_client: Any, batch_env: BatchEnv) -> None:
    ids = [submit(batch_client, batch_env, f"page-{i}") for i in range(5)]
    pages = batch_client.get_paginator("list_jobs").paginate(
        jobQueue=batch_env.queue,
        filters=[{"name": "JOB_NAME", "values": ["page-*"]}],
        PaginationConfig={"PageSize": 2},
    )
    # AWS: "The results are sorted by the createdAt field, with the most recent jobs being first."
    assert [j["jobId"] for page in pages for j in page["jobSummaryList"]] == ids[::-1]
