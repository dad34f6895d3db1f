"""``confluence-submit run --supervise local|cloud`` and ``supervise --run-id``: stage-by-stage runs with failure
budgets (see :mod:`confluence_runtime.supervision.decisions` for the decisions,
:mod:`confluence_runtime.supervision.loop` for the loop)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from .. import names
from ..aws.api import Batch, client
from ..config import Config, load_config
from ..errors import RecordError
from ..planning.plan import new_run_id
from ..records.document import read_state, round_lines
from ..records.ledger import Ledger, open_ledger, open_store
from ..safetext import text
from ..shellcmd import Arg, command, options
from ..supervision.decisions import exit_code, summarize
from ..supervision.loop import (
    BatchAws,
    Reporter,
    Supervisor,
    SupervisorState,
    hand_over,
    local_token,
    recover,
    request_cancel,
    run_locally,
)
from ..supervision.start import ledger_args, start_supervised_run
from ..views.render import ranges
from .common import AWS, Common, F, common_options, err, handle_errors, out, setup_logging

MODES = ("local", "cloud")


def supervision_options(fn: F) -> F:
    fn = click.option(
        "--poll", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds between looks at AWS."
    )(fn)
    fn = click.option(
        "--alerts-topic",
        help="SNS topic ARN for the end-of-run summary (local supervision): the venue's {prefix}-alerts topic, "
        "the one the submitter policy may publish to (its ARN is in SSM /{prefix}/alerts/topic-arn).",
    )(fn)
    return fn


def supervise_workflow(
    config: Config,
    run_id: str | None,
    csv_path: Path,
    common: Common,
    *,
    mode: str,
    ledger_url: str | None,
    poll: float,
    alerts_topic: str | None,
    preflight: bool = True,
    link: Mapping[str, Any] | None = None,
    check_function: bool = True,
    max_cost: float | None = None,
) -> int:
    """``run --supervise``: record the run, then supervise it here (local) or hand it to the venue's function.
    ``link``: a recovered run's origin (``record_run``'s keywords)."""
    run_id = run_id or new_run_id()
    setup_logging(common.log_file or config.log_file, common.verbose)
    batch = Batch(common.aws, max_pool=common.workers + 4)
    started = start_supervised_run(
        config,
        run_id,
        batch,
        mode=mode,
        csv_path=csv_path,
        ledger_url=ledger_url,
        aws=common.aws,
        endpoint=common.endpoint_url,
        check=preflight,
        aws_args=common.aws_args,
        link=link,
        check_function=check_function,
        max_cost=max_cost,
    )
    ledger = started.ledger
    err.print(
        f"run [bold]{run_id}[/]: supervised ({mode}), {len(config.stages)} stages, ledger {ledger.location}",
        highlight=False,
    )
    if started.function is not None:
        err.print(
            f"handed run {run_id} to the venue's supervisor function ({started.function}): it submits stage "
            f"{config.stages[0].name} and each stage after it. Watch with:",
            highlight=False,
        )
        where = ["--ledger", ledger.store.location]
        click.echo(command("supervise", "--run-id", run_id, *where, *common.aws_args, "--status"))
        return 0
    again = command("supervise", "--run-id", run_id, *ledger_args(csv_path, ledger_url), *common.aws_args)
    hint_args = [*ledger_args(csv_path, ledger_url), *common.aws_args]
    return supervise_here(
        ledger, batch, run_id, common, poll=poll, alerts_topic=alerts_topic, again=again, hint_args=hint_args
    )


def show_done_stages(state: SupervisorState, shown: set[str]) -> None:
    """One line for each stage that finished since the last call (``shown`` remembers them)."""
    for stage in state.stages:
        if stage.status == "done" and stage.stage not in shown:
            shown.add(stage.stage)
            failed = sum(len(v) for _, v in stage.failed)
            skipped = f", {len(stage.skipped)} left out (lost upstream)" if stage.skipped else ""
            out.print(f"stage {stage.stage}: done, {failed} children failed{skipped}", highlight=False)


def watch_handed_over(
    ledger: Ledger,
    run_id: str,
    *,
    poll: float,
    stalled: Callable[[], str | None] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Follow a run another supervisor drives (the venue's function) from its ledger until it is over and
    reported; the same lines and exit code as a local supervision. ``stalled`` says why to stop waiting, if so."""
    shown: set[str] = set()
    while True:
        problem = stalled()
        if problem is not None:
            raise RecordError(f"run {run_id}: {problem}")
        state = read_state(lambda name: ledger.read(run_id, name))
        if state is not None:
            show_done_stages(state, shown)
            if state.over and state.notified:
                return _ended(state, ledger, ["--ledger", ledger.store.location])
        sleep(poll)


def supervise_here(
    ledger: Ledger,
    batch: Batch,
    run_id: str,
    common: Common,
    *,
    poll: float,
    alerts_topic: str | None,
    again: str,
    hint_args: Sequence[Arg] = (),
    shown: set[str] | None = None,
    by: str = "supervise (local)",
) -> int:
    """Supervise a run here until it is over and reported; ``shown``: stages whose end was already said."""
    s3 = client("s3", common.aws)
    reporter = Reporter(ledger, s3=s3, sns=client("sns", common.aws) if alerts_topic else None, topic_arn=alerts_topic)
    supervisor = Supervisor(ledger, BatchAws(batch, s3), run_id, token=local_token(), on_end=reporter, by=by)
    shown = set() if shown is None else shown
    try:
        state = run_locally(supervisor, poll=poll, on_step=lambda _: show_done_stages(supervisor.load(), shown))
    except KeyboardInterrupt:
        err.print(f"\ninterrupted: nothing is lost; continue supervising with\n  {again}", highlight=False)
        return 130
    return _ended(state, ledger, hint_args)


