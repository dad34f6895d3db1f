"""Job shaping (pure): the one place that turns a module and the children to run into SubmitJob requests.

Contiguous children go as offset arrays (``CONFLUENCE_ARRAY_OFFSET``), sharded into near-equal arrays of at most
10,000; scattered children go as compact arrays whose children read their index from ``CONFLUENCE_INDEX_MAP``
(runs of three or more written ``FIRST-LAST``: ``0-211,213-4097``), chunked so the overrides stay within AWS's
8,192 characters. The plan, the supervisor and retry-failed all call
this module, and :func:`module_to_dict` / :func:`module_from_dict` are the one codec of a :class:`Module`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import names
from ..config import DEFAULT_SPOT_RECLAIMS, MAX_ARRAY_SIZE, ExitRule, Module, OomMemory, parse_budget, parse_oom_memory

MAX_OVERRIDE_CHARS = 8192
PLAIN = -1  # the "index" of a plain (non-array) job
# Kept free beside an index map: the overrides are measured as JSON here, AWS may count them a little differently.
OVERRIDE_MARGIN = 512


@dataclass(frozen=True)
class Dependency:
    """An edge to another submission of the same plan, by job name (its id is known only after submission)."""

    name: str
    type: str | None = None  # None = wait for the whole job or array; "N_TO_N" = child i waits for child i


@dataclass(frozen=True)
class Submission:
    """One SubmitJob call: a plain job, an array job (or one shard of a large array), or a fan-in barrier."""

    name: str
    stage: str
    module: str
    kind: str  # names.MODULE, names.BARRIER, or names.RETRY (retry-failed's submissions)
    job_index: int
    job_queue: str
    job_definition: str
    array_size: int = 0  # this submission's size; 0 = a plain job
    array_offset: int = 0
    shard: int = 0
    shards: int = 1
    command: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    timeout: int | None = None
    # containerOverrides.resourceRequirements (retry-failed --memory: more memory, and vCPUs Fargate pairs with it)
    resource_requirements: tuple[tuple[str, str], ...] = ()
    retry_attempts: int = 1
    retry_on: tuple[ExitRule, ...] = ()
    wave: int = 0
    compute: str = names.DEFAULT_COMPUTE  # the module's compute kind: its queue and definition serve that platform
    # consumableResourcePropertiesOverride: the venue's consumable resource -> units each job holds, from the yaml
    # as it is now (the job definition has what the last deploy had: a changed ``consumes`` applies without one)
    consumes: tuple[tuple[str, int], ...] = ()

    @property
    def containers(self) -> int:
        return max(self.array_size, 1)

    @property
    def items_per_child(self) -> int:
        """Items each child handles (packing), read from the job's own environment: the contract is the truth."""
        return int(dict(self.environment).get(names.ENV_ITEM_COUNT) or 1)

    @property
    def item_count(self) -> int:
        """Items this submission's children handle together (its last child may be short)."""
        per_child = self.items_per_child
        if per_child == 1:
            return self.containers
        env = dict(self.environment)
        first = int(env.get(names.ENV_ITEM_START) or 0)
        return min(self.containers * per_child, int(env.get(names.ENV_ARRAY_SIZE) or 0) - first)

    def request(self, job_ids: Mapping[str, str]) -> dict[str, Any]:
        """The ``submit_job`` keyword arguments, with dependency names resolved to the given job ids."""
        request: dict[str, Any] = {
            "jobName": self.name,
            "jobQueue": self.job_queue,
            "jobDefinition": self.job_definition,
        }
        if self.array_size >= 2:
            request["arrayProperties"] = {"size": self.array_size}
        if self.depends_on:
            request["dependsOn"] = [
                {"jobId": job_ids[d.name], **({"type": d.type} if d.type else {})} for d in self.depends_on
            ]
        overrides = self.container_overrides()
        if overrides:
            request["containerOverrides"] = overrides
        strategy: dict[str, Any] = {"attempts": self.retry_attempts}
        if self.retry_on:
            strategy["evaluateOnExit"] = [rule.to_aws() for rule in self.retry_on]
        request["retryStrategy"] = strategy
        if self.timeout:
            request["timeout"] = {"attemptDurationSeconds": self.timeout}
        if self.consumes:
            request["consumableResourcePropertiesOverride"] = {
                "consumableResourceList": [{"consumableResource": r, "quantity": q} for r, q in self.consumes]
            }
        request["tags"] = dict(self.tags)
        request["propagateTags"] = True
        return request

    def container_overrides(self) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        if self.command:
            overrides["command"] = list(self.command)
        if self.environment:
            overrides["environment"] = [{"name": k, "value": v} for k, v in self.environment]
        if self.resource_requirements:
            overrides["resourceRequirements"] = [{"type": t, "value": v} for t, v in self.resource_requirements]
        return overrides


