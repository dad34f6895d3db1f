"""``confluence-submit run --supervise local|cloud`` and ``supervise --run-id``: stage-by-stage runs with failure
budgets (see :mod:`confluence_runtime.supervision.decisions` for the decisions,
:mod:`confluence_runtime.supervision.loop` for the loop)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from .. import names
from ..apply.run import check_new_run
from ..apply.run import preflight as check_resources
from ..aws.api import Batch, client
from ..config import Config, load_config
from ..errors import AwsError, RecordError
from ..planning.plan import build_plan, new_run_id
from ..records.document import read_state
from ..records.ledger import Ledger, RunEvent, now_iso, open_ledger, open_store
from ..supervision.decisions import exit_code, summarize, with_item_sizes
from ..supervision.loop import (
    BatchAws,
    Reporter,
    Supervisor,
    SupervisorState,
    begin,
    hand_over,
    local_token,
    read_items,
    recover,
    request_cancel,
    run_locally,
    supervisor_problems,
)
from .common import AWS, Common, common_options, err, handle_errors, out, setup_logging

MODES = ("local", "cloud")


def supervision_options(fn):  # type: ignore[no-untyped-def]
    fn = click.option(
        "--poll", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds between looks at AWS."
    )(fn)
    fn = click.option(
        "--alerts-topic",
        help="SNS topic ARN for the end-of-run summary (local supervision): the venue's {prefix}-alerts topic, "
        "the one the submitter policy may publish to (its ARN is in SSM /{prefix}/alerts/topic-arn).",
    )(fn)
    return fn


def items_sized(config: Config, common: Common) -> Config:
    """An unsupervised run reads its ``items`` lists when it is submitted: their lengths become array sizes."""
    wanted = [m for m in config.modules if m.items]
    if not wanted:
        return config
    s3 = client("s3", common.aws)
    return with_item_sizes(config, {(m.stage, m.name): len(read_items(s3, m.items or "")) for m in wanted})


def venue_ledger(common: Common, prefix: str) -> str:
    """The venue's shared ledger, as the CDK app publishes it."""
    name = names.supervisor_parameter(prefix, "ledger")
    try:
        return str(client("ssm", common.aws).get_parameter(Name=name)["Parameter"]["Value"])
    except Exception as e:
        error = RecordError(f"cannot read {name} ({e}); is the supervisor deployed for this venue?")
        error.hint = "pass --ledger s3://BUCKET/PREFIX, or deploy the CDK app for this venue"
        raise error from e


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
    check_function: bool = True,
) -> int:
    """``run --supervise``: record the run, then supervise it here (local) or hand it to the venue's function."""
    run_id = run_id or new_run_id()
    setup_logging(common.log_file or config.log_file, common.verbose)
    batch = Batch(common.aws, max_pool=common.workers + 4)
    plan = build_plan(config, run_id)
    if preflight:
        check_resources(batch, plan)
    if mode == "cloud":
        location = ledger_url or venue_ledger(common, config.prefix)
        if not location.startswith("s3://"):
            # Checked before anything is recorded: the function could never read a run kept on this machine.
            where = f"the venue's supervisor function reads runs from S3; {location} is not"
            error = RecordError(f"--supervise cloud: {where}")
            error.hint = "leave out --ledger (the venue's ledger is read from SSM), or pass its s3://BUCKET/PREFIX"
            raise error
        ledger = Ledger(open_store(location, common.aws))
        problems = (
            supervisor_problems(client("lambda", common.aws), client("events", common.aws), config.prefix)
            if check_function
            else []
        )
        if problems:
            error = RecordError("--supervise cloud: nothing was recorded: " + "; ".join(problems))
            error.hint = (
                "deploy the venue (cdk deploy -c venue=...) so its supervisor runs, or supervise from here with "
                "--supervise local"
            )
            raise error
    else:
        ledger = open_ledger(csv_path, ledger_url, common.aws)
    # One run id is one run, supervised or not: refuse an id the ledger, the record or AWS already holds.
    if ledger.read(run_id, names.SUPERVISOR_DOCUMENT) is not None:
        error = RecordError(f"run {run_id} already exists: it is supervised, in {ledger.location}")
        where = _where(csv_path, ledger_url) if mode == "local" else f" --ledger {ledger.store.location}"
        error.hint = f"continue it with: confluence-submit supervise --run-id {run_id}{where}{common.aws_flags}"
        raise error
    check_new_run(plan, ledger, batch, csv_path if mode == "local" else None)
    begin(
        ledger,
        config,
        run_id,
        mode=mode,
        region=common.aws.resolved_region,
        endpoint=common.endpoint_url,
        by=f"run --supervise {mode}",
    )
    err.print(
        f"run [bold]{run_id}[/]: supervised ({mode}), {len(config.stages)} stages, ledger {ledger.location}",
        highlight=False,
    )
    if mode == "cloud":
        # Nothing is submitted from here: one event hands the run to the venue's supervisor function, which
        # submits the first stage, then each stage on the Batch Job State Change events of the one before.
        function = names.supervisor_function(config.prefix)
        try:
            hand_over(client("events", common.aws), config.prefix, run_id, names.RUN_STARTED, ledger.location)
        except AwsError as e:
            ledger.note(run_id, RunEvent(at=now_iso(), kind="hand-over-failed", detail=str(e), by="run --supervise"))
            again = f"confluence-submit supervise --run-id {run_id} --ledger {ledger.store.location}{common.aws_flags}"
            e.hint = (
                f"run {run_id} is recorded but not started: nothing was submitted and nobody supervises it. Hand it "
                f"over again with `{again} --hand-over`, or supervise it from here with `{again}`"
            )
            raise
        err.print(
            f"handed run {run_id} to the venue's supervisor function ({function}): it submits stage "
            f"{config.stages[0].name} and each stage after it. Watch with:",
            highlight=False,
        )
        click.echo(
            f"confluence-submit supervise --run-id {run_id} --ledger {ledger.store.location}{common.aws_flags} --status"
        )
        return 0
    again = f"confluence-submit supervise --run-id {run_id}{_where(csv_path, ledger_url)}{common.aws_flags}"
    return _supervise(ledger, batch, run_id, common, poll=poll, alerts_topic=alerts_topic, again=again)


