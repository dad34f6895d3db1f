"""What modules need, in the Batch emulator: an EC2 Spot module submitted to its own queue with its EC2 job
definition, the venue's secrets, and ``efs ls``/``efs sync`` as one-off Batch jobs whose output is printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from confluence_runtime.planning.plan import build_plan

RUN = "20261126T020000-e2c2"
CONFIG = """\
prefix: t
stages:
  input:
    input:
      array_size: 3
      secrets: {HYDROCRON_API_KEY: hydrocron-api-key}
      mounts: {input: /mnt/data/input}
  flpe:
    momma:
      array_size: 3
      compute: ec2_spot
      vcpus: 2
      memory: 4096
      mounts: {"flpe/momma": /mnt/data/output, input: "/mnt/data/input:ro"}
    hivdi:
      array_size: 3
      mounts: {flpe: /mnt/data/flpe}
"""


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, region_name="us-west-2", endpoint_url=endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def jobs_in(batch_client: Any, queue: str) -> list[dict[str, Any]]:
    summaries = batch_client.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["*"]}])
    ids = [j["jobId"] for j in summaries["jobSummaryList"]]
    return batch_client.describe_jobs(jobs=ids)["jobs"] if ids else []


def test_an_ec2_spot_module_runs_in_its_own_queue(
    cli: Any, provisioned: Any, batch_client: Any, batch_control: Any, tmp_path: Path
) -> None:
    # GIVEN a venue provisioned for a workflow with one EC2 Spot module next to Fargate modules
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG)
    config = provisioned(path)
    batch_control.set_durations(default=0.05, queue=0.01)
    # THEN its queue tries EC2 Spot first, then EC2 On-Demand; its definition is an EC2 one
    (queue,) = batch_client.describe_job_queues(jobQueues=["t-flpe-ec2-spot"])["jobQueues"]
    order = sorted(queue["computeEnvironmentOrder"], key=lambda o: o["order"])
    assert [o["computeEnvironment"].rsplit("/", 1)[-1] for o in order] == ["t-ec2-spot", "t-ec2"]
    (definition,) = batch_client.describe_job_definitions(jobDefinitionName="t-momma")["jobDefinitions"]
    assert definition["platformCapabilities"] == ["EC2"]
    # AND the venue's secret exists, created empty for the operator to fill
    secrets = client("secretsmanager", batch_client.meta.endpoint_url).list_secrets()["SecretList"]
    assert [s["Name"] for s in secrets] == ["/t/hydrocron-api-key"]

    # WHEN the workflow runs
    result = cli("run", "-c", str(path), "--run-id", RUN, "-s", "sub.csv")
    assert result.returncode == 0, result.stderr

    # THEN momma went to the EC2 Spot queue with its EC2 definition, hivdi to the stage's Fargate queue
    plan = build_plan(config, RUN)
    assert {s.name: s.job_queue for s in plan.submissions} == {
        f"{RUN}_input_input_0": "t-input",
        f"{RUN}_flpe_momma_0": "t-flpe-ec2-spot",
        f"{RUN}_flpe_hivdi_0": "t-flpe",
    }
    (momma,) = jobs_in(batch_client, "t-flpe-ec2-spot")
    assert momma["jobName"] == f"{RUN}_flpe_momma_0"
    assert ":job-definition/t-momma:" in momma["jobDefinition"]
    assert [j["jobName"] for j in jobs_in(batch_client, "t-flpe")] == [f"{RUN}_flpe_hivdi_0"]
    status = cli("status", "-c", str(path), "-s", "sub.csv", "--watch", "--format", "json", timeout=120)
    assert json.loads(status.stdout)["state"] == "succeeded", status.stderr


def test_efs_ls_runs_a_one_off_job_and_prints_its_output(
    cli: Any, provisioned: Any, batch_client: Any, batch_control: Any, tmp_path: Path
) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG)
    provisioned(path)
    batch_control.set_durations(default=0.05, queue=0.01)
    # WHEN an operator lists a directory of an area
    result = cli("efs", "ls", "input/sword/", "-c", str(path))
    # THEN a job ran in the efs queue with the ls definition, the area's path as its argument
    assert result.returncode == 0, result.stderr
    (job,) = jobs_in(batch_client, "t-efs")
    assert ":job-definition/t-efs-ls:" in job["jobDefinition"]
    assert job["container"]["command"] == ["ls", "-la", "/mnt/efs/input/sword"]
    assert job["tags"] == {"confluence:prefix": "t", "confluence:tool": "efs-ls", "job": job["jobName"]}
    assert job["status"] == "SUCCEEDED"
    assert f"ls input/sword: job {job['jobName']} in queue t-efs (definition t-efs-ls)" in result.stderr
    assert f"job {job['jobId']} SUCCEEDED" in result.stderr
    # AND it printed exactly what CloudWatch Logs holds for the attempt's stream (the emulator's container lines)
    stream = job["container"]["logStreamName"]
    events = client("logs", batch_client.meta.endpoint_url).get_log_events(
        logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True
    )["events"]
    assert (
        result.stdout.splitlines()
        == [e["message"] for e in events]
        == [
            f"batch emulator: job {job['jobName']} ({job['jobId']}) attempt 1 started",
            "command: ls -la /mnt/efs/input/sword",
            "batch emulator: exit code 0",
        ]
    )


def test_efs_sync_copies_between_s3_and_an_area(
    cli: Any, provisioned: Any, batch_client: Any, batch_control: Any, tmp_path: Path
) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG)
    provisioned(path)
    batch_control.set_durations(default=0.05, queue=0.01)
    result = cli("efs", "sync", "s3://t-sos/sword/v16", "input/sword", "-c", str(path))
    assert result.returncode == 0, result.stderr
    (job,) = jobs_in(batch_client, "t-efs")
    assert ":job-definition/t-efs-sync:" in job["jobDefinition"]
    assert job["container"]["command"] == [
        "s3",
        "sync",
        "--no-progress",
        "s3://t-sos/sword/v16",
        "/mnt/efs/input/sword",
    ]
    # A failed job fails the command, with AWS's reason
    batch_control.fail("efs-sync-*", exit_code=2, reason="sync failed")
    result = cli("efs", "sync", "flpe", "s3://t-json/flpe", "-c", str(path))
    assert result.returncode == 1
    assert "FAILED" in result.stderr


def test_efs_refuses_what_it_cannot_do_before_submitting(cli: Any, provisioned: Any, tmp_path: Path) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG)
    provisioned(path)
    result = cli("efs", "sync", "input/a", "flpe/b", "-c", str(path))
    assert result.returncode == 2
    assert "efs sync copies between S3 and an area: one of 'input/a' and 'flpe/b' must be s3://BUCKET/KEY" in (
        result.stderr
    )
    result = cli("efs", "ls", "coastalq/x", "-c", str(path))
    assert result.returncode == 2
    assert (
        "'coastalq/x': 'coastalq' is not an area of this venue (its areas: input, flpe, moi, diagnostics, "
        "offline, validation, output, logs)" in result.stderr
    )
    result = cli("efs", "ls", "input/../etc", "-c", str(path))
    assert "a path inside an area may not contain '.' or '..'" in result.stderr
