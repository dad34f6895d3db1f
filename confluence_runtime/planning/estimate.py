"""Time and money before submitting: how long Fargate needs to launch a plan's containers, what bounds a stage's
concurrency, and what the run costs. Pure: the plan, the config, a price table and (optionally) quotas read by
the caller. The model (launching per purchase option, vCPU-time over the usable vCPUs, the longest child, EC2
priced per vCPU of an m6i-like instance) is described in docs/limits.md."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, Module
from ..errors import ConfigError, Problem
from ..names import DEFAULT_COMPUTE, EC2_SPOT, FARGATE_SPOT, PLATFORM_EC2, platform, queue_environments
from .plan import Plan

FARGATE_LAUNCH_RATE = 20.0  # tasks per second, sustained, per account and region
FARGATE_LAUNCH_BURST = 100
QUOTA_ON_DEMAND = "L-3032A538"  # Fargate On-Demand vCPU resource count
QUOTA_SPOT = "L-36FBB829"  # Fargate Spot vCPU resource count
DEFAULT_FARGATE_QUOTA = 6  # vCPUs, for a new account
# A module without vcpus/memory gets the job definition's defaults (stacks/checks.py: 0.25 vCPU, the smallest
# memory Fargate allows for it); barriers are that size too.
DEFAULT_VCPUS, DEFAULT_MEMORY = 0.25, 512
BARRIER_SECONDS = 1.0  # a barrier runs `true`; what it costs is its start-up and the one-minute minimum

PRICE_KEYS = (
    "fargate_vcpu_hour",
    "fargate_gb_hour",
    "fargate_spot_discount",
    "minimum_billed_seconds",
    "billed_startup_seconds",
    "step_functions_per_transition",
    "step_functions_transitions_per_item",
    "lambda_per_request",
    "lambda_gb_second",
)
# Optional: without them EC2 modules "cannot be priced" (an override table may leave them out).
OPTIONAL_PRICE_KEYS = ("ec2_vcpu_hour", "ec2_spot_discount", "ec2_scale_up_seconds")
EC2_GIB_PER_VCPU = 4  # m6i/c6i/r6i-like general purpose instances: memory beyond 4 GiB per vCPU costs a vCPU more


# --------------------------------------------------------------------------------------------------------------
# Prices


@dataclass(frozen=True)
class Prices:
    region: str
    date: str
    source: str
    fargate_vcpu_hour: float
    fargate_gb_hour: float
    fargate_spot_discount: float
    minimum_billed_seconds: float
    billed_startup_seconds: float
    step_functions_per_transition: float
    step_functions_transitions_per_item: float
    lambda_per_request: float
    lambda_gb_second: float
    ec2_vcpu_hour: float | None = None
    ec2_spot_discount: float | None = None
    ec2_scale_up_seconds: float | None = None


def _read_table(text: str, source: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("regions"), dict):
        raise ConfigError([Problem(source, None, "regions", "expected a mapping of region -> prices")])
    return data


def load_prices(region: str, override: str | Path | None = None) -> Prices:
    """The shipped table for ``region``, with an override file's entries (same shape) laid over it."""
    shipped = resources.files("confluence_runtime.planning").joinpath("prices.yaml")
    table = _read_table(shipped.read_text(encoding="utf-8"), "prices.yaml")
    entries = dict(table["regions"].get(region) or {})
    date, source = str(table.get("date", "")), "prices.yaml"
    if override is not None:
        path = Path(override)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError([Problem(str(path), None, "", f"cannot read: {e.strerror}")]) from e
        extra = _read_table(text, str(path))
        entries.update(extra["regions"].get(region) or {})
        date, source = str(extra.get("date", date)), str(path)
    if not entries:
        known = ", ".join(sorted(table["regions"]))
        raise ConfigError(
            [Problem(source, None, f"regions.{region}", f"no prices for this region (known: {known}); pass --prices")]
        )
    problems = []
    values: dict[str, float] = {}
    for key in PRICE_KEYS:
        value = entries.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(Problem(source, None, f"regions.{region}.{key}", f"expected a number >= 0, got {value!r}"))
        else:
            values[key] = float(value)
    optional: dict[str, float] = {}
    for key in OPTIONAL_PRICE_KEYS:
        value = entries.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(Problem(source, None, f"regions.{region}.{key}", f"expected a number >= 0, got {value!r}"))
        else:
            optional[key] = float(value)
    if problems:
        raise ConfigError(problems)
    return Prices(region=region, date=date, source=source, **values, **optional)


