"""Packing (``items_per_child``) in supervised runs, the pure core: index maps of packed children, lost children
left out downstream, and failed children reported as the items they stood for.

Every child reads its items the way the README's module loop does (``names.items_in_environment``), from the environment the
supervisor submits, so these properties are about what a container actually works on.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from confluence_runtime import names
from confluence_runtime.config import Module
from confluence_runtime.planning.shaping import module_from_dict
from confluence_runtime.records import document
from confluence_runtime.records.document import Piece, RunSpec, StageSpec, SupervisorState
from confluence_runtime.records.ledger import ChildOutcome, JobOutcome, RunHeader, RunRecord
from confluence_runtime.records.record import Row
from confluence_runtime.supervision import decisions as core
from confluence_runtime.supervision.decisions import Observed
from confluence_runtime.views.report import build_report, confluence_failures

RUN = "20261126T040000-pack"
NOW = "2026-11-26T04:00:00.000+00:00"


def spec(module: str, stage: str, per_child: int, **kw: Any) -> Module:
    return module_from_dict(
        dict(
            stage=stage,
            module=module,
            job_queue=f"q-{stage}",
            job_definition=f"d-{module}",
            items_per_child=per_child,
            **kw,
        )
    )


def ranges_run(module: Module, run: RunSpec, pieces: list[Piece], size: int) -> list[range]:
    """The items each child of these pieces works on, child by child, as submitted."""
    read = []
    for piece in pieces:
        env = dict(core.submission(module, piece, run, size).environment)
        for child in range(piece.count):
            got = names.items_in_environment(env, child)
            # The report maps a failed child back through global_index: it must name the child that read these.
            assert got == names.items_of_child(
                piece.global_index(child if piece.count > 1 else None), module.items_per_child, size
            )
            read.append(got)
    return read


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    size=st.integers(2, 30_000),
    per_child=st.integers(1, 12),
)
def test_packed_children_minus_the_lost_ones_read_every_other_item_exactly_once(
    data: st.DataObject, size: int, per_child: int
) -> None:
    module = spec("m", "s", per_child, array_size=size)
    run = RunSpec(RUN, "p", (StageSpec("s", (module,)),))
    children = document.children_of(module, size)
    lost = data.draw(
        st.one_of(
            st.sets(st.integers(0, children - 1), max_size=40),
            # a long block lost (a whole shard's worth of failures), plus a few scattered ones
            st.tuples(
                st.integers(0, children - 1), st.integers(0, 3000), st.sets(st.integers(0, children - 1), max_size=5)
            ).map(lambda t: set(range(t[0], min(t[0] + t[1], children))) | t[2]),
        ),
        label="lost children",
    )

    pieces = core.module_pieces(module, RUN, children, lost)

    # Each surviving child once, every piece within AWS's limits, and the items of lost children never run.
    covered = [i for p in pieces for i in p.indices]
    assert sorted(covered) == [c for c in range(children) if c not in lost]
    assert all(1 <= p.count <= 10_000 for p in pieces)
    read = ranges_run(module, run, pieces, size)
    assert sorted((r.start, r.stop) for r in read) == [
        (r.start, r.stop) for c in range(children) if c not in lost for r in [names.items_of_child(c, per_child, size)]
    ]
    assert all(r.stop <= size and len(r) >= 1 for r in read)


def run_of(size: int, per_child: int) -> RunSpec:
    return RunSpec(
        RUN,
        "confluence-dev",
        (
            StageSpec(
                "input", (spec("input", "input", per_child, items="s3://json/reaches.json", tolerated_failure="100%"),)
            ),
            StageSpec(
                "flpe",
                (spec("neobam", "flpe", per_child, array_size=size), spec("sad", "flpe", per_child, array_size=size)),
                "per_index",
            ),
        ),
    )


def advance(state: SupervisorState, observed: dict[str, Observed], failing: set[int], size: int) -> SupervisorState:
    """Claim and submit the current stage; its jobs end with the children in ``failing`` failed; finish it."""
    decision = core.decide(state, observed, now=NOW, token="t", sizes={"input": size})
    assert decision.action == "claim", decision
    state = core.claim(state, decision, token="t", now=NOW, until="2027")
    for piece in decision.pieces:
        job_id = f"{piece.name}-id"
        state = core.record_job(state, decision.stage, piece.name, job_id, token="t")
        bad = frozenset(i for i in piece.indices if i in failing)
        observed[job_id] = Observed("FAILED" if bad else "SUCCEEDED", bad, len(bad))
    decision = core.decide(state, observed, now=NOW, token="t", sizes={"input": size})
    assert decision.action == "finish", decision
    return core.finish(state, decision, now=NOW)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), size=st.integers(2, 3_000), per_child=st.integers(2, 10))
def test_a_failed_packed_child_loses_its_items_downstream_and_the_report_lists_exactly_them(
    data: st.DataObject, size: int, per_child: int
) -> None:
    run = run_of(size, per_child)
    children = -(-size // per_child)
    failing = data.draw(st.sets(st.integers(0, children - 1), max_size=children), label="failed input children")
    observed: dict[str, Observed] = {}

    state = advance(SupervisorState.start(run, "local"), observed, failing, size)
    state = advance(state, observed, set(), size)

    lost_items = {i for c in failing for i in names.items_of_child(c, per_child, size)}
    flpe = state.stage_state("flpe")
    assert flpe.skipped == tuple(sorted(failing))
    for name in ("neobam", "sad"):
        module = run.module("flpe", name)
        read = ranges_run(module, run, [p for p in flpe.pieces if p.module == name], size)
        assert sorted(i for r in read for i in r) == [i for i in range(size) if i not in lost_items]
    assert core.packing(state) == {"input": (per_child, size), "neobam": (per_child, size), "sad": (per_child, size)}
    assert (
        state.state == document.RUNNING
        and core.decide(state, observed, now=NOW, token="t").ending == document.SUCCEEDED
    )


def test_per_index_stages_that_pack_differently_end_the_run_before_submitting_anything() -> None:
    run = RunSpec(
        RUN,
        "p",
        (
            StageSpec("input", (spec("input", "input", 4, items="s3://json/reaches.json"),)),
            StageSpec("flpe", (spec("neobam", "flpe", 5, items="s3://json/reaches.json"),), "per_index"),
        ),
    )
    state = advance(SupervisorState.start(run, "local"), {}, set(), 20)
    decision = core.decide(state, {}, now=NOW, token="t", sizes={"neobam": 20})
    assert (decision.action, decision.ending, decision.reason) == (
        "end",
        document.FAILED,
        "stage flpe is per_index but its arrays pack items differently from the previous stage's (items_per_child "
        "neobam=5, input.input=4)",
    )


def test_failures_of_a_packed_module_are_listed_item_by_item_with_their_values() -> None:
    # 10 items packed 4 to a child: children 0 (items 0-3) and 2 (items 8-9, the short last child) failed.
    header = RunHeader(RUN, "supervised", "confluence.yaml", "0" * 64, "p", "us-west-2", NOW, "0", stages=("input",))
    row = Row("input", "input", f"{RUN}_input_input_0", "j-1", RUN, array_size=3, job_queue="q")

    outcome = JobOutcome(
        job_id="j-1",
        job_name=row.job_name,
        status="FAILED",
        observed_at=NOW,
        array_size=3,
        counts=(("FAILED", 2), ("SUCCEEDED", 1)),
        failed=(ChildOutcome(index=0, status="FAILED", reason="exit 1"), ChildOutcome(index=2, status="FAILED")),
    )
    report = build_report(RunRecord(header, (row,), {"j-1": outcome}, ()))
    reaches = [{"reach_id": 71_000_000 + i} for i in range(10)]

    assert confluence_failures(report, {"input": reaches}, {"input": (4, 10)}) == {
        "Input": [{"Index": i, "Value": reaches[i]} for i in (0, 1, 2, 3, 8, 9)]
    }
    assert confluence_failures(report, packing={"input": (4, 10)}) == {
        "Input": [{"Index": i, "Value": i} for i in (0, 1, 2, 3, 8, 9)]
    }
