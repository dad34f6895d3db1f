"""`confluence-submit run` against the Batch emulator: the jobs on the server are exactly the plan, the CSV says
so too, and a submission refused midway stops every job the run had already submitted."""

from __future__ import annotations

import csv
import re
import signal
import time
from pathlib import Path
from typing import Any

from confluence_runtime.planning.plan import build_plan

ROOT = Path(__file__).resolve().parents[2]
RUN = "20261125T120000-beef"


def server_jobs(client: Any, queues: tuple[str, ...], run_id: str) -> dict[str, dict[str, Any]]:
    """Every job of the run the server knows, found by name in each queue (as an operator without the CSV would)."""
    ids = []
    for queue in queues:
        pages = client.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{run_id}_*"]}]
        )
        ids += [job["jobId"] for page in pages for job in page["jobSummaryList"]]
    jobs = [j for start in range(0, len(ids), 100) for j in client.describe_jobs(jobs=ids[start : start + 100])["jobs"]]
    return {job["jobName"]: job for job in jobs}


def test_run_submits_exactly_the_plan(cli: Any, provisioned: Any, batch_client: Any, tmp_path: Path) -> None:
    # GIVEN the shipped workflow, deployed (queues and job definitions exist)
    config = provisioned(ROOT / "confluence.yaml")
    plan = build_plan(config, RUN)
    # WHEN an operator runs it
    result = cli("run", "-c", str(ROOT / "confluence.yaml"), "--run-id", RUN, "-s", "sub.csv", "--log-file", "c.log")
    assert result.returncode == 0, result.stderr
    assert f"run {RUN}: submitting 18 jobs (13 stages)" in result.stderr
    assert result.stdout == (
        f"confluence-submit status -c {ROOT / 'confluence.yaml'} -s sub.csv --run-id {RUN} --watch "
        f"--endpoint-url {cli.endpoint_url}\n"
    )

    # THEN the server holds exactly the planned jobs, with the planned properties and edges
    jobs = server_jobs(batch_client, config.job_queues, RUN)
    assert sorted(jobs) == sorted(s.name for s in plan.submissions)
    id_to_name = {job["jobId"]: name for name, job in jobs.items()}
    for submission in plan.submissions:
        job = jobs[submission.name]
        assert job["jobQueue"].endswith(f":job-queue/{submission.job_queue}")
        assert f":job-definition/{submission.job_definition}:" in job["jobDefinition"]
        assert job.get("arrayProperties", {}).get("size", 0) == submission.array_size
        assert job["container"]["command"] == list(submission.command)
        environment = {e["name"]: e["value"] for e in job["container"]["environment"]}
        assert dict(submission.environment).items() <= environment.items()
        assert job["tags"] == dict(submission.tags)
        assert job["propagateTags"] is True
        assert [id_to_name[d["jobId"]] for d in job.get("dependsOn", [])] == [d.name for d in submission.depends_on]
        assert job["retryStrategy"]["attempts"] == submission.retry_attempts

    # AND the CSV has one row per job, original columns first, each after the jobs it depends on
    with (tmp_path / "sub.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["stage"], r["algorithm"], r["job_name"], r["job_id"]) for r in rows) == sorted(
        (s.stage, s.module, s.name, jobs[s.name]["jobId"]) for s in plan.submissions
    )
    position = {r["job_name"]: i for i, r in enumerate(rows)}
    for submission in plan.submissions:
        assert all(position[d.name] < position[submission.name] for d in submission.depends_on)
    assert rows[6]["depends_on"] == jobs[f"{RUN}_priors_priors_0"]["jobId"]
    assert {r["run_id"] for r in rows} == {RUN}
    assert {r["plan_digest"] for r in rows} == {plan.digest}
    assert rows[2]["array_size"] == "214"
    # (the provisioned environments are managed, as deployed: the pre-flight may first warn that the emulator's
    # Service Quotas cannot tell the Fargate quotas)
    log = [line for line in (tmp_path / "c.log").read_text().splitlines() if " : INFO : " in line]
    assert log[0].endswith(f" : INFO : run {RUN}: 18 submissions from {ROOT / 'confluence.yaml'}")


FAILING = """
stages:
  a:
    m: {array_size: 4}
  b:
    n: {array_size: 4}
    o: {}
  c:
    p: {job_queue: "{prefix}-missing"}
"""


