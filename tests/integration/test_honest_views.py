"""Honest views, through the real console script against the emulator: children that never ran are blocked, not
failed; a failed child's last log lines stand under its reason; a run asked for somewhere else than it was recorded
is refused; Ctrl-C stops the watching, not the run; a piped watch prints only what changed."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from workflow import write_config

TRACEBACK = "ValueError: reach 71224100001 has no discharge"


def reader(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines as they come ("" at its end), read by a thread: a test waits with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


def failing_run(cli: Any, batch_control: Any, config_path: Path, run_id: str) -> None:
    """gen's children 1 and 4 fail, each ending its log with a traceback's last lines; the rest never runs."""
    batch_control.set_durations(default=0.05, queue=0.01)
    log = ["Traceback (most recent call last):", '  File "/app/run.py", line 12, in <module>', TRACEBACK]
    batch_control.fail(f"{run_id}_first_gen_0", indices=[1, 4], exit_code=3, log=log)
    assert cli("run", "-c", str(config_path), "--run-id", run_id).returncode == 0
    watched = cli("status", "-c", str(config_path), "--run-id", run_id, "--watch", "--interval", "0.1")
    assert watched.returncode == 1, watched.stderr


def test_children_that_never_ran_are_blocked_and_failures_show_their_last_log_lines(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run in which 2 children of gen failed and everything downstream never ran
    config_path, _ = write_config(tmp_path, provisioned)
    failing_run(cli, batch_control, config_path, "hv")

    # WHEN the operator asks for its status
    result = cli("status", "-c", str(config_path), "--run-id", "hv")

    # THEN 2 children failed and the 12 that waited for them are blocked, not failed
    assert result.returncode == 0, result.stderr
    assert "18 children: 4 succeeded, 2 failed, 12 blocked, 0 running, 0 queued" in result.stdout
    assert "failed: first/gen 2 x Essential container in task exited (exit code 3) indices 1, 4" in result.stdout
    # AND the failure's last 3 log lines stand under its reason, before the logs command
    lines = result.stdout.splitlines()
    at = lines.index("failed: first/gen 2 x Essential container in task exited (exit code 3) indices 1, 4")
    assert lines[at + 1 : at + 4] == [
        "  | Traceback (most recent call last):",
        '  |   File "/app/run.py", line 12, in <module>',
        f"  | {TRACEBACK}",
    ]
    assert lines[at + 4].lstrip().startswith("confluence-submit logs")
    # AND the children that never ran are one line, with no logs command (they have no log)
    assert "blocked: 12 children of 4 jobs never ran: a job they depend on failed (above); in middle/algo, " in (
        result.stdout
    )
    assert result.stdout.count("confluence-submit logs") == 1

    # AND the JSON says the same, states and log lines included
    data = json.loads(cli("status", "-c", str(config_path), "--run-id", "hv", "--output", "json").stdout)
    assert (data["totals"]["FAILED"], data["totals"]["BLOCKED"], data["totals"]["CANCELLED"]) == (2, 12, 0)
    assert isinstance(data["elapsed_seconds"], float) and data["elapsed_seconds"] >= 0  # durations in seconds
    own = [f for f in data["failures"] if f["state"] == "failed"]
    assert [f["log_tail"][-1] for f in own] == [TRACEBACK]
    assert {f["state"] for f in data["failures"]} == {"failed", "blocked"}

    # AND the report counts the same and shows each failed child's last log lines
    report = cli("report", "-c", str(config_path), "--run-id", "hv")
    assert report.returncode == 0, report.stderr
    assert "run hv: failed; 18 children: 4 succeeded, 2 failed, 12 blocked, 0 not finished" in report.stdout
    assert report.stdout.count(f"  | {TRACEBACK}") == 2
    page = (tmp_path / "submission.ledger" / "hv" / "report.html").read_text()
    assert "<h2>Failed children (2)</h2>" in page
    assert "<h2>Blocked children (12)</h2>" in page
    assert f"<code>{TRACEBACK}</code>" in page

    # AND report --output json says the same for tools, durations in seconds
    summary = json.loads(cli("report", "-c", str(config_path), "--run-id", "hv", "--output", "json").stdout)
    assert (summary["state"], summary["failed"], summary["blocked"], summary["succeeded"]) == ("failed", 2, 12, 4)
    assert isinstance(summary["seconds"], float)
    assert [f["log_tail"][-1] for f in summary["failures"]] == [TRACEBACK, TRACEBACK]

    # AND runs lists it the same way, its duration in seconds
    runs = json.loads(cli("runs", "-c", str(config_path), "--output", "json").stdout)
    assert [(r["failed"], r["blocked"], r["succeeded"]) for r in runs] == [(2, 12, 4)]
    assert isinstance(runs[0]["duration"], float)


def test_a_cancelled_run_counts_its_children_cancelled(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run whose jobs all wait (nothing reaches RUNNING), then cancelled
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30, queue=30)
    assert cli("run", "-c", str(config_path), "--run-id", "cx").returncode == 0
    cancelled = cli("cancel", "-c", str(config_path), "--run-id", "cx")
    assert cancelled.returncode == 0, cancelled.stderr

    # WHEN the operator asks for its status
    result = cli("status", "-c", str(config_path), "--run-id", "cx", "--output", "json")

    # THEN nothing is counted failed, no logs command is offered: the children are cancelled (or blocked by them)
    data = json.loads(result.stdout)
    assert data["state"] == "cancelled"
    totals = data["totals"]
    assert totals["FAILED"] == 0
    assert totals["CANCELLED"] > 0 and totals["CANCELLED"] + totals["BLOCKED"] == 18
    text = cli("status", "-c", str(config_path), "--run-id", "cx")
    assert "confluence-submit logs" not in text.stdout
    assert "cancelled: " in text.stdout and "Confluence run cx cancelled" in text.stdout


def test_a_run_asked_for_in_another_region_is_refused_unless_read_from_the_ledger(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    assert cli("run", "-c", str(config_path), "--run-id", "far").returncode == 0

    # Another region of the same endpoint holds none of the run's jobs (moto keeps regions apart, as AWS does).
    result = cli("status", "-c", str(config_path), "--run-id", "far", "--region", "eu-west-1")

    assert result.returncode == 1
    assert result.stdout == ""
    message = " ".join(result.stderr.split())
    assert (
        f"error: run far was recorded with endpoint {cli.endpoint_url}, region us-west-2, account 123456789012; "
        "this command asks region eu-west-1: AWS there knows none of its jobs, so a running run would look frozen"
    ) in message
    assert (
        f"hint: ask where it was recorded (--endpoint-url {cli.endpoint_url} --region us-west-2; credentials of "
        "account 123456789012), or pass --from-ledger to read what the ledger last observed"
    ) in message
    # AND the report is refused the same way
    report = cli("report", "-c", str(config_path), "--run-id", "far", "--region", "eu-west-1")
    assert report.returncode == 1
    assert "this command asks region eu-west-1" in report.stderr

    # WHEN the operator asks to read the ledger anyway, it goes on, saying so
    anyway = cli("status", "-c", str(config_path), "--run-id", "far", "--region", "eu-west-1", "--from-ledger")
    assert "note: run far was recorded with" in " ".join(anyway.stderr.split())


def test_ctrl_c_stops_watching_not_the_run(cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path) -> None:
    # GIVEN a run that keeps running, watched
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=600)
    assert cli("run", "-c", str(config_path), "--run-id", "cc").returncode == 0
    watch = cli.popen("status", "-c", str(config_path), "--run-id", "cc", "--watch", "--interval", "0.2")
    try:
        assert reader(watch).get(timeout=60).startswith("run cc: running")  # the first view is out: it is watching
        # WHEN the operator presses Ctrl-C
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=30)
        assert watch.stderr is not None
        stderr = watch.stderr.read()
    finally:
        if watch.poll() is None:
            watch.kill()
    # THEN the watch says the run goes on, with the command to watch it again, and exits 130
    assert watch.returncode == 130
    assert "Aborted" not in stderr
    assert "stopped watching; the run goes on. Watch it again with: confluence-submit status -s " in stderr
    assert stderr.rstrip().endswith("--watch") and " --run-id cc " in stderr
    # AND the run does go on
    again = json.loads(cli("status", "-c", str(config_path), "--run-id", "cc", "--output", "json").stdout)
    assert again["state"] == "running"


def test_a_piped_watch_prints_only_what_changed(cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path) -> None:
    # GIVEN a run whose first and last stages are held RUNNING (the emulator's hold: nothing races its clock)
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    first = batch_control.hold("RUNNING", name_glob="pw_first_*")
    last = batch_control.hold("RUNNING", name_glob="pw_last_*")
    assert cli("run", "-c", str(config_path), "--run-id", "pw").returncode == 0

    # WHEN it is watched into a pipe at a fast poll
    watch = cli.popen("status", "-c", str(config_path), "--run-id", "pw", "--watch", "--interval", "0.05")
    try:
        lines = reader(watch)
        seen = [lines.get(timeout=60) for _ in range(3)]  # the first view's summary
        assert seen[2].startswith("18 children: 0 succeeded, 0 failed, 6 running, 12 queued"), seen
        # AND the first stage ends, the second runs, the last one starts and stays put while many polls pass
        batch_control.release(first)
        while not seen[-1].endswith("18 children: 12 succeeded, 0 failed, 6 running, 0 queued\n"):
            seen.append(lines.get(timeout=60))
        time.sleep(1.0)  # polls while nothing changes: none of them may print anything
        batch_control.release(last)
        watch.wait(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    output = "".join(seen) + "".join(iter(lines.get, ""))

    # THEN the table is printed twice (first and last poll), and in between one line per change
    assert watch.returncode == 0, output
    assert output.count("stage / module") == 2
    between = output.split("stage / module")[1].split("run pw: succeeded")[0]
    changes = [line.split(" ", 1)[1] for line in between.splitlines() if " running: " in line]
    assert changes[-1] == "running: 18 children: 12 succeeded, 0 failed, 6 running, 0 queued", output
    assert len(changes) == len(set(changes))  # a poll that changed nothing printed nothing
    assert between.count("stage / module") == 0


def test_run_shows_its_submission_progress(cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)

    result = cli("run", "-c", str(config_path), "--run-id", "sp")

    # a line when each stage starts being submitted, and at the end (and at each tenth of a long run)
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if re.match(r"submitted \d+ of \d+ jobs", line)]
    assert progress[0] == "submitted 1 of 5 jobs (stage first)"
    assert "submitted 2 of 5 jobs (stage middle)" in progress
    assert progress[-1] == "submitted 5 of 5 jobs (stage last)"