# --------------------------------------------------------------------------------------------------------------
# What a plan asks Fargate to run


@dataclass(frozen=True)
class Work:
    """The containers of one module (or of a stage's barriers): ``children`` is ((how many, items each), ...)."""

    stage: str
    module: str
    children: tuple[tuple[int, int], ...]
    vcpus: float
    memory: int  # MiB
    item_seconds: float | None  # expected seconds per item; None = unknown
    compute: str = DEFAULT_COMPUTE

    @property
    def ec2(self) -> bool:
        return platform(self.compute) == PLATFORM_EC2

    @property
    def longest_item_count(self) -> int:
        return max(each for _, each in self.children)

    @property
    def containers(self) -> int:
        return sum(count for count, _ in self.children)

    @property
    def items(self) -> int:
        return sum(count * each for count, each in self.children)


def module_size(module: Module) -> tuple[float, int]:
    vcpus = module.vcpus if module.vcpus is not None else DEFAULT_VCPUS
    return vcpus, module.memory if module.memory is not None else max(DEFAULT_MEMORY, int(vcpus * 2048))


def child_items(item_count: int, per_child: int) -> list[tuple[int, int]]:
    """``item_count`` items packed ``per_child`` to a child: [(children, items each), ...], the short one last."""
    full, rest = divmod(item_count, per_child)
    return [(n, each) for n, each in ((full, per_child), (1 if rest else 0, rest)) if n]


def works_from_plan(plan: Plan, config: Config, item_seconds: Mapping[str, float] | None = None) -> list[Work]:
    """One :class:`Work` per module (in plan order) and one per stage's barriers.

    ``item_seconds`` maps ``stage.module`` to the seconds one item takes; a module not in it takes its own
    ``expected_duration`` if it has one.
    """
    modules = {(m.stage, m.name): m for m in config.modules}
    first_compute: dict[str, str] = {}
    for m in config.modules:
        first_compute.setdefault(m.stage, m.compute)  # a barrier runs in the queue of its stage's first module
    seconds = dict(item_seconds or {})
    grouped: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for s in plan.submissions:
        grouped.setdefault((s.stage, s.module), []).extend(child_items(s.item_count, s.items_per_child))
    works = []
    for (stage, name), children in grouped.items():
        merged: dict[int, int] = {}
        for count, each in children:
            merged[each] = merged.get(each, 0) + count
        shape = tuple(sorted(((n, each) for each, n in merged.items()), key=lambda c: -c[1]))
        module = modules.get((stage, name))
        if module is None:
            compute = first_compute.get(stage, DEFAULT_COMPUTE)
            vcpus = 1.0 if platform(compute) == PLATFORM_EC2 else DEFAULT_VCPUS
            works.append(Work(stage, name, shape, vcpus, DEFAULT_MEMORY, BARRIER_SECONDS, compute))
            continue
        vcpus, memory = module_size(module)
        duration = seconds.get(f"{stage}.{name}", module.expected_duration)
        works.append(Work(stage, name, shape, vcpus, memory, duration, module.compute))
    return works


# --------------------------------------------------------------------------------------------------------------
# Launch time and concurrency


ENVIRONMENT_LABELS = {(False, True): "Fargate Spot", (False, False): "Fargate", (True, True): "EC2 Spot",
                      (True, False): "EC2"}  # fmt: skip


@dataclass(frozen=True)
class Environment:
    """One compute environment a run's queues reach, as the model sees it."""

    label: str  # "Fargate Spot", "Fargate", "EC2 Spot", "EC2"
    ec2: bool
    spot: bool
    vcpus: float  # usable at once
    limit: str  # what sets ``vcpus``: max_vcpus or the account's quota