def _ended(state: SupervisorState, ledger: Ledger, hint_args: Sequence[Arg] = ()) -> int:
    """The run's verdict; when children failed, which ones (by module), the ``logs`` command of the first of each
    and the command that reruns them. ``hint_args``: the options that name the run's ledger and AWS, for pasting."""
    summary = summarize(state)
    colour = "green" if state.state == "succeeded" else "red"
    # prose: at a terminal wrapped at words (the console keeps commands whole; these lines hold none); piped, a
    # line each
    verdict = text(f"{state.state.replace('_', ' ')}: ", f"bold {colour}") + text(summary.paragraph())
    out.print(verdict, highlight=False, soft_wrap=not out.is_terminal)
    run_id = state.run.run_id
    failed = [(stage.stage, module, indices) for stage in state.stages for module, indices in stage.failed if indices]
    for stage_name, module, indices in failed:
        out.print(
            text(f"failed: {stage_name}/{module} {len(indices)} children: {ranges(list(indices))}"), highlight=False
        )
        index = options([("--index", indices[0] if indices[0] >= 0 else None)])
        logs = command("logs", "--run-id", run_id, *hint_args, "--stage", stage_name, "--module", module, *index)
        out.print(text(f"  {logs}", "dim"), highlight=False)
    if failed and state.state != "succeeded":
        out.print(text(f"rerun the failed children with: {command('retry-failed', '--run-id', run_id, *hint_args)}"))
    out.print(f"report: {ledger.store.location}/{run_id}/module_data_report.json", highlight=False)
    return exit_code(state)


@click.command()
@click.option("--run-id", required=True, help="The supervised run to continue.")
@click.option("-s", "--submission-file", help="Submission CSV of a local run (default: submission_file of -c).")
@click.option("-c", "--config", "config_path", default="confluence.yaml", show_default=True, help="The workflow file.")
@supervision_options
@click.option("--status", "show", is_flag=True, help="Only show where the run is; change nothing.")
@click.option("--cancel", "cancel", is_flag=True, help="Stop the run: what runs is stopped, the report is written.")
@click.option(
    "--hand-over", "hand_over_again", is_flag=True, help="Hand a cloud-supervised run to the venue's function again."
)
@common_options(*AWS, "log_file", "verbose", "ledger")
@handle_errors
def supervise(
    run_id: str,
    submission_file: str | None,
    config_path: str,
    alerts_topic: str | None,
    poll: float,
    show: bool,
    cancel: bool,
    hand_over_again: bool,
    common: Common,
) -> None:
    """Continue supervising a run after its supervisor was killed, from the ledger; nothing is submitted twice."""
    ledger_url = common.ledger
    csv = submission_file
    if csv is None and ledger_url is None:
        csv = load_config(config_path).submission_file if Path(config_path).exists() else None
    if csv is None and ledger_url is None:
        raise RecordError("name the ledger: pass -s submissions.csv or --ledger s3://BUCKET/PREFIX")
    ledger = open_ledger(csv, ledger_url, common.aws) if csv else Ledger(open_store(ledger_url or "", common.aws))
    setup_logging(common.log_file, common.verbose)
    batch = Batch(common.aws)
    # Killed between the run's header and its document: nothing was submitted; supervise it from its file.
    missing = not show and ledger.read(run_id, names.SUPERVISOR_DOCUMENT) is None
    if missing and recover(ledger, run_id, load_config) is not None:
        err.print(f"run {run_id}: recorded without its supervisor's document; recreated it", highlight=False)
    if show:
        state = Supervisor(ledger, BatchAws(batch), run_id, token="read-only").load()  # noqa: S106 - a supervisor name
        for stage in state.stages:
            failed = sum(len(v) for _, v in stage.failed)
            status = stage.status
            if state.over and status != "done":
                # The run ended before this stage did: what was submitted of it was stopped, or it never started.
                status = "stopped" if stage.job_ids else "not run"
            out.print(
                f"{stage.stage:<24} {status:<10} jobs {len(stage.jobs):>3}  failed {failed:>5}  "
                f"left out {len(stage.skipped):>5}",
                highlight=False,
            )
        out.print(f"run {run_id}: {state.state}" + (f" ({state.reason})" if state.reason else ""), highlight=False)
        for line in round_lines(state):
            out.print(text(line), highlight=False, soft_wrap=not out.is_terminal)  # as the verdict
        return
    if hand_over_again:
        handed = read_state(lambda name: ledger.read(run_id, name))
        if handed is None:
            raise RecordError(f"run {run_id} is not a supervised run in {ledger.location}")
        # The event only asks the function to look: a run it already supervises is left as it is.
        hand_over(client("events", common.aws), handed.run.prefix, run_id, names.RUN_STARTED, ledger.location)
        err.print(f"handed run {run_id} to the venue's supervisor function again", highlight=False)
        return
    if cancel:
        # Every supervisor of the run (this one, a local loop elsewhere, the cloud function) reads this event and
        # ends the run as cancelled; this command does it at once.
        request_cancel(ledger, run_id, detail="supervise --cancel", by="supervise")
    err.print(f"supervising run {run_id} from {ledger.location}", highlight=False)
    again = command("supervise", "--run-id", run_id, *ledger_args(csv, ledger_url), *common.aws_args)
    hint_args = [*ledger_args(csv, ledger_url), *common.aws_args]
    sys.exit(
        supervise_here(
            ledger, batch, run_id, common, poll=poll, alerts_topic=alerts_topic, again=again, hint_args=hint_args
        )
    )
