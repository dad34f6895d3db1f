"""Time and money before submitting: how long Fargate needs to launch a plan's containers, what bounds a stage's
concurrency, and what the run costs. Pure: the plan, the config, a price table and (optionally) quotas read by
the caller."""

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
    if problems:
        raise ConfigError(problems)
    return Prices(region=region, date=date, source=source, **values)


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
            works.append(Work(stage, name, shape, DEFAULT_VCPUS, DEFAULT_MEMORY, BARRIER_SECONDS))
            continue
        vcpus, memory = module_size(module)
        duration = seconds.get(f"{stage}.{name}", module.expected_duration)
        works.append(Work(stage, name, shape, vcpus, memory, duration))
    return works


# --------------------------------------------------------------------------------------------------------------
# Launch time and concurrency


@dataclass(frozen=True)
class Capacity:
    """The compute a run's queues reach: Batch environments and, when read, the account's Fargate vCPU quotas."""

    max_vcpus: int  # per compute environment
    spot: bool  # a Fargate Spot environment (first) beside the On-Demand one
    quota_on_demand: float | None = None
    quota_spot: float | None = None
    launch_rate: float = FARGATE_LAUNCH_RATE
    launch_burst: int = FARGATE_LAUNCH_BURST

    @classmethod
    def of(cls, config: Config, *, quota_on_demand: float | None = None, quota_spot: float | None = None) -> Capacity:
        infrastructure = config.infrastructure
        return cls(infrastructure.max_vcpus, infrastructure.fargate_spot, quota_on_demand, quota_spot)

    def environments(self) -> list[tuple[str, float, str]]:
        """(environment, usable vCPUs, what limits it) per compute environment."""
        kinds = [("Fargate Spot", self.quota_spot, QUOTA_SPOT)] if self.spot else []
        kinds.append(("Fargate", self.quota_on_demand, QUOTA_ON_DEMAND))
        found = []
        for label, quota, code in kinds:
            if quota is not None and quota < self.max_vcpus:
                found.append((label, quota, f"{label} vCPU quota {code} ({quota:g})"))
            else:
                found.append((label, float(self.max_vcpus), f"max_vcpus ({self.max_vcpus})"))
        return found

    @property
    def vcpus(self) -> float:
        return sum(v for _, v, _ in self.environments())

    def launch_seconds(self, containers: int) -> float:
        return max(0, containers - self.launch_burst) / self.launch_rate


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


def stage_loads(works: Iterable[Work], capacity: Capacity, prices: Prices | None = None) -> list[StageLoad]:
    startup = prices.billed_startup_seconds if prices else 0.0
    by_stage: dict[str, list[Work]] = {}
    for work in works:
        by_stage.setdefault(work.stage, []).append(work)
    loads = []
    usable = capacity.vcpus
    limits = sorted({why for _, _, why in capacity.environments()})
    for stage, stage_works in by_stage.items():
        containers = sum(w.containers for w in stage_works)
        wanted = sum(w.containers * w.vcpus for w in stage_works)
        bound = " and ".join(limits) if wanted > usable else None
        mean_vcpus = wanted / containers
        at_once = containers if bound is None else max(1, math.floor(usable / mean_vcpus))
        launch = capacity.launch_seconds(containers)
        known = all(w.item_seconds is not None for w in stage_works)
        min_seconds = None
        if known:
            vcpu_seconds = sum(
                count * w.vcpus * (startup + each * (w.item_seconds or 0.0))
                for w in stage_works
                for count, each in w.children
            )
            longest = max(startup + each * (w.item_seconds or 0.0) for w in stage_works for _, each in w.children)
            min_seconds = max(launch, vcpu_seconds / usable, longest)
        loads.append(StageLoad(stage, containers, launch, wanted, usable, bound, at_once, min_seconds))
    return loads


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
    on_demand: float | None  # USD, None when the duration is unknown


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
        return self.on_demand * (1 - self.spot_share * self.prices.fargate_spot_discount)

    @property
    def step_functions(self) -> float:
        """Orchestration alone of the same run in a per-item Step Functions Map (its compute comes on top)."""
        return self.step_functions_transitions * self.prices.step_functions_per_transition


def child_cost(prices: Prices, vcpus: float, memory: int, seconds: float) -> float:
    """What one Fargate task of this size costs for ``seconds`` of work (start-up and the minimum added)."""
    billed = max(prices.minimum_billed_seconds, prices.billed_startup_seconds + seconds)
    return billed / 3600 * (vcpus * prices.fargate_vcpu_hour + memory / 1024 * prices.fargate_gb_hour)


def estimate_cost(works: Iterable[Work], prices: Prices, *, spot_share: float = 0.0) -> Estimate:
    rows = []
    unknown = []
    items_total = 0
    for w in works:
        if w.module != "barrier":
            items_total += w.items
        if w.item_seconds is None:
            unknown.append(f"{w.stage}.{w.module}")
            rows.append(ModuleCost(w.stage, w.module, w.containers, w.items, None, 0.0, None))
            continue
        seconds = w.item_seconds
        billed = sum(
            count * max(prices.minimum_billed_seconds, prices.billed_startup_seconds + each * seconds)
            for count, each in w.children
        )
        cost = sum(count * child_cost(prices, w.vcpus, w.memory, each * seconds) for count, each in w.children)
        rows.append(ModuleCost(w.stage, w.module, w.containers, w.items, seconds, billed / 3600, cost))
    transitions = math.ceil(items_total * prices.step_functions_transitions_per_item)
    return Estimate(prices, spot_share, tuple(rows), transitions, tuple(unknown))


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
