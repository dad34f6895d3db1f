"""Cancelling, in one place: stop jobs (cancel what has not started, terminate what has, then check that nothing
is left active), and stop a whole run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..aws.api import Batch
from ..errors import AwsError
from ..states import ACTIVE, QUEUED, STARTED
from ..views.runview import RunView, describe, refresh

CANCEL_RATE = 20.0  # Cancel/TerminateJob per second: well inside AWS's per-account API limits


@dataclass
class StopReport:
    cancelled: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    already_finished: list[str] = field(default_factory=list)
    not_stopped: list[tuple[str, str]] = field(default_factory=list)  # (job id, why)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.cancelled or self.terminated or self.not_stopped)


def active_children(job: dict[str, Any]) -> dict[str, int]:
    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
    return {state: int(summary.get(state, 0)) for state in ACTIVE if summary.get(state)}


def is_active(job: dict[str, Any]) -> bool:
    return job.get("status") in ACTIVE or bool(active_children(job))


def action_for(job: dict[str, Any]) -> str | None:
    """``terminate`` when anything of the job has started, ``cancel`` when it is all still queued, else None."""
    children = active_children(job)
    if job.get("status") in STARTED or any(children.get(s) for s in STARTED):
        return "terminate"
    if job.get("status") in QUEUED or children:
        return "cancel"
    return None


def stop_jobs(
    batch: Batch,
    job_ids: Iterable[str],
    reason: str,
    *,
    wait_seconds: float = 60.0,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StopReport:
    """Stop every still-active job among ``job_ids`` and wait (bounded) until AWS reports them finished.

    CancelJob/TerminateJob are paced by the AWS layer (``batch.pacer``).
    """
    report = StopReport()
    ids = list(dict.fromkeys(job_ids))
    jobs = batch.describe_jobs(ids)
    found = {j["jobId"] for j in jobs}
    report.not_stopped.extend((i, "not found by DescribeJobs") for i in ids if i not in found)
    acted: list[str] = []
    for job in jobs:
        action = action_for(job)
        if action is None:
            report.already_finished.append(job["jobId"])
            continue
        try:
            if action == "terminate":
                batch.terminate_job(job["jobId"], reason)
                report.terminated.append(job["jobId"])
            else:
                batch.cancel_job(job["jobId"], reason)
                report.cancelled.append(job["jobId"])
            acted.append(job["jobId"])
        except AwsError as e:
            report.not_stopped.append((job["jobId"], str(e)))

    deadline = clock() + wait_seconds
    remaining = acted
    delay = poll
    while remaining:
        still = [j for j in batch.describe_jobs(remaining) if is_active(j)]
        # A job cancelled while queued can reach STARTING before the cancel lands: escalate to terminate.
        for job in still:
            if action_for(job) == "terminate" and job["jobId"] in report.cancelled:
                try:
                    batch.terminate_job(job["jobId"], reason)
                    report.cancelled.remove(job["jobId"])
                    report.terminated.append(job["jobId"])
                except AwsError:
                    pass
        remaining = [j["jobId"] for j in still]
        if not remaining:
            break
        if clock() >= deadline:
            report.not_stopped.extend((i, "still active after stop request") for i in remaining)
            break
        sleep(delay)
        delay = min(delay * 2, 10.0)
    return report


@dataclass
class CancelReport:
    stop: StopReport
    active_before: int
    still_active: list[tuple[str, str, str]] = field(default_factory=list)  # name, id, status

    @property
    def nothing_to_do(self) -> bool:
        return self.active_before == 0


def cancel_run(
    batch: Batch,
    view: RunView,
    *,
    reason: str,
    wait_seconds: float = 120.0,
    poll: float = 1.0,
    rate: float = CANCEL_RATE,
    sleep: Callable[[float], None] = time.sleep,
) -> CancelReport:
    """Stop every active job of the run (duplicates included) and check until none is active."""
    describe(batch, view)
    extra_ids = [i for _, ids in view.duplicates for i in ids]
    for job in batch.describe_jobs([i for i in extra_ids if i not in view.jobs]):
        view.jobs[job["jobId"]] = job
    ids = [r.job_id for r in view.rows] + extra_ids
    active = [i for i in ids if is_active(view.jobs.get(i, {}))]
    if not active:
        return CancelReport(StopReport(), 0)
    for operation in ("CancelJob", "TerminateJob"):
        batch.pacer.set_rate(operation, rate)
    report = stop_jobs(batch, active, reason, wait_seconds=wait_seconds, poll=poll, sleep=sleep)
    view = refresh(batch, view)
    job_names = {r.job_id: r.job_name for r in view.rows}
    still = [
        (job_names.get(i, "?"), i, str(view.jobs[i].get("status"))) for i in ids if is_active(view.jobs.get(i, {}))
    ]
    return CancelReport(report, len(active), still)
