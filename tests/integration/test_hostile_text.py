"""Text from AWS, from containers and from files is data: through ``status``, ``logs``, ``report`` and config
errors it is never read as rich markup and no terminal escape reaches the output.

The status reason is set through the emulator's real API: AWS Batch API reference, TerminateJob: "reason: A
message to attach to the job that explains the reason for canceling it. This message is returned by future
DescribeJobs operations on the job." Anyone allowed to terminate the venue's jobs writes text every operator's
terminal then shows.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from workflow import server_jobs, write_config

# rich markup, clear screen (CSI 2J), write the clipboard (OSC 52), a hidden link (OSC 8), an 8-bit CSI, a bell
HOSTILE = (
    "[/x] [bold]boom \x1b[2J\x1b]52;c;cHduZWQ=\x07 \x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ \x9b31m\x07"
)
SHOWN = "[/x] [bold]boom  click "  # what may reach the terminal of it


def assert_clean(result: Any) -> str:
    """No traceback, no escape or control character (but newlines and tabs) in what the command printed."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "MarkupError" not in output
    bad = sorted({c for c in output if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F})
    assert bad == [], (bad, output)
    return output


def test_a_hostile_status_reason_and_log_line_are_shown_as_plain_text(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run whose plain job someone terminated with a hostile reason, and a child whose log ends hostile
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01, by_name={"ht_middle_single_0": 60})
    batch_control.fail("ht_middle_algo_0", indices=[2], exit_code=3, log=["reading reach 2", HOSTILE])
    assert cli("run", "-c", str(config_path), "--run-id", "ht").returncode == 0
    (single,) = [j for j in server_jobs(batch_client, config.job_queues, "ht") if j["jobName"] == "ht_middle_single_0"]
    batch_client.terminate_job(jobId=single["jobId"], reason=HOSTILE)
    deadline = time.monotonic() + 30
    while batch_client.describe_jobs(jobs=[single["jobId"]])["jobs"][0]["status"] != "FAILED":
        assert time.monotonic() < deadline, "the terminated job never failed"
        time.sleep(0.05)
    assert batch_client.describe_jobs(jobs=[single["jobId"]])["jobs"][0]["statusReason"] == HOSTILE

    # WHEN the operator looks at the run: status (until it ends), logs of both jobs, the report
    watched = cli("status", "-c", str(config_path), "--run-id", "ht", "--watch", "--interval", "0.1")
    status = cli("status", "-c", str(config_path), "--run-id", "ht")
    logs_child = cli(
        "logs", "-c", str(config_path), "--run-id", "ht", "--stage", "middle", "--module", "algo", "--index", "2"
    )
    logs_single = cli("logs", "-c", str(config_path), "--run-id", "ht", "--stage", "middle", "--module", "single")
    report = cli("report", "-c", str(config_path), "--run-id", "ht")

    # THEN each answers with its usual exit code, the reason and the log line as plain text, no escape in sight
    assert watched.returncode == 1, watched.stderr
    assert status.returncode == 0, status.stderr
    assert f"failed: middle/single 1 x {SHOWN}" in " ".join(assert_clean(status).split("\n"))
    assert_clean(watched)
    assert logs_child.returncode == 0, logs_child.stderr
    assert_clean(logs_child)
    assert logs_child.stdout.splitlines()[-1].endswith("  " + SHOWN)
    assert SHOWN in assert_clean(logs_single)
    assert report.returncode == 0, report.stderr
    assert_clean(report)
    # AND the child's last log lines under its reason (status and report) are plain text too
    assert f"  | {SHOWN.rstrip()}" in status.stdout
    assert f"  | {SHOWN.rstrip()}" in report.stdout


def test_a_hostile_yaml_value_is_quoted_in_the_config_error(cli: Any, tmp_path: Path) -> None:
    # GIVEN markup and escapes in a value the loader refuses, and markup in one it quotes as written (a mount point)
    config = tmp_path / "confluence.yaml"
    escaped = HOSTILE.replace("\\", "\\\\").replace("\x1b", "\\e").replace("\x07", "\\a").replace("\x9b", "\\x9b")
    config.write_text(
        "stages:\n"
        "  a:\n"
        "    m:\n"
        f'      job_queue: "{escaped}"\n'
        "      mounts:\n"
        '        flpe: "/mnt/[/x] [bold]"\n'
        '        moi: "/mnt/[/x] [bold]"\n'
    )

    result = cli("plan", "-c", str(config), endpoint=False)

    # THEN exit 2 and the problems, with the brackets shown as written and no escape reaching the terminal
    assert result.returncode == 2
    output = assert_clean(result)
    assert "stages.a.m.job_queue: job queue '[/x] [bold]boom " in output
    assert "stages.a.m.mounts.moi: /mnt/[/x] [bold] is already the mount point of flpe" in output


def test_the_command_a_stopped_watch_prints_pastes_as_one_argument_per_value(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run recorded under a path holding a command substitution, watched
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=600)
    record = tmp_path / "$(touch PWNED)" / "submission.csv"
    assert cli("run", "-c", str(config_path), "-s", str(record), "--run-id", "q1").returncode == 0
    watch = cli.popen("status", "-c", str(config_path), "-s", str(record), "--run-id", "q1", "--watch")
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline()  # watching (piped output is flushed at each poll)
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.stderr is not None
    stderr = watch.stderr.read()

    # WHEN the printed command is pasted into a shell (its arguments echoed instead of run)
    assert watch.returncode == 130, stderr
    printed = stderr.split("Watch it again with: ", 1)[1].strip()
    pasted = subprocess.run(
        ["bash", "-c", "printf '%s\\n' " + printed.removeprefix("confluence-submit ")],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip

    # THEN each value is one argument, as written, and nothing ran
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout.splitlines()[:3] == ["status", "-s", str(record)]
    assert not (tmp_path / "PWNED").exists()
