"""``confluence-submit resume`` and ``retry-failed``: submit more jobs into a run that exists."""

from __future__ import annotations

import sys

import click

from .. import names
from ..apply.rerun import RerunPlan, with_more_memory
from ..apply.resume import SupervisedRun, resume_run, retry_failed
from ..apply.submit import Outcome
from ..aws.api import client
from ..config import OOM_EXPECTED, OomMemory, parse_oom_memory
from ..names import BARRIER, PLATFORM_FARGATE
from ..planning.estimate import module_size
from ..planning.shaping import Submission
from ..records.document import SupervisorState, read_state
from ..records.ledger import Ledger, now_iso, open_store
from ..records.runlock import RunLock
from ..safetext import markup, text
from ..shellcmd import command
from ..supervision.decisions import redrive, redrive_refusal, redrive_stage
from ..supervision.loop import (
    BatchAws,
    NotRedrivable,
    Supervisor,
    hand_over,
    local_token,
    redrive_run,
    supervisor_problems,
)
from ..supervision.start import ledger_args
from ..views.render import ranges
from ..views.status import RunStatus
from .common import (
    AWS,
    Common,
    F,
    RunContext,
    common_options,
    err,
    handle_errors,
    out,
    report_duplicates,
    run_options,
    setup_logging,
)
from .status import show_status
from .supervise import supervise_here, supervision_options


def watch_options(fn: F) -> F:
    """--watch and --interval, as `run` has them: follow the run once the jobs are submitted."""
    fn = click.option(
        "--interval", type=click.FloatRange(min=0.05), default=10.0, show_default=True, help="First refresh delay (s)."
    )(fn)
    return click.option(
        "--watch", is_flag=True, help="After submitting, watch the run (status --watch) until it ends."
    )(fn)


def _watch(ctx: RunContext, run_id: str, interval: float, common: Common) -> None:
    """What `run --watch` does after submitting: status --watch, exit 0 only if the run succeeded."""
    view = ctx.open(run_id, reconcile=False)
    result = show_status(ctx, view, ctx.plan_for(run_id), watch=True, interval=interval, common=common)
    sys.exit(0 if result.state == "succeeded" else 1)


def _described(submission: Submission) -> str:
    """What a dry run would submit, in words: an array of N children, a plain job, or a barrier."""
    if submission.kind == BARRIER:
        return "barrier"
    shape = f"array of {submission.array_size}" if submission.array_size >= 2 else "plain job"
    sizes = dict(submission.resource_requirements)
    if sizes:
        shape += f", {sizes.get('MEMORY')} MiB and {sizes.get('VCPU')} vCPUs"
    return shape


@click.command()
@run_options
@click.option("--force", is_flag=True, help="Submit even though the plan changed since the run started.")
@watch_options
@common_options(*AWS, "log_file", "verbose", "rate", "workers", "ledger")
@handle_errors
def resume(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    force: bool,
    watch: bool,
    interval: float,
    common: Common,
) -> None:
    """Submit exactly the jobs of the plan that the run does not hold yet (after a crash or --on-failure keep).

    Without --run-id: the run started last (the ledger records each run before its first job is submitted)."""
    ctx = _submitting_context(config_path, venue, submission_file, common)
    run_id = ctx.run_id_for(run_id)
    # The view is read under the lock: read while another command submits, it would resubmit that one's jobs.
    with RunLock(ctx.lock_root, run_id, "resume") as lock:
        _resume(ctx, run_id, lock, force=force, common=common)
    if watch:
        _watch(ctx, run_id, interval, common)


