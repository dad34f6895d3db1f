"""The run ledger: what a run is and what became of each of its jobs, kept where a kill cannot lose it."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .. import names
from ..attempts import reclaims
from ..aws.api import Client, call, call_write, client, describe_error, service_error_code
from ..errors import ConfluenceError, RecordError
from ..states import FINAL
from .record import COLUMNS, Recorder, Row, read_rows, run_ids

SCHEMA = 1
HEADER, OUTCOMES, EVENTS, JOBS = "run.json", "outcomes.json", "events.json", "jobs.csv"
REF = "$ref"  # an outcome kept as a reference to the ledger object holding it (Ledger.keep_final)
CAS_ATTEMPTS = 20  # compare-and-swap rounds before giving up: only a storm of concurrent writers gets this far
LEDGER_SUFFIX = ".ledger"


class LedgerError(ConfluenceError):
    """The ledger cannot be read or written (exit code 1: the run itself may be fine)."""


class LedgerConflict(LedgerError):
    """A conditional write lost: the key already exists (create) or changed since it was read (replace)."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_from_ms(value: Any) -> str | None:
    """AWS gives epoch milliseconds; the ledger keeps ISO 8601 UTC so a person can read it."""
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC).isoformat(timespec="milliseconds")


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --------------------------------------------------------------------------------------------------------------
# Records


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _from_dict(cls: Any, data: Mapping[str, Any]) -> Any:
    """Build a dataclass from a dict, ignoring keys a newer writer added (readers stay forward-compatible) and
    taking defaults for the keys a writer left out (a child's record omits its default fields)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class RunHeader:
    """Who started the run, from what, against which account, region and endpoint. Written before any SubmitJob."""

    run_id: str
    plan_digest: str
    config_path: str
    config_sha256: str
    prefix: str
    region: str
    started_at: str
    tool_version: str
    venue: str | None = None
    account: str | None = None  # STS GetCallerIdentity; None when it could not be asked
    endpoint: str | None = None  # None: AWS itself
    profile: str | None = None
    submission_file: str = ""
    submit_calls: int = 0
    children: int = 0
    stages: tuple[str, ...] = ()
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = list(self.stages)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunHeader:
        header: RunHeader = _from_dict(cls, data)
        return replace(header, stages=tuple(header.stages))

    @property
    def where(self) -> str:
        """Endpoint, region and account in one phrase, for messages that compare what was asked with this."""
        return f"endpoint {self.endpoint or 'AWS'}, region {self.region}, account {self.account or 'unknown'}"


@dataclass(frozen=True)
class ChildOutcome:
    """One array child (or the plain job itself) worth remembering: a failure, or one of the slowest."""

    index: int  # the global index the module worked on (offset or retry index map applied); -1 for a plain job
    status: str
    reason: str = ""
    exit_code: int | None = None
    array_index: int | None = None  # AWS's AWS_BATCH_JOB_ARRAY_INDEX of the child
    log_stream: str | None = None
    attempts: int = 0
    started_at: str | None = None
    stopped_at: str | None = None
    reclaims: int = 0  # attempts a Spot reclaim ended (known from a DescribeJobs entry; a ListJobs summary: 0)

    def to_dict(self) -> dict[str, Any]:
        # asdict's output without its deep copy and without the fields left at their defaults (every field is a
        # scalar): a run's failed children number in the hundreds of thousands, and each is written to the
        # ledger, so a child's record is as short as it can be.
        data: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.reason:
            data["reason"] = self.reason
        if self.exit_code is not None:
            data["exit_code"] = self.exit_code
        if self.array_index is not None:
            data["array_index"] = self.array_index
        if self.log_stream is not None:
            data["log_stream"] = self.log_stream
        if self.attempts:
            data["attempts"] = self.attempts
        if self.started_at is not None:
            data["started_at"] = self.started_at
        if self.stopped_at is not None:
            data["stopped_at"] = self.stopped_at
        if self.reclaims:
            data["reclaims"] = self.reclaims
        return data

    @property
    def seconds(self) -> float | None:
        start, stop = parse_iso(self.started_at), parse_iso(self.stopped_at)
        return (stop - start).total_seconds() if start and stop else None


@dataclass(frozen=True)
class JobOutcome:
    """What was last observed of one submitted job (an array parent, a plain job or a barrier)."""

    job_id: str
    job_name: str
    status: str
    observed_at: str
    status_reason: str = ""
    exit_code: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    array_size: int = 0
    counts: tuple[tuple[str, int], ...] = ()  # children per status (arrays); empty for plain jobs
    failed: tuple[ChildOutcome, ...] = ()  # failed children with reasons (a plain job: one entry, index -1)
    slowest: tuple[ChildOutcome, ...] = ()  # the longest-running children seen, slowest first
    index_map: tuple[int, ...] = ()  # a compact retry's global indices (CONFLUENCE_INDEX_MAP); empty otherwise
    log_group: str | None = None
    log_stream: str | None = None  # the latest attempt's stream (plain jobs)
    attempts: int = 0

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def count_map(self) -> dict[str, int]:
        return dict(self.counts)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}  # the nested ones are replaced below
        data["counts"] = dict(self.counts)
        data["failed"] = [c.to_dict() for c in self.failed]
        data["slowest"] = [c.to_dict() for c in self.slowest]
        # ranges (``0-211,213-4097``), as CONFLUENCE_INDEX_MAP gives them: a compact job's map holds thousands
        data["index_map"] = names.encode_index_map(self.index_map) if self.index_map else []
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobOutcome:
        outcome: JobOutcome = _from_dict(cls, data)
        return replace(
            outcome,
            counts=tuple((str(k), int(v)) for k, v in dict(data.get("counts") or {}).items()),
            failed=tuple(_from_dict(ChildOutcome, c) for c in data.get("failed") or ()),
            slowest=tuple(_from_dict(ChildOutcome, c) for c in data.get("slowest") or ()),
            index_map=_index_map(data.get("index_map")),
        )


def _index_map(value: Any) -> tuple[int, ...]:
    """A job's index map as written: ranges (this version), or a list of indices (earlier ones)."""
    if isinstance(value, str):
        return tuple(names.decode_index_map(value)) if value else ()
    return tuple(int(i) for i in value or ())