def override_chars(command: Sequence[str], environment: Mapping[str, str]) -> int:
    """The size of container overrides as AWS receives them (compact JSON)."""
    overrides = {
        "command": list(command),
        "environment": [{"name": k, "value": v} for k, v in environment.items()],
    }
    return len(json.dumps(overrides, separators=(",", ":")))


# --------------------------------------------------------------------------------------------------------------
# Shapes: which children one SubmitJob runs


@dataclass(frozen=True)
class Shape:
    """The children of one submission: a plain job, ``count`` children from ``offset``, or an index map (child i
    works on ``index_map[i]``; one index: a plain job told its index)."""

    offset: int = 0
    count: int = 1
    index_map: Sequence[int] = ()  # a tuple, or a names.IndexMap read back from a supervisor's document
    plain: bool = False  # a module that is not an array at all (its one child is index PLAIN)

    @property
    def indices(self) -> tuple[int, ...]:
        """The module's (global) child indices this submission works on."""
        if self.plain:
            return (PLAIN,)
        if self.index_map:
            return tuple(self.index_map)
        return tuple(range(self.offset, self.offset + self.count))

    @property
    def array_size(self) -> int:
        """AWS's ``arrayProperties.size`` (0: a plain job)."""
        return self.count if self.count >= 2 and not self.plain else 0


def shard_sizes(array_size: int) -> list[int]:
    """Split an array into the fewest near-equal shards of at most 10,000 (equal sizes keep shards >= 2)."""
    if array_size <= MAX_ARRAY_SIZE:
        return [array_size]
    count = math.ceil(array_size / MAX_ARRAY_SIZE)
    base, extra = divmod(array_size, count)
    return [base + 1 if k < extra else base for k in range(count)]


def offset_shapes(first: int, length: int) -> list[Shape]:
    """Children ``first .. first+length-1`` as offset arrays, sharded at 10,000."""
    shapes = []
    offset = first
    for count in shard_sizes(length) if length else []:
        shapes.append(Shape(offset, count))
        offset += count
    return shapes


def map_chunks(indices: Sequence[int], budget: int) -> list[tuple[int, ...]]:
    """Split ascending indices so each map, encoded (:func:`names.encode_index_map`: runs as ``FIRST-LAST``), has
    at most ``budget`` characters and 10,000 entries."""
    chunks: list[list[int]] = []
    length = 0  # the current chunk's encoded length
    first = last = -2  # its last run
    for index in indices:
        if chunks and chunks[-1] and index == last + 1:
            extra = len(names.index_token(first, index)) - len(names.index_token(first, last))
            extends = True
        else:
            extra = len(str(index)) + (1 if chunks and chunks[-1] else 0)
            extends = False
        if not chunks or length + extra > budget or len(chunks[-1]) >= MAX_ARRAY_SIZE:
            chunks.append([])
            length, extra, extends = 0, len(str(index)), False
        chunks[-1].append(index)
        length += extra
        if not extends:
            first = index
        last = index
    return [tuple(c) for c in chunks]


def map_budget(command: Sequence[str], environment: Mapping[str, str]) -> int:
    """Characters an index map may take beside ``command`` and a told child's ``environment`` (one override
    budget for every caller)."""
    told_env = {**told(environment, ()), names.ENV_INDEX_MAP: ""}
    return MAX_OVERRIDE_CHARS - OVERRIDE_MARGIN - override_chars(command, told_env)


