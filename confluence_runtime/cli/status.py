"""``confluence-submit status``: children per stage and module in each state, and why jobs failed."""

from __future__ import annotations

import contextlib
import json
import sys
import time

import click
from rich.live import Live

from ..plan import Plan
from ..render import status_view
from ..runview import RunView, refresh
from ..status import RunStatus, collect_status, status_to_dict
from .common import AWS, Common, RunContext, common_options, handle_errors, out, run_options

WATCH_MAX_INTERVAL = 60.0


@click.command()
@run_options
@click.option("--watch", is_flag=True, help="Refresh until the run ends; exit 0 only if it succeeded.")
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=10.0, show_default=True, help="First refresh delay (s)."
)
@common_options(*AWS, "fmt")
@handle_errors
def status(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    watch: bool,
    interval: float,
    common: Common,
) -> None:
    """Children per stage and module in each state, progress, and why jobs failed."""
    ctx = RunContext(config_path, venue, submission_file, common.aws)
    view = ctx.open(run_id, reconcile=False)
    result = show_status(ctx, view, ctx.plan_for(view.run_id), watch=watch, interval=interval, fmt=common.fmt)
    if watch:
        sys.exit(0 if result.state == "succeeded" else 1)


def show_status(
    ctx: RunContext, view: RunView, plan: Plan | None, *, watch: bool, interval: float, fmt: str = "text"
) -> RunStatus:
    """Print the run's status once, or (``watch``) until it ends, backing off; the last status read."""
    delay = interval
    # On a terminal the table is redrawn in place; piped output gets one table per refresh.
    live = Live(console=out, auto_refresh=False) if watch and fmt == "text" and out.is_terminal else None
    with live or contextlib.nullcontext():
        while True:
            result = collect_status(ctx.batch, view, plan)
            if fmt == "json":
                document = status_to_dict(result, ctx.batch.calls)
                click.echo(json.dumps(document, separators=(",", ":") if watch else None))
            elif live is not None:
                live.update(status_view(result), refresh=True)
            else:
                out.print(status_view(result))
            if not watch or result.finished:
                return result
            time.sleep(delay)
            # Back off: a long run needs no 10 s polling, and DescribeJobs shares the account's API budget.
            delay = min(delay * 1.5, WATCH_MAX_INTERVAL)
            view = refresh(ctx.batch, view)
