"""``confluence-submit run``: submit the workflow, recording every job as AWS accepts it."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ..apply.recover import supervised_config
from ..apply.run import ON_FAILURE, RunResult, run_header, start_run
from ..aws.api import Batch, fargate_vcpu_quotas
from ..config import Config, load_config
from ..errors import AwsError, PlanError
from ..items import check_item_counts
from ..names import consumable_resource
from ..planning.estimate import request_budgets
from ..planning.plan import Plan, build_plan, new_run_id
from ..planning.shaping import Submission
from ..records.ledger import RunHeader, open_ledger
from ..records.provenance import ItemsLists, Provenance, read_items_lists, record_run
from ..records.record import check_appendable
from ..safetext import markup, text
from ..shellcmd import Arg, command, options
from ..supervision.decisions import with_item_sizes
from ..venue.renew import RenewResult
from ..views.render import estimate_view
from .common import (
    AWS,
    Common,
    RunContext,
    check_output_file,
    common_options,
    config_options,
    err,
    handle_errors,
    report_duplicates,
    setup_logging,
)
from .plan import estimate_options, price_run
from .provenance import recover_workflow
from .status import show_status
from .supervise import MODES, supervise_workflow, supervision_options


@click.command()
@config_options
@click.option("--run-id", help="Run id to use (default: a new timestamped id).")
@click.option("-s", "--submission-file", help="Submission CSV (default: submission_file from the config).")
@click.option(
    "--on-failure",
    type=click.Choice(ON_FAILURE),
    default="cancel",
    show_default=True,
    help="cancel: stop every job of this run if a submission fails; keep: leave them for `resume`.",
)
@click.option(
    "--preflight/--no-preflight",
    default=True,
    show_default=True,
    help="Check that the queues and job definitions exist before submitting anything.",
)
@click.option("--renew", is_flag=True, help="Refresh the PO.DAAC credentials once and enable the renew schedule.")
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0),
    metavar="USD",
    help="Refuse to submit (exit 2) when the run's On-Demand estimate (plan --estimate) exceeds this; with "
    "--supervise, also stop the run once its measured spending (finished jobs, On-Demand prices) passes it.",
)
@estimate_options
@click.option(
    "--force",
    is_flag=True,
    help="Submit even when the run's expected requests exceed a consumable resource's budget left.",
)
@click.option("--watch", is_flag=True, help="After submitting, watch the run (status --watch) until it ends.")
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=10.0, show_default=True, help="First refresh delay (s)."
)
@click.option(
    "--supervise",
    "supervise_mode",
    type=click.Choice(MODES),
    help="Submit stage by stage under the failure budgets (tolerated_failure): here (local), or by the venue's "
    "supervisor function (cloud: this command exits once the run is handed over).",
)
@supervision_options
@click.option(
    "--from-stage",
    metavar="STAGE",
    help="Recover: a new run of STAGE and every later stage, on the origin run's items (--origin-run-id).",
)
@click.option("--origin-run-id", metavar="RUN_ID", help="The run --from-stage recovers from.")
@click.option(
    "--items-subset",
    type=click.Path(exists=True, dir_okay=False),
    help="With --from-stage: only these items of the origin (values or indices, one per line or a JSON array).",
)
@common_options(*AWS, "log_file", "verbose", "rate", "workers", "ledger")
@handle_errors
def run(
    config_path: str,
    venue: str | None,
    run_id: str | None,
    submission_file: str | None,
    on_failure: str,
    preflight: bool,
    renew: bool,
    max_cost: float | None,
    durations_from: str | None,
    prices_file: str | None,
    spot_share: float | None,
    force: bool,
    watch: bool,
    interval: float,
    supervise_mode: str | None,
    alerts_topic: str | None,
    poll: float,
    from_stage: str | None,
    origin_run_id: str | None,
    items_subset: str | None,
    common: Common,
) -> None:
    """Submit the workflow to AWS Batch, recording every job in the submission CSV as it is accepted."""
    config = load_config(config_path, venue=venue)
    csv_path = Path(submission_file or config.submission_file)
    new_id = run_id or new_run_id()
    if from_stage or origin_run_id or items_subset:
        if not (from_stage and origin_run_id):
            raise click.UsageError("--from-stage and --origin-run-id go together (--items-subset needs both)")
        if max_cost is not None or (supervise_mode is not None and items_subset):
            raise click.UsageError("--from-stage does not combine with --max-cost, nor --items-subset with --supervise")
        recovered = recover_workflow(config, new_id, csv_path, common, from_stage, origin_run_id, items_subset)
        if supervise_mode is not None:
            sys.exit(
                supervise_workflow(
                    supervised_config(recovered.config, origin_run_id), new_id, csv_path, common, mode=supervise_mode,
                    ledger_url=common.ledger, poll=poll, alerts_topic=alerts_topic, preflight=preflight,
                    link={**recovered.recovery.link(), "modules_from": recovered.config},
                )
            )  # fmt: skip
        code = run_workflow(
            recovered.config, new_id, csv_path, common, on_failure=on_failure, preflight=preflight, renew=renew,
            plan=recovered.plan, link=recovered.recovery.link(),
        )  # fmt: skip
        _exit_or_watch(code, watch, config, venue, csv_path, common, new_id, interval)
    if max_cost is not None:
        guard_cost(
            config, new_id, common, max_cost, durations_from, prices_file, spot_share, supervised=bool(supervise_mode)
        )
    guard_requests(config, new_id, common, force=force)
    if supervise_mode is not None:
        sys.exit(
            supervise_workflow(
                config,
                new_id,
                csv_path,
                common,
                mode=supervise_mode,
                ledger_url=common.ledger,
                poll=poll,
                alerts_topic=alerts_topic,
                preflight=preflight,
                max_cost=max_cost,
            )
        )
    # An unsupervised run reads its items lists once, when it is submitted: their lengths become array sizes and
    # the same reads go to its record.
    lists = read_items_lists(common.aws, config)
    config = with_item_sizes(config, {key: len(values) for key, (_, values) in lists.items()})
    check_item_counts(config)
    code = run_workflow(
        config, new_id, csv_path, common, on_failure=on_failure, preflight=preflight, renew=renew, items_read=lists
    )
    _exit_or_watch(code, watch, config, venue, csv_path, common, new_id, interval)


def _exit_or_watch(
    code: int,
    watch: bool,
    config: Config,
    venue: str | None,
    csv_path: Path,
    common: Common,
    run_id: str,
    interval: float,
) -> None:
    """Exit with the run's code, or (``--watch``, once submitted) watch it and exit with how it ended."""
    if code != 0 or not watch:
        sys.exit(code)
    ctx = RunContext(str(config.source), venue, str(csv_path), common.aws, shared_ledger=common.ledger)
    view = ctx.open(run_id, reconcile=False)
    result = show_status(ctx, view, ctx.plan_for(run_id), watch=True, interval=interval, common=common)
    sys.exit(0 if result.state == "succeeded" else 1)


