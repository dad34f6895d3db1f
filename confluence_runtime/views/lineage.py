"""Provenance views (pure): the run record as ``runs show`` prints it, and the lineage of one item.

Lineage answers "which job produced reach X": for each stage and module, which job and which child handled the
item (packing: child = item // items per child; offset arrays and retry-failed's index maps applied), in which
retry round, with its attempts, final state, log stream, job definition revision and image digest, and, for a run
recovered from a stage, the origin run that handled the earlier stages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from .. import names
from ..records.ledger import JobOutcome, RunHeader
from ..records.provenance import ModuleRecord, Provenance
from ..records.record import Row
from ..safetext import clean

PLAIN = -1


@dataclass(frozen=True)
class ChildState:
    """What is known of one child (AWS's DescribeJobs, else the ledger)."""

    status: str
    attempts: int | None = None
    log_stream: str | None = None
    job_definition: str | None = None  # the ARN AWS ran it under
    source: str = "AWS"  # "AWS" or "ledger"


@dataclass(frozen=True)
class Handling:
    """One job (child) that handled the item."""

    run_id: str
    stage: str
    module: str
    item: int  # the item's index in the module's list (or the index asked for)
    child: int  # the module's global child index; -1: a plain job (it handles every item)
    round: int  # 0: the run's own submission; g: the g-th retry-failed
    job_name: str
    job_id: str
    array_index: int | None
    child_job_id: str
    status: str
    attempts: int | None
    log_stream: str | None
    job_definition: str | None
    image: str | None
    digest: str | None
    via: str = ""  # "" for this run; "origin RUN" for stages a recovered run took from its origin

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Lineage:
    run_id: str
    item: str
    handlings: tuple[Handling, ...]
    not_found: tuple[str, ...]  # modules the item could not be placed in, and why
    origins: tuple[str, ...]  # the runs this one came from (a recovered run's origin, its origin, ...)
    recovered_by: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "item": self.item,
            "handlings": [h.to_dict() for h in self.handlings],
            "not_found": list(self.not_found),
            "origins": list(self.origins),
            "recovered_by": list(self.recovered_by),
        }


def item_indices(
    item: str, modules: Sequence[ModuleRecord], items: Mapping[str, Sequence[Any]]
) -> tuple[dict[str, int], list[str]]:
    """Per module (stage.module) the index of ``item``: its position in the module's items list when the value is
    there, else ``item`` read as an index (when no list holds it); a plain job handles every item. Returns the
    indices and why the other modules do not hold it."""
    found: dict[str, int] = {}
    missing: list[str] = []
    listed = any(item in (str(v) for v in items.get(m.key, ())) for m in modules)
    # A value some items list holds (a reach id) is that value everywhere, never also an index.
    as_index = int(item) if item.isdigit() and not listed else None
    for module in modules:
        values = [str(v) for v in items.get(module.key, ())]
        if item in values:
            found[module.key] = values.index(item)
        elif module.array_size < 2:
            found[module.key] = as_index if as_index is not None else PLAIN  # a plain job handles every item
        elif as_index is not None and 0 <= as_index < module.array_size:
            found[module.key] = as_index
        elif as_index is not None:
            missing.append(f"{module.key}: index {as_index} is beyond its {module.array_size} items")
        elif values:
            missing.append(f"{module.key}: {item!r} is not in its items list")
        else:
            missing.append(f"{module.key}: no items list to find {item!r} in (pass its index)")
    return found, missing


def coverage_of(row: Row, index_map: Sequence[int] | None) -> list[int]:
    """The global children a recorded job stands for (``[-1]`` for a plain job): a retry's index map, an offset
    array's range."""
    if (row.kind == names.RETRY or row.array_size >= 2) and index_map:
        return list(index_map)
    if row.array_size >= 2:
        return list(range(row.array_offset, row.array_offset + row.array_size))
    return [PLAIN]


