"""``run --supervise local`` and ``supervise --run-id`` end to end on the emulator (Batch and S3 in one moto server).

The workflow: ``input`` sized by an ``items`` list in the emulator's S3 (budget 2 children), a ``per_index`` stage
of two modules (budget 25 %, i.e. 3 of 12 in each), and a plain ``output`` job. Failures are injected by job name
and AWS array index (AWS_BATCH_JOB_ARRAY_INDEX), so a failure in a compact array is placed through its index map.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from supervised_workflow import BUCKET, CONFIG, ITEMS, QUEUES, aws, set_up
from test_supervise_cloud import deploy_function

from confluence_runtime import names
from confluence_runtime.records.document import SupervisorState, read_state
from confluence_runtime.records.ledger import Ledger, LocalStore, local_root


@pytest.fixture
def workflow(provisioned: Any, batch_control: Any, batch_server: Any, tmp_path: Path) -> Path:
    path = set_up(tmp_path, provisioned, batch_server.url)
    batch_control.set_durations(default=0.2, queue=0.05)
    return path


def document(tmp_path: Path, run_id: str) -> SupervisorState:
    ledger = Ledger(LocalStore(local_root(tmp_path / "out/submission.csv")))
    state = read_state(lambda name: ledger.read(run_id, name))
    assert state is not None
    return state


def jobs_by_name(batch_client: Any, run_id: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for queue in QUEUES:
        pages = batch_client.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{run_id}_*"]}]
        )
        for page in pages:
            for job in page["jobSummaryList"]:
                found.setdefault(job["jobName"], []).append(job)
    return found


def test_failures_within_budget_skip_lost_reaches_downstream_and_the_report_lists_their_items(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    run_id = "20261126T011500-aaaa"
    batch_control.fail(f"{run_id}_input_input_0", indices=[3, 7])
    # flpe runs 10 reaches (3 and 7 were lost): one compact array per module, child 4 stands for reach 5.
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[4])

    result = cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")

    assert result.returncode == 0, result.stderr + result.stdout
    assert "stage input: done, 2 children failed" in result.stdout
    assert "stage flpe: done, 1 children failed, 2 left out (lost upstream)" in result.stdout
    state = document(tmp_path, run_id)
    assert state.state == "succeeded"
    flpe = state.stage_state("flpe")
    assert flpe.skipped == (3, 7)
    assert {p.module: p.index_map for p in flpe.pieces} == {
        "neobam": (0, 1, 2, 4, 5, 6, 8, 9, 10, 11),
        "sad": (0, 1, 2, 4, 5, 6, 8, 9, 10, 11),
    }
    # Each job exactly once in AWS, and no container ran for reaches 3 and 7 in flpe.
    jobs = jobs_by_name(batch_client, run_id)
    assert sorted(jobs) == [
        f"{run_id}_flpe_neobam_0",
        f"{run_id}_flpe_sad_0",
        f"{run_id}_input_input_0",
        f"{run_id}_output_output_0",
    ]
    assert all(len(v) == 1 for v in jobs.values())
    described = batch_client.describe_jobs(jobs=[jobs[f"{run_id}_flpe_sad_0"][0]["jobId"]])["jobs"][0]
    assert described["arrayProperties"]["size"] == 10
    env = {e["name"]: e["value"] for e in described["container"]["environment"]}
    assert env["CONFLUENCE_INDEX_MAP"] == "0-2,4-6,8-11"
    # Confluence's failure report: the index and the item of the module's list (or the index without one).
    root = local_root(tmp_path / "out/submission.csv") / run_id
    failures = json.loads((root / "module_data_failures.json").read_text())
    assert failures == {
        "Input": [{"Index": 3, "Value": ITEMS[3]}, {"Index": 7, "Value": ITEMS[7]}],
        "Neobam": [{"Index": 5, "Value": 5}],
    }
    report = json.loads((root / "module_data_report.json").read_text())
    assert [(m["Module"], m["Total Jobs"], m["Succeeded"], m["Failed"]) for m in report["modules"]] == [
        ("Input", 12, 10, 2),
        ("Neobam", 10, 9, 1),
        ("Sad", 10, 10, 0),
        ("Output", 1, 1, 0),
    ]
    # supervise --status: one line per stage from the ledger, then the run's state.
    shown = cli("supervise", "--run-id", run_id, "-s", str(tmp_path / "out/submission.csv"), "--status")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "input                    done       jobs   1  failed     2  left out     0",
        "flpe                     done       jobs   2  failed     1  left out     2",
        "output                   done       jobs   1  failed     0  left out     0",
        f"run {run_id}: succeeded (every stage completed; 3 children failed within their budgets and 2 were left "
        "out downstream)",
    ]


PACKED = (
    CONFIG.replace(
        'input: {items: "s3://{prefix}-json/reaches.json",',
        'input: {items: "s3://{prefix}-json/reaches.json", items_per_child: 3,',
    )
    .replace("array_size: 12}", "array_size: 12, items_per_child: 3}")
    .replace('"25%"', "1")
)


def test_packed_modules_lose_a_failed_childs_items_downstream_and_the_report_lists_those_items(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN the 12 reaches packed 3 to a child (4 children per module), flpe tolerating 1 failed child per module
    workflow.write_text(PACKED)
    run_id = "20261126T011500-pppp"
    batch_control.fail(f"{run_id}_input_input_0", indices=[1])  # reaches 3, 4, 5
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[2])  # flpe runs children 0, 2, 3: this is child 3

    result = cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")

    # THEN the run completes; flpe leaves out child 1, so no container of flpe works on reaches 3, 4 or 5
    assert result.returncode == 0, result.stderr + result.stdout
    assert "stage input: done, 1 children failed" in result.stdout
    assert "stage flpe: done, 1 children failed, 1 left out (lost upstream)" in result.stdout
    jobs = jobs_by_name(batch_client, run_id)
    assert sorted(jobs) == [
        f"{run_id}_flpe_neobam_0",
        f"{run_id}_flpe_sad_0",
        f"{run_id}_input_input_0",
        f"{run_id}_output_output_0",
    ]
    read: dict[str, list[list[int]]] = {}
    for name in ("input_input", "flpe_neobam", "flpe_sad"):
        [job] = batch_client.describe_jobs(jobs=[jobs[f"{run_id}_{name}_0"][0]["jobId"]])["jobs"]
        env = {e["name"]: e["value"] for e in job["container"]["environment"]}
        read[name] = [list(names.items_in_environment(env, i)) for i in range(job["arrayProperties"]["size"])]
    assert read == {
        "input_input": [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]],
        "flpe_neobam": [[0, 1, 2], [6, 7, 8], [9, 10, 11]],
        "flpe_sad": [[0, 1, 2], [6, 7, 8], [9, 10, 11]],
    }
    # AND Confluence's report counts children, and its failures list exactly the failed children's items
    root = local_root(tmp_path / "out/submission.csv") / run_id
    report = json.loads((root / "module_data_report.json").read_text())
    assert [(m["Module"], m["Total Jobs"], m["Succeeded"], m["Failed"]) for m in report["modules"]] == [
        ("Input", 4, 3, 1),
        ("Neobam", 3, 2, 1),
        ("Sad", 3, 3, 0),
        ("Output", 1, 1, 0),
    ]
    failures = json.loads((root / "module_data_failures.json").read_text())
    assert failures == {
        "Input": [{"Index": i, "Value": ITEMS[i]} for i in (3, 4, 5)],
        "Neobam": [{"Index": i, "Value": i} for i in (9, 10, 11)],
    }


def test_over_budget_stops_the_run_cancels_what_runs_and_exits_1(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    run_id = "20261126T011500-bbbb"
    # 4 of neobam's 12 fail (25 % allows 3) while sad is still running: sad is stopped, output never submitted.
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[0, 1, 2, 3])
    batch_control.set_durations(default=0.2, queue=0.05)
    batch_control.hold("RUNNING", name_glob=f"{run_id}_flpe_sad_0")  # still running when the budget is spent

    result = cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")

    assert result.returncode == 1, result.stderr + result.stdout
    state = document(tmp_path, run_id)
    assert state.state == "over_budget"
    assert state.reason == ("over the failure budget: flpe.neobam: 4 of 12 children failed, tolerated 25% (3)")
    assert state.stage_state("output").status == "pending"
    jobs = jobs_by_name(batch_client, run_id)
    assert f"{run_id}_output_output_0" not in jobs
    sad = batch_client.describe_jobs(jobs=[jobs[f"{run_id}_flpe_sad_0"][0]["jobId"]])["jobs"][0]
    assert sad["status"] == "FAILED"
    assert sad["statusReason"].startswith(f"Confluence run {run_id} stopped: over the failure budget")
    failures = json.loads(
        (local_root(tmp_path / "out/submission.csv") / run_id / "module_data_failures.json").read_text()
    )
    assert failures["Neobam"] == [{"Index": i, "Value": i} for i in range(4)]
    # AND the verdict names the failed children, a logs command for the first and the command that reruns them
    csv = str((tmp_path / "out/submission.csv").resolve())
    ledger = f"-s {csv} --endpoint-url {cli.endpoint_url}"
    lines = result.stdout.splitlines()
    assert "failed: flpe/neobam 4 children: 0, 1, 2, 3" in lines
    assert f"  confluence-submit logs --run-id {run_id} {ledger} --stage flpe --module neobam --index 0" in lines, lines
    assert f"rerun the failed children with: confluence-submit retry-failed --run-id {run_id} {ledger}" in lines
    # AND supervise --status shows where each stage ended, not where it was when the run stopped
    shown = cli("supervise", "--run-id", run_id, "-s", csv, "--status")
    assert shown.stdout.splitlines()[1:] == [
        "flpe                     stopped    jobs   2  failed     4  left out     0",
        "output                   not run    jobs   0  failed     0  left out     0",
        f"run {run_id}: over_budget (over the failure budget: flpe.neobam: 4 of 12 children failed, tolerated 25% (3))",
    ], shown.stdout


def test_a_killed_supervisor_is_continued_from_the_ledger_without_submitting_twice(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    run_id = "20261126T011500-cccc"
    batch_control.set_durations(default=0.2, queue=0.05)
    # flpe's jobs stay RUNNING until the supervisor is killed: it cannot see them end and move on first.
    hold = batch_control.hold("RUNNING", name_glob=f"{run_id}_flpe_*")
    process = cli.popen("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")
    try:
        path = local_root(tmp_path / "out/submission.csv") / run_id / names.SUPERVISOR_DOCUMENT
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists() and document(tmp_path, run_id).stage_state("flpe").status == "submitted":
                break
            time.sleep(0.1)
        else:
            pytest.fail("flpe was never submitted")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        batch_control.release(hold)

    # supervise --status of the run its supervisor left: flpe submitted and running, output still to come.
    before = path.read_bytes()
    shown = cli("supervise", "--run-id", run_id, "-s", str(tmp_path / "out/submission.csv"), "--status")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "input                    done       jobs   1  failed     0  left out     0",
        "flpe                     submitted  jobs   2  failed     0  left out     0",
        "output                   pending    jobs   0  failed     0  left out     0",
        f"run {run_id}: running",
    ]
    assert path.read_bytes() == before  # --status changes nothing

    result = cli("supervise", "--run-id", run_id, "-s", str(tmp_path / "out/submission.csv"), "--poll", "0.2")

    assert result.returncode == 0, result.stderr + result.stdout
    assert document(tmp_path, run_id).state == "succeeded"
    jobs = jobs_by_name(batch_client, run_id)
    assert {name: len(v) for name, v in jobs.items()} == {
        f"{run_id}_input_input_0": 1,
        f"{run_id}_flpe_neobam_0": 1,
        f"{run_id}_flpe_sad_0": 1,
        f"{run_id}_output_output_0": 1,
    }


@pytest.mark.slow
def test_supervise_cancel_ends_a_run_handed_over_to_a_function_that_never_ran(
    cli: Any, workflow: Path, batch_client: Any, tmp_path: Path
) -> None:
    run_id = "20261126T011500-dddd"
    # A cloud run's ledger must be where the function reads it: in S3.
    local = cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "cloud", "--ledger", str(tmp_path))
    assert local.returncode == 2
    assert f"error: --supervise cloud: the venue's supervisor function reads runs from S3; {tmp_path} is not" in (
        " ".join(local.stderr.split())
    )
    # run --supervise cloud records the run and puts one event on the bus; the function and its two rules are
    # deployed (it checks), but the function never runs here: the rules have no target.
    deploy_function(cli.endpoint_url)
    events = aws("events", cli.endpoint_url)
    for rule in names.supervisor_rules("confluence-dev")[:2]:
        events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["nothing"]}))
    ledger = "s3://confluence-dev-json/runs"
    started = cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "cloud", "--ledger", ledger)
    assert started.returncode == 0, started.stderr
    assert jobs_by_name(batch_client, run_id) == {}

    result = cli("supervise", "--run-id", run_id, "--ledger", ledger, "--cancel", "--poll", "0.2")

    assert result.returncode == 1, result.stderr + result.stdout
    assert (
        f"cancelled: Confluence run {run_id} ended cancelled: the run was cancelled. 0 of 3 stages completed; 0 "
        "children submitted, 0 failed, 0 left out because their index failed upstream."
        in " ".join(result.stdout.split())
    )
    assert jobs_by_name(batch_client, run_id) == {}
    s3 = aws("s3", cli.endpoint_url)
    stored = {k: json.loads(s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/{k}")["Body"].read())
              for k in ("module_data_failures.json", names.SUPERVISOR_DOCUMENT)}  # fmt: skip
    assert (stored["module_data_failures.json"], stored[names.SUPERVISOR_DOCUMENT]["state"]) == ({}, "cancelled")


def test_a_plain_cancel_ends_a_locally_supervised_run_cancelled_not_over_budget(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    run_id = "20261126T011500-ffff"
    batch_control.set_durations(default=0.2, queue=0.05)
    batch_control.hold("RUNNING", name_glob=f"{run_id}_input_*")  # running until the cancel terminates it
    process = cli.popen("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")
    try:
        path = local_root(tmp_path / "out/submission.csv") / run_id / names.SUPERVISOR_DOCUMENT
        deadline = time.monotonic() + 60
        while not (path.exists() and document(tmp_path, run_id).stage_state("input").status == "submitted"):
            assert time.monotonic() < deadline, "input was never submitted"
            time.sleep(0.1)

        # WHEN the run is cancelled with the command of unsupervised runs
        cancelled = cli("cancel", "-c", str(workflow), "--run-id", run_id)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    # THEN its 12 terminated children are not failures against the budget: the supervisor ends the run cancelled
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.splitlines() == [
        f"run {run_id} is supervised (local): the cancel is recorded in its ledger; its supervisor ends it as "
        "cancelled and writes the report",
        f"run {run_id}: cancelled 0 queued jobs, terminated 1 started jobs (1 were active)",
        f"no job of run {run_id} is active",
    ]
    assert process.returncode == 1, stderr + stdout
    assert (
        f"cancelled: Confluence run {run_id} ended cancelled: the run was cancelled. 0 of 3 stages completed; 12 "
        "children submitted, 0 failed, 0 left out because their index failed upstream." in " ".join(stdout.split())
    )
    state = document(tmp_path, run_id)
    assert (state.state, state.reason, state.notified) == ("cancelled", "the run was cancelled", True)
    assert sorted(jobs_by_name(batch_client, run_id)) == [f"{run_id}_input_input_0"]
    root = local_root(tmp_path / "out/submission.csv") / run_id
    report = json.loads((root / "module_data_report.json").read_text())
    assert [(m["Module"], m["Total Jobs"]) for m in report["modules"]] == [("Input", 12)]


def test_items_without_supervision_size_the_array_when_the_run_is_submitted(
    cli: Any, workflow: Path, batch_client: Any, tmp_path: Path
) -> None:
    run_id = "20261126T011500-eeee"

    result = cli("run", "-c", str(workflow), "--run-id", run_id)

    assert result.returncode == 0, result.stderr
    job = jobs_by_name(batch_client, run_id)[f"{run_id}_input_input_0"][0]
    assert batch_client.describe_jobs(jobs=[job["jobId"]])["jobs"][0]["arrayProperties"]["size"] == len(ITEMS)


def said(text: str) -> str:
    """Output with its folding undone (status folds long lines to the terminal's width)."""
    return " ".join(text.replace(" \\\n", " ").split())


@pytest.mark.slow
def test_status_of_a_supervised_run_is_its_supervisors_verdict_not_a_plan_to_resume(
    cli: Any, workflow: Path, batch_control: Any, tmp_path: Path
) -> None:
    # GIVEN a supervised run that went over budget in flpe: output was never submitted, on purpose
    run_id = "20261126T011500-ssss"
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[0, 1, 2, 3])
    assert cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2").returncode == 1

    # WHEN the operator asks status
    shown = cli("status", "-c", str(workflow), "--run-id", run_id)
    watched = cli("status", "-c", str(workflow), "--run-id", run_id, "--watch", "--interval", "0.1")
    as_json = json.loads(cli("status", "-c", str(workflow), "--run-id", run_id, "--format", "json").stdout)

    # THEN it says what the supervisor decided, and never offers to resume (which would submit output unsupervised)
    text = said(shown.stdout)
    assert f"run {run_id}: over_budget" in text
    assert (
        "supervised (local): ended over budget: over the failure budget: flpe.neobam: 4 of 12 children failed, "
        "tolerated 25% (3); never submitted: output"
    ) in text
    assert "resume" not in text
    assert watched.returncode == 1
    assert as_json["state"] == "over_budget"
    assert as_json["missing"] == []
    assert as_json["supervised"] == {
        "mode": "local",
        "state": "over_budget",
        "reason": "over the failure budget: flpe.neobam: 4 of 12 children failed, tolerated 25% (3)",
        "stages_not_submitted": ["output"],
    }
    # AND report and runs say the same
    report = cli("report", "-c", str(workflow), "--run-id", run_id)
    assert report.returncode == 0, report.stderr
    assert f"run {run_id}: over_budget; " in report.stdout + report.stderr
    runs = json.loads(cli("runs", "-c", str(workflow), "--format", "json").stdout)
    assert [r["state"] for r in runs if r["run_id"] == run_id] == ["over_budget"]


