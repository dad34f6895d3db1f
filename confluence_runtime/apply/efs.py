"""``efs ls`` and ``efs sync``: look at the venue's EFS areas and seed them, through one-off Batch jobs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import names
from ..aws.api import AwsOptions, Batch, client, describe_error
from ..config import Config
from ..errors import ConfluenceError, PlanError
from ..shellcmd import shell
from ..states import FINAL
from ..views.logs import DEFAULT_LOG_GROUP, LogReader, NoLogStream, pick_stream

LS_TIMEOUT = 600  # seconds an ls attempt may run (AWS's attemptDurationSeconds)
SYNC_TIMEOUT = 12 * 3600


class EfsError(ConfluenceError):
    """The efs job failed, or did not finish in time."""


@dataclass(frozen=True)
class AreaPath:
    """``AREA[/PATH]`` in one of the venue's areas."""

    area: str
    path: str = ""

    @property
    def container_path(self) -> str:
        """Where the efs job definitions see it: ``/mnt/efs/AREA/PATH``."""
        return f"{names.EFS_ROOT}/{self.area}" + (f"/{self.path}" if self.path else "")

    def __str__(self) -> str:
        return f"{self.area}/{self.path}" if self.path else self.area


def parse_area_path(text: str, areas: Sequence[str]) -> AreaPath:
    """``input/sword/v16`` -> AreaPath("input", "sword/v16"); the area must be one the config mounts."""
    area, _, path = text.strip("/").partition("/")
    parts = [p for p in path.split("/") if p]
    if area not in areas:
        listed = ", ".join(areas)
        raise PlanError(f"{text!r}: {area!r} is not an area of this venue (its areas: {listed})")
    if any(p in (".", "..") for p in parts):
        raise PlanError(f"{text!r}: a path inside an area may not contain '.' or '..'")
    return AreaPath(area, "/".join(parts))


@dataclass(frozen=True)
class EfsJob:
    """One SubmitJob request of the efs tool and what it does, in words."""

    action: str
    what: str
    request: dict[str, Any] = field(hash=False)


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%f")


def _job(config: Config, action: str, what: str, command: list[str], timeout: int, now: datetime | None) -> EfsJob:
    name = names.efs_job_name(action, _stamp(now))
    return EfsJob(
        action=action,
        what=what,
        request={
            "jobName": name,
            "jobQueue": names.efs_queue(config.prefix),
            "jobDefinition": names.efs_job_definition(config.prefix, action),
            "containerOverrides": {"command": command},
            "timeout": {"attemptDurationSeconds": timeout},
            # The venue tag lets the submitter policy's TagResource (aws:RequestTag) accept the job.
            "tags": {names.TAG_PREFIX: config.prefix, names.TAG_TOOL: names.efs_tool(action), names.TAG_JOB: name},
            "propagateTags": True,
        },
    )


def ls_job(config: Config, target: str, *, now: datetime | None = None) -> EfsJob:
    where = parse_area_path(target, config.venue_areas)
    return _job(config, "ls", f"ls {where}", ["ls", "-la", where.container_path], LS_TIMEOUT, now)


def sync_job(config: Config, source: str, destination: str, *, now: datetime | None = None) -> EfsJob:
    """S3 -> area or area -> S3 (``aws s3 sync`` copies only what differs)."""
    if source.startswith("s3://") == destination.startswith("s3://"):
        raise PlanError(
            f"efs sync copies between S3 and an area: one of {source!r} and {destination!r} must be s3://BUCKET/KEY, "
            "the other AREA or AREA/PATH"
        )
    if source.startswith("s3://"):
        area = parse_area_path(destination, config.venue_areas)
        command, what = [source, area.container_path], f"sync {source} -> {area}"
    else:
        area = parse_area_path(source, config.venue_areas)
        command, what = [area.container_path, destination], f"sync {area} -> {destination}"
    return _job(config, "sync", what, ["s3", "sync", "--no-progress", *command], SYNC_TIMEOUT, now)


# --------------------------------------------------------------------------------------------------------------
# The shell: submit, wait, read the output


@dataclass(frozen=True)
class EfsResult:
    job_id: str
    status: str
    reason: str
    lines: tuple[str, ...]
    log_stream: str | None  # None: the job has no stream, or CloudWatch Logs does not hold it (group, stream)
    log_group: str = DEFAULT_LOG_GROUP


def run_job(
    job: EfsJob,
    options: AwsOptions,
    *,
    wait_seconds: float,
    on_submitted: Callable[[str], None] = lambda job_id: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> EfsResult:
    """Submit the job, poll DescribeJobs (0.2 s, doubling up to 5 s) until it ends, then read its log stream."""
    batch = Batch(options)
    try:
        job_id = batch.submit_job(job.request)
    except Exception as e:
        raise EfsError(f"SubmitJob of {job.request['jobName']} failed: {describe_error(e)}") from e
    on_submitted(job_id)
    deadline, interval = clock() + wait_seconds, 0.2
    while True:
        described = batch.describe_jobs([job_id])
        state = described[0] if described else {}
        if state.get("status") in FINAL:
            break
        if clock() > deadline:
            error = EfsError(
                f"job {job_id} ({job.what}) is still {state.get('status', 'unknown')} after {wait_seconds:g} s"
            )
            error.hint = f"look again with: {shell('aws', 'batch', 'describe-jobs', '--jobs', job_id)}"
            raise error
        sleep(interval)
        interval = min(interval * 2, 5.0)
    stream = pick_stream(state, None)
    lines: list[str] | None = None
    if stream.name:
        try:
            events, _ = LogReader(client("logs", options)).read(stream.group, stream.name)
            lines = [e.message for e in events]
        except NoLogStream:
            lines = None  # CloudWatch holds no such stream (yet): said by the caller
    return EfsResult(
        job_id,
        str(state["status"]),
        str(state.get("statusReason") or ""),
        tuple(lines or ()),
        stream.name if lines is not None else None,
        stream.group,
    )
