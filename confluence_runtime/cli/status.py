"""``confluence-submit status``: children per stage and module in each state, and why jobs failed."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Group
from rich.live import Live

from ..aws.api import caller_account, region_in_use
from ..errors import AwsError, RecordError
from ..planning.plan import Plan
from ..records.runlock import holder
from ..safetext import text
from ..shellcmd import command, options
from ..views.render import status_view
from ..views.runview import RunView, refresh
from ..views.status import FailureGroup, RunStatus, collect_status, status_to_dict
from ..views.why import DEFAULT_THRESHOLD, Waiting, collect_waiting, waiting_to_dict
from .common import AWS, Common, RunContext, common_options, handle_errors, out, run_options

WATCH_MAX_INTERVAL = 60.0
EVENTUAL_CONSISTENCY_SECONDS = 60.0


@click.command()
@run_options
@click.option("--watch", is_flag=True, help="Refresh until the run ends; exit 0 only if it succeeded.")
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=10.0, show_default=True, help="First refresh delay (s)."
)
@click.option(
    "--why",
    is_flag=True,
    help="Explain every job waiting in RUNNABLE, however briefly: AWS's reason, its place in the queue, the compute "
    "environment, quota or consumable resource that holds it, and the fix.",
)
@click.option("--stage", "why_stage", help="With --why: only this stage.")
@click.option(
    "--waiting-after",
    type=click.FloatRange(min=0),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    metavar="SECONDS",
    help="Mark children waiting in RUNNABLE longer than this, and say why.",
)
@common_options(*AWS, "fmt", "ledger")
@handle_errors
def status(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    watch: bool,
    interval: float,
    why: bool,
    why_stage: str | None,
    waiting_after: float,
    common: Common,
) -> None:
    """Children per stage and module in each state, progress, and why jobs failed or wait."""
    common.note_region()
    ctx = RunContext(config_path, venue, submission_file, common.aws, shared_ledger=common.ledger)
    view = ctx.open(run_id, reconcile=False)
    threshold = 0.0 if why else waiting_after
    result = show_status(
        ctx,
        view,
        ctx.plan_for(view.run_id),
        watch=watch,
        interval=interval,
        common=common,
        waiting_after=threshold,
        why_stage=why_stage,
    )
    if watch:
        sys.exit(0 if result.state == "succeeded" else 1)


def unknown_error(ctx: RunContext, result: RunStatus) -> RecordError:
    """Nobody can say what became of the run's jobs: name what was asked and what the run was recorded with."""
    asked = ctx.aws
    try:
        account = caller_account(asked)
    except AwsError:
        account = "unknown"
    region = region_in_use(asked)[0]
    message = (
        f"run {result.run_id}: {len(result.unknown)} of its recorded jobs are not known to endpoint "
        f"{asked.endpoint_url or 'AWS'}, region {region}, account {account}, and the ledger holds no outcome for them"
    )
    header = result.header
    if header is not None:
        message += f"; the run was recorded with {header.where}"
    error = RecordError(message)
    error.exit_code = 1
    error.hint = "ask where the run was submitted (--endpoint-url, --region, --profile)"
    return error


def show_status(
    ctx: RunContext,
    view: RunView,
    plan: Plan | None,
    *,
    watch: bool,
    interval: float,
    common: Common | None = None,
    waiting_after: float | None = DEFAULT_THRESHOLD,
    why_stage: str | None = None,
) -> RunStatus:
    """Print the run's status once, or (``watch``) until it ends, backing off; the last status read."""
    common = common or Common()
    fmt = common.fmt
    delay = interval
    ledger = ctx.ledger if ctx.has_ledger else None
    # Every command status prints must work when pasted anywhere: it names the run, its record and the endpoint.
    run_args = [
        *options(
            [
                ("-s", ctx.csv_path.resolve() if ctx.csv_path else None),
                ("--run-id", view.run_id),
                ("--ledger", common.ledger),
            ]
        ),
        *common.aws_args,
    ]
    config_args = options([("-c", Path(ctx.config.source).resolve() if ctx.config is not None else None)])

    def logs_command(f: FailureGroup) -> str:
        index = options([("--index", f.indices[0] if f.indices and f.indices[0] >= 0 else None)])
        return command("logs", *run_args, "--stage", f.stage, "--module", f.module, *index)

    # On a terminal the table is redrawn in place; piped output gets one table per refresh.
    live = Live(console=out, auto_refresh=False) if watch and fmt == "text" and out.is_terminal else None
    following = False
    with live or contextlib.nullcontext():
        while True:
            submitting = holder(ctx.lock_root, view.run_id)
            if following or submitting is not None:
                # A command is still submitting into the run: read its growing record again. Looked at after the
                # lock, so the read after the command let go holds every job it submitted.
                view = ctx.open(view.run_id, reconcile=False)
            following = submitting is not None
            result = collect_status(ctx.batch, view, plan, ledger=ledger)
            if submitting is not None:
                result = replace(result, submitting=str(submitting))
            if result.unknown and len(result.unknown) == len(view.rows) and not _just_started(result, watch):
                raise unknown_error(ctx, result)
            waits = waiting(ctx, view, result, waiting_after, why_stage)
            if fmt == "json":
                document = status_to_dict(result, ctx.batch.calls)
                if waiting_after is not None:
                    document["waiting"] = waiting_to_dict(waits)
                click.echo(json.dumps(document, separators=(",", ":") if watch else None))
            else:
                height = out.height if out.is_terminal else None
                view_ = status_view(
                    result,
                    width=out.width,
                    height=height,
                    logs_command=logs_command,
                    hint=[*config_args, *run_args],
                    fold=out.is_terminal,
                )
                if waits:
                    lines = [line for w in waits for line in w.lines()]
                    view_ = Group(view_, text("Waiting:\n" + "\n".join(lines), style="yellow"))
                if live is not None:
                    live.update(view_, refresh=True)
                else:
                    out.print(view_)
            if not watch or result.finished:
                if result.unknown:
                    raise unknown_error(ctx, result)
                return result
            time.sleep(delay)
            # Back off: a long run needs no 10 s polling, and DescribeJobs shares the account's API budget.
            delay = min(delay * 1.5, WATCH_MAX_INTERVAL)
            if not following:
                view = refresh(ctx.batch, view)


def waiting(
    ctx: RunContext, view: RunView, result: RunStatus, threshold: float | None, stage: str | None
) -> list[Waiting]:
    """The modules whose children wait in RUNNABLE past ``threshold`` (None: not asked), explained."""
    if threshold is None or not any(m.counts.get("RUNNABLE") for m in result.modules):
        return []
    return collect_waiting(ctx.batch, view, result, ctx.config, threshold=threshold, stage=stage)


def _just_started(result: RunStatus, watch: bool) -> bool:
    """DescribeJobs may not know a job yet right after SubmitJob (eventual consistency): a watch that starts
    with the run gives AWS a minute before calling its jobs unknown."""
    if not watch or result.started_at is None:
        return False
    return (datetime.now(UTC) - result.started_at).total_seconds() < EVENTUAL_CONSISTENCY_SECONDS
