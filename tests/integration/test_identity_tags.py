"""Every job a run ever submits carries every identity tag: the first run, resume, and retry-failed, fan-in
barriers included. The deployed submitter policy allows SubmitJob only with the venue tag in the request and
Cancel/TerminateJob only on jobs carrying it; the emulator evaluates no IAM, so the tags themselves are checked."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from confluence_runtime import names
from confluence_runtime.config import load_config
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.planning.shaping import map_budget

RUN = "tg"
# Stage b waits on 21 arrays: the plan puts a fan-in barrier before it. Stage c's queue is deployed late, so
# the run stops there and resume submits it.
CONFIG = """\
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
prefix: tg
stages:
  a:
    m:
      num_jobs: 21
      array_size: 12
      environment: {{PAD: "{pad}"}}
  b:
    n: {{}}
  c:
    o: {{job_queue: "{{prefix}}-late"}}
"""
# Index maps of at most this many characters: each job's 6 failed indices (every other one, which ranges do not
# shorten: "0,2,4,6,8" and "10") become two compact retries, so the rerun of n waits on 42 new jobs and
# retry-failed needs fan-in barriers of its own (where the tag once went missing).
INDEX_MAP_BUDGET = 10


def padded_config(tmp_path: Path) -> str:
    """The config, with PAD long enough that a compact retry's index map may take INDEX_MAP_BUDGET characters."""
    path = tmp_path / "probe.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path, pad=""))
    first = build_plan(load_config(path), RUN).submissions[0]
    # Each character of PAD takes one from the index maps' budget.
    pad = "x" * (map_budget(first.command, dict(first.environment)) - INDEX_MAP_BUDGET)
    return CONFIG.format(tmp=tmp_path, pad=pad)


def server_jobs(batch_client: Any, queues: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every job of the run the server holds, found by name in each queue and described."""
    ids = [
        job["jobId"]
        for queue in queues
        for page in batch_client.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{RUN}_*"]}]
        )
        for job in page["jobSummaryList"]
    ]
    return [
        j
        for start in range(0, len(ids), 100)
        for j in batch_client.describe_jobs(jobs=ids[start : start + 100])["jobs"]
    ]


def wait_finished(batch_client: Any, queues: tuple[str, ...], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(j["status"] not in ("SUCCEEDED", "FAILED") for j in server_jobs(batch_client, queues)):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)


def test_run_resume_and_retry_failed_tag_every_job_with_its_venue_and_identity(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path = tmp_path / "confluence.yaml"
    config_path.write_text(padded_config(tmp_path))
    config = provisioned(config_path, skip_queues=("tg-late",))
    batch_control.set_durations(default=0.05, queue=0.01)
    for glob in (f"{RUN}_a_m_?", f"{RUN}_a_m_??"):  # the plan's arrays only, not their retries
        batch_control.fail(glob, indices=range(0, 12, 2), exit_code=3)

    # GIVEN a run stopped where a queue is missing, then resumed once the queue exists
    first = cli("run", "-c", str(config_path), "--run-id", RUN, "--no-preflight", "--on-failure", "keep")
    assert first.returncode == 1
    assert f"submitting {RUN}_c_o_0 failed" in first.stderr
    environment = batch_client.describe_compute_environments()["computeEnvironments"][0]["computeEnvironmentArn"]
    batch_client.create_job_queue(
        jobQueueName="tg-late",
        state="ENABLED",
        priority=10,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
    )
    resumed = cli("resume", "-c", str(config_path), "--run-id", RUN)
    assert resumed.returncode == 0, resumed.stderr
    wait_finished(batch_client, config.job_queues)

    # WHEN retry-failed resubmits six failed indices of each of the 21 arrays and reruns what waited on them
    retried = cli("retry-failed", "-c", str(config_path), "--run-id", RUN)
    assert retried.returncode == 0, retried.stderr

    # THEN every job on the server carries the venue, run, stage and module tags, and its own name
    jobs = server_jobs(batch_client, config.job_queues)
    kinds = {names.parse_name(j["jobName"]).kind for j in jobs}
    assert kinds == {"plan", "rerun", "retry", "retry-barrier"}
    assert f"{RUN}_b_barrier-0" in {j["jobName"] for j in jobs}  # the plan's own fan-in barrier
    assert f"{RUN}_c_o_0" in {j["jobName"] for j in jobs}  # submitted by resume
    for job in jobs:
        tags = job["tags"]
        identity = {key: tags.get(key) for key in names.IDENTITY_TAGS}
        stage = job["jobName"].split("_")[1]
        assert identity == {
            names.TAG_PREFIX: "tg",
            names.TAG_RUN: RUN,
            names.TAG_STAGE: stage,
            names.TAG_MODULE: identity[names.TAG_MODULE] or "missing",
        }, job["jobName"]
        assert tags[names.TAG_JOB] == job["jobName"]
    retry_barriers = [j for j in jobs if names.parse_name(j["jobName"]).kind == "retry-barrier"]
    assert {j["tags"][names.TAG_MODULE] for j in retry_barriers} == {names.BARRIER}
    assert {j["tags"][names.TAG_GENERATION] for j in retry_barriers} == {"1"}
    # AND every one of them is in the record
    with (tmp_path / "submission.csv").open(newline="") as f:
        recorded = sorted(row["job_name"] for row in csv.DictReader(f))
    assert recorded == sorted(j["jobName"] for j in jobs)
