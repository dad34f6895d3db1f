"""``runs``: one line per run of a ledger (id, venue, started, duration, state, jobs and children by state).

Read from the ledger alone (no AWS call): the state is what was last observed, and says so when nothing was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .ledger import Ledger, RunRecord
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
    failed: int
    unfinished: int
    observed_at: str  # when an outcome was last recorded ("" never)
    account: str
    region: str
    endpoint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        state=state,
        jobs=jobs,
        children=report.total,
        succeeded=report.total - report.failed - report.unfinished,
        failed=report.failed,
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
