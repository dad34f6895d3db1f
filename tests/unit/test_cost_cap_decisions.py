"""run --max-cost in the supervisor's pure core: decide() is given the run's measured spending."""

from __future__ import annotations

from dataclasses import replace

from test_redrive_decisions import NOW, RUN, _run, _step

from confluence_runtime.supervision import decisions as core
from confluence_runtime.supervision.decisions import Observed


def test_spending_past_the_cap_ends_the_run_over_cost_and_stops_what_is_active() -> None:
    state, _ = _step(replace(_run(), max_cost=0.5), {})
    state, _ = _step(state, {})
    running = {f"job-{RUN}_one_m_0": Observed("RUNNING")}
    assert core.decide(state, running, now=NOW, token="t", spent=0.5).action == "wait"  # at the cap: within
    assert core.decide(state, running, now=NOW, token="t", spent=None).action == "wait"  # nothing measured

    decision = core.decide(state, running, now=NOW, token="t", spent=0.51)

    assert (decision.action, decision.ending, decision.cancel) == ("end", "over_cost", (f"job-{RUN}_one_m_0",))
    assert (
        decision.reason == "its measured spending $0.5100 (finished jobs, On-Demand prices) passed --max-cost $0.5000"
    )
    assert core.end(state, decision, now=NOW).state == "over_cost"


def test_without_a_cap_spending_decides_nothing_and_a_run_with_nothing_left_succeeds() -> None:
    state, _ = _step(_run(), {})
    assert core.cost_exceeded(state, 1e9) == ""
    capped = replace(_run(), max_cost=0.0)
    done = replace(capped, stages=tuple(replace(s, status="done") for s in capped.stages))
    assert core.decide(done, {}, now=NOW, token="t", spent=5.0).ending == "succeeded"
