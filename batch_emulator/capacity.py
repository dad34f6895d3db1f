"""What a job queue can place: compute environments, the account's Fargate vCPU quota, consumable resources.

Pure data and decisions (no moto): the backend describes each queue as a ``QueueShape`` built from moto's compute
environments and queues, the engine (states.py) asks ``blocked_reason`` and ``room`` and keeps the usage counters.

AWS facts modelled here (AWS Batch User Guide / API Reference):
- Compute environment DISABLED: "the AWS Batch scheduler doesn't attempt to place jobs within the environment."
- Managed environments hold at most ``maxvCpus`` of running jobs; what runs holds capacity until it ends. An
  unmanaged environment's capacity is the ECS instances its owner registers, which the emulator cannot see: it has
  room for every job.
- Fargate: the account's vCPU quota is per purchase option (On-Demand ``L-3032A538``, Spot ``L-36FBB829``),
  6 vCPUs for a new account; a Fargate task has at most 16 vCPUs and 120 GiB.
- A RUNNABLE job that no environment could ever hold blocks its queue with one of the documented reasons (below);
  "jobs can remain in this state indefinitely when sufficient resources are unavailable".
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

# JobDetail.statusReason of the job at the head of a blocked queue (API Reference, JobDetail).
MAX_RESOURCE = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
REQUIREMENT = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
INSUFFICIENT_CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
BLOCKED_TEXT = {
    MAX_RESOURCE: "All compute environments have a maxVcpu setting that is smaller than the job requirements.",
    REQUIREMENT: "All compute environments have no connected instances that meet the job requirements.",
    INSUFFICIENT_CAPACITY: "All compute environments have insufficient capacity to service the job.",
}
# jobStateTimeLimitActions: "maxTimeSeconds" 600-86,400, state RUNNABLE, action CANCEL or TERMINATE.
TIME_LIMIT_MIN, TIME_LIMIT_MAX = 600, 86_400
TIME_LIMIT_PREFIX = "Terminated by JobStateTimeLimit action due to reason: "
FARGATE, FARGATE_SPOT, EC2, SPOT = "FARGATE", "FARGATE_SPOT", "EC2", "SPOT"
DEFAULT_FARGATE_QUOTA = 6.0  # vCPUs, new accounts, per purchase option
FARGATE_MAX_VCPUS, FARGATE_MAX_MEMORY = 16.0, 120 * 1024
REPLENISHABLE, NON_REPLENISHABLE = "REPLENISHABLE", "NON_REPLENISHABLE"
PRIORITY_MIN, PRIORITY_MAX = 0, 9999


def blocked_status(code: str) -> str:
    return f"{code} - {BLOCKED_TEXT[code]}"


@dataclass(frozen=True)
class Environment:
    """One compute environment as placement sees it. ``kind`` None and ``max_vcpus`` None: unmanaged."""

    arn: str
    name: str
    enabled: bool
    kind: str | None = None
    max_vcpus: float | None = None
    # (vCPUs, MiB) of each instance type a managed EC2/Spot environment may launch; Fargate: its task limit.
    instances: tuple[tuple[float, int], ...] = ()

    @property
    def managed(self) -> bool:
        return self.max_vcpus is not None

    @property
    def fargate(self) -> bool:
        return self.kind in (FARGATE, FARGATE_SPOT)

    @property
    def spot(self) -> bool:
        return self.kind in (SPOT, FARGATE_SPOT)

    @property
    def memory_room(self) -> float | None:
        """MiB the environment can hold at ``max_vcpus``: its most memory-rich instance type filled up (EC2);
        Fargate bills each task its own memory, so only vCPUs limit it."""
        if self.fargate or not self.instances or self.max_vcpus is None:
            return None
        return self.max_vcpus * max(memory / vcpus for vcpus, memory in self.instances)

    def instance_fits(self, vcpus: float, memory: int) -> bool:
        if not self.instances:
            return True
        return any(vcpus <= v and memory <= m for v, m in self.instances)


@dataclass(frozen=True)
class TimeLimit:
    reason: str
    max_seconds: int
    action: str  # CANCEL | TERMINATE


@dataclass(frozen=True)
class FairShare:
    """A fair-share scheduling policy: weight per share identifier (a trailing ``*`` matches a prefix). AWS: "The
    smaller the weight factor, the higher the priority" -- a share's usage counts times its weight."""

    weights: tuple[tuple[str, float], ...] = ()

    def weight(self, share: str | None) -> float:
        for pattern, weight in self.weights:
            if share is not None and (share == pattern or (pattern.endswith("*") and share.startswith(pattern[:-1]))):
                return weight
        return 1.0


