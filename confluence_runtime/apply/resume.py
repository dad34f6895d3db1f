"""Continue a run that exists: ``resume`` submits the plan jobs nobody submitted yet (after a crash or
``run --on-failure keep``); ``retry-failed`` plans a retry (:mod:`confluence_runtime.apply.rerun`), cancels what it
supersedes and submits it. Both record every new job in the run's ledger (its submission CSV first), and end as
``run`` does: a second job a lost SubmitJob reply left under one name is cancelled
(:mod:`confluence_runtime.apply.reconcile`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import names
from ..aws.api import Batch
from ..errors import RecordError
from ..planning.plan import Plan
from ..records.ledger import Ledger, RunEvent, now_iso, open_ledger
from ..records.record import Row
from ..views.runview import RunView
from ..views.status import RunStatus, collect_status
from .cancel import StopReport, stop_jobs
from .reconcile import Reconciled, cancel_duplicates
from .rerun import RerunPlan, plan_rerun
from .submit import DEFAULT_RATE, DEFAULT_WORKERS, Outcome, submit_plan


def plan_mismatch(view: RunView, plan: Plan) -> list[str]:
    """Why the record cannot come from this plan: a different digest, or recorded jobs the plan does not name."""
    problems = []
    digests = sorted({r.plan_digest for r in view.rows if r.kind != names.RETRY and r.plan_digest})
    if digests and digests != [plan.digest]:
        problems.append(f"the run was submitted from plan {', '.join(digests)}; the config now gives {plan.digest}")
    by_name = plan.by_name()
    unknown = [r.job_name for r in view.rows if names.generation(r.job_name) == 0 and r.job_name not in by_name]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        problems.append(f"{len(unknown)} recorded jobs are not in the plan: {shown}")
    for row in view.rows:
        submission = by_name.get(row.job_name)
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
    by_name = plan.by_name()
    known: dict[str, str] = {}
    for row in sorted(view.rows, key=lambda r: names.generation(r.job_name)):
        base = names.plan_name(row.job_name)
        if base in by_name:
            known[base] = row.job_id
    return known


@dataclass
class ResumeResult:
    recorded: list[Row]  # jobs AWS held that the record lacked, now appended to it
    outcome: Outcome
    already_complete: bool
    reconciled: Reconciled | None = None  # duplicates left by lost SubmitJob replies, and their cancellation


def reconcile_lost_replies(batch: Batch, plan: Plan, outcome: Outcome) -> Reconciled | None:
    """Cancel the second job AWS holds under a name whose SubmitJob reply was lost (None: no reply was lost)."""
    if not outcome.lost_replies:
        return None
    return cancel_duplicates(batch, plan, outcome.job_ids, outcome.lost_replies)


class SupervisedRun(RecordError):
    """The run is supervised: its supervisor, not ``resume``, submits what is left (under the failure budgets)."""

    def __init__(self, run_id: str, mode: str) -> None:
        super().__init__(
            f"run {run_id} is supervised ({mode}): its supervisor submits each stage under the failure budgets, so "
            "resume would submit the rest without them"
        )
        self.run_id, self.mode = run_id, mode


def refuse_supervised(ledger: Ledger, run_id: str) -> None:
    """Raise :class:`SupervisedRun` when the ledger holds a supervisor document for the run."""
    document = ledger.read(run_id, names.SUPERVISOR_DOCUMENT)
    if document is not None:
        raise SupervisedRun(run_id, str(document.get("mode") or "local"))


def resume_run(
    batch: Batch,
    plan: Plan,
    view: RunView,
    ledger: Ledger | Path,
    *,
    force: bool = False,
    rate: float = DEFAULT_RATE,
    workers: int = DEFAULT_WORKERS,
    should_stop: Callable[[], object | None] | None = None,
) -> ResumeResult:
    """Record the jobs AWS has but the CSV lacks, then submit exactly the plan jobs nobody submitted yet.
    ``ledger`` may be the submission CSV's path (its ledger beside it); ``should_stop`` as in
    :func:`~confluence_runtime.apply.submit.submit_plan`."""
    ledger = ledger if isinstance(ledger, Ledger) else open_ledger(ledger)
    refuse_supervised(ledger, plan.run_id)  # even with --force: that would bypass the budgets
    problems = plan_mismatch(view, plan)
    if problems and not force:
        error = RecordError(f"run {plan.run_id} does not match {plan.source}: " + "; ".join(problems))
        error.hint = "resume with the config the run started from, or pass --force to submit the new plan's jobs"
        raise error
    with ledger.recorder(plan.run_id) as recorder:
        for row in view.unrecorded:
            recorder.append(row)
        known = known_ids(view, plan)
        if all(s.name in known for s in plan.submissions):
            return ResumeResult(view.unrecorded, Outcome(job_ids=known), True)
        outcome = submit_plan(plan, batch, recorder, known=known, rate=rate, workers=workers, should_stop=should_stop)
    detail = f"{len(outcome.submitted)} jobs submitted, {len(view.unrecorded)} found in AWS and recorded"
    if outcome.stopped_by:
        detail += f"; {outcome.stopped_by} asked to stop"
    ledger.note(plan.run_id, RunEvent(now_iso(), "resumed", detail, "resume"))
    return ResumeResult(view.unrecorded, outcome, False, reconcile_lost_replies(batch, plan, outcome))


@dataclass
class RetryResult:
    """What retry-failed did: its plan, the cancel of what the plan supersedes, and the submission."""

    rerun: RerunPlan
    status: RunStatus | None = None  # the run as read before planning (``from_ledger`` names forgotten jobs)
    cancelled: StopReport | None = None  # None: nothing needed cancelling
    outcome: Outcome | None = None  # None: nothing submitted (nothing to retry, a dry run, or a failed cancel)
    reconciled: Reconciled | None = None  # duplicates left by lost SubmitJob replies, and their cancellation

    @property
    def cancel_failed(self) -> bool:
        return self.cancelled is not None and bool(self.cancelled.not_stopped)


def retry_failed(
    batch: Batch,
    plan: Plan,
    view: RunView,
    ledger: Ledger | Path,
    *,
    dry_run: bool = False,
    rate: float = DEFAULT_RATE,
    workers: int = DEFAULT_WORKERS,
    should_stop: Callable[[], object | None] | None = None,
    more_memory: Callable[[RerunPlan, RunStatus], RerunPlan] | None = None,
) -> RetryResult:
    """Plan a retry from one described view of the run, cancel the queued jobs it supersedes, submit it.
    ``more_memory`` changes the planned retry (retry-failed --memory: :func:`rerun.with_more_memory`).

    Nothing is submitted when a job to supersede could not be cancelled: it might still run, and then twice.
    ``ledger`` may be the submission CSV's path (its ledger beside it).
    """
    ledger = ledger if isinstance(ledger, Ledger) else open_ledger(ledger)
    status = collect_status(batch, view, plan, ledger=ledger)
    result = RetryResult(plan_rerun(view, status, plan), status)
    if more_memory is not None and not result.rerun.empty:
        result.rerun = more_memory(result.rerun, status)
    if result.rerun.empty or dry_run:
        return result
    if result.rerun.cancel:
        result.cancelled = stop_jobs(
            batch,
            [r.job_id for r in result.rerun.cancel],
            f"Confluence run {view.run_id}: superseded by retry-failed generation {result.rerun.generation}",
        )
        if result.cancel_failed:
            return result
    with ledger.recorder(plan.run_id) as recorder:
        for row in view.unrecorded:
            recorder.append(row)
        result.outcome = submit_plan(
            result.rerun.plan,
            batch,
            recorder,
            known=result.rerun.known,
            rate=rate,
            workers=workers,
            should_stop=should_stop,
        )
    detail = f"generation {result.rerun.generation}: {len(result.outcome.submitted)} jobs submitted"
    if result.outcome.stopped_by:
        detail += f"; {result.outcome.stopped_by} asked to stop"
    ledger.note(plan.run_id, RunEvent(now_iso(), "retried", detail, "retry-failed"))
    result.reconciled = reconcile_lost_replies(batch, result.rerun.plan, result.outcome)
    return result