def test_a_refused_submission_stops_every_job_already_submitted(
    cli: Any, provisioned: Any, batch_client: Any, batch_control: Any, tmp_path: Path
) -> None:
    # GIVEN jobs that keep running for a while, and a third stage whose queue was never deployed
    batch_control.set_durations(default=60)
    config = provisioned(FAILING, tmp=tmp_path, skip_queues=("confluence-dev-missing",))
    # WHEN the run is started without the pre-flight check, so AWS itself refuses the third stage midway
    result = cli("run", "-c", config.source, "--run-id", RUN, "-s", "sub.csv", "--no-preflight")
    # THEN it fails, and every job it had submitted, in every earlier stage, was stopped
    assert result.returncode == 1
    assert f"submitting {RUN}_c_p_0 failed: ClientException:" in result.stderr
    stopped = re.search(r"cancelled (\d+), terminated (\d+), already finished 0\n", result.stderr)
    assert stopped and int(stopped[1]) + int(stopped[2]) == 3
    with (tmp_path / "sub.csv").open() as f:
        ids = [r["job_id"] for r in csv.DictReader(f)]
    assert len(ids) == 3  # a_m_0, b_n_0, b_o_0: nothing recorded is lost
    jobs = batch_client.describe_jobs(jobs=ids)["jobs"]
    assert {j["status"] for j in jobs} == {"FAILED"}
    reasons = {j["jobName"]: j.get("statusReason") for j in jobs}
    # The first stage's job was stopped by us; its dependents may fail first through it, as on AWS.
    assert reasons[f"{RUN}_a_m_0"] == f"Confluence run {RUN} stopped: submitting {RUN}_c_p_0 failed"


def test_preflight_refuses_before_submitting_anything(cli: Any, provisioned: Any, tmp_path: Path) -> None:
    config = provisioned(FAILING, tmp=tmp_path, skip_queues=("confluence-dev-missing",))
    result = cli("run", "-c", config.source, "--run-id", RUN, "-s", "sub.csv")
    assert result.returncode == 2
    assert "job queues not found: confluence-dev-missing (nothing was submitted)" in result.stderr
    assert not (tmp_path / "sub.csv").exists()


def test_keep_leaves_jobs_for_resume(cli: Any, provisioned: Any, batch_client: Any, tmp_path: Path) -> None:
    config = provisioned(FAILING, tmp=tmp_path, skip_queues=("confluence-dev-missing",))
    result = cli("run", "-c", config.source, "--run-id", RUN, "-s", "sub.csv", "--no-preflight", "--on-failure", "keep")
    assert result.returncode == 1
    assert f"confluence-submit resume -c {config.source} -s sub.csv --run-id {RUN}" in result.stderr
    with (tmp_path / "sub.csv").open() as f:
        ids = [r["job_id"] for r in csv.DictReader(f)]
    reasons = {j.get("statusReason", "") for j in batch_client.describe_jobs(jobs=ids)["jobs"]}
    assert not any("stopped" in r for r in reasons)


def test_plan_needs_no_aws(cli: Any) -> None:
    result = cli("plan", "-c", str(ROOT / "confluence.yaml"), "--format", "json", endpoint=False)
    assert result.returncode == 0
    assert '"submit_calls": 18' in result.stdout


def test_bad_config_exits_2_and_writes_nothing(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("stages:\n  a:\n    m: {array_size: -1}\n")
    result = cli("run", "-c", "bad.yaml", "-s", "sub.csv")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: 1 problem in bad.yaml:\n"
        "  - bad.yaml:3: stages.a.m.array_size: expected a whole number from 0 to 1,000,000 (0 or 1 = a plain job), got -1 (int)"
    )
    assert not (tmp_path / "sub.csv").exists()


def test_ctrl_c_records_every_accepted_job_and_says_how_to_go_on(
    cli: Any, provisioned: Any, batch_client: Any, tmp_path: Path
) -> None:
    config = provisioned("stages: {a: {m: {num_jobs: 6}}, b: {n: {}}}\n", tmp=tmp_path)
    process = cli.popen("run", "-c", config.source, "--run-id", RUN, "-s", "sub.csv", "--rate", "2", "--workers", "2")
    csv_path = tmp_path / "sub.csv"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(csv_path.read_text().splitlines() if csv_path.exists() else []) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"confluence-submit resume -c {config.source} -s sub.csv --run-id {RUN}" in stderr
    with csv_path.open() as f:
        recorded = {r["job_name"] for r in csv.DictReader(f)}
    on_server = set(server_jobs(batch_client, config.job_queues, RUN))
    assert recorded == on_server  # nothing AWS accepted is missing from the record
    assert 1 <= len(recorded) < 7