@dataclass(frozen=True)
class Capacity:
    """The compute a run's queues reach: Batch environments and, when read, the account's Fargate vCPU quotas."""

    max_vcpus: int  # per Fargate compute environment
    spot: bool  # a Fargate Spot environment (first) beside the On-Demand one
    quota_on_demand: float | None = None
    quota_spot: float | None = None
    launch_rate: float = FARGATE_LAUNCH_RATE  # per purchase option (On-Demand and Spot counted apart)
    launch_burst: int = FARGATE_LAUNCH_BURST
    ec2_max_vcpus: int = 256  # per EC2 compute environment
    ec2_scale_up_seconds: float = 0.0  # an EC2 environment scaling from zero before its first container runs

    @classmethod
    def of(
        cls,
        config: Config,
        prices: Prices | None = None,
        *,
        quota_on_demand: float | None = None,
        quota_spot: float | None = None,
    ) -> Capacity:
        infrastructure = config.infrastructure
        scale_up = prices.ec2_scale_up_seconds if prices is not None and prices.ec2_scale_up_seconds else 0.0
        return cls(
            max_vcpus=infrastructure.max_vcpus,
            spot=infrastructure.fargate_spot,
            quota_on_demand=quota_on_demand,
            quota_spot=quota_spot,
            ec2_max_vcpus=infrastructure.ec2_max_vcpus,
            ec2_scale_up_seconds=scale_up,
        )

    def environment(self, *, ec2: bool, spot: bool) -> Environment:
        label = ENVIRONMENT_LABELS[(ec2, spot)]
        if ec2:
            return Environment(label, ec2, spot, float(self.ec2_max_vcpus), f"ec2_max_vcpus ({self.ec2_max_vcpus})")
        quota, code = (self.quota_spot, QUOTA_SPOT) if spot else (self.quota_on_demand, QUOTA_ON_DEMAND)
        if quota is not None and quota < self.max_vcpus:
            return Environment(label, ec2, spot, quota, f"{label} vCPU quota {code} ({quota:g})")
        return Environment(label, ec2, spot, float(self.max_vcpus), f"max_vcpus ({self.max_vcpus})")

    def for_compute(self, compute: str) -> list[Environment]:
        """The environments of a compute kind's queues, in the order Batch tries them."""
        return [self.environment(ec2=e, spot=s) for e, s in queue_environments(compute, fargate_spot=self.spot)]

    def environments(self) -> list[tuple[str, float, str]]:
        """(environment, usable vCPUs, what limits it) per Fargate compute environment."""
        kinds = [(False, True)] if self.spot else []
        kinds.append((False, False))
        return [(e.label, e.vcpus, e.limit) for e in (self.environment(ec2=x, spot=y) for x, y in kinds)]

    @property
    def vcpus(self) -> float:
        return sum(v for _, v, _ in self.environments())

    def launch_seconds(self, containers: float) -> float:
        """Seconds one purchase option's bucket needs to launch ``containers`` Fargate tasks."""
        return max(0.0, containers - self.launch_burst) / self.launch_rate


BOUND_LAUNCHING, BOUND_VCPUS, BOUND_LONGEST = "launching", "vCPUs", "longest child"


@dataclass(frozen=True)
class StageLoad:
    stage: str
    containers: int
    launch_seconds: float
    vcpus_wanted: float  # every container of the stage at once
    vcpus_usable: float
    bound: str | None  # what caps the stage's concurrency, when it is capped
    at_once: int  # containers that can run at the same time
    min_seconds: float | None  # lower bound on the stage's duration (launching and vCPU-time), if durations known
    # Fargate tasks launched per purchase option (On-Demand and Spot each have their own 20/s bucket).
    spot_launches: float = 0.0
    on_demand_launches: float = 0.0
    ec2_containers: int = 0
    # The three terms of min_seconds and which is largest (BOUND_LAUNCHING, BOUND_VCPUS or BOUND_LONGEST).
    vcpu_seconds_bound: float | None = None
    longest_seconds: float | None = None
    min_bound: str | None = None
    min_bound_detail: str | None = None  # the bound in words: "vCPUs: max_vcpus (256) and max_vcpus (256)"


