"""``runs``: one line per run of a ledger (id, venue, started, duration, state, jobs and children by state)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ..config import Config
from ..errors import RecordError
from ..planning.estimate import item_seconds_from
from ..records.ledger import Ledger, RunRecord, open_ledger, parse_iso
from ..states import SUCCEEDED
from .report import build_report


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    venue: str
    prefix: str
    started_at: str  # ISO 8601 UTC; "" when the run predates the ledger (only its CSV rows are known)
    duration: str  # str(timedelta): start to the last stop observed
    state: str  # succeeded, failed, running, cancelled, incomplete, not observed
    jobs: int
    children: int
    succeeded: int
    failed: int  # their own failure
    unfinished: int
    observed_at: str  # when an outcome was last recorded ("" never)
    account: str
    region: str
    endpoint: str
    blocked: int = 0  # never ran: a job they depend on failed
    cancelled: int = 0  # stopped by confluence-submit
    seconds: float | None = None  # the duration for tools

    def to_dict(self) -> dict[str, Any]:
        """For ``runs --output json``: the duration in seconds (a number tools can add up), not ``H:MM:SS``."""
        data = asdict(self)
        data["duration"] = data.pop("seconds")
        return data


def summarize(record: RunRecord, run_id: str) -> RunSummary:
    header = record.header
    report = build_report(record, run_id=run_id)
    observed = max((o.observed_at for o in record.outcomes.values()), default="")
    state = "not observed" if not record.outcomes and not record.cancelled else report.state
    jobs = sum(1 for r in record.rows if r.kind != "retry")
    return RunSummary(
        run_id=run_id,
        venue=(header.venue or "") if header else "",
        prefix=header.prefix if header else "",
        started_at=header.started_at if header else (record.rows[0].submitted_at if record.rows else ""),
        duration=str(report.total_time) if record.outcomes else "",
        seconds=report.total_time.total_seconds() if record.outcomes else None,
        state=state,
        jobs=jobs,
        children=report.total,
        succeeded=report.succeeded,
        failed=report.failed,
        blocked=report.blocked,
        cancelled=report.cancelled,
        unfinished=report.unfinished,
        observed_at=observed,
        account=(header.account or "") if header else "",
        region=header.region if header else "",
        endpoint=(header.endpoint or "AWS") if header else "",
    )


def list_runs(ledger: Ledger) -> list[RunSummary]:
    return [summarize(ledger.snapshot(run_id), run_id) for run_id in ledger.run_ids()]


def runs_to_json(summaries: Iterable[RunSummary]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in summaries]


def measured_seconds(config: Config, run_id: str) -> dict[str, float]:
    """Seconds per item of each module, from the run times an earlier run's ledger recorded."""
    ledger = open_ledger(config.submission_file)
    rows = {row.job_id: row for row in ledger.jobs(run_id)}
    if not rows:
        raise RecordError(f"--durations-from {run_id}: no such run in the ledger beside {config.submission_file}")
    observed: list[tuple[str, str, float]] = []
    for job_id, outcome in ledger.outcomes(run_id).items():
        row = rows.get(job_id)
        if row is None or outcome.status != SUCCEEDED:
            continue
        children = [c.seconds for c in outcome.slowest if c.status == SUCCEEDED and c.seconds is not None]
        start, stop = parse_iso(outcome.started_at), parse_iso(outcome.stopped_at)
        if not children and not outcome.array_size and start and stop:
            children = [(stop - start).total_seconds()]
        observed.extend((row.stage, row.algorithm, seconds) for seconds in children)
    if not observed:
        raise RecordError(f"--durations-from {run_id}: the ledger holds no finished job times for this run yet")
    return item_seconds_from(observed, config)
