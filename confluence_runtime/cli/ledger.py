"""``runs``, ``report`` and ``logs``: the operator's views of the run ledger (and of CloudWatch for ``logs``)."""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table
from rich.text import Text

from ..aws.api import AwsOptions, client, describe_error, read_object
from ..config import Config
from ..errors import AwsError, ConfigError, RecordError
from ..names import RETRY
from ..planning.estimate import (
    MeasuredCost,
    estimate_cost,
    load_prices,
    measured_cost,
    measured_to_dict,
    works_from_plan,
)
from ..planning.plan import Plan
from ..records import provenance
from ..records.document import read_state, round_lines
from ..records.ledger import JobOutcome, RunEvent, local_root, now_iso
from ..records.record import Row
from ..safetext import clean, clean_line, text
from ..shellcmd import command, options
from ..states import ACTIVE, FAILED
from ..views.cost import COST_FILE, collect_attempts, cost_html, cost_lines, with_section
from ..views.logs import (
    BARRIER_KIND,
    DEFAULT_LOG_GROUP,
    LogReader,
    NoLogStream,
    Stream,
    Target,
    iter_lines,
    locate,
    pick_stream,
)
from ..views.observe import FROM_LEDGER
from ..views.render import STATE_STYLES
from ..views.report import (
    FAILURES_FILE,
    HTML_FILE,
    REPORT_FILE,
    REPORT_LOG_TAILS,
    FailedItem,
    RunReport,
    build_report,
    confluence_failures,
    confluence_report,
    count_line,
    render_html,
    with_tails,
)
from ..views.runs import list_runs, runs_to_json
from ..views.runview import index_map
from ..views.status import LOG_LINES, LOG_TAILS, collect_status, slowest_children, with_child_streams
from .common import AWS, Common, RunContext, common_options, err, handle_errors, out, run_options
from .provenance import crate_source, write_crate
from .status import check_where

# --------------------------------------------------------------------------------------------------------------
# runs


@click.group(invoke_without_command=True)
@run_options
@common_options(*AWS, "fmt", "ledger")
@handle_errors
def runs(config_path: str, venue: str | None, submission_file: str | None, run_id: str | None, common: Common) -> None:
    """One line per run of the ledger: id, venue, started, duration, state, jobs and children by state.

    Read from the ledger alone: the state is what status, watch or report last observed. `runs show RUN_ID`
    prints one run's record (images by digest, items lists by version)."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    ctx = RunContext(config_path, venue, submission_file, common.aws, shared_ledger=common.ledger)
    if not ctx.has_ledger:
        raise RecordError("no ledger: pass -s submissions.csv (its ledger is beside it) or --ledger s3://BUCKET/PREFIX")
    summaries = [s for s in list_runs(ctx.ledger) if run_id is None or s.run_id == run_id]
    linked = {s.run_id: provenance.links(ctx.ledger, s.run_id) for s in summaries}
    if common.fmt == "json":
        click.echo(json.dumps([{**d, **linked[d["run_id"]]} for d in runs_to_json(summaries)], indent=2))
        return
    if not summaries:
        out.print(text(f"no run in {ctx.ledger.location}"), highlight=False)
        sandbox = elsewhere_in_sandbox(ctx)
        if sandbox is not None:
            err.print(
                text(f"the sandbox's runs (make demo, confluence-submit sandbox) are in {sandbox}; list them with:"),
                highlight=False,
            )
            click.echo(f"  {command('runs', '-s', sandbox.parent / SANDBOX_CSV)}", err=True)
        return
    wide = out.width >= 100
    # Columns separated by the box's one space, no padding: 80 columns hold the narrow set.
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, show_edge=False, pad_edge=False)
    columns = [
        ("run", "left"),
        ("venue", "left"),
        ("started UTC", "left"),
        ("took", "right"),
        ("state", "left"),
        ("jobs", "right"),
        ("children", "right"),
        ("ok", "right"),
        ("failed", "right"),
        ("blocked", "right"),
        ("cancelled", "right"),
        ("left", "right"),
    ]
    narrow = ("venue", "jobs", "left", "blocked", "cancelled")  # at 80 columns: the run, when, how long, how it went
    for name, justify in columns:
        if wide or name not in narrow:
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in summaries:
        cells: dict[str, Any] = {
            "run": s.run_id,
            "venue": s.venue or s.prefix or "-",
            "started UTC": s.started_at[5:16].replace("T", " ") if s.started_at else "?",
            "took": s.duration.split(".")[0] or "-",
            "state": Text(s.state, style=STATE_STYLES.get(s.state, "dim")),
            "jobs": str(s.jobs),
            "children": str(s.children),
            "ok": Text(str(s.succeeded), style="green" if s.succeeded else "dim"),
            "failed": Text(str(s.failed), style="red" if s.failed else "dim"),
            "blocked": Text(str(s.blocked), style="yellow" if s.blocked else "dim"),
            "cancelled": Text(str(s.cancelled), style="yellow" if s.cancelled else "dim"),
            "left": str(s.unfinished),
        }
        table.add_row(*(cells[name] for name, _ in columns if wide or name not in narrow))
    out.print(table)
    for s in summaries:
        line = provenance.link_text(linked[s.run_id])
        if line:
            out.print(text(f"run {s.run_id}: {line}"), highlight=False)
    out.print(Text(f"from the ledger {ctx.ledger.location}; states as last observed", style="dim"))


SANDBOX_DIR, SANDBOX_CSV = ".sandbox", "submission.csv"  # confluence-submit sandbox's --workdir default and its CSV


def elsewhere_in_sandbox(ctx: RunContext) -> Path | None:
    """The sandbox's ledger folder under the current directory, when it holds runs and is not the one asked."""
    ledger = local_root(Path(SANDBOX_DIR) / SANDBOX_CSV)
    asked = local_root(ctx.csv_path) if ctx.csv_path is not None else None
    if not ledger.is_dir() or not any(ledger.iterdir()):
        return None
    if asked is not None and asked.resolve() == ledger.resolve():
        return None
    return ledger


