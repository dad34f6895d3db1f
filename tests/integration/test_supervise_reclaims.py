"""Spot reclaims are not failures, and memory that learns, in supervised runs on the Batch emulator.

The emulator ends an attempt the way AWS words it (confluence_runtime/attempts.py): a Fargate Spot task stopped
with "Your Spot Task was interrupted." (AWS gives two minutes' notice, then stops the task), an out-of-memory kill
with ECS's container reason "OutOfMemoryError: Container killed due to memory usage" and exit code 137. A reclaim
only reaches attempts placed on a FARGATE_SPOT (or SPOT) compute environment, as on AWS: the venue's On-Demand
queue (Fargate only) is never reclaimed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluence_runtime import attempts
from confluence_runtime.records.document import SupervisorState, read_state
from confluence_runtime.records.ledger import Ledger, LocalStore, local_root

CONFIG = """\
prefix: sp
log_file: out/confluence.log
submission_file: out/submission.csv
stages:
  s:
    tolerated_failure: "{budget}"
    m: {{array_size: {size}, vcpus: 1, memory: 2048{extra}}}
"""
QUEUES = ("sp-s", "sp-efs")


def set_up(tmp_path: Path, provisioned: Any, batch_control: Any, *, size: int, budget: str, extra: str = "") -> Path:
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(size=size, budget=budget, extra=extra))
    provisioned(path)
    batch_control.set_durations(default=0.1, queue=0.02)
    return path


def supervise(cli: Any, path: Path, run_id: str) -> Any:
    result = cli("run", "-c", str(path), "--run-id", run_id, "--supervise", "local", "--poll", "0.2", timeout=240)
    assert result.returncode == 0, result.stderr + result.stdout
    return result


def document(tmp_path: Path, run_id: str) -> SupervisorState:
    ledger = Ledger(LocalStore(local_root(tmp_path / "out/submission.csv")))
    state = read_state(lambda name: ledger.read(run_id, name))
    assert state is not None
    return state


def jobs_named(batch_client: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """Every job of the run in either queue, by name (each name once: asserted), as DescribeJobs shows it."""
    ids: dict[str, str] = {}
    for queue in QUEUES:
        for page in batch_client.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{run_id}_*"]}]
        ):
            for job in page["jobSummaryList"]:
                assert job["jobName"] not in ids, f"{job['jobName']} submitted twice"
                ids[job["jobName"]] = job["jobId"]
    described = batch_client.describe_jobs(jobs=list(ids.values()))["jobs"] if ids else []
    return {job["jobName"]: job for job in described}


def failed_children(batch_client: Any, parent: str) -> list[dict[str, Any]]:
    pages = batch_client.get_paginator("list_jobs").paginate(arrayJobId=parent, jobStatus="FAILED")
    listed = [c["jobId"] for page in pages for c in page["jobSummaryList"]]
    return batch_client.describe_jobs(jobs=listed)["jobs"] if listed else []


def test_five_percent_of_children_reclaimed_finish_succeeded_within_a_one_percent_budget(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN 200 children, a 1 % budget (2 children), and 10 of them (5 %) reclaimed by Fargate Spot
    path = set_up(tmp_path, provisioned, batch_control, size=200, budget="1%")
    run_id = "20261208T031000-recl"
    reclaimed = list(range(3, 200, 20))
    batch_control.spot_reclaim(f"{run_id}_s_m_0", indices=reclaimed)
    # WHEN the run is supervised
    supervise(cli, path, run_id)
    # THEN its first job's reclaimed children end with AWS's reason
    jobs = jobs_named(batch_client, run_id)
    first = failed_children(batch_client, jobs[f"{run_id}_s_m_0"]["jobId"])
    assert sorted(c["arrayProperties"]["index"] for c in first) == reclaimed
    assert {c["attempts"][-1]["statusReason"] for c in first} == {attempts.FARGATE_SPOT_REASON}
    # AND one retry round ran exactly them again, and they succeeded: the run succeeded, nothing counted as failed
    retry = jobs[f"{run_id}_s_m_0_retry-1"]
    assert sorted(jobs) == [f"{run_id}_s_m_0", f"{run_id}_s_m_0_retry-1"]
    assert retry["status"] == "SUCCEEDED" and retry["jobQueue"].endswith("job-queue/sp-s")
    environment = {e["name"]: e["value"] for e in retry["container"]["environment"]}
    assert [int(i) for i in environment["CONFLUENCE_INDEX_MAP"].split(",")] == reclaimed
    state = document(tmp_path, run_id)
    assert (state.state, state.reason) == ("succeeded", "every stage succeeded")
    assert state.stage_state("s").failed_map == {"m": ()}


def test_a_child_reclaimed_on_every_spot_attempt_runs_its_last_attempt_on_demand(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN child 3 reclaimed on every Spot attempt (its first job's, and every retry's); budget 0;
    # spot_reclaims_before_on_demand 2 (the default)
    path = set_up(tmp_path, provisioned, batch_control, size=6, budget="0")
    run_id = "20261208T031500-ondm"
    batch_control.spot_reclaim(f"{run_id}_s_m_0", indices=[3])
    batch_control.spot_reclaim(f"{run_id}_s_m_0_retry-*")
    # WHEN the run is supervised
    supervise(cli, path, run_id)
    # THEN the child was reclaimed in its first job and in the first retry (on Spot), and its third attempt ran
    # in the venue's Fargate On-Demand queue (the efs tool's: this venue has no queue of compute fargate), where it
    # succeeded
    jobs = jobs_named(batch_client, run_id)
    assert sorted(jobs) == [f"{run_id}_s_m_0", f"{run_id}_s_m_0_retry-1", f"{run_id}_s_m_0_retry-2"]
    first, spot, on_demand = (jobs[f"{run_id}_s_m_0{tail}"] for tail in ("", "_retry-1", "_retry-2"))
    (child,) = failed_children(batch_client, first["jobId"])
    assert child["arrayProperties"]["index"] == 3
    assert child["attempts"][-1]["statusReason"] == attempts.FARGATE_SPOT_REASON
    assert spot["jobQueue"].endswith("job-queue/sp-s")
    assert spot["status"] == "FAILED" and spot["attempts"][-1]["statusReason"] == attempts.FARGATE_SPOT_REASON
    assert on_demand["jobQueue"].endswith("job-queue/sp-efs")
    assert on_demand["status"] == "SUCCEEDED"
    # a one-child retry is a plain job told its index
    assert {e["name"]: e["value"] for e in on_demand["container"]["environment"]}["CONFLUENCE_INDEX"] == "3"
    state = document(tmp_path, run_id)
    assert state.state == "succeeded"
    assert [(p.round, p.queue) for p in state.stage_state("s").pieces] == [(0, ""), (1, ""), (2, "sp-efs")]
    # AND status counts the reclaims apart from failures
    shown = cli("status", "-c", str(path), "--run-id", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "Spot reclaims: 2 (sent again by the supervisor, not failures)" in " ".join(shown.stdout.split())


def test_reclaims_aws_retried_within_one_job_count_toward_on_demand(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN the shipped rule that retries a Fargate Spot reclaim (retries: 2) and child 2 reclaimed on both attempts
    # of its first job
    rule = ', retries: 2, retry_on: [{action: RETRY, on_status_reason: "Your Spot Task was interrupted*"}]'
    path = set_up(tmp_path, provisioned, batch_control, size=4, budget="0", extra=rule)
    run_id = "20261208T031800-awsr"
    batch_control.spot_reclaim(f"{run_id}_s_m_0", indices=[2])
    # WHEN the run is supervised
    supervise(cli, path, run_id)
    # THEN AWS ran the child twice and both attempts were reclaimed: 2 reclaims (DescribeJobs' attempts; ListJobs
    # keeps only the last reason), so the supervisor's first retry already goes On-Demand
    jobs = jobs_named(batch_client, run_id)
    (child,) = failed_children(batch_client, jobs[f"{run_id}_s_m_0"]["jobId"])
    assert [a["statusReason"] for a in child["attempts"]] == [attempts.FARGATE_SPOT_REASON] * 2
    assert sorted(jobs) == [f"{run_id}_s_m_0", f"{run_id}_s_m_0_retry-1"]
    retry = jobs[f"{run_id}_s_m_0_retry-1"]
    assert retry["jobQueue"].endswith("job-queue/sp-efs") and retry["status"] == "SUCCEEDED"
    assert document(tmp_path, run_id).state == "succeeded"


def test_a_child_killed_for_memory_succeeds_after_the_supervisors_memory_retry(
    cli: Any, provisioned: Any, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN child 1 killed for memory in the first job; budget 0; oom_retry_memory 2x
    path = set_up(tmp_path, provisioned, batch_control, size=4, budget="0", extra=", oom_retry_memory: 2x")
    run_id = "20261208T032000-oomr"
    batch_control.oom(f"{run_id}_s_m_0", indices=[1])
    # WHEN the run is supervised
    supervise(cli, path, run_id)
    # THEN the child ended with ECS's reason, went again with 4096 MiB (2x, a size Fargate offers for 1 vCPU),
    # asked through containerOverrides, and succeeded
    jobs = jobs_named(batch_client, run_id)
    (failed,) = failed_children(batch_client, jobs[f"{run_id}_s_m_0"]["jobId"])
    assert failed["attempts"][-1]["container"]["reason"] == attempts.OOM_REASON
    assert failed["attempts"][-1]["container"]["exitCode"] == 137
    retry = jobs[f"{run_id}_s_m_0_retry-1"]
    requirements = {r["type"]: r["value"] for r in retry["container"]["resourceRequirements"]}
    assert requirements == {"VCPU": "1", "MEMORY": "4096"}
    assert retry["status"] == "SUCCEEDED"
    assert document(tmp_path, run_id).state == "succeeded"
