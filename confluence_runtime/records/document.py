"""A supervised run's document (``supervisor.json`` in the ledger): the run as the supervisor submits it, each
stage's claim, pieces and job ids, and how the run ended. The supervisor's decisions
(:mod:`confluence_runtime.supervision.decisions`) change it; ``status`` and ``resume`` only read it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

from ..config import Config, Module
from ..planning.plan import check_run_id
from ..planning.shaping import PLAIN, Shape, module_from_dict, module_to_dict

RUNNING = "running"
SUCCEEDED, OVER_BUDGET, FAILED, CANCELLED = "succeeded", "over_budget", "failed", "cancelled"
ENDINGS = (SUCCEEDED, OVER_BUDGET, FAILED, CANCELLED)
PENDING, CLAIMED, SUBMITTED, DONE = "pending", "claimed", "submitted", "done"

# --------------------------------------------------------------------------------------------------------------
# What a supervised run is made of (kept in the document, so a Lambda needs nothing but the document)


def is_array(module: Module) -> bool:
    """A supervised module is an array when it has a fixed size of 2 or more or reads its size from ``items``."""
    return module.items is not None or module.array_size >= 2


def children_of(module: Module, size: int) -> int:
    """Children of an array of ``size`` items (packing: ceil(size / items_per_child))."""
    return -(-size // module.items_per_child)


@dataclass(frozen=True)
class StageSpec:
    name: str
    modules: tuple[Module, ...]  # as the document keeps them (shaping.module_to_dict)
    dependency: str = "stage"


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    prefix: str
    stages: tuple[StageSpec, ...]

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.stages if s.name == name)

    def module(self, stage: str, module: str) -> Module:
        return next(m for m in self.stage(stage).modules if m.name == module)

    @classmethod
    def from_config(cls, config: Config, run_id: str) -> RunSpec:
        check_run_id(run_id)
        return cls(
            run_id=run_id,
            prefix=config.prefix,
            stages=tuple(
                StageSpec(s.name, tuple(module_from_dict(module_to_dict(m)) for m in s.modules), s.dependency)
                for s in config.stages
            ),
        )


# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One job of a supervised stage: a plain job, a contiguous array (``offset``), or a compact array
    (``index_map``: child i works on index_map[i])."""

    name: str
    module: str
    job_index: int
    offset: int = 0
    count: int = 1
    index_map: tuple[int, ...] = ()
    plain: bool = False  # a module that is not an array at all (its one child is index PLAIN)

    @property
    def shape(self) -> Shape:
        return Shape(self.offset, self.count, self.index_map, self.plain)

    @property
    def indices(self) -> tuple[int, ...]:
        """The global indices this job works on."""
        return self.shape.indices

    def global_index(self, array_index: int | None) -> int:
        """The module's index a child works on, from AWS's ``AWS_BATCH_JOB_ARRAY_INDEX`` (None: a plain job)."""
        if self.plain:
            return PLAIN
        if array_index is None:
            return self.indices[0]
        return self.index_map[array_index] if self.index_map else self.offset + array_index


# --------------------------------------------------------------------------------------------------------------
# The document


@dataclass(frozen=True)
class StageState:
    stage: str
    status: str = PENDING
    claim: str = ""  # the supervisor that claimed the stage
    claim_until: str = ""  # ISO time after which another supervisor may take over
    sizes: tuple[tuple[str, int], ...] = ()  # module -> children (size from array_size or items)
    skipped: tuple[int, ...] = ()  # indices left out because they were lost upstream (per_index)
    pieces: tuple[Piece, ...] = ()
    jobs: tuple[tuple[str, str], ...] = ()  # piece name -> job id, as each SubmitJob is recorded
    failed: tuple[tuple[str, tuple[int, ...]], ...] = ()  # module -> failed indices, when done
    claimed_at: str = ""
    done_at: str = ""
    checked: bool = True  # False after a take-over, until AWS was searched for jobs the last claimant left

    @property
    def job_ids(self) -> dict[str, str]:
        return dict(self.jobs)

    @property
    def failed_map(self) -> dict[str, tuple[int, ...]]:
        return dict(self.failed)

    def lost(self) -> set[int]:
        """Indices no later per_index stage should run: failed here, or left out here already."""
        return {i for indices in self.failed_map.values() for i in indices if i != PLAIN} | set(self.skipped)


