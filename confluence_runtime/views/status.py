"""Read a run's state back from AWS Batch with as few calls as the API allows."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .. import attempts, names
from ..attempts import OOM_REASON
from ..aws.api import Batch
from ..planning.plan import Plan
from ..records.document import PENDING, SupervisorState, read_state
from ..records.ledger import ChildOutcome, JobOutcome, Ledger, RunHeader, child_outcome
from ..records.record import Row
from ..states import (
    ACTIVE,
    BLOCKED,
    CANCELLED,
    DEPENDENCY_FAILED,
    FAILED,
    FINAL,
    STATUSES,
    VIEW_STATUSES,
    failure_state,
)
from .logs import log_group
from .observe import FROM_LEDGER, job_from_outcome, outcomes_for
from .runview import PLAIN, RunView, describe, index_map

REASON_SAMPLE = 100  # children listed to name the reason when a whole array failed (all share it)

Key = tuple[str, str, int]  # stage, module, job index: one logical piece of work across retry generations


@dataclass
class ModuleCounts:
    stage: str
    module: str
    jobs: int = 0
    # AWS's states, and BLOCKED / CANCELLED for FAILED children that never ran or that we stopped (states.py).
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VIEW_STATUSES, 0))
    superseded: int = 0  # failed children a later retry-failed generation stands for: no longer counted as FAILED

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
    sample_job_id: str = ""  # one failed child (PARENT:INDEX) or the plain job: whose log explains the group
    tail: tuple[str, ...] = ()  # the last lines of that job's log (with_log_tails)

    @property
    def state(self) -> str:
        """FAILED (its own failure), BLOCKED (never ran: a dependency failed) or CANCELLED (we stopped it)."""
        return failure_state(self.reason)

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
    from_ledger: list[str] = field(default_factory=list)  # job names answered from the ledger (AWS forgot them)
    unknown: list[str] = field(default_factory=list)  # job names neither AWS nor the ledger knows
    cancelled: bool = False  # the ledger's last say on the run is a cancel
    header: RunHeader | None = None
    started_at: datetime | None = None  # the ledger header's start, else the first job's createdAt
    stopped_at: datetime | None = None  # the last stoppedAt seen
    # A supervised run's document (run --supervise): its supervisor, not the static plan, decides what is submitted
    # next and how the run ends (failures within their budgets make a run that succeeded).
    supervised: SupervisorState | None = None
    submitting: str | None = None  # the command still submitting into the run (it holds the run's lock), if any
    # Children a Spot reclaim ended, in every round and retry generation (``attempts.classify_child`` on the
    # failure reasons): a supervised run sends them again, so they are counted apart from failures.
    reclaims: int = 0

    def totals(self, stage: str | None = None) -> dict[str, int]:
        totals = dict.fromkeys(VIEW_STATUSES, 0)
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
        """submitting (a command is still adding jobs: the record grows); running; unknown (recorded jobs nobody
        can answer for); cancelled; incomplete (jobs of the plan never submitted: resume); failed; or succeeded."""
        if self.submitting:
            return "submitting"
        if self.active:
            return "running"
        if self.unknown:
            return "unknown"
        if self.supervised is not None:
            # Between two stages nothing is active while the supervisor submits the next one: still running.
            return self.supervised.state if self.supervised.over else "running"
        if self.cancelled:
            return "cancelled"
        if self.missing:
            return "incomplete"
        if any(self.outstanding.values()):
            return "failed"
        return "succeeded"

    @property
    def finished(self) -> bool:
        return self.state not in ("running", "submitting")


def reason_text(status_reason: str | None, container: Mapping[str, Any] | None) -> str:
    """One line naming why a job failed: AWS's statusReason plus the container's exit code or reason."""
    container = container or {}
    reason = status_reason or "unknown reason"
    extra = container.get("reason")
    if container.get("exitCode") is not None:
        # ECS names an out-of-memory kill only in the container's reason (exit code 137): keep it in the line.
        if extra and str(extra).startswith(OOM_REASON) and extra != reason:
            return f"{reason}: {extra} (exit code {container['exitCode']})"
        return f"{reason} (exit code {container['exitCode']})"
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
    if row.kind == names.RETRY or row.array_size >= 2:
        # A retry, or an array of a run recovered on a subset of items: children told their indices.
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
        if names.parse_name(row.job_name).retry_barrier:
            # A retry's barrier does no work: it fails only with what it waits for, which is retried (and
            # rewired) itself. Counting it would leave the run failed forever once a later round succeeds.
            continue
        key = key_of(row)
        current = bad.setdefault(key, set())
        current.difference_update(coverage(row, view.job(row)))
        current.update(failed.get(row.job_id, set()))
    return bad


def failed_children(
    batch: Batch, row: Row, job: Mapping[str, Any], counts: Mapping[str, int]
) -> tuple[set[int], list[FailureGroup], list[ChildOutcome]]:
    """Global indices of a job's failed children, their reasons, and the children as ledger outcomes, with the
    fewest ListJobs calls (none for a job answered from the ledger: its failed children are recorded there)."""
    if not counts.get("FAILED"):
        return set(), [], []
    if row.array_size < 2:
        reason = reason_text(job.get("statusReason"), job.get("container"))
        group = FailureGroup(row.stage, row.algorithm, row.job_name, row.job_id, reason, 1, sample_job_id=row.job_id)
        # A compact retry of one index is a plain job standing for that index (not PLAIN): the next round
        # must find the index itself to retry it.
        return set(coverage(row, job)), [group], []
    cover = coverage(row, job)
    whole = counts["FAILED"] == row.array_size
    children: Iterable[Mapping[str, Any]]
    if job.get(FROM_LEDGER):
        children = job.get("failedChildren") or []
    else:
        children = batch.list_jobs(array_job_id=row.job_id, status="FAILED")
    if whole:
        # Every child failed (typically "Dependent Job failed"): one page names the reason, all indices are known.
        children = itertools.islice(children, REASON_SAMPLE)
    reasons: dict[str, list[int]] = {}
    samples: dict[str, str] = {}
    observed: list[ChildOutcome] = []
    for child in children:
        index = (child.get("arrayProperties") or {}).get("index")
        if index is None or not 0 <= int(index) < len(cover):
            continue
        reason = reason_text(child.get("statusReason"), child.get("container"))
        reasons.setdefault(reason, []).append(cover[int(index)])
        samples.setdefault(reason, str(child.get("jobId") or f"{row.job_id}:{index}"))
        observed.append(child_outcome(child, cover[int(index)]))
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
            # A job answered from the ledger has no child AWS can still describe.
            "" if job.get(FROM_LEDGER) else samples[reason],
        )
        for reason, indices in reasons.items()
    ]
    return failed, groups, observed


def collect_status(batch: Batch, view: RunView, plan: Plan | None = None, *, ledger: Ledger | None = None) -> RunStatus:
    """Counts per stage and module, failure reasons, and what is left to do, for one poll of the run.

    With ``ledger``: what AWS said is recorded there, and jobs AWS no longer describes are answered from it."""
    describe(batch, view)
    outcomes: dict[str, JobOutcome] = ledger.outcomes(view.run_id) if ledger is not None else {}
    modules: dict[tuple[str, str], ModuleCounts] = {}
    stage_order = list(plan.stages) if plan else []
    failures: list[tuple[Row, FailureGroup]] = []
    failed: dict[str, set[int]] = {}
    observed_children: dict[str, list[ChildOutcome]] = {}
    from_ledger: list[str] = []
    unknown: list[str] = []
    for row in view.rows:
        job = view.job(row)
        if not job and row.job_id in outcomes and outcomes[row.job_id].final:
            # Only a final outcome stands in: a job last seen running and now forgotten is unknown, not running.
            job = view.jobs[row.job_id] = _ledger_job(outcomes[row.job_id])
        if not job:
            unknown.append(row.job_name)  # recorded, but neither AWS nor the ledger can say what became of it
            continue
        if job.get(FROM_LEDGER):
            from_ledger.append(row.job_name)
        if row.stage not in stage_order:
            stage_order.append(row.stage)
        entry = modules.setdefault((row.stage, row.algorithm), ModuleCounts(row.stage, row.algorithm))
        entry.jobs += 1
        counts = child_counts(job, row)
        for status, n in counts.items():
            entry.counts[status] = entry.counts.get(status, 0) + n
        indices, groups, children = failed_children(batch, row, job, counts)
        failed[row.job_id] = indices
        failures.extend((row, g) for g in groups)
        observed_children[row.job_id] = children
    header = None
    cancelled = False
    supervised: SupervisorState | None = None
    if ledger is not None:
        ledger.observe(view.run_id, outcomes_for(view.rows, view.jobs, observed_children))
        header = ledger.header(view.run_id)
        # A cancel counts until something submitted into the run again (resume or retry-failed).
        last = [e.kind for e in ledger.events(view.run_id) if e.kind in ("cancelled", "resumed", "retried")]
        cancelled = bool(last) and last[-1] == "cancelled"
        supervised = read_state(lambda name: ledger.read(view.run_id, name))
    recorded = {names.plan_name(r.job_name) for r in view.rows}
    # A supervised run's jobs are the supervisor's pieces (sizes from items, lost reaches left out), not the plan's.
    missing = [s.name for s in plan.submissions if s.name not in recorded] if plan and supervised is None else []
    order = {stage: i for i, stage in enumerate(stage_order)}
    # Modules in the config's order (the record's order depends on which concurrent submission landed first).
    module_order = {(s.stage, s.module): i for i, s in enumerate(plan.submissions)} if plan else {}
    source = view.source + ("+ledger" if from_ledger else "")
    created = [int(j["createdAt"]) for j in view.jobs.values() if j.get("createdAt")]
    stopped = [int(j["stoppedAt"]) for j in view.jobs.values() if j.get("stoppedAt")]
    started_at = datetime.fromisoformat(header.started_at) if header is not None else _from_ms(min(created, default=0))
    remaining = outstanding(view, failed)
    # After retry-failed, a failed child whose index a later generation ran again no longer counts as FAILED: its
    # later attempt (a child of the retry job) stands for it.
    for row in view.rows:
        counted = modules.get((row.stage, row.algorithm))
        if counted is not None:
            counted.superseded += len(failed.get(row.job_id, ()))
    states = _failure_states(failures, failed)
    for entry in modules.values():
        still = sum(len(v) for k, v in remaining.items() if k[:2] == (entry.stage, entry.module))
        entry.superseded = max(entry.superseded - still, 0)
        entry.counts[FAILED] = max(entry.counts[FAILED] - entry.superseded, 0)
        # Of the children whose latest attempt failed, those that never ran and those we stopped are their own
        # states (children whose reason no listing named stay FAILED).
        latest = [
            states.get((k, i), FAILED)
            for k, indices in remaining.items()
            if k[:2] == (entry.stage, entry.module)
            for i in indices
        ]
        for state in (BLOCKED, CANCELLED):
            moved = min(latest.count(state), entry.counts[FAILED])
            entry.counts[FAILED] -= moved
            entry.counts[state] = entry.counts.get(state, 0) + moved
    return RunStatus(
        run_id=view.run_id,
        source=source,
        stages=stage_order,
        modules=sorted(
            modules.values(),
            key=lambda m: (order.get(m.stage, len(order)), module_order.get((m.stage, m.module), len(module_order))),
        ),
        # The same run reads back the same whether it came from the CSV or the API, in whatever order AWS lists
        # children: stage order, then job name, then reason.
        failures=sorted(
            _current(failures, remaining), key=lambda f: (order.get(f.stage, len(order)), f.job_name, f.reason)
        ),
        outstanding=remaining,
        missing=missing,
        duplicates=view.duplicates,
        from_ledger=from_ledger,
        unknown=unknown,
        cancelled=cancelled,
        header=header,
        started_at=started_at,
        stopped_at=_from_ms(max(stopped, default=0)),
        supervised=supervised,
        reclaims=sum(g.count for _, g in failures if attempts.classify_child(g.reason) == attempts.RECLAIMED),
    )


def _failure_states(
    failures: list[tuple[Row, FailureGroup]], failed: Mapping[str, set[int]]
) -> dict[tuple[Key, int], str]:
    """(logical job, global index) -> FAILED, BLOCKED or CANCELLED, as its latest listed attempt failed."""
    states: dict[tuple[Key, int], str] = {}
    for row, group in sorted(failures, key=lambda f: names.generation(f[0].job_name)):
        # A plain job's group names no index: it stands for what the job covers (PLAIN, or a compact retry's one).
        for index in group.indices or tuple(failed.get(row.job_id, ())):
            states[(key_of(row), index)] = group.state
    return states


def _from_ms(value: int) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


def _current(failures: list[tuple[Row, FailureGroup]], remaining: Mapping[Key, set[int]]) -> list[FailureGroup]:
    """Failure groups narrowed to the indices that still count (a later retry generation supersedes the rest)."""
    current = []
    for row, group in failures:
        still = remaining.get(key_of(row), set())
        if not group.indices:
            if PLAIN in still:
                current.append(group)
            continue
        indices = tuple(i for i in group.indices if i in still)
        if indices:
            current.append(replace(group, indices=indices, count=len(indices)))
    return current


def _ledger_job(outcome: JobOutcome) -> dict[str, Any]:
    """The job as last observed, with its recorded failed children in ListJobs' shape."""
    job = job_from_outcome(outcome)
    job["failedChildren"] = [
        {
            "arrayProperties": {"index": c.array_index},
            "statusReason": c.reason,
            "container": {"exitCode": c.exit_code} if c.exit_code is not None else {},
        }
        for c in outcome.failed
        if c.array_index is not None
    ]
    return job


