"""Why a job waits, on the emulator's capacity model: each cause ``status`` names with its fix (a job larger than
every compute environment, a 6-vCPU Fargate quota, disabled compute environments, an exhausted consumable
resource), ``run``'s pre-flight refusing the job that can never fit, and ``resources`` (use, total, set).

Children are held RUNNING by the emulator (``batch_control.hold``) so the counts never race its clock."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONFIG = """\
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
prefix: wait
infrastructure:
  max_vcpus: {max_vcpus}
  consumable_resources:
    hydrocron: {{type: replenishable, total: 3}}
stages:
  input:
    input: {{array_size: {size}, vcpus: {vcpus}, memory: {memory}{extra}}}
"""


def write(
    tmp: Path, *, size: int = 10, vcpus: float = 1, memory: int = 2048, max_vcpus: int = 256, extra: str = ""
) -> Path:
    path = tmp / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp, size=size, vcpus=vcpus, memory=memory, max_vcpus=max_vcpus, extra=extra))
    return path


def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def children(batch_client: Any, status: str) -> int:
    parents = batch_client.list_jobs(jobQueue="wait-input", filters=[{"name": "JOB_NAME", "values": ["w*"]}])
    total = 0
    for parent in parents["jobSummaryList"]:
        listed = batch_client.list_jobs(arrayJobId=parent["jobId"], jobStatus=status)["jobSummaryList"]
        total += len(listed)
    return total


def why(cli: Any, path: Path, run_id: str) -> dict[str, Any]:
    shown = cli("status", "-c", str(path), "--run-id", run_id, "--why", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    (waiting,) = json.loads(shown.stdout)["waiting"]
    return waiting


def test_a_job_larger_than_every_compute_environment(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN compute environments of 4 vCPUs and a module of 8
    path = write(tmp_path, size=0, vcpus=8, memory=16384, max_vcpus=4)
    provisioned(path)
    # THEN run's pre-flight refuses it: it would wait in RUNNABLE for ever
    refused = cli("run", "-c", str(path), "--run-id", "w1")
    assert refused.returncode == 2, refused.stderr
    assert "needs 8 vCPUs and 16384 MiB; the compute environments of queue wait-input allow at most 4 vCPUs" in (
        " ".join(refused.stderr.split())
    )
    # AND submitted anyway, AWS blocks the queue with its documented reason, and status names it with the fix
    assert cli("run", "-c", str(path), "--run-id", "w1", "--no-preflight").returncode == 0
    (job,) = batch_client.list_jobs(jobQueue="wait-input", jobStatus="RUNNABLE")["jobSummaryList"] or [None]
    until(lambda: batch_client.describe_jobs(jobs=[job["jobId"]])["jobs"][0].get("statusReason"))
    waiting = why(cli, path, "w1")
    assert waiting["cause"] == "never fits"
    assert waiting["detail"].startswith("it needs 8 vCPUs, the compute environments allow at most 4 (")
    assert "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE" in waiting["status_reason"]
    assert "stages.input.input.vcpus/memory" in waiting["fix"]
    assert waiting["time_limit"].startswith("the queue's time limit action will CANCEL it after 1.0 h in RUNNABLE")


def test_a_six_vcpu_fargate_quota(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN a new account's quotas (6 vCPUs On-Demand, 6 Spot) and 20 children of 1 vCPU held while they run
    path = write(tmp_path, size=20)
    provisioned(path)
    batch_control.quota(fargate=6, fargate_spot=6)
    batch_control.hold("RUNNING", name_glob="w2_*")
    assert cli("run", "-c", str(path), "--run-id", "w2").returncode == 0
    # THEN 12 run (6 on each purchase option) and 8 wait
    until(lambda: children(batch_client, "RUNNING") == 12)
    assert children(batch_client, "RUNNABLE") == 8
    # AND status marks them and names the quota
    shown = cli("status", "-c", str(path), "--run-id", "w2", "--waiting-after", "0")
    text = " ".join(shown.stdout.split())
    assert "input.input: 8 waiting in RUNNABLE for" in text
    assert "Fargate vCPU quota: the run holds 12" in text
    waiting = why(cli, path, "w2")
    assert (waiting["cause"], waiting["children"]) == ("Fargate vCPU quota", 8)
    assert "L-36FBB829" in waiting["fix"] or "L-36FBB829" in waiting["detail"]


def test_disabled_compute_environments(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    path = write(tmp_path, size=3)
    provisioned(path)
    for name in ("wait-fargate-spot", "wait-fargate"):
        batch_client.update_compute_environment(computeEnvironment=name, state="DISABLED")
    assert cli("run", "-c", str(path), "--run-id", "w3", "--no-preflight").returncode == 0
    until(lambda: children(batch_client, "RUNNABLE") == 3)
    waiting = why(cli, path, "w3")
    assert waiting["cause"] == "compute environments disabled"
    assert (
        "aws batch update-compute-environment --compute-environment wait-fargate-spot --state ENABLED"
        in (waiting["fix"])
    )


def test_an_exhausted_consumable_resource_and_resources_set(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN 10 children that each hold 1 of hydrocron's 3 units while they run (held RUNNING)
    path = write(tmp_path, size=10, extra=", consumes: {hydrocron: 1}")
    provisioned(path)
    batch_control.hold("RUNNING", name_glob="w4_*")
    assert cli("run", "-c", str(path), "--run-id", "w4").returncode == 0
    # THEN never more than 3 run: 7 wait for units
    until(lambda: children(batch_client, "RUNNING") == 3)
    time.sleep(0.5)
    assert (children(batch_client, "RUNNING"), children(batch_client, "RUNNABLE")) == (3, 7)
    waiting = why(cli, path, "w4")
    assert waiting["cause"] == "consumable resource"
    assert waiting["detail"] == "each child needs 1 of consumable resource hydrocron: 3 of 3 in use, none left"
    # AND its fix, pasted as printed in another directory (it names the yaml and the endpoint), raises the total
    pasted = shlex.split(waiting["fix"].split(": ", 1)[1])
    assert pasted == [
        "confluence-submit", "resources", "set", "hydrocron", "4", "-c", str(path), "--endpoint-url", cli.endpoint_url,
    ]  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = str(Path(sys.executable).with_name("confluence-submit"))
    done = subprocess.run(
        [script, *pasted[1:]], cwd=elsewhere, env=cli.env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    until(lambda: children(batch_client, "RUNNING") == 4)
    # AND resources lists use and total
    listed = json.loads(cli("resources", "-c", str(path), "--format", "json").stdout)
    assert [(r["aws_name"], r["in_use"], r["total"], r["available"]) for r in listed] == [("wait-hydrocron", 4, 4, 0)]
    # WHEN the total is raised to 5 during the run, THEN 5 run
    raised = cli("resources", "-c", str(path), "set", "hydrocron", "5")
    assert raised.returncode == 0, raised.stderr
    assert "wait-hydrocron: total 4 -> 5 (4 in use)" in " ".join(raised.stdout.split())
    until(lambda: children(batch_client, "RUNNING") == 5)
    time.sleep(0.5)
    assert children(batch_client, "RUNNING") == 5
    batch_control.release()


def test_status_says_when_the_run_came_from_another_yaml(
    cli: Any, provisioned: Any, batch_control: Any, tmp_path: Path
) -> None:
    # GIVEN a run started with -c from its own folder
    path = write(tmp_path, size=2)
    provisioned(path)
    batch_control.hold("RUNNING", name_glob="w5_*")
    assert cli("run", "-c", str(path), "--run-id", "w5").returncode == 0
    # WHEN status is asked without -c in a folder whose confluence.yaml is another workflow
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "confluence.yaml").write_text(path.read_text().replace("max_vcpus: 256", "max_vcpus: 64"))
    there = type(cli)(endpoint_url=cli.endpoint_url, cwd=elsewhere)
    shown = there("status", "-s", str(tmp_path / "submission.csv"), "--run-id", "w5")
    # THEN it still shows the run, and says which yaml the run came from, with the option that reads it
    assert shown.returncode == 0, shown.stderr
    said = " ".join(shown.stderr.split())
    assert f"note: run w5 was started from {path} as it was then, not confluence.yaml as it is now" in said
    assert f"pass -c {path}" in said
