"""``logs``: the CloudWatch stream of one job, array child and attempt of a run, found from the run's record."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..aws.api import Client, call, describe_error, error_code
from ..errors import AwsError, ConfluenceError, RecordError
from ..names import BARRIER, RETRY, generation
from ..records.ledger import JobOutcome
from ..records.record import Row

DEFAULT_LOG_GROUP = "/aws/batch/job"
PLAIN = -1
BARRIER_KIND, RETRY_KIND = BARRIER, RETRY


class NoLogStream(ConfluenceError):
    """The attempt has no log stream (it never reached RUNNING) or CloudWatch no longer holds it."""


@dataclass(frozen=True)
class Target:
    """The job (and array child) that ran a global index last."""

    row: Row
    array_index: int | None  # None for a plain job
    index: int | None  # the global index asked for (None: a plain job)

    @property
    def job_id(self) -> str:
        """The id DescribeJobs takes: ``PARENT:INDEX`` for an array child."""
        return self.row.job_id if self.array_index is None else f"{self.row.job_id}:{self.array_index}"


def coverage(row: Row, outcome: JobOutcome | None, index_map: Sequence[int] | None = None) -> list[int]:
    """The global indices a recorded job stands for, in array-index order (``[PLAIN]`` for a plain job)."""
    mapped = list(index_map or ()) or (list(outcome.index_map) if outcome is not None else [])
    if row.kind == RETRY_KIND and mapped:
        return mapped
    if row.array_size >= 2:
        return list(range(row.array_offset, row.array_offset + row.array_size))
    return [PLAIN]


def locate(
    rows: Sequence[Row],
    outcomes: Mapping[str, JobOutcome],
    *,
    stage: str,
    module: str,
    index: int | None,
    index_maps: Mapping[str, Sequence[int]] | None = None,
) -> Target:
    """The latest job (retry generations replace earlier ones) of ``stage``/``module`` that ran ``index``.

    ``index_maps`` (job id -> global indices) covers compact retries the ledger has no outcome for yet.
    """
    index_maps = index_maps or {}
    candidates = [r for r in rows if r.stage == stage and r.algorithm == module and r.kind != BARRIER_KIND]
    if not candidates:
        modules = sorted({f"{r.stage}/{r.algorithm}" for r in rows if r.kind != BARRIER_KIND})
        raise RecordError(f"no job of stage {stage!r}, module {module!r} in this run; it has {', '.join(modules)}")
    found: Target | None = None
    arrays = False
    for row in sorted(candidates, key=lambda r: generation(r.job_name)):
        cover = coverage(row, outcomes.get(row.job_id), index_maps.get(row.job_id))
        if cover == [PLAIN]:
            if index is None or index == row.job_index:
                found = Target(row, None, None)
            continue
        arrays = True
        if index is not None and index in cover:
            found = Target(row, cover.index(index), index)
    if found is None:
        if index is None and arrays:
            sizes = [r.array_offset + r.array_size for r in candidates if r.kind != RETRY_KIND]
            raise RecordError(f"{stage}/{module} is an array job: pass --index I (0..{max(sizes, default=1) - 1})")
        raise RecordError(f"{stage}/{module} has no child with index {index}")
    return found


@dataclass(frozen=True)
class Stream:
    group: str
    name: str | None  # None: this attempt never reached RUNNING
    attempt: int  # 1-based
    attempts: int


def log_group(job: Mapping[str, Any]) -> str:
    """The awslogs group of a described job (the job definition's logConfiguration), else AWS's default."""
    config = (job.get("container") or {}).get("logConfiguration") or {}
    options = config.get("options") or {}
    return str(options.get("awslogs-group") or DEFAULT_LOG_GROUP)


def pick_stream(job: Mapping[str, Any], attempt: int | None) -> Stream:
    """The stream of ``attempt`` (1-based; default the latest) of a described job or child."""
    attempts = list(job.get("attempts") or [])
    group = log_group(job)
    latest = (job.get("container") or {}).get("logStreamName")
    if attempt is None:
        number = max(len(attempts), 1)
        name = latest or ((attempts[-1].get("container") or {}).get("logStreamName") if attempts else None)
        return Stream(group, name, number, len(attempts))
    if not 1 <= attempt <= max(len(attempts), 1):
        raise RecordError(f"attempt {attempt} does not exist: the job has {len(attempts)} attempts")
    if attempts:
        name = (attempts[attempt - 1].get("container") or {}).get("logStreamName")
        return Stream(group, name, attempt, len(attempts))
    return Stream(group, latest, 1, 0)


@dataclass(frozen=True)
class LogEvent:
    timestamp: int  # epoch milliseconds
    message: str


class LogReader:
    """GetLogEvents from the head, paging until ``nextForwardToken`` repeats (the documented end of a stream)."""

    def __init__(self, client: Client, page_limit: int | None = None) -> None:
        self._client = client
        self.page_limit = page_limit  # None: AWS's default page (up to 1 MB / 10,000 events)
        self.calls = 0

    def read(self, group: str, stream: str, token: str | None = None) -> tuple[list[LogEvent], str | None]:
        """Every event after ``token`` (from the head when None), and the token to continue from later."""
        events: list[LogEvent] = []
        while True:
            kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            if self.page_limit:
                kwargs["limit"] = self.page_limit
            self.calls += 1
            try:
                # Through the process's one retry layer (throttling, deadline), like every other AWS call.
                page = call("GetLogEvents", self._client.get_log_events, **kwargs)
            except AwsError as e:
                cause = e.__cause__ or e
                if error_code(cause) == "ResourceNotFoundException":
                    raise NoLogStream(
                        f"log stream {stream} does not exist in group {group} (CloudWatch answered: "
                        f"{describe_error(cause)})"
                    ) from e
                raise ConfluenceError(f"GetLogEvents failed: {describe_error(cause)}") from e
            events.extend(LogEvent(int(e["timestamp"]), str(e["message"])) for e in page.get("events") or [])
            following = page.get("nextForwardToken")
            if not following or following == token:
                return events, following or token
            token = following

    def tail(self, group: str, stream: str, lines: int) -> list[LogEvent]:
        """The last ``lines`` events of a stream, in one call (GetLogEvents from the tail with a limit)."""
        self.calls += 1
        try:
            page = call(
                "GetLogEvents",
                self._client.get_log_events,
                logGroupName=group,
                logStreamName=stream,
                startFromHead=False,
                limit=lines,
            )
        except AwsError as e:
            cause = e.__cause__ or e
            if error_code(cause) == "ResourceNotFoundException":
                return []  # the stream expired or never got a line: nothing to show, not an error of the view
            raise
        return [LogEvent(int(e["timestamp"]), str(e["message"])) for e in page.get("events") or []][-lines:]

    def follow(
        self,
        group: str,
        stream: str,
        active: Callable[[], bool],
        emit: Callable[[LogEvent], None],
        *,
        poll: float = 5.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Emit events as they come until ``active()`` says the job ended (then one last read)."""
        wait = sleep or time.sleep
        token: str | None = None
        while True:
            still_active = active()
            events, token = self.read(group, stream, token)
            for event in events:
                emit(event)
            if not still_active:
                return
            wait(poll)


def iter_lines(events: Sequence[LogEvent]) -> Iterator[str]:
    for event in events:
        stamp = datetime.fromtimestamp(event.timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        yield f"{stamp}  {event.message.rstrip()}"
