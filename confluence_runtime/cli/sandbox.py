"""``confluence-submit sandbox``: rehearse a whole run with no AWS account."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from ..config import BUDGET_EXPECTED, VENUES, Config, load_config, parse_budget
from ..names import PLATFORM_FARGATE, renew_function, supervisor_function
from ..planning.estimate import module_size
from ..planning.plan import new_run_id
from ..records.ledger import Ledger, open_store
from ..shellcmd import Arg, command, shell
from ..venue.sandbox import (
    SANDBOX_CREDENTIALS,
    FunctionStandIn,
    Resources,
    find_project,
    inject_failures,
    local_emulator,
    parse_fail_spec,
    provision,
    read_templates,
    resources_from_templates,
    set_job_seconds,
    start_detached,
    start_function_detached,
    stub_renew,
    summary,
    synthesize,
    with_budget,
)
from ..views.why import DEFAULT_THRESHOLD
from .common import AWS_FLAGS, Common, RunContext, err, handle_errors
from .run import run_workflow
from .status import show_status
from .supervise import supervise_workflow, watch_handed_over


def check_quota(config: Config, quota: float) -> None:
    """A Fargate job larger than the account's quota never starts: it waits in RUNNABLE for good (AWS gives no
    reason and no time limit action fires). Refuse such a rehearsal up front, naming the modules."""
    too_big = [
        f"{m.key.removeprefix('stages.')} ({module_size(m)[0]:g} vCPUs)"
        for m in config.modules
        if m.platform == PLATFORM_FARGATE and module_size(m)[0] > quota
    ]
    if too_big:
        raise click.BadParameter(
            f"{quota:g} vCPUs per purchase option cannot hold {', '.join(too_big)}: they would wait in RUNNABLE for "
            f"ever, as in an account with that quota (request an increase of L-3032A538 and L-36FBB829 there); "
            f"rehearse with at least {max(module_size(m)[0] for m in config.modules):g}",
            param_hint="--vcpu-quota",
        )


@click.command()
@click.option(
    "-c", "--config", "config_path", default="confluence.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option("--venue", type=click.Choice(VENUES), help="Provision and run this venue's names.")
@click.option("--template-dir", type=click.Path(file_okay=False), help="Use this cdk.out instead of synthesizing.")
@click.option("--workdir", default=".sandbox", show_default=True, help="Where the CSV, log and cdk.out go.")
@click.option("--job-seconds", type=float, default=0.3, show_default=True, help="How long each job 'runs'.")
@click.option("--keep", is_flag=True, help="Leave the emulator running and print its --endpoint-url.")
@click.option(
    "--fail",
    "fail_specs",
    multiple=True,
    metavar="STAGE.MODULE[3,17]",
    help="Rehearse failures: those array children (or the whole module without [...]) exit 1. Repeatable.",
)
@click.option(
    "--supervise",
    "supervise_mode",
    type=click.Choice(("local", "cloud")),
    help="Rehearse a supervised run: stage by stage under the failure budgets, here (local) or handed to the "
    "venue's supervisor function (cloud: its handler runs in this process on its rules' events).",
)
@click.option(
    "--tolerated-failure",
    "tolerated",
    metavar='3|"5%"',
    help="With --supervise: every module's failure budget for this rehearsal, whatever the file says.",
)
@click.option(
    "--vcpu-quota",
    "fargate_quota",
    type=click.FloatRange(min=0),
    metavar="VCPUS",
    help="Rehearse an account whose Fargate vCPU quotas (On-Demand and Spot each) are this (a new account: 6); "
    "default: an established account's, high enough for every module.",
)
@handle_errors
def sandbox(
    config_path: str,
    venue: str | None,
    template_dir: str | None,
    workdir: str,
    job_seconds: float,
    keep: bool,
    fail_specs: tuple[str, ...],
    supervise_mode: str | None,
    tolerated: str | None,
    fargate_quota: float | None,
) -> None:
    """Run the whole workflow against a local AWS Batch emulator: no AWS account, no containers."""
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
    config = load_config(config_path, venue=venue)
    failures = tuple(parse_fail_spec(spec, config) for spec in fail_specs)  # bad input before any work
    if fargate_quota is not None:
        check_quota(config, fargate_quota)
    if tolerated is not None:
        if supervise_mode is None:
            raise click.UsageError("--tolerated-failure applies to supervised runs: add --supervise local or cloud")
        try:
            budget = parse_budget(int(tolerated) if tolerated.strip().isdigit() else tolerated)
        except (TypeError, ValueError):
            hint = "--tolerated-failure"
            raise click.BadParameter(f"{tolerated!r}: expected {BUDGET_EXPECTED}", param_hint=hint) from None
        config = with_budget(config, budget)
    resources = resources_from_templates(read_templates(outdir))
    renew_name = renew_function(config.prefix)
    has_renew = any(f.name == renew_name for f in resources.functions)

    def rehearse(url: str) -> int:
        err.print(
            f"[2/4] local AWS Batch emulator on {url}: jobs run no containers, they move through AWS Batch's "
            f"states on the emulator's clock (~{job_seconds:g} s each)"
        )
        set_job_seconds(url, job_seconds)
        common = Common(endpoint_url=url, log_file=str(work / "confluence.log"))
        provision(resources, common.aws, fargate_quota=fargate_quota)
        err.print(f"[3/4] provisioned from the templates: {summary(resources)}")
        if fargate_quota is not None:
            err.print(
                f"      the account's Fargate vCPU quotas are {fargate_quota:g} On-Demand and {fargate_quota:g} Spot "
                "(L-3032A538, L-36FBB829): jobs beyond them wait in RUNNABLE; status says why"
            )
        if has_renew:
            expiration = stub_renew(url, common.aws, config.prefix, renew_name)
            err.print(
                f"      {renew_name} answers as a stub (credentials expiring {expiration}); its schedule is "
                "stored and never fires"
            )
        run_id = new_run_id()
        if failures:
            inject_failures(url, run_id, failures)
            err.print(f"      rehearsing failures: {', '.join(map(str, failures))}")
        csv_path = work / "submission.csv"
        if supervise_mode is not None:
            err.print(f"[4/4] {command('run', '--supervise', supervise_mode)} (run {run_id})")
            if supervise_mode == "cloud":
                code = rehearse_cloud(resources, common, run_id, csv_path)
            else:
                code = supervise_workflow(
                    config, run_id, csv_path, common, mode="local", ledger_url=None, poll=0.5, alerts_topic=None
                )
            verdict = "succeeded" if code == 0 else "did not succeed"
            err.print(f"run {run_id} {verdict} in the sandbox after {time.monotonic() - started:.1f} s")
            return code
        err.print(f"[4/4] confluence-submit run + status --watch (run {run_id})")
        code = run_workflow(config, run_id, csv_path, common)
        if code != 0:
            return code
        ctx = RunContext(config_path, venue, str(csv_path), common.aws)
        view = ctx.open(run_id, reconcile=False)
        # A rehearsed quota makes children wait seconds, not minutes: say why as soon as they wait.
        waiting_after = 1.0 if fargate_quota is not None else DEFAULT_THRESHOLD
        result = show_status(ctx, view, ctx.plan_for(run_id), watch=True, interval=0.5, waiting_after=waiting_after)
        code = 0 if result.state == "succeeded" else 1
        verdict = "succeeded" if code == 0 else "did not succeed"
        err.print(f"run {run_id} {verdict} in the sandbox after {time.monotonic() - started:.1f} s")
        return code

    def rehearse_cloud(resources: Resources, common: Common, run_id: str, csv_path: Path) -> int:
        with FunctionStandIn(resources, common.aws, config.prefix, find_project(Path.cwd())) as function:
            err.print(
                f"      {function.function} runs in this process (moto runs no Lambda code): its rules "
                f"({', '.join(r.name for r in function.rules)}) send their events to it"
            )
            code = supervise_workflow(
                config, run_id, csv_path, common, mode="cloud", ledger_url=None, poll=0.5, alerts_topic=None
            )
            if code != 0:
                return code
            ledger = Ledger(open_store(function.ledger, common.aws))
            handed["record"] = ["--ledger", function.ledger, "--run-id", run_id]  # where the hints find the run
            quiet = 120.0  # no event for so long: the function lost the run (nothing the sandbox runs is that slow)

            def stalled() -> str | None:
                silent = function.silent_for()
                return f"{function.function} heard no event for {silent:.0f} s" if silent > quiet else None

            code = watch_handed_over(ledger, run_id, poll=0.5, stalled=stalled)
            err.print(f"      {function.function} was invoked {function.invocations} times", highlight=False)
            return code

    handed: dict[str, list[Arg]] = {}
    if keep:
        url, pid = start_detached(work)
        code = rehearse(url)
        kept: list[str] = []
        if supervise_mode == "cloud":
            # The function stand-in above lived as long as this command; a process of its own takes over and lives
            # as long as the emulator, so runs handed over later are supervised too.
            function_pid = start_function_detached(
                work, url, outdir.resolve(), config.prefix, find_project(Path.cwd()).resolve()
            )
            kept = [
                f"{supervisor_function(config.prefix)} keeps supervising runs handed to it (pid {function_pid}, log "
                f"{work / 'supervisor-function.log'}) as long as the emulator runs; it ends with it",
                command("run", "-c", config_path, "--supervise", "cloud", AWS_FLAGS["endpoint_url"], url),
            ]
        csv = work / "submission.csv"
        record = handed.get("record") or ["-s", csv]  # a cloud run is only in the S3 ledger
        at = [AWS_FLAGS["endpoint_url"], url]
        # status and cancel read the yaml too (status --why: what each module consumes; the run's plan): another
        # file than the default is named, or they would read ./confluence.yaml and explain another workflow.
        named: list[Arg] = ["-c", config_path] if config_path != "confluence.yaml" else []
        lines = [
            shell(
                "export", "AWS_ACCESS_KEY_ID=sandbox", "AWS_SECRET_ACCESS_KEY=sandbox", "AWS_DEFAULT_REGION=us-west-2"
            ),
            command("status", *named, *record, *at),
            command("run", "-c", config_path, "-s", csv, *at),
            command("cancel", *named, *record, *at),
            *([command("renew", "status", "-c", config_path, *at)] if has_renew else []),
            *(
                [command("retry-failed", "-c", config_path, "-s", csv, *at)]
                if failures and supervise_mode is None
                else []
            ),
            *([command("report", "-c", config_path, *record, *at)] if supervise_mode is not None else []),
            shell("aws", "batch", "list-jobs", "--job-queue", resources.queues[0].name, *at),
        ]
        err.print(
            f"\nthe emulator keeps running (pid {pid}); point any command or the AWS CLI at it:\n"
            + "".join(f"  {line}\n" for line in lines)
            + (f"{kept[0]}:\n  {kept[1]}\n" if kept else "")
            + f"stop it with: {shell('kill', pid)}"
        )
        click.echo(shell(*at))
        sys.exit(code)
    with local_emulator() as url:
        code = rehearse(url)
    sys.exit(code)