def guard_cost(
    config: Config,
    run_id: str | None,
    common: Common,
    max_cost: float,
    durations_from: str | None,
    prices_file: str | None,
    spot_share: float | None,
    *,
    supervised: bool = False,
) -> None:
    """Refuse a run whose On-Demand estimate exceeds ``max_cost`` (Spot prices vary: the upper figure is guarded),
    or that cannot be priced because a module has no duration. A supervised run that cannot be priced starts:
    its supervisor stops it once its measured spending passes the cap."""
    plan = build_plan(config, run_id or new_run_id())
    _, estimate = price_run(
        config, plan, common.aws, durations_from=durations_from, prices_file=prices_file, spot_share=spot_share
    )
    if estimate.unknown and supervised:
        err.print(
            f"--max-cost {max_cost:g}: no estimate (no duration for {', '.join(estimate.unknown)}); the supervisor "
            "stops the run once its measured spending passes the cap",
            highlight=False,
        )
        return
    if estimate.unknown:
        error = PlanError(
            f"--max-cost {max_cost:g}: cannot price the run, no duration for {', '.join(estimate.unknown)} "
            "(nothing was submitted)"
        )
        error.hint = "set expected_duration (seconds per item) on those modules, or pass --durations-from RUN_ID"
        raise error
    if estimate.on_demand > max_cost:
        err.print(estimate_view(estimate))
        raise PlanError(
            f"the run's estimate is ${estimate.on_demand:,.2f} On-Demand (${estimate.with_spot:,.2f} with "
            f"{estimate.spot_share:.0%} on Spot), above --max-cost {max_cost:,.2f} (nothing was submitted)"
        )
    err.print(f"estimate ${estimate.on_demand:,.2f} On-Demand is within --max-cost {max_cost:,.2f}", highlight=False)