def shapes(children: int, skip: Iterable[int] = (), *, budget: int = MAX_OVERRIDE_CHARS) -> list[Shape]:
    """Children ``0 .. children-1`` minus ``skip``: as offset arrays when nothing is skipped; otherwise the
    survivors in order as index maps of at most ``budget`` characters (:func:`map_budget`) and 10,000 children,
    runs encoded as ranges, so a few failures cost no more SubmitJob calls than the shards; a map that is one
    contiguous run goes as an offset array, a single child as a plain job told its index."""
    skipped = set(skip)
    if not skipped:
        return offset_shapes(0, children)
    return index_shapes([i for i in range(children) if i not in skipped], budget=budget)


def index_shapes(indices: Sequence[int], *, budget: int = MAX_OVERRIDE_CHARS) -> list[Shape]:
    """These ascending indices as few submissions as AWS's limits allow (see :func:`shapes`): a supervised retry
    round's children."""
    found: list[Shape] = []
    for chunk in map_chunks(list(indices), budget):
        if len(chunk) == 1:
            found.append(Shape(chunk[0], 1))
        elif chunk[-1] - chunk[0] == len(chunk) - 1:
            found.append(Shape(chunk[0], len(chunk)))
        else:
            found.append(Shape(0, len(chunk), chunk))
    return found


# --------------------------------------------------------------------------------------------------------------
# The module contract and the request


def told(environment: Mapping[str, str], indices: Sequence[int]) -> dict[str, str]:
    """A module job's environment for children told their indices (an index map, or one index): no offset or
    first item to contradict them; each child finds its items at index * ``CONFLUENCE_ITEM_COUNT``."""
    kept = {k: v for k, v in environment.items() if k not in (names.ENV_ARRAY_OFFSET, names.ENV_ITEM_START)}
    return {**kept, **names.index_environment(indices)} if indices else kept


def contract_environment(
    module: Module,
    run_id: str,
    job_index: int,
    shape: Shape,
    item_count: int,
    *,
    tell: bool = False,
    origin_run_id: str | None = None,
) -> dict[str, str]:
    """The container environment of one submission: the module's own variables (``{run_id}`` and
    ``{origin_run_id}`` expanded), then the ``CONFLUENCE_*`` contract. ``item_count`` is ``CONFLUENCE_ARRAY_SIZE``
    (0 for a plain module); ``tell``: a one-child shape is told its index as well (the supervisor's and
    retry-failed's one-child jobs)."""
    environment = names.job_environment(
        run_id,
        module.stage,
        module.name,
        job_index=job_index,
        num_jobs=module.num_jobs,
        array_offset=0 if shape.plain or shape.index_map else shape.offset,
        array_size=item_count,
        items_per_child=module.items_per_child,
        extra=[(k, names.expand_run(v, run_id, origin_run_id)) for k, v in module.environment],
    )
    if shape.index_map:
        return told(environment, shape.index_map)  # an IndexMap goes out as it was read, never decoded
    if tell and not shape.plain and shape.count == 1:
        return told(environment, shape.indices)
    return environment


def module_submission(
    module: Module,
    *,
    run_id: str,
    prefix: str,
    name: str,
    job_index: int,
    shape: Shape,
    item_count: int,
    tell: bool = False,
    depends_on: tuple[Dependency, ...] = (),
    shard: int = 0,
    shards: int = 1,
    tags: Mapping[str, str] | None = None,
    origin_run_id: str | None = None,
    job_queue: str | None = None,
    size: tuple[float, int] | None = None,
) -> Submission:
    """The SubmitJob request of one shape of a module job; ``tags`` are added to the identity tags;
    ``origin_run_id``: the run a recovered run came from (``{origin_run_id}``); ``job_queue``: another queue than
    the module's (a supervised run's On-Demand retry); ``size``: (vCPUs, MiB) for the containers instead of the job
    definition's (an out-of-memory retry), sent as ``containerOverrides.resourceRequirements``."""
    all_tags = names.job_tags(prefix, run_id, module.stage, module.name, name, extra=module.tags)
    all_tags.update(tags or {})
    environment = contract_environment(
        module, run_id, job_index, shape, item_count, tell=tell, origin_run_id=origin_run_id
    )
    return Submission(
        name=name,
        stage=module.stage,
        module=module.name,
        kind=names.MODULE,
        job_index=job_index,
        job_queue=job_queue or module.job_queue,
        job_definition=module.job_definition,
        array_size=shape.array_size,
        array_offset=0 if shape.index_map else shape.offset,
        shard=shard,
        shards=shards,
        command=tuple(names.expand_run(a, run_id, origin_run_id) for a in module.arguments),
        environment=tuple(environment.items()),
        depends_on=depends_on,
        tags=tuple(all_tags.items()),
        timeout=module.timeout,
        retry_attempts=module.retries or 1,
        retry_on=module.retry_on,
        compute=module.compute,
        resource_requirements=size_requirements(*size) if size is not None else (),
        consumes=tuple((names.consumable_resource(prefix, n), q) for n, q in module.consumes),
    )


