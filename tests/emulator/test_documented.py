"""AWS Batch semantics quoted from the API reference and user guide: dependencies that name a job, ListJobs
order/filters/scope, SubmitJob validation, attempt and timestamp fields, EKS jobs, and retention."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import BatchEnv, describe, submit, wait_status, wait_until


def _error(call: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]


# -- dependsOn with a jobId is never dropped --------------------------------------------------------------------
def test_sequential_dependency_with_a_job_id_on_an_array_waits_for_that_job_and_chains(
    batch_client: Any,
    batch_env: BatchEnv,
    batch_control: Any,
) -> None:
    batch_control.set_durations(by_name={"first": 0.4})
    first = submit(batch_client, batch_env, "first")
    array = submit(
        batch_client,
        batch_env,
        "chained",
        arrayProperties={"size": 3},
        dependsOn=[{"jobId": first, "type": "SEQUENTIAL"}],
    )
    wait_status(batch_client, first, "RUNNING")
    assert describe(batch_client, f"{array}:0")["status"] in ("SUBMITTED", "PENDING")
    done_first = wait_status(batch_client, first, "SUCCEEDED")
    wait_status(batch_client, array, "SUCCEEDED")
    children = batch_client.describe_jobs(jobs=[f"{array}:{i}" for i in range(3)])["jobs"]
    assert children[0]["startedAt"] >= done_first["stoppedAt"]
    assert children[1]["startedAt"] >= children[0]["stoppedAt"]
    assert children[2]["startedAt"] >= children[1]["stoppedAt"]


def test_sequential_dependency_with_a_job_id_on_a_plain_job_is_a_plain_dependency(
    batch_client: Any,
    batch_env: BatchEnv,
    batch_control: Any,
) -> None:
    batch_control.fail("broken-first")
    first = submit(batch_client, batch_env, "broken-first")
    after = submit(batch_client, batch_env, "after-first", dependsOn=[{"jobId": first, "type": "SEQUENTIAL"}])
    assert wait_status(batch_client, after, "FAILED")["statusReason"] == "Dependent Job failed"


def test_dependencies_that_cannot_be_honoured_are_rejected(batch_client: Any, batch_env: BatchEnv) -> None:
    assert (
        _error(lambda: submit(batch_client, batch_env, "seq-plain", dependsOn=[{"type": "SEQUENTIAL"}]))["Code"]
        == "ClientException"
    )
    assert (
        _error(
            lambda: submit(
                batch_client, batch_env, "n-to-n", arrayProperties={"size": 2}, dependsOn=[{"type": "N_TO_N"}]
            )
        )["Code"]
        == "ClientException"
    )
    assert (
        _error(lambda: submit(batch_client, batch_env, "odd", dependsOn=[{"jobId": "x", "type": "SIDEWAYS"}]))[
            "Message"
        ]
        == "Dependency type SIDEWAYS is not one of N_TO_N | SEQUENTIAL"
    )


# -- ListJobs ---------------------------------------------------------------------------------------------------
def test_list_jobs_most_recent_first_one_filter_one_scope(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.pause()
    ids = [submit(batch_client, batch_env, f"order-{i}") for i in range(3)]
    listed = batch_client.list_jobs(jobQueue=batch_env.queue, jobStatus="SUBMITTED")["jobSummaryList"]
    # AWS: "The results are sorted by the createdAt field, with the most recent jobs being first."
    assert [j["jobId"] for j in listed] == ids[::-1]
    # AWS: "Only one filter can be used at a time."
    two = [{"name": "JOB_NAME", "values": ["order-*"]}, {"name": "AFTER_CREATED_AT", "values": ["0"]}]
    assert _error(lambda: batch_client.list_jobs(jobQueue=batch_env.queue, filters=two))["Message"] == (
        "Only one filter can be used at a time; 2 given"
    )
    # AWS ListJobs: "You must specify only one of the following items: A job queue ID to return a list of jobs
    # in that job queue; A multi-node parallel job ID to return a list of nodes for that job; An array job ID to
    # return a list of the children for that job"
    assert _error(lambda: batch_client.list_jobs(jobQueue=batch_env.queue, arrayJobId=ids[0]))["Message"] == (
        "Exactly one of jobQueue, arrayJobId or multiNodeJobId must be specified; got jobQueue, arrayJobId"
    )
    assert _error(lambda: batch_client.list_jobs())["Code"] == "ClientException"


def test_list_jobs_filters_do_not_apply_to_array_children(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"kids": 60})
    array = submit(batch_client, batch_env, "kids", arrayProperties={"size": 2})
    wait_until(batch_client, array, lambda j: j["arrayProperties"]["statusSummary"]["RUNNING"] == 2)
    # AWS: "The filter doesn't apply to child jobs in an array or multi-node parallel (MNP) jobs." A filter that
    # matches nothing changes nothing here; the children are listed by jobStatus (RUNNING by default).
    listed = batch_client.list_jobs(arrayJobId=array, filters=[{"name": "JOB_NAME", "values": ["nothing*"]}])
    assert [j["jobId"] for j in listed["jobSummaryList"]] == [f"{array}:0", f"{array}:1"]


# -- SubmitJob validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ({"attempts": 0}, "retryStrategy.attempts must be between 1 and 10, got 0"),
        ({"attempts": 11}, "retryStrategy.attempts must be between 1 and 10, got 11"),
        (
            {"evaluateOnExit": [{"onExitCode": "1", "action": "RETRY"}]},
            "retryStrategy.evaluateOnExit requires retryStrategy.attempts",
        ),
        (
            {"attempts": 2, "evaluateOnExit": [{"onExitCode": str(i), "action": "RETRY"} for i in range(6)]},
            "retryStrategy.evaluateOnExit allows at most 5 rules, got 6",
        ),
    ],
)
def test_retry_strategy_limits(batch_client: Any, batch_env: BatchEnv, strategy: dict[str, Any], message: str) -> None:
    # AWS RetryStrategy: "You can specify between 1 and 10 attempts."; evaluateOnExit: "You can specify up to 5
    # configuration objects."
    error = _error(lambda: submit(batch_client, batch_env, "retry", retryStrategy=strategy))
    assert (error["Code"], error["Message"]) == ("ClientException", message)


def test_at_most_fifty_tags(batch_client: Any, batch_env: BatchEnv) -> None:
    # AWS SubmitJob tags: "Maximum number of 50 items."
    error = _error(lambda: submit(batch_client, batch_env, "tagged", tags={f"k{i}": "v" for i in range(51)}))
    assert error["Code"] == "ValidationError"
    assert "Member must have length less than or equal to 50" in error["Message"]
    assert describe(batch_client, submit(batch_client, batch_env, "tagged", tags={f"k{i}": "v" for i in range(50)}))


def test_attempt_duration_of_at_least_sixty_seconds(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    # AWS JobTimeout: "The minimum value for the timeout is 60 seconds."
    error = _error(lambda: submit(batch_client, batch_env, "short", timeout={"attemptDurationSeconds": 59}))
    assert error["Message"] == "timeout.attemptDurationSeconds must be at least 60 seconds, got 59"
    assert describe(
        batch_client, submit(batch_client, batch_env, "long-enough", timeout={"attemptDurationSeconds": 60})
    )["timeout"] == {"attemptDurationSeconds": 60}
    batch_control.set_durations(min_timeout=1)  # the explicit emulator setting a test opts into
    assert submit(batch_client, batch_env, "short", timeout={"attemptDurationSeconds": 1})


# -- attempts and timestamps ------------------------------------------------------------------------------------
def test_log_stream_name_appears_once_an_attempt_runs(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    batch_control.set_durations(by_name={"streamed": 60}, queue=0.2)
    job_id = submit(batch_client, batch_env, "streamed")
    # AWS ContainerDetail.logStreamName: "Each container attempt receives a log stream name when they reach the
    # RUNNING status."
    assert "logStreamName" not in describe(batch_client, job_id)["container"]
    running = wait_status(batch_client, job_id, "RUNNING")
    assert running["container"]["logStreamName"].startswith(f"{batch_env.definition}/default/")


def test_array_children_are_created_when_spawned_and_a_parent_failed_by_dependency_has_a_reason(
    batch_client: Any,
    batch_env: BatchEnv,
    batch_control: Any,
) -> None:
    batch_control.set_durations(by_name={"slow-fail": 0.3})
    batch_control.fail("slow-fail")
    gate = submit(batch_client, batch_env, "slow-fail")
    array = submit(batch_client, batch_env, "gated", arrayProperties={"size": 2}, dependsOn=[{"jobId": gate}])
    parent = wait_status(batch_client, array, "FAILED")
    assert parent["statusReason"] == "Dependent Job failed"
    assert "stoppedAt" not in parent  # nothing of it ran
    child = describe(batch_client, f"{array}:1")
    assert child["statusReason"] == "Dependent Job failed"
    assert child["createdAt"] >= parent["createdAt"]
    assert "stoppedAt" not in child
    assert "startedAt" not in child


def test_child_created_at_is_its_spawn_time(batch_client: Any, batch_env: BatchEnv, batch_control: Any) -> None:
    batch_control.set_durations(by_name={"opener": 0.3})
    gate = submit(batch_client, batch_env, "opener")
    array = submit(batch_client, batch_env, "spawned", arrayProperties={"size": 2}, dependsOn=[{"jobId": gate}])
    time.sleep(0.1)
    parent = wait_status(batch_client, array, "SUCCEEDED")
    child = describe(batch_client, f"{array}:0")
    assert parent["createdAt"] < child["createdAt"] <= child["startedAt"]


def test_eks_properties_pass_through_with_overrides(batch_client: Any, batch_env: BatchEnv) -> None:
    batch_client.register_job_definition(
        jobDefinitionName="eks-def",
        type="container",
        eksProperties={
            "podProperties": {
                "containers": [
                    {
                        "image": "python:3.12",
                        "command": ["sleep", "1"],
                        "env": [{"name": "A", "value": "def"}],
                    }
                ]
            }
        },
    )
    job_id = batch_client.submit_job(
        jobName="eks",
        jobQueue=batch_env.queue,
        jobDefinition="eks-def",
        eksPropertiesOverride={
            "podProperties": {"containers": [{"command": ["python", "run.py"], "env": [{"name": "B", "value": "job"}]}]}
        },
    )["jobId"]
    job = describe(batch_client, job_id)
    assert job["eksProperties"] == {
        "podProperties": {
            "containers": [
                {
                    "image": "python:3.12",
                    "command": ["python", "run.py"],
                    "env": [{"name": "A", "value": "def"}, {"name": "B", "value": "job"}],
                }
            ]
        }
    }
    assert "container" not in job


# -- retention ----------------------------------------------------------------------------------------------------
def test_finished_jobs_are_forgotten_after_the_retention(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # AWS: finished jobs are "persisted in AWS Batch for at least 7 days"; afterwards DescribeJobs answers nothing.
    batch_control.set_durations(by_name={"lasting": 60})
    batch_control.retention(0.3)
    done = submit(batch_client, batch_env, "brief")
    running = submit(batch_client, batch_env, "lasting")
    wait_status(batch_client, done, "SUCCEEDED")
    time.sleep(0.4)
    assert [j["jobId"] for j in batch_client.describe_jobs(jobs=[done, running])["jobs"]] == [running]
    assert batch_client.list_jobs(jobQueue=batch_env.queue, jobStatus="SUCCEEDED")["jobSummaryList"] == []
    assert (
        "does not exist"
        in _error(lambda: submit(batch_client, batch_env, "late", dependsOn=[{"jobId": done}]))["Message"]
    )