# --------------------------------------------------------------------------------------------------------------
# report


def _run_id(ctx: RunContext, run_id: str | None) -> str:
    chosen = run_id or ctx.latest_run()
    if chosen is None:
        raise RecordError(f"name the run: pass --run-id ID (see `{command('runs')}`)")
    return chosen


def refresh_outcomes(ctx: RunContext, run_id: str, *, slowest: bool) -> tuple[int, str | None]:
    """Ask AWS once more and record what it says (and the slowest children of finished arrays) in the ledger.
    Returns how many jobs were answered from the ledger, and why AWS could not be asked (None if it was)."""
    try:
        view = ctx.open(run_id, reconcile=False)
        result = collect_status(ctx.batch, view, ctx.plan_for(run_id), ledger=ctx.ledger)
        if slowest:
            outcomes = ctx.ledger.outcomes(run_id)
            updated: list[JobOutcome] = []
            for row in view.rows:
                outcome = outcomes.get(row.job_id)
                if outcome is None or not outcome.final or view.job(row).get(FROM_LEDGER):
                    continue
                changed = with_child_streams(ctx.batch, outcome)
                if not outcome.slowest:
                    changed = replace(changed, slowest=tuple(slowest_children(ctx.batch, row, view.job(row))))
                if changed != outcome:
                    updated.append(replace(changed, observed_at=now_iso()))
            ctx.ledger.observe(run_id, updated)
    except AwsError as e:
        return 0, str(e)
    except RecordError as e:
        return 0, str(e)
    return len(result.from_ledger), None


def load_items(ctx: RunContext, aws: AwsOptions) -> dict[str, list[Any]]:
    """Each module's work list when the config declares one (``items``: a JSON array, a path or s3:// URL)."""
    items: dict[str, list[Any]] = {}
    if ctx.config is None:
        return items
    for module in ctx.config.modules:
        source = getattr(module, "items", None)
        if not source:
            continue
        text = str(source)
        if text.startswith("s3://"):
            bucket, _, key = text[5:].partition("/")
            body = read_object(client("s3", aws), bucket, key)
        else:
            body = Path(text).read_bytes()
        loaded = json.loads(body)
        if isinstance(loaded, list):
            items[module.name] = loaded
    return items


