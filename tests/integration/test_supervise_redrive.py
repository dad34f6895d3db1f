"""Redrive: ``retry-failed`` on a supervised run that ended over budget, or finished with tolerated failures, runs
the failed children again as a new round and then goes on with the later stages under the supervisor, as Step
Functions' redrive does ("Redrive restarts a failed execution from the point of failure ... Step Functions reruns
the unsuccessful steps and continues the execution"). The workflow is ``supervised_workflow.py``'s; a failure is
injected by job name, so the round's jobs (``..._retry-1``) run clean: the cause was cleared."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from supervised_workflow import BUCKET, REGION
from test_supervise_cloud import LEDGER, Cloud, held_jobs, until_over
from test_supervise_cloud import cloud as cloud  # the fixture
from test_supervise_local import document, jobs_by_name
from test_supervise_local import workflow as workflow  # the fixture

from confluence_runtime import names
from confluence_runtime.aws.api import AwsOptions, Batch
from confluence_runtime.records.ledger import Ledger, LocalStore, S3Store, local_root
from lambdas.supervisor import handler


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

    # AND --dry-run says what a redrive would submit, and changes nothing
    dry = cli("retry-failed", "-c", str(workflow), "--run-id", run_id, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"  would submit {run_id}_flpe_neobam_0_retry-1 (4 children)",
        "redrive round 2: retry flpe.neobam 4 children: 0, 1, 2, 3",
        "then, under the supervisor: output",
    ]
    assert document(tmp_path, run_id).redrives == ()

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


def test_a_run_with_tolerated_failures_is_redriven_and_the_reaches_it_left_out_run_downstream(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN a run that succeeded with input's reaches 3 and 7 failed (tolerated: 2), so flpe left them out
    run_id = "20261208T031500-tole"
    batch_control.fail(f"{run_id}_input_input_0", indices=[3, 7])
    first = cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")
    assert first.returncode == 0, first.stderr + first.stdout
    assert document(tmp_path, run_id).stage_state("flpe").skipped == (3, 7)

    # WHEN retry-failed redrives it
    result = cli("retry-failed", "-c", str(workflow), "--run-id", run_id, "--poll", "0.2")

    # THEN input's two children run again, flpe runs reaches 3 and 7 only, and output (which waits for the whole
    # stage before it) runs again, each job once
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.splitlines()[:2] == [
        "redrive round 2: retry input.input 2 children: 3, 7",
        "then, under the supervisor: flpe, output",
    ]
    jobs = jobs_by_name(batch_client, run_id)
    assert {name: len(found) for name, found in jobs.items()} == {
        f"{run_id}_input_input_0": 1,
        f"{run_id}_flpe_neobam_0": 1,
        f"{run_id}_flpe_sad_0": 1,
        f"{run_id}_output_output_0": 1,
        f"{run_id}_input_input_0_retry-1": 1,
        f"{run_id}_flpe_neobam_0_retry-1": 1,
        f"{run_id}_flpe_sad_0_retry-1": 1,
        f"{run_id}_output_output_0_rerun-1": 1,
    }
    for name in ("input_input", "flpe_neobam", "flpe_sad"):
        [job] = batch_client.describe_jobs(jobs=[jobs[f"{run_id}_{name}_0_retry-1"][0]["jobId"]])["jobs"]
        env = {e["name"]: e["value"] for e in job["container"]["environment"]}
        assert (job["arrayProperties"]["size"], env["CONFLUENCE_INDEX_MAP"]) == (2, "3,7"), name
    state = document(tmp_path, run_id)
    assert state.state == "succeeded"
    assert [(s.stage, s.failed_map, s.skipped) for s in state.stages] == [
        ("input", {"input": ()}, ()),
        ("flpe", {"neobam": (), "sad": ()}, ()),
        ("output", {"output": ()}, ()),
    ]
    assert state.redrives[0].ended == "succeeded"


def test_a_cloud_supervised_run_is_redriven_by_the_venues_function(
    cli: Any, cloud: Cloud, batch_control: Any, tmp_path: Path
) -> None:
    # GIVEN a run handed to the cloud supervisor that went over budget in flpe
    run_id = "20261208T031500-clou"
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[0, 1, 2, 3])
    started = cli("run", "-c", "confluence.yaml", "--run-id", run_id, "--supervise", "cloud", "--ledger", LEDGER)
    assert started.returncode == 0, started.stderr
    ledger = Ledger(S3Store(BUCKET, "runs", cloud.function_s3))
    batch = Batch(AwsOptions(endpoint_url=cloud.url, region=REGION))
    deliver = lambda e: handler.handle(  # noqa: E731
        e, ledger=ledger, batch=batch, s3=cloud.function_s3, sns=cloud.function_sns, topic=cloud.topic, token="f"
    )
    assert until_over(cloud, ledger, run_id, deliver).state == "over_budget"
    cloud.summaries()

    # WHEN retry-failed redrives it
    redriven = cli("retry-failed", "-c", "confluence.yaml", "--run-id", run_id, "--ledger", LEDGER)

    # THEN the round is recorded and the run handed to the function again, which runs it to its end
    assert redriven.returncode == 0, redriven.stderr + redriven.stdout
    assert redriven.stdout.splitlines() == [
        "redrive round 2: retry flpe.neobam 4 children: 0, 1, 2, 3",
        "then, under the supervisor: output",
        f"confluence-submit supervise --run-id {run_id} --ledger {LEDGER} --endpoint-url {cli.endpoint_url} --status",
    ]
    assert f"handed run {run_id} to the venue's supervisor function for round 2" in redriven.stderr
    assert held_jobs(cloud, run_id) == sorted(f"{run_id}_{n}" for n in ("input_input_0", "flpe_neobam_0", "flpe_sad_0"))
    state = until_over(cloud, ledger, run_id, deliver)
    assert state.state == "succeeded"
    assert held_jobs(cloud, run_id) == sorted(
        f"{run_id}_{n}"
        for n in ("input_input_0", "flpe_neobam_0", "flpe_sad_0", "flpe_neobam_0_retry-1", "output_output_0")
    )
    [summary] = cloud.summaries()
    assert summary.endswith(
        f"Rounds: round 1: the run, ended over budget; round 2: redrive at {state.redrives[0].at} by retry-failed: "
        "retried 4 children (flpe.neobam 0-3); 4 succeeded, 0 failed again."
    )
    assert "Spot reclaim" not in summary  # a redrive is what a person asked for, not a Spot retry round


def test_a_redrive_of_a_running_run_is_refused(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN a supervised run whose supervisor was killed while input runs (its document says running)
    run_id = "20261208T031500-runn"
    hold = batch_control.hold("RUNNING", name_glob=f"{run_id}_input_*")
    process = cli.popen("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")
    try:
        deadline = time.monotonic() + 60
        path = local_root(tmp_path / "out/submission.csv") / run_id / names.SUPERVISOR_DOCUMENT
        while not (path.exists() and document(tmp_path, run_id).stage_state("input").status == "submitted"):
            assert time.monotonic() < deadline, "input was never submitted"
            time.sleep(0.1)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()

    refused = cli("retry-failed", "-c", str(workflow), "--run-id", run_id)

    # THEN it is refused (exit 2), nothing changes, and no job is submitted
    assert refused.returncode == 2
    assert (
        f"run {run_id} is still running: a redrive continues a run that ended; wait for it to end or cancel it"
        in " ".join(refused.stderr.split())
    )
    assert document(tmp_path, run_id).redrives == ()
    assert list(jobs_by_name(batch_client, run_id)) == [f"{run_id}_input_input_0"]
    batch_control.release(hold)
