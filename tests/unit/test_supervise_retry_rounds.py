"""Retry rounds of a supervised stage, the pure core: Spot reclaims are not failures (On-Demand after
``spot_reclaims_before_on_demand`` reclaims of a child), and a child killed for memory goes again once with more.

The reason texts are AWS's (confluence_runtime/attempts.py quotes them): Fargate Spot's task stop reason "Your Spot
Task was interrupted.", ECS's container reason "OutOfMemoryError: Container killed due to memory usage" (exit code
137) and Batch's "Job attempt duration exceeded timeout" ("If a job is terminated for exceeding the timeout
duration, it isn't retried")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from confluence_runtime import attempts, names
from confluence_runtime.planning.shaping import module_from_dict
from confluence_runtime.records import document
from confluence_runtime.records.document import Piece, RunSpec, StageSpec, SupervisorState
from confluence_runtime.records.ledger import ChildOutcome, JobOutcome
from confluence_runtime.supervision import decisions as core
from confluence_runtime.supervision.decisions import Observed

RUN = "20261208T030000-spot"
PREFIX = "p"
OK = ("ok", 0)
# How an attempt ends, as ListJobs/DescribeJobs tell it: (reason, exit code)
WORDS = {
    attempts.RECLAIMED: (attempts.FARGATE_SPOT_REASON, None),
    attempts.OUT_OF_MEMORY: (f"Essential container in task exited: {attempts.OOM_REASON}", 137),
    attempts.TIMED_OUT: (attempts.TIMEOUT_REASON, None),
    attempts.FAILED: ("Essential container in task exited", 1),
}
Fate = Callable[[Piece, int], tuple[str, int]]  # (piece, global index) -> (how it ended, reclaimed attempts)


def run_of(size: int = 200, budget: str = "1%", **module: Any) -> RunSpec:
    spec = module_from_dict(
        dict(
            stage="s",
            module="m",
            job_queue="p-s",
            job_definition="p-m",
            array_size=size,
            tolerated_failure=budget,
            **module,
        )
    )
    return RunSpec(RUN, PREFIX, (StageSpec("s", (spec,)),))


def outcome(piece: Piece, fate: Fate) -> JobOutcome:
    children = []
    for array_index, i in enumerate(piece.indices):
        how, reclaims = fate(piece, i)
        if how == "ok":
            continue
        reason, exit_code = WORDS[how]
        children.append(ChildOutcome(i, "FAILED", reason, exit_code, array_index=array_index, reclaims=reclaims))
    status = "FAILED" if children else "SUCCEEDED"
    return JobOutcome(
        piece.name, piece.name, status, "now", counts=(("FAILED", len(children)),), failed=tuple(children)
    )


def drive(run: RunSpec, fate: Fate) -> tuple[SupervisorState, list[core.Decision]]:
    """Decide and apply until the run is over, every job final at once with the children's ``fate``."""
    state = SupervisorState.start(run, "local")
    observed: dict[str, Observed] = {}
    taken: list[core.Decision] = []
    for _ in range(50):
        decision = core.decide(state, observed, now="2026", token="a")
        taken.append(decision)
        if decision.action == "claim":
            state = core.claim(state, decision, token="a", now="2026", until="2027")
        elif decision.action == "retry":
            state = core.retry(state, decision, token="a", now="2026", until="2027")
        elif decision.action == "submit":
            for piece in decision.pieces:
                state = core.record_job(state, decision.stage, piece.name, piece.name)
                observed[piece.name] = core.observed_from_outcome(outcome(piece, fate), piece)
        elif decision.action == "finish":
            state = core.finish(state, decision, now="2026")
        elif decision.action == "end":
            state = core.end(state, decision, now="2026")
        else:
            return state, taken
    raise AssertionError("the run did not end")


def rounds(state: SupervisorState) -> list[Piece]:
    return [p for p in state.stage_state("s").pieces if p.round]


