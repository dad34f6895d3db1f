"""Cancel a whole run, and resume one that stopped part-way (a crash, or ``run --on-failure keep``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .aws import Batch
from .errors import RecordError
from .plan import Plan
from .record import Recorder, Row
from .runstate import RERUN_RE, RETRY, RunView, describe, generation, plan_name, refresh
from .stop import StopReport, is_active, stop_jobs
from .submit import DEFAULT_RATE, DEFAULT_WORKERS, Outcome, RateLimiter, submit_plan

CANCEL_RATE = 20.0  # Cancel/TerminateJob per second: well inside AWS's per-account API limits


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
    limiter = RateLimiter(rate, sleep=sleep)
    report = stop_jobs(
        batch, active, reason, wait_seconds=wait_seconds, poll=poll, sleep=sleep, throttle=limiter.acquire
    )
    view = refresh(batch, view)
    names = {r.job_id: r.job_name for r in view.rows}
    still = [
        (names.get(i, "?"), i, str(view.jobs[i].get("status"))) for i in ids if is_active(view.jobs.get(i, {}))
    ]
    return CancelReport(report, len(active), still)


# --------------------------------------------------------------------------------------------------------------


def plan_mismatch(view: RunView, plan: Plan) -> list[str]:
    """Why the record cannot come from this plan: a different digest, or recorded jobs the plan does not name."""
    problems = []
    digests = sorted({r.plan_digest for r in view.rows if r.kind != RETRY and r.plan_digest})
    if digests and digests != [plan.digest]:
        problems.append(f"the run was submitted from plan {', '.join(digests)}; the config now gives {plan.digest}")
    names = plan.by_name()
    unknown = [r.job_name for r in view.rows if generation(r.job_name) == 0 and r.job_name not in names]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        problems.append(f"{len(unknown)} recorded jobs are not in the plan: {shown}")
    for row in view.rows:
        submission = names.get(row.job_name)
        if submission is not None and (row.array_size, row.array_offset, row.job_queue) != (
            submission.array_size,
            submission.array_offset,
            submission.job_queue,
        ):
            problems.append(
                f"{row.job_name}: recorded as array size {row.array_size} offset {row.array_offset} in "
                f"{row.job_queue}; the plan has {submission.array_size} offset {submission.array_offset} in "
                f"{submission.job_queue}"
            )
            break
    return problems


def known_ids(view: RunView, plan: Plan) -> dict[str, str]:
    """Plan name -> the job id that stands for it now (a rerun from retry-failed replaces the original)."""
    names = plan.by_name()
    known: dict[str, str] = {}
    ranked = sorted(view.rows, key=lambda r: generation(r.job_name))
    for row in ranked:
        base = plan_name(row.job_name)
        if base in names and (row.job_name == base or RERUN_RE.match(row.job_name)):
            known[base] = row.job_id
    return known


@dataclass
class ResumeResult:
    recorded: list[Row]  # jobs AWS held that the record lacked, now appended to it
    outcome: Outcome
    already_complete: bool


def resume_run(
    batch: Batch,
    plan: Plan,
    view: RunView,
    recorder: Recorder,
    *,
    force: bool = False,
    rate: float = DEFAULT_RATE,
    workers: int = DEFAULT_WORKERS,
) -> ResumeResult:
    """Record the jobs AWS has but the CSV lacks, then submit exactly the plan jobs nobody submitted yet."""
    problems = plan_mismatch(view, plan)
    if problems and not force:
        error = RecordError(f"run {plan.run_id} does not match {plan.source}: " + "; ".join(problems))
        error.hint = "resume with the config the run started from, or pass --force to submit the new plan's jobs"
        raise error
    for row in view.unrecorded:
        recorder.append(row)
    known = known_ids(view, plan)
    if all(s.name in known for s in plan.submissions):
        return ResumeResult(view.unrecorded, Outcome(job_ids=known), True)
    outcome = submit_plan(plan, batch, recorder, known=known, rate=rate, workers=workers)
    return ResumeResult(view.unrecorded, outcome, False)
