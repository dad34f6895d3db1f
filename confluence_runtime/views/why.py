"""Why a job waits: RUNNABLE children that wait longer than a threshold, what holds them and what fixes it.

AWS has the answer in several places, each read here:

- the job's ``statusReason`` when its queue is blocked: ``MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - All
  compute environments have a maxVcpu setting that is smaller than the job requirements.`` (or
  ``MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT``, ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY``); the queue's
  ``jobStateTimeLimitActions`` then cancel it after ``runnable_timeout``;
- the queue (DISABLED: "new jobs can't be added to the queue, but jobs already in the queue can finish") and its
  compute environments (DISABLED: "the AWS Batch scheduler doesn't attempt to place jobs within the environment",
  ``maxvCpus``);
- the account's Fargate vCPU quotas (Service Quotas ``L-3032A538`` On-Demand, ``L-36FBB829`` Spot; 6 for a new
  account), against what the run holds;
- consumable resources: "the job will wait in RUNNABLE state until all the required resources become available";
- GetJobQueueSnapshot: "the first 100 RUNNABLE jobs" of the queue in dispatch order (the job's position).

``explain`` is pure; ``collect_waiting`` asks AWS (only when something waits past the threshold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..aws.api import Batch, fargate_vcpu_quotas
from ..config import Config
from ..errors import AwsError
from ..names import consumable_resource
from ..planning.estimate import QUOTA_ON_DEMAND, QUOTA_SPOT
from ..records.record import Row
from ..safetext import clean
from ..shellcmd import command, shell
from .runview import RunView
from .status import RunStatus

DEFAULT_THRESHOLD = 300.0  # seconds in RUNNABLE before status marks a child as waiting
BLOCKED_PREFIXES = ("MISCONFIGURATION:", "CAPACITY:")
QUEUE_DISABLED, ENVIRONMENTS_DISABLED, TOO_LARGE, RESOURCE, QUOTA, FULL, TURN = (
    "queue disabled",
    "compute environments disabled",
    "never fits",
    "consumable resource",
    "Fargate vCPU quota",
    "compute environments full",
    "waiting its turn",
)


@dataclass(frozen=True)
class Environment:
    name: str
    enabled: bool
    kind: str | None  # FARGATE, FARGATE_SPOT, EC2, SPOT; None: unmanaged
    max_vcpus: float | None


@dataclass(frozen=True)
class Resource:
    name: str  # as in confluence.yaml
    total: int
    in_use: int
    available: int


@dataclass(frozen=True)
class Waiting:
    """One module's RUNNABLE children (or plain job) waiting past the threshold, and why."""

    stage: str
    module: str
    job_name: str
    queue: str
    children: int  # waiting
    seconds: float  # the longest wait so far
    cause: str
    detail: str
    fix: str
    position: int | None = None  # 1-based, in the queue's dispatch order (GetJobQueueSnapshot), when known
    time_limit: str | None = None  # what the queue's time limit action will do
    status_reason: str = ""

    def lines(self) -> list[str]:
        where = f", position {self.position} in {self.queue}" if self.position else f" in {self.queue}"
        head = (
            f"{self.stage}.{self.module}: {self.children:,} waiting in RUNNABLE for {_duration(self.seconds)}{where}"
            f" -- {self.cause}: {self.detail}"
        )
        found = [head, f"  fix: {self.fix}"]
        if self.time_limit:
            found.append(f"  {self.time_limit}")
        return found


@dataclass(frozen=True)
class Facts:
    """What AWS says about a waiting job's surroundings (all optional: a view says what it could not read)."""

    vcpus: float
    memory: int
    queue_enabled: bool = True
    environments: tuple[Environment, ...] = ()
    time_limits: tuple[tuple[str, int, str], ...] = ()  # (reason, maxTimeSeconds, action)
    consumes: tuple[tuple[str, int], ...] = ()  # (resource, quantity) each child holds
    resources: Mapping[str, Resource] = field(default_factory=dict)
    running_vcpus: float = 0.0  # what this run holds in the queue's environments now
    quotas: Mapping[str, float | str] = field(default_factory=dict)  # Service Quotas code -> vCPUs (or why unread)
    # What a printed confluence-submit command needs to reach this yaml and venue (-c, --endpoint-url, ...), so that
    # it works when pasted as it is.
    command_args: tuple[str, ...] = ()


