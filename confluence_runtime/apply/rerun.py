"""The retry-failed planner (pure): which failed indices of a run to resubmit, and how to rewire what waited."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from .. import names
from ..attempts import OOM_EXIT_CODE, OOM_REASON, Size, next_memory
from ..config import OomMemory
from ..planning.plan import Plan, fan_in, with_digest
from ..planning.shaping import Dependency, Submission, map_budget, map_chunks, size_requirements, told
from ..records.record import Row
from ..states import ACTIVE, QUEUED
from ..views.runview import PLAIN, RunView
from ..views.status import Key, RunStatus, coverage, key_of
from .cancel import active_children


@dataclass
class RerunPlan:
    generation: int
    plan: Plan  # the submissions of this retry (kind "retry"), in dependency order
    known: dict[str, str]  # names of existing jobs the new ones depend on -> ids
    cancel: list[Row]  # downstream jobs not started yet: cancelled before the new ones are submitted
    retried: dict[Key, list[int]] = field(default_factory=dict)  # compact retries: global indices per logical job
    rerun: list[str] = field(default_factory=list)  # plan names submitted again whole
    waiting: list[str] = field(default_factory=list)  # logical jobs left alone because children are still active

    @property
    def empty(self) -> bool:
        return not self.plan.submissions


def _key_name(key: Key) -> str:
    return f"{key[0]}.{key[1]}[{key[2]}]"


def plan_rerun(view: RunView, status: RunStatus, plan: Plan) -> RerunPlan:
    """What retry-failed submits and cancels, decided from one described view of the run (no AWS calls)."""
    gen = 1 + max((names.generation(r.job_name) for r in view.rows), default=0)
    by_key: dict[Key, list[Submission]] = {}
    for s in plan.submissions:
        by_key.setdefault((s.stage, s.module, s.job_index), []).append(s)
    key_of_name = {s.name: (s.stage, s.module, s.job_index) for s in plan.submissions}

    # The current job of each plan name (a rerun replaces it) and whether a logical job still has active parts.
    current: dict[str, Row] = {}
    retries_of: dict[Key, list[Row]] = {}  # compact retries of each logical job, oldest generation first
    active_keys: set[Key] = set()
    for row in sorted(view.rows, key=lambda r: names.generation(r.job_name)):
        job = view.job(row)
        stands_for = names.plan_name(row.job_name)
        if stands_for in key_of_name:
            current[stands_for] = row
        elif names.parse_name(row.job_name).compact_retry:
            retries_of.setdefault(key_of(row), []).append(row)
        if job.get("status") in ACTIVE or active_children(job):
            active_keys.add(key_of(row))

    failed = {k: v for k, v in status.outstanding.items() if v}
    # A failed logical job that is still running, and everything downstream of it, waits for a later retry.
    blocked: set[Key] = {k for k in failed if k in active_keys}
    affected: set[Key] = set(failed)
    for s in plan.submissions:  # plan order is topological
        key = key_of_name[s.name]
        for d in s.depends_on:
            upstream = key_of_name[d.name]
            if upstream in blocked:
                blocked.add(key)
            if upstream in affected:
                affected.add(key)
    retry_keys = {k for k in affected if k not in blocked}

    result = RerunPlan(generation=gen, plan=plan, known={}, cancel=[])
    result.waiting = sorted(_key_name(k) for k in failed if k in blocked)
    new: dict[str, list[str]] = {}  # plan name -> names of the new submissions that stand for it
    created: list[Submission] = []
    waves: dict[str, int] = {}
    compact_done: set[Key] = set()

    def add(submission: Submission) -> None:
        wave = 1 + max((waves.get(d.name, -1) for d in submission.depends_on), default=-1)
        submission = replace(submission, wave=wave)
        waves[submission.name] = wave
        created.append(submission)

    def standing_for(plan_job: str) -> list[Row]:
        """The existing jobs a new job must wait for in place of ``plan_job`` (none: it is satisfied).

        An earlier round may have replaced the failed children of ``plan_job``'s current job by compact retries:
        that job stays FAILED forever, so waiting on it would fail the new job at once, every round. Its failed
        indices are then done once the later retries covering them are: wait only for those still active.
        """
        row = current.get(plan_job)
        if row is None:
            return []
        job = view.job(row)
        if job.get("status") == "SUCCEEDED":
            return []  # already satisfied: no need to spend one of the 20 dependsOn slots
        if job.get("status") != "FAILED" or active_children(job):
            return [row]  # still running: if it fails, the new job fails too and a later round retries both
        cover = set(coverage(row, job))
        later = [
            r
            for r in retries_of.get(key_of(row), [])
            if names.generation(r.job_name) > names.generation(row.job_name) and cover & set(coverage(r, view.job(r)))
        ]
        if not later or failed.get(key_of(row), set()) & cover:
            return [row]  # never replaced (or still failed): waiting on it fails the new job, as it must
        return [r for r in later if view.job(r).get("status") in ACTIVE or active_children(view.job(r))]

    def rewired(sources: list[Submission], keep_type: bool) -> tuple[Dependency, ...]:
        deps: dict[str, Dependency] = {}
        for source in sources:
            for d in source.depends_on:
                if d.name in new:
                    # N_TO_N survives only rerun-to-rerun: same size; a compact retry has other indices.
                    same_shape = (
                        keep_type and len(new[d.name]) == 1 and names.parse_name(new[d.name][0]).kind == "rerun"
                    )
                    for name in new[d.name]:
                        deps.setdefault(name, Dependency(name, d.type if same_shape else None))
                    continue
                for row in standing_for(d.name):
                    result.known[row.job_name] = row.job_id
                    deps.setdefault(row.job_name, Dependency(row.job_name))
        handles = fan_in(list(deps), lambda group: barrier(sources[0], group))
        return tuple(deps.get(h, Dependency(h)) for h in handles)

    def barrier(source: Submission, group: list[str]) -> str:
        number = sum(1 for s in created if s.module == names.BARRIER and s.stage == source.stage)
        name = names.retry_barrier_name(plan.run_id, source.stage, gen, number)
        tags = names.job_tags(plan.prefix, plan.run_id, source.stage, names.BARRIER, name, generation=gen)
        add(
            Submission(
                name=name,
                stage=source.stage,
                module=names.BARRIER,
                kind=names.RETRY,
                job_index=10_000 + number,
                job_queue=source.job_queue,
                job_definition=names.barrier_definition(plan.prefix, names.platform(source.compute)),
                compute=source.compute,
                depends_on=tuple(Dependency(n) for n in group),
                tags=tuple(tags.items()),
            )
        )
        return name

    for s in plan.submissions:
        key = key_of_name[s.name]
        if key not in retry_keys:
            continue
        standing = current.get(s.name)
        bad = failed.get(key, set())
        cover = set(coverage(standing, view.job(standing))) if standing is not None else set()
        whole = standing is not None and cover and cover <= bad
        queued = standing is not None and view.job(standing).get("status") in QUEUED
        if whole or queued:
            if queued and standing is not None:
                result.cancel.append(standing)
            name = names.rerun_name(s.name, gen)
            add(
                replace(
                    s,
                    name=name,
                    kind=names.RETRY,
                    depends_on=rewired([s], keep_type=True),
                    tags=_tags(plan, s, name, gen),
                )
            )
            new[s.name] = [name]
            result.rerun.append(s.name)
            continue
        if key in compact_done:
            continue
        partial = sorted(bad - set().union(*(_cover_of(current, view, p) for p in by_key[key] if p.name in new)))
        partial = [i for i in partial if i != PLAIN]
        if not partial:
            continue
        compact_done.add(key)
        shards = by_key[key]
        compact = compact_retries(plan, shards, partial, gen, rewired(shards, keep_type=False), add)
        result.retried[key] = partial
        for shard in shards:
            if shard.name not in new:
                new[shard.name] = compact

    result.plan = with_digest(
        Plan(
            run_id=plan.run_id,
            prefix=plan.prefix,
            source=plan.source,
            submissions=tuple(created),
            stages=plan.stages,
        )
    )
    return result


def _cover_of(current: dict[str, Row], view: RunView, submission: Submission) -> set[int]:
    row = current.get(submission.name)
    return set(coverage(row, view.job(row))) if row is not None else set()


def _tags(plan: Plan, source: Submission, name: str, gen: int) -> tuple[tuple[str, str], ...]:
    """The plan job's tags (the config's own included), renamed, marked as retry-failed's generation ``gen``."""
    tags = names.job_tags(
        plan.prefix, plan.run_id, source.stage, source.module, name, extra=source.tags, generation=gen
    )
    return tuple(tags.items())


