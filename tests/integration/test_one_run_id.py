"""One run id is one run, through the real console script against the Batch emulator.

A second `run` with a run id already in use is refused before anything is submitted: at the same time on one CSV
(the first holds a lock on the run's record), or later with another CSV (AWS holds the run's jobs), or when only
the ledger or only AWS knows the run. `cancel` during `run` stops the submission and then the jobs; `status
--watch` started during `run` follows the growing record; `resume` and `retry-failed` end with the lost-reply
reconciliation `run` does.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lossy_proxy import gated_proxy, lossy_proxy
from workflow import JOBS, csv_rows, server_jobs, write_config

from confluence_runtime import names
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.ledger import local_root
from confluence_runtime.records.runlock import holder

HOLDER = r"`confluence-submit {command}` \(pid {pid} on [^ ]+, since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\)"


def server_names(batch_client: Any, config: Any, run_id: str) -> Counter[str]:
    """Names of the run's jobs the emulator holds (found by name, as an operator without the CSV would)."""
    return Counter(j["jobName"] for j in server_jobs(batch_client, config.job_queues, run_id))


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def plan_names(config: Any, run_id: str) -> Counter[str]:
    return Counter(s.name for s in build_plan(config, run_id).submissions)


# --------------------------------------------------------------------------------------------------------------
# A run id in use is refused