def test_five_percent_reclaimed_ends_succeeded_within_a_one_percent_budget() -> None:
    # GIVEN 10 of 200 children (5 %) reclaimed once, budget 1 % (2 children)
    reclaimed = set(range(0, 200, 20))

    def fate(piece: Piece, i: int) -> tuple[str, int]:
        return (attempts.RECLAIMED, 1) if i in reclaimed and not piece.round else OK

    state, taken = drive(run_of(), fate)
    # THEN one retry round sends exactly them again, on Spot still, as one compact array, and the run succeeds
    assert state.state == document.SUCCEEDED and state.reason == "every stage succeeded"
    (retry,) = [d for d in taken if d.action == "retry"]
    assert retry.reason == "10 reclaimed by Spot"
    (piece,) = rounds(state)
    assert piece.name == f"{RUN}_s_m_0_retry-1" and piece.round == 1 and piece.queue == ""
    assert piece.indices == tuple(sorted(reclaimed))
    request = core.submission(state.run.module("s", "m"), piece, state.run, 200).request({})
    environment = {e["name"]: e["value"] for e in request["containerOverrides"]["environment"]}
    assert environment["CONFLUENCE_INDEX_MAP"] == ",".join(str(i) for i in sorted(reclaimed))
    assert request["jobQueue"] == "p-s" and "resourceRequirements" not in request["containerOverrides"]
    assert core.summarize(state).failed == 0 and core.summarize(state).children == 200
    assert "10 children were sent again after a Spot reclaim" in core.summarize(state).paragraph()


def test_a_child_reclaimed_twice_goes_to_the_on_demand_queue() -> None:
    # GIVEN child 7 reclaimed on every Spot attempt; spot_reclaims_before_on_demand 2 (the default)
    def fate(piece: Piece, i: int) -> tuple[str, int]:
        return (attempts.RECLAIMED, 1) if i == 7 and piece.queue != "p-efs" else OK

    state, _ = drive(run_of(), fate)
    # THEN round 1 stays on Spot (1 reclaim so far), round 2 goes to the venue's Fargate On-Demand queue: the efs
    # tool's, as the run has no queue of compute fargate
    assert [(p.round, p.queue, p.indices) for p in rounds(state)] == [(1, "", (7,)), (2, "p-efs", (7,))]
    last = rounds(state)[-1]
    assert last.name == f"{RUN}_s_m_0_retry-2"
    assert core.submission(state.run.module("s", "m"), last, state.run, 200).request({})["jobQueue"] == "p-efs"
    assert state.state == document.SUCCEEDED


def test_reclaimed_attempts_within_one_job_count_too_and_ec2_spot_has_its_own_on_demand_queue() -> None:
    # GIVEN an ec2_spot module whose retry strategy already retried child 3 after a reclaim: 2 reclaimed attempts
    def fate(piece: Piece, i: int) -> tuple[str, int]:
        return (attempts.RECLAIMED, 2) if i == 3 and not piece.round else OK

    state, _ = drive(run_of(compute="ec2_spot", spot_reclaims_before_on_demand=2), fate)
    # THEN its first retry goes On-Demand at once
    assert [(p.round, p.queue) for p in rounds(state)] == [(1, "p-on-demand-ec2")]
    assert names.on_demand_queue(PREFIX, "fargate", {}) is None and names.on_demand_queue(PREFIX, "ec2", {}) is None
    # a queue of the On-Demand kind the venue already has is used as it is
    assert names.on_demand_queue(PREFIX, "ec2_spot", {"p-a-ec2-spot": "ec2_spot", "p-b-ec2": "ec2"}) == "p-b-ec2"
    assert names.on_demand_queue(PREFIX, "fargate_spot", {"p-a": "fargate_spot", "p-b-fargate": "fargate"}) == (
        "p-b-fargate"
    )


