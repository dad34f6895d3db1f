"""Start a run: check that the venue holds what the plan names, submit the plan, and stop everything already
submitted when a submission fails for good (unless asked to keep it for ``resume``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .aws import AwsOptions, Batch
from .cancel import StopReport, stop_jobs
from .errors import PlanError, RecordError
from .plan import Plan
from .record import Recorder, run_ids
from .renew import RenewResult, prepare_run
from .submit import DEFAULT_RATE, DEFAULT_WORKERS, Outcome, submit_plan

log = logging.getLogger("confluence")
ON_FAILURE = ("cancel", "keep")


@dataclass
class RunResult:
    outcome: Outcome
    renewed: RenewResult | None = None
    stopped: StopReport | None = None  # what was stopped after a failed submission (on_failure="cancel")


def check_new_run(plan: Plan, csv_path: Path) -> None:
    """A run id names one run: refuse to start it again into a record that already holds it."""
    if plan.run_id in run_ids(csv_path):
        error = RecordError(f"{csv_path} already holds run {plan.run_id}")
        error.hint = f"continue it with: confluence-submit resume -c {plan.source} -s {csv_path}"
        raise error


def preflight(batch: Batch, plan: Plan) -> None:
    """Fail before submitting anything when a queue or job definition the plan names does not exist."""
    queues = sorted({s.job_queue for s in plan.submissions})
    found = {q["jobQueueName"] for q in batch.describe_job_queues(queues)}
    missing_queues = [q for q in queues if q not in found]
    definitions = sorted({s.job_definition for s in plan.submissions})
    found_defs = {d["jobDefinitionName"] for d in batch.describe_job_definitions(definitions)}
    missing_defs = [d for d in definitions if d not in found_defs]
    if missing_queues or missing_defs:
        parts = []
        if missing_queues:
            parts.append(f"job queues not found: {', '.join(missing_queues)}")
        if missing_defs:
            parts.append(f"active job definitions not found: {', '.join(missing_defs)}")
        error = PlanError("; ".join(parts) + " (nothing was submitted)")
        error.hint = "deploy the CDK app for this venue (cdk deploy -c venue=...), or pass the right --venue/--region"
        raise error


def start_run(
    batch: Batch,
    plan: Plan,
    csv_path: Path,
    *,
    check: bool = True,
    renew: AwsOptions | None = None,
    on_failure: str = "cancel",
    rate: float = DEFAULT_RATE,
    workers: int = DEFAULT_WORKERS,
    on_start: Callable[[RenewResult | None], None] | None = None,
) -> RunResult:
    """Pre-flight (``check``), renew the credentials (``renew``: where the renew Lambda is), submit every job,
    recording each as AWS accepts it, and on a failed submission stop the run's jobs (``on_failure="cancel"``).

    ``on_start`` is told just before the first SubmitJob. Ctrl-C (KeyboardInterrupt) propagates once the jobs AWS
    was accepting are recorded.
    """
    check_new_run(plan, csv_path)
    if check:
        preflight(batch, plan)
    result = RunResult(Outcome(job_ids={}))
    if renew is not None:
        result.renewed = prepare_run(renew, plan.prefix)
    if on_start is not None:
        on_start(result.renewed)
    log.info("run %s: %d submissions from %s", plan.run_id, plan.submit_calls, plan.source)
    with Recorder(csv_path) as recorder:
        result.outcome = submit_plan(plan, batch, recorder, rate=rate, workers=workers)
    outcome = result.outcome
    if outcome.ok:
        log.info("run %s: all %d jobs submitted", plan.run_id, len(outcome.submitted))
        return result
    if on_failure == "keep":
        return result
    assert outcome.failure is not None
    reason = f"Confluence run {plan.run_id} stopped: submitting {outcome.failure.submission.name} failed"
    report = stop_jobs(batch, list(outcome.job_ids.values()), reason)
    log.info(
        "run %s: cancelled %d, terminated %d, finished %d, not stopped %d",
        plan.run_id,
        len(report.cancelled),
        len(report.terminated),
        len(report.already_finished),
        len(report.not_stopped),
    )
    result.stopped = report
    return result
