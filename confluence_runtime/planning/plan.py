"""Pure planning: a :class:`~confluence_runtime.config.Config` becomes the complete list of AWS Batch submissions."""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .. import names
from ..config import NAME_RE, Config, Module, Stage
from ..errors import ConfigError, PlanError, Problem
from .shaping import (
    MAX_OVERRIDE_CHARS,
    Dependency,
    Shape,
    Submission,
    contract_environment,
    map_budget,
    module_submission,
    shapes,
)

MAX_DEPENDENCIES = 20
SUBMIT_RATE_LIMIT = 50  # SubmitJob requests per second per account
MAX_PAYLOAD_BYTES = 30 * 1024
MAX_TAGS = 50
MAX_NAME = 128
RUN_ID_MAX = 40
# A job id as AWS returns it (a UUID, plus ":index" for children); used to size requests before submission.
_PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Plan:
    run_id: str
    prefix: str
    source: str
    submissions: tuple[Submission, ...]
    stages: tuple[str, ...]
    digest: str = field(default="")

    @property
    def submit_calls(self) -> int:
        return len(self.submissions)

    @property
    def barriers(self) -> tuple[Submission, ...]:
        return tuple(s for s in self.submissions if s.kind == names.BARRIER)

    @property
    def children(self) -> int:
        """How many containers the run starts (array children count one each; barriers included)."""
        return sum(max(s.array_size, 1) for s in self.submissions)

    @property
    def minimum_submit_seconds(self) -> float:
        return self.submit_calls / SUBMIT_RATE_LIMIT

    def waves(self) -> list[list[Submission]]:
        """Submissions grouped so that each group depends only on earlier groups: each group can go concurrently."""
        grouped: dict[int, list[Submission]] = {}
        for submission in self.submissions:
            grouped.setdefault(submission.wave, []).append(submission)
        return [grouped[k] for k in sorted(grouped)]

    def by_name(self) -> dict[str, Submission]:
        return {s.name: s for s in self.submissions}

    def for_stage(self, stage: str) -> list[Submission]:
        return [s for s in self.submissions if s.stage == stage]


# --------------------------------------------------------------------------------------------------------------


def new_run_id(now: datetime | None = None, token: str | None = None) -> str:
    """A sortable, unique run id that is also a valid start of an AWS job name: ``20261125T154320-3f9a``."""
    now = now or datetime.now(UTC)
    token = token or secrets.token_hex(2)
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{token}"


def check_run_id(run_id: str) -> None:
    if len(run_id) > RUN_ID_MAX or not NAME_RE.fullmatch(run_id):
        raise PlanError(
            f"run id {run_id!r} is not usable in job names: at most {RUN_ID_MAX} characters, a letter or digit, "
            "then letters, digits, '-' or '_'"
        )


def fan_in(handles: list[str], make_barrier: Callable[[list[str]], str]) -> list[str]:
    """Reduce ``handles`` to at most 20 with the fewest barriers, each waiting on at most 20 handles.

    Every barrier turns up to 20 handles into one, a reduction of at most 19, so ``ceil((n - 20) / 19)`` barriers
    are needed and this greedy queue reaches that bound: it takes 20 at a time from the front (only as many as
    needed for the last one) and appends the barrier at the back, which also keeps the tree shallow.
    """
    queue = list(handles)
    while len(queue) > MAX_DEPENDENCIES:
        take = min(MAX_DEPENDENCIES, len(queue) - MAX_DEPENDENCIES + 1)
        group, queue = queue[:take], queue[take:]
        queue.append(make_barrier(group))
    return queue


def barrier_count(parents: int) -> int:
    return 0 if parents <= MAX_DEPENDENCIES else math.ceil((parents - MAX_DEPENDENCIES) / (MAX_DEPENDENCIES - 1))