@dataclass(frozen=True)
class RunEvent:
    """Something that happened to the run as a whole (submitted, resumed, cancelled, retried, reported, ...)."""

    at: str
    kind: str
    detail: str = ""
    by: str = ""  # the command or component that noted it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunRecord:
    """A snapshot of one run as the ledger holds it."""

    header: RunHeader | None
    rows: tuple[Row, ...]
    outcomes: Mapping[str, JobOutcome]
    events: tuple[RunEvent, ...]
    supervised: str | None = None  # a supervised run's verdict (its supervisor's document): running, over_budget, ...

    @property
    def cancelled(self) -> bool:
        return any(e.kind == "cancelled" for e in self.events)


def merge_outcome(old: JobOutcome | None, new: JobOutcome) -> JobOutcome:
    """Keep the more final, then the later observation; an order-independent merge of duplicates. Of two final
    observations the later wins, keeping what only the earlier one learned (children's log streams, the slowest
    children), since a later poll need not ask AWS for those again."""
    if old is None:
        return new
    rank_old, rank_new = (old.final, old.observed_at), (new.final, new.observed_at)
    winner, other = (new, old) if rank_new >= rank_old else (old, new)
    if not (winner.final and other.final):
        return winner
    streams = {c.index: c for c in other.failed if c.log_stream}
    failed = tuple(
        c
        if c.log_stream or c.index not in streams
        else replace(c, log_stream=streams[c.index].log_stream, attempts=max(c.attempts, streams[c.index].attempts))
        for c in winner.failed
    )
    return replace(winner, failed=failed, slowest=winner.slowest or other.slowest)