def stage_loads(works: Iterable[Work], capacity: Capacity, prices: Prices | None = None) -> list[StageLoad]:
    startup = prices.billed_startup_seconds if prices else 0.0
    by_stage: dict[str, list[Work]] = {}
    for work in works:
        by_stage.setdefault(work.stage, []).append(work)
    loads = []
    for stage, stage_works in by_stage.items():
        environments: dict[tuple[bool, bool], Environment] = {}
        for w in stage_works:
            for e in capacity.for_compute(w.compute):
                environments.setdefault((e.ec2, e.spot), e)
        usable = sum(e.vcpus for e in environments.values())
        limits = sorted({e.limit for e in environments.values()})
        containers = sum(w.containers for w in stage_works)
        wanted = sum(w.containers * w.vcpus for w in stage_works)
        bound = " and ".join(limits) if wanted > usable else None
        mean_vcpus = wanted / containers
        at_once = containers if bound is None else max(1, math.floor(usable / mean_vcpus))
        # Launching: Fargate Spot modules launch on Spot while Spot holds them, then share with On-Demand.
        spot_work = [w for w in stage_works if w.compute == FARGATE_SPOT and capacity.spot]
        spot_env = environments.get((False, True))
        on_demand_env = environments.get((False, False))
        spot_wanted = sum(w.containers * w.vcpus for w in spot_work)
        share = 1.0
        if spot_env is not None and on_demand_env is not None and spot_wanted > spot_env.vcpus:
            share = spot_env.vcpus / (spot_env.vcpus + on_demand_env.vcpus)
        spot_containers = sum(w.containers for w in spot_work)
        spot_launches = spot_containers * share
        ec2_containers = sum(w.containers for w in stage_works if w.ec2)
        on_demand_launches = containers - ec2_containers - spot_launches
        launch = max(capacity.launch_seconds(spot_launches), capacity.launch_seconds(on_demand_launches))
        if ec2_containers:
            launch = max(launch, capacity.ec2_scale_up_seconds)
        known = all(w.item_seconds is not None for w in stage_works)
        min_seconds = vcpu_bound = longest = None
        min_bound = detail = None
        if known:
            vcpu_seconds = sum(
                count * w.vcpus * (startup + each * (w.item_seconds or 0.0))
                for w in stage_works
                for count, each in w.children
            )
            vcpu_bound = vcpu_seconds / usable
            slowest = max(stage_works, key=lambda w: startup + w.longest_item_count * (w.item_seconds or 0.0))
            longest = startup + slowest.longest_item_count * (slowest.item_seconds or 0.0)
            min_seconds = max(launch, vcpu_bound, longest)
            if min_seconds == launch and launch > 0:
                min_bound = BOUND_LAUNCHING
                rate = f"{capacity.launch_rate:g} tasks/s per purchase option"
                detail = f"launching {containers - ec2_containers:,} Fargate tasks at {rate}"
                if ec2_containers and launch == capacity.ec2_scale_up_seconds:
                    detail = "EC2 instances scaling up from zero"
            elif min_seconds == vcpu_bound and vcpu_bound >= longest:
                min_bound = BOUND_VCPUS
                detail = f"{vcpu_seconds / 3600:,.1f} vCPU-hours over {usable:g} usable vCPUs ({' and '.join(limits)})"
            else:
                min_bound = BOUND_LONGEST
                detail = (
                    f"{slowest.module}'s longest child: {slowest.longest_item_count:,} items x "
                    f"{slowest.item_seconds:g} s"
                )
        loads.append(
            StageLoad(
                stage,
                containers,
                launch,
                wanted,
                usable,
                bound,
                at_once,
                min_seconds,
                spot_launches,
                on_demand_launches,
                ec2_containers,
                vcpu_bound,
                longest,
                min_bound,
                detail,
            )
        )
    return loads


