"""Read a run's state back from AWS Batch with as few calls as the API allows.

DescribeJobs takes 100 ids per call and an array parent carries ``arrayProperties.statusSummary``, so a run of a
few hundred SubmitJob calls (hundreds of thousands of containers) is described in a handful of calls. Child-level
ListJobs (``arrayJobId`` + ``jobStatus=FAILED``) is only made for arrays that have failed children, to name the
indices and reasons.

The run's outcome takes retry-failed into account: an index that failed and later succeeded in a retry
generation no longer counts against the run (see :func:`outstanding`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import names
from .aws import Batch
from .plan import Plan
from .record import Row
from .runview import DEPENDENCY_FAILED, PLAIN, RunView, describe, index_map

STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
ACTIVE = STATUSES[:5]
REASON_SAMPLE = 100  # children listed to name the reason when a whole array failed (all share it)

Key = tuple[str, str, int]  # stage, module, job index: one logical piece of work across retry generations


@dataclass
class ModuleCounts:
    stage: str
    module: str
    jobs: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))

    @property
    def children(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class FailureGroup:
    """Failed children (or a failed plain job) of one job that share one reason."""

    stage: str
    module: str
    job_name: str
    job_id: str
    reason: str
    count: int
    indices: tuple[int, ...] = ()  # global indices (offset or index map applied); empty for plain jobs
    items_per_child: int = 1  # a packed module: each index (child) stands for this many items ...
    item_count: int = 0  # ... of this many

    @property
    def items(self) -> list[range]:
        """The items the failed children stood for (packed modules; one item per index otherwise)."""
        return [names.items_of_child(i, self.items_per_child, self.item_count) for i in self.indices if i >= 0]


@dataclass
class RunStatus:
    run_id: str
    source: str
    stages: list[str]
    modules: list[ModuleCounts]
    failures: list[FailureGroup]
    outstanding: dict[Key, set[int]]
    missing: list[str]
    duplicates: list[tuple[str, list[str]]]

    def totals(self, stage: str | None = None) -> dict[str, int]:
        totals = dict.fromkeys(STATUSES, 0)
        for m in self.modules:
            if stage is None or m.stage == stage:
                for status, n in m.counts.items():
                    totals[status] += n
        return totals

    @property
    def active(self) -> int:
        totals = self.totals()
        return sum(totals[s] for s in ACTIVE)

    @property
    def state(self) -> str:
        """running, incomplete (jobs of the plan never submitted: resume), failed or succeeded."""
        if self.active:
            return "running"
        if self.missing:
            return "incomplete"
        if any(self.outstanding.values()):
            return "failed"
        return "succeeded"

    @property
    def finished(self) -> bool:
        return self.state != "running"


def reason_text(status_reason: str | None, container: Mapping[str, Any] | None) -> str:
    """One line naming why a job failed: AWS's statusReason plus the container's exit code or reason."""
    container = container or {}
    reason = status_reason or "unknown reason"
    if container.get("exitCode") is not None:
        return f"{reason} (exit code {container['exitCode']})"
    extra = container.get("reason")
    if extra and extra != reason:
        return f"{reason}: {extra}"
    return reason


def child_counts(job: Mapping[str, Any], row: Row) -> dict[str, int]:
    """Children per status for an array parent; 1 in its status for a plain job."""
    status = str(job.get("status") or "SUBMITTED")
    if row.array_size < 2:
        return {status: 1}
    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
    counts = {s: int(summary.get(s, 0)) for s in STATUSES}
    # Before AWS creates the children, the summary is empty: the parent's status stands for all of them.
    unaccounted = row.array_size - sum(counts.values())
    if unaccounted > 0:
        counts[status] = counts.get(status, 0) + unaccounted
    return counts


def coverage(row: Row, job: Mapping[str, Any]) -> list[int]:
    """The global indices a recorded job stands for (``[PLAIN]`` for a plain job)."""
    if row.kind == names.RETRY:
        mapped = index_map(job)
        if mapped is not None:
            return mapped
    if row.array_size >= 2:
        return list(range(row.array_offset, row.array_offset + row.array_size))
    return [PLAIN]


def key_of(row: Row) -> Key:
    return (row.stage, row.algorithm, row.job_index)


def outstanding(view: RunView, failed: Mapping[str, set[int]]) -> dict[Key, set[int]]:
    """Global indices whose latest attempt failed, per logical job: later generations replace earlier ones."""
    bad: dict[Key, set[int]] = {}
    for row in sorted(view.rows, key=lambda r: names.generation(r.job_name)):
        key = key_of(row)
        current = bad.setdefault(key, set())
        current.difference_update(coverage(row, view.job(row)))
        current.update(failed.get(row.job_id, set()))
    return bad


def failed_children(
    batch: Batch, row: Row, job: Mapping[str, Any], counts: Mapping[str, int]
) -> tuple[set[int], list[FailureGroup]]:
    """Global indices of a job's failed children and their reasons, with the fewest ListJobs calls."""
    if not counts.get("FAILED"):
        return set(), []
    if row.array_size < 2:
        reason = reason_text(job.get("statusReason"), job.get("container"))
        group = FailureGroup(row.stage, row.algorithm, row.job_name, row.job_id, reason, 1)
        return {PLAIN}, [group]
    cover = coverage(row, job)
    whole = counts["FAILED"] == row.array_size
    children: Iterable[dict[str, Any]] = batch.list_jobs(array_job_id=row.job_id, status="FAILED")
    if whole:
        # Every child failed (typically "Dependent Job failed"): one page names the reason, all indices are known.
        children = itertools.islice(children, REASON_SAMPLE)
    reasons: dict[str, list[int]] = {}
    for child in children:
        index = (child.get("arrayProperties") or {}).get("index")
        if index is None or not 0 <= int(index) < len(cover):
            continue
        reason = reason_text(child.get("statusReason"), child.get("container"))
        reasons.setdefault(reason, []).append(cover[int(index)])
    failed = set(cover) if whole else {i for indices in reasons.values() for i in indices}
    env = {e.get("name"): e.get("value") for e in (job.get("container") or {}).get("environment") or []}
    per_child = int(env.get(names.ENV_ITEM_COUNT) or 1)
    groups = [
        FailureGroup(
            row.stage,
            row.algorithm,
            row.job_name,
            row.job_id,
            reason,
            row.array_size if whole and len(reasons) == 1 else len(indices),
            tuple(sorted(cover) if whole and len(reasons) == 1 else sorted(indices)),
            per_child,
            int(env.get(names.ENV_ARRAY_SIZE) or 0),
        )
        for reason, indices in reasons.items()
    ]
    return failed, groups


