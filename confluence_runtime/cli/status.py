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

from ..aws.api import caller_account, client, region_in_use
from ..errors import AwsError, RecordError
from ..planning.plan import Plan
from ..records import provenance
from ..records.ledger import RunHeader, config_sha256
from ..records.runlock import holder
from ..safetext import text
from ..shellcmd import command, options, shell
from ..views.logs import LogReader
from ..views.render import status_view, waiting_view, watch_changes
from ..views.runview import RunView, refresh
from ..views.status import (
    LOG_LINES,
    LOG_TAILS,
    FailureGroup,
    RunStatus,
    collect_status,
    status_to_dict,
    where_differs,
    with_log_tails,
)
from ..views.why import DEFAULT_THRESHOLD, Waiting, collect_waiting, waiting_to_dict
from .common import AWS, AWS_FLAGS, Common, RunContext, common_options, err, handle_errors, out, run_options

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
@click.option(
    "--log-lines",
    type=click.IntRange(0, 50),
    default=LOG_LINES,
    show_default=True,
    help=f"Last lines of a failed child's log shown under its reason (0: none; {LOG_TAILS} failures at most).",
)
@click.option(
    "--from-ledger",
    is_flag=True,
    help="Read the run although it was recorded with another endpoint, region or account (its ledger answers).",
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
    log_lines: int,
    from_ledger: bool,
    common: Common,
) -> None:
    """Children per stage and module in each state, progress, and why jobs failed or wait."""
    common.note_region()
    ctx = RunContext(config_path, venue, submission_file, common.aws, shared_ledger=common.ledger)
    view = ctx.open(run_id, reconcile=False)
    check_where(ctx, view.run_id, from_ledger=from_ledger)
    threshold = 0.0 if why else waiting_after
    result = show_status(
        ctx,
        view,
        ctx.plan_for(view.run_id),
        watch=watch,
        interval=interval,
        common=common,
        log_lines=log_lines,
        waiting_after=threshold,
        why_stage=why_stage,
    )
    if watch:
        sys.exit(0 if result.state == "succeeded" else 1)


def check_where(ctx: RunContext, run_id: str, *, from_ledger: bool) -> None:
    """Refuse (exit 1) to read a run from another endpoint, region or account than it was recorded with: AWS there
    knows none of its jobs, so a live run would look frozen at what the ledger last saw. ``from_ledger``: go on,
    saying so."""
    header = ctx.ledger.header(run_id) if ctx.has_ledger else None
    if header is None:
        return
    asked = ctx.aws
    account = None
    if header.account:
        try:
            account = caller_account(asked)
        except AwsError:
            account = None  # cannot be asked: the region and endpoint still tell
    differences = where_differs(header, region_in_use(asked)[0], asked.endpoint_url, account)
    if not differences:
        return
    message = f"run {run_id} was recorded with {header.where}; this command asks {', '.join(differences)}"
    if from_ledger:
        err.print(text(f"note: {message}: what AWS there does not know is answered from the ledger"), highlight=False)
        return
    error = RecordError(message + ": AWS there knows none of its jobs, so a running run would look frozen")
    error.exit_code = 1
    flags = where_flags(header)
    error.hint = (
        f"ask where it was recorded ({flags}), or pass --from-ledger to read what the ledger last observed"
        if flags
        else "pass --from-ledger to read what the ledger last observed"
    )
    raise error


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
    log_lines: int = LOG_LINES,
    waiting_after: float | None = DEFAULT_THRESHOLD,
    why_stage: str | None = None,
) -> RunStatus:
    """Print the run's status once, or (``watch``) until it ends, backing off; the last status read.

    Ctrl-C stops the watching, never the run (exit 130). Piped, a watch prints the whole view once, then only what
    changed (a line per change of the counts, each new failure), and the whole view again at the end."""
    common = common or Common()
    try:
        return _show_status(
            ctx,
            view,
            plan,
            watch=watch,
            interval=interval,
            common=common,
            log_lines=log_lines,
            waiting_after=waiting_after,
            why_stage=why_stage,
        )
    except KeyboardInterrupt:
        if not watch:
            raise
        again = watch_again(ctx, view, common)
        err.print(text(f"stopped watching; the run goes on. Watch it again with: {again}"), highlight=False)
        sys.exit(130)


def _note_other_config(ctx: RunContext, header: RunHeader | None) -> None:
    """Say so when the run was started from another confluence.yaml than the one read now (``./confluence.yaml``
    when no ``-c`` was given): the plan and the explanations of waiting jobs come from the one read now."""
    if ctx.config is None or header is None or not header.config_sha256:
        return
    source = Path(ctx.config.source)
    if not source.is_file() or config_sha256(source) == header.config_sha256:
        return
    recorded = Path(header.config_path)
    said = f"note: run {header.run_id} was started from {header.config_path} as it was then, not {source} as it is"
    said += " now: what status explains comes from the latter"
    if recorded.is_absolute() and recorded != source.resolve() and recorded.is_file():
        said += f"; pass -c {shell(recorded.resolve())}"
    err.print(text(said), highlight=False)


