"""Retry naming and index-map chunking: what later commands rely on to read a run back."""

from __future__ import annotations

from confluence_runtime.retry import _chunks
from confluence_runtime.runstate import generation, plan_name


def test_retry_and_rerun_names_carry_their_generation_and_plan_job() -> None:
    assert generation("r1_flpe_sad_0-3") == 0
    assert generation("r1_flpe_sad_0_retry-2") == 2
    assert generation("r1_flpe_sad_0_retry-2-1") == 2
    assert plan_name("r1_output_output_0_rerun-3") == "r1_output_output_0"
    assert plan_name("r1_flpe_sad_0_retry-1") is None
    assert plan_name("r1_flpe_sad_0-3") == "r1_flpe_sad_0-3"


def test_index_maps_are_split_to_fit_the_override_budget() -> None:
    assert _chunks([1, 22, 333], budget=100) == [[1, 22, 333]]
    # "1,22" is 4 characters; adding ",333" would make 8 > 6
    assert _chunks([1, 22, 333], budget=6) == [[1, 22], [333]]
    assert [len(c) for c in _chunks(list(range(12_000)), budget=10**9)] == [10_000, 2_000]
