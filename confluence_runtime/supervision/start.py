"""Start a supervised run (``run --supervise local|cloud``), the twin of :func:`confluence_runtime.apply.run.start_run`:
choose the ledger (the venue's, read from SSM, for a cloud run), refuse a run id already in use, record the run and,
for a cloud run, hand it to the venue's supervisor function. The command only prints and, locally, supervises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import names
from ..apply.run import check_new_run, preflight
from ..aws.api import AwsOptions, Batch, client, get_parameter
from ..config import Config
from ..errors import AwsError, RecordError
from ..planning.plan import build_plan
from ..records.ledger import Ledger, RunEvent, now_iso, open_ledger, open_store
from ..records.provenance import record_run
from ..shellcmd import Arg, command, options
from .loop import begin, hand_over, supervisor_problems


@dataclass(frozen=True)
class SupervisedStart:
    run_id: str
    mode: str
    ledger: Ledger
    function: str | None = None  # cloud: the venue's supervisor function the run was handed to


def ledger_args(csv: Path | str | None, ledger_url: str | None) -> list[Arg]:
    """The options naming a run's ledger, for a command to paste: the shared ledger, else the submission file."""
    return options([("--ledger", ledger_url)]) if ledger_url else options([("-s", Path(str(csv)).resolve())])


def venue_ledger(aws: AwsOptions, prefix: str) -> str:
    """The venue's shared ledger, as the CDK app publishes it."""
    name = names.supervisor_parameter(prefix, "ledger")
    try:
        return get_parameter(client("ssm", aws), name)
    except Exception as e:
        error = RecordError(f"cannot read {name} ({e}); is the supervisor deployed for this venue?")
        error.hint = "pass --ledger s3://BUCKET/PREFIX, or deploy the CDK app for this venue"
        raise error from e


def start_supervised_run(
    config: Config,
    run_id: str,
    batch: Batch,
    *,
    mode: str,
    csv_path: Path,
    ledger_url: str | None,
    aws: AwsOptions,
    endpoint: str | None = None,
    check: bool = True,
    aws_args: Sequence[Arg] = (),
    link: Mapping[str, Any] | None = None,
    check_function: bool = True,
    max_cost: float | None = None,
) -> SupervisedStart:
    """Record a supervised run (nothing is submitted here) and, for ``cloud``, hand it over. ``aws_args`` are the
    command's AWS options, named in the commands an error suggests; ``link``: a recovered run's origin
    (``record_run``'s keywords)."""
    plan = build_plan(config, run_id)
    if check:
        preflight(batch, plan)
    if mode == "cloud":
        location = ledger_url or venue_ledger(aws, config.prefix)
        if not location.startswith("s3://"):
            # Checked before anything is recorded: the function could never read a run kept on this machine.
            where = f"the venue's supervisor function reads runs from S3; {location} is not"
            error = RecordError(f"--supervise cloud: {where}")
            error.hint = "leave out --ledger (the venue's ledger is read from SSM), or pass its s3://BUCKET/PREFIX"
            raise error
        ledger = Ledger(open_store(location, aws))
        problems = (
            supervisor_problems(client("lambda", aws), client("events", aws), config.prefix) if check_function else []
        )
        if problems:
            error = RecordError("--supervise cloud: nothing was recorded: " + "; ".join(problems))
            error.hint = (
                "deploy the venue (cdk deploy -c venue=...) so its supervisor runs, or supervise from here with "
                "--supervise local"
            )
            raise error
    else:
        ledger = open_ledger(csv_path, ledger_url, aws)
    # One run id is one run, supervised or not: refuse an id the ledger, the record or AWS already holds.
    if ledger.read(run_id, names.SUPERVISOR_DOCUMENT) is not None:
        error = RecordError(f"run {run_id} already exists: it is supervised, in {ledger.location}")
        ledger_named = ledger_args(csv_path, ledger_url) if mode == "local" else ["--ledger", ledger.store.location]
        error.hint = f"continue it with: {command('supervise', '--run-id', run_id, *ledger_named, *aws_args)}"
        raise error
    check_new_run(plan, ledger, batch, csv_path if mode == "local" else None)
    begin(
        ledger,
        config,
        run_id,
        mode=mode,
        region=aws.resolved_region,
        endpoint=endpoint,
        by=f"run --supervise {mode}",
        max_cost=max_cost,
    )
    header = ledger.header(run_id)
    if header is not None:  # the run record (images by digest, items lists by version), before any SubmitJob
        record_run(ledger, config, plan, header, batch, aws, **(link or {}))
    if mode != "cloud":
        return SupervisedStart(run_id, mode, ledger)
    # Nothing is submitted from here: one event hands the run to the venue's supervisor function, which submits the
    # first stage, then each stage on the Batch Job State Change events of the one before.
    try:
        hand_over(client("events", aws), config.prefix, run_id, names.RUN_STARTED, ledger.location)
    except AwsError as e:
        ledger.note(run_id, RunEvent(at=now_iso(), kind="hand-over-failed", detail=str(e), by="run --supervise"))
        again = command("supervise", "--run-id", run_id, "--ledger", ledger.store.location, *aws_args)
        e.hint = (
            f"run {run_id} is recorded but not started: nothing was submitted and nobody supervises it. Hand it "
            f"over again with `{again} --hand-over`, or supervise it from here with `{again}`"
        )
        raise
    return SupervisedStart(run_id, mode, ledger, names.supervisor_function(config.prefix))
