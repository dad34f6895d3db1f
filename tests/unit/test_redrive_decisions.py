"""Redrive in the supervisor's pure core: which children a new round retries, how the stage's budget counts them
while they run, what the document records, and which runs cannot be redriven."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from confluence_runtime.planning.shaping import module_from_dict
from confluence_runtime.records.document import RunSpec, StageSpec, SupervisorState, round_lines
from confluence_runtime.supervision import decisions as core
from confluence_runtime.supervision.decisions import Observed

RUN = "20261208T030000-rdrv"
NOW = "2026-12-08T03:00:00.000+00:00"


def _module(stage: str, **kw: Any) -> Any:
    return module_from_dict(
        dict(stage=stage, module="m", job_queue=f"q-{stage}", job_definition="d-m", array_size=10, **kw)
    )


def _run() -> SupervisorState:
    run = RunSpec(
        RUN,
        "p",
        (
            StageSpec("one", (_module("one", tolerated_failure=1),)),
            StageSpec("two", (_module("two"),), dependency="per_index"),
        ),
    )
    return SupervisorState.start(run, "local")


def _step(state: SupervisorState, observed: dict[str, Observed]) -> tuple[SupervisorState, core.Decision]:
    """One decision applied the way the shell applies it (job ids are ``job-NAME``)."""
    decision = core.decide(state, observed, now=NOW, token="t")
    if decision.action == "claim":
        state = core.claim(state, decision, token="t", now=NOW, until="9999")
    elif decision.action == "submit":
        if decision.takeover:  # the shell looks the names up in AWS first (nothing found here)
            state = core.take_over(state, decision.stage, token="t", now=NOW, until="9999")
            state = core.checked(state, decision.stage, token="t")
        for piece in decision.pieces:
            state = core.record_job(state, decision.stage, piece.name, f"job-{piece.name}")
    elif decision.action == "finish":
        state = core.finish(state, decision, now=NOW)
    elif decision.action == "end":
        state = core.end(state, decision, now=NOW)
    return state, decision


def _over_budget() -> tuple[SupervisorState, dict[str, Observed]]:
    state, _ = _step(_run(), {})
    state, _ = _step(state, {})
    observed = {f"job-{RUN}_one_m_0": Observed("FAILED", frozenset({2, 3, 5}), 3)}
    state, decision = _step(state, observed)
    assert (decision.action, state.state) == ("end", "over_budget")
    return state, observed


def test_an_over_budget_stage_is_reopened_with_a_round_of_its_failed_children() -> None:
    state, observed = _over_budget()
    assert core.redrive_refusal(state) is None

    redriven = core.redrive(state, observed, at=NOW, by="retry-failed")

    one = redriven.stage_state("one")
    assert (redriven.state, redriven.notified, one.status, one.round, one.claim) == ("running", False, "claimed", 2, "")
    [_, retry] = one.pieces
    assert (retry.name, retry.index_map, retry.count) == (f"{RUN}_one_m_0_retry-1", (2, 3, 5), 3)
    assert redriven.redrives[0].retried == (("m", (2, 3, 5)),)
    # a second redrive meant for the same round (a lost race) changes nothing
    assert core.redrive(redriven, observed, at=NOW, by="other", round_number=2) == redriven
    # the document keeps the redrive and the stage's round
    data, blobs = redriven.to_documents()
    again = SupervisorState.from_documents(data, blobs.get)
    assert again.redrives == redriven.redrives and again.stage_state("one").round == 2


def test_while_the_round_runs_its_children_do_not_count_against_the_budget_and_its_outcome_replaces_theirs() -> None:
    state, observed = _over_budget()
    state = core.redrive(state, observed, at=NOW, by="retry-failed")
    state, decision = _step(state, observed)  # the claim is nobody's: taken over, after a lookup by name
    assert (decision.action, decision.takeover) == ("submit", True)
    retry = f"job-{RUN}_one_m_0_retry-1"
    # 3 of 10 failed before, but they are being retried: the run waits instead of ending over budget again
    state, decision = _step(state, {**observed, retry: Observed("RUNNING")})
    assert decision.action == "wait"
    # one of the three fails again: 1 of 10, within the budget of 1; stage two runs without it
    state, decision = _step(state, {**observed, retry: Observed("SUCCEEDED", frozenset({3}), 1)})
    assert (decision.action, decision.failed) == ("finish", (("m", (3,)),))
    state, decision = _step(state, {})
    assert (decision.action, decision.skipped) == ("claim", (3,))
    assert round_lines(state)[1].endswith("retried 3 children (one.m 2,3,5); 2 succeeded, 1 failed again")


def test_a_run_with_tolerated_failures_reruns_what_its_later_stage_left_out() -> None:
    state, _ = _step(_run(), {})
    state, _ = _step(state, {})
    one = {f"job-{RUN}_one_m_0": Observed("SUCCEEDED", frozenset({4}), 1)}
    state, _ = _step(state, one)  # finish: 1 failure tolerated
    state, _ = _step(state, one)  # claim two without index 4
    state, _ = _step(state, one)
    two = {**one, f"job-{RUN}_two_m_0": Observed("SUCCEEDED")}
    state, _ = _step(state, two)
    state, decision = _step(state, two)
    assert (decision.action, decision.ending) == ("end", "succeeded")
    state = core.redrive(state, one, at=NOW, by="retry-failed")
    assert [(s.stage, s.status, s.round) for s in state.stages] == [("one", "claimed", 2), ("two", "pending", 2)]
    state, _ = _step(state, one)
    fixed = {**two, f"job-{RUN}_one_m_0_retry-1": Observed("SUCCEEDED")}
    state, decision = _step(state, fixed)
    assert (decision.action, decision.failed) == ("finish", (("m", ()),))
    state, decision = _step(state, fixed)
    assert decision.action == "claim"
    [piece] = decision.pieces
    assert (piece.name, piece.offset, piece.count, decision.skipped) == (f"{RUN}_two_m_0_retry-1", 4, 1, ())


def test_runs_that_cannot_be_redriven_say_why() -> None:
    running = _run()
    assert core.redrive_refusal(running) == (
        f"run {RUN} is still running: a redrive continues a run that ended; wait for it to end or cancel it"
    )
    cancelled = replace(running, state="cancelled")
    assert core.redrive_refusal(cancelled) == (
        f"run {RUN} ended cancelled: only a run that ended over budget or finished with tolerated failures can be "
        "redriven"
    )
    clean = replace(running, state="succeeded")
    assert core.redrive_refusal(clean) == f"run {RUN} succeeded without failures: there is nothing to redrive"
    assert core.redrive(clean, {}, at=NOW, by="x") == clean


def test_a_redrive_after_a_retry_round_names_its_jobs_apart_from_the_rounds() -> None:
    # Job names are how a supervisor finds what AWS accepted: a redrive's round must not reuse the name of a Spot
    # retry round of the same stage (both are "..._retry-N").
    state, observed = _over_budget()
    one = state.stage_state("one")
    retried = core.Piece(f"{RUN}_one_m_0_retry-1", "m", 0, count=1, offset=7, round=1)
    state = state.with_stage(replace(one, pieces=(*one.pieces, retried), jobs=(*one.jobs, (retried.name, "job-r"))))
    observed = {**observed, "job-r": Observed("SUCCEEDED")}

    redriven = core.redrive(state, observed, at=NOW, by="retry-failed")

    pieces = redriven.stage_state("one").pieces
    assert [p.name for p in pieces] == [f"{RUN}_one_m_0", f"{RUN}_one_m_0_retry-1", f"{RUN}_one_m_0_retry-2"]
    assert core.next_generation(redriven.stage_state("one")) == 3
    # the redrive's piece is a redrive, not a Spot retry: the summary does not count it as sent again
    assert [p.redrive for p in pieces] == [False, False, True]
    data, blobs = redriven.to_documents()
    assert [p.redrive for p in SupervisorState.from_documents(data, blobs.get).stage_state("one").pieces] == [
        False,
        False,
        True,
    ]


def test_in_a_redriven_stage_children_a_spot_reclaim_ended_go_again_and_do_not_count() -> None:
    state, observed = _over_budget()
    state = core.redrive(state, observed, at=NOW, by="retry-failed")
    state, decision = _step(state, observed)  # the round's claim is taken over and its piece submitted
    assert decision.action == "submit"
    # GIVEN the redrive's job ended with two of its three children reclaimed by Spot (budget: 1 failure)
    retry = f"job-{RUN}_one_m_0_retry-1"
    observed = {**observed, retry: Observed("FAILED", frozenset({2, 3}), 2, reclaimed=((2, 1), (3, 1)))}
    # THEN they go again in a retry round instead of ending the run over budget
    decision = core.decide(state, observed, now=NOW, token="t")
    assert decision.action == "retry", decision.reason
    assert [p.name for p in decision.pieces] == [f"{RUN}_one_m_0_retry-2"]