def outcome_from_job(
    job: Mapping[str, Any],
    *,
    observed_at: str | None = None,
    failed: Iterable[ChildOutcome] = (),
    slowest: Iterable[ChildOutcome] = (),
    index_map: Iterable[int] = (),
    log_group: str | None = None,
) -> JobOutcome:
    """A :class:`JobOutcome` from one DescribeJobs entry (and what the caller learned about its children)."""
    container = job.get("container") or {}
    attempts = job.get("attempts") or []
    array = job.get("arrayProperties") or {}
    summary = array.get("statusSummary") or {}
    exit_code = container.get("exitCode")
    return JobOutcome(
        job_id=str(job["jobId"]),
        job_name=str(job.get("jobName", "")),
        status=str(job.get("status", "")),
        observed_at=observed_at or now_iso(),
        status_reason=str(job.get("statusReason") or ""),
        exit_code=int(exit_code) if exit_code is not None else None,
        created_at=iso_from_ms(job.get("createdAt")),
        started_at=iso_from_ms(job.get("startedAt")),
        stopped_at=iso_from_ms(job.get("stoppedAt")),
        array_size=int(array.get("size") or 0),
        counts=tuple((str(k), int(v)) for k, v in summary.items() if int(v)),
        failed=tuple(failed),
        slowest=tuple(slowest),
        index_map=tuple(index_map),
        log_group=log_group,
        log_stream=container.get("logStreamName"),
        attempts=len(attempts),
    )


def child_outcome(child: Mapping[str, Any], index: int) -> ChildOutcome:
    """A :class:`ChildOutcome` from a ListJobs summary or DescribeJobs entry of an array child."""
    container = child.get("container") or {}
    exit_code = container.get("exitCode")
    reason = str(child.get("statusReason") or "")
    extra = container.get("reason")
    if extra and extra not in reason:
        reason = f"{reason}: {extra}" if reason else str(extra)
    array_index = (child.get("arrayProperties") or {}).get("index")
    return ChildOutcome(
        index=index,
        status=str(child.get("status", "")),
        reason=reason,
        exit_code=int(exit_code) if exit_code is not None else None,
        array_index=int(array_index) if array_index is not None else None,
        log_stream=container.get("logStreamName"),
        attempts=len(child.get("attempts") or []),
        started_at=iso_from_ms(child.get("startedAt")),
        stopped_at=iso_from_ms(child.get("stoppedAt")),
        reclaims=reclaims(child),
    )


def _dump(data: Any, *, compact: bool = False) -> bytes:
    if compact:
        return (json.dumps(data, separators=(",", ":")) + "\n").encode()
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()


def _compact(name: str) -> bool:
    """The supervisor's documents are written compact (one is rewritten for every job a supervised run records),
    and so are the outcomes, which hold every failed child of a run (hundreds of thousands in a global run)."""
    return name in (names.SUPERVISOR_DOCUMENT, OUTCOMES) or name.startswith(names.SUPERVISOR_OBJECT_PREFIX)


# --------------------------------------------------------------------------------------------------------------
# Storage


@dataclass(frozen=True)
class Blob:
    body: bytes
    version: str  # opaque: an S3 ETag, or the SHA-256 of a local file's content