def test_out_of_memory_goes_again_once_with_more_memory_then_counts() -> None:
    # GIVEN children 1 and 2 killed for memory; child 2 again with more memory; budget 0; oom_retry_memory 2x
    def fate(piece: Piece, i: int) -> tuple[str, int]:
        if (i == 1 and not piece.memory) or i == 2:
            return attempts.OUT_OF_MEMORY, 0
        return OK

    run = run_of(budget="0", vcpus=1, memory=2048, oom_retry_memory="2x")
    state, taken = drive(run, fate)
    # THEN one retry round asks for 4096 MiB (a Fargate size for 1 vCPU), through containerOverrides
    (retry,) = [d for d in taken if d.action == "retry"]
    assert retry.reason == "2 out of memory (again with 4096 MiB)"
    (piece,) = rounds(state)
    assert (piece.indices, piece.vcpus, piece.memory) == ((1, 2), 1.0, 4096)
    request = core.submission(run.module("s", "m"), piece, run, 200).request({})
    assert request["containerOverrides"]["resourceRequirements"] == [
        {"type": "MEMORY", "value": "4096"},
        {"type": "VCPU", "value": "1"},
    ]
    # AND child 2's second kill is a failure: over a budget of 0
    assert state.state == document.OVER_BUDGET
    assert "s.m: 1 of 200 children failed, tolerated 0" in state.reason
    assert state.stage_state("s").failed_map == {"m": (2,)}


def test_no_memory_retry_without_the_setting_nor_past_fargates_largest_and_timeouts_are_failures() -> None:
    def fate(piece: Piece, i: int) -> tuple[str, int]:
        return {4: (attempts.OUT_OF_MEMORY, 0), 5: (attempts.TIMED_OUT, 0)}.get(i, OK)

    for run in (run_of(budget="2"), run_of(budget="2", vcpus=16, memory=122_880, oom_retry_memory="2x")):
        state, taken = drive(run, fate)
        assert not any(d.action == "retry" for d in taken)
        assert state.state == document.SUCCEEDED
        assert state.stage_state("s").failed_map == {"m": (4, 5)}


def test_retry_pieces_round_trip_through_the_document_and_a_stale_retry_changes_nothing() -> None:
    def fate(piece: Piece, i: int) -> tuple[str, int]:
        return (attempts.RECLAIMED, 2) if i in (3, 4, 5, 9) and not piece.round else OK

    run = run_of(vcpus=1, memory=2048)
    state = SupervisorState.start(run, "local")
    observed: dict[str, Observed] = {}
    decision = core.decide(state, observed, now="2026", token="a")
    state = core.claim(state, decision, token="a", now="2026", until="2027")
    for piece in decision.pieces:
        state = core.record_job(state, "s", piece.name, piece.name)
        observed[piece.name] = core.observed_from_outcome(outcome(piece, fate), piece)
    retry = core.decide(state, observed, now="2026", token="a")
    assert retry.action == "retry"
    after = core.retry(state, retry, token="a", now="2026", until="2027")
    assert after.stage_state("s").status == document.CLAIMED
    data, blobs = after.to_documents()
    assert SupervisorState.from_documents(data, blobs.get).stage_state("s").pieces == after.stage_state("s").pieces
    # A decision made before another supervisor applied the same round adds nothing twice
    assert core.retry(after, retry, token="b", now="2026", until="2027") == after


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 59),
        st.sampled_from([attempts.RECLAIMED, attempts.FAILED, attempts.TIMED_OUT]),
        max_size=30,
    ),
    st.integers(1, 3),
)
def test_reclaims_never_change_the_failure_tally(fates: dict[int, str], threshold: int) -> None:
    # GIVEN children that fail, time out or are reclaimed (each reclaimed child once per Spot round)
    def fate(piece: Piece, i: int) -> tuple[str, int]:
        how = fates.get(i)
        if how is None or (how == attempts.RECLAIMED and piece.queue):
            return OK
        return how, int(how == attempts.RECLAIMED)

    run = run_of(size=60, budget="100%", spot_reclaims_before_on_demand=threshold)
    state, _ = drive(run, fate)
    # THEN the failures are exactly the children that failed or timed out, whatever the reclaims
    failed = {i for i, how in fates.items() if how != attempts.RECLAIMED}
    assert set(state.stage_state("s").failed_map.get("m", ())) == failed
    assert core.summarize(state).failed == len(failed)
    # AND a reclaimed child ran On-Demand after exactly ``threshold`` Spot rounds
    for i, how in fates.items():
        if how == attempts.RECLAIMED:
            covering = [p for p in state.stage_state("s").pieces if i in p.indices]
            assert [bool(p.queue) for p in covering] == [False] * threshold + [True]
