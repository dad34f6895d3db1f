"""``confluence-submit cancel``: stop a whole run and check that nothing of it is left active."""

from __future__ import annotations

import sys
import time

import click

from .. import names
from ..apply.cancel import cancel_run
from ..aws.api import client
from ..records.ledger import RunEvent, now_iso
from ..records.runlock import Holder, clear_stop, holder, request_stop, stop_requested
from ..safetext import markup
from ..supervision.loop import hand_over, request_cancel
from .common import AWS, Common, RunContext, common_options, err, handle_errors, out, run_options

LOCK_POLL = 0.2  # seconds between looks at whether the command submitting into the run has let go


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
    run_id = ctx.run_id_for(run_id)
    stop_submitting(ctx, run_id, wait_seconds)
    view = ctx.open(run_id)
    # A supervised run: the cancel is recorded before anything is stopped, so its supervisor (a local loop or the
    # venue's function) ends it "cancelled", with its report and summary, not "over budget" on the stopped jobs.
    supervised = request_cancel(ctx.ledger, view.run_id, detail="cancel", by="cancel") if ctx.has_ledger else None
    report = cancel_run(ctx.batch, view, reason=f"Confluence run {view.run_id} cancelled", wait_seconds=wait_seconds)
    if supervised is not None and not supervised.over:
        if supervised.mode == "cloud":
            # The function acts on events: this one ends the run even when none of its jobs was running to send one.
            run = supervised.run
            hand_over(client("events", common.aws), run.prefix, run.run_id, names.RUN_CANCELLED, supervised.ledger)
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
        err.print(f"[yellow]could not stop:[/] {job_id} ({markup(why)})", highlight=False)
    for name, job_id, state in report.still_active:
        err.print(f"[yellow]still active:[/] {markup(name)} {job_id} ({state})", highlight=False)
    if report.still_active:
        sys.exit(1)
    out.print(f"no job of run {view.run_id} is active", highlight=False)


def stop_submitting(ctx: RunContext, run_id: str, wait_seconds: float) -> None:
    """A command still submitting into the run would add jobs after we looked: ask it to stop (it looks before
    each SubmitJob) and wait until it has let go of the run's record. Exits 1 if it does not within the wait."""
    root = ctx.lock_root
    running = holder(root, run_id)
    if root is None or running is None:
        return
    me = Holder.me("cancel")
    request_stop(root, run_id, me)
    out.print(f"run {run_id} is being submitted by {running}: asked it to stop", highlight=False)
    deadline = time.monotonic() + wait_seconds
    while holder(root, run_id) is not None:
        if time.monotonic() > deadline:
            # The request stays: the command stops at its next SubmitJob, and the next cancel stops the jobs.
            err.print(
                f"[bold red]error:[/] {running} has not stopped within {wait_seconds:g} s (the request stands); "
                "nothing was cancelled yet: run cancel again",
                highlight=False,
            )
            sys.exit(1)
        if stop_requested(root, run_id) is None:
            request_stop(root, run_id, me)  # a new holder took the record and cleared the request: ask it too
        time.sleep(LOCK_POLL)
    clear_stop(root, run_id)
    out.print(f"it stopped submitting; cancelling run {run_id}", highlight=False)
