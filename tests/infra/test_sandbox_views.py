"""The operator's view of a rehearsed failure in the sandbox (the shipped workflow, provisioned from the templates):
one child fails, what waited for it is blocked, and the failed child's last log lines stand under its reason in the
watch's summary, in status and in the report."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

from .test_sandbox import SANDBOX_KEYS, confluence

REASON = "failed: prediagnostics/prediagnostics 1 x Essential container in task exited (exit code 1) indices 3"
LAST_LINE = "  | confluence sandbox: failure rehearsed by --fail prediagnostics.prediagnostics[3]"


def test_one_rehearsed_failure_is_one_failed_child_and_the_rest_blocked(cli_synth: Any, tmp_path: Path) -> None:
    # GIVEN a sandbox run in which child 3 of prediagnostics fails
    result = confluence(
        "sandbox", "--keep", "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path), "--job-seconds",
        "0.05", "--fail", "prediagnostics.prediagnostics[3]",
    )  # fmt: skip
    pid = int(re.search(r"stop it with: kill (\d+)", result.stderr)[1])  # type: ignore[index]
    try:
        # THEN the watch's summary counts 1 failed and every other child that did not succeed as blocked
        assert result.returncode == 1, result.stderr[-3000:]
        counts = re.search(
            r"(\d+) children: (\d+) succeeded, 1 failed, (\d+) blocked, 0 running, 0 queued", result.stdout
        )
        assert counts is not None, result.stdout[-3000:]
        total, succeeded, blocked = (int(g) for g in counts.groups())
        assert blocked > 0 and succeeded + 1 + blocked == total
        # AND the failed child's last log line stands under its reason
        lines = result.stdout.splitlines()
        at = len(lines) - 1 - lines[::-1].index(REASON)  # in the summary printed last
        assert LAST_LINE in lines[at + 1 : at + 4]
        url = result.stdout.strip().splitlines()[-1].removeprefix("--endpoint-url ")
        csv = str(tmp_path / "submission.csv")

        # WHEN the operator asks status and the report
        status = confluence("status", "-s", csv, "--endpoint-url", url, aws=SANDBOX_KEYS)
        report = confluence("report", "-s", csv, "--endpoint-url", url, aws=SANDBOX_KEYS)

        # THEN both count the same, and show the failed child's last log lines
        assert status.returncode == 0, status.stderr
        assert f"{total} children: {succeeded} succeeded, 1 failed, {blocked} blocked, 0 running, 0 queued" in (
            status.stdout
        )
        assert LAST_LINE in status.stdout
        assert report.returncode == 0, report.stderr
        assert f"{total} children: {succeeded} succeeded, 1 failed, {blocked} blocked, 0 not finished" in report.stdout
        assert "failed: prediagnostics/prediagnostics index 3: Essential container in task exited (exit code 1)" in (
            report.stdout
        )
        assert LAST_LINE in report.stdout
    finally:
        os.kill(pid, signal.SIGTERM)