def explain(
    stage: str, module: str, status_reason: str, facts: Facts, *, config_key: str
) -> tuple[str, str, str, str | None]:
    """(cause, detail, fix, time limit) for a job of ``stage.module`` waiting in RUNNABLE."""
    reason = clean(status_reason)
    enabled = [e for e in facts.environments if e.enabled]
    limit = None
    if reason.startswith(BLOCKED_PREFIXES):
        code = reason.split(" - ", 1)[0]
        for limit_reason, seconds, action in facts.time_limits:
            if limit_reason == code:
                limit = (
                    f"the queue's time limit action will {action} it after {_duration(seconds)} in RUNNABLE "
                    f"(infrastructure.runnable_timeout, for {code})"
                )
        ceilings = [e.max_vcpus for e in enabled if e.max_vcpus is not None]
        most = max(ceilings, default=0)
        detail = f"AWS says {reason}"
        if code.endswith("COMPUTE_ENVIRONMENT_MAX_RESOURCE"):
            detail = f"it needs {facts.vcpus:g} vCPUs, the compute environments allow at most {most:g} ({reason})"
        return (
            TOO_LARGE,
            detail,
            f"lower {config_key}.vcpus/memory to fit, or raise infrastructure.max_vcpus (ec2_max_vcpus for EC2) "
            "and deploy; then retry-failed",
            limit,
        )
    if not facts.queue_enabled:
        return (
            QUEUE_DISABLED,
            "the queue is DISABLED: jobs already in it can finish, no new job can be submitted to it",
            shell("aws", "batch", "update-job-queue", "--job-queue", "QUEUE", "--state", "ENABLED"),
            None,
        )
    if facts.environments and not enabled:
        listed = ", ".join(e.name for e in facts.environments)
        return (
            ENVIRONMENTS_DISABLED,
            f"every compute environment of the queue is DISABLED ({listed}): AWS places no job in them",
            " ; ".join(
                shell(
                    "aws", "batch", "update-compute-environment", "--compute-environment", e.name, "--state", "ENABLED"
                )
                for e in facts.environments
            ),
            None,
        )
    for name, quantity in facts.consumes:
        resource = facts.resources.get(name)
        if resource is not None and resource.available < quantity:
            return (
                RESOURCE,
                f"each child needs {quantity} of consumable resource {name}: {resource.in_use} of {resource.total} "
                "in use, none left",
                "it starts as others give units back; for more at once: "
                + command("resources", "set", name, resource.total + quantity, *facts.command_args),
                None,
            )
    managed = [e for e in enabled if e.max_vcpus is not None]
    capacity = sum(e.max_vcpus or 0 for e in managed)
    if managed and facts.running_vcpus + facts.vcpus > capacity + 1e-9:
        listed = ", ".join(f"{e.name} {e.max_vcpus:g}" for e in managed)
        return (
            FULL,
            f"the run holds {facts.running_vcpus:g} vCPUs of the queue's {capacity:g} (max_vcpus: {listed})",
            "it starts as others end; raise infrastructure.max_vcpus to run more at once",
            None,
        )
    fargate = [e for e in enabled if e.kind in ("FARGATE", "FARGATE_SPOT")]
    if fargate:
        codes = [QUOTA_SPOT if e.kind == "FARGATE_SPOT" else QUOTA_ON_DEMAND for e in fargate]
        read = {c: facts.quotas.get(c) for c in codes}
        known = [v for v in read.values() if isinstance(v, (int, float))]
        if len(known) == len(codes):
            quota = sum(float(v) for v in known)
            if facts.running_vcpus + facts.vcpus > quota + 1e-9:
                shown = ", ".join(f"{c} {float(v):g}" for c, v in read.items())  # type: ignore[arg-type]
                return (
                    QUOTA,
                    f"the run holds {facts.running_vcpus:g} vCPUs on Fargate; the account's quotas allow {quota:g} "
                    f"({shown}), below the compute environments' {capacity:g}",
                    "request an increase: "
                    + shell(
                        "aws",
                        "service-quotas",
                        "request-service-quota-increase",
                        "--service-code",
                        "fargate",
                        "--quota-code",
                        codes[0],
                        "--desired-value",
                        int(capacity),
                    ),
                    None,
                )
            return (TURN, "capacity is free now: it starts at the next placement", "none needed", None)
        unread = ", ".join(f"{c} ({v or 'not read'})" for c, v in read.items() if not isinstance(v, (int, float)))
        return (
            QUOTA,
            f"the run holds {facts.running_vcpus:g} of the compute environments' {capacity:g} vCPUs, so the "
            f"account's Fargate vCPU quota bounds it (not readable: {unread}; a new account has 6)",
            f"check {', '.join(codes)} in Service Quotas and request an increase",
            None,
        )
    return (TURN, "jobs ahead of it in the queue go first", "none needed", None)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _ms_to_seconds(now: datetime, value: Any) -> float:
    if not value:
        return 0.0
    return max(0.0, now.timestamp() - float(value) / 1000)


