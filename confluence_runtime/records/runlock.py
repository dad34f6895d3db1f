"""One run id is one run: the lock a command holds on a run's record while it submits into it, and the request
``cancel`` leaves for a command that holds it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ..errors import RunBusyError
from ..shellcmd import command
from .ledger import Ledger, LocalStore, local_root

LOCKS = ".locks"
# An observer (status, cancel) takes the lock shared for an instant to see whether anyone holds it; a command
# starting at that very instant tries again for this long before it calls the run busy.
ACQUIRE_TRIES, ACQUIRE_PAUSE = 20, 0.01


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lock (or asked its holder to stop)."""

    command: str
    pid: int
    host: str
    since: str

    def __str__(self) -> str:
        return f"`{command(self.command)}` (pid {self.pid} on {self.host}, since {self.since})"

    @classmethod
    def me(cls, command: str) -> Holder:
        return cls(command, os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds"))


def root_of(where: Ledger | str | Path | None) -> Path | None:
    """The folder that holds a run's lock: beside the submission CSV (a path), or the local folder of a ledger.
    None when there is no local folder (a ledger only in S3 has nothing to lock)."""
    if where is None:
        return None
    if isinstance(where, Ledger):
        return where.store.root if isinstance(where.store, LocalStore) else None
    return local_root(where)


def _paths(root: Path, run_id: str) -> tuple[Path, Path]:
    folder = root / LOCKS
    return folder / f"{run_id}.lock", folder / f"{run_id}.stop"


def _read(f: IO[str]) -> Holder | None:
    f.seek(0)
    try:
        data: dict[str, Any] = json.loads(f.read() or "{}")
        return Holder(str(data["command"]), int(data["pid"]), str(data["host"]), str(data["since"]))
    except (ValueError, KeyError, TypeError):
        return None  # being written this instant


def _gone(holder: Holder) -> bool:
    """A holder written by a process of this machine that no longer exists: what a killed holder leaves while an
    observer happens to be looking (the kernel released the holder's lock; the observer's is a moment's)."""
    if holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def busy_error(run_id: str, holder: Holder | None) -> RunBusyError:
    error = RunBusyError(
        f"run {run_id} is in progress: {holder or 'another confluence-submit command'} holds its record"
    )
    error.hint = f"wait for it to end, or stop it with: {command('cancel', '--run-id', run_id)}"
    return error


class RunLock:
    """Held while a command reads and submits into a run; a second holder fails at once, told who holds it.
    With no folder (``root`` None) it holds nothing."""

    def __init__(self, root: Path | None, run_id: str, command: str) -> None:
        self.root, self.run_id, self.command = root, run_id, command
        self._file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        if self.root is None:
            return self
        path, _ = _paths(self.root, self.run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("a+", encoding="utf-8")
        for attempt in range(ACQUIRE_TRIES):
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read(f)
                if (holder is not None and not _gone(holder)) or attempt == ACQUIRE_TRIES - 1:
                    f.close()
                    raise busy_error(self.run_id, holder) from None
                time.sleep(ACQUIRE_PAUSE)  # no live holder written: an observer's instant look, not a command
        f.seek(0)
        f.truncate()
        f.write(json.dumps(asdict(Holder.me(self.command))))
        f.flush()
        self._file = f
        clear_stop(self.root, self.run_id)  # a request left for an earlier holder is not meant for this one
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            # Empty it first, so an observer that sees the file never reads a holder that has let go.
            self._file.truncate(0)
            self._file.flush()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def stop_requested(self) -> Holder | None:
        """Who asked this lock's holder to stop (``cancel``), or None."""
        return stop_requested(self.root, self.run_id) if self.root is not None else None


def holder(root: Path | None, run_id: str) -> Holder | None:
    """Who holds the run's lock now, or None when nobody does."""
    if root is None:
        return None
    path, _ = _paths(root, run_id)
    try:
        f = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        return None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(f) or Holder("?", 0, "?", "?")
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None


def request_stop(root: Path, run_id: str, by: Holder) -> None:
    """Ask the run's lock holder to stop submitting (it looks before each SubmitJob)."""
    _, path = _paths(root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(by)), encoding="utf-8")
    os.replace(tmp, path)  # whole or absent: the holder never reads half a request


def stop_requested(root: Path, run_id: str) -> Holder | None:
    _, path = _paths(root, run_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(str(data["command"]), int(data["pid"]), str(data["host"]), str(data["since"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return Holder("cancel", 0, "?", "?")  # a request all the same


def clear_stop(root: Path, run_id: str) -> None:
    _, path = _paths(root, run_id)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
