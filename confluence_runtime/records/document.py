"""A supervised run's document (``supervisor.json`` in the ledger): the run as the supervisor submits it, each
stage's claim, pieces and job ids, and how the run ended. The supervisor's decisions
(:mod:`confluence_runtime.supervision.decisions`) change it; ``status`` and ``resume`` only read it.

Linear cost: what grows with the reaches (a stage's pieces with their index maps, the indices left out, the
failed indices) is written once, when it is decided, as an object of its own named by its content
(``supervisor-STAGE-claim-SHA.json``, ``supervisor-STAGE-done-SHA.json``: immutable, so any reader may cache it),
and ``supervisor.json`` names it. What changes with every recorded job is only ``supervisor.json``: claims, job
ids and states, O(stages + pieces), compact JSON. Index lists are kept as ranges (``0-211,213-4097``).
:func:`read_state` reads a run's state back from a ledger, :meth:`SupervisorState.to_documents` splits it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from .. import names
from ..config import Config, Module
from ..errors import RecordError
from ..planning.plan import check_run_id
from ..planning.shaping import PLAIN, Shape, module_from_dict, module_to_dict

RUNNING = "running"
SUCCEEDED, OVER_BUDGET, FAILED, CANCELLED = "succeeded", "over_budget", "failed", "cancelled"
OVER_COST = "over_cost"  # run --max-cost: the measured spending passed the cap
ENDINGS = (SUCCEEDED, OVER_BUDGET, FAILED, CANCELLED, OVER_COST)
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

    @property
    def queue_compute(self) -> dict[str, str]:
        """Queue name -> compute kind of the run's modules (``Config.queue_compute``: what names.on_demand_queue
        chooses from, the same in the supervisor as in the CDK app)."""
        return {m.job_queue: m.compute for s in self.stages for m in s.modules}

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
    index_map: Sequence[int] = ()  # a tuple, or names.IndexMap as read back from a document (decoded on use)
    plain: bool = False  # a module that is not an array at all (its one child is index PLAIN)
    # A retry round of the stage (0: the stage's first submission): children a Spot reclaim or an out-of-memory
    # kill ended, sent again. ``queue``: another queue than the module's (On-Demand after repeated reclaims);
    # ``vcpus``/``memory``: the size of an out-of-memory retry (0: the job definition's).
    round: int = 0
    queue: str = ""
    vcpus: float = 0.0
    memory: int = 0
    # A redrive's piece (retry-failed on a supervised run): numbered in the same series as the retry rounds
    # (decisions.next_generation, so no two share a job name), but what a person asked for, not a Spot retry.
    redrive: bool = False

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
    skipped: Sequence[int] = ()  # indices left out because they were lost upstream (per_index); see _from_ranges
    pieces: tuple[Piece, ...] = ()
    jobs: tuple[tuple[str, str], ...] = ()  # piece name -> job id, as each SubmitJob is recorded
    failed: tuple[tuple[str, Sequence[int]], ...] = ()  # module -> failed indices, when done; see _from_ranges
    claimed_at: str = ""
    done_at: str = ""
    checked: bool = True  # False after a take-over, until AWS was searched for jobs the last claimant left
    # The immutable objects holding this stage's pieces and left-out indices (``claimed``) and its failed indices
    # (``done``), when they are already written; a transition that changes those clears the name.
    claimed_key: str = ""
    done_key: str = ""
    # Names whose SubmitJob may have made a second job: a lost reply, or a submission after a take-over's lookup
    # (ListJobs may not list a job accepted a moment ago). Once the stage is submitted, AWS is asked again under
    # these names and any job but the recorded one is stopped.
    doubt: tuple[str, ...] = ()
    # 1 until a redrive re-opens the stage; round r's pieces are named ``..._retry-{r-1}`` (or ``_rerun-``) and
    # come after the earlier rounds' in ``pieces``: a later piece's outcome replaces an earlier one's for its indices.
    round: int = 1

    @property
    def job_ids(self) -> dict[str, str]:
        return dict(self.jobs)

    @property
    def failed_map(self) -> dict[str, Sequence[int]]:
        return dict(self.failed)

    def lost(self) -> set[int]:
        """Indices no later per_index stage should run: failed here, or left out here already."""
        return {i for indices in self.failed_map.values() for i in indices if i != PLAIN} | set(self.skipped)


@dataclass(frozen=True)
class Redrive:
    """One redrive of a run (``retry-failed`` on a supervised run that ended over budget or with tolerated
    failures): when, by whom, the round it opened, the stage it re-opened and which children it retried."""

    at: str
    by: str
    round: int
    stage: str
    retried: tuple[tuple[str, tuple[int, ...]], ...] = ()  # module -> indices retried in that stage
    ended: str = ""  # how the run had ended before it: over_budget or succeeded

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "by": self.by,
            "round": self.round,
            "stage": self.stage,
            "retried": [[m, _ranges(v)] for m, v in self.retried],
            "ended": self.ended,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Redrive:
        return cls(
            at=str(data["at"]),
            by=str(data.get("by", "")),
            round=int(data["round"]),
            stage=str(data["stage"]),
            retried=tuple((str(m), tuple(_from_ranges(v))) for m, v in data.get("retried") or ()),
            ended=str(data.get("ended", "")),
        )


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
    redrives: tuple[Redrive, ...] = ()  # each redrive of the run, oldest first (O(redrives) in the document)
    max_cost: float | None = None  # run --max-cost: USD of measured spending after which the run is stopped
    # The immutable object holding ``run`` once written (the run's spec never changes, and is most of the
    # document's size: kept apart, the document rewritten for every recorded job stays O(stages)).
    run_key: str = field(default="", compare=False)

    @classmethod
    def start(cls, run: RunSpec, mode: str, ledger: str = "", max_cost: float | None = None) -> SupervisorState:
        stages = tuple(StageState(s.name) for s in run.stages)
        return cls(run=run, mode=mode, stages=stages, ledger=ledger, max_cost=max_cost)

    @property
    def round(self) -> int:
        """The run's latest round: 1, then one more for each redrive."""
        return 1 + len(self.redrives)

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

    def to_documents(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The compare-and-swap document and the new immutable objects it names (key -> JSON value): a stage's
        claim (pieces, indices left out) and its end (failed indices), each written once as its own object."""
        blobs: dict[str, Any] = {}
        stages = []
        for stage in self.stages:
            claimed, done = stage.claimed_key, stage.done_key
            if not claimed and (stage.pieces or stage.skipped):
                claim = {"pieces": [_piece_dict(p) for p in stage.pieces], "skipped": _ranges(stage.skipped)}
                claimed = _blob(blobs, stage.stage, "claim", claim)
            if not done and stage.failed:
                done = _blob(blobs, stage.stage, "done", {"failed": [[m, _ranges(v)] for m, v in stage.failed]})
            light = json.loads(json.dumps(replace(stage, pieces=(), skipped=(), failed=()), default=_fields))
            for key in ("pieces", "skipped", "failed"):
                del light[key]
            stages.append({**light, "claimed_key": claimed, "done_key": done})
        run_key = self.run_key or _blob(blobs, "run", "spec", json.loads(json.dumps(self.run, default=_fields)))
        skip = ("run", "stages", "run_key", "redrives")
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        if self.redrives:
            data["redrives"] = [r.to_dict() for r in self.redrives]
        return {"run_key": run_key, "stages": stages, **data}, blobs

    @classmethod
    def from_documents(
        cls,
        data: Mapping[str, Any],
        read: Callable[[str], Any],
        parsed: dict[str, Any] | None = None,
        *,
        decide_only: bool = False,
    ) -> SupervisorState:
        """The state from :meth:`to_documents`' document, reading the objects it names with ``read(key)``
        (``parsed``: objects already turned into pieces and indices, by key, kept by the caller). With
        ``decide_only``, a done stage's objects are read only where a decision needs them (the stage before the
        current one; every stage once none is left or the run is over): the others keep their objects' names, so
        a transition writes them back unchanged and an invocation's reading does not grow with the stages done."""
        parsed = {} if parsed is None else parsed
        if "run" in data:  # a document written before the run's spec was an object of its own
            state = cls.from_dict(data, parsed)
        else:
            run_key = str(data["run_key"])
            if run_key not in parsed:
                parsed[run_key] = _run_spec(_read_blob(read, run_key))
            state = replace(cls._from_dict(data, parsed[run_key]), run_key=run_key)
        current = next((i for i, s in enumerate(state.stages) if s.status != DONE), None)
        stages = []
        for i, stage in enumerate(state.stages):
            if decide_only and stage.status == DONE and not (state.over or current is None or i == current - 1):
                stages.append(stage)  # its pieces and failures are not needed to decide: kept by their names
                continue
            if stage.claimed_key:
                if stage.claimed_key not in parsed:
                    claim = _read_blob(read, stage.claimed_key)
                    pieces = tuple(_piece(p) for p in claim["pieces"])
                    parsed[stage.claimed_key] = (pieces, _from_ranges(claim["skipped"]))
                pieces, skipped = parsed[stage.claimed_key]
                stage = replace(stage, pieces=pieces, skipped=skipped)
            if stage.done_key:
                if stage.done_key not in parsed:
                    done = _read_blob(read, stage.done_key)
                    parsed[stage.done_key] = tuple((str(m), _from_ranges(v)) for m, v in done["failed"])
                stage = replace(stage, failed=parsed[stage.done_key])
            stages.append(stage)
        return replace(state, stages=tuple(stages))

    def to_dict(self) -> dict[str, Any]:
        # What ``asdict`` and a JSON round trip give, without ``asdict``'s deep copy of every index: a global
        # run's index maps hold about a hundred thousand, and the document is rewritten for every recorded job.
        document: dict[str, Any] = json.loads(json.dumps(self, default=_fields))
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], parsed: dict[str, Any] | None = None) -> SupervisorState:
        """``parsed``: a reader's cache; the run's spec never changes once begun, so it is parsed once."""
        key = f"run:{data['run']['run_id']}"
        if parsed is not None and key in parsed:
            return cls._from_dict(data, parsed[key])
        spec = _run_spec(data["run"])
        if parsed is not None:
            parsed[key] = spec
        return cls._from_dict(data, spec)

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], spec: RunSpec) -> SupervisorState:
        stages = tuple(
            StageState(
                stage=s["stage"],
                status=s["status"],
                claim=s.get("claim", ""),
                claim_until=s.get("claim_until", ""),
                sizes=tuple((str(k), int(v)) for k, v in s.get("sizes") or ()),
                skipped=tuple(int(i) for i in s.get("skipped") or ()),
                pieces=tuple(_piece(p) for p in s.get("pieces") or ()),
                jobs=tuple((str(k), str(v)) for k, v in s.get("jobs") or ()),
                failed=tuple((str(k), tuple(int(i) for i in v)) for k, v in s.get("failed") or ()),
                claimed_at=s.get("claimed_at", ""),
                done_at=s.get("done_at", ""),
                checked=bool(s.get("checked", True)),
                doubt=tuple(str(n) for n in s.get("doubt") or ()),
                claimed_key=str(s.get("claimed_key") or ""),
                done_key=str(s.get("done_key") or ""),
                round=int(s.get("round", 1)),
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
            redrives=tuple(Redrive.from_dict(r) for r in data.get("redrives") or ()),
            max_cost=None if data.get("max_cost") is None else float(data["max_cost"]),
        )


def _run_spec(run: Mapping[str, Any]) -> RunSpec:
    return RunSpec(
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


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass as the JSON encoder should write it: its fields in order (nested ones come back here); a
    module as its codec writes it."""
    if isinstance(value, Module):
        return module_to_dict(value)
    if isinstance(value, names.IndexMap):
        return list(value)  # type: ignore[return-value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _indices(value: Any) -> Sequence[int]:
    """Indices as a list, or as ranges (``0-211,213-4097``) in a document's objects."""
    if isinstance(value, str):
        return _from_ranges(value)
    return tuple(int(i) for i in value or ())


def _ranges(indices: Sequence[int]) -> str | list[int]:
    """Indices as ranges; a plain job's failure (index PLAIN, -1) stays a list."""
    if isinstance(indices, names.IndexMap):
        return indices.text  # read as ranges, written back as they were (never decoded)
    return list(indices) if any(i < 0 for i in indices) else names.encode_index_map(indices)


def _from_ranges(value: str | list[int]) -> Sequence[int]:
    """Ranges are decoded when first used (:class:`names.IndexMap`): an invocation reads its stage's claim and the
    stage before's end, and most need neither's indices, only their names and counts."""
    if isinstance(value, list):
        return tuple(int(i) for i in value)
    return names.IndexMap(value) if value else ()


def _piece(p: Mapping[str, Any]) -> Piece:
    return Piece(
        name=p["name"],
        module=p["module"],
        job_index=int(p["job_index"]),
        offset=int(p.get("offset", 0)),
        count=int(p.get("count", 1)),
        index_map=_indices(p.get("index_map")),
        plain=bool(p.get("plain", False)),
        round=int(p.get("round", 0)),
        queue=str(p.get("queue", "")),
        vcpus=float(p.get("vcpus", 0.0)),
        memory=int(p.get("memory", 0)),
        redrive=bool(p.get("redrive", False)),
    )


def _piece_dict(piece: Piece) -> dict[str, Any]:
    data: dict[str, Any] = {"name": piece.name, "module": piece.module, "job_index": piece.job_index}
    if piece.offset:
        data["offset"] = piece.offset
    if piece.count != 1:
        data["count"] = piece.count
    if piece.index_map:
        data["index_map"] = _ranges(piece.index_map)
    if piece.plain:
        data["plain"] = True
    for key in ("round", "queue", "vcpus", "memory", "redrive"):
        if getattr(piece, key):
            data[key] = getattr(piece, key)
    return data


def _blob(blobs: dict[str, Any], stage: str, kind: str, value: Any) -> str:
    body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    key = f"{names.SUPERVISOR_OBJECT_PREFIX}{stage}-{kind}-{hashlib.sha256(body).hexdigest()[:16]}.json"
    blobs[key] = value
    return key


def _read_blob(read: Callable[[str], Any], key: str) -> Any:
    value = read(key)
    if value is None:
        raise RecordError(f"the supervisor's document names {key}, which is missing from the ledger")
    return value


def read_state(read: Callable[[str], Any]) -> SupervisorState | None:
    """A run's supervised state from its ledger (``read(name)``: the ledger's ``read(run_id, name)``); None when
    the run is not supervised."""
    data = read(names.SUPERVISOR_DOCUMENT)
    if data is None:
        return None
    return SupervisorState.from_documents(data, read)


def round_lines(state: SupervisorState) -> list[str]:
    """The run's rounds in words, for ``status``, ``supervise --status`` and the summary: round 1, then each
    redrive with what it retried and, once its stage is done, how many of those succeeded."""
    if not state.redrives:
        return []
    lines = [f"round 1: the run, ended {state.redrives[0].ended.replace('_', ' ')}"]
    for i, r in enumerate(state.redrives):
        stage = state.stage_state(r.stage)
        retried = sum(len(v) for _, v in r.retried)
        what = ", ".join(f"{r.stage}.{m} {_said(v)}" for m, v in r.retried if v) or "nothing"
        line = f"round {r.round}: redrive at {r.at} by {r.by}: retried {retried} children ({what})"
        later = state.redrives[i + 1] if i + 1 < len(state.redrives) else None
        if later is not None and later.stage == r.stage:
            again = {(m, x) for m, v in later.retried for x in v}
        elif stage.status == DONE:
            again = {(m, x) for m, v in stage.failed for x in v}
        else:
            ended = f"; the run ended {state.state.replace('_', ' ')}" if state.over else "; running"
            lines.append(line + ended)
            continue
        failed = sum(1 for m, v in r.retried for x in v if (m, x) in again)
        lines.append(line + f"; {retried - failed} succeeded, {failed} failed again")
    return lines


def _said(indices: tuple[int, ...]) -> str:
    return "(its plain job)" if any(i < 0 for i in indices) else names.encode_index_map(indices)
