"""``confluence-submit efs``: look at the venue's EFS areas (``ls``) and seed them from S3 or copy them out
(``sync``), each as a one-off Batch job whose output is printed when it ends."""

from __future__ import annotations

import sys

import click

from ..apply.efs import LS_TIMEOUT, SYNC_TIMEOUT, EfsJob, ls_job, run_job, sync_job
from ..config import load_config
from ..safetext import clean, markup
from .common import AWS, Common, common_options, config_options, err, handle_errors


def _run(job: EfsJob, common: Common, wait_seconds: float) -> None:
    err.print(
        f"{job.what}: job {job.request['jobName']} in queue {job.request['jobQueue']} "
        f"(definition {job.request['jobDefinition']})",
        highlight=False,
    )
    result = run_job(
        job,
        common.aws,
        wait_seconds=wait_seconds,
        on_submitted=lambda job_id: err.print(f"submitted {job_id}; waiting for it to finish", highlight=False),
    )
    for line in result.lines:
        click.echo(clean(line))
    if result.log_stream is None:
        err.print(
            f"no output: CloudWatch Logs holds no stream of this job in {result.log_group} (AWS writes one once an "
            "attempt reaches RUNNING)",
            highlight=False,
        )
    if result.status != "SUCCEEDED":
        err.print(f"[bold red]error:[/] job {result.job_id} {result.status}: {markup(result.reason)}", highlight=False)
        sys.exit(1)
    err.print(f"job {result.job_id} SUCCEEDED", highlight=False)


@click.group()
def efs() -> None:
    """Look at and seed the venue's EFS areas through one-off Batch jobs."""


@efs.command()
@config_options
@click.argument("target", metavar="AREA[/PATH]")
@click.option("--wait", "wait_seconds", type=float, default=float(LS_TIMEOUT), show_default=True,
              help="How long to wait for the job (s).")  # fmt: skip
@common_options(*AWS)
@handle_errors
def ls(config_path: str, venue: str | None, target: str, wait_seconds: float, common: Common) -> None:
    """List AREA[/PATH] (ls -la) and print it."""
    config = load_config(config_path, venue=venue)
    _run(ls_job(config, target), common, wait_seconds)


@efs.command()
@config_options
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option("--wait", "wait_seconds", type=float, default=float(SYNC_TIMEOUT), show_default=True,
              help="How long to wait for the job (s).")  # fmt: skip
@common_options(*AWS)
@handle_errors
def sync(config_path: str, venue: str | None, source: str, destination: str, wait_seconds: float,
         common: Common) -> None:  # fmt: skip
    """Copy s3://BUCKET/KEY into AREA[/PATH], or AREA[/PATH] to s3://BUCKET/KEY (aws s3 sync)."""
    config = load_config(config_path, venue=venue)
    _run(sync_job(config, source, destination), common, wait_seconds)