def collect_status(batch: Batch, view: RunView, plan: Plan | None = None) -> RunStatus:
    """Counts per stage and module, failure reasons, and what is left to do, for one poll of the run."""
    describe(batch, view)
    modules: dict[tuple[str, str], ModuleCounts] = {}
    stage_order = list(plan.stages) if plan else []
    failures: list[FailureGroup] = []
    failed: dict[str, set[int]] = {}
    for row in view.rows:
        job = view.job(row)
        if not job:
            continue  # recorded but unknown to AWS (expired or another account): nothing to count
        if row.stage not in stage_order:
            stage_order.append(row.stage)
        entry = modules.setdefault((row.stage, row.algorithm), ModuleCounts(row.stage, row.algorithm))
        entry.jobs += 1
        counts = child_counts(job, row)
        for status, n in counts.items():
            entry.counts[status] = entry.counts.get(status, 0) + n
        indices, groups = failed_children(batch, row, job, counts)
        failed[row.job_id] = indices
        failures.extend(groups)
    recorded = {names.plan_name(r.job_name) for r in view.rows}
    missing = [s.name for s in plan.submissions if s.name not in recorded] if plan else []
    order = {stage: i for i, stage in enumerate(stage_order)}
    return RunStatus(
        run_id=view.run_id,
        source=view.source,
        stages=stage_order,
        modules=sorted(modules.values(), key=lambda m: order.get(m.stage, len(order))),
        # The same run reads back the same whether it came from the CSV or the API, in whatever order AWS lists
        # children: stage order, then job name, then reason.
        failures=sorted(failures, key=lambda f: (order.get(f.stage, len(order)), f.job_name, f.reason)),
        outstanding=outstanding(view, failed),
        missing=missing,
        duplicates=view.duplicates,
    )


def is_dependency_failure(group: FailureGroup) -> bool:
    return group.reason.startswith(DEPENDENCY_FAILED)


def status_to_dict(status: RunStatus, calls: Mapping[str, int] | None = None) -> dict[str, Any]:
    """What ``status --format json`` prints."""
    return {
        "run_id": status.run_id,
        "source": status.source,
        "state": status.state,
        "totals": status.totals(),
        "stages": [
            {
                "stage": stage,
                "counts": status.totals(stage),
                "modules": [
                    {"module": m.module, "jobs": m.jobs, "children": m.children, "counts": m.counts}
                    for m in status.modules
                    if m.stage == stage
                ],
            }
            for stage in status.stages
        ],
        "failures": [
            {
                "stage": f.stage,
                "module": f.module,
                "job_name": f.job_name,
                "job_id": f.job_id,
                "reason": f.reason,
                "count": f.count,
                "indices": list(f.indices),
                **({"items": [[r.start, r.stop - 1] for r in f.items]} if f.items_per_child > 1 else {}),
            }
            for f in status.failures
        ],
        "outstanding_failures": sum(len(v) for v in status.outstanding.values()),
        "missing": status.missing,
        "duplicates": [{"job_name": n, "extra_job_ids": ids} for n, ids in status.duplicates],
        **({"api_calls": dict(calls)} if calls is not None else {}),
    }