@click.command()
@run_options
@click.option(
    "--output-dir", type=click.Path(file_okay=False), help="Where to write (default: the run's ledger folder)."
)
@click.option("--temporal-range", help="The temporal_range value of Confluence's report (e.g. the Hydrocron range).")
@click.option("--offline", is_flag=True, help="Do not ask AWS: build the report from the ledger alone.")
@click.option(
    "--ro-crate", is_flag=True, help="Also write ro-crate-metadata.json (a Workflow Run RO-Crate) and confluence.yaml."
)
@click.option(
    "--from-ledger",
    is_flag=True,
    help="Report the run although it was recorded with another endpoint, region or account (the ledger answers).",
)
@click.option(
    "--log-lines",
    type=click.IntRange(0, 50),
    default=LOG_LINES,
    show_default=True,
    help=f"Last lines of a failed child's log shown under its reason (0: none; {REPORT_LOG_TAILS} children at most).",
)
@common_options(*AWS, "fmt", "ledger")
@handle_errors
def report(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    output_dir: str | None,
    temporal_range: str | None,
    offline: bool,
    ro_crate: bool,
    from_ledger: bool,
    log_lines: int,
    common: Common,
) -> None:
    """Write module_data_report.json and module_data_failures.json (Confluence's format) and report.html."""
    ctx = RunContext(config_path, venue, submission_file, common.aws, shared_ledger=common.ledger)
    if not ctx.has_ledger:
        raise RecordError("no ledger: pass -s submissions.csv (its ledger is beside it) or --ledger s3://BUCKET/PREFIX")
    rid = _run_id(ctx, run_id)
    if ctx.ledger.header(rid) is None and not ctx.ledger.jobs(rid):
        raise RecordError(f"run {rid} is not in the ledger {ctx.ledger.location} (see `{command('runs')}`)")
    if not offline:
        check_where(ctx, rid, from_ledger=from_ledger)
    crate_record = crate_source(ctx.ledger, rid) if ro_crate else None
    forgotten, problem = (0, "--offline") if offline else refresh_outcomes(ctx, rid, slowest=True)
    record = ctx.ledger.snapshot(rid)
    plan = ctx.plan_for(rid)
    order = [(s.stage, s.module) for s in plan.submissions] if plan is not None else []
    built = build_report(record, run_id=rid, module_order=order)
    linked = provenance.links(ctx.ledger, rid)  # a recovered run's origin, or the runs recovered from this one
    link = provenance.link_text(linked)
    if log_lines and not offline and problem is None:
        reader = LogReader(client("logs", common.aws))

        def read_tail(item: FailedItem) -> list[str]:
            group, stream = item.log_group or DEFAULT_LOG_GROUP, str(item.log_stream)
            return [event.message.rstrip() for event in reader.tail(group, stream, log_lines)]

        built = with_tails(built, read_tail)
    directory = Path(output_dir) if output_dir else _default_dir(ctx, rid)
    directory.mkdir(parents=True, exist_ok=True)
    run_args = [*options([("-s", ctx.csv_path), ("--run-id", rid)]), *common.aws_args]

    def logs_command(f: FailedItem) -> str:
        index = options([("--index", f.index if _is_array(record.rows, f) else None)])
        return command("logs", *run_args, "--stage", f.stage, "--module", f.module, *index)

    (directory / REPORT_FILE).write_text(json.dumps(confluence_report(built, temporal_range), indent=2) + "\n")
    items = load_items(ctx, common.aws)
    # A failed child of a packed module is every item it stood for (Confluence reads the file item by item).
    packing = {
        m.name: (m.items_per_child, len(items[m.name]) if m.name in items else m.array_size)
        for m in (ctx.config.modules if ctx.config else ())
        if m.items_per_child > 1
    }
    failures = confluence_failures(built, items, packing)
    (directory / FAILURES_FILE).write_text(json.dumps(failures, indent=2) + "\n")
    page = render_html(built, logs_command=logs_command, generated_at=_now())
    cost, cost_problem = (None, "--offline") if offline else measure_cost(ctx, record.rows, plan, common.aws)
    if cost is not None:
        page = with_section(page, cost_html(cost))
        (directory / COST_FILE).write_text(json.dumps({"run_id": rid, **measured_to_dict(cost)}, indent=2) + "\n")
    supervised = read_state(lambda name: ctx.ledger.read(rid, name))
    rounds = round_lines(supervised) if supervised is not None else []
    if rounds:
        items_html = "".join(f"<li>{html.escape(line)}</li>" for line in rounds)
        page = with_section(page, f'<h2>Rounds</h2><ul id="rounds">{items_html}</ul>')
    (directory / HTML_FILE).write_text(page)
    written = [REPORT_FILE, FAILURES_FILE, HTML_FILE, *((COST_FILE,) if cost is not None else ())]
    if crate_record is not None:
        written += write_crate(directory, crate_record, ctx.ledger.snapshot(rid), built, written)
    ctx.ledger.note(rid, RunEvent(now_iso(), "reported", str(directory), "report"))
    if problem is not None:
        err.print(
            text(f"note: AWS was not asked ({problem}); the report is built from the ledger alone"), highlight=False
        )
    elif forgotten:
        err.print(
            f"note: AWS no longer describes {forgotten} jobs of run {rid}; they are reported from the ledger",
            highlight=False,
        )
    own = [f for m in built.modules for f in m.failures if f.state == FAILED]
    if common.fmt == "json":
        summary = report_summary(built, own, [directory / n for n in written])
        summary = {**summary, "rounds": rounds} if rounds else summary
        click.echo(json.dumps({**summary, "link": linked} if linked else summary))
        return
    out.print(text(f"run {rid}: {built.state}; {count_line(built)}"), highlight=False)
    if link:
        out.print(text(f"run {rid}: {link}"), highlight=False)
    for line in rounds:  # a redriven supervised run: one run, its rounds
        out.print(text(line), highlight=False)
    # The first failures that explain the run, each with its last log lines (the page lists them all).
    for f in own[:LOG_TAILS]:
        out.print(text(f"failed: {f.stage}/{f.module} index {f.index}: {clean_line(f.reason)}", "red"), highlight=False)
        for line in f.tail:
            out.print(text(f"  | {clean_line(line)}", "dim"), highlight=False)
    if len(own) > LOG_TAILS:
        out.print(text(f"... {len(own) - LOG_TAILS} more failed children in {directory / HTML_FILE}"), highlight=False)
    if cost is not None:
        for line in cost_lines(cost):
            out.print(text(line), highlight=False)
    elif cost_problem:
        err.print(text(f"note: the run's cost was not measured ({cost_problem})"), highlight=False)
    for name in written:
        out.print(f"wrote {directory / name}", highlight=False)