def test_status_of_a_supervised_run_within_budget_is_succeeded_and_names_a_stopped_supervisors_command(
    cli: Any, workflow: Path, batch_control: Any, tmp_path: Path
) -> None:
    # GIVEN a supervised run killed while flpe runs, with one neobam reach failing (within its 25 % budget)
    run_id = "20261126T011500-tttt"
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[5])
    batch_control.set_durations(default=0.2, queue=0.05)
    # flpe's jobs stay RUNNING until the supervisor is killed: it cannot see them end and move on first.
    hold = batch_control.hold("RUNNING", name_glob=f"{run_id}_flpe_*")
    process = cli.popen("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")
    try:
        path = local_root(tmp_path / "out/submission.csv") / run_id / names.SUPERVISOR_DOCUMENT
        deadline = time.monotonic() + 60
        while not (path.exists() and document(tmp_path, run_id).stage_state("flpe").status == "submitted"):
            assert time.monotonic() < deadline, "flpe was never submitted"
            time.sleep(0.1)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        batch_control.release(hold)

    # WHEN status is asked: the run is still running, and the command that continues its supervisor is printed
    text = said(cli("status", "-c", str(workflow), "--run-id", run_id).stdout)
    assert f"run {run_id}: running" in text
    command = text.split("if its supervisor was stopped: ", 1)[1]
    assert command.startswith(
        f"confluence-submit supervise -c {workflow} -s {tmp_path / 'out/submission.csv'} --run-id {run_id} "
        f"--endpoint-url {cli.endpoint_url}"
    )
    # AND pasted, that command ends the run; status then says succeeded (the failure was within budget)
    pasted = cli(*command.split()[1:], "--poll", "0.2", endpoint=False)
    assert pasted.returncode == 0, pasted.stderr + pasted.stdout
    final = cli("status", "-c", str(workflow), "--run-id", run_id, "--watch", "--interval", "0.1")
    assert final.returncode == 0, final.stdout
    assert f"run {run_id}: succeeded" in said(final.stdout)
    assert "supervised (local): ended succeeded" in said(final.stdout)