def is_dependency_failure(group: FailureGroup) -> bool:
    return group.state == BLOCKED


def status_to_dict(
    status: RunStatus, calls: Mapping[str, int] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """What ``status --format json`` prints (durations in seconds)."""
    end = status.stopped_at if status.finished and status.stopped_at else (now or datetime.now(UTC))
    # The header's start is this machine's clock and the end AWS's: a run whose jobs all ended before its record was
    # complete could come out a fraction of a second negative.
    elapsed = max((end - status.started_at).total_seconds(), 0.0) if status.started_at is not None else None
    return {
        "run_id": status.run_id,
        "source": status.source,
        "state": status.state,
        "started_at": status.started_at.isoformat() if status.started_at is not None else None,
        "elapsed_seconds": elapsed,
        "totals": status.totals(),
        "stages": [
            {
                "stage": stage,
                "counts": status.totals(stage),
                "modules": [
                    {
                        "module": m.module,
                        "jobs": m.jobs,
                        "children": m.children,
                        "counts": m.counts,
                        "superseded_failures": m.superseded,
                    }
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
                "state": f.state.lower(),
                "count": f.count,
                "indices": list(f.indices),
                **({"items": [[r.start, r.stop - 1] for r in f.items]} if f.items_per_child > 1 else {}),
                **({"log_tail": list(f.tail)} if f.tail else {}),
            }
            for f in status.failures
        ],
        "outstanding_failures": sum(len(v) for v in status.outstanding.values()),
        "from_ledger": status.from_ledger,
        "unknown": status.unknown,
        "missing": status.missing,
        "duplicates": [{"job_name": n, "extra_job_ids": ids} for n, ids in status.duplicates],
        "supervised": supervised_to_dict(status.supervised),
        **({"spot_reclaims": status.reclaims} if status.supervised is not None else {}),
        **({"submitting": status.submitting} if status.submitting else {}),
        **({"api_calls": dict(calls)} if calls is not None else {}),
    }


def supervised_to_dict(state: SupervisorState | None) -> dict[str, Any] | None:
    """A supervised run's mode, its supervisor's verdict and the stages it has not submitted yet (None: not
    supervised)."""
    if state is None:
        return None
    return {
        "mode": state.mode,
        "state": state.state,
        "reason": state.reason,
        "stages_not_submitted": [s.stage for s in state.stages if s.status == PENDING],
    }


def where_differs(header: RunHeader, region: str, endpoint: str | None, account: str | None) -> list[str]:
    """What this command asks that differs from where the run was recorded (empty: the same place). ``account``
    None: not known (not compared)."""
    differences = []
    if (endpoint or None) != (header.endpoint or None):
        differences.append(f"endpoint {endpoint or 'AWS'}")
    if region != header.region:
        differences.append(f"region {region}")
    if account is not None and header.account and account != header.account:
        differences.append(f"account {account}")
    return differences


LOG_LINES = 3  # last log lines shown under a failure's reason (status --log-lines, report --log-lines)
LOG_TAILS = 5  # failures per view whose log is read: one DescribeJobs and one GetLogEvents each, at most


def with_log_tails(
    batch: Batch,
    read_tail: Callable[[str, str, int], list[str]],
    status: RunStatus,
    *,
    lines: int = LOG_LINES,
    limit: int = LOG_TAILS,
    cache: dict[str, tuple[str, ...]] | None = None,
) -> RunStatus:
    """The status with the last ``lines`` log lines of one child of each of its first ``limit`` own failures
    (blocked and cancelled children never ran or were stopped: no log to read). ``read_tail(group, stream, n)``
    reads CloudWatch; ``cache`` (job id -> lines) keeps a watch from reading a finished child's log twice."""
    cache = cache if cache is not None else {}
    if lines <= 0:
        return status
    wanted = [f for f in status.failures if f.state == FAILED and f.sample_job_id][:limit]
    unknown = [f.sample_job_id for f in wanted if f.sample_job_id not in cache]
    for job in batch.describe_jobs(unknown) if unknown else []:
        stream = (job.get("container") or {}).get("logStreamName")
        attempts = job.get("attempts") or []
        if not stream and attempts:
            stream = (attempts[-1].get("container") or {}).get("logStreamName")
        cache[str(job["jobId"])] = tuple(read_tail(log_group(job), str(stream), lines)) if stream else ()
    tails = {id(f): cache.get(f.sample_job_id, ()) for f in wanted}
    return replace(status, failures=[replace(f, tail=tails.get(id(f), ())) for f in status.failures])


SLOWEST_SAMPLE = 1_000  # succeeded children read per array to find its slowest (ListJobs pages of 100)


def slowest_children(batch: Batch, row: Row, job: Mapping[str, Any], keep: int = 5) -> list[ChildOutcome]:
    """The longest-running succeeded children of a finished array (among the first SLOWEST_SAMPLE AWS lists),
    for the report's "where the time went"; nothing for plain jobs or jobs AWS no longer describes."""
    if row.array_size < 2 or job.get(FROM_LEDGER) or job.get("status") not in FINAL:
        return []
    cover = coverage(row, job)
    children = []
    for child in itertools.islice(batch.list_jobs(array_job_id=row.job_id, status="SUCCEEDED"), SLOWEST_SAMPLE):
        index = (child.get("arrayProperties") or {}).get("index")
        if index is None or not 0 <= int(index) < len(cover):
            continue
        outcome = child_outcome(child, cover[int(index)])
        if outcome.seconds is not None:
            children.append(outcome)
    children.sort(key=lambda c: (-(c.seconds or 0), c.index))
    return children[:keep]


STREAM_SAMPLE = 1_000  # failed children described per job to record their log streams (DescribeJobs: 100 per call)


def with_child_streams(batch: Batch, outcome: JobOutcome) -> JobOutcome:
    """The outcome with the log stream and attempts of each failed child that ran (ListJobs does not name streams;
    DescribeJobs of ``PARENT:INDEX`` does), so ``logs`` still finds them once AWS forgot the job."""
    wanted = [
        c
        for c in outcome.failed
        if c.log_stream is None and c.array_index is not None and not c.reason.startswith(DEPENDENCY_FAILED)
    ][:STREAM_SAMPLE]
    if not wanted:
        return outcome
    described = {str(j["jobId"]): j for j in batch.describe_jobs(f"{outcome.job_id}:{c.array_index}" for c in wanted)}
    children = []
    for child in outcome.failed:
        job = described.get(f"{outcome.job_id}:{child.array_index}")
        if job is not None:
            stream = (job.get("container") or {}).get("logStreamName")
            child = replace(child, log_stream=stream, attempts=len(job.get("attempts") or []) or child.attempts)
        children.append(child)
    return replace(outcome, failed=tuple(children))