def handled_by(
    rows: Sequence[Row],
    index_maps: Mapping[str, Sequence[int]],
    module: ModuleRecord,
    item: int,
) -> list[tuple[Row, int, int | None]]:
    """The jobs of one module that handled ``item``, in round order: (row, global child, array index)."""
    child = item // module.items_per_child if module.array_size >= 2 else PLAIN
    found = []
    for row in rows:
        if (row.stage, row.algorithm) != (module.stage, module.module) or row.kind == names.BARRIER:
            continue
        if names.parse_name(row.job_name).retry_barrier:
            continue
        cover = coverage_of(row, index_maps.get(row.job_id))
        if child in cover:
            found.append((row, child, cover.index(child) if row.array_size >= 2 else None))
    return sorted(found, key=lambda f: names.generation(f[0].job_name))


def child_job_id(row: Row, array_index: int | None) -> str:
    return f"{row.job_id}:{array_index}" if array_index is not None else row.job_id


def from_ledger(outcome: JobOutcome | None, child: int) -> ChildState | None:
    """A child's state from the ledger: a failed or slowest child recorded by index, else the job's own state
    when every child shares it (or the job is plain)."""
    if outcome is None:
        return None
    for c in (*outcome.failed, *outcome.slowest):
        if c.index == child:
            return ChildState(c.status, c.attempts or None, c.log_stream, None, "ledger")
    counts = outcome.count_map
    if not outcome.array_size or len(counts) == 1:
        status = next(iter(counts)) if counts else outcome.status
        stream = outcome.log_stream if not outcome.array_size else None
        return ChildState(status, outcome.attempts or None, stream, None, "ledger")
    return ChildState(f"{outcome.status} (array)", None, None, None, "ledger")


def build_lineage(
    run_id: str,
    item: str,
    record: Provenance,
    rows: Sequence[Row],
    index_maps: Mapping[str, Sequence[int]],
    items: Mapping[str, Sequence[Any]],
    child_state: Callable[[Row, int, int | None], ChildState | None],
    *,
    origin: Lineage | None = None,
) -> Lineage:
    """The item's handlings in this run; for a recovered run, the stages before ``from_stage`` from ``origin``."""
    own = list(record.modules)  # a recovered run records only the stages it ran
    own_stages = {m.stage for m in own}
    indices, missing = item_indices(item, own, items)
    handlings: list[Handling] = []
    jobs = record.job_map
    for module in own:
        index = indices.get(module.key)
        if index is None:
            continue
        if record.subset and index not in record.subset and module.array_size >= 2:
            missing.append(f"{module.key}: item {index} is not in this recovered run's subset")
            continue
        found = handled_by(rows, index_maps, module, index)
        if not found:
            missing.append(f"{module.key}: no recorded job handled item {index}")
        for row, child, array_index in found:
            state = child_state(row, child, array_index) or ChildState("unknown", source="nowhere")
            arn = state.job_definition or jobs.get(row.job_id)
            definition = record.definition(arn or "") or record.definition(module.job_definition)
            handlings.append(
                Handling(
                    run_id=run_id,
                    stage=module.stage,
                    module=module.module,
                    item=index,
                    child=child,
                    round=names.generation(row.job_name),
                    job_name=row.job_name,
                    job_id=row.job_id,
                    array_index=array_index,
                    child_job_id=child_job_id(row, array_index),
                    status=state.status,
                    attempts=state.attempts,
                    log_stream=state.log_stream,
                    job_definition=arn or (definition.arn if definition else None),
                    image=definition.image if definition else None,
                    digest=definition.digest if definition else None,
                )
            )
    order = {s: i for i, s in enumerate(record.stages)}
    handlings.sort(key=lambda h: (order.get(h.stage, len(order)), h.module, h.round))
    if origin is not None:
        # The stages before the one a recovered run started from: as its origin ran them.
        handlings[:0] = [replace(h, via=f"origin {h.run_id}") for h in origin.handlings if h.stage not in own_stages]
        missing[:0] = [m for m in origin.not_found if m.split(".", 1)[0] not in own_stages]
    origins = ((origin.run_id, *origin.origins) if origin is not None else ()) or (
        (record.origin_run_id,) if record.origin_run_id else ()
    )
    return Lineage(run_id, item, tuple(handlings), tuple(missing), tuple(origins), record.recovered_by)


