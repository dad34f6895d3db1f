"""``confluence-submit resume`` and ``retry-failed``: submit more jobs into a run that exists."""

from __future__ import annotations

import sys

import click

from ..render import ranges
from ..resume import resume_run, retry_failed
from .common import AWS, Common, RunContext, common_options, err, handle_errors, out, run_options


@click.command()
@run_options
@click.option("--force", is_flag=True, help="Submit even though the plan changed since the run started.")
@common_options(*AWS, "rate", "workers", "ledger")
@handle_errors
def resume(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    force: bool,
    common: Common,
) -> None:
    """Submit exactly the jobs of the plan that the run does not hold yet (after a crash or --on-failure keep).

    Without --run-id: the run started last (the ledger records each run before its first job is submitted)."""
    ctx = RunContext(
        config_path,
        venue,
        submission_file,
        common.aws,
        need_config=True,
        max_pool=common.workers + 4,
        shared_ledger=common.ledger,
    )
    view, plan = ctx.open_with_plan(run_id)
    for name, ids in view.duplicates:
        err.print(f"[yellow]warning:[/] {name} exists twice in AWS (also {', '.join(ids)})", highlight=False)
    result = resume_run(ctx.batch, plan, view, ctx.ledger, force=force, rate=common.rate, workers=common.workers)
    if result.recorded:
        out.print(
            f"recorded {len(result.recorded)} jobs AWS holds that {ctx.csv_path} lacked: "
            + ", ".join(r.job_name for r in result.recorded[:5])
            + (" ..." if len(result.recorded) > 5 else ""),
            highlight=False,
        )
    if result.already_complete:
        out.print(
            f"nothing to resume: all {plan.submit_calls} jobs of run {plan.run_id} are submitted", highlight=False
        )
        return
    outcome = result.outcome
    if outcome.failure is not None:
        err.print(
            f"[bold red]error:[/] submitting {outcome.failure.submission.name} failed: {outcome.failure.message}; "
            f"submitted {len(outcome.submitted)} before it. Run resume again after fixing the cause.",
            highlight=False,
        )
        sys.exit(1)
    out.print(
        f"submitted {len(outcome.submitted)} jobs; run {plan.run_id} now has all {plan.submit_calls} jobs",
        highlight=False,
    )


@click.command("retry-failed")
@run_options
@click.option("--dry-run", is_flag=True, help="Show what would be retried, cancelled and rerun; change nothing.")
@common_options(*AWS, "rate", "workers", "ledger")
@handle_errors
def retry_failed_command(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    dry_run: bool,
    common: Common,
) -> None:
    """Resubmit the failed indices of a run as compact arrays and rerun what waited for them."""
    ctx = RunContext(
        config_path,
        venue,
        submission_file,
        common.aws,
        need_config=True,
        max_pool=common.workers + 4,
        shared_ledger=common.ledger,
    )
    view, plan = ctx.open_with_plan(run_id)
    result = retry_failed(
        ctx.batch, plan, view, ctx.ledger, dry_run=dry_run, rate=common.rate, workers=common.workers
    )
    if result.status is not None and result.status.from_ledger:
        out.print(
            f"from the ledger: {len(result.status.from_ledger)} jobs of run {view.run_id} are no longer described "
            "by AWS; their failures are read from the ledger",
            highlight=False,
        )
    rerun = result.rerun
    for key in rerun.waiting:
        out.print(f"not yet: {key} still has active children; retry-failed again once it ends", highlight=False)
    if rerun.empty:
        out.print(f"nothing to retry: run {view.run_id} has no failed job that can be retried now", highlight=False)
        return
    for (stage, module, i), indices in rerun.retried.items():
        out.print(f"retry {stage}.{module}[{i}]: {len(indices)} failed indices: {ranges(indices)}", highlight=False)
    if rerun.rerun:
        out.print(f"rerun {len(rerun.rerun)} jobs whole (they never ran or failed entirely)", highlight=False)
    if rerun.cancel:
        out.print(f"cancel {len(rerun.cancel)} downstream jobs not started yet, resubmitted", highlight=False)
    if dry_run:
        for s in rerun.plan.submissions:
            out.print(f"  would submit {s.name} (array {s.array_size})", highlight=False)
        return
    if result.cancel_failed:
        assert result.cancelled is not None
        for job_id, why in result.cancelled.not_stopped:
            err.print(f"[red]could not cancel[/] {job_id} ({why}); nothing submitted", highlight=False)
        sys.exit(1)
    outcome = result.outcome
    assert outcome is not None
    if outcome.failure is not None:
        err.print(
            f"[bold red]error:[/] submitting {outcome.failure.submission.name} failed: {outcome.failure.message}; "
            "run retry-failed again after fixing the cause",
            highlight=False,
        )
        sys.exit(1)
    out.print(
        f"retry generation {rerun.generation}: submitted {len(outcome.submitted)} jobs to run {view.run_id}",
        highlight=False,
    )