def guard_requests(config: Config, run_id: str, common: Common, *, force: bool) -> None:
    """Refuse (exit 2, figures shown) a run whose expected requests exceed what is left of a non-replenishable
    consumable resource (AWS's availableQuantity; the yaml's total when AWS cannot say), unless forced."""
    if not any(m.requests_per_item is not None for m in config.modules):
        return
    plan = build_plan(config, run_id)
    available: dict[str, int] = {}
    budgets = request_budgets(plan, config)
    batch = Batch(common.aws)
    for budget in budgets:
        if budget.resource is None:
            continue
        try:
            described = batch.describe_consumable_resource(consumable_resource(config.prefix, budget.resource))
            available[budget.resource] = int(described["availableQuantity"])
        except AwsError as e:
            err.print(text(f"note: {budget.resource}: what is left could not be read ({e}); using its total"))
    for budget in request_budgets(plan, config, available):
        if not budget.over:
            err.print(text(f"requests: {budget.text()}"), highlight=False)
            continue
        message = f"requests: {budget.text()}"
        if force:
            err.print(text(f"{message} (--force: submitting anyway)"), style="yellow", highlight=False)
            continue
        error = PlanError(f"{message} (nothing was submitted)")
        error.hint = (
            f"raise the quota, then `{command('resources', 'set', budget.resource or '', 'N')}`; submit fewer items; "
            "or pass --force to submit anyway"
        )
        raise error


def run_workflow(
    config: Config,
    run_id: str | None,
    csv_path: Path,
    common: Common,
    *,
    on_failure: str = "cancel",
    preflight: bool = True,
    renew: bool = False,
    plan: Plan | None = None,
    link: Mapping[str, Any] | None = None,
    items_read: ItemsLists | None = None,
) -> int:
    """Start the run and say what happened; the exit code (also what ``sandbox`` runs). ``plan``: a recovered
    run's plan (``--from-stage``), ``link`` its origin (``record_run``'s keywords); ``items_read``: the items
    lists the config was sized from, recorded as read."""
    plan = plan or build_plan(config, run_id or new_run_id())
    check_output_file(csv_path, "submission_file")
    check_appendable(csv_path)
    setup_logging(common.log_file or config.log_file, common.verbose)
    common.note_region()
    batch = Batch(common.aws, max_pool=common.workers + 4)
    ledger = open_ledger(csv_path, common.ledger or config.ledger, common.aws)

    def started(renewed: RenewResult | None) -> None:
        if renewed is not None:
            state = renewed.schedule.state if renewed.schedule else "unknown"
            err.print(
                f"renew: {renewed.function_name} wrote fresh credentials (expire {renewed.expiration}); "
                f"schedule {state}",
                highlight=False,
            )
        err.print(
            f"run [bold]{plan.run_id}[/]: submitting {plan.submit_calls} jobs ({len(plan.stages)} stages) to "
            f"{common.endpoint_url or 'AWS'}, recording to {csv_path} (ledger {ledger.location})",
            highlight=False,
        )

    def header() -> RunHeader:
        return run_header(plan, common.aws, venue=config.venue, submission_file=csv_path)

    progress = SubmissionProgress(plan.submit_calls)

    def provenance(begun: RunHeader) -> Provenance:
        return record_run(ledger, config, plan, begun, batch, common.aws, items_read=items_read, **(link or {}))

    try:
        result = start_run(
            batch,
            plan,
            ledger,
            header,
            check=preflight,
            renew=common.aws if renew else None,
            on_failure=on_failure,
            rate=common.rate,
            workers=common.workers,
            on_start=started,
            quotas=lambda codes: fargate_vcpu_quotas(common.aws, codes),
            on_submitted=progress,
            provenance=provenance,
        )
    except KeyboardInterrupt:
        # Everything AWS accepted is already in the CSV: say how to go on rather than leave a mystery.
        flags = ["-c", config.source, "-s", csv_path, "--run-id", plan.run_id, *_venue(config), *common.aws_args]
        err.print(
            f"\ninterrupted: the jobs submitted so far are recorded in {csv_path}; continue with\n"
            f"  {command('resume', *flags)}\n"
            f"or stop them with\n"
            f"  {command('cancel', *flags)}",
            highlight=False,
        )
        return 130
    return _report(result, plan.run_id, config, csv_path, common, total=plan.submit_calls)