def lineage_lines(lineage: Lineage) -> list[str]:
    """``lineage`` as text: one block per handling, in stage order."""
    lines = [f"item {clean(lineage.item)} in run {lineage.run_id}"]
    if lineage.origins:
        lines.append(f"  recovered from: {' <- '.join(lineage.origins)}")
    if lineage.recovered_by:
        lines.append(f"  recovered by: {', '.join(lineage.recovered_by)}")
    for h in lineage.handlings:
        where = f"child {h.array_index}" if h.array_index is not None else "plain job"
        round_ = f"round {h.round}" if h.round else "first submission"
        run = f" (in {h.run_id})" if h.run_id != lineage.run_id else ""
        which = f"item {h.item}" if h.item >= 0 else "every item"
        lines.append(f"{h.stage}.{h.module} {which}: {h.status}{run}")
        lines.append(f"  job {h.job_name} ({h.child_job_id}), {where}, {round_}")
        lines.append(
            f"  attempts {h.attempts if h.attempts is not None else '?'}, log stream {clean(h.log_stream or '-')}"
        )
        lines.append(f"  definition {h.job_definition or '?'}")
        lines.append(f"  image {clean(h.image or '?')} {h.digest or '(digest unknown)'}")
    for reason in lineage.not_found:
        lines.append(f"not handled: {clean(reason)}")
    return lines


def record_lines(record: Provenance, header: RunHeader | None) -> list[str]:
    """``runs show``: the run record as text."""
    lines = [
        f"run {record.run_id}",
        f"  recorded {record.recorded_at} by confluence-submit {record.tool_version}",
        f"  config {record.config_path} sha256 {record.config_sha256 or '?'}",
        "  git commit "
        + (
            f"{record.git_commit}{' (the yaml differed from it)' if record.git_dirty else ''}"
            if record.git_commit
            else "none (not in a git work tree)"
        ),
        f"  account {record.account or 'unknown'}, region {record.region}, venue {record.venue or '-'}, prefix "
        f"{record.prefix}, endpoint {record.endpoint or 'AWS'}",
    ]
    if header is not None:
        lines.append(f"  started {header.started_at}, plan {header.plan_digest}")
    if record.origin_run_id:
        subset = f", {len(record.subset)} items" if record.subset else ""
        lines.append(f"  recovered from run {record.origin_run_id} at stage {record.from_stage}{subset}")
    if record.recovered_by:
        lines.append(f"  recovered by: {', '.join(record.recovered_by)}")
    lines.append("job definitions:")
    for d in record.definitions:
        lines.append(f"  {d.arn}")
        lines.append(f"    image {clean(d.image)}")
        lines.append(f"    digest {d.digest or 'unknown'} ({clean(d.digest_source)})")
    if record.items:
        lines.append("items lists:")
    for i in record.items:
        lines.append(f"  {i.module}: {clean(i.url)} ({i.count} items)")
        lines.append(f"    version {i.version_id or 'none (bucket not versioned)'}, ETag {clean(i.etag)}")
        lines.append(f"    sha256 {i.sha256}")
    lines.append("modules:")
    for m in record.modules:
        packed = f", {m.items_per_child} items per child" if m.items_per_child > 1 else ""
        size = f"array of {m.array_size} items" if m.array_size >= 2 else "plain job"
        lines.append(f"  {m.key}: {m.job_definition}, {size}{packed}")
    revisions: dict[str, int] = {}
    for _, arn in record.jobs:
        revisions[arn] = revisions.get(arn, 0) + 1
    lines.append(f"jobs: {len(record.jobs)} recorded with their definition revision")
    for arn, count in sorted(revisions.items()):
        lines.append(f"  {count} under {arn}")
    return lines