def _size(definition: Mapping[str, Any] | None) -> tuple[float, int]:
    container = (definition or {}).get("containerProperties") or (definition or {}).get("container") or {}
    found = {r.get("type"): r.get("value") for r in container.get("resourceRequirements") or []}
    return float(found.get("VCPU") or container.get("vcpus") or 0.25), int(
        float(found.get("MEMORY") or container.get("memory") or 512)
    )


def collect_waiting(
    batch: Batch,
    view: RunView,
    result: RunStatus,
    config: Config | None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    now: datetime | None = None,
    stage: str | None = None,
    quotas: Mapping[str, float | str] | None = None,
    command_args: Sequence[str] = (),
) -> list[Waiting]:
    """Every module of the run with RUNNABLE children (or a plain job) waiting longer than ``threshold``, explained.
    ``quotas``: Service Quotas answers if the caller read them (else they are read here when a Fargate queue waits).
    ``command_args``: the options every printed command needs (``Facts.command_args``).
    """
    now = now or datetime.now(UTC)
    candidates: list[tuple[Row, Mapping[str, Any], int, float]] = []
    for row in view.rows:
        if stage is not None and row.stage != stage:
            continue
        job = view.job(row)
        if not job or job.get("status") in ("SUCCEEDED", "FAILED"):
            continue
        size = int((job.get("arrayProperties") or {}).get("size") or 0)
        if size:
            summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
            if not summary.get("RUNNABLE"):
                continue
            children = list(batch.list_jobs(array_job_id=row.job_id, status="RUNNABLE"))
            if not children:
                continue
            oldest = min(children, key=lambda c: c.get("createdAt") or 0)
            seconds = _ms_to_seconds(now, oldest.get("createdAt"))
            if seconds >= threshold:
                oldest_described = batch.describe_jobs([oldest["jobId"]])
                candidates.append((row, oldest_described[0] if oldest_described else oldest, len(children), seconds))
        elif job.get("status") == "RUNNABLE":
            seconds = _ms_to_seconds(now, job.get("createdAt"))
            if seconds >= threshold:
                candidates.append((row, job, 1, seconds))
    if not candidates:
        return []
    queue_names = sorted({row.job_queue for row, *_ in candidates if row.job_queue})
    queues = {q["jobQueueName"]: q for q in _safe(lambda: batch.describe_job_queues(queue_names), [])}
    arns = sorted({o["computeEnvironment"] for q in queues.values() for o in q.get("computeEnvironmentOrder", [])})
    environments = {e["computeEnvironmentArn"]: e for e in _safe(lambda: batch.describe_compute_environments(arns), [])}
    definitions = {
        d["jobDefinitionName"]: d
        for d in _safe(lambda: batch.describe_job_definitions(sorted({r.job_definition for r, *_ in candidates})), [])
    }
    modules = {(m.stage, m.name): m for m in (config.modules if config else ())}
    resources: dict[str, Resource] = {}
    for resource in config.infrastructure.consumable_resources if config else ():
        assert config is not None
        try:
            described = batch.describe_consumable_resource(consumable_resource(config.prefix, resource.name))
        except AwsError:
            continue
        if described:
            resources[resource.name] = Resource(
                resource.name,
                int(described.get("totalQuantity", 0)),
                int(described.get("inUseQuantity", 0)),
                int(described.get("availableQuantity", 0)),
            )
    snapshots: dict[str, list[str]] = {}
    for name in queue_names:
        try:
            snapshot = batch.get_job_queue_snapshot(name)
        except AwsError:
            snapshot = {}
        front = ((snapshot or {}).get("frontOfQueue") or {}).get("jobs") or []
        snapshots[name] = [str(j.get("jobArn", "")) for j in front]
    # What this run holds now (STARTING or RUNNING), per compute kind: the queues of one kind share environments.
    holding: dict[str, float] = {}
    for counts in result.modules:
        module = modules.get((counts.stage, counts.module))
        if module is None:
            continue
        vcpus = module.vcpus if module.vcpus is not None else 0.25
        running = counts.counts.get("RUNNING", 0) + counts.counts.get("STARTING", 0)
        holding[module.compute] = holding.get(module.compute, 0.0) + running * vcpus
    if quotas is None and any(
        e.get("computeResources", {}).get("type") in ("FARGATE", "FARGATE_SPOT") for e in environments.values()
    ):
        quotas = fargate_vcpu_quotas(batch.options, (QUOTA_ON_DEMAND, QUOTA_SPOT))
    found = []
    for row, waiting_job, count, seconds in candidates:
        job = dict(waiting_job)
        queue = queues.get(row.job_queue, {})
        envs = tuple(
            _environment(environments.get(o["computeEnvironment"], {}), o["computeEnvironment"])
            for o in sorted(queue.get("computeEnvironmentOrder", []), key=lambda o: o.get("order", 0))
        )
        vcpus, memory = _size(job if job.get("container") else definitions.get(row.job_definition))
        module = modules.get((row.stage, row.algorithm))
        facts = Facts(
            vcpus=vcpus,
            memory=memory,
            queue_enabled=queue.get("state", "ENABLED") == "ENABLED",
            environments=envs,
            time_limits=tuple(
                (str(a.get("reason")), int(a.get("maxTimeSeconds", 0)), str(a.get("action", "CANCEL")))
                for a in queue.get("jobStateTimeLimitActions") or ()
            ),
            consumes=module.consumes if module else (),
            resources=resources,
            running_vcpus=holding.get(module.compute, 0.0) if module else 0.0,
            quotas=quotas or {},
            command_args=tuple(command_args),
        )
        key = module.key if module else f"stages.{row.stage}.{row.algorithm}"
        reason = str(job.get("statusReason") or "")
        cause, detail, fix, time_limit = explain(row.stage, row.algorithm, reason, facts, config_key=key)
        fix = fix.replace("QUEUE", row.job_queue)
        arn = str(job.get("jobArn") or "")
        order = snapshots.get(row.job_queue, [])
        position = order.index(arn) + 1 if arn and arn in order else None
        found.append(
            Waiting(
                row.stage,
                row.algorithm,
                row.job_name,
                row.job_queue,
                count,
                seconds,
                cause,
                detail,
                fix,
                position,
                time_limit,
                clean(reason),
            )
        )
    return found


