"""The supervisor's pure core, and the shell driven through a model of AWS Batch under hypothesis.

The model (:class:`World`) holds jobs by id, finishes them in an order hypothesis picks, fails the children a
scenario names, answers ``find`` by name and can crash at any effect (SubmitJob or a ledger write). Supervisors are
killed there and replaced by new ones (new identity, clock moved past the lease), extra supervisors are run at
random moments (duplicate and reordered events: every invocation re-reads everything), and at the end the run
must have submitted every piece exactly once, run exactly the children it should, and ended as its budgets say.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confluence_runtime import names
from confluence_runtime.config import Budget, Module, parse_budget
from confluence_runtime.planning.shaping import PLAIN, module_from_dict
from confluence_runtime.records import document
from confluence_runtime.records.document import Piece, RunSpec, StageSpec, SupervisorState
from confluence_runtime.records.ledger import Blob, ChildOutcome, JobOutcome, Ledger, LedgerConflict, RunEvent, now_iso
from confluence_runtime.supervision import decisions as core
from confluence_runtime.supervision.decisions import Observed, module_pieces
from confluence_runtime.supervision.loop import Supervisor, write_documents

RUN = "20261126T010000-abcd"


# --------------------------------------------------------------------------------------------------------------
# Budgets


@pytest.mark.parametrize(
    ("value", "total", "limit"),
    [(0, 210, 0), (3, 210, 3), ("3", 10, 3), ("5%", 210, 10), ("5%", 19, 0), ("2.5%", 400, 10), ("100%", 7, 7)],
)
def test_budget_limits(value: Any, total: int, limit: int) -> None:
    budget = parse_budget(value)
    assert budget.limit(total) == limit
    assert budget.allows(limit, total) and not budget.allows(limit + 1, total)


@pytest.mark.parametrize("value", [-1, "-1%", "101%", "five", True, 1.5, "%", None])
def test_budget_rejects(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        parse_budget(value)


def test_budget_text() -> None:
    assert [str(parse_budget(v)) for v in (0, "5%", "2.5%", 7)] == ["0", "5%", "2.5%", "7"]
    assert Budget(percent=Fraction(5)).limit(210) == 10


# --------------------------------------------------------------------------------------------------------------
# Pieces


def spec(module: str = "m", stage: str = "s", **kw: Any) -> Module:
    """A module as the supervisor's document keeps it (its codec's keys)."""
    return module_from_dict(
        dict(stage=stage, module=module, job_queue=f"q-{stage}", job_definition=f"d-{module}", **kw)
    )


def test_pieces_without_skips_follow_the_plan_sharding() -> None:
    pieces = module_pieces(spec(array_size=25_000), RUN, 25_000)
    assert [(p.name, p.offset, p.count) for p in pieces] == [
        (f"{RUN}_s_m_0-0", 0, 8334),
        (f"{RUN}_s_m_0-1", 8334, 8333),
        (f"{RUN}_s_m_0-2", 16667, 8333),
    ]


def test_pieces_skip_lost_indices_with_ranges_and_index_maps() -> None:
    # 0..2999 minus 1500, 2001 and 2003: one compact array whose map is "0-1499,1501-2000,2002,2004-2999".
    skip = {1500, 2001, 2003}
    pieces = module_pieces(spec(array_size=3000), RUN, 3000, skip)
    assert [(p.name, p.offset, p.count, len(p.index_map)) for p in pieces] == [(f"{RUN}_s_m_0", 0, 2997, 2997)]
    request = core.submission(spec(array_size=3000), pieces[0], RunSpec(RUN, "p", ()), 3000).request({})
    env = {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}
    assert env["CONFLUENCE_INDEX_MAP"] == "0-1499,1501-2000,2002,2004-2999"
    covered = [i for p in pieces for i in p.indices]
    assert sorted(covered) == [i for i in range(3000) if i not in skip]
    assert pieces[0].global_index(1500) == 1501 and pieces[0].global_index(7) == 7


def test_scattered_survivors_fill_maps_up_to_the_override_budget() -> None:
    # Every third child lost from 0..29,999: 20,000 survivors in runs of two, which no range shortens; each map
    # holds what 8,192 characters (less shaping.OVERRIDE_MARGIN and the other variables) take, about a thousand.
    skip = set(range(0, 30_000, 3))
    pieces = module_pieces(spec(array_size=30_000), RUN, 30_000, skip)
    assert all(
        len(str(core.submission(spec(array_size=30_000), p, RunSpec(RUN, "p", ()), 30_000).request({}))) < 9000
        for p in pieces
    )
    assert sorted(i for p in pieces for i in p.indices) == [i for i in range(30_000) if i not in skip]
    # A contiguous remainder goes as an offset array: 0..29,999 minus 0 is 1..29,999 in three shards.
    whole = module_pieces(spec(array_size=30_000), RUN, 30_000, {0})
    assert [(p.offset, p.count, p.index_map) for p in whole] == [
        (1, 10_000, ()),
        (10_001, 10_000, ()),
        (20_001, 9_999, ()),
    ]


def test_pieces_of_one_survivor_and_plain_modules() -> None:
    only = module_pieces(spec(array_size=5), RUN, 5, {0, 1, 3, 4})
    assert only == [Piece(f"{RUN}_s_m_0", "m", 0, offset=2, count=1)]
    assert only[0].indices == (2,)
    plain = module_pieces(spec(num_jobs=2), RUN, 2)
    assert [(p.name, p.indices) for p in plain] == [(f"{RUN}_s_m_0", (PLAIN,)), (f"{RUN}_s_m_1", (PLAIN,))]
    assert module_pieces(spec(items="s3://b/k.json"), RUN, 0) == []


def test_submission_carries_the_module_contract() -> None:
    run = RunSpec(RUN, "confluence-dev", (StageSpec("s", (spec(array_size=6, environment=(("A", "1"),)),)),))
    compact = Piece(f"{RUN}_s_m_0", "m", 0, count=3, index_map=(0, 2, 5))
    request = core.submission(run.stages[0].modules[0], compact, run, 6).request({})
    env = {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}
    assert request["arrayProperties"] == {"size": 3}
    assert "dependsOn" not in request
    assert env == {
        "A": "1",
        "CONFLUENCE_RUN_ID": RUN,
        "CONFLUENCE_STAGE": "s",
        "CONFLUENCE_MODULE": "m",
        "CONFLUENCE_JOB_INDEX": "0",
        "CONFLUENCE_NUM_JOBS": "1",
        "CONFLUENCE_ARRAY_SIZE": "6",
        "CONFLUENCE_INDEX_MAP": "0,2,5",
    }
    assert request["tags"]["confluence:supervised"] == "true"
    single = core.submission(run.stages[0].modules[0], Piece("x", "m", 0, offset=4), run, 6).request({})
    assert "arrayProperties" not in single
    assert {e["name"]: e["value"] for e in single["containerOverrides"]["environment"]}["CONFLUENCE_INDEX"] == "4"


def test_document_round_trips() -> None:
    run = RunSpec(
        RUN,
        "p",
        (
            StageSpec(
                "s",
                (
                    spec(
                        array_size=4,
                        tolerated_failure="5%",
                        retry_on=((("action", "RETRY"), ("onReason", "Host EC2*")),),
                    ),
                ),
            ),
        ),
    )
    state = SupervisorState.start(run, "cloud", "s3://b/runs")
    decision = core.decide(state, {}, now="2026-11-26T01:00:00.000+00:00", token="t")
    state = core.claim(state, decision, token="t", now="n", until="u")
    state = core.record_job(state, "s", decision.pieces[0].name, "job-1")
    assert SupervisorState.from_dict(state.to_dict()) == state
    # Split for the ledger: the run's spec and the pieces (index maps as ranges) in objects of their own, named by
    # their content; the document names them, and reads back as the same state.
    document, objects = state.to_documents()
    [run_key, key] = sorted(objects)
    assert key.startswith("supervisor-s-claim-") and key.endswith(".json")
    assert run_key.startswith("supervisor-run-spec-") and objects[run_key]["run_id"] == state.run.run_id
    assert "pieces" not in document["stages"][0] and document["stages"][0]["claimed_key"] == key
    assert "run" not in document and document["run_key"] == run_key
    again = SupervisorState.from_documents(document, objects.get)
    assert replace(again, stages=tuple(replace(s, claimed_key="") for s in again.stages)) == state
    # Written once: a state read back names its object and makes no new one.
    assert again.to_documents() == (document, {})


# --------------------------------------------------------------------------------------------------------------
# The model of AWS and the ledger store


class Crash(Exception):
    """The supervisor process dies here (a kill, a Lambda timeout)."""


@dataclass
class Fuse:
    """Counts effects; blows (raises Crash) at the chosen ones."""

    at: set[int] = field(default_factory=set)
    count: int = 0

    def tick(self) -> None:
        self.count += 1
        if self.count in self.at:
            raise Crash(self.count)


class MemoryStore:
    """The ledger's :class:`~confluence_runtime.records.ledger.Store` protocol in memory, with crashes before writes."""

    location = "memory://ledger"

    def __init__(self, fuse: Fuse) -> None:
        self.data: dict[str, tuple[bytes, int]] = {}
        self.fuse = fuse

    def get(self, key: str) -> Blob | None:
        found = self.data.get(key)
        return Blob(found[0], str(found[1])) if found else None

    def create(self, key: str, body: bytes) -> Blob:
        self.fuse.tick()
        if key in self.data:
            raise LedgerConflict(key)
        self.data[key] = (body, 1)
        return Blob(body, "1")

    def replace(self, key: str, body: bytes, version: str) -> Blob:
        self.fuse.tick()
        if key not in self.data or str(self.data[key][1]) != version:
            raise LedgerConflict(key)
        self.data[key] = (body, self.data[key][1] + 1)
        return Blob(body, str(self.data[key][1]))

    def list_dirs(self) -> list[str]:
        return sorted({k.split("/", 1)[0] for k in self.data})