def measure_cost(
    ctx: RunContext, rows: Sequence[Row], plan: Plan | None, aws: AwsOptions
) -> tuple[MeasuredCost | None, str | None]:
    """The run priced from AWS's timestamps of every attempt, beside the estimate from the same plan."""
    try:
        prices = load_prices(aws.resolved_region)
        jobs = {job["jobId"]: job for job in ctx.batch.describe_jobs(r.job_id for r in rows)}
        attempts, forgotten = collect_attempts(ctx.batch, rows, jobs, ctx.config)
    except (AwsError, ConfigError) as e:
        return None, str(e)
    config: Config | None = ctx.config
    spot_share = 1.0 if config is None or config.infrastructure.fargate_spot else 0.0
    estimate = None
    if plan is not None and config is not None:
        estimate = estimate_cost(works_from_plan(plan, config), prices, spot_share=spot_share)
    cost = measured_cost(attempts, prices, spot_share=spot_share, estimate=estimate)
    if forgotten:
        err.print(
            f"note: AWS no longer describes {forgotten} jobs or children: their attempts are not in the cost",
            highlight=False,
        )
    return cost, None


def report_summary(built: RunReport, own: list[FailedItem], files: list[Path]) -> dict[str, Any]:
    """What ``report --output json`` prints: the run's state and counts (durations in seconds), its first own
    failures with their last log lines, and the files written."""
    return {
        "run_id": built.run_id,
        "state": built.state,
        "children": built.total,
        "succeeded": built.succeeded,
        "failed": built.failed,
        "blocked": built.blocked,
        "cancelled": built.cancelled,
        "not_finished": built.unfinished,
        "needed_a_retry": built.retried_children,
        "seconds": built.total_time.total_seconds(),
        "failures": [
            {"stage": f.stage, "module": f.module, "index": f.index, "reason": f.reason, "log_tail": list(f.tail)}
            for f in own[:LOG_TAILS]
        ],
        "files": [str(f) for f in files],
    }


def _default_dir(ctx: RunContext, run_id: str) -> Path:
    if ctx.csv_path is not None:
        return local_root(ctx.csv_path) / run_id
    return Path(f"report-{run_id}")


def _is_array(rows: Any, item: FailedItem) -> bool:
    return any(r.stage == item.stage and r.algorithm == item.module and r.array_size >= 2 for r in rows)


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------------------
# logs


def _index_maps(ctx: RunContext, rows: Any, outcomes: dict[str, JobOutcome]) -> dict[str, list[int]]:
    """Index maps of compact retries the ledger has no outcome for yet (read from AWS)."""
    missing = [r.job_id for r in rows if r.kind == RETRY and r.job_id not in outcomes]
    maps: dict[str, list[int]] = {}
    for job in ctx.batch.describe_jobs(missing) if missing else []:
        mapped = index_map(job)
        if mapped is not None:
            maps[str(job["jobId"])] = mapped
    return maps


