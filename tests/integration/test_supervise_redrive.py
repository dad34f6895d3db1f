"""Redrive: ``retry-failed`` on a supervised run that ended over budget, or finished with tolerated failures, runs
the failed children again as a new round and then goes on with the later stages under the supervisor, as Step
Functions' redrive does ("Redrive restarts a failed execution from the point of failure ... Step Functions reruns
the unsuccessful steps and continues the execution"). The workflow is ``supervised_workflow.py``'s; a failure is
injected by job name, so the round's jobs (``..._retry-1``) run clean: the cause was cleared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_supervise_local import document, jobs_by_name
from test_supervise_local import workflow as workflow  # noqa: F401 - the fixture

from confluence_runtime.records.ledger import Ledger, LocalStore, local_root


def test_an_over_budget_run_is_redriven_its_later_stages_run_and_every_job_is_submitted_once(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN a run whose flpe.neobam lost 4 of 12 children (25 % tolerates 3): over budget, output never ran
    run_id = "20261208T031500-redr"
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[0, 1, 2, 3])
    first = cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")
    assert first.returncode == 1, first.stderr + first.stdout
    assert document(tmp_path, run_id).state == "over_budget"
    csv = str((tmp_path / "out/submission.csv").resolve())

    # WHEN retry-failed redrives it
    result = cli("retry-failed", "-c", str(workflow), "--run-id", run_id, "--poll", "0.2")

    # THEN the four children run again as round 2, then output runs, and the run succeeds
    assert result.returncode == 0, result.stderr + result.stdout
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "redrive round 2: retry flpe.neobam 4 children: 0, 1, 2, 3",
        "then, under the supervisor: output",
    ]
    assert "stage flpe: done, 0 children failed" in lines
    assert "stage input: done, 0 children failed" not in lines  # said in round 1, not again
    assert "stage output: done, 0 children failed" in lines
    jobs = jobs_by_name(batch_client, run_id)
    assert {name: len(found) for name, found in jobs.items()} == {
        f"{run_id}_input_input_0": 1,
        f"{run_id}_flpe_neobam_0": 1,
        f"{run_id}_flpe_sad_0": 1,
        f"{run_id}_flpe_neobam_0_retry-1": 1,
        f"{run_id}_output_output_0": 1,
    }
    [retry] = batch_client.describe_jobs(jobs=[jobs[f"{run_id}_flpe_neobam_0_retry-1"][0]["jobId"]])["jobs"]
    assert retry["arrayProperties"]["size"] == 4
    # AND the document records the redrive: when, by whom, which children
    state = document(tmp_path, run_id)
    assert state.state == "succeeded"
    [redrive] = state.redrives
    assert (redrive.round, redrive.by, redrive.stage, redrive.retried, redrive.ended) == (
        2,
        "retry-failed",
        "flpe",
        (("neobam", (0, 1, 2, 3)),),
        "over_budget",
    )
    ledger = Ledger(LocalStore(local_root(tmp_path / "out/submission.csv")))
    assert [e.detail for e in ledger.events(run_id) if e.kind == "redriven"] == ["round 2: flpe: 4 children retried"]
    # AND supervise --status, status and report show one run with its rounds
    rounds = [
        "round 1: the run, ended over budget",
        f"round 2: redrive at {redrive.at} by retry-failed: retried 4 children (flpe.neobam 0-3); 4 succeeded, 0 "
        "failed again",
    ]
    shown = cli("supervise", "--run-id", run_id, "-s", csv, "--status")
    assert shown.stdout.splitlines()[-3:] == [f"run {run_id}: succeeded (every stage succeeded)", *rounds]
    status = cli("status", "-c", str(workflow), "--run-id", run_id)
    said = " ".join(status.stdout.split())
    assert all(" ".join(r.split()) in said for r in rounds), status.stdout
    report = cli("report", "-c", str(workflow), "--run-id", run_id)
    assert report.returncode == 0, report.stderr
    assert all(r in report.stdout.splitlines() for r in rounds), report.stdout
    assert "Rounds" in (local_root(tmp_path / "out/submission.csv") / run_id / "report.html").read_text()

    # AND a second redrive of the run, which succeeded without failures now, is refused
    again = cli("retry-failed", "-c", str(workflow), "--run-id", run_id, "--poll", "0.2")
    assert again.returncode == 2
    assert f"run {run_id} succeeded without failures: there is nothing to redrive" in " ".join(again.stderr.split())