class Store(Protocol):
    """Keys are ``RUN_ID/NAME``. Conditional writes make concurrent writers safe."""

    location: str

    def get(self, key: str) -> Blob | None: ...

    def create(self, key: str, body: bytes) -> Blob: ...

    def replace(self, key: str, body: bytes, version: str) -> Blob: ...

    def list_dirs(self) -> list[str]: ...


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class LocalStore:
    """A directory. ``create`` is atomic (write a temporary file, then ``link``, which fails if the name exists);
    ``replace`` compares and renames under an advisory lock, so two processes on one machine never clobber."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> Blob | None:
        try:
            body = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return Blob(body, _sha(body))

    def _temporary(self, path: Path, body: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        return Path(name)

    @staticmethod
    def _sync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def create(self, key: str, body: bytes) -> Blob:
        path = self._path(key)
        tmp = self._temporary(path, body)
        try:
            os.link(tmp, path)
        except FileExistsError as e:
            raise LedgerConflict(f"{path} already exists") from e
        finally:
            tmp.unlink(missing_ok=True)
        self._sync_dir(path.parent)
        return Blob(body, _sha(body))

    @contextlib.contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with (path.parent / f".{path.name}.lock").open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def replace(self, key: str, body: bytes, version: str) -> Blob:
        path = self._path(key)
        with self._lock(path):
            current = self.get(key)
            if current is None or current.version != version:
                raise LedgerConflict(f"{path} changed since it was read")
            tmp = self._temporary(path, body)
            os.replace(tmp, path)
            self._sync_dir(path.parent)
        return Blob(body, _sha(body))

    def list_dirs(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))


class S3Store:
    """Objects under ``s3://BUCKET/PREFIX/``, written with S3 conditional requests: ``IfNoneMatch="*"`` creates
    only if absent, ``IfMatch=ETAG`` replaces only the version read. A failed condition is HTTP 412
    ``PreconditionFailed``; a concurrent conflicting write may be 409 ``ConditionalRequestConflict``; ``IfMatch``
    on a missing key is 404 ``NoSuchKey``: all three mean "read again and retry"."""

    CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"})

    def __init__(self, bucket: str, prefix: str, client: Client) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _code(error: BaseException | None) -> str:
        """S3's error code, from the retry layer's error or the botocore error it was raised from."""
        return service_error_code(error) if error is not None else ""

    # Every request goes through the process's one retry layer (throttling, 5xx, a deadline per call): a read or a
    # listing is retried; a conditional write is not repeated once it may have been applied (see call_write).
    def get(self, key: str) -> Blob | None:
        try:
            answer = call("GetObject", self._client.get_object, Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            if self._code(e) in {"NoSuchKey", "404"}:
                return None
            raise LedgerError(f"reading {self.location}/{key}: {describe_error(e)}") from e
        return Blob(answer["Body"].read(), str(answer["ETag"]))

    def _put(self, key: str, body: bytes, **condition: str) -> Blob:
        try:
            answer = call_write(
                "PutObject", self._client.put_object,
                Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=_content_type(key), **condition,
            )  # fmt: skip
        except Exception as e:
            if self._code(e) in self.CONFLICT_CODES:
                raise LedgerConflict(f"{self.location}/{key}: {self._code(e)}") from e
            raise LedgerError(f"writing {self.location}/{key}: {describe_error(e)}") from e
        return Blob(body, str(answer["ETag"]))

    def create(self, key: str, body: bytes) -> Blob:
        return self._put(key, body, IfNoneMatch="*")

    def replace(self, key: str, body: bytes, version: str) -> Blob:
        return self._put(key, body, IfMatch=version)

    def list_dirs(self) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base, "Delimiter": "/"}
        found: list[str] = []
        while True:
            try:
                page = call("ListObjectsV2", self._client.list_objects_v2, **kwargs)
            except Exception as e:
                raise LedgerError(f"listing {self.location}: {describe_error(e)}") from e
            found.extend(p["Prefix"][len(base) :].rstrip("/") for p in page.get("CommonPrefixes") or [])
            if not page.get("IsTruncated"):
                return sorted(found)
            kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _content_type(key: str) -> str:
    return "text/csv" if key.endswith(".csv") else "application/json"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` -> (bucket, prefix)."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise RecordError(f"{url}: not an s3://BUCKET/PREFIX location")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


def open_store(location: str | Path, aws_options: Any = None) -> Store:
    """A :class:`LocalStore` for a path, an :class:`S3Store` for ``s3://BUCKET/PREFIX``."""
    text = str(location)
    if text.startswith("s3://"):
        bucket, prefix = parse_s3_url(text)
        return S3Store(bucket, prefix, client("s3", aws_options))
    return LocalStore(text)


def local_root(submission_file: str | Path) -> Path:
    """The ledger folder beside a submission CSV: ``out/submission.csv`` -> ``out/submission.ledger``."""
    path = Path(submission_file)
    return path.with_name(path.stem + LEDGER_SUFFIX)


# --------------------------------------------------------------------------------------------------------------
# Job logs: where the rows of a run live


class JobLog(Protocol):
    def rows(self, run_id: str) -> list[Row]: ...

    def run_ids(self) -> list[str]: ...

    def recorder(self, run_id: str) -> contextlib.AbstractContextManager[Any]: ...


class CsvJobLog:
    """The submission CSV (shared by runs, one fsync'd row per job): the job part of a local ledger."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def rows(self, run_id: str) -> list[Row]:
        return read_rows(self.path, run_id) if self.path.exists() else []

    def run_ids(self) -> list[str]:
        return run_ids(self.path)

    def recorder(self, run_id: str) -> Recorder:
        return Recorder(self.path)


class _StoreRecorder:
    """Appends one row at a time to ``RUN_ID/jobs.csv`` with compare-and-swap (a row is durable when it returns)."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self._lock = threading.Lock()

    def __enter__(self) -> _StoreRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def append(self, row: Row) -> None:
        self.extend([row])

    def extend(self, rows: Iterable[Row]) -> None:
        """Several rows in one compare-and-swap write: the object is rewritten whole for each write, so a writer
        with many rows (a supervised stage's jobs) appends them at once, not one rewrite per row."""
        lines = b"".join(_csv_line([str(getattr(row, c)) for c in COLUMNS]) for row in rows)
        if not lines:
            return
        with self._lock:
            _cas(self.store, f"{self.run_id}/{JOBS}", lambda body: (body or _csv_line(list(COLUMNS))) + lines)


