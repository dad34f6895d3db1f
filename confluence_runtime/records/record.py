"""The run record: the submission CSV, appended one durable row per submitted job."""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ..errors import RecordError
from ..planning.shaping import Submission

ORIGINAL_COLUMNS = ("stage", "algorithm", "job_name", "job_id")


@dataclass(frozen=True)
class Row:
    stage: str
    algorithm: str
    job_name: str
    job_id: str
    run_id: str
    kind: str = "module"
    job_index: int = 0
    array_size: int = 0
    array_offset: int = 0
    job_queue: str = ""
    job_definition: str = ""
    depends_on: str = ""  # job ids joined by ';'
    submitted_at: str = ""
    plan_digest: str = ""

    @classmethod
    def for_submission(
        cls, submission: Submission, job_id: str, run_id: str, digest: str, dependency_ids: Iterable[str] = ()
    ) -> Row:
        return cls(
            stage=submission.stage,
            algorithm=submission.module,
            job_name=submission.name,
            job_id=job_id,
            run_id=run_id,
            kind=submission.kind,
            job_index=submission.job_index,
            array_size=submission.array_size,
            array_offset=submission.array_offset,
            job_queue=submission.job_queue,
            job_definition=submission.job_definition,
            depends_on=";".join(dependency_ids),
            submitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            plan_digest=digest,
        )


COLUMNS = tuple(f.name for f in fields(Row))
_INT_COLUMNS = {"job_index", "array_size", "array_offset"}


class Recorder:
    """Appends rows with flush + fsync so a crash never loses a job that AWS accepted and we were told of."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> csv.DictWriter[str]:
        if self._writer is None:
            check_appendable(self.path)
            existing = read_header(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
            if existing is None:
                self._writer.writeheader()
                self._sync()
        return self._writer

    def _sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, row: Row) -> None:
        self._open().writerow(asdict(row))
        self._sync()

    def extend(self, rows: Iterable[Row]) -> None:
        """Several rows, durable together (one fsync)."""
        writer = self._open()
        for row in rows:
            writer.writerow(asdict(row))
        self._sync()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file, self._writer = None, None


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[IO[str]]:
    """Open a submission file for reading; what the system or the bytes refuse becomes a RecordError naming it."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            yield f
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise RecordError(f"{path}: is a directory, not a submission file") from None
    except OSError as e:
        raise RecordError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise RecordError(
            f"{path}: not a UTF-8 CSV (byte 0x{e.object[e.start]:02x} at offset {e.start}); a submission file is "
            "the UTF-8 CSV this tool writes"
        ) from None
    except csv.Error as e:
        raise RecordError(f"{path}: not a readable CSV ({e})") from None


def original_format_error(path: Path) -> RecordError:
    error = RecordError(
        f"{path}: a submission file of the original tool (columns {','.join(ORIGINAL_COLUMNS)} only): it names no "
        "run id, queue or plan, so this tool cannot continue or inspect those jobs from it"
    )
    error.hint = "start a new run with another --submission-file; the original tool's jobs can be looked up by job_id"
    return error


def read_header(path: Path) -> tuple[str, ...] | None:
    """The header of an existing, non-empty file; None when there is nothing yet."""
    try:
        with _reading(path) as f:
            first = f.readline()
    except FileNotFoundError:
        return None
    if not first.strip():
        return None
    return tuple(next(csv.reader([first])))


def check_appendable(path: str | Path) -> None:
    """Refuse, before anything is submitted, a file whose rows this tool would not append to (the original tool's
    four columns, another CSV, bytes that are not UTF-8)."""
    path = Path(path)
    existing = read_header(path)
    if existing == ORIGINAL_COLUMNS:
        raise original_format_error(path)
    if existing is not None and existing != COLUMNS:
        raise RecordError(
            f"{path}: its columns ({','.join(existing)}) are not this tool's ({','.join(COLUMNS)}); "
            "use another --submission-file so nothing in it is overwritten"
        )


def read_rows(path: str | Path, run_id: str | None = None) -> list[Row]:
    """Rows of one run (the latest in the file when ``run_id`` is None). A torn last line from a crash is skipped."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such submission file (pass -s FILE, or --run-id to find the jobs by tag)")
    with _reading(path) as f:
        reader = csv.DictReader(f)
        header = tuple(reader.fieldnames or ())
        if header == ORIGINAL_COLUMNS:
            raise original_format_error(path)
        if header[:4] != ORIGINAL_COLUMNS or not set(COLUMNS) <= set(header):
            raise RecordError(f"{path}: not a submission file (expected columns {','.join(COLUMNS)})")
        rows = []
        for number, raw in enumerate(reader, start=2):
            if None in raw.values() or not raw.get("job_id"):
                continue  # a row cut short by a crash mid-write: the reconcile step finds that job by name
            try:
                values = {k: (int(raw[k] or 0) if k in _INT_COLUMNS else raw.get(k) or "") for k in COLUMNS}
            except ValueError as e:
                raise RecordError(f"{path}:{number}: unreadable row ({e})") from e
            rows.append(Row(**values))  # type: ignore[arg-type]
    if run_id is None:
        run_id = rows[-1].run_id if rows else None
    return [r for r in rows if r.run_id == run_id]


def run_ids(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.exists():
        return []
    with _reading(path) as f:
        return list(dict.fromkeys(r.get("run_id", "") for r in csv.DictReader(f) if r.get("run_id")))