def size_requirements(vcpus: float, memory: int) -> tuple[tuple[str, str], ...]:
    """``containerOverrides.resourceRequirements`` for a size: memory in MiB, vCPUs as AWS writes them."""
    return (("MEMORY", str(memory)), ("VCPU", f"{vcpus:g}"))


# --------------------------------------------------------------------------------------------------------------
# The codec of a Module (the supervisor's document keeps each module of the run in this form)


def module_to_dict(module: Module) -> dict[str, Any]:
    """What a supervisor needs of a module to submit it, as JSON-ready data (the document's stable keys)."""
    return {
        "stage": module.stage,
        "module": module.name,
        "job_queue": module.job_queue,
        "job_definition": module.job_definition,
        "num_jobs": module.num_jobs,
        "array_size": module.array_size,
        "items": module.items,
        "tolerated_failure": str(module.tolerated_failure),
        "command": list(module.arguments),
        "environment": [list(pair) for pair in module.environment],
        "tags": [list(pair) for pair in module.tags],
        "timeout": module.timeout,
        "retry_attempts": module.retries or 1,
        "retry_on": [list(map(list, rule.to_aws().items())) for rule in module.retry_on],
        "items_per_child": module.items_per_child,
        "compute": module.compute,
        "vcpus": module.vcpus,
        "memory": module.memory,
        "spot_reclaims_before_on_demand": module.spot_reclaims_before_on_demand,
        "oom_retry_memory": _oom_text(module.oom_retry_memory),
        "consumes": [list(pair) for pair in module.consumes],
    }


def _oom_text(rule: OomMemory | None) -> str | int | None:
    """An ``oom_retry_memory`` as the yaml writes it: "2x", or MiB as a number."""
    if rule is None:
        return None
    return rule.mib if rule.mib is not None else rule.text


def module_from_dict(data: Mapping[str, Any]) -> Module:
    rules = [dict(rule) for rule in data.get("retry_on") or ()]
    timeout = data.get("timeout")
    return Module(
        stage=str(data["stage"]),
        name=str(data["module"]),
        num_jobs=int(data.get("num_jobs", 1)),
        array_size=int(data.get("array_size", 0)),
        arguments=tuple(str(a) for a in data.get("command") or ()),
        job_queue=str(data["job_queue"]),
        job_definition=str(data["job_definition"]),
        timeout=int(timeout) if timeout is not None else None,
        retries=int(data.get("retry_attempts", 1)),
        retry_on=tuple(
            ExitRule(
                action=rule["action"],
                on_exit_code=rule.get("onExitCode"),
                on_status_reason=rule.get("onStatusReason"),
                on_reason=rule.get("onReason"),
            )
            for rule in rules
        ),
        environment=tuple((str(k), str(v)) for k, v in data.get("environment") or ()),
        tags=tuple((str(k), str(v)) for k, v in data.get("tags") or ()),
        items=data.get("items"),
        items_per_child=int(data.get("items_per_child", 1)),
        tolerated_failure=parse_budget(str(data.get("tolerated_failure", "0"))),
        # Documents written before these keys: the defaults a module had then.
        compute=str(data.get("compute") or names.DEFAULT_COMPUTE),
        vcpus=float(data["vcpus"]) if data.get("vcpus") is not None else None,
        memory=int(data["memory"]) if data.get("memory") is not None else None,
        spot_reclaims_before_on_demand=int(data.get("spot_reclaims_before_on_demand", DEFAULT_SPOT_RECLAIMS)),
        oom_retry_memory=parse_oom_memory(oom) if (oom := data.get("oom_retry_memory")) is not None else None,
        consumes=tuple((str(n), int(q)) for n, q in data.get("consumes") or ()),
    )
