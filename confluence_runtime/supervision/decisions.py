"""Supervised runs, the pure core: which stage to submit, with which sizes and index maps, what to cancel, and
whether the run is over. No AWS call and no clock here; the local loop and the cloud handler (see
:mod:`confluence_runtime.supervision.loop`) read the ledger and AWS, call :func:`decide`, and apply what it returns."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .. import attempts, names
from ..config import Budget, Config, Module
from ..planning.estimate import module_size
from ..planning.shaping import (
    Shape,
    Submission,
    contract_environment,
    index_shapes,
    map_budget,
    module_submission,
    shapes,
)
from ..records.document import (
    CANCELLED,
    CLAIMED,
    DONE,
    FAILED,
    OVER_BUDGET,
    OVER_COST,
    PENDING,
    RUNNING,
    SUBMITTED,
    SUCCEEDED,
    Piece,
    Redrive,
    RunSpec,
    StageSpec,
    StageState,
    SupervisorState,
    children_of,
    is_array,
    round_lines,
)
from ..states import FINAL

# A child reclaimed in a module of an On-Demand kind (whose yaml-named queue may hold Spot environments all the same)
# is sent again this many rounds at most: it has no On-Demand queue to move to.
MAX_RECLAIM_ROUNDS = 5

# --------------------------------------------------------------------------------------------------------------
# Pieces: the SubmitJob calls of one stage


def module_pieces(module: Module, run_id: str, size: int, skip: Iterable[int] = ()) -> list[Piece]:
    """The jobs of one module: ``size`` children (0..size-1) minus ``skip``, for each of its ``num_jobs``
    (children, not items: a packed module's caller passes :func:`children_of`)."""
    if not is_array(module):
        return [
            Piece(names.job_name(run_id, module.stage, module.name, j), module.name, j, plain=True)
            for j in range(module.num_jobs)
        ]
    # The environment of the last job, told an index map: the widest job index and item count, so every map fits.
    widest = contract_environment(module, run_id, module.num_jobs - 1, Shape(), size * module.items_per_child)
    budget = map_budget(module.arguments, widest)
    found = shapes(size, skip, budget=budget)
    pieces = []
    for j in range(module.num_jobs):
        for k, shape in enumerate(found):
            name = names.job_name(run_id, module.stage, module.name, j, k if len(found) > 1 else None)
            pieces.append(Piece(name, module.name, j, shape.offset, shape.count, shape.index_map))
    return pieces


def submission(module: Module, piece: Piece, run: RunSpec, size: int) -> Submission:
    """The SubmitJob request of a piece, with the module contract's variables (no ``dependsOn``: the supervisor
    submits a stage only once the previous one is over). ``size`` counts items (``CONFLUENCE_ARRAY_SIZE``).
    A one-child piece is told its index, as a compact array's children are (``CONFLUENCE_INDEX``)."""
    return _submission(module, run, piece, items=size if is_array(module) else 0)


def _submission(module: Module, run: RunSpec, piece: Piece, items: int) -> Submission:
    submission = _module_submission(module, run, piece, items)
    # A retry round's job is recorded as a retry (its name says so too): the views let it stand for the children
    # it runs again, as they do for retry-failed's.
    return replace(submission, kind=names.RETRY) if piece.round else submission


def _module_submission(module: Module, run: RunSpec, piece: Piece, items: int) -> Submission:
    return module_submission(
        module,
        run_id=run.run_id,
        prefix=run.prefix,
        name=piece.name,
        job_index=piece.job_index,
        shape=piece.shape,
        item_count=items,
        tell=True,
        tags={names.TAG_SUPERVISED: "true"},
        job_queue=piece.queue or None,
        size=(piece.vcpus, piece.memory) if piece.memory else None,
    )


# --------------------------------------------------------------------------------------------------------------
# What AWS reported, as the core needs it


@dataclass(frozen=True)
class Observed:
    """One job as last observed: its status, its children's failures so far, and which of them are known."""

    status: str
    # global indices of failed children known so far (a names.IndexMap when read from a job's outcome object:
    # decoded only when a decision names the failures, at a stage's end)
    failed: Collection[int] = frozenset()
    failed_count: int = 0  # AWS's count of failed children (statusSummary), may exceed what was listed
    # Of ``failed``: those a Spot reclaim ended, with the attempts reclaims ended (global index, attempts), and
    # those killed for memory. Neither counts against the failure budget while a retry round may send it again.
    reclaimed: tuple[tuple[int, int], ...] = ()
    oom: frozenset[int] = frozenset()

    @property
    def final(self) -> bool:
        return self.status in FINAL


def observed_from_outcome(outcome: Any, piece: Piece) -> Observed:
    """An :class:`Observed` from a ledger :class:`~confluence_runtime.records.ledger.JobOutcome` of a piece's job."""
    if piece.plain or piece.count == 1:
        failed = frozenset(piece.indices) if outcome.status == "FAILED" else frozenset()
        reclaimed, oom = causes(outcome.failed) if failed else ((), frozenset())
        # its one child is the piece's index, whatever the ledger's entry says (a plain job's is PLAIN)
        return Observed(
            outcome.status,
            failed,
            len(failed),
            tuple((piece.indices[0], n) for _, n in reclaimed[:1]),
            frozenset(piece.indices) if oom else frozenset(),
        )
    named = frozenset(int(c.index) for c in outcome.failed)
    count = int(dict(outcome.counts).get("FAILED", 0))
    if outcome.status == "FAILED" and count >= piece.count and len(named) < piece.count:
        named = frozenset(piece.indices)  # every child failed: the ledger may keep only a sample of them
    return Observed(outcome.status, named, max(count, len(named)), *causes(outcome.failed))


def causes(children: Iterable[Any]) -> tuple[tuple[tuple[int, int], ...], frozenset[int]]:
    """Of failed children (the ledger's ``ChildOutcome``): those a Spot reclaim ended (index, reclaimed attempts;
    at least the last one) and those killed for memory, by :func:`attempts.classify_child`."""
    reclaimed: list[tuple[int, int]] = []
    oom: set[int] = set()
    kinds: dict[tuple[str, int | None], str] = {}  # a job's failed children mostly share a reason
    for child in children:
        key = (child.reason, child.exit_code)
        kind = kinds.get(key)
        if kind is None:
            kind = kinds[key] = attempts.classify_child(child.reason, child.exit_code)
        if kind == attempts.RECLAIMED:
            reclaimed.append((int(child.index), max(int(getattr(child, "reclaims", 0) or 0), 1)))
        elif kind == attempts.OUT_OF_MEMORY:
            oom.add(int(child.index))
    return tuple(sorted(reclaimed)), frozenset(oom)


# --------------------------------------------------------------------------------------------------------------
# Decisions and transitions


@dataclass(frozen=True)
class Decision:
    """What to do next. ``action``: ``claim``, ``submit``, ``retry``, ``finish``, ``end``, ``wait``, ``notify`` or
    ``idle``."""

    action: str
    stage: str = ""
    pieces: tuple[Piece, ...] = ()  # claim: every piece of the stage; submit: those without a recorded job
    sizes: tuple[tuple[str, int], ...] = ()
    skipped: tuple[int, ...] = ()
    takeover: bool = False  # submit: the stage was claimed by a supervisor whose lease ran out
    failed: tuple[tuple[str, tuple[int, ...]], ...] = ()
    cancel: tuple[str, ...] = ()  # job ids to stop (end)
    ending: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ModuleTally:
    module: str
    total: int
    failed: int
    budget: Budget

    @property
    def over(self) -> bool:
        return not self.budget.allows(self.failed, self.total)


def tally(
    run: RunSpec, stage: StageState, observed: Mapping[str, Observed], *, indices: bool = True
) -> tuple[dict[str, ModuleTally], dict[str, set[int]], bool]:
    """Per module of a submitted stage: children, failures so far and budget; the failed indices (left empty
    without ``indices``: counting needs only each job's count, and a decision names failures only at the end);
    all final? A child a retry round sends again (a Spot reclaim; a first out-of-memory kill where the module
    allows a retry) or already sent again is no failure of the round it failed in: only its last round's end
    counts. A stage a redrive re-opened counts each child once, however many rounds ran it."""
    if stage.round > 1:
        return _round_tally(run, stage, observed)
    jobs = stage.job_ids
    tallies: dict[str, ModuleTally] = {}
    failed: dict[str, set[int]] = {}
    final = True
    counts: dict[str, int] = {}
    for module in run.stage(stage.stage).modules:
        failed[module.name] = set()
        counts[module.name] = 0
    totals: dict[str, int] = dict.fromkeys(counts, 0)
    again = _sent_again(stage)
    pending = {(r.piece.name, r.index) for r in retries(run, stage, observed)}
    pending_names = {name for name, _ in pending}
    for piece in stage.pieces:
        if piece.round == 0:
            totals[piece.module] += piece.count
        seen = observed.get(jobs.get(piece.name, ""))
        if seen is None or not seen.final:
            final = False
        if seen is not None:
            later = again.get((piece.module, piece.job_index), {})
            if not later and piece.name not in pending_names:
                # Nothing of this job is sent again (the common case): its failures count as AWS counted them.
                if indices:
                    failed[piece.module].update(seen.failed)
                # AWS's count is never below the indices listed (observed_from_outcome takes the larger), so the
                # indices are counted only when AWS gave no count: counting a stored map means parsing it.
                counts[piece.module] += seen.failed_count or len(seen.failed)
                continue
            excused = {i for i in seen.failed if later.get(i, -1) > piece.round or (piece.name, i) in pending}
            kept = set(seen.failed) - excused
            failed[piece.module] |= kept
            counts[piece.module] += max(seen.failed_count - len(excused), len(kept))
    for module in run.stage(stage.stage).modules:
        name = module.name
        tallies[name] = ModuleTally(name, totals[name], max(counts[name], len(failed[name])), module.tolerated_failure)
    return tallies, failed, final


# --------------------------------------------------------------------------------------------------------------
# Retry rounds: Spot reclaims are not failures, and memory that learns


@dataclass(frozen=True)
class Retry:
    """One child a retry round sends again: where it last ran (``piece``), why, and where and how big it goes."""

    piece: Piece
    index: int
    why: str  # attempts.RECLAIMED or attempts.OUT_OF_MEMORY
    queue: str = ""
    vcpus: float = 0.0
    memory: int = 0
    reclaims: int = 0  # every reclaimed attempt of the child, over every round


def _sent_again(stage: StageState) -> dict[tuple[str, int], dict[int, int]]:
    """(module, job index) -> index -> the latest retry round that sent the child again (retry pieces only: they
    are few, so this never walks a whole array)."""
    found: dict[tuple[str, int], dict[int, int]] = {}
    for piece in stage.pieces:
        if piece.round:
            rounds = found.setdefault((piece.module, piece.job_index), {})
            for i in piece.indices:
                rounds[i] = max(rounds.get(i, 0), piece.round)
    return found


def retries(run: RunSpec, stage: StageState, observed: Mapping[str, Observed]) -> list[Retry]:
    """The children of a stage's final jobs to send again in a retry round: every child whose last round ended by
    a Spot reclaim (to the module's On-Demand queue once its reclaimed attempts over every round reach
    ``spot_reclaims_before_on_demand``), and a child killed for memory once, where the module has
    ``oom_retry_memory`` and a larger size exists (Fargate's table bounds it). A second out-of-memory kill, a
    timeout, a reclaim in the On-Demand queue and any other failure are failures."""
    jobs = stage.job_ids
    again = _sent_again(stage)
    reclaimed: dict[tuple[str, int, int], int] = {}
    ended: list[tuple[Piece, Observed]] = []
    for piece in sorted(stage.pieces, key=lambda p: p.round):
        seen = observed.get(jobs.get(piece.name, ""))
        if seen is None or not seen.final or not (seen.reclaimed or seen.oom):
            continue
        for i, n in seen.reclaimed:
            key = (piece.module, piece.job_index, i)
            reclaimed[key] = reclaimed.get(key, 0) + n
        ended.append((piece, seen))
    found: list[Retry] = []
    for piece, seen in ended:
        module = run.module(stage.stage, piece.module)
        later = again.get((piece.module, piece.job_index), {})
        on_demand = names.on_demand_queue(run.prefix, module.compute, run.queue_compute)
        for i, _ in seen.reclaimed:
            if later.get(i, -1) > piece.round or (on_demand is not None and piece.queue == on_demand):
                continue
            if on_demand is None and piece.round >= MAX_RECLAIM_ROUNDS:
                continue  # a queue with no On-Demand twin: a child reclaimed this often is a failure
            count = reclaimed[(piece.module, piece.job_index, i)]
            queue = on_demand if on_demand and count >= module.spot_reclaims_before_on_demand else piece.queue
            found.append(Retry(piece, i, attempts.RECLAIMED, queue, piece.vcpus, piece.memory, count))
        rule = module.oom_retry_memory
        if rule is None or piece.memory:
            continue  # no retry for memory, or this was it: a second kill is a failure
        vcpus, memory = module_size(module)
        bigger = attempts.next_memory(
            attempts.Size(vcpus, memory), rule, fargate=module.platform == names.PLATFORM_FARGATE
        )
        if bigger is None:
            continue
        for i in sorted(seen.oom):
            if later.get(i, -1) <= piece.round:
                found.append(Retry(piece, i, attempts.OUT_OF_MEMORY, piece.queue, bigger.vcpus, bigger.memory))
    return found


def next_generation(stage: StageState) -> int:
    """The number the next pieces sent again in a stage are named by (``..._retry-N``): one more than any piece
    of the stage has, whether a retry round (Spot reclaims, memory) or a redrive made it, so no two rounds of a
    stage ever share a job name (the lookup by name that makes a submission exactly-once relies on it)."""
    return max((p.round for p in stage.pieces), default=0) + 1


def retry_pieces(run: RunSpec, stage: StageState, found: Iterable[Retry]) -> list[Piece]:
    """The next retry round's pieces: the children grouped by module job, queue and size, each group as compact
    arrays (:func:`shaping.index_shapes`), named ``..._retry-ROUND[-CHUNK]`` (unique per round)."""
    number = next_generation(stage)
    groups: dict[tuple[str, int, str, float, int, bool], list[int]] = {}
    for r in found:
        key = (r.piece.module, r.piece.job_index, r.queue, r.vcpus, r.memory, r.piece.plain)
        groups.setdefault(key, []).append(r.index)
    pieces: list[Piece] = []
    chunks: dict[tuple[str, int], int] = {}
    for (module_name, j, queue, vcpus, memory, plain), indices in sorted(groups.items()):
        module = run.module(stage.stage, module_name)
        if plain:
            found_shapes = [Shape(plain=True)]
        else:
            size = dict(stage.sizes).get(module_name, 0)
            widest = contract_environment(
                module, run.run_id, module.num_jobs - 1, Shape(), size * module.items_per_child
            )
            found_shapes = index_shapes(sorted(set(indices)), budget=map_budget(module.arguments, widest))
        for shape in found_shapes:
            chunk = chunks.get((module_name, j), 0)
            chunks[(module_name, j)] = chunk + 1
            name = names.retry_name(run.run_id, stage.stage, module_name, j, number, chunk)
            where = Piece(name, module_name, j, round=number, queue=queue, vcpus=vcpus, memory=memory)
            if plain:
                pieces.append(replace(where, plain=True))
            else:
                pieces.append(replace(where, offset=shape.offset, count=shape.count, index_map=shape.index_map))
    return pieces


def retry_reason(found: Sequence[Retry]) -> str:
    """What a retry round sends again, in words (the run's events and the log)."""
    reclaims = [r for r in found if r.why == attempts.RECLAIMED]
    on_demand = sum(1 for r in reclaims if r.queue and r.queue != r.piece.queue)
    memory = [r for r in found if r.why == attempts.OUT_OF_MEMORY]
    parts = []
    if reclaims:
        parts.append(f"{len(reclaims)} reclaimed by Spot" + (f" ({on_demand} to On-Demand)" if on_demand else ""))
    if memory:
        sizes = sorted({f"{r.memory} MiB" for r in memory})
        parts.append(f"{len(memory)} out of memory (again with {', '.join(sizes)})")
    return ", ".join(parts)


def stage_sizes_needed(state: SupervisorState) -> StageSpec | None:
    """The stage whose sizes the shell must read (its ``items`` lists) before deciding, if any."""
    current = state.current()
    if state.over or current is None or current.status != PENDING:
        return None
    return state.run.stage(current.stage)


def decide(
    state: SupervisorState,
    observed: Mapping[str, Observed],
    *,
    now: str,
    token: str,
    sizes: Mapping[str, int] | None = None,
    cancelled: bool = False,
    spent: float | None = None,
) -> Decision:
    """The next step of a run, from its document, what was observed of its jobs (job id -> :class:`Observed`), the
    sizes of the pending stage's modules (from ``items``; fixed sizes need none) and whether someone cancelled it.
    ``now`` is an ISO time (leases), ``token`` this supervisor's identity; ``spent``: the run's measured spending
    so far in USD (its finished jobs, priced On-Demand), checked against the document's ``max_cost``."""
    if state.over:
        return Decision("idle" if state.notified else "notify", ending=state.state, reason=state.reason)
    current = state.current()
    if cancelled:
        return Decision("end", cancel=_active(state, observed), ending=CANCELLED, reason="the run was cancelled")
    if current is None:
        return Decision("end", ending=SUCCEEDED, reason=_success_reason(state))
    over_cost = cost_exceeded(state, spent)  # with work left: what waits is cancelled, nothing new starts
    if over_cost:
        return Decision("end", cancel=_active(state, observed), ending=OVER_COST, reason=over_cost)
    spec = state.run.stage(current.stage)

    if current.status == PENDING:
        index = [s.stage for s in state.stages].index(current.stage)
        previous = state.stages[index - 1] if index else None
        if current.round > 1 and current.pieces:
            return _reopened_claim(state, current, previous, observed)
        skip = previous.lost() if previous is not None and spec.dependency == "per_index" else set()
        got: dict[str, int] = {}
        for module in spec.modules:
            if module.items is not None:
                if sizes is None or module.name not in sizes:
                    return Decision("wait", stage=current.stage, reason=f"the size of {module.name} is not known")
                got[module.name] = int(sizes[module.name])
            else:
                got[module.name] = module.array_size if is_array(module) else module.num_jobs
        if spec.dependency == "per_index":
            arrays = {m.name: got[m.name] for m in spec.modules}
            packing = {m.name: m.items_per_child for m in spec.modules}
            if previous is not None:
                arrays.update({f"{previous.stage}.{k}": v for k, v in previous.sizes})
                before = state.run.stage(previous.stage).modules
                packing.update({f"{previous.stage}.{m.name}": m.items_per_child for m in before})
            if len(set(arrays.values())) > 1:
                listed = ", ".join(f"{k}={v}" for k, v in arrays.items())
                return Decision(
                    "end",
                    ending=FAILED,
                    reason=f"stage {current.stage} is per_index but its arrays differ in size from the previous "
                    f"stage's ({listed})",
                )
            if len(set(packing.values())) > 1:
                # Lost indices are children: they name the same items only when every array packs alike.
                listed = ", ".join(f"{k}={v}" for k, v in packing.items())
                return Decision(
                    "end",
                    ending=FAILED,
                    reason=f"stage {current.stage} is per_index but its arrays pack items differently from the "
                    f"previous stage's (items_per_child {listed})",
                )
        pieces: list[Piece] = []
        for module in spec.modules:
            children = children_of(module, got[module.name]) if is_array(module) else got[module.name]
            pieces.extend(module_pieces(module, state.run.run_id, children, skip))
        return Decision(
            "claim",
            stage=current.stage,
            pieces=tuple(pieces),
            sizes=tuple(got.items()),
            skipped=tuple(sorted(skip)),
        )

    if current.status == CLAIMED:
        mine = current.claim == token
        if not mine and current.claim_until > now:
            return Decision("wait", stage=current.stage, reason=f"stage {current.stage} is being submitted")
        jobs = current.job_ids
        missing = tuple(p for p in current.pieces if p.name not in jobs)
        return Decision("submit", stage=current.stage, pieces=missing, takeover=not mine or not current.checked)

    # SUBMITTED: every piece has a job; watch them.
    tallies, _, final = tally(state.run, current, observed, indices=False)
    over = [t for t in tallies.values() if t.over]
    if not over and not final:
        return Decision("wait", stage=current.stage, reason=f"stage {current.stage} is running")
    _, failed, _ = tally(state.run, current, observed)
    failed_items = tuple((m, tuple(sorted(v))) for m, v in failed.items())
    if over:
        words = "; ".join(
            f"{current.stage}.{t.module}: {t.failed} of {t.total} children failed, tolerated {t.budget}"
            # a share also says what it came to for this module ("5% (10)"); a count says it once
            + (f" ({t.budget.limit(t.total)})" if t.budget.percent is not None else "")
            for t in over
        )
        return Decision(
            "end",
            stage=current.stage,
            failed=failed_items,
            cancel=_active(state, observed),
            ending=OVER_BUDGET,
            reason=f"over the failure budget: {words}",
        )
    again = retries(state.run, current, observed)
    if again:
        return Decision(
            "retry",
            stage=current.stage,
            pieces=tuple(retry_pieces(state.run, current, again)),
            reason=retry_reason(again),
        )
    return Decision("finish", stage=current.stage, failed=failed_items)


def cost_exceeded(state: SupervisorState, spent: float | None) -> str:
    """Why the run must stop for its cost cap (``run --max-cost``), or "" while its measured spending is within
    it (or nothing was measured)."""
    cap = state.max_cost
    if cap is None or spent is None or spent <= cap:
        return ""
    return f"its measured spending ${spent:,.4f} (finished jobs, On-Demand prices) passed --max-cost ${cap:,.4f}"


def _active(state: SupervisorState, observed: Mapping[str, Observed]) -> tuple[str, ...]:
    """Jobs of the run not known to be final: what a stop must cancel or terminate."""
    return tuple(
        sorted(job_id for job_id in state.all_jobs().values() if job_id not in observed or not observed[job_id].final)
    )


def _success_reason(state: SupervisorState) -> str:
    failed = sum(len(v) for s in state.stages for _, v in s.failed)
    skipped = sum(len(s.skipped) for s in state.stages)
    if not failed:
        return "every stage succeeded"
    return (
        f"every stage completed; {failed} children failed within their budgets and {skipped} were left out downstream"
    )


# Transitions: pure functions of the stored document, applied with compare-and-swap (they may run again on a
# lost race, so each checks the state it expects and otherwise leaves the document alone).


def claim(state: SupervisorState, decision: Decision, *, token: str, now: str, until: str) -> SupervisorState:
    stage = state.stage_state(decision.stage)
    if state.over or stage.status != PENDING:
        return state
    status = CLAIMED if decision.pieces else SUBMITTED  # nothing left to run (all lost upstream): watch nothing
    return state.with_stage(
        replace(
            stage,
            status=status,
            claim=token,
            claim_until=until,
            claimed_at=now,
            sizes=decision.sizes,
            skipped=decision.skipped,
            # a stage re-opened by a redrive keeps its earlier rounds' pieces: the new round's come after them
            pieces=(stage.pieces if stage.round > 1 else ()) + decision.pieces,
            claimed_key="",
        )
    )


def retry(state: SupervisorState, decision: Decision, *, token: str, now: str, until: str) -> SupervisorState:
    """A retry round: its pieces join the stage, claimed by ``token`` (written ahead of any SubmitJob, like a
    stage's first claim); the loop then submits them as any claimed stage's pieces."""
    stage = state.stage_state(decision.stage)
    rounds = {p.round for p in decision.pieces}
    if state.over or stage.status != SUBMITTED or not decision.pieces or rounds & {p.round for p in stage.pieces}:
        return state
    return state.with_stage(
        replace(
            stage,
            status=CLAIMED,
            claim=token,
            claim_until=until,
            pieces=stage.pieces + decision.pieces,
            claimed_key="",
            checked=True,
        )
    )


def take_over(
    state: SupervisorState, stage_name: str, *, token: str, now: str, until: str, force: bool = False
) -> SupervisorState:
    """Move an expired claim (or, with ``force``, one whose claimant is known dead) to ``token``; the new
    claimant must search AWS for jobs the last one submitted but did not record before it submits (``checked``)."""
    stage = state.stage_state(stage_name)
    if state.over or stage.status != CLAIMED:
        return state
    if stage.claim == token:
        return state
    if stage.claim_until > now and not force:
        return state
    return state.with_stage(replace(stage, claim=token, claim_until=until, checked=False))


def checked(state: SupervisorState, stage_name: str, *, token: str) -> SupervisorState:
    """The claimant searched AWS and recorded what it found: it may submit the rest."""
    stage = state.stage_state(stage_name)
    if state.over or stage.status != CLAIMED or stage.claim != token:
        return state
    return state.with_stage(replace(stage, checked=True))


def doubted(state: SupervisorState, stage_name: str, names: Iterable[str]) -> SupervisorState:
    """Note names a second job may exist under (a lost SubmitJob reply, or a submission after a lookup that
    ListJobs's eventual consistency may have answered too early): they are looked up again once submitted."""
    stage = state.stage_state(stage_name)
    added = tuple(n for n in dict.fromkeys(names) if n not in stage.doubt)
    if not added:
        return state
    return state.with_stage(replace(stage, doubt=stage.doubt + added))


def record_job(
    state: SupervisorState, stage_name: str, name: str, job_id: str, *, token: str = "", until: str = ""
) -> SupervisorState:
    """Record a piece's job id (the first recorded id wins); the stage is submitted once every piece has one.
    The claimant's lease is extended to ``until`` (a long stage keeps its claim while it makes progress)."""
    stage = state.stage_state(stage_name)
    jobs = stage.job_ids
    if name in jobs or name not in {p.name for p in stage.pieces}:
        return state
    jobs[name] = job_id
    status = SUBMITTED if all(p.name in jobs for p in stage.pieces) else stage.status
    lease = until if token and stage.claim == token and until > stage.claim_until else stage.claim_until
    return state.with_stage(replace(stage, jobs=tuple(jobs.items()), status=status, claim_until=lease))


def finish(state: SupervisorState, decision: Decision, *, now: str) -> SupervisorState:
    stage = state.stage_state(decision.stage)
    if state.over or stage.status != SUBMITTED:
        return state
    return state.with_stage(replace(stage, status=DONE, failed=decision.failed, done_at=now, done_key=""))


def end(state: SupervisorState, decision: Decision, *, now: str) -> SupervisorState:
    if state.over:
        return state
    if decision.stage and decision.failed:
        stage = state.stage_state(decision.stage)
        state = state.with_stage(replace(stage, failed=decision.failed, done_key=""))
    return replace(state, state=decision.ending, reason=decision.reason, ended_at=now)


def notified(state: SupervisorState) -> SupervisorState:
    return replace(state, notified=True)


def exit_code(state: SupervisorState) -> int:
    """0 when every stage ran (failures within budgets), 1 otherwise."""
    return 0 if state.state == SUCCEEDED else 1


@dataclass(frozen=True)
class Summary:
    """The end of a run in numbers, for the one-paragraph summary and the command's last lines."""

    run_id: str
    state: str
    reason: str
    stages_done: int
    stages: int
    children: int
    failed: int
    skipped: int
    failed_by_module: tuple[tuple[str, int], ...] = field(default=())
    sent_again: int = 0  # children retry rounds sent again (Spot reclaims, out-of-memory kills): not failures
    rounds: tuple[str, ...] = ()  # a redriven run's rounds (:func:`~confluence_runtime.records.document.round_lines`)

    def paragraph(self) -> str:
        lines = [
            f"Confluence run {self.run_id} ended {self.state.replace('_', ' ')}: {self.reason}.",
            f"{self.stages_done} of {self.stages} stages completed; {self.children} children submitted, "
            f"{self.failed} failed, {self.skipped} left out because their index failed upstream.",
        ]
        if self.sent_again:
            lines.append(
                f"{self.sent_again} children were sent again after a Spot reclaim or an out-of-memory kill "
                "(not counted as failures)."
            )
        if self.failed_by_module:
            lines.append("Failures by module: " + ", ".join(f"{m} {n}" for m, n in self.failed_by_module) + ".")
        if self.rounds:
            lines.append("Rounds: " + "; ".join(self.rounds) + ".")
        return " ".join(lines)


def summarize(state: SupervisorState) -> Summary:
    failed_by: dict[str, int] = {}
    for s in state.stages:
        for module, indices in s.failed:
            if indices:
                failed_by[f"{s.stage}.{module}"] = failed_by.get(f"{s.stage}.{module}", 0) + len(indices)
    return Summary(
        run_id=state.run.run_id,
        state=state.state,
        reason=state.reason,
        stages_done=sum(1 for s in state.stages if s.status == DONE),
        stages=len(state.stages),
        children=sum(p.count for s in state.stages for p in s.pieces if p.name in s.job_ids and not p.round),
        sent_again=sum(
            p.count for s in state.stages for p in s.pieces if p.name in s.job_ids and p.round and not p.redrive
        ),
        failed=sum(failed_by.values()),
        skipped=sum(len(s.skipped) for s in state.stages),
        failed_by_module=tuple(failed_by.items()),
        rounds=tuple(round_lines(state)),
    )


def packing(state: SupervisorState) -> dict[str, tuple[int, int]]:
    """Module -> (items per child, item count) of every packed array whose stage was sized: what the report needs
    to list a failed child as the items it stood for (:func:`confluence_runtime.names.items_of_child`)."""
    found: dict[str, tuple[int, int]] = {}
    for stage in state.stages:
        for module, size in stage.sizes:
            spec = state.run.module(stage.stage, module)
            if is_array(spec) and spec.items_per_child > 1:
                found[module] = (spec.items_per_child, size)
    return found


def with_item_sizes(config: Config, sizes: Mapping[tuple[str, str], int]) -> Config:
    """The config with each ``items`` module's ``array_size`` set to its list's length ((stage, module) -> n):
    what an unsupervised ``run`` plans with, having read the lists at submit time."""
    stages = tuple(
        replace(
            stage,
            modules=tuple(
                replace(m, array_size=sizes[(m.stage, m.name)]) if (m.stage, m.name) in sizes else m
                for m in stage.modules
            ),
        )
        for stage in config.stages
    )
    return replace(config, stages=stages)


# --------------------------------------------------------------------------------------------------------------
# Redrive: retry-failed on a supervised run that ended over budget or with tolerated failures. As Step Functions'
# redrive does, the run goes on where it stopped: the stage with failed children is re-opened with a new round of
# pieces for exactly those children, and the stages after it then run (for the first time, or again for what the
# round recovered), each per_index stage leaving out what is still lost upstream.

REDRIVABLE = (OVER_BUDGET, SUCCEEDED)


def redrive_stage(state: SupervisorState) -> StageState | None:
    """The stage a redrive re-opens: the one that went over budget, or the first one with failed children."""
    if state.state == OVER_BUDGET:
        return state.current()
    if state.state == SUCCEEDED:
        return next((s for s in state.stages if any(indices for _, indices in s.failed)), None)
    return None


def redrive_refusal(state: SupervisorState) -> str | None:
    """Why this run cannot be redriven (None: it can)."""
    run_id = state.run.run_id
    if not state.over:
        return f"run {run_id} is still running: a redrive continues a run that ended; wait for it to end or cancel it"
    if state.state not in REDRIVABLE:
        return (
            f"run {run_id} ended {state.state.replace('_', ' ')}: only a run that ended over budget or finished "
            "with tolerated failures can be redriven"
        )
    if redrive_stage(state) is None:
        return f"run {run_id} succeeded without failures: there is nothing to redrive"
    return None


def failures_by_job(
    stage: StageState, observed: Mapping[str, Observed]
) -> tuple[dict[tuple[str, int], set[int]], dict[tuple[str, int], set[int]], bool]:
    """Per (module, job index) of a stage: the indices its pieces cover and those failed now, and whether every
    recorded piece is final. Pieces are read in order (earlier rounds first): a later piece's children stand in for
    the same indices of an earlier one, so an index a running retry covers is not failed until that retry says so."""
    jobs = stage.job_ids
    covered: dict[tuple[str, int], set[int]] = {}
    failed: dict[tuple[str, int], set[int]] = {}
    final = True
    for piece in stage.pieces:
        key = (piece.module, piece.job_index)
        covered.setdefault(key, set()).update(piece.indices)
        now = failed.setdefault(key, set())
        now.difference_update(piece.indices)
        seen = observed.get(jobs.get(piece.name, ""))
        if seen is None or not seen.final:
            final = False
        if seen is not None:
            now |= set(seen.failed)
    return covered, failed, final


def _round_tally(
    run: RunSpec, stage: StageState, observed: Mapping[str, Observed]
) -> tuple[dict[str, ModuleTally], dict[str, set[int]], bool]:
    """:func:`tally` of a stage a redrive re-opened: children counted once however many rounds ran them, and (as
    in any stage) none that a retry round is about to send again after a Spot reclaim or a memory kill."""
    covered, failed_by, final = failures_by_job(stage, observed)
    for again in retries(run, stage, observed):
        failed_by.get((again.piece.module, again.piece.job_index), set()).discard(again.index)
    tallies: dict[str, ModuleTally] = {}
    failed: dict[str, set[int]] = {}
    for module in run.stage(stage.stage).modules:
        keys = [k for k in covered if k[0] == module.name]
        failed[module.name] = set().union(*(failed_by[k] for k in keys))
        total = sum(len(covered[k]) for k in keys)
        count = sum(len(failed_by[k]) for k in keys)
        tallies[module.name] = ModuleTally(module.name, total, count, module.tolerated_failure)
    return tallies, failed, final


def round_pieces(
    module: Module, run_id: str, children: int, indices: Mapping[int, Iterable[int]], generation: int
) -> list[Piece]:
    """The pieces of a redrive round for one module: per job index, those children (of ``children``) as compact
    arrays ``..._J_retry-G`` (G: :func:`next_generation`, shared with the stage's retry rounds; index maps within
    AWS's override limit, :func:`module_pieces`' shaping); a plain job again as ``..._J_rerun-G``."""
    pieces: list[Piece] = []
    if not is_array(module):
        for j in sorted(indices):
            if set(indices[j]):
                name = names.rerun_name(names.job_name(run_id, module.stage, module.name, j), generation)
                pieces.append(Piece(name, module.name, j, plain=True, round=generation, redrive=True))
        return pieces
    widest = contract_environment(module, run_id, module.num_jobs - 1, Shape(), children * module.items_per_child)
    budget = map_budget(module.arguments, widest)
    for j in sorted(indices):
        keep = {i for i in indices[j] if 0 <= i < children}
        if not keep:
            continue
        found = shapes(children, set(range(children)) - keep, budget=budget)
        for k, shape in enumerate(found):
            name = names.retry_name(run_id, module.stage, module.name, j, generation, k)
            pieces.append(
                Piece(name, module.name, j, shape.offset, shape.count, shape.index_map, round=generation, redrive=True)
            )
    return pieces


def _children(state: SupervisorState, stage: StageState, module: Module) -> int:
    if not is_array(module):
        return 1
    return children_of(module, dict(stage.sizes).get(module.name, 0))


def redrive(
    state: SupervisorState, observed: Mapping[str, Observed], *, at: str, by: str, round_number: int = 0
) -> SupervisorState:
    """The run re-opened for a new round (a transition; unchanged when the run cannot be redriven any more, e.g.
    another redrive won the race): the stage :func:`redrive_stage` names gets pieces for its failed children
    (``observed``: its jobs, all final), the stages after it that had run go back to pending, and the run is
    running again. ``round_number``: the round the caller meant to open (0: the next one)."""
    target = redrive_stage(state)
    if target is None or redrive_refusal(state) is not None:
        return state
    number = state.round + 1
    if round_number and round_number != number:
        return state
    _, failed, _ = failures_by_job(target, observed)
    generation = next_generation(target)
    pieces: list[Piece] = []
    retried: list[tuple[str, tuple[int, ...]]] = []
    for module in state.run.stage(target.stage).modules:
        mine = {k[1]: failed[k] for k in sorted(failed) if k[0] == module.name and failed[k]}
        pieces.extend(round_pieces(module, state.run.run_id, _children(state, target, module), mine, generation))
        indices = tuple(sorted(set().union(*mine.values()))) if mine else ()
        if indices:
            retried.append((module.name, indices))
    reopened = replace(
        target,
        status=CLAIMED if pieces else SUBMITTED,
        claim="",  # nobody's: the supervisor that goes on takes it over, looking its names up in AWS first
        claim_until="",
        checked=False,
        pieces=target.pieces + tuple(pieces),
        claimed_key="",
        failed=(),
        done_key="",
        doubt=(),
        round=number,
    )
    after = False
    stages = []
    for stage in state.stages:
        if stage.stage == target.stage:
            stages.append(reopened)
            after = True
        elif after and stage.status == DONE:
            stages.append(replace(stage, status=PENDING, round=number))
        else:
            stages.append(stage)
    record = Redrive(at=at, by=by, round=number, stage=target.stage, retried=tuple(retried), ended=state.state)
    return replace(
        state,
        stages=tuple(stages),
        state=RUNNING,
        reason="",
        ended_at="",
        notified=False,
        redrives=(*state.redrives, record),
    )


def _reopened_claim(
    state: SupervisorState, current: StageState, previous: StageState | None, observed: Mapping[str, Observed]
) -> Decision:
    """The claim of a stage that had run before a redrive re-opened the run: a per_index stage runs what it left
    out or lost before and is no longer lost upstream; a stage that waits for the whole stage before it runs
    again whole (its input changed), as retry-failed reruns what waited on a retried job."""
    spec = state.run.stage(current.stage)
    lost = previous.lost() if previous is not None and spec.dependency == "per_index" else set()
    _, failed, _ = failures_by_job(current, observed)
    generation = next_generation(current)
    pieces: list[Piece] = []
    for module in spec.modules:
        children = _children(state, current, module)
        wanted: dict[int, set[int]] = {}
        for j in range(module.num_jobs):
            if spec.dependency == "per_index":
                redo = set(current.skipped) | failed.get((module.name, j), set())
                wanted[j] = {i for i in redo if i not in lost}
            else:
                wanted[j] = set(range(children)) if is_array(module) else {0}
        pieces.extend(round_pieces(module, state.run.run_id, children, wanted, generation))
    return Decision(
        "claim", stage=current.stage, pieces=tuple(pieces), sizes=current.sizes, skipped=tuple(sorted(lost))
    )