def _where(csv: Path | str | None, ledger_url: str | None) -> str:
    """The options naming a run's ledger, for a command to paste: the shared ledger, else the submission file."""
    return f" --ledger {ledger_url}" if ledger_url else f" -s {Path(str(csv)).resolve()}"


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
                return _ended(state, ledger)
        sleep(poll)


def _supervise(
    ledger: Ledger,
    batch: Batch,
    run_id: str,
    common: Common,
    *,
    poll: float,
    alerts_topic: str | None,
    again: str,
) -> int:
    s3 = client("s3", common.aws)
    reporter = Reporter(ledger, s3=s3, sns=client("sns", common.aws) if alerts_topic else None, topic_arn=alerts_topic)
    supervisor = Supervisor(
        ledger, BatchAws(batch, s3), run_id, token=local_token(), on_end=reporter, by="supervise (local)"
    )
    shown: set[str] = set()
    try:
        state = run_locally(supervisor, poll=poll, on_step=lambda _: show_done_stages(supervisor.load(), shown))
    except KeyboardInterrupt:
        err.print(f"\ninterrupted: nothing is lost; continue supervising with\n  {again}", highlight=False)
        return 130
    return _ended(state, ledger)


def _ended(state: SupervisorState, ledger: Ledger) -> int:
    summary = summarize(state)
    colour = "green" if state.state == "succeeded" else "red"
    out.print(f"[bold {colour}]{state.state.replace('_', ' ')}[/]: {summary.paragraph()}", highlight=False)
    out.print(f"report: {ledger.store.location}/{state.run.run_id}/module_data_report.json", highlight=False)
    return exit_code(state)


@click.command()
@click.option("--run-id", required=True, help="The supervised run to continue.")
@click.option("-s", "--submission-file", help="Submission CSV of a local run (default: submission_file of -c).")
@click.option("-c", "--config", "config_path", default="confluence.yaml", show_default=True, help="The workflow file.")
@supervision_options
@click.option("--status", "show", is_flag=True, help="Only show where the run is; change nothing.")
@click.option("--cancel", "cancel", is_flag=True, help="Stop the run: what runs is stopped, the report is written.")
@click.option("--hand-over", "again", is_flag=True, help="Hand a cloud-supervised run to the venue's function again.")
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
    again: bool,
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
            out.print(
                f"{stage.stage:<24} {stage.status:<10} jobs {len(stage.jobs):>3}  failed {failed:>5}  "
                f"left out {len(stage.skipped):>5}",
                highlight=False,
            )
        out.print(f"run {run_id}: {state.state}" + (f" ({state.reason})" if state.reason else ""), highlight=False)
        return
    if again:
        state = read_state(lambda name: ledger.read(run_id, name))
        if state is None:
            raise RecordError(f"run {run_id} is not a supervised run in {ledger.location}")
        # The event only asks the function to look: a run it already supervises is left as it is.
        hand_over(client("events", common.aws), state.run.prefix, run_id, names.RUN_STARTED, ledger.location)
        err.print(f"handed run {run_id} to the venue's supervisor function again", highlight=False)
        return
    if cancel:
        # Every supervisor of the run (this one, a local loop elsewhere, the cloud function) reads this event and
        # ends the run as cancelled; this command does it at once.
        request_cancel(ledger, run_id, detail="supervise --cancel", by="supervise")
    err.print(f"supervising run {run_id} from {ledger.location}", highlight=False)
    again = f"confluence-submit supervise --run-id {run_id}{_where(csv, ledger_url)}{common.aws_flags}"
    sys.exit(_supervise(ledger, batch, run_id, common, poll=poll, alerts_topic=alerts_topic, again=again))