def _from_ledger(target: Target, outcome: JobOutcome | None) -> tuple[Stream, str] | None:
    """The stream and a status line of a job AWS no longer describes, from its recorded outcome."""
    if outcome is None:
        return None
    group = outcome.log_group or "/aws/batch/job"
    if target.array_index is None:
        line = f"{outcome.status}: {outcome.status_reason or '-'}" + (
            f" (exit code {outcome.exit_code})" if outcome.exit_code is not None else ""
        )
        return Stream(group, outcome.log_stream, outcome.attempts or 1, outcome.attempts), line
    for child in outcome.failed:
        if child.index == target.index:
            line = f"{child.status}: {child.reason or '-'}" + (
                f" (exit code {child.exit_code})" if child.exit_code is not None else ""
            )
            return Stream(group, child.log_stream, child.attempts or 1, child.attempts), line
    return None


@click.command()
@run_options
@click.option("--stage", required=True, help="The stage of the job.")
@click.option("--module", required=True, help="The module of the job.")
@click.option("--index", type=int, help="The global index of an array child (as status and the report show it).")
@click.option("--attempt", type=click.IntRange(min=1), help="Which attempt (1 = the first; default: the latest).")
@click.option("--follow", is_flag=True, help="Keep printing new lines until the job ends.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=5.0, show_default=True, help="--follow poll (s).")
@common_options(*AWS, "ledger")
@handle_errors
def logs(
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    run_id: str | None,
    stage: str,
    module: str,
    index: int | None,
    attempt: int | None,
    follow: bool,
    interval: float,
    common: Common,
) -> None:
    """Print the CloudWatch log stream of one job or array child of a run, with its status reason and exit code."""
    ctx = RunContext(config_path, venue, submission_file, common.aws, shared_ledger=common.ledger)
    rid = _run_id(ctx, run_id)
    rows = ctx.ledger.jobs(rid) if ctx.has_ledger else []
    if not rows:
        rows = ctx.open(rid, reconcile=False).rows
    rows = [r for r in rows if r.kind != BARRIER_KIND]
    outcomes = ctx.ledger.outcomes(rid) if ctx.has_ledger else {}
    maps = _index_maps(ctx, rows, outcomes)
    target = locate(rows, outcomes, stage=stage, module=module, index=index, index_maps=maps)
    described = ctx.batch.describe_jobs([target.job_id])
    child = f" child {target.array_index} (index {target.index})" if target.array_index is not None else ""
    if described:
        job = described[0]
        stream = pick_stream(job, attempt)
        reason = job.get("statusReason") or "-"
        exit_code = (job.get("container") or {}).get("exitCode")
        if attempt is not None:
            container = ((job.get("attempts") or [{}])[attempt - 1] or {}).get("container") or {}
            reason, exit_code = container.get("reason") or reason, container.get("exitCode")
        status_line = f"{job.get('status')}: {reason}" + (f" (exit code {exit_code})" if exit_code is not None else "")
        source = ""
    else:
        found = _from_ledger(target, outcomes.get(target.row.job_id))
        if found is None:
            raise NoLogStream(
                f"{target.row.job_name}{child}: AWS ({common.endpoint_url or 'AWS'}) does not describe this job and "
                "the ledger recorded no log stream for it"
            )
        stream, status_line = found
        source = " (AWS no longer describes this job; from the ledger)"
    # The status reason is anyone's text (TerminateJob's reason): data, cleaned.
    err.print(
        text(
            f"{target.row.job_name}{child} attempt {stream.attempt} of {max(stream.attempts, 1)}: {status_line}{source}"
        ),
        highlight=False,
    )
    if stream.name is None:
        raise NoLogStream(
            f"attempt {stream.attempt} of {target.row.job_name}{child} has no log stream: it never reached RUNNING"
        )
    err.print(text(f"log group {stream.group}, stream {stream.name}", style="dim"), highlight=False)
    reader = LogReader(client("logs", common.aws))

    def emit(event: Any) -> None:
        for line in iter_lines([event]):
            click.echo(clean(line))  # a container's output: no escape sequence reaches the terminal

    if not follow:
        events, _ = reader.read(stream.group, stream.name)
        for line in iter_lines(events):
            click.echo(clean(line))
        if not events:
            err.print("(the stream is empty)", highlight=False)
        return

    def active() -> bool:
        try:
            jobs = ctx.batch.describe_jobs([target.job_id])
        except AwsError as e:
            err.print(text(f"note: {describe_error(e)}"), highlight=False)
            return False
        return bool(jobs) and jobs[0].get("status") in ACTIVE

    reader.follow(stream.group, stream.name, active, emit, poll=interval)
    sys.stdout.flush()


__all__ = ["logs", "report", "runs"]
