"""Observations of a run's jobs (DescribeJobs answers, failed and slow children) as ledger outcomes: pure.

Status, watch and report call :func:`outcomes_for` after each poll and hand the result to
:meth:`~confluence_runtime.ledger.Ledger.observe`, so what AWS said survives AWS forgetting it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .ledger import ChildOutcome, JobOutcome, now_iso, outcome_from_job
from .logs import log_group
from .record import Row
from .runstate import RETRY, index_map


def outcomes_for(
    rows: Iterable[Row],
    jobs: Mapping[str, Mapping[str, Any]],
    children: Mapping[str, Sequence[ChildOutcome]] | None = None,
    *,
    observed_at: str | None = None,
) -> list[JobOutcome]:
    """One outcome per recorded job AWS described (``jobs``: job id -> DescribeJobs entry); ``children``: the
    failed children (global indices applied) the caller listed per job id."""
    children = children or {}
    at = observed_at or now_iso()
    outcomes = []
    for row in rows:
        job = jobs.get(row.job_id)
        if not job:
            continue
        mapped = index_map(job) if row.kind == RETRY else None
        outcomes.append(
            outcome_from_job(
                job,
                observed_at=at,
                failed=children.get(row.job_id, ()),
                index_map=mapped or (),
                log_group=log_group(job),
            )
        )
    return outcomes