def compact_retries(
    plan: Plan,
    shards: list[Submission],
    indices: list[int],
    gen: int,
    depends_on: tuple[Dependency, ...],
    add: Callable[[Submission], None],
) -> list[str]:
    """One array (or plain job) per chunk of failed global indices, each child told its index."""
    first = shards[0]
    # Children of a compact retry are not contiguous: they find their child (and items) through the index map.
    environment = dict(first.environment)
    created_names = []
    for c, chunk in enumerate(map_chunks(indices, map_budget(first.command, environment))):
        name = names.retry_name(plan.run_id, first.stage, first.module, first.job_index, gen, c)
        env = told(environment, chunk)
        add(
            replace(
                first,
                name=name,
                kind=names.RETRY,
                array_size=len(chunk) if len(chunk) >= 2 else 0,
                array_offset=0,
                shard=0,
                shards=1,
                environment=tuple(env.items()),
                depends_on=depends_on,
                tags=_tags(plan, first, name, gen),
            )
        )
        created_names.append(name)
    return created_names


# --------------------------------------------------------------------------------------------------------------
# retry-failed --memory: more memory for the modules whose children ran out of it


def out_of_memory(group_reason: str) -> bool:
    """A failure ECS reports as an out-of-memory kill (its reason, or exit code 137 with no other word)."""
    return OOM_REASON in group_reason or group_reason.endswith(f"(exit code {OOM_EXIT_CODE})")