@dataclass(frozen=True)
class SupervisorState:
    run: RunSpec
    mode: str  # "local" or "cloud"
    stages: tuple[StageState, ...]
    state: str = RUNNING
    reason: str = ""
    ended_at: str = ""
    notified: bool = False  # the end-of-run report and summary were published
    ledger: str = ""  # where the ledger lives (a cloud supervisor writes the report there)

    @classmethod
    def start(cls, run: RunSpec, mode: str, ledger: str = "") -> SupervisorState:
        return cls(run=run, mode=mode, stages=tuple(StageState(s.name) for s in run.stages), ledger=ledger)

    @property
    def over(self) -> bool:
        return self.state in ENDINGS

    def stage_state(self, name: str) -> StageState:
        return next(s for s in self.stages if s.stage == name)

    def current(self) -> StageState | None:
        return next((s for s in self.stages if s.status != DONE), None)

    def all_jobs(self) -> dict[str, str]:
        return {name: job_id for s in self.stages for name, job_id in s.jobs}

    def with_stage(self, stage: StageState) -> SupervisorState:
        return replace(self, stages=tuple(stage if s.stage == stage.stage else s for s in self.stages))

    def to_dict(self) -> dict[str, Any]:
        # What ``asdict`` and a JSON round trip give, without ``asdict``'s deep copy of every index: a global
        # run's index maps hold about a hundred thousand, and the document is rewritten for every recorded job.
        document: dict[str, Any] = json.loads(json.dumps(self, default=_fields))
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SupervisorState:
        run = data["run"]
        spec = RunSpec(
            run_id=run["run_id"],
            prefix=run["prefix"],
            stages=tuple(
                StageSpec(
                    name=s["name"],
                    dependency=s.get("dependency", "stage"),
                    modules=tuple(module_from_dict(m) for m in s["modules"]),
                )
                for s in run["stages"]
            ),
        )
        stages = tuple(
            StageState(
                stage=s["stage"],
                status=s["status"],
                claim=s.get("claim", ""),
                claim_until=s.get("claim_until", ""),
                sizes=tuple((str(k), int(v)) for k, v in s.get("sizes") or ()),
                skipped=tuple(int(i) for i in s.get("skipped") or ()),
                pieces=tuple(
                    Piece(
                        name=p["name"],
                        module=p["module"],
                        job_index=int(p["job_index"]),
                        offset=int(p.get("offset", 0)),
                        count=int(p.get("count", 1)),
                        index_map=tuple(int(i) for i in p.get("index_map") or ()),
                        plain=bool(p.get("plain", False)),
                    )
                    for p in s.get("pieces") or ()
                ),
                jobs=tuple((str(k), str(v)) for k, v in s.get("jobs") or ()),
                failed=tuple((str(k), tuple(int(i) for i in v)) for k, v in s.get("failed") or ()),
                claimed_at=s.get("claimed_at", ""),
                done_at=s.get("done_at", ""),
                checked=bool(s.get("checked", True)),
            )
            for s in data["stages"]
        )
        return cls(
            run=spec,
            mode=data.get("mode", "local"),
            stages=stages,
            state=data.get("state", RUNNING),
            reason=data.get("reason", ""),
            ended_at=data.get("ended_at", ""),
            notified=bool(data.get("notified", False)),
            ledger=data.get("ledger", ""),
        )


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass as the JSON encoder should write it: its fields in order (nested ones come back here); a
    module as its codec writes it."""
    if isinstance(value, Module):
        return module_to_dict(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