@dataclass
class Job:
    job_id: str
    name: str
    queue: str
    piece: Piece
    status: str = "SUBMITTED"
    failed: tuple[int, ...] = ()


class World:
    """AWS Batch as the supervisor sees it: jobs by id, found by name, finished when the test says so."""

    def __init__(self, fuse: Fuse, failing: set[tuple[str, str, int]], items: dict[str, int]) -> None:
        self.fuse = fuse
        self.failing = failing  # (stage, module, global index) whose child fails
        self.items = items
        self.jobs: dict[str, Job] = {}
        self.submits: list[str] = []
        self.stopped: set[str] = set()

    def submit(self, request: dict[str, Any]) -> str:
        self.fuse.tick()
        job_id = f"job-{len(self.jobs)}"
        tags = request["tags"]
        env = {e["name"]: e["value"] for e in request.get("containerOverrides", {}).get("environment", [])}
        size = request.get("arrayProperties", {}).get("size", 1)
        if "CONFLUENCE_INDEX_MAP" in env:
            piece = Piece(
                request["jobName"],
                tags["confluence:module"],
                0,
                count=size,
                index_map=tuple(names.decode_index_map(env["CONFLUENCE_INDEX_MAP"])),
            )
        elif env["CONFLUENCE_ARRAY_SIZE"] == "0":
            piece = Piece(request["jobName"], tags["confluence:module"], 0, plain=True)
        else:
            offset = int(env.get("CONFLUENCE_INDEX", env["CONFLUENCE_ARRAY_OFFSET"]))
            piece = Piece(request["jobName"], tags["confluence:module"], 0, offset=offset, count=size)
        self.jobs[job_id] = Job(job_id, request["jobName"], request["jobQueue"], piece)
        self.submits.append(request["jobName"])
        return job_id

    def find(self, names: list[str], queues: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for job in self.jobs.values():
            if job.name in names:
                found.setdefault(job.name, []).append(job.job_id)
        return found

    def finish(self, job: Job) -> None:
        stage = job.name[len(RUN) + 1 :].split("_")[0]
        job.failed = tuple(i for i in job.piece.indices if (stage, job.piece.module, i) in self.failing)
        job.status = "FAILED" if job.failed else "SUCCEEDED"

    def observe(self, jobs: list[tuple[Piece, str]]) -> list[JobOutcome]:
        outcomes = []
        for piece, job_id in jobs:
            job = self.jobs[job_id]
            array = piece.count >= 2
            outcomes.append(
                JobOutcome(
                    job_id=job_id,
                    job_name=job.name,
                    status=job.status,
                    observed_at=now_iso(),
                    array_size=piece.count if array else 0,
                    counts=(("FAILED", len(job.failed)),) if array and job.failed else (),
                    failed=tuple(ChildOutcome(index=i, status="FAILED") for i in job.failed) if array else (),
                    index_map=piece.index_map,
                )
            )
        return outcomes

    def stop(self, job_ids: list[str], reason: str) -> None:
        for job_id in job_ids:
            job = self.jobs[job_id]
            if job.status not in ("SUCCEEDED", "FAILED"):
                job.status = "FAILED"
                self.stopped.add(job_id)

    def item_count(self, url: str) -> int:
        return self.items[url]


# --------------------------------------------------------------------------------------------------------------
# Scenarios


SIZE = 12


def scenario_run() -> RunSpec:
    """Four stages: an items-sized array with a 2-failure budget, a per_index pair of modules (5 %), a plain job
    with the default budget 0, and a per_index stage after a whole-stage one."""
    return RunSpec(
        RUN,
        "confluence-dev",
        (
            StageSpec("input", (spec("input", "input", items="s3://json/reaches.json", tolerated_failure="2"),)),
            StageSpec(
                "flpe",
                (
                    spec("neobam", "flpe", array_size=SIZE, tolerated_failure="25%"),
                    spec("sad", "flpe", array_size=SIZE, tolerated_failure="25%"),
                ),
                "per_index",
            ),
            StageSpec("moi", (spec("moi", "moi"),)),
            StageSpec("offline", (spec("offline", "offline", array_size=SIZE, tolerated_failure="100%"),)),
        ),
    )


def expected(run: RunSpec, failing: set[tuple[str, str, int]]) -> tuple[str, dict[str, set[int]], dict[str, set[int]]]:
    """How the run must end, and per stage the indices that must run and those that must fail."""
    ran: dict[str, set[int]] = {}
    failed_by_stage: dict[str, set[int]] = {}
    lost: set[int] = set()
    for stage in run.stages:
        skip = lost if stage.dependency == "per_index" else set()
        stage_failed: set[int] = set()
        over = False
        for module in stage.modules:
            indices = {i for i in range(SIZE) if i not in skip} if document.is_array(module) else {PLAIN}
            ran[f"{stage.name}.{module.name}"] = indices
            bad = {i for i in indices if (stage.name, module.name, i) in failing}
            stage_failed |= bad
            if not module.tolerated_failure.allows(len(bad), len(indices)):
                over = True
        failed_by_stage[stage.name] = stage_failed
        if over:
            return document.OVER_BUDGET, ran, failed_by_stage
        lost = {i for i in stage_failed if i != PLAIN} | skip
    return document.SUCCEEDED, ran, failed_by_stage


failing_sets = st.sets(
    st.one_of(
        st.tuples(st.just("input"), st.just("input"), st.integers(0, SIZE - 1)),
        st.tuples(st.just("flpe"), st.sampled_from(["neobam", "sad"]), st.integers(0, SIZE - 1)),
        st.tuples(st.just("moi"), st.just("moi"), st.just(PLAIN)),
        st.tuples(st.just("offline"), st.just("offline"), st.integers(0, SIZE - 1)),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    failing=failing_sets,
    crashes=st.sets(st.integers(1, 60), max_size=4),
    schedule=st.lists(
        st.tuples(st.sampled_from(["finish", "invoke", "invoke-late", "idle"]), st.integers(0, 99)),
        min_size=40,
        max_size=120,
    ),
)
@pytest.mark.slow
def test_any_order_of_events_and_crashes_submits_each_piece_once_and_ends_by_the_budgets(
    failing: set[tuple[str, str, int]], crashes: set[int], schedule: list[tuple[str, int]]
) -> None:
    run = scenario_run()
    fuse = Fuse(at=set(crashes))
    store = MemoryStore(Fuse())  # the document is created without crashes; the fuse is armed below
    ledger = Ledger(store)
    ledger.update(
        RUN,
        core.names.SUPERVISOR_DOCUMENT,
        lambda _: write_documents(ledger, RUN, SupervisorState.start(run, "cloud"), {}),
    )
    store.fuse = fuse
    world = World(fuse, failing, {"s3://json/reaches.json": SIZE})
    clock = [datetime(2026, 11, 26, 1, 0, tzinfo=UTC)]
    generation = [0]

    def supervisor() -> Supervisor:
        generation[0] += 1
        return Supervisor(ledger, world, RUN, token=f"sup-{generation[0]}", lease=900, clock=lambda: clock[0])

    def invoke() -> None:
        # A crash kills that invocation; EventBridge retries it later, or the next event comes.
        with contextlib.suppress(Crash):
            supervisor().advance()

    # Events arrive (finish a job) and invocations run in the order hypothesis chose; "invoke-late" is a retried
    # invocation after the lease of a dead claimant ran out.
    for action, pick in schedule:
        active = [j for j in world.jobs.values() if j.status not in ("SUCCEEDED", "FAILED")]
        if action == "finish" and active:
            world.finish(active[pick % len(active)])
        elif action == "invoke":
            invoke()
        elif action == "invoke-late":
            clock[0] += timedelta(seconds=901)
            invoke()
    # Then the world settles: every job finishes, and supervisors keep being invoked until the run is reported.
    fuse.at.clear()
    for _ in range(50):
        for job in list(world.jobs.values()):
            if job.status not in ("SUCCEEDED", "FAILED"):
                world.finish(job)
        clock[0] += timedelta(seconds=901)
        invoke()
        state = Supervisor(ledger, world, RUN, token="reader").load()
        if state.over and state.notified:
            break
    state = Supervisor(ledger, world, RUN, token="reader").load()
    ending, ran, failed_by_stage = expected(run, failing)

    # Exactly once: no name was ever submitted twice, and every recorded job is the one AWS holds.
    assert len(world.submits) == len(set(world.submits))
    recorded = state.all_jobs()
    assert set(recorded) == set(world.submits)
    assert {r.job_name: r.job_id for r in ledger.jobs(RUN)} == recorded
    # The run ended as the budgets say, and ran exactly the children it should.
    assert state.over and state.notified
    assert state.state == ending
    for s in state.stages:
        if s.status != document.DONE:
            continue
        for module in run.stage(s.stage).modules:
            got = {i for p in s.pieces if p.module == module.name for i in p.indices}
            assert got == ran[f"{s.stage}.{module.name}"]
        assert {i for _, v in s.failed for i in v} == failed_by_stage[s.stage]
    done = [s.stage for s in state.stages if s.status == document.DONE]
    if ending == document.SUCCEEDED:
        assert done == [s.name for s in run.stages]
    else:
        assert len(done) < len(run.stages)
        assert state.reason.startswith("over the failure budget")
    assert exit_code_of(state) == (0 if ending == document.SUCCEEDED else 1)


def exit_code_of(state: SupervisorState) -> int:
    return core.exit_code(state)


# --------------------------------------------------------------------------------------------------------------
# Stale decisions: a supervisor that decided on an old document and applies its transition to a newer one


@settings(max_examples=200, deadline=None)
@given(steps=st.integers(0, 12), stale=st.integers(0, 12), failing=failing_sets)
def test_transitions_from_stale_decisions_never_reclaim_or_rerecord(
    steps: int, stale: int, failing: set[tuple[str, str, int]]
) -> None:
    run = scenario_run()
    states = [SupervisorState.start(run, "cloud")]
    observed: dict[str, Observed] = {}
    job = iter(range(10_000))
    for _ in range(max(steps, stale)):
        state = states[-1]
        decision = core.decide(state, observed, now="2026", token="a", sizes={"input": SIZE})
        if decision.action == "claim":
            state = core.claim(state, decision, token="a", now="2026", until="2027")
        elif decision.action == "submit":
            for piece in decision.pieces:
                job_id = f"j{next(job)}"
                state = core.record_job(state, decision.stage, piece.name, job_id)
                stage = decision.stage
                bad = frozenset(i for i in piece.indices if (stage, piece.module, i) in failing)
                observed[job_id] = Observed("FAILED" if bad else "SUCCEEDED", bad, len(bad))
        elif decision.action == "finish":
            state = core.finish(state, decision, now="2026")
        elif decision.action == "end":
            state = core.end(state, decision, now="2026")
        states.append(state)
    old, new = states[min(stale, len(states) - 1)], states[min(steps, len(states) - 1)]
    decision = core.decide(old, observed, now="2026", token="b", sizes={"input": SIZE})
    if decision.action == "claim":
        after = core.claim(new, decision, token="b", now="2026", until="2027")
    elif decision.action == "finish":
        after = core.finish(new, decision, now="2026")
    elif decision.action == "end":
        after = core.end(new, decision, now="2026")
    else:
        after = new
    for before_stage, after_stage in zip(new.stages, after.stages, strict=True):
        if before_stage.status != document.PENDING:
            # A claimed stage keeps its pieces and the jobs recorded for them.
            assert after_stage.pieces == before_stage.pieces
            assert after_stage.claim == before_stage.claim
            assert set(before_stage.jobs) <= set(after_stage.jobs)
    if new.over:
        assert (after.state, after.reason) == (new.state, new.reason)


def test_cancelled_run_stops_what_runs() -> None:
    run = scenario_run()
    fuse = Fuse()
    ledger = Ledger(MemoryStore(fuse))
    ledger.update(
        RUN,
        core.names.SUPERVISOR_DOCUMENT,
        lambda _: write_documents(ledger, RUN, SupervisorState.start(run, "local"), {}),
    )
    world = World(fuse, set(), {"s3://json/reaches.json": SIZE})
    ended: list[str] = []
    sup = Supervisor(ledger, world, RUN, token="t", on_end=lambda s: ended.append(s.state))
    assert sup.advance().action == "wait"
    assert len(world.jobs) == 1
    ledger.note(RUN, RunEvent(at=now_iso(), kind="cancelled", detail="by a person"))
    assert sup.advance().action == "idle"
    assert world.stopped == {"job-0"}
    assert ended == [document.CANCELLED]