class SubmissionProgress:
    """``run``'s progress on stderr: a line when a stage's first job is submitted and at each tenth of the run, so a
    submission of thousands of jobs (minutes at AWS's 50 SubmitJob/s) is never silent."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.stage = ""
        self.next_tenth = 1

    def __call__(self, submission: Submission, job_id: str) -> None:
        self.done += 1
        tenth = self.done * 10 >= self.next_tenth * self.total
        if submission.stage != self.stage or tenth or self.done == self.total:
            self.stage = submission.stage
            err.print(text(f"submitted {self.done} of {self.total} jobs (stage {self.stage})"), highlight=False)
        while self.next_tenth * self.total <= self.done * 10:
            self.next_tenth += 1


def _report(result: RunResult, run_id: str, config: Config, csv_path: Path, common: Common, *, total: int) -> int:
    outcome = result.outcome
    report_duplicates(result.reconciled, run_id)
    if result.cancelled_by is not None:
        err.print(
            f"run {run_id} cancelled: {result.cancelled_by} asked it to stop after {len(outcome.submitted)} of "
            f"{total} jobs were submitted; that command stops them",
            highlight=False,
        )
        return 1
    if outcome.ok:
        err.print(f"submitted {len(outcome.submitted)} jobs. Watch with:", highlight=False)
        where = ["-c", config.source, *_venue(config), "-s", csv_path, "--run-id", run_id]
        click.echo(command("status", *where, "--watch", *common.aws_args))
        return 0
    assert outcome.failure is not None
    failure = outcome.failure
    err.print(
        f"[bold red]error:[/] submitting {failure.submission.name} failed: {markup(failure.message)}", highlight=False
    )
    if result.stopped is None:
        again = command(
            "resume", "-c", config.source, "-s", csv_path, "--run-id", run_id, *_venue(config), *common.aws_args
        )
        err.print(
            f"kept the {len(outcome.submitted)} jobs already submitted; after fixing the cause continue with:\n"
            f"  {again}",
            highlight=False,
        )
        return 1
    report = result.stopped
    err.print(f"stopped the {len(outcome.job_ids)} jobs of run {run_id} submitted so far", highlight=False)
    err.print(
        f"cancelled {len(report.cancelled)}, terminated {len(report.terminated)}, "
        f"already finished {len(report.already_finished)}",
        highlight=False,
    )
    for job_id, why in report.not_stopped:
        err.print(f"[yellow]requires manual termination:[/] {job_id} ({markup(why)})", highlight=False)
    return 1


def _venue(config: Config) -> list[Arg]:
    return options([("--venue", config.venue)])
