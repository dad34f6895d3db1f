"""``confluence-submit``: thin commands that parse, call the core, render, and pick the exit code.

Exit codes: 0 success; 1 the run (or an AWS call) failed; 2 bad input (configuration, plan or record).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .cli_common import aws_options, config_options, err, handle_errors, out
from .config import Config, load_config
from .plan import Plan, build_plan, new_run_id, plan_to_dict

log = logging.getLogger("confluence")
LOG_FORMAT = "%(asctime)s : %(levelname)s : %(message)s"


def setup_logging(log_file: str | None, verbose: bool = False) -> None:
    """Console and log file both get ``%(asctime)s : %(message)s`` lines (with the level), as the original did."""
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(LOG_FORMAT))
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    log.addHandler(console)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        log.addHandler(handler)


def load(config_path: str, venue: str | None) -> Config:
    return load_config(config_path, venue=venue)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="confluence-submit")
def main() -> None:
    """Plan, run, watch, cancel, resume and retry Confluence runs on AWS Batch."""


@main.command()
@config_options
@click.option("--run-id", help="Use this run id instead of a new one (names the jobs).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "mermaid", "dot"]), default="text", show_default=True
)
@handle_errors
def plan(config_path: str, venue: str | None, run_id: str | None, fmt: str) -> None:
    """Show every job a run would submit, with no AWS call (no credentials needed)."""
    from .render import dot, mermaid, plan_table

    config = load(config_path, venue)
    if fmt == "mermaid":
        click.echo(mermaid(config), nl=False)
        return
    if fmt == "dot":
        click.echo(dot(config), nl=False)
        return
    the_plan = build_plan(config, run_id or new_run_id())
    if fmt == "json":
        click.echo(json.dumps(plan_to_dict(the_plan), indent=2))
    else:
        out.print(plan_table(the_plan))


def _preflight(batch: Any, the_plan: Plan) -> None:
    """Fail before submitting anything when a queue or job definition the plan names does not exist."""
    from .errors import PlanError

    queues = sorted({s.job_queue for s in the_plan.submissions})
    found = {q["jobQueueName"] for q in batch.describe_job_queues(queues)}
    missing_queues = [q for q in queues if q not in found]
    definitions = sorted({s.job_definition for s in the_plan.submissions})
    found_defs = {d["jobDefinitionName"] for d in batch.describe_job_definitions(definitions)}
    missing_defs = [d for d in definitions if d not in found_defs]
    if missing_queues or missing_defs:
        parts = []
        if missing_queues:
            parts.append(f"job queues not found: {', '.join(missing_queues)}")
        if missing_defs:
            parts.append(f"active job definitions not found: {', '.join(missing_defs)}")
        error = PlanError("; ".join(parts) + " (nothing was submitted)")
        error.hint = "deploy the CDK app for this venue (cdk deploy -c venue=...), or pass the right --venue/--region"
        raise error


@main.command()
@config_options
@aws_options
@click.option("--run-id", help="Run id to use (default: a new timestamped id).")
@click.option("-s", "--submission-file", help="Submission CSV (default: submission_file from the config).")
@click.option("--log-file", help="Log file (default: log_file from the config).")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1, max=50),
    default=40.0,
    show_default=True,
    help="Client-side SubmitJob limit per second (AWS allows 50 per account).",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=8, show_default=True, help="Concurrent submissions within a wave."
)
@click.option(
    "--on-failure",
    type=click.Choice(["cancel", "keep"]),
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
@click.option("-v", "--verbose", is_flag=True, help="Log every submission to the console too.")
@handle_errors
def run(
    config_path: str,
    venue: str | None,
    endpoint_url: str | None,
    region: str | None,
    run_id: str | None,
    submission_file: str | None,
    log_file: str | None,
    rate: float,
    workers: int,
    on_failure: str,
    preflight: bool,
    renew: bool,
    verbose: bool,
) -> None:
    """Submit the workflow to AWS Batch, recording every job in the submission CSV as it is accepted."""
    from .aws import AwsOptions, Batch
    from .record import Recorder, run_ids
    from .stop import stop_jobs
    from .submit import submit_plan

    config = load(config_path, venue)
    the_plan = build_plan(config, run_id or new_run_id())
    csv_path = Path(submission_file or config.submission_file)
    if the_plan.run_id in run_ids(csv_path):
        from .errors import RecordError

        error = RecordError(f"{csv_path} already holds run {the_plan.run_id}")
        error.hint = f"continue it with: confluence-submit resume -c {config_path} -s {csv_path}"
        raise error
    setup_logging(log_file or config.log_file, verbose)
    options = AwsOptions(endpoint_url=endpoint_url, region=region)
    batch = Batch(options, max_pool=workers + 4)
    if preflight:
        _preflight(batch, the_plan)
    if renew:
        from .renew import prepare_run

        result = prepare_run(options, config.prefix)
        state = result.schedule.state if result.schedule else "unknown"
        err.print(
            f"renew: {result.function_name} wrote fresh credentials (expire {result.expiration}); schedule {state}",
            highlight=False,
        )

    err.print(
        f"run [bold]{the_plan.run_id}[/]: submitting {the_plan.submit_calls} jobs "
        f"({len(the_plan.stages)} stages) to {options.endpoint_url or 'AWS'}, recording to {csv_path}",
        highlight=False,
    )
    log.info("run %s: %d submissions from %s", the_plan.run_id, the_plan.submit_calls, config.source)
    with Recorder(csv_path) as recorder:
        try:
            outcome = submit_plan(the_plan, batch, recorder, rate=rate, workers=workers)
        except KeyboardInterrupt:
            # Everything AWS accepted is already in the CSV: say how to go on rather than leave a mystery.
            err.print(
                f"\ninterrupted: the jobs submitted so far are recorded in {csv_path}; continue with\n"
                f"  confluence-submit resume -c {config_path} -s {csv_path} --run-id {the_plan.run_id}\n"
                f"or stop them with\n  confluence-submit cancel -s {csv_path} --run-id {the_plan.run_id}",
                highlight=False,
            )
            sys.exit(130)
    if outcome.ok:
        log.info("run %s: all %d jobs submitted", the_plan.run_id, len(outcome.submitted))
        err.print(f"submitted {len(outcome.submitted)} jobs. Watch with:", highlight=False)
        click.echo(
            f"confluence-submit status -s {csv_path} --run-id {the_plan.run_id} --watch"
            + (f" --endpoint-url {endpoint_url}" if endpoint_url else "")
        )
        return

    assert outcome.failure is not None
    failure = outcome.failure
    err.print(f"[bold red]error:[/] submitting {failure.submission.name} failed: {failure.message}", highlight=False)
    if on_failure == "keep":
        err.print(
            f"kept the {len(outcome.submitted)} jobs already submitted; after fixing the cause continue with:\n"
            f"  confluence-submit resume -c {config_path} -s {csv_path} --run-id {the_plan.run_id}",
            highlight=False,
        )
        sys.exit(1)
    ids = list(outcome.job_ids.values())
    err.print(f"stopping the {len(ids)} jobs of run {the_plan.run_id} submitted so far", highlight=False)
    report = stop_jobs(
        batch, ids, f"Confluence run {the_plan.run_id} stopped: submitting {failure.submission.name} failed"
    )
    log.info(
        "run %s: cancelled %d, terminated %d, finished %d, not stopped %d",
        the_plan.run_id,
        len(report.cancelled),
        len(report.terminated),
        len(report.already_finished),
        len(report.not_stopped),
    )
    err.print(
        f"cancelled {len(report.cancelled)}, terminated {len(report.terminated)}, "
        f"already finished {len(report.already_finished)}",
        highlight=False,
    )
    for job_id, why in report.not_stopped:
        err.print(f"[yellow]requires manual termination:[/] {job_id} ({why})", highlight=False)
    sys.exit(1)


# Commands kept in their own modules join the group here, after everything they import from this module exists.
from .cli_ops import cancel, resume, retry_failed, status  # noqa: E402
from .cli_renew import credentials, renew  # noqa: E402
from .cli_sandbox import sandbox  # noqa: E402

for _command in (status, cancel, resume, retry_failed, renew, credentials, sandbox):
    main.add_command(_command)
