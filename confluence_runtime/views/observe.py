"""Observations of a run's jobs as ledger outcomes, and ledger outcomes standing in for jobs AWS forgot: pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import names
from ..records.ledger import ChildOutcome, JobOutcome, now_iso, outcome_from_job
from ..records.record import Row
from .logs import log_group
from .runview import index_map

FROM_LEDGER = "confluence:fromLedger"  # key of a job dict rebuilt from the ledger (never an AWS field)


def outcomes_for(
    rows: Iterable[Row],
    jobs: Mapping[str, Mapping[str, Any]],
    children: Mapping[str, Sequence[ChildOutcome]] | None = None,
    *,
    observed_at: str | None = None,
) -> list[JobOutcome]:
    """One outcome per recorded job AWS described (``jobs``: job id -> DescribeJobs entry; entries rebuilt from
    the ledger are skipped); ``children``: the failed children (global indices) the caller listed per job id."""
    children = children or {}
    at = observed_at or now_iso()
    outcomes = []
    for row in rows:
        job = jobs.get(row.job_id)
        if not job or job.get(FROM_LEDGER):
            continue
        mapped = index_map(job) if row.kind == names.RETRY or row.array_size >= 2 else None
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


def _ms(value: str | None) -> int | None:
    return int(datetime.fromisoformat(value).timestamp() * 1000) if value else None


def job_from_outcome(outcome: JobOutcome) -> dict[str, Any]:
    """A DescribeJobs-shaped dict of a job as the ledger last observed it (only the fields the runtime reads)."""
    job: dict[str, Any] = {
        "jobId": outcome.job_id,
        "jobName": outcome.job_name,
        "status": outcome.status,
        FROM_LEDGER: True,
    }
    if outcome.status_reason:
        job["statusReason"] = outcome.status_reason
    for key, value in (
        ("createdAt", outcome.created_at),
        ("startedAt", outcome.started_at),
        ("stoppedAt", outcome.stopped_at),
    ):
        if value:
            job[key] = _ms(value)
    if outcome.array_size:
        job["arrayProperties"] = {"size": outcome.array_size, "statusSummary": outcome.count_map}
    container: dict[str, Any] = {}
    if outcome.exit_code is not None:
        container["exitCode"] = outcome.exit_code
    if outcome.log_stream:
        container["logStreamName"] = outcome.log_stream
    if outcome.index_map:
        environment = names.index_environment(list(outcome.index_map))
        container["environment"] = [{"name": k, "value": v} for k, v in environment.items()]
    if outcome.log_group:
        container["logConfiguration"] = {"logDriver": "awslogs", "options": {"awslogs-group": outcome.log_group}}
    job["container"] = container
    return job