@dataclass(frozen=True)
class RunTime:
    """The run's minimum run time (stages one after another) and how many stages each bound holds."""

    seconds: float | None  # None when a stage has no durations
    bounds: tuple[tuple[str, int], ...]  # (bound, stages), largest first
    slowest: StageLoad | None  # the stage with the longest minimum


def run_time(loads: Iterable[StageLoad]) -> RunTime:
    loads = list(loads)
    if not loads or any(load.min_seconds is None for load in loads):
        return RunTime(None, (), None)
    counts: dict[str, int] = {}
    for load in loads:
        counts[load.min_bound or BOUND_LONGEST] = counts.get(load.min_bound or BOUND_LONGEST, 0) + 1
    seconds = sum(load.min_seconds or 0.0 for load in loads)
    slowest = max(loads, key=lambda load: load.min_seconds or 0.0)
    return RunTime(seconds, tuple(sorted(counts.items(), key=lambda c: -c[1])), slowest)


# --------------------------------------------------------------------------------------------------------------
# Cost


@dataclass(frozen=True)
class ModuleCost:
    stage: str
    module: str
    containers: int
    items: int
    item_seconds: float | None
    billed_hours: float  # container-hours billed (minimum and start-up included)
    on_demand: float | None  # USD, None when the duration is unknown (or an EC2 module without EC2 prices)
    compute: str = DEFAULT_COMPUTE
    spot_discount: float = 0.0  # the discount of its Spot environment, 0 when it never runs on Spot


@dataclass(frozen=True)
class Estimate:
    prices: Prices
    spot_share: float
    modules: tuple[ModuleCost, ...]
    step_functions_transitions: int
    unknown: tuple[str, ...] = field(default=())  # modules without an expected duration

    @property
    def on_demand(self) -> float:
        return sum(m.on_demand or 0.0 for m in self.modules)

    @property
    def with_spot(self) -> float:
        """With ``spot_share`` of each Spot-capable module's containers on Spot (Fargate Spot or EC2 Spot)."""
        return sum((m.on_demand or 0.0) * (1 - self.spot_share * m.spot_discount) for m in self.modules)

    @property
    def step_functions(self) -> float:
        """Orchestration alone of the same run in a per-item Step Functions Map (its compute comes on top)."""
        return self.step_functions_transitions * self.prices.step_functions_per_transition


def child_cost(prices: Prices, vcpus: float, memory: int, seconds: float) -> float:
    """What one Fargate task of this size costs for ``seconds`` of work (start-up and the minimum added)."""
    billed = max(prices.minimum_billed_seconds, prices.billed_startup_seconds + seconds)
    return billed / 3600 * (vcpus * prices.fargate_vcpu_hour + memory / 1024 * prices.fargate_gb_hour)


def ec2_child_cost(prices: Prices, vcpus: float, memory: int, seconds: float) -> float | None:
    """One EC2 container's share of an m6i-like instance for ``seconds`` (no minimum: instances are shared)."""
    if prices.ec2_vcpu_hour is None:
        return None
    billed = prices.billed_startup_seconds + seconds
    return billed / 3600 * max(vcpus, memory / 1024 / EC2_GIB_PER_VCPU) * prices.ec2_vcpu_hour


def step_functions_transitions(items: int, prices: Prices) -> int:
    """The Step Functions comparison, one formula everywhere (plan --estimate, bench/supervise.py): a per-item
    Map bills ``step_functions_transitions_per_item`` transitions for each item of each module."""
    return math.ceil(items * prices.step_functions_transitions_per_item)