def test_resume_refuses_a_supervised_run_and_names_the_command_that_continues_it(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN a supervised run that ended over budget before output was submitted
    run_id = "20261126T011500-uuuu"
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[0, 1, 2, 3])
    assert cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2").returncode == 1
    held = jobs_by_name(batch_client, run_id)

    # WHEN the operator tries resume, even with --force
    result = cli("resume", "-c", str(workflow), "--run-id", run_id, "--force")

    # THEN nothing is submitted, and the message says why and what to run instead
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: run {run_id} is supervised (local): its supervisor submits each stage under the failure budgets, so "
        "resume would submit the rest without them",
        f"hint: continue it with: confluence-submit supervise --run-id {run_id} -s {tmp_path / 'out/submission.csv'} "
        f"--endpoint-url {cli.endpoint_url}",
    ]
    assert jobs_by_name(batch_client, run_id).keys() == held.keys()


def test_a_supervised_run_id_already_in_use_is_refused_before_anything_is_recorded(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN a finished supervised run, and a finished unsupervised one
    csv_path = tmp_path / "out/submission.csv"
    assert cli("run", "-c", str(workflow), "--run-id", "20261126T011500-vvvv", "--supervise", "local",
               "--poll", "0.2").returncode == 0  # fmt: skip
    assert cli("run", "-c", str(workflow), "--run-id", "plain").returncode == 0
    held = jobs_by_name(batch_client, "20261126T011500-vvvv")

    # WHEN either id is given to run --supervise again
    again = cli("run", "-c", str(workflow), "--run-id", "20261126T011500-vvvv", "--supervise", "local")
    plain = cli("run", "-c", str(workflow), "--run-id", "plain", "--supervise", "local")

    # THEN both are refused with the command that continues each, and nothing more is submitted
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        "error: run 20261126T011500-vvvv already exists: it is supervised, in out/submission.ledger",
        f"hint: continue it with: confluence-submit supervise --run-id 20261126T011500-vvvv -s {csv_path} "
        f"--endpoint-url {cli.endpoint_url}",
    ]
    assert jobs_by_name(batch_client, "20261126T011500-vvvv").keys() == held.keys()
    assert plain.returncode == 2
    assert "error: run plain already exists: " in plain.stderr
    assert "only resume continues a run: confluence-submit resume" in plain.stderr
