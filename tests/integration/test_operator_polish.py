"""The operator's first hour, through the real console script against the emulator: retry-failed's dry run says
what it would submit in words, resume and retry-failed watch and log like run, and `runs` with no run points at
the sandbox's runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from workflow import write_config


@pytest.mark.slow
def test_retry_failed_dry_run_in_words_then_retry_with_watch_verbose_and_log_file(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a finished run in which children 1 and 4 of gen failed once (so everything downstream never ran)
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail("rp_first_gen_0", indices=[1, 4], exit_code=3)
    assert cli("run", "-c", str(config_path), "--run-id", "rp").returncode == 0
    assert cli("status", "-c", str(config_path), "--run-id", "rp", "--watch", "--interval", "0.1").returncode == 1

    # WHEN the operator asks what retry-failed would do
    dry = cli("retry-failed", "-c", str(config_path), "--run-id", "rp", "--dry-run")

    # THEN each submission is described in words: the compact array of the failed children, plain jobs as such
    assert dry.returncode == 0, dry.stderr
    assert "  would submit rp_first_gen_0_retry-1 (array of 2)" in dry.stdout
    assert "  would submit rp_middle_single_0_rerun-1 (plain job)" in dry.stdout
    assert "(array 0)" not in dry.stdout

    # WHEN they retry for real, watching, with -v and a log file of their own
    log = tmp_path / "retry.log"
    retried = cli(
        "retry-failed", "-c", str(config_path), "--run-id", "rp", "--watch", "--interval", "0.1", "-v",
        "--log-file", str(log),
    )  # fmt: skip

    # THEN it submits, follows the run to its end (exit 0: it succeeded) and logs each submission to both places
    assert retried.returncode == 0, retried.stderr
    assert "retry generation 1: submitted" in retried.stdout
    assert "run rp: succeeded" in retried.stdout
    assert "rp_first_gen_0_retry-1" in log.read_text()
    assert "rp_first_gen_0_retry-1" in retried.stderr


def test_resume_watches_like_run(cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    assert cli("run", "-c", str(config_path), "--run-id", "rw").returncode == 0

    resumed = cli("resume", "-c", str(config_path), "--run-id", "rw", "--watch", "--interval", "0.1")

    assert resumed.returncode == 0, resumed.stderr
    assert "nothing to resume: all 5 jobs of run rw are submitted" in resumed.stdout
    assert "run rw: succeeded" in resumed.stdout


def test_runs_with_no_run_points_at_the_sandbox_runs_with_a_command_that_works(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run recorded where `confluence-submit sandbox` records its runs (.sandbox/ under the directory)
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)
    assert cli("run", "-c", str(config_path), "-s", ".sandbox/submission.csv", "--run-id", "sb").returncode == 0

    # WHEN the operator lists the runs of the config's own record, which holds none
    empty = cli("runs", "-c", str(config_path))

    # THEN it says so, and where the sandbox's runs are, with the command that lists them
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.strip() == f"no run in {tmp_path / 'submission.ledger'}"
    assert "the sandbox's runs (make demo, confluence-submit sandbox) are in .sandbox/submission.ledger" in (
        empty.stderr
    )
    command = empty.stderr.strip().splitlines()[-1].split()
    assert command == ["confluence-submit", "runs", "-s", ".sandbox/submission.csv"]
    listed = cli(*command[1:])
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[2].split()[0] == "sb"
