"""Run operations: ``status``, ``cancel``, ``resume`` and ``retry-failed`` (registered by cli.py when present).

Each command finds the run from the submission CSV, or from ``--run-id`` alone through the Batch API (jobs by name
in the config's queues), renders what the core returns, and picks the exit code: 0 ok, 1 the run failed or an AWS
call failed, 2 bad input.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .cli_common import aws_options, config_options, err, handle_errors, out
from .config import Config, load_config
from .errors import RecordError
from .plan import Plan, build_plan

F = TypeVar("F", bound=Callable[..., Any])
STATUS_COLUMNS = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
STATUS_HEADERS = {
    "SUBMITTED": "SUB",
    "PENDING": "PEND",
    "RUNNABLE": "RNBL",
    "STARTING": "STRT",
    "RUNNING": "RUN",
    "SUCCEEDED": "OK",
    "FAILED": "FAIL",
}
STATUS_STYLES = {"RUNNING": "cyan", "SUCCEEDED": "green", "FAILED": "red"}
WATCH_MAX_INTERVAL = 60.0


def run_options(fn: F) -> F:
    """Which run: --run-id and/or -s FILE, plus the config that names its queues and plan."""
    fn = click.option("--run-id", help="The run (default: the latest run in the submission file).")(fn)
    fn = click.option(
        "-s", "--submission-file", help="Submission CSV (default: submission_file from the config, if it exists)."
    )(fn)
    return config_options(fn)


class Context:
    """What every command needs: the config (when readable), the CSV path and a Batch client."""

    def __init__(
        self,
        config_path: str,
        venue: str | None,
        submission_file: str | None,
        endpoint_url: str | None,
        region: str | None,
        *,
        need_config: bool = False,
        max_pool: int = 20,
    ) -> None:
        from .aws import AwsOptions, Batch

        self.config: Config | None = None
        if need_config or Path(config_path).exists():
            self.config = load_config(config_path, venue=venue)
        elif config_path != "confluence.yaml":
            load_config(config_path, venue=venue)  # raises "file not found" for a path the user named
        path = submission_file or (self.config.submission_file if self.config else None)
        self.csv_path = Path(path) if path else None
        self.options = AwsOptions(endpoint_url=endpoint_url, region=region)
        self.batch = Batch(self.options, max_pool=max_pool)
        self._plans: dict[str, Plan] = {}

    def plan_for(self, run_id: str) -> Plan | None:
        if self.config is None:
            return None
        if run_id not in self._plans:
            self._plans[run_id] = build_plan(self.config, run_id)
        return self._plans[run_id]

    def open(self, run_id: str | None, *, reconcile: bool = True) -> Any:
        from .runstate import open_run

        if self.csv_path is None and run_id is None:
            raise RecordError("name the run: pass --run-id ID or -s submissions.csv")
        queues = self.config.job_queues if self.config else ()
        return open_run(
            self.batch,
            run_id=run_id,
            csv_path=self.csv_path,
            plan_for=self.plan_for,
            queues=queues,
            reconcile=reconcile,
        )


# --------------------------------------------------------------------------------------------------------------
# status


def _status_view(status: Any) -> Group:
    from .status import is_dependency_failure

    table = Table(
        title=f"Confluence run {status.run_id} ({status.state}; from {status.source})",
        caption=" ".join(f"{short}={long}" for long, short in STATUS_HEADERS.items()),
    )
    table.add_column("stage / module")
    table.add_column("jobs", justify="right")
    for column in STATUS_COLUMNS:
        table.add_column(STATUS_HEADERS[column], justify="right")
    table.add_column("progress")
    table.add_column("", justify="right")

    def cells(counts: dict[str, int]) -> list[Text]:
        return [
            Text(str(counts[c]), style=STATUS_STYLES.get(c, "") if counts[c] else "dim") for c in STATUS_COLUMNS
        ]

    for stage in status.stages:
        totals = status.totals(stage)
        total = sum(totals.values())
        done = totals["SUCCEEDED"] + totals["FAILED"]
        bar = ProgressBar(total=max(total, 1), completed=done, width=12)
        modules = [m for m in status.modules if m.stage == stage]
        table.add_row(
            Text(stage, style="bold"),
            str(sum(m.jobs for m in modules)),
            *cells(totals),
            bar,
            Text(f"{100 * done // max(total, 1)}%", style="dim"),
        )
        if len(modules) > 1 or (modules and modules[0].module != stage):
            for m in modules:
                table.add_row(f"  {m.module}", str(m.jobs), *cells(m.counts), "", "")
    lines: list[Any] = [table]
    own = [f for f in status.failures if not is_dependency_failure(f)]
    cascaded = [f for f in status.failures if is_dependency_failure(f)]
    for f in own:
        where = f" indices {_ranges(f.indices)}" if f.indices else ""
        lines.append(Text(f"failed: {f.job_name}: {f.count} x {f.reason}{where}", style="red"))
    if cascaded:
        count = sum(f.count for f in cascaded)
        lines.append(Text(f"failed: {count} children of {len(cascaded)} jobs: Dependent Job failed", style="red"))
    if status.missing:
        lines.append(Text(f"not submitted: {len(status.missing)} jobs of the plan (confluence-submit resume)"))
    for name, ids in status.duplicates:
        lines.append(Text(f"duplicate: {name} also submitted as {', '.join(ids)}", style="yellow"))
    totals = status.totals()
    lines.append(
        Text(
            f"{sum(totals.values())} children: {totals['SUCCEEDED']} succeeded, {totals['FAILED']} failed, "
            f"{status.active} active; {sum(len(v) for v in status.outstanding.values())} failed and not retried"
        )
    )
    return Group(*lines)


def _ranges(indices: tuple[int, ...], limit: int = 12) -> str:
    shown = ", ".join(str(i) if i >= 0 else "-" for i in indices[:limit])
    return shown + (f" ... (+{len(indices) - limit})" if len(indices) > limit else "")


@click.command()
@run_options
@aws_options
@click.option("--watch", is_flag=True, help="Refresh until the run ends; exit 0 only if it succeeded.")
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=10.0, show_default=True, help="First refresh delay (s)."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def status(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    endpoint_url: str | None,
    region: str | None,
    watch: bool,
    interval: float,
    fmt: str,
) -> None:
    """Children per stage and module in each state, progress, and why jobs failed."""
    from .runstate import refresh
    from .status import collect_status, status_to_dict

    ctx = Context(config_path, venue, submission_file, endpoint_url, region)
    view = ctx.open(run_id, reconcile=False)
    plan = ctx.plan_for(view.run_id)
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
                live.update(_status_view(result), refresh=True)
            else:
                out.print(_status_view(result))
            if not watch:
                return
            if result.finished:
                break
            time.sleep(delay)
            # Back off: a long run needs no 10 s polling, and DescribeJobs shares the account's API budget.
            delay = min(delay * 1.5, WATCH_MAX_INTERVAL)
            view = refresh(ctx.batch, view)
    sys.exit(0 if result.state == "succeeded" else 1)


# --------------------------------------------------------------------------------------------------------------
# cancel


@click.command()
@run_options
@aws_options
@click.option("--wait", "wait_seconds", type=float, default=120.0, show_default=True, help="How long to check (s).")
@handle_errors
def cancel(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    endpoint_url: str | None,
    region: str | None,
    wait_seconds: float,
) -> None:
    """Stop a whole run: terminate what runs, cancel what waits, check until nothing is active."""
    from .resume import cancel_run

    ctx = Context(config_path, venue, submission_file, endpoint_url, region)
    view = ctx.open(run_id)
    report = cancel_run(ctx.batch, view, reason=f"Confluence run {view.run_id} cancelled", wait_seconds=wait_seconds)
    if report.nothing_to_do:
        out.print(f"nothing to cancel: no job of run {view.run_id} is active ({len(view.rows)} jobs)", highlight=False)
        return
    stop = report.stop
    out.print(
        f"run {view.run_id}: cancelled {len(stop.cancelled)} queued jobs, terminated {len(stop.terminated)} "
        f"started jobs ({report.active_before} were active)",
        highlight=False,
    )
    for job_id, why in stop.not_stopped:
        err.print(f"[yellow]could not stop:[/] {job_id} ({why})", highlight=False)
    for name, job_id, state in report.still_active:
        err.print(f"[yellow]still active:[/] {name} {job_id} ({state})", highlight=False)
    if report.still_active:
        sys.exit(1)
    out.print(f"no job of run {view.run_id} is active", highlight=False)


# --------------------------------------------------------------------------------------------------------------
# resume


def _recorder(ctx: Context, view: Any) -> Any:
    from .record import Recorder

    if ctx.csv_path is None:
        raise RecordError("no submission file to record to: pass -s FILE")
    return Recorder(ctx.csv_path)


@click.command()
@run_options
@aws_options
@click.option("--force", is_flag=True, help="Submit even though the plan changed since the run started.")
@click.option("--rate", type=click.FloatRange(min=0.1, max=50), default=40.0, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True)
@handle_errors
def resume(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    endpoint_url: str | None,
    region: str | None,
    force: bool,
    rate: float,
    workers: int,
) -> None:
    """Submit exactly the jobs of the plan that the run does not hold yet (after a crash or --on-failure keep)."""
    from .resume import resume_run

    ctx = Context(config_path, venue, submission_file, endpoint_url, region, need_config=True, max_pool=workers + 4)
    view = ctx.open(run_id)
    plan = ctx.plan_for(view.run_id)
    assert plan is not None
    for name, ids in view.duplicates:
        err.print(f"[yellow]warning:[/] {name} exists twice in AWS (also {', '.join(ids)})", highlight=False)
    with _recorder(ctx, view) as recorder:
        result = resume_run(ctx.batch, plan, view, recorder, force=force, rate=rate, workers=workers)
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


# --------------------------------------------------------------------------------------------------------------
# retry-failed


@click.command("retry-failed")
@run_options
@aws_options
@click.option("--dry-run", is_flag=True, help="Show what would be retried, cancelled and rerun; change nothing.")
@click.option("--rate", type=click.FloatRange(min=0.1, max=50), default=40.0, show_default=True)
@handle_errors
def retry_failed(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    endpoint_url: str | None,
    region: str | None,
    dry_run: bool,
    rate: float,
) -> None:
    """Resubmit the failed indices of a run as compact arrays and rerun what waited for them."""
    from .retry import plan_retry
    from .status import collect_status
    from .stop import stop_jobs
    from .submit import submit_plan

    ctx = Context(config_path, venue, submission_file, endpoint_url, region, need_config=True)
    view = ctx.open(run_id)
    plan = ctx.plan_for(view.run_id)
    assert plan is not None
    state = collect_status(ctx.batch, view, plan)
    retry = plan_retry(view, state, plan)
    for key in retry.waiting:
        out.print(f"not yet: {key} still has active children; retry-failed again once it ends", highlight=False)
    if retry.empty:
        out.print(f"nothing to retry: run {view.run_id} has no failed job that can be retried now", highlight=False)
        return
    for (stage, module, i), indices in retry.retried.items():
        out.print(
            f"retry {stage}.{module}[{i}]: {len(indices)} failed indices: {_ranges(tuple(indices))}", highlight=False
        )
    if retry.rerun:
        out.print(f"rerun {len(retry.rerun)} jobs whole (they never ran or failed entirely)", highlight=False)
    if retry.cancel:
        out.print(f"cancel {len(retry.cancel)} downstream jobs not started yet, resubmitted", highlight=False)
    if dry_run:
        for s in retry.plan.submissions:
            out.print(f"  would submit {s.name} (array {s.array_size})", highlight=False)
        return
    if retry.cancel:
        report = stop_jobs(
            ctx.batch,
            [r.job_id for r in retry.cancel],
            f"Confluence run {view.run_id}: superseded by retry-failed generation {retry.generation}",
        )
        if report.not_stopped:
            for job_id, why in report.not_stopped:
                err.print(f"[red]could not cancel[/] {job_id} ({why}); nothing submitted", highlight=False)
            sys.exit(1)
    with _recorder(ctx, view) as recorder:
        for row in view.unrecorded:
            recorder.append(row)
        outcome = submit_plan(retry.plan, ctx.batch, recorder, known=retry.known, rate=rate)
    if outcome.failure is not None:
        err.print(
            f"[bold red]error:[/] submitting {outcome.failure.submission.name} failed: {outcome.failure.message}; "
            "run retry-failed again after fixing the cause",
            highlight=False,
        )
        sys.exit(1)
    out.print(
        f"retry generation {retry.generation}: submitted {len(outcome.submitted)} jobs to run {view.run_id}",
        highlight=False,
    )


__all__ = ["cancel", "resume", "retry_failed", "status"]
