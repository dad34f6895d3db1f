"""``confluence-submit sandbox``: rehearse a whole run with no AWS account.

Synthesizes the CDK app, starts the local Batch emulator (moto's server with AWS Batch's state machine) on
127.0.0.1, provisions in it what the templates declare, then runs the workflow through the normal ``run`` path and
watches it with ``status --watch``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

from .cli_common import err, handle_errors
from .config import VENUES
from .plan import new_run_id

SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}  # the emulator takes any


def _start_detached(workdir: Path) -> tuple[str, int]:
    """Start the emulator in its own session so it outlives this command (``--keep``); return (url, pid)."""
    from batch_emulator.server import READY_LINE, _wait_healthy

    log_path = workdir / "emulator.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "batch_emulator", "--host", "127.0.0.1", "--port", "0"],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if READY_LINE in line:
                url = f"http://127.0.0.1:{int(line.rsplit(':', 1)[1])}"
                _wait_healthy(url, 30)
                return url, process.pid
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise click.ClickException(f"the emulator did not start; see {log_path}")


@click.command()
@click.option(
    "-c", "--config", "config_path", default="confluence.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--venue", type=click.Choice(VENUES), help="Provision and run this venue's names.")
@click.option("--template-dir", type=click.Path(file_okay=False), help="Use this cdk.out instead of synthesizing.")
@click.option("--workdir", default=".sandbox", show_default=True, help="Where the CSV, log and cdk.out go.")
@click.option("--job-seconds", type=float, default=0.3, show_default=True, help="How long each job 'runs'.")
@click.option("--keep", is_flag=True, help="Leave the emulator running and print its --endpoint-url.")
@click.pass_context
@handle_errors
def sandbox(
    ctx: click.Context,
    config_path: str,
    venue: str | None,
    template_dir: str | None,
    workdir: str,
    job_seconds: float,
    keep: bool,
) -> None:
    """Run the whole workflow against a local AWS Batch emulator: no AWS account, no containers."""
    from batch_emulator.control import EmulatorControl
    from batch_emulator.server import start_emulator

    from .aws import AwsOptions
    from .cli import run
    from .cli_ops import status
    from .sandbox import find_project, provision, read_templates, resources_from_templates, summary, synthesize

    os.environ.update(SANDBOX_CREDENTIALS)  # the emulator accepts any; never send real ones to it
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if template_dir:
        outdir = Path(template_dir)
    else:
        project = find_project(Path.cwd())
        err.print(f"[1/4] synthesizing the CDK app ({project / 'app.py'}) into {work / 'cdk.out'}")
        outdir = synthesize(project, Path(config_path), venue, work / "cdk.out")
    resources = resources_from_templates(read_templates(outdir))

    def rehearse(url: str) -> int:
        err.print(
            f"[2/4] local AWS Batch emulator on {url}: jobs run no containers, they move through AWS Batch's "
            f"states on the emulator's clock (~{job_seconds:g} s each)"
        )
        EmulatorControl(url).set_durations(default=job_seconds, queue=0.02)
        provision(resources, AwsOptions(endpoint_url=url))
        err.print(f"[3/4] provisioned from the templates: {summary(resources)}")
        run_id = new_run_id()
        csv_path = str(work / "submission.csv")
        err.print(f"[4/4] confluence-submit run + status --watch (run {run_id})")
        common = {"config_path": config_path, "venue": venue, "endpoint_url": url, "region": None}
        ctx.invoke(
            run, **common, run_id=run_id, submission_file=csv_path, log_file=str(work / "confluence.log"),
            rate=40.0, workers=8, on_failure="cancel", preflight=True, renew=False, verbose=False,
        )
        try:
            ctx.invoke(
                status, **common, submission_file=csv_path, run_id=run_id, watch=True, interval=0.5, fmt="text"
            )
        except SystemExit as done:
            code = int(done.code or 0)
        else:
            code = 0
        verdict = "succeeded" if code == 0 else "did not succeed"
        err.print(f"run {run_id} {verdict} in the sandbox after {time.monotonic() - started:.1f} s")
        return code

    if keep:
        url, pid = _start_detached(work)
        code = rehearse(url)
        err.print(
            f"\nthe emulator keeps running (pid {pid}); point any command or the AWS CLI at it:\n"
            f"  export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox AWS_DEFAULT_REGION=us-west-2\n"
            f"  confluence-submit status -s {work / 'submission.csv'} --endpoint-url {url}\n"
            f"  confluence-submit run -c {config_path} -s {work / 'submission.csv'} --endpoint-url {url}\n"
            f"  confluence-submit cancel -s {work / 'submission.csv'} --endpoint-url {url}\n"
            f"  aws batch list-jobs --job-queue {resources.queues[0].name} --endpoint-url {url}\n"
            f"stop it with: kill {pid}"
        )
        click.echo(f"--endpoint-url {url}")
        sys.exit(code)
    with start_emulator() as emulator:
        code = rehearse(emulator.url)
    sys.exit(code)