def _show_status(
    ctx: RunContext,
    view: RunView,
    plan: Plan | None,
    *,
    watch: bool,
    interval: float,
    common: Common,
    log_lines: int,
    waiting_after: float | None = DEFAULT_THRESHOLD,
    why_stage: str | None = None,
) -> RunStatus:
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
    _note_other_config(ctx, ledger.header(view.run_id) if ledger is not None else None)

    def logs_command(f: FailureGroup) -> str:
        index = options([("--index", f.indices[0] if f.indices and f.indices[0] >= 0 else None)])
        return command("logs", *run_args, "--stage", f.stage, "--module", f.module, *index)

    linked = provenance.links(ledger, view.run_id) if ledger is not None else {}  # a recovered run's origin
    # On a terminal the table is redrawn in place; piped output gets the table, then only what changed, then the
    # table again at the end (a 10-hour run piped to a file used to leave 15,000 lines).
    live = Live(console=out, auto_refresh=False) if watch and fmt == "text" and out.is_terminal else None
    following = False
    previous: RunStatus | None = None
    said_waiting: tuple[tuple[str, str, str], ...] = ()
    tails: dict[str, tuple[str, ...]] = {}  # a failed child's log does not change: read once per watch
    logs_reader: LogReader | None = None

    def read_tail(group: str, stream: str, lines: int) -> list[str]:
        nonlocal logs_reader
        if logs_reader is None:
            logs_reader = LogReader(client("logs", ctx.aws))
        return [event.message.rstrip() for event in logs_reader.tail(group, stream, lines)]

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
            result = with_log_tails(ctx.batch, read_tail, result, lines=log_lines, cache=tails)
            if result.unknown and len(result.unknown) == len(view.rows) and not _just_started(result, watch):
                raise unknown_error(ctx, result)
            waits = waiting(ctx, view, result, waiting_after, why_stage)
            if fmt == "json":
                document = status_to_dict(result, ctx.batch.calls)
                if waiting_after is not None:
                    document["waiting"] = waiting_to_dict(waits)
                if linked:
                    document["link"] = linked
                click.echo(json.dumps(document, separators=(",", ":") if watch else None))
            else:
                height = out.height if out.is_terminal else None
                waited = waiting_view(waits, out.width, fold=out.is_terminal) if waits else None
                if height is not None and waited is not None:
                    # the run's own lines fold to what the screen leaves them: its head never scrolls away
                    height = max(height - len(waited.plain.splitlines()), 10)
                view_ = status_view(
                    result,
                    width=out.width,
                    height=height,
                    logs_command=logs_command,
                    hint=[*config_args, *run_args],
                    fold=out.is_terminal,
                )
                if waited is not None:
                    view_ = Group(view_, waited)
                if live is not None:
                    live.update(view_, refresh=True)
                elif not watch or previous is None or result.finished:
                    out.print(view_)
                else:
                    for line in watch_changes(previous, result, datetime.now(UTC)):
                        out.print(line)
                    # Piped, what waits and why is said when it changes (its causes, not its growing counts).
                    said = tuple((w.stage, w.module, w.cause) for w in waits)
                    if waits and said != said_waiting:
                        out.print(waiting_view(waits, out.width, fold=False))
                    said_waiting = said
                if linked and live is None and (not watch or previous is None or result.finished):
                    out.print(text(f"run {view.run_id}: {provenance.link_text(linked)}"), highlight=False)
                if watch and live is None:
                    sys.stdout.flush()  # a pipe (tee, a CI log) sees each poll's lines as they come
            previous = result
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
    aws = {"endpoint_url": ctx.aws.endpoint_url, "region": ctx.aws.region, "profile": ctx.aws.profile}
    pairs = [
        ("-c", ctx.config.source if ctx.config else None),
        ("--venue", ctx.venue),
        *((AWS_FLAGS[key], value) for key, value in aws.items()),
    ]
    args = [str(a) for a in options(pairs)]
    return collect_waiting(ctx.batch, view, result, ctx.config, threshold=threshold, stage=stage, command_args=args)


def watch_again(ctx: RunContext, view: RunView, common: Common) -> str:
    """The command that watches this run again (its record, ledger and endpoint named)."""
    aws = {"endpoint_url": common.endpoint_url, "region": common.region, "profile": common.profile}
    pairs = [
        ("-s", ctx.csv_path.resolve() if ctx.csv_path else None),
        ("--run-id", view.run_id),
        ("--ledger", common.ledger),
        *((AWS_FLAGS[key], value) for key, value in aws.items()),
    ]
    return command("status", *options(pairs), "--watch")


def where_flags(header: RunHeader) -> str:
    """The options that ask where the run was recorded (the account is the credentials': named, not an option)."""
    flags = shell(*options([(AWS_FLAGS["endpoint_url"], header.endpoint), (AWS_FLAGS["region"], header.region)]))
    return flags + (f"; credentials of account {header.account}" if header.account else "")


def _just_started(result: RunStatus, watch: bool) -> bool:
    """DescribeJobs may not know a job yet right after SubmitJob (eventual consistency): a watch that starts
    with the run gives AWS a minute before calling its jobs unknown."""
    if not watch or result.started_at is None:
        return False
    return (datetime.now(UTC) - result.started_at).total_seconds() < EVENTUAL_CONSISTENCY_SECONDS