def _environment(described: Mapping[str, Any], arn: str) -> Environment:
    resources = described.get("computeResources") or {}
    managed = described.get("type", "MANAGED") == "MANAGED"
    return Environment(
        name=str(described.get("computeEnvironmentName") or arn.rsplit("/", 1)[-1]),
        enabled=described.get("state", "ENABLED") == "ENABLED",
        kind=str(resources.get("type")) if managed and resources else None,
        max_vcpus=float(resources["maxvCpus"]) if managed and "maxvCpus" in resources else None,
    )


def _safe(fn: Any, default: Any) -> Any:
    """An answer AWS may not give (an old endpoint, a missing permission): the view says less, never fails."""
    try:
        return fn()
    except AwsError:
        return default


def waiting_to_dict(waits: Sequence[Waiting]) -> list[dict[str, Any]]:
    return [asdict(w) for w in waits]


@dataclass(frozen=True)
class ResourceUse:
    """A consumable resource of the venue as AWS has it now (``problem``: why it could not be read)."""

    name: str  # as in confluence.yaml
    aws_name: str
    type: str
    declared: int  # the yaml's total (what a deploy sets)
    total: int | None = None
    in_use: int | None = None
    available: int | None = None
    waiting: int | None = None  # jobs RUNNABLE for it (ListJobsByConsumableResource)
    problem: str | None = None


def resource_uses(batch: Batch, config: Config, *, jobs: bool = True) -> list[ResourceUse]:
    """Every consumable resource the yaml declares, described by AWS (and the jobs waiting for it)."""
    found = []
    for resource in config.infrastructure.consumable_resources:
        aws_name = consumable_resource(config.prefix, resource.name)
        try:
            described = batch.describe_consumable_resource(aws_name)
            waiting = None
            if jobs:
                listed = batch.list_jobs_by_consumable_resource(aws_name)
                waiting = sum(1 for j in listed if j.get("jobStatus", j.get("status")) == "RUNNABLE")
        except AwsError as e:
            found.append(ResourceUse(resource.name, aws_name, resource.type, resource.total, problem=str(e)))
            continue
        found.append(
            ResourceUse(
                resource.name,
                aws_name,
                str(described.get("resourceType", resource.type)),
                resource.total,
                int(described.get("totalQuantity", 0)),
                int(described.get("inUseQuantity", 0)),
                int(described.get("availableQuantity", 0)),
                waiting,
            )
        )
    return found