def _csv_line(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode()


class StoreJobLog:
    """The rows of each run as ``RUN_ID/jobs.csv`` in a store (S3 for a team or a cloud supervisor)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def rows(self, run_id: str) -> list[Row]:
        blob = self.store.get(f"{run_id}/{JOBS}")
        if blob is None:
            return []
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / JOBS
            path.write_bytes(blob.body)
            return read_rows(path, run_id)

    def run_ids(self) -> list[str]:
        return [d for d in self.store.list_dirs() if self.store.get(f"{d}/{JOBS}") is not None]

    def recorder(self, run_id: str) -> _StoreRecorder:
        return _StoreRecorder(self.store, run_id)


def _cas(store: Store, key: str, mutate: Callable[[bytes | None], bytes]) -> Blob:
    """Read, change, write back only if nobody wrote in between; on a lost race read again and retry."""
    for attempt in range(CAS_ATTEMPTS):
        if attempt:
            # Writers that lost together would collide again: spread them out (full jitter, capped at 0.5 s).
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))
        current = store.get(key)
        body = mutate(current.body if current else None)
        try:
            if current is None:
                return store.create(key, body)
            if body == current.body:
                return current
            return store.replace(key, body, current.version)
        except LedgerConflict:
            continue
    raise LedgerError(f"{store.location}/{key}: {CAS_ATTEMPTS} concurrent writers in a row; try again")


# --------------------------------------------------------------------------------------------------------------
# The ledger


class _Tee:
    """A recorder that appends to several recorders (the local CSV first: it is the one a crash must not lose)."""

    def __init__(self, recorders: list[Any]) -> None:
        self.recorders = recorders

    def __enter__(self) -> _Tee:
        for r in self.recorders:
            r.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for r in self.recorders:
            r.__exit__(*exc)

    def append(self, row: Row) -> None:
        for r in self.recorders:
            r.append(row)

    def extend(self, rows: Iterable[Row]) -> None:
        kept = list(rows)
        for r in self.recorders:
            r.extend(kept)


class Ledger:
    """Runs, their jobs, outcomes and events in one :class:`Store` (jobs in ``jobs`` when given, else the store)."""

    def __init__(self, store: Store, jobs: JobLog | None = None) -> None:
        self.store = store
        self.job_log: JobLog = jobs if jobs is not None else StoreJobLog(store)

    @property
    def location(self) -> str:
        return self.store.location

    # runs -------------------------------------------------------------------------------------------------------

    def begin(self, header: RunHeader) -> None:
        """Record a new run; :class:`LedgerConflict` if this run id is already recorded with another header."""
        body = _dump(header.to_dict())
        try:
            self.store.create(f"{header.run_id}/{HEADER}", body)
        except LedgerConflict:
            existing = self.header(header.run_id)
            if existing != header:
                started = existing.started_at if existing else "?"
                raise LedgerConflict(
                    f"run {header.run_id} is already recorded in {self.location} (started {started})"
                ) from None

    def header(self, run_id: str) -> RunHeader | None:
        blob = self.store.get(f"{run_id}/{HEADER}")
        if blob is None:
            return None
        try:
            return RunHeader.from_dict(json.loads(blob.body))
        except (ValueError, TypeError) as e:
            raise LedgerError(f"{self.location}/{run_id}/{HEADER}: unreadable ({e})") from e

    def run_ids(self) -> list[str]:
        """Every run the ledger knows (with a header, or only rows), oldest first."""
        ids = list(dict.fromkeys([*self.store.list_dirs(), *self.job_log.run_ids()]))
        headers = {i: self.header(i) for i in ids}
        return sorted(ids, key=lambda i: (headers[i].started_at if headers[i] else "", i))  # type: ignore[union-attr]

    def headers(self) -> list[RunHeader]:
        return [h for h in (self.header(i) for i in self.run_ids()) if h is not None]

    def latest(self) -> RunHeader | None:
        headers = self.headers()
        return max(headers, key=lambda h: h.started_at) if headers else None

    # jobs -------------------------------------------------------------------------------------------------------

    def recorder(self, run_id: str) -> contextlib.AbstractContextManager[Any]:
        return self.job_log.recorder(run_id)

    def jobs(self, run_id: str) -> list[Row]:
        return self.job_log.rows(run_id)

    # outcomes ---------------------------------------------------------------------------------------------------

    def outcomes(self, run_id: str) -> dict[str, JobOutcome]:
        data = self._resolved(run_id, self.read(run_id, OUTCOMES) or {})
        return {job_id: JobOutcome.from_dict(o) for job_id, o in data.items()}

    def _resolved(self, run_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """The outcomes with every reference (:meth:`keep_final`) replaced by the object it names, read side by
        side (a global supervised run names a few hundred)."""
        refs = {job_id: v[REF] for job_id, v in data.items() if isinstance(v, Mapping) and REF in v}
        if not refs:
            return dict(data)

        def read(key: str) -> Any:
            value = self.read(run_id, key)
            if value is None:
                raise LedgerError(f"{self.location}/{run_id}/{OUTCOMES} names {key}, which is missing")
            return value

        with ThreadPoolExecutor(max_workers=min(16, len(refs))) as pool:
            found = dict(zip(refs, pool.map(read, refs.values()), strict=True))
        return {job_id: found.get(job_id, v) for job_id, v in data.items()}

    def observe(self, run_id: str, outcomes: Iterable[JobOutcome]) -> None:
        """Merge observations into the run's outcomes (see :func:`merge_outcome`). Read them with
        :meth:`outcomes`: a supervised run's outcomes name objects, read only when asked for."""
        new = list(outcomes)
        if not new:
            return

        def mutate(data: Any) -> Any:
            merged = dict(data or {})  # what this observation does not touch stays as it is (a reference too)
            touched = self._resolved(run_id, {o.job_id: merged[o.job_id] for o in new if o.job_id in merged})
            for outcome in new:
                old = touched.get(outcome.job_id)
                merged[outcome.job_id] = merge_outcome(
                    JobOutcome.from_dict(old) if old is not None else None, outcome
                ).to_dict()
                touched[outcome.job_id] = merged[outcome.job_id]
            return merged

        self.update(run_id, OUTCOMES, mutate)

    def keep_final(self, run_id: str, outcomes: Mapping[str, tuple[str, str]]) -> None:
        """Final outcomes already in the run's ledger as objects of their own (job id -> (status, the object's
        name, holding ``JobOutcome.to_dict``)) kept in the run's outcomes by reference: a global run's failed
        children number in the hundreds of thousands, and each is then written once. Readers see no difference
        (:meth:`outcomes`). An outcome already there and final too is merged as :meth:`observe` does."""
        if not outcomes:
            return

        def mutate(data: Any) -> Any:
            merged = dict(data or {})
            for job_id, (status, key) in outcomes.items():
                old = merged.get(job_id)
                if old is None or old.get("status") not in FINAL:
                    merged[job_id] = {REF: key, "status": status}
                else:
                    both = self._resolved(run_id, {"old": old, "new": {REF: key}})
                    merged[job_id] = merge_outcome(
                        JobOutcome.from_dict(both["old"]), JobOutcome.from_dict(both["new"])
                    ).to_dict()
            return merged

        self.update(run_id, OUTCOMES, mutate)

    # events -----------------------------------------------------------------------------------------------------

    def events(self, run_id: str) -> list[RunEvent]:
        return [_from_dict(RunEvent, e) for e in self.read(run_id, EVENTS) or []]

    def note(self, run_id: str, event: RunEvent) -> None:
        def mutate(data: Any) -> Any:
            events = list(data or [])
            if event.to_dict() not in events:  # a retried write must not note the same event twice
                events.append(event.to_dict())
            return events

        self.update(run_id, EVENTS, mutate)

    # any document -----------------------------------------------------------------------------------------------

    def read(self, run_id: str, name: str) -> Any:
        blob = self.store.get(f"{run_id}/{name}")
        if blob is None:
            return None
        try:
            return json.loads(blob.body)
        except ValueError as e:
            raise LedgerError(f"{self.location}/{run_id}/{name}: unreadable ({e})") from e

    def update(self, run_id: str, name: str, mutate: Callable[[Any], Any]) -> Any:
        """Apply ``mutate`` (old JSON value or None -> new value) with compare-and-swap; returns the value written.
        ``mutate`` may run several times when writers race, so it must be a pure function of its argument."""
        result: list[Any] = []

        def apply(body: bytes | None) -> bytes:
            value = mutate(json.loads(body) if body else None)
            result[:] = [value]
            return _dump(value, compact=_compact(name))

        _cas(self.store, f"{run_id}/{name}", apply)
        return result[0]

    def snapshot(self, run_id: str) -> RunRecord:
        return RunRecord(
            header=self.header(run_id),
            rows=tuple(self.jobs(run_id)),
            outcomes=self.outcomes(run_id),
            events=tuple(self.events(run_id)),
            supervised=_supervised_state(self.read(run_id, names.SUPERVISOR_DOCUMENT)),
        )


def _supervised_state(document: Any) -> str | None:
    return str(document.get("state") or "running") if isinstance(document, Mapping) else None


class MirroredLedger(Ledger):
    """The local ledger, mirrored to a shared one (``ledger: s3://BUCKET/PREFIX``). Writes go to both; reads come
    from the local one, then the mirror (a teammate's run is only in the mirror)."""

    def __init__(self, primary: Ledger, mirror: Ledger) -> None:
        super().__init__(primary.store, primary.job_log)
        self.primary, self.mirror = primary, mirror

    @property
    def location(self) -> str:
        return f"{self.primary.location} (mirrored to {self.mirror.location})"

    def begin(self, header: RunHeader) -> None:
        self.primary.begin(header)
        self.mirror.begin(header)

    def header(self, run_id: str) -> RunHeader | None:
        return self.primary.header(run_id) or self.mirror.header(run_id)

    def run_ids(self) -> list[str]:
        ids = list(dict.fromkeys([*self.primary.run_ids(), *self.mirror.run_ids()]))
        headers = {i: self.header(i) for i in ids}
        return sorted(ids, key=lambda i: (headers[i].started_at if headers[i] else "", i))  # type: ignore[union-attr]

    def recorder(self, run_id: str) -> contextlib.AbstractContextManager[Any]:
        return _Tee([self.primary.recorder(run_id), self.mirror.recorder(run_id)])

    def jobs(self, run_id: str) -> list[Row]:
        return self.primary.jobs(run_id) or self.mirror.jobs(run_id)

    def read(self, run_id: str, name: str) -> Any:
        value = self.primary.read(run_id, name)
        return value if value is not None else self.mirror.read(run_id, name)

    def update(self, run_id: str, name: str, mutate: Callable[[Any], Any]) -> Any:
        value = self.primary.update(run_id, name, mutate)
        self.mirror.update(run_id, name, mutate)
        return value


def open_ledger(submission_file: str | Path | None, shared: str | None = None, aws_options: Any = None) -> Ledger:
    """The ledger of a submission CSV (its folder beside it), mirrored to ``shared`` (``s3://...``) when given;
    with no CSV, ``shared`` alone (the way a cloud supervisor sees runs)."""
    if submission_file is None:
        if shared is None:
            raise RecordError("no ledger: pass -s submissions.csv or --ledger s3://BUCKET/PREFIX")
        return Ledger(open_store(shared, aws_options))
    local = Ledger(LocalStore(local_root(submission_file)), CsvJobLog(submission_file))
    if shared is None:
        return local
    return MirroredLedger(local, Ledger(open_store(shared, aws_options)))


def config_sha256(path: str | Path) -> str:
    return _sha(Path(path).read_bytes())


__all__ = [
    "Blob",
    "ChildOutcome",
    "CsvJobLog",
    "JobOutcome",
    "Ledger",
    "LedgerConflict",
    "LedgerError",
    "LocalStore",
    "MirroredLedger",
    "RunEvent",
    "RunHeader",
    "RunRecord",
    "S3Store",
    "Store",
    "StoreJobLog",
    "child_outcome",
    "config_sha256",
    "local_root",
    "merge_outcome",
    "now_iso",
    "open_ledger",
    "open_store",
    "outcome_from_job",
]