def with_more_memory(
    rerun: RerunPlan,
    status: RunStatus,
    sizes: Mapping[tuple[str, str], tuple[float, int, bool]],
    rule: OomMemory,
) -> tuple[RerunPlan, list[str]]:
    """The retry with more memory for each module that had out-of-memory children: ``rule`` applied to the
    module's size ((stage, module) -> (vCPUs, MiB, on Fargate)), on Fargate the next size its table offers.
    Returns the changed plan and one line per module; a module already at Fargate's largest is named, unchanged."""
    modules = {(f.stage, f.module) for f in status.failures if out_of_memory(f.reason)}
    changed: dict[tuple[str, str], Size | None] = {}
    lines = []
    for key in sorted(modules):
        if key not in sizes:
            continue
        vcpus, memory, fargate = sizes[key]
        bigger = next_memory(Size(vcpus, memory), rule, fargate=fargate)
        changed[key] = bigger
        if bigger is None:
            lines.append(f"{key[0]}.{key[1]}: ran out of memory at {memory} MiB; no larger size to retry with ({rule})")
        else:
            lines.append(
                f"{key[0]}.{key[1]}: ran out of memory; retried with {bigger.memory} MiB and {bigger.vcpus:g} vCPUs "
                f"(was {memory} MiB, {vcpus:g} vCPUs; --memory {rule})"
            )
    submissions = []
    for s in rerun.plan.submissions:
        bigger = changed.get((s.stage, s.module))
        if bigger is not None and s.kind != names.BARRIER:
            s = replace(s, resource_requirements=size_requirements(bigger.vcpus, bigger.memory))
        submissions.append(s)
    plan = with_digest(replace(rerun.plan, submissions=tuple(submissions)))
    return replace(rerun, plan=plan), lines