def test_two_runs_of_one_id_started_together_on_one_csv_submit_the_plan_once(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN two operators starting the same run id on the same CSV at the same moment
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    both = [cli.popen("run", "-c", str(config_path), "--run-id", "twin") for _ in range(2)]
    results = [(p, *p.communicate(timeout=120)) for p in both]
    # THEN one submits the whole plan and the other is refused: busy (exit 1, naming the first) while the first
    # holds the record, or already used (exit 2) once it has let go
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes in ([0, 1], [0, 2]), results
    (winner,) = [p for p, _, _ in results if p.returncode == 0]
    (refused_err,) = [e for p, _, e in results if p.returncode != 0]
    if codes == [0, 1]:
        assert re.fullmatch(
            "error: run twin is in progress: " + HOLDER.format(command="run", pid=winner.pid) + " holds its record\n"
            "hint: wait for it to end, or stop it with: confluence-submit cancel --run-id twin\n",
            refused_err,
        ), refused_err
    else:
        assert refused_err.startswith(f"error: run twin already exists: {tmp_path / 'submission.csv'} already")
    assert server_names(batch_client, config, "twin") == plan_names(config, "twin")
    assert Counter(r["job_name"] for r in csv_rows(tmp_path / "submission.csv")) == plan_names(config, "twin")


@pytest.mark.slow
def test_a_run_in_progress_holds_its_record_a_second_run_and_resume_fail_at_once_naming_it(
    cli: Any, batch_server: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run that stays submitting: its second SubmitJob is held at a gate until the test opens it
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    csv_path = tmp_path / "submission.csv"
    with gated_proxy(batch_server.url, let_through=1) as gate:
        gated = replace(cli, endpoint_url=gate.url)
        first = gated.popen("run", "-c", str(config_path), "--run-id", "busy", "--workers", "1")
        try:
            wait_for(lambda: len(csv_rows(csv_path)) >= 1)
            # WHEN the same run id is started again, resumed, or retried while it submits
            second = gated("run", "-c", str(config_path), "--run-id", "busy")
            resumed = gated("resume", "-c", str(config_path), "--run-id", "busy")
            retried = gated("retry-failed", "-c", str(config_path), "--run-id", "busy")
        finally:
            gate.open()
            _, first_err = first.communicate(timeout=120)
    # THEN each fails at once (exit 1) naming the command that holds the record, with its pid, host and start
    for refused in (second, resumed, retried):
        assert refused.returncode == 1, refused.stderr
        assert re.fullmatch(
            "error: run busy is in progress: " + HOLDER.format(command="run", pid=first.pid) + " holds its record\n"
            "hint: wait for it to end, or stop it with: confluence-submit cancel --run-id busy\n",
            refused.stderr,
        ), refused.stderr
    # AND the first run submitted every job exactly once, and let go of the record when it ended
    assert first.returncode == 0, first_err
    assert server_names(batch_client, config, "busy") == plan_names(config, "busy")
    assert holder(local_root(csv_path), "busy") is None


def test_the_same_run_id_later_with_another_csv_is_refused_because_aws_holds_its_jobs(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    assert cli("run", "-c", str(config_path), "--run-id", "once").returncode == 0
    # WHEN the same run id is started again, recording to another file (whose ledger knows nothing of it)
    other = tmp_path / "other.csv"
    second = cli("run", "-c", str(config_path), "--run-id", "once", "-s", str(other))
    # THEN it is refused (exit 2) in one line naming the run, what AWS holds and that only resume continues it
    assert second.returncode == 2
    assert second.stderr == (
        "error: run once already exists: AWS already holds 5 of its jobs (once_first_gen_0, once_last_out_0, "
        f"once_last_out_1 and 2 more); only resume continues a run: confluence-submit resume -c {config_path} "
        "-s FILE_IT_WAS_RECORDED_TO --run-id once (or leave out --run-id to start a new run)\n"
    )
    # AND nothing was submitted or recorded
    assert server_names(batch_client, config, "once") == plan_names(config, "once")
    assert not other.exists()


def test_a_run_id_in_the_record_or_only_in_the_ledger_is_refused(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    csv_path = tmp_path / "submission.csv"
    assert cli("run", "-c", str(config_path), "--run-id", "rec").returncode == 0
    # WHEN the run id is started again on the same record
    again = cli("run", "-c", str(config_path), "--run-id", "rec")
    # THEN the record names it
    assert again.returncode == 2
    assert again.stderr == (
        f"error: run rec already exists: {csv_path} already records it; only resume continues a run: "
        f"confluence-submit resume -c {config_path} -s {csv_path} --run-id rec (or leave out --run-id to start a "
        "new run)\n"
    )
    # WHEN the CSV is gone but the ledger beside it still holds the run
    csv_path.unlink()
    from_ledger = cli("run", "-c", str(config_path), "--run-id", "rec")
    assert from_ledger.returncode == 2
    assert from_ledger.stderr == (
        f"error: run rec already exists: the run ledger {local_root(csv_path)} already holds it; only resume "
        f"continues a run: confluence-submit resume -c {config_path} -s {csv_path} --run-id rec (or leave out "
        "--run-id to start a new run)\n"
    )
    assert server_names(batch_client, config, "rec") == plan_names(config, "rec")


def test_a_run_id_only_aws_knows_is_refused_and_a_longer_run_id_sharing_its_prefix_is_not_mistaken_for_it(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN run "aws_b", whose job names start with "aws_" as run "aws"'s do
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    assert cli("run", "-c", str(config_path), "--run-id", "aws_b").returncode == 0
    # WHEN run "aws" starts from another machine (its record and ledger are nowhere here)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = cli("run", "-c", str(config_path), "--run-id", "aws", "-s", str(elsewhere / "s.csv"))
    # THEN it is a new run: the run tag tells run "aws_b"'s jobs apart
    assert other.returncode == 0, other.stderr
    shutil.rmtree(elsewhere)
    # WHEN run "aws" is started here, where only AWS knows it (its jobs, named and tagged by names.py)
    taken = cli("run", "-c", str(config_path), "--run-id", "aws")
    # THEN it is refused, and AWS holds each job of each run once
    assert taken.returncode == 2
    assert taken.stderr.startswith(
        f"error: run aws already exists: AWS already holds 5 of its jobs ({names.job_name('aws', 'first', 'gen', 0)}, "
    )
    assert {r["run_id"] for r in csv_rows(tmp_path / "submission.csv")} == {"aws_b"}
    assert server_names(batch_client, config, "aws") == plan_names(config, "aws") + plan_names(config, "aws_b")


# --------------------------------------------------------------------------------------------------------------
# Cancel and status during a run


@pytest.mark.slow
def test_cancel_during_run_stops_the_submission_then_every_job_it_submitted(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run submitting slowly, its jobs running for long
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=600)
    csv_path = tmp_path / "submission.csv"
    running = cli.popen("run", "-c", str(config_path), "--run-id", "stopme", "--rate", "0.5", "--workers", "1")
    try:
        wait_for(lambda: len(csv_rows(csv_path)) >= 1)
        # WHEN cancel runs while the run is still submitting
        cancelled = cli("cancel", "-c", str(config_path), "--run-id", "stopme")
    finally:
        _, run_err = running.communicate(timeout=120)
    # THEN cancel says it asked the run to stop, waited for it, and then stopped every job it had submitted
    assert cancelled.returncode == 0, cancelled.stderr
    rows = csv_rows(csv_path)
    submitted = len(rows)
    assert 1 <= submitted < JOBS
    lines = cancelled.stdout.splitlines()
    assert re.fullmatch(
        "run stopme is being submitted by " + HOLDER.format(command="run", pid=running.pid) + ": asked it to stop",
        lines[0],
    ), lines[0]
    assert lines[1] == "it stopped submitting; cancelling run stopme"
    counts = re.fullmatch(
        rf"run stopme: cancelled (\d+) queued jobs, terminated (\d+) started jobs \({submitted} were "
        r"active\)",
        lines[2],
    )
    assert counts and int(counts[1]) + int(counts[2]) == submitted, lines[2]
    assert lines[3:] == ["no job of run stopme is active"]
    # AND the run exits 1 saying it was cancelled, by whom, after how many jobs
    assert running.returncode == 1
    assert re.search(
        "run stopme cancelled: "
        + HOLDER.format(command="cancel", pid=r"\d+")
        + f" asked it to stop after {submitted} of {JOBS} jobs were submitted; that command stops them\n",
        run_err,
    ), run_err
    # AND AWS holds exactly the recorded jobs, none of them active
    assert server_names(batch_client, config, "stopme") == Counter(r["job_name"] for r in rows)
    jobs = batch_client.describe_jobs(jobs=[r["job_id"] for r in rows])["jobs"]
    assert {j["status"] for j in jobs} == {"FAILED"}
    # AND a status afterwards calls the run cancelled
    after = cli("status", "-c", str(config_path), "--run-id", "stopme")
    assert after.stdout.startswith("run stopme: cancelled (from csv)"), after.stdout


@pytest.mark.slow
def test_status_watch_started_during_run_follows_the_growing_record_until_the_run_succeeds(
    cli: Any, batch_server: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run whose jobs finish at once and whose second SubmitJob waits at a gate: what is recorded is soon all
    # finished while the run is still submitting
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    csv_path = tmp_path / "submission.csv"
    with gated_proxy(batch_server.url, let_through=1) as gate:
        gated = replace(cli, endpoint_url=gate.url)
        running = gated.popen("run", "-c", str(config_path), "--run-id", "grow", "--workers", "1")
        try:
            wait_for(lambda: len(csv_rows(csv_path)) >= 1)
            # WHEN status (once, then --watch) starts while only part of the run is recorded (the rest is held at
            # the gate until --watch has shown its first frame)
            once = gated("status", "-c", str(config_path), "--run-id", "grow")
            watching = gated.popen("status", "-c", str(config_path), "--run-id", "grow", "--watch", "--interval", "0.2")
            assert watching.stdout is not None
            first_line = watching.stdout.readline()
            gate.open()
            rest, watch_err = watching.communicate(timeout=120)
            watched = subprocess.CompletedProcess(watching.args, watching.returncode, first_line + rest, watch_err)
        finally:
            gate.open()
            _, run_err = running.communicate(timeout=120)
    assert running.returncode == 0, run_err
    # THEN status calls the run submitting, naming who submits it, never incomplete
    pattern = (
        "run grow: submitting \\(from csv\\): "
        + HOLDER.format(command="run", pid=running.pid)
        + r" is submitting it, \d jobs still to come"
    )
    assert once.returncode == 0, once.stderr
    assert re.match(pattern, once.stdout), once.stdout
    assert re.match(pattern, watched.stdout), watched.stdout
    assert "incomplete" not in watched.stdout
    # AND --watch follows the record to the end: every job, succeeded (exit 0)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    last = watched.stdout.split("run grow: ")[-1]
    assert last.startswith("succeeded (from csv)"), last


# --------------------------------------------------------------------------------------------------------------
# resume and retry-failed reconcile lost replies as run does


def test_resume_cancels_and_names_the_duplicate_a_lost_reply_left(
    cli: Any, batch_server: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run killed after its first job
    config_path, config = write_config(tmp_path, provisioned)
    lost = names.job_name("rs", "last", "out", 1)
    # What it waits for ends at once; it is held RUNNING, so the duplicate is still there to stop.
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.hold("RUNNING", name_glob=lost)
    csv_path = tmp_path / "submission.csv"
    process = cli.popen("run", "-c", str(config_path), "--run-id", "rs", "--rate", "2", "--workers", "1")
    wait_for(lambda: len(csv_rows(csv_path)) >= 1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # WHEN resume runs through a network that loses the reply of the last job's SubmitJob, and ListJobs does not
    # list that job yet when resume looks it up (eventual consistency): it is submitted a second time
    with lossy_proxy(batch_server.url, lambda name, attempt: name == lost and attempt == 1, stale_lists=1) as proxy:
        result = replace(cli, endpoint_url=proxy.url)("resume", "-c", str(config_path), "--run-id", "rs")
    # THEN resume completes the run, cancels the second job and names it and the job kept
    assert result.returncode == 0, result.stderr
    assert proxy.attempts[lost] == 2
    kept = {r["job_name"]: r["job_id"] for r in csv_rows(csv_path)}[lost]
    (extra,) = proxy.lost_ids  # the job whose reply was lost is the second one: the resubmission was recorded
    assert extra != kept
    # (cancelled while it waits, terminated once started: what AWS's CancelJob and TerminateJob each stop)
    assert re.search(
        r"warning: AWS held a second job under 1 name\(s\) of run rs \(a SubmitJob reply was lost, then the job "
        r"was submitted again\); the recorded job is kept:\n"
        rf"  {lost}: duplicate {extra} (cancelled|terminated), kept {kept}\n",
        result.stderr,
    ), result.stderr
    assert f"run rs now has all {JOBS} jobs" in result.stdout
    (duplicate,) = batch_client.describe_jobs(jobs=[extra])["jobs"]
    assert duplicate["status"] == "FAILED"
    assert "duplicate of a recorded job (a SubmitJob reply was lost)" in duplicate["statusReason"]
    assert server_names(batch_client, config, "rs") == plan_names(config, "rs") + Counter({lost: 1})
    assert Counter(r["job_name"] for r in csv_rows(csv_path)) == plan_names(config, "rs")


@pytest.mark.slow
def test_retry_failed_cancels_and_names_the_duplicate_a_lost_reply_left(
    cli: Any, batch_server: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a finished run whose middle array failed on children 1 and 3
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail(names.job_name("rt", "middle", "algo", 0), indices=[1, 3])
    assert cli("run", "-c", str(config_path), "--run-id", "rt").returncode == 0
    assert cli("status", "-c", str(config_path), "--run-id", "rt", "--watch", "--interval", "0.1").returncode == 1
    # WHEN retry-failed runs through a network that loses the reply of the retry's SubmitJob, unlisted at first
    batch_control.set_durations(default=600)
    lost = names.retry_name("rt", "middle", "algo", 0, 1)
    with lossy_proxy(batch_server.url, lambda name, attempt: name == lost and attempt == 1, stale_lists=1) as proxy:
        result = replace(cli, endpoint_url=proxy.url)("retry-failed", "-c", str(config_path), "--run-id", "rt")
    # THEN the retry is submitted, its second job cancelled and named, and the recorded one kept
    assert result.returncode == 0, result.stderr
    assert proxy.attempts[lost] == 2
    kept = {r["job_name"]: r["job_id"] for r in csv_rows(tmp_path / "submission.csv")}[lost]
    (extra,) = proxy.lost_ids
    assert extra != kept
    # (cancelled while it waits, terminated once started: what AWS's CancelJob and TerminateJob each stop)
    assert re.search(
        r"warning: AWS held a second job under 1 name\(s\) of run rt \(a SubmitJob reply was lost, then the job "
        r"was submitted again\); the recorded job is kept:\n"
        rf"  {lost}: duplicate {extra} (cancelled|terminated), kept {kept}\n",
        result.stderr,
    ), result.stderr
    (duplicate,) = batch_client.describe_jobs(jobs=[extra])["jobs"]
    assert duplicate["status"] == "FAILED"
    assert server_names(batch_client, config, "rt")[lost] == 2
