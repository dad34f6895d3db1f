"""status, cancel, resume and retry-failed through the real console script against the Batch emulator."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from workflow import CONFIG, csv_rows, server_jobs, write_config

from confluence_runtime.planning.plan import build_plan


def wait_finished(batch_client: Any, config: Any, run_id: str, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = server_jobs(batch_client, config.job_queues, run_id)
        if all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.2)


def run(cli: Any, config: Path, run_id: str, *extra: str) -> Any:
    return cli("run", "-c", str(config), "--region", "us-west-2", "--run-id", run_id, *extra)


# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kill_after", [1, 3, 4])
def test_resume_after_sigkill_completes_the_run_with_no_job_missing_or_duplicated(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path, kill_after: int
) -> None:
    # GIVEN a run submitting slowly (2 SubmitJob/s), killed with SIGKILL after some rows reached the CSV
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)  # nothing finishes during the test: only submission matters
    csv_path = tmp_path / "submission.csv"
    process = cli.popen("run", "-c", str(config_path), "--run-id", "crash", "--rate", "2", "--workers", "1")
    deadline = time.monotonic() + 20
    while (not csv_path.exists() or len(csv_rows(csv_path)) < kill_after) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded_before = len(csv_rows(csv_path))
    assert kill_after <= recorded_before < 6

    # WHEN resume runs
    result = cli("resume", "-c", str(config_path), "--run-id", "crash")

    # THEN every job of the plan exists exactly once on the server and once in the CSV
    assert result.returncode == 0, result.stderr
    plan = build_plan(config, "crash")
    names = Counter(j["jobName"] for j in server_jobs(batch_client, config.job_queues, "crash"))
    assert names == Counter(s.name for s in plan.submissions)
    rows = csv_rows(csv_path)
    assert sorted(r["job_name"] for r in rows) == sorted(s.name for s in plan.submissions)
    assert f"run crash now has all {plan.submit_calls} jobs" in result.stdout
    # AND a second resume has nothing to do
    again = cli("resume", "-c", str(config_path), "--run-id", "crash")
    assert again.returncode == 0
    assert f"nothing to resume: all {plan.submit_calls} jobs of run crash are submitted" in again.stdout


def test_resume_records_a_job_created_before_the_crash_whose_row_never_reached_the_csv(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    assert run(cli, config_path, "torn").returncode == 0
    csv_path = tmp_path / "submission.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    # The crash window: SubmitJob answered, the row of the last job (and a torn half row) never got written.
    csv_path.write_text("".join(lines[:-1]) + lines[-1][:20])

    result = cli("resume", "-c", str(config_path), "--run-id", "torn")

    assert result.returncode == 0, result.stderr
    assert "recorded 1 jobs AWS holds that" in result.stdout
    assert "nothing to resume: all 5 jobs of run torn are submitted" in result.stdout
    assert batch_control.counters()["calls"].get("SubmitJob") == 5
    assert len({r["job_name"] for r in csv_rows(csv_path)}) == 5


def test_resume_refuses_a_changed_plan_unless_forced(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    assert run(cli, config_path, "changed").returncode == 0
    config_path.write_text(CONFIG.format(tmp=tmp_path).replace("array_size: 6", "array_size: 8"))

    result = cli("resume", "-c", str(config_path), "--run-id", "changed")

    assert result.returncode == 2
    assert "run changed does not match" in result.stderr
    assert "pass --force" in result.stderr


def test_status_counts_equal_the_servers_and_the_run_id_alone_gives_the_same_answer(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a finished run where children 1 and 4 of the first array failed with exit code 3
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail("st_first_gen_0", indices=[1, 4], exit_code=3)
    assert run(cli, config_path, "st").returncode == 0
    jobs = wait_finished(batch_client, config, "st")

    # WHEN status is asked from the CSV, then with the CSV deleted
    from_csv = cli("status", "-c", str(config_path), "--run-id", "st", "--format", "json")
    (tmp_path / "submission.csv").unlink()
    from_api = cli("status", "-c", str(config_path), "--run-id", "st", "--format", "json")

    # THEN the figures are the server's
    assert from_csv.returncode == 0, from_csv.stderr
    a, b = json.loads(from_csv.stdout), json.loads(from_api.stdout)
    server = Counter()
    for job in jobs:
        summary = (job.get("arrayProperties") or {}).get("statusSummary")
        server.update(summary if summary else {job["status"]: 1})
    # (AWS says FAILED for the children that never ran too: status names them BLOCKED)
    ours = Counter({k: v for k, v in a["totals"].items() if v and k != "BLOCKED"})
    ours["FAILED"] += a["totals"]["BLOCKED"]
    assert dict(ours) == {k: v for k, v in server.items() if v}
    # 2 failed; what waited for them never ran: blocked, not failed
    assert a["totals"] == {**dict.fromkeys(a["totals"], 0), "SUCCEEDED": 4, "FAILED": 2, "BLOCKED": 5 + 1 + 6}
    assert a["state"] == "failed"
    own = [{k: v for k, v in f.items() if k != "log_tail"} for f in a["failures"] if f["state"] == "failed"]
    assert own == [
        {
            "stage": "first",
            "module": "gen",
            "job_name": "st_first_gen_0",
            "job_id": own[0]["job_id"],
            "reason": "Essential container in task exited (exit code 3)",
            "state": "failed",
            "count": 2,
            "indices": [1, 4],
        }
    ]
    # Failures read back in one order whatever order AWS lists them in: stage order, then job name, then reason.
    assert [(f["stage"], f["job_name"]) for f in a["failures"]] == [
        ("first", "st_first_gen_0"),
        ("middle", "st_middle_algo_0"),
        ("middle", "st_middle_single_0"),
        ("last", "st_last_out_0"),
        ("last", "st_last_out_1"),
    ]
    assert b["source"] == "api"
    for key in ("totals", "stages", "failures", "state"):
        assert a[key] == b[key]
    # AND --watch exits non-zero for a failed run; text output names the reason
    watched = cli("status", "-c", str(config_path), "--run-id", "st", "--watch", "--interval", "0.1")
    assert watched.returncode == 1
    assert "failed: first/gen 2 x Essential container in task exited (exit code 3) indices 1, 4" in watched.stdout


def test_status_watch_exits_zero_when_the_run_succeeds(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.2, queue=0.02)
    assert run(cli, config_path, "ok").returncode == 0
    result = cli("status", "-c", str(config_path), "--run-id", "ok", "--watch", "--interval", "0.2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run ok: succeeded (from csv)" in result.stdout


def test_cancel_leaves_no_active_job_and_a_second_cancel_is_a_no_op(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=60, queue=0.01)  # first stage RUNNING, the rest PENDING
    assert run(cli, config_path, "stopme").returncode == 0

    first = cli("cancel", "-c", str(config_path), "--run-id", "stopme")

    assert first.returncode == 0, first.stderr
    assert "run stopme: cancelled 4 queued jobs, terminated 1 started jobs (5 were active)" in first.stdout
    assert "no job of run stopme is active" in first.stdout
    jobs = server_jobs(batch_client, config.job_queues, "stopme")
    assert len(jobs) == 5
    assert {j["status"] for j in jobs} == {"FAILED"}
    second = cli("cancel", "-c", str(config_path), "--run-id", "stopme")
    assert second.returncode == 0
    assert second.stdout.strip() == "nothing to cancel: no job of run stopme is active (5 jobs)"


def test_retry_failed_resubmits_exactly_the_failed_indices_and_reruns_downstream(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a finished run whose middle array failed on children 0, 2 and 3 (the glob does not match the retry's name)
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail("rt_middle_algo_0", indices=[0, 2, 3], exit_code=2)
    assert run(cli, config_path, "rt").returncode == 0
    wait_finished(batch_client, config, "rt")

    # WHEN retry-failed runs
    result = cli("retry-failed", "-c", str(config_path), "--run-id", "rt")

    # THEN one compact array of the three failed indices, and the last stage (failed by the dependency) again
    assert result.returncode == 0, result.stderr
    assert "retry middle.algo[0]: 3 failed indices: 0, 2, 3" in result.stdout
    assert "rerun 2 jobs whole" in result.stdout
    jobs = {j["jobName"]: j for j in server_jobs(batch_client, config.job_queues, "rt")}
    retry = batch_client.describe_jobs(jobs=[jobs["rt_middle_algo_0_retry-1"]["jobId"]])["jobs"][0]
    env = {e["name"]: e["value"] for e in retry["container"]["environment"]}
    assert env["CONFLUENCE_INDEX_MAP"] == "0,2,3"
    assert retry["arrayProperties"]["size"] == 3
    assert retry["dependsOn"] == []  # the first stage succeeded: nothing to wait for
    reruns = [n for n in jobs if n.endswith("_rerun-1")]
    assert sorted(reruns) == ["rt_last_out_0_rerun-1", "rt_last_out_1_rerun-1"]
    rerun = batch_client.describe_jobs(jobs=[jobs["rt_last_out_0_rerun-1"]["jobId"]])["jobs"][0]
    # single succeeded, so only the retry array is waited for
    assert [d["jobId"] for d in rerun["dependsOn"]] == [retry["jobId"]]
    rows = [r for r in csv_rows(tmp_path / "submission.csv") if r["kind"] == "retry"]
    assert sorted(r["job_name"] for r in rows) == sorted(["rt_middle_algo_0_retry-1", *reruns])
    # AND once the retry jobs end, the run counts as succeeded
    watched = cli("status", "-c", str(config_path), "--run-id", "rt", "--watch", "--interval", "0.2")
    assert watched.returncode == 0, watched.stdout