def estimate_cost(works: Iterable[Work], prices: Prices, *, spot_share: float = 0.0) -> Estimate:
    rows = []
    unknown = []
    items_total = 0
    for w in works:
        if w.module != "barrier":
            items_total += w.items
        discount = 0.0
        if w.compute == FARGATE_SPOT:
            discount = prices.fargate_spot_discount
        elif w.compute == EC2_SPOT:
            discount = prices.ec2_spot_discount or 0.0
        no_ec2_price = w.ec2 and prices.ec2_vcpu_hour is None
        if w.item_seconds is None or no_ec2_price:
            unknown.append(f"{w.stage}.{w.module}")
            rows.append(ModuleCost(w.stage, w.module, w.containers, w.items, w.item_seconds, 0.0, None, w.compute))
            continue
        seconds = w.item_seconds
        if w.ec2:
            billed = sum(count * (prices.billed_startup_seconds + each * seconds) for count, each in w.children)
            cost = sum(
                count * (ec2_child_cost(prices, w.vcpus, w.memory, each * seconds) or 0.0) for count, each in w.children
            )
        else:
            billed = sum(
                count * max(prices.minimum_billed_seconds, prices.billed_startup_seconds + each * seconds)
                for count, each in w.children
            )
            cost = sum(count * child_cost(prices, w.vcpus, w.memory, each * seconds) for count, each in w.children)
        rows.append(
            ModuleCost(w.stage, w.module, w.containers, w.items, seconds, billed / 3600, cost, w.compute, discount)
        )
    return Estimate(prices, spot_share, tuple(rows), step_functions_transitions(items_total, prices), tuple(unknown))


def item_seconds_from(observations: Iterable[tuple[str, str, float]], config: Config) -> dict[str, float]:
    """Seconds per item of each module from observed child run times (stage, module, seconds of one child).

    The median per module, divided by the module's items per child. The ledger keeps every plain job's times
    but only the slowest children of an array, so for arrays this leans high: a cautious estimate.
    """
    per_child = {m.key.removeprefix("stages."): m.items_per_child for m in config.modules}
    seen: dict[str, list[float]] = {}
    for stage, module, seconds in observations:
        seen.setdefault(f"{stage}.{module}", []).append(seconds)
    return {key: statistics.median(values) / per_child.get(key, 1) for key, values in seen.items() if key in per_child}


def loads_to_dict(loads: Iterable[StageLoad]) -> list[dict[str, Any]]:
    return [asdict(load) for load in loads]


def run_time_to_dict(total: RunTime) -> dict[str, Any]:
    return {
        "min_seconds": total.seconds,
        "bounds": dict(total.bounds),
        "slowest_stage": total.slowest.stage if total.slowest else None,
        "slowest_bound": total.slowest.min_bound_detail if total.slowest else None,
    }


def estimate_to_dict(estimate: Estimate) -> dict[str, Any]:
    return {
        "region": estimate.prices.region,
        "prices_date": estimate.prices.date,
        "prices_source": estimate.prices.source,
        "on_demand_usd": round(estimate.on_demand, 4),
        "spot_share": estimate.spot_share,
        "with_spot_usd": round(estimate.with_spot, 4),
        "step_functions_transitions": estimate.step_functions_transitions,
        "step_functions_usd": round(estimate.step_functions, 4),
        "unknown_durations": list(estimate.unknown),
        "modules": [asdict(m) for m in estimate.modules],
    }


