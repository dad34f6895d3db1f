"""Memory that learns, on the Batch emulator: children killed for memory are named as such (ECS's reason), and
``retry-failed --memory x2`` retries them with twice the memory, a size Fargate offers, and they succeed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

CONFIG = """\
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
prefix: mem
stages:
  s:
    fit: {{array_size: 5, vcpus: 1, memory: 2048}}
"""


def finished(batch_client: Any, prefix: str, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = batch_client.list_jobs(jobQueue="mem-s", filters=[{"name": "JOB_NAME", "values": [f"{prefix}*"]}])
        found = jobs["jobSummaryList"]
        if found and all(j["status"] in ("SUCCEEDED", "FAILED") for j in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not finished: {[j['status'] for j in found]}")
        time.sleep(0.2)


def test_out_of_memory_children_succeed_after_retry_failed_memory_x2(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN children 1 and 3 killed for memory (exit code 137, ECS's reason) in the run's first job only
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    provisioned(path)
    batch_control.set_durations(default=0.1, queue=0.01)
    batch_control.oom("m1_s_fit_0", indices=[1, 3])
    assert cli("run", "-c", str(path), "--run-id", "m1").returncode == 0
    finished(batch_client, "m1_")
    # THEN status names them as out of memory
    shown = cli("status", "-c", str(path), "--run-id", "m1", "--format", "json")
    (failure,) = json.loads(shown.stdout)["failures"]
    assert failure["indices"] == [1, 3]
    assert "OutOfMemoryError: Container killed due to memory usage (exit code 137)" in failure["reason"]
    # WHEN retried with twice the memory
    retried = cli("retry-failed", "-c", str(path), "--run-id", "m1", "--memory", "x2")
    assert retried.returncode == 0, retried.stderr
    assert (
        "s.fit: ran out of memory; retried with 4096 MiB and 1 vCPUs (was 2048 MiB, 1 vCPUs; --memory 2x)"
        in " ".join(retried.stdout.split())
    )
    # THEN the retry asks AWS for 4096 MiB and its children succeed
    jobs = finished(batch_client, "m1_s_fit_0_retry")
    (retry,) = batch_client.describe_jobs(jobs=[j["jobId"] for j in jobs])["jobs"]
    requirements = {r["type"]: r["value"] for r in retry["container"]["resourceRequirements"]}
    assert requirements == {"VCPU": "1", "MEMORY": "4096"}
    assert retry["status"] == "SUCCEEDED"
    # AND a factor past Fargate's largest size is refused before anything is read
    refused = cli("retry-failed", "-c", str(path), "--run-id", "m1", "--memory", "x20")
    assert refused.returncode == 2
    assert "(a factor from 1.1 to 8)" in refused.stderr