@dataclass(frozen=True)
class QueueShape:
    arn: str
    name: str
    enabled: bool
    environments: tuple[Environment, ...]
    fair_share: FairShare | None = None
    time_limits: tuple[TimeLimit, ...] = ()

    @property
    def unlimited(self) -> bool:
        """True when the first enabled environment is unmanaged: every job is placed at once."""
        for env in self.environments:
            if env.enabled:
                return not env.managed
        return False


def blocked_reason(queue: QueueShape, vcpus: float, memory: int) -> str | None:
    """The documented reason a job can never be placed on this queue (its enabled environments as they are now),
    or None when some environment could hold it once it has room (or when no environment is enabled, where the
    job simply waits)."""
    enabled = [env for env in queue.environments if env.enabled]
    if not enabled or any(not env.managed for env in enabled):
        return None
    big_enough = [env for env in enabled if env.max_vcpus is not None and vcpus <= env.max_vcpus]
    if not big_enough:
        return MAX_RESOURCE
    if not any(env.instance_fits(vcpus, memory) for env in big_enough):
        return REQUIREMENT
    return None


@dataclass
class Usage:
    """What running jobs hold: vCPUs and MiB per environment, Fargate vCPUs per (account, region, option)."""

    environments: dict[str, list[float]] = field(default_factory=dict)
    fargate: dict[tuple[str, str, str], float] = field(default_factory=dict)
    fargate_quota: dict[str, float] = field(
        default_factory=lambda: {FARGATE: DEFAULT_FARGATE_QUOTA, FARGATE_SPOT: DEFAULT_FARGATE_QUOTA}
    )

    def room(self, queue: QueueShape, vcpus: float, memory: int, account: str, region: str) -> Environment | None:
        """The first environment of the queue, in order, with room for the job now."""
        for env in queue.environments:
            if not env.enabled:
                continue
            if not env.managed:
                return env
            used = self.environments.get(env.arn, (0.0, 0.0))
            if env.max_vcpus is not None and used[0] + vcpus > env.max_vcpus + 1e-9:
                continue
            memory_room = env.memory_room
            if memory_room is not None and used[1] + memory > memory_room:
                continue
            if not env.instance_fits(vcpus, memory):
                continue
            if env.fargate:
                key = (account, region, env.kind or FARGATE)
                if self.fargate.get(key, 0.0) + vcpus > self.fargate_quota[env.kind or FARGATE] + 1e-9:
                    continue
            return env
        return None

    def take(self, env: Environment, vcpus: float, memory: int, account: str, region: str, sign: float = 1) -> None:
        if not env.managed:
            return
        used = self.environments.setdefault(env.arn, [0.0, 0.0])
        used[0] += sign * vcpus
        used[1] += sign * memory
        if env.fargate:
            key = (account, region, env.kind or FARGATE)
            self.fargate[key] = self.fargate.get(key, 0.0) + sign * vcpus


@dataclass
class ConsumableResource:
    """A consumable resource: REPLENISHABLE units are taken when a job starts and given back when it ends (a
    concurrency cap); NON_REPLENISHABLE units are used up (a budget)."""

    name: str
    arn: str
    resource_type: str
    total: int
    created_at: int  # epoch ms
    tags: dict[str, str] = field(default_factory=dict)
    in_use: int = 0

    @property
    def available(self) -> int:
        return self.total - self.in_use

    def describe(self) -> dict[str, Any]:
        return {
            "consumableResourceName": self.name,
            "consumableResourceArn": self.arn,
            "totalQuantity": self.total,
            "inUseQuantity": self.in_use,
            "availableQuantity": self.available,
            "resourceType": self.resource_type,
            "createdAt": self.created_at,
            "tags": dict(self.tags),
        }


def name_matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)
