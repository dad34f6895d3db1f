"""``runs show RUN_ID`` and ``lineage``: what a run ran (the run record) and which job handled an item."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..apply.recover import Recovery, later_config, parse_subset, recovery_plan, subset_indices, unfinished_before
from ..config import Config
from ..errors import AwsError, RecordError
from ..planning.plan import Plan
from ..records import provenance as run_record
from ..records.ledger import Ledger, RunRecord
from ..records.provenance import Provenance
from ..records.record import Row
from ..safetext import text
from ..shellcmd import command
from ..views.lineage import ChildState, Lineage, build_lineage, from_ledger, lineage_lines, record_lines
from ..views.report import RunReport
from ..views.rocrate import METADATA_FILE, WORKFLOW_FILE, build_crate
from ..views.runview import index_map
from ..views.status import collect_status
from .common import AWS, Common, RunContext, common_options, config_options, handle_errors, out

SUBMISSION_HELP = "Submission CSV (default: submission_file from the config, if it exists)."
MAX_ORIGINS = 20  # a chain of recovered runs longer than this is a loop in a hand-edited ledger


def _context(config_path: str, venue: str | None, submission_file: str | None, common: Common) -> RunContext:
    ctx = RunContext(config_path, venue, submission_file, common.aws, shared_ledger=common.ledger)
    if not ctx.has_ledger:
        raise RecordError("no ledger: pass -s submissions.csv (its ledger is beside it) or --ledger s3://BUCKET/PREFIX")
    return ctx


def _record(ledger: Ledger, run_id: str) -> Provenance:
    record = run_record.read(ledger, run_id)
    if record is None:
        known = ledger.header(run_id) is not None
        why = "it predates run records" if known else "no such run"
        raise RecordError(f"run {run_id}: no run record in {ledger.location} ({why}; see `confluence-submit runs`)")
    return record


def crate_source(ledger: Ledger, run_id: str) -> Provenance:
    """The run record a crate is built from (checked before the report is written: exit 2 without one)."""
    return _record(ledger, run_id)


def write_crate(
    directory: Path, record: Provenance, snapshot: RunRecord, built: RunReport, outputs: list[str]
) -> list[str]:
    """Write the yaml the run submitted and ``ro-crate-metadata.json`` beside the report files; their names."""
    (directory / WORKFLOW_FILE).write_text(record.config_text)
    stopped = built.span.stopped
    crate = build_crate(
        record,
        snapshot.header,
        snapshot.rows,
        snapshot.outcomes,
        outputs,
        state=built.state,
        ended_at=stopped.isoformat(timespec="milliseconds") if stopped and not built.unfinished else None,
    )
    (directory / METADATA_FILE).write_text(json.dumps(crate, indent=2) + "\n")
    return [WORKFLOW_FILE, METADATA_FILE]


@dataclass(frozen=True)
class Recovered:
    config: Config  # the stages the new run submits, sized as the origin's
    plan: Plan
    recovery: Recovery


def recover_workflow(
    config: Config,
    run_id: str,
    csv_path: Path,
    common: Common,
    from_stage: str,
    origin_run_id: str,
    items_subset: str | None,
) -> Recovered:
    """``run --from-stage``: check the origin (its record, its yaml, its earlier stages, the subset) and plan the
    new run; every refusal is exit 2 with its reason."""
    ctx = RunContext(str(config.source), config.venue, str(csv_path), common.aws, shared_ledger=common.ledger)
    origin = _record(ctx.ledger, origin_run_id)
    later = later_config(config, origin, from_stage)
    subset: tuple[int, ...] = ()
    if items_subset is not None:
        tokens = parse_subset(Path(items_subset).read_text(), items_subset)
        subset = subset_indices(tokens, origin, run_record.read_items(ctx.ledger, origin_run_id), later, items_subset)
    view = ctx.open(origin_run_id, reconcile=False)
    origin_plan = ctx.plan_for(origin_run_id)
    status = collect_status(ctx.batch, view, origin_plan, ledger=ctx.ledger)
    reasons = unfinished_before(status, origin.stages, from_stage, origin_plan)
    if reasons:
        error = RecordError(
            f"--origin-run-id {origin_run_id}: the stages before {from_stage} did not finish: " + "; ".join(reasons)
        )
        retry = command("retry-failed", "--run-id", origin_run_id)
        error.hint = f"finish them first ({retry}), or recover from an earlier stage"
        raise error
    recovery = Recovery(origin_run_id, from_stage, subset)
    return Recovered(later, recovery_plan(config, run_id, origin, recovery), recovery)


@click.command("show")
@click.argument("run_id")
@config_options
@click.option("-s", "--submission-file", help=SUBMISSION_HELP)
@common_options(*AWS, "fmt", "ledger")
@handle_errors
def show(run_id: str, config_path: str, venue: str | None, submission_file: str | None, common: Common) -> None:
    """The run record: yaml, tool version, git commit, account, region, images by digest, items lists by version."""
    ctx = _context(config_path, venue, submission_file, common)
    record = _record(ctx.ledger, run_id)
    if common.fmt == "json":
        data = record.to_dict()
        header = ctx.ledger.header(run_id)
        data["header"] = header.to_dict() if header else None
        click.echo(json.dumps(data, indent=2))
        return
    for line in record_lines(record, ctx.ledger.header(run_id)):
        out.print(text(line), highlight=False, soft_wrap=True)


def lineage_of(ctx: RunContext, run_id: str, item: str, *, ask_aws: bool, depth: int = 0) -> Lineage:
    """The lineage of ``item`` in ``run_id`` (and, for a recovered run, in the runs it came from)."""
    ledger = ctx.ledger
    record = _record(ledger, run_id)
    origin = None
    if record.origin_run_id and depth < MAX_ORIGINS:
        origin = lineage_of(ctx, record.origin_run_id, item, ask_aws=ask_aws, depth=depth + 1)
    rows = ledger.jobs(run_id)
    outcomes = ledger.outcomes(run_id)
    jobs: dict[str, dict[str, Any]] = {}
    if ask_aws and rows:
        try:
            jobs = {str(j["jobId"]): j for j in ctx.batch.describe_jobs([r.job_id for r in rows])}
        except AwsError:
            jobs = {}
    maps: dict[str, list[int]] = {}
    for row in rows:
        mapped = index_map(jobs[row.job_id]) if row.job_id in jobs else None
        outcome = outcomes.get(row.job_id)
        maps[row.job_id] = list(mapped or (outcome.index_map if outcome else ()))

    def child_state(row: Row, child: int, array_index: int | None) -> ChildState | None:
        described = jobs.get(row.job_id) if array_index is None else None
        if ask_aws and array_index is not None:
            try:
                found = ctx.batch.describe_jobs([f"{row.job_id}:{array_index}"])
            except AwsError:
                found = []
            described = found[0] if found else None
        if described:
            attempts = described.get("attempts") or []
            container = described.get("container") or {}
            return ChildState(
                str(described.get("status", "")),
                len(attempts),
                container.get("logStreamName"),
                described.get("jobDefinition"),
            )
        return from_ledger(outcomes.get(row.job_id), child)

    items = run_record.read_items(ledger, run_id)
    if origin is not None and not items:
        items = run_record.read_items(ledger, origin.run_id)
    return build_lineage(run_id, item, record, rows, maps, items, child_state, origin=origin)


@click.command()
@click.option("--run-id", required=True, help="The run.")
@click.option("--item", required=True, help="An item's value (as in an items list, e.g. a reach id) or its index.")
@click.option("--offline", is_flag=True, help="Do not ask AWS: answer from the ledger alone.")
@config_options
@click.option("-s", "--submission-file", help=SUBMISSION_HELP)
@common_options(*AWS, "fmt", "ledger")
@handle_errors
def lineage(
    run_id: str,
    item: str,
    offline: bool,
    config_path: str,
    venue: str | None,
    submission_file: str | None,
    common: Common,
) -> None:
    """Which job and child handled an item, per stage and module: attempts, state, image digest, log stream."""
    ctx = _context(config_path, venue, submission_file, common)
    result = lineage_of(ctx, run_id, item, ask_aws=not offline)
    if common.fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    for line in lineage_lines(result):
        out.print(text(line), highlight=False, soft_wrap=True)
    if not result.handlings:
        raise RecordError(f"item {item!r}: no job of run {run_id} handled it")


__all__ = ["Recovered", "crate_source", "lineage", "lineage_of", "recover_workflow", "show", "write_crate"]
