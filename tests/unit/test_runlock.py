"""The lock on a run's record and cancel's request to stop: real files and real processes, no AWS."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from confluence_runtime.apply.run import run_id_in_use
from confluence_runtime.errors import RunBusyError
from confluence_runtime.records.ledger import local_root
from confluence_runtime.records.runlock import Holder, RunLock, holder, request_stop, root_of, stop_requested
from confluence_runtime.views.status import RunStatus


def test_a_second_holder_fails_at_once_naming_the_first_and_the_lock_is_free_once_let_go(tmp_path: Path) -> None:
    root = root_of(tmp_path / "submission.csv")
    assert root == tmp_path / "submission.ledger"
    with RunLock(root, "r1", "run"):
        seen = holder(root, "r1")
        assert seen is not None
        assert (seen.command, seen.pid, seen.host) == ("run", os.getpid(), socket.gethostname())
        with pytest.raises(RunBusyError) as refused, RunLock(root, "r1", "resume"):
            pass  # pragma: no cover - never entered
        assert str(refused.value) == f"run r1 is in progress: {seen} holds its record"
        assert refused.value.exit_code == 1
        assert refused.value.hint == "wait for it to end, or stop it with: confluence-submit cancel --run-id r1"
        with RunLock(root, "r2", "run"):  # another run of the same record is not held
            pass
    assert holder(root, "r1") is None
    with RunLock(root, "r1", "resume"):
        assert str(holder(root, "r1")).startswith(f"`confluence-submit resume` (pid {os.getpid()} on ")
    # The ledger lists no run for the lock files.
    assert sorted(p.name for p in root.iterdir()) == [".locks"]


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path: Path) -> None:
    root = local_root(tmp_path / "s.csv")
    code = (
        "import sys, time; from pathlib import Path; from confluence_runtime.records.runlock import RunLock\n"
        f"lock = RunLock(Path({str(root)!r}), 'k', 'run').__enter__(); print('held', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        assert holder(root, "k") == Holder("run", child.pid, socket.gethostname(), holder(root, "k").since)  # type: ignore[union-attr]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert holder(root, "k") is None
    with RunLock(root, "k", "resume"):  # what the killed holder wrote is no obstacle
        pass


def test_a_stop_request_reaches_the_holder_and_a_new_holder_starts_without_it(tmp_path: Path) -> None:
    root = tmp_path / "s.ledger"
    canceller = Holder("cancel", 42, "host", "2026-11-26T04:00:00+00:00")
    with RunLock(root, "r", "run") as lock:
        assert lock.stop_requested() is None
        request_stop(root, "r", canceller)
        assert lock.stop_requested() == canceller
    with RunLock(root, "r", "resume") as lock:
        assert lock.stop_requested() is None  # the request was for the earlier holder
    assert stop_requested(root, "r") is None
    assert RunLock(None, "r", "run").__enter__().stop_requested() is None  # no folder (an S3-only ledger)


def test_an_observer_looking_at_the_instant_a_command_starts_does_not_make_it_busy(tmp_path: Path) -> None:
    root = tmp_path / "s.ledger"
    with RunLock(root, "r", "run"):
        pass
    stop = time.monotonic() + 1.0
    looker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from pathlib import Path; from confluence_runtime.records.runlock import holder\n"
            f"end = time.monotonic() + 1.0\nwhile time.monotonic() < end: holder(Path({str(root)!r}), 'r')\n",
        ]
    )
    try:
        while time.monotonic() < stop:
            with RunLock(root, "r", "run"):
                pass
    finally:
        looker.wait()


def test_where_a_run_id_is_in_use_is_said_in_words() -> None:
    assert run_id_in_use("r", record=None, ledger=None, aws=[]) is None
    assert run_id_in_use("r", record="out/s.csv", ledger="out/s.ledger", aws=[]) == "out/s.csv already records it"
    assert run_id_in_use("r", record=None, ledger="out/s.ledger", aws=[]) == (
        "the run ledger out/s.ledger already holds it"
    )
    assert run_id_in_use("r", record=None, ledger=None, aws=["r_a_m_0", "r_b_n_0", "r_b_o_0", "r_c_p_0"]) == (
        "AWS already holds 4 of its jobs (r_a_m_0, r_b_n_0, r_b_o_0 and 1 more)"
    )


def test_a_run_being_submitted_is_submitting_not_incomplete_and_not_finished() -> None:
    status = RunStatus("r", "csv", [], [], [], {}, missing=["r_b_n_0"], duplicates=[])
    assert (status.state, status.finished) == ("incomplete", True)
    status.submitting = "`confluence-submit run` (pid 1 on h, since t)"
    assert (status.state, status.finished) == ("submitting", False)