# --------------------------------------------------------------------------------------------------------------
# What a run really cost: AWS's timestamps of each attempt x the job's size x the price table


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job or array child as DescribeJobs tells it: how long it ran, at what size, where."""

    stage: str
    module: str
    vcpus: float
    memory: int  # MiB
    seconds: float  # startedAt -> stoppedAt
    compute: str = DEFAULT_COMPUTE
    outcome: str = ""  # attempts.classify_attempt: "reclaimed" attempts ran on Spot whatever the queue's order


@dataclass(frozen=True)
class MeasuredModule:
    stage: str
    module: str
    attempts: int
    reclaimed: int
    billed_hours: float
    on_demand: float | None  # USD at On-Demand prices; None for EC2 without EC2 prices
    with_spot: float | None  # USD with the Spot share (reclaimed attempts: on Spot for certain)
    estimate_on_demand: float | None = None  # plan --estimate's figure for the same module (expected_duration)
    estimate_with_spot: float | None = None


@dataclass(frozen=True)
class MeasuredCost:
    prices: Prices
    spot_share: float
    modules: tuple[MeasuredModule, ...]

    @property
    def on_demand(self) -> float:
        return sum(m.on_demand or 0.0 for m in self.modules)

    @property
    def with_spot(self) -> float:
        return sum(m.with_spot or 0.0 for m in self.modules)

    @property
    def estimate_on_demand(self) -> float | None:
        known = [m.estimate_on_demand for m in self.modules if m.estimate_on_demand is not None]
        return sum(known) if known else None

    @property
    def estimate_with_spot(self) -> float | None:
        known = [m.estimate_with_spot for m in self.modules if m.estimate_with_spot is not None]
        return sum(known) if known else None

    def stages(self) -> list[tuple[str, float, float, float | None]]:
        """(stage, On-Demand, with Spot, estimate with Spot or None) in first-seen order."""
        found: dict[str, list[float | None]] = {}
        for m in self.modules:
            row = found.setdefault(m.stage, [0.0, 0.0, None])
            row[0] = (row[0] or 0.0) + (m.on_demand or 0.0)
            row[1] = (row[1] or 0.0) + (m.with_spot or 0.0)
            if m.estimate_with_spot is not None:
                row[2] = (row[2] or 0.0) + m.estimate_with_spot
        return [(stage, row[0] or 0.0, row[1] or 0.0, row[2]) for stage, row in found.items()]


def attempt_cost(prices: Prices, attempt: Attempt) -> float | None:
    """Fargate: billed from the image download (the table's start-up) to the end, at least a minute; EC2: the
    instance share (start-up included, no minimum), or None without EC2 prices."""
    if platform(attempt.compute) == PLATFORM_EC2:
        return ec2_child_cost(prices, attempt.vcpus, attempt.memory, attempt.seconds)
    return child_cost(prices, attempt.vcpus, attempt.memory, attempt.seconds)


def _spot_discount(prices: Prices, compute: str) -> float:
    if compute == FARGATE_SPOT:
        return prices.fargate_spot_discount
    if compute == EC2_SPOT:
        return prices.ec2_spot_discount or 0.0
    return 0.0


def measured_cost(
    attempts: Iterable[Attempt], prices: Prices, *, spot_share: float, estimate: Estimate | None = None
) -> MeasuredCost:
    """The run's cost from its attempts, per module in first-seen order, beside ``estimate`` when given.

    AWS's job description does not name the compute environment an attempt ran in: an attempt a Spot reclaim
    ended ran on Spot; any other of a Spot-capable module is counted on Spot for ``spot_share`` of it (the queue
    tries Spot first)."""
    grouped: dict[tuple[str, str], list[Attempt]] = {}
    for attempt in attempts:
        grouped.setdefault((attempt.stage, attempt.module), []).append(attempt)
    expected = {(m.stage, m.module): m for m in (estimate.modules if estimate else ())}
    rows = []
    for (stage, module), found in grouped.items():
        priced = [(a, attempt_cost(prices, a)) for a in found]
        unpriced = any(cost is None for _, cost in priced)
        on_demand = None if unpriced else sum(cost or 0.0 for _, cost in priced)
        with_spot = None
        if not unpriced:
            with_spot = 0.0
            for a, cost in priced:
                discount = _spot_discount(prices, a.compute)
                share = 1.0 if a.outcome == "reclaimed" else spot_share
                with_spot += (cost or 0.0) * (1 - share * discount)
        billed = sum(
            prices.billed_startup_seconds + a.seconds
            if platform(a.compute) == PLATFORM_EC2
            else max(prices.minimum_billed_seconds, prices.billed_startup_seconds + a.seconds)
            for a in found
        )
        guess = expected.get((stage, module))
        guess_spot = None
        if guess is not None and guess.on_demand is not None:
            guess_spot = guess.on_demand * (1 - spot_share * guess.spot_discount)
        rows.append(
            MeasuredModule(
                stage,
                module,
                len(found),
                sum(1 for a in found if a.outcome == "reclaimed"),
                billed / 3600,
                on_demand,
                with_spot,
                guess.on_demand if guess is not None else None,
                guess_spot,
            )
        )
    return MeasuredCost(prices, spot_share, tuple(rows))


def measured_to_dict(cost: MeasuredCost) -> dict[str, Any]:
    def money(value: float | None) -> float | None:
        return round(value, 4) if value is not None else None

    return {
        "region": cost.prices.region,
        "prices_date": cost.prices.date,
        "prices_source": cost.prices.source,
        "spot_share": cost.spot_share,
        "measured_on_demand_usd": money(cost.on_demand),
        "measured_with_spot_usd": money(cost.with_spot),
        "estimate_on_demand_usd": money(cost.estimate_on_demand),
        "estimate_with_spot_usd": money(cost.estimate_with_spot),
        "stages": [
            {
                "stage": s,
                "measured_on_demand_usd": money(od),
                "measured_with_spot_usd": money(ws),
                "estimate_with_spot_usd": money(est),
            }
            for s, od, ws, est in cost.stages()
        ],
        "modules": [
            {**asdict(m), **{k: money(v) for k, v in asdict(m).items() if k.endswith(("on_demand", "with_spot"))}}
            for m in cost.modules
        ],
    }


# --------------------------------------------------------------------------------------------------------------
# An outside API's budget (Hydrocron's monthly key quota): a run's expected requests against what is left


@dataclass(frozen=True)
class RequestBudget:
    """The requests a run expects against one NON_REPLENISHABLE consumable resource (``resource``), or, for
    modules that count requests but consume no budget, against none (``resource`` None)."""

    resource: str | None
    expected: int
    parts: tuple[tuple[str, int, float], ...]  # (stage.module, items, requests per item)
    left: int | None  # units available: AWS's availableQuantity when read, else the yaml's total
    read_from_aws: bool = False

    @property
    def over(self) -> bool:
        return self.left is not None and self.expected > self.left

    def text(self) -> str:
        parts = ", ".join(f"{key} {items:,} items x {per:g}" for key, items, per in self.parts)
        if self.resource is None:
            return f"expected requests: {self.expected:,} ({parts}); no budget declared (a non_replenishable resource)"
        where = "left (AWS)" if self.read_from_aws else "in all (the yaml's total; run reads what is left)"
        verdict = f"over by {self.expected - (self.left or 0):,}" if self.over else "within it"
        return (
            f"{self.resource}: this run expects {self.expected:,} requests ({parts}); {self.left:,} {where}: {verdict}"
        )


def request_budgets(plan: Plan, config: Config, available: Mapping[str, int] | None = None) -> list[RequestBudget]:
    """Per NON_REPLENISHABLE resource a module with ``requests_per_item`` consumes: the run's items x requests per
    item, against ``available`` (resource name -> AWS's availableQuantity) or the yaml's total."""
    items: dict[tuple[str, str], int] = {}
    for s in plan.submissions:
        items[(s.stage, s.module)] = items.get((s.stage, s.module), 0) + s.item_count
    budgets: dict[str | None, list[tuple[str, int, float]]] = {}
    for module in config.modules:
        if module.requests_per_item is None:
            continue
        part = (module.key.removeprefix("stages."), items.get((module.stage, module.name), 0), module.requests_per_item)
        spent: list[str | None] = [
            name
            for name, _ in module.consumes
            if (r := config.infrastructure.consumable(name)) is not None and not r.replenishable
        ]
        for name in spent or [None]:
            budgets.setdefault(name, []).append(part)
    found = []
    for name, parts in budgets.items():
        expected = math.ceil(sum(count * per for _, count, per in parts))
        resource = config.infrastructure.consumable(name) if name else None
        from_aws = available is not None and name in available
        left = (
            available[name] if from_aws and name is not None and available else (resource.total if resource else None)
        )
        found.append(RequestBudget(name, expected, tuple(parts), left, from_aws))
    return found