class _Builder:
    def __init__(
        self,
        config: Config,
        run_id: str,
        children: Mapping[tuple[str, str], Sequence[int]] | None = None,
        origin_run_id: str | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.children = dict(children or {})
        self.origin_run_id = origin_run_id
        self.submissions: list[Submission] = []
        self.waves: dict[str, int] = {}
        self.barriers_per_stage: dict[str, int] = {}

    def add(self, submission: Submission) -> Submission:
        wave = 1 + max((self.waves[d.name] for d in submission.depends_on), default=-1)
        submission = replace(submission, wave=wave)
        self.waves[submission.name] = wave
        self.submissions.append(submission)
        return submission

    def module_jobs(self, module: Module, upstream: Callable[[int, int], tuple[Dependency, ...]]) -> list[Submission]:
        # Packing first (items -> children), then sharding of the children past 10,000; one child is a plain job.
        shards = shapes(module.children) if module.children >= 2 else [Shape(0, 1, plain=not module.is_array)]
        chosen = self.children.get((module.stage, module.name))
        if chosen is not None and module.is_array:
            keep = set(chosen)
            skip = [c for c in range(module.children) if c not in keep]
            shards = shapes(module.children, skip, budget=map_budget(module.arguments, self._environment(module)))
        created = []
        for i in range(module.num_jobs):
            for k, shape in enumerate(shards):
                name = names.job_name(self.run_id, module.stage, module.name, i, k if len(shards) > 1 else None)
                submission = module_submission(
                    module,
                    run_id=self.run_id,
                    prefix=self.config.prefix,
                    name=name,
                    job_index=i,
                    shape=shape,
                    item_count=module.array_size if module.is_array else 0,
                    tell=chosen is not None,
                    origin_run_id=self.origin_run_id,
                    depends_on=upstream(k, shape.array_size),
                    shard=k,
                    shards=len(shards),
                )
                created.append(self.add(submission))
        return created

    def _environment(self, module: Module) -> dict[str, str]:
        return contract_environment(module, self.run_id, 0, Shape(0, 2), module.array_size)

    def barrier(self, stage: Stage, parents: list[str], dep_type: str | None, size: int, shard: int) -> str:
        number = self.barriers_per_stage.get(stage.name, 0)
        self.barriers_per_stage[stage.name] = number + 1
        name = names.barrier_name(self.run_id, stage.name, number)
        tags = names.job_tags(self.config.prefix, self.run_id, stage.name, names.BARRIER, name)
        self.add(
            Submission(
                name=name,
                stage=stage.name,
                module=names.BARRIER,
                kind=names.BARRIER,
                job_index=number,
                # The first module's queue: the barrier needs a definition of that queue's platform.
                job_queue=stage.modules[0].job_queue,
                job_definition=self.config.barrier_definition_for(stage.modules[0].compute),
                compute=stage.modules[0].compute,
                array_size=size,
                shard=shard,
                depends_on=tuple(Dependency(p, dep_type) for p in parents),
                tags=tuple(tags.items()),
            )
        )
        return name


def build_plan(
    config: Config,
    run_id: str,
    *,
    children: Mapping[tuple[str, str], Sequence[int]] | None = None,
    origin_run_id: str | None = None,
) -> Plan:
    """Every submission of a run, in an order where each one's dependencies come before it. ``children``: for
    the array modules named (stage, module), only these global children (a run recovered on a subset of items:
    scattered children go as index maps, told their indices as retry-failed's are). ``origin_run_id``: the run a
    recovered run came from (``{origin_run_id}`` in arguments and environment values)."""
    check_run_id(run_id)
    builder = _Builder(config, run_id, children, origin_run_id)
    previous: list[Submission] = []
    for stage in config.stages:
        upstream = _upstream(builder, stage, previous)
        current: list[Submission] = []
        for module in stage.modules:
            current.extend(builder.module_jobs(module, upstream))
        previous = current
    job_names = [s.name for s in builder.submissions]
    if len(set(job_names)) != len(job_names):
        clash = sorted({n for n in job_names if job_names.count(n) > 1})[0]
        raise PlanError(
            f"two jobs would be named {clash!r}: stage and module names joined by '_' collide; rename one of them"
        )
    plan = Plan(
        run_id=run_id,
        prefix=config.prefix,
        source=config.source,
        submissions=tuple(builder.submissions),
        stages=tuple(s.name for s in config.stages),
    )
    problems = check_limits(config, plan)
    if problems:
        raise ConfigError(problems)
    return with_digest(plan)


def _upstream(
    builder: _Builder, stage: Stage, previous: list[Submission]
) -> Callable[[int, int], tuple[Dependency, ...]]:
    """How a job of ``stage`` waits for the previous stage, inserting barriers once per stage (or per shard)."""
    if not previous:
        return lambda shard, size: ()
    if stage.dependency == "per_index":
        # Shard k of every array pairs with shard k of the previous stage's arrays (all have the same sharding).
        cache: dict[int, tuple[Dependency, ...]] = {}

        def per_shard(shard: int, size: int) -> tuple[Dependency, ...]:
            if shard not in cache:
                parents = [s.name for s in previous if s.shard == shard]
                handles = fan_in(parents, lambda group: builder.barrier(stage, group, "N_TO_N", size, shard))
                cache[shard] = tuple(Dependency(h, "N_TO_N") for h in handles)
            return cache[shard]

        return per_shard
    handles = fan_in([s.name for s in previous], lambda group: builder.barrier(stage, group, None, 0, 0))
    deps = tuple(Dependency(h) for h in handles)
    return lambda shard, size: deps


def check_limits(config: Config, plan: Plan) -> list[Problem]:
    """AWS limits only a finished request shows: name length, tag count, override and payload sizes."""
    modules = {(m.stage, m.name): m for m in config.modules}
    problems: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    fake_ids = {s.name: f"{_PLACEHOLDER_ID}" for s in plan.submissions}

    def add(submission: Submission, key: str, message: str) -> None:
        module = modules.get((submission.stage, submission.module))
        line = module.line if module else None
        path = f"stages.{submission.stage}.{submission.module}" + (f".{key}" if key else "")
        if (submission.stage, submission.module, key) not in seen:
            seen.add((submission.stage, submission.module, key))
            problems.append(Problem(config.source, line, path, message))

    for submission in plan.submissions:
        if len(submission.name) > MAX_NAME:
            add(
                submission,
                "",
                f"job name {submission.name!r} is {len(submission.name)} characters; AWS allows {MAX_NAME} "
                "(shorten the stage or module name)",
            )
        if len(submission.tags) > MAX_TAGS:
            add(submission, "tags", f"{len(submission.tags)} tags with the run's own; AWS allows {MAX_TAGS}")
        overrides = submission.container_overrides()
        size = len(json.dumps(overrides, separators=(",", ":")))
        if size > MAX_OVERRIDE_CHARS:
            add(
                submission,
                "arguments",
                f"container overrides (arguments and environment) are {size} characters; AWS allows "
                f"{MAX_OVERRIDE_CHARS}",
            )
        payload = len(json.dumps(submission.request(fake_ids), separators=(",", ":")).encode())
        if payload > MAX_PAYLOAD_BYTES:
            add(submission, "", f"the SubmitJob request is {payload} bytes; AWS allows {MAX_PAYLOAD_BYTES} (30 KiB)")
    return problems


def with_digest(plan: Plan) -> Plan:
    """The plan with its digest: a hash of every submission, so a resumed run can tell a changed config. The run
    id (in every job name, dependency, CONFLUENCE_RUN_ID and the run tag) is left out: every ``plan`` of one file
    shows the same digest, and runs of one file can be told to be of one config."""
    marker = names.run_name_prefix(plan.run_id)
    # {run_id} expanded inside an argument or an environment value (a per-run output path).
    inside = re.compile(rf"(?<![A-Za-z0-9]){re.escape(plan.run_id)}(?![A-Za-z0-9])")

    def without_run(value: Any) -> Any:
        if isinstance(value, str):
            return (
                "{run}"
                if value == plan.run_id
                else "{run}_" + value[len(marker) :]
                if value.startswith(marker)
                else inside.sub("{run}", value)
            )
        if isinstance(value, dict):
            return {k: without_run(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [without_run(v) for v in value]
        return value

    body = json.dumps(without_run([asdict(s) for s in plan.submissions]), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    return replace(plan, digest=digest)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data: what ``plan --format json`` prints."""
    return {
        "run_id": plan.run_id,
        "prefix": plan.prefix,
        "source": plan.source,
        "digest": plan.digest,
        "submit_calls": plan.submit_calls,
        "barriers": len(plan.barriers),
        "children": plan.children,
        "minimum_submit_seconds": plan.minimum_submit_seconds,
        "stages": list(plan.stages),
        "submissions": [
            {
                "name": s.name,
                "stage": s.stage,
                "module": s.module,
                "kind": s.kind,
                "job_index": s.job_index,
                "job_queue": s.job_queue,
                "job_definition": s.job_definition,
                "compute": s.compute,
                "array_size": s.array_size,
                "array_offset": s.array_offset,
                "shard": s.shard,
                "command": list(s.command),
                "environment": dict(s.environment),
                "depends_on": [{"name": d.name, **({"type": d.type} if d.type else {})} for d in s.depends_on],
                "tags": dict(s.tags),
                "wave": s.wave,
            }
            for s in plan.submissions
        ],
    }


def summarize(plan: Plan) -> list[dict[str, Any]]:
    """One row per stage and module (barriers as their own row): what ``plan`` shows a person."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for s in plan.submissions:
        row = rows.setdefault(
            (s.stage, s.module),
            {
                "stage": s.stage,
                "module": s.module,
                "kind": s.kind,
                "jobs": 0,
                "submissions": 0,
                "children": 0,
                "job_queue": s.job_queue,
                "job_definition": s.job_definition,
                "compute": s.compute,
                "depends_on": set(),
                "dependency_type": None,
            },
        )
        row["submissions"] += 1
        row["jobs"] = max(row["jobs"], s.job_index + 1) if s.kind == names.MODULE else row["submissions"]
        row["children"] += max(s.array_size, 1)
        for d in s.depends_on:
            row["depends_on"].add(d.name)
            row["dependency_type"] = d.type or row["dependency_type"]
    return list(rows.values())