def _resume(ctx: RunContext, run_id: str, lock: RunLock, *, force: bool, common: Common) -> None:
    view, plan = ctx.open_with_plan(run_id)
    for name, ids in view.duplicates:
        err.print(
            f"[yellow]warning:[/] {markup(name)} exists twice in AWS (also {markup(', '.join(ids))})", highlight=False
        )
    try:
        result = resume_run(
            ctx.batch,
            plan,
            view,
            ctx.ledger,
            force=force,
            rate=common.rate,
            workers=common.workers,
            should_stop=lock.stop_requested,
        )
    except SupervisedRun as e:
        where = ledger_args(ctx.csv_path, common.ledger)
        e.hint = f"continue it with: {command('supervise', '--run-id', run_id, *where, *common.aws_args)}"
        raise
    report_duplicates(result.reconciled, plan.run_id)
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
    stopped(outcome, "resume", plan.run_id)
    if outcome.failure is not None:
        err.print(
            f"[bold red]error:[/] submitting {outcome.failure.submission.name} failed: "
            f"{markup(outcome.failure.message)}; submitted {len(outcome.submitted)} before it. Run resume again "
            "after fixing the cause.",
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
@click.option(
    "--memory",
    metavar="x2|MIB",
    help="Retry the modules whose children ran out of memory with more: a factor (x2, 1.5x) or MiB, rounded up to "
    "a size Fargate offers (more vCPUs when the memory needs them).",
)
@watch_options
@supervision_options
@common_options(*AWS, "log_file", "verbose", "rate", "workers", "ledger")
@handle_errors
def retry_failed_command(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    dry_run: bool,
    memory: str | None,
    watch: bool,
    interval: float,
    poll: float,
    alerts_topic: str | None,
    common: Common,
) -> None:
    """Resubmit the failed indices of a run as compact arrays and rerun what waited for them.

    A supervised run that ended over budget or with tolerated failures is redriven: its failed children run again
    as a new round and its supervisor goes on with the later stages (here, or the venue's function for a cloud
    run); --poll and --alerts-topic apply to that supervision."""
    rule = None
    if memory is not None:
        try:
            rule = parse_oom_memory(int(memory) if memory.strip().isdigit() else memory)
        except (TypeError, ValueError) as e:
            raise click.BadParameter(
                f"{memory!r}: {str(e) or 'expected ' + OOM_EXPECTED}", param_hint="--memory"
            ) from None
    ctx = _submitting_context(config_path, venue, submission_file, common)
    run_id = ctx.run_id_for(run_id)
    supervised = read_state(lambda name: ctx.ledger.read(run_id, name)) if ctx.has_ledger else None
    if supervised is not None:
        if memory is not None:
            raise click.UsageError("--memory applies to unsupervised runs; a supervised run is redriven as it was")
        sys.exit(_redrive(ctx, supervised, dry_run=dry_run, poll=poll, alerts_topic=alerts_topic, common=common))
    # A dry run changes nothing and takes no lock; a real one reads the run under it (see resume).
    with RunLock(None if dry_run else ctx.lock_root, run_id, "retry-failed") as lock:
        _retry(ctx, run_id, lock, dry_run=dry_run, common=common, memory=rule)
    if watch and not dry_run:
        _watch(ctx, run_id, interval, common)


def _retry(
    ctx: RunContext, run_id: str, lock: RunLock, *, dry_run: bool, common: Common, memory: OomMemory | None = None
) -> None:
    view, plan = ctx.open_with_plan(run_id)
    lines: list[str] = []
    more_memory = None
    if memory is not None:
        sizes = {
            (m.stage, m.name): (*module_size(m), m.platform == PLATFORM_FARGATE)
            for m in (ctx.config.modules if ctx.config else ())
        }

        def more_memory(rerun: RerunPlan, status: RunStatus) -> RerunPlan:
            changed, found = with_more_memory(rerun, status, sizes, memory)
            lines.extend(found)
            return changed

    result = retry_failed(
        ctx.batch,
        plan,
        view,
        ctx.ledger,
        dry_run=dry_run,
        rate=common.rate,
        workers=common.workers,
        should_stop=lock.stop_requested,
        more_memory=more_memory,
    )
    for line in lines:
        out.print(text(line), highlight=False)
    if memory is not None and not lines:
        out.print(text(f"--memory {memory}: no child of run {view.run_id} ran out of memory; sizes unchanged"))
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
            out.print(f"  would submit {s.name} ({_described(s)})", highlight=False)
        return
    if result.cancel_failed:
        assert result.cancelled is not None
        for job_id, why in result.cancelled.not_stopped:
            err.print(f"[red]could not cancel[/] {job_id} ({markup(why)}); nothing submitted", highlight=False)
        sys.exit(1)
    outcome = result.outcome
    assert outcome is not None
    report_duplicates(result.reconciled, view.run_id)
    stopped(outcome, "retry-failed", view.run_id)
    if outcome.failure is not None:
        err.print(
            f"[bold red]error:[/] submitting {outcome.failure.submission.name} failed: "
            f"{markup(outcome.failure.message)}; run retry-failed again after fixing the cause",
            highlight=False,
        )
        sys.exit(1)
    out.print(
        f"retry generation {rerun.generation}: submitted {len(outcome.submitted)} jobs to run {view.run_id}",
        highlight=False,
    )


def _redrive(
    ctx: RunContext, state: SupervisorState, *, dry_run: bool, poll: float, alerts_topic: str | None, common: Common
) -> int:
    """retry-failed on a supervised run: re-open it for a new round, then supervise it here (local) or hand it to
    the venue's supervisor function (cloud)."""
    run_id = state.run.run_id
    # A cloud run lives in the venue's ledger alone (the local one a shared ledger mirrors never held it).
    ledger = Ledger(open_store(common.ledger, common.aws)) if state.mode == "cloud" and common.ledger else ctx.ledger
    s3 = client("s3", common.aws)
    supervisor = Supervisor(ledger, BatchAws(ctx.batch, s3), run_id, token=local_token(), by="retry-failed")
    hint_args = [*ledger_args(ctx.csv_path, common.ledger), *common.aws_args]
    if dry_run:
        refusal = redrive_refusal(state)
        if refusal is not None:
            raise NotRedrivable(refusal)
        target = redrive_stage(state)
        assert target is not None
        preview = redrive(state, supervisor._stage_observed(target), at=now_iso(), by="retry-failed --dry-run")
        for piece in preview.stage_state(target.stage).pieces[len(target.pieces) :]:
            out.print(text(f"  would submit {piece.name} ({piece.count} children)"), highlight=False)
        _said_round(preview)
        return 0
    if state.mode == "cloud":
        problems = supervisor_problems(client("lambda", common.aws), client("events", common.aws), state.run.prefix)
        if problems:
            raise NotRedrivable(f"run {run_id} is supervised in the cloud, but " + "; ".join(problems))
    shown = {s.stage for s in state.stages if s.status == "done"}
    changed = redrive_run(supervisor, by="retry-failed")
    _said_round(changed)
    if state.mode == "cloud":
        hand_over(client("events", common.aws), state.run.prefix, run_id, names.RUN_STARTED, changed.ledger)
        err.print(f"handed run {run_id} to the venue's supervisor function for round {changed.round}", highlight=False)
        click.echo(command("supervise", "--run-id", run_id, *hint_args, "--status"))
        return 0
    again = command("supervise", "--run-id", run_id, *hint_args)
    return supervise_here(
        ledger,
        ctx.batch,
        run_id,
        common,
        poll=poll,
        alerts_topic=alerts_topic,
        again=again,
        hint_args=hint_args,
        shown={s for s in shown if changed.stage_state(s).status == "done"},
        by="supervise (local, redrive)",
    )


def _said_round(state: SupervisorState) -> None:
    last = state.redrives[-1]
    for module, indices in last.retried:
        out.print(
            text(
                f"redrive round {last.round}: retry {last.stage}.{module} {len(indices)} children: "
                f"{ranges(list(indices))}"
            ),
            highlight=False,
        )
    later = [s.stage for s in state.stages if s.status == "pending"]
    if later:
        out.print(text(f"then, under the supervisor: {', '.join(later)}"), highlight=False)


def stopped(outcome: Outcome, command: str, run_id: str) -> None:
    """A `cancel` asked this command to stop submitting: say so and exit 1 (that command stops the jobs)."""
    if outcome.stopped_by is None:
        return
    err.print(
        f"{command} of run {run_id} cancelled: {outcome.stopped_by} asked it to stop after "
        f"{len(outcome.submitted)} jobs were submitted; that command stops them",
        highlight=False,
    )
    sys.exit(1)


def _submitting_context(config_path: str, venue: str | None, submission_file: str | None, common: Common) -> RunContext:
    """What resume and retry-failed submit with: the config (required: it rebuilds the plan), the record, a client
    pool sized for the submission workers, and the shared ledger; logging set up as `run` sets it up."""
    ctx = RunContext(
        config_path,
        venue,
        submission_file,
        common.aws,
        need_config=True,
        max_pool=common.workers + 4,
        shared_ledger=common.ledger,
    )
    assert ctx.config is not None, "need_config=True loads the config"
    setup_logging(common.log_file or ctx.config.log_file, common.verbose)
    return ctx
