"""``confluence-submit cancel``: stop a whole run and check that nothing of it is left active."""

from __future__ import annotations

import sys

import click

from ..cancel import cancel_run
from ..ledger import RunEvent, now_iso
from ..supervisor import request_cancel
from .common import AWS, Common, RunContext, common_options, err, handle_errors, out, run_options


@click.command()
@run_options
@click.option("--wait", "wait_seconds", type=float, default=120.0, show_default=True, help="How long to check (s).")
@common_options(*AWS, "ledger")
@handle_errors
def cancel(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    wait_seconds: float,
    common: Common,
) -> None:
    """Stop a whole run: terminate what runs, cancel what waits, check until nothing is active."""
    ctx = RunContext(config_path, venue, submission_file, common.aws, shared_ledger=common.ledger)
    view = ctx.open(run_id)
    # A supervised run: the cancel is recorded before anything is stopped, so its supervisor (a local loop or the
    # venue's function) ends it "cancelled", with its report and summary, not "over budget" on the stopped jobs.
    supervised = request_cancel(ctx.ledger, view.run_id, detail="cancel", by="cancel") if ctx.has_ledger else None
    report = cancel_run(ctx.batch, view, reason=f"Confluence run {view.run_id} cancelled", wait_seconds=wait_seconds)
    if supervised is not None and not supervised.over:
        out.print(
            f"run {view.run_id} is supervised ({supervised.mode}): the cancel is recorded in its ledger; its "
            "supervisor ends it as cancelled and writes the report",
            highlight=False,
        )
    elif ctx.has_ledger and not report.nothing_to_do:
        # status and runs read "cancelled" from here (until a resume or retry-failed submits into the run again)
        ctx.ledger.note(view.run_id, RunEvent(now_iso(), "cancelled", f"{report.active_before} active jobs", "cancel"))
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
