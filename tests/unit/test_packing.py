"""Packing: ``items_per_child`` cuts an array's items into fewer, longer children, composed with sharding,
``num_jobs`` and ``per_index``; the module contract (CONFLUENCE_ITEM_START/COUNT) tells each child its items."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from confluence_runtime import names
from confluence_runtime.config import load_config
from confluence_runtime.errors import ConfigError
from confluence_runtime.planning.estimate import works_from_plan
from confluence_runtime.planning.plan import Plan, build_plan

RUN = "20261125T000000-abcd"


def plan_of(tmp_path: Path, text: str) -> Plan:
    path = tmp_path / "confluence.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return build_plan(load_config(path), RUN)


def contract(plan: Plan, module: str) -> list[tuple[str, int, int, dict[str, str]]]:
    """(job, array size, offset, the CONFLUENCE_* variables that place items) of each submission of a module."""
    keys = (names.ENV_ARRAY_OFFSET, names.ENV_ARRAY_SIZE, names.ENV_ITEM_START, names.ENV_ITEM_COUNT)
    return [
        (
            s.name.removeprefix(f"{RUN}_"),
            s.array_size,
            s.array_offset,
            {k: v for k, v in s.environment if k in keys},
        )
        for s in plan.submissions
        if s.module == module
    ]


def module_items(plan: Plan, module: str) -> list[int]:
    """Every item the module's children handle, as a module following the README's loop would read them."""
    seen = []
    for s in plan.submissions:
        if s.module != module:
            continue
        env = dict(s.environment)
        count = int(env.get(names.ENV_ITEM_COUNT, "1"))
        start = int(env.get(names.ENV_ITEM_START, env[names.ENV_ARRAY_OFFSET]))
        total = int(env[names.ENV_ARRAY_SIZE])
        for index in range(s.containers):  # AWS_BATCH_JOB_ARRAY_INDEX
            first = start + index * count
            seen.extend(range(first, min(first + count, total)))
    return seen


def test_an_array_packs_into_ceil_items_over_n_children(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        stages:
          reaches:
            fit: {array_size: 105, items_per_child: 10}
        """,
    )
    assert contract(plan, "fit") == [
        (
            "reaches_fit_0",
            11,
            0,
            {
                "CONFLUENCE_ARRAY_OFFSET": "0",
                "CONFLUENCE_ARRAY_SIZE": "105",
                "CONFLUENCE_ITEM_START": "0",
                "CONFLUENCE_ITEM_COUNT": "10",
            },
        )
    ]
    assert plan.children == 11
    assert module_items(plan, "fit") == list(range(105))
    assert [(s.items_per_child, s.item_count) for s in plan.submissions] == [(10, 105)]


def test_packed_children_past_ten_thousand_are_sharded_with_global_item_starts(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        stages:
          reaches:
            fit: {array_size: 250001, items_per_child: 10}
        """,
    )
    # 25,001 children in three near-equal shards; each shard's child 0 starts at its offset times 10 items
    assert [(name, size, offset, env[names.ENV_ITEM_START]) for name, size, offset, env in contract(plan, "fit")] == [
        ("reaches_fit_0-0", 8334, 0, "0"),
        ("reaches_fit_0-1", 8334, 8334, "83340"),
        ("reaches_fit_0-2", 8333, 16668, "166680"),
    ]
    assert [s.item_count for s in plan.submissions] == [83340, 83340, 83321]  # the very last child has 1 item
    assert module_items(plan, "fit") == list(range(250_001))


def test_items_that_fit_one_child_make_a_plain_job(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        stages:
          datagen:
            datagen: {array_size: 7, items_per_child: 10}
        """,
    )
    assert contract(plan, "datagen") == [
        (
            "datagen_datagen_0",
            0,
            0,
            {
                "CONFLUENCE_ARRAY_OFFSET": "0",
                "CONFLUENCE_ARRAY_SIZE": "7",
                "CONFLUENCE_ITEM_START": "0",
                "CONFLUENCE_ITEM_COUNT": "10",
            },
        )
    ]
    assert "arrayProperties" not in plan.submissions[0].request({})
    assert module_items(plan, "datagen") == list(range(7))


def test_without_packing_the_contract_is_unchanged(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        stages:
          reaches:
            fit: {array_size: 214}
        """,
    )
    assert contract(plan, "fit") == [
        ("reaches_fit_0", 214, 0, {"CONFLUENCE_ARRAY_OFFSET": "0", "CONFLUENCE_ARRAY_SIZE": "214"})
    ]


def test_every_job_of_num_jobs_packs_alike(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        stages:
          reaches:
            fit: {array_size: 30, items_per_child: 4, num_jobs: 2}
        """,
    )
    assert [(name, size) for name, size, _, _ in contract(plan, "fit")] == [("reaches_fit_0", 8), ("reaches_fit_1", 8)]


def test_per_index_stages_that_pack_alike_pair_child_with_child(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        stages:
          input:
            input: {array_size: 105, items_per_child: 10}
          fit:
            dependency: per_index
            fit: {array_size: 105, items_per_child: 10}
        """,
    )
    fit = plan.by_name()[f"{RUN}_fit_fit_0"]
    assert fit.array_size == 11
    assert [(d.name.removeprefix(f"{RUN}_"), d.type) for d in fit.depends_on] == [("input_input_0", "N_TO_N")]


def test_per_index_refuses_stages_that_pack_differently(tmp_path: Path) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(
        textwrap.dedent(
            """
            stages:
              input:
                input: {array_size: 105}
              fit:
                dependency: per_index
                fit:
                  array_size: 105
                  items_per_child: 10
            """
        ).lstrip()
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:8: stages.fit.fit.items_per_child: per_index pairs child i with child i, so every array of stages "
        "input and fit must pack alike: stages.fit.fit has 10 item(s) per child, stages.input.input 1"
    ]


def test_packing_a_plain_job_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text("stages:\n  s:\n    m: {items_per_child: 5}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:3: stages.s.m.items_per_child: packs the items of an array; array_size is 0 (a plain job): set "
        "array_size to the item count"
    ]


def test_a_failed_child_stands_for_its_items() -> None:
    assert list(names.items_of_child(3, 10, 105)) == list(range(30, 40))
    assert list(names.items_of_child(10, 10, 105)) == list(range(100, 105))


def test_the_estimate_sees_packed_children(tmp_path: Path) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text("stages:\n  s:\n    m: {array_size: 250001, items_per_child: 10, expected_duration: 3}\n")
    config = load_config(path)
    [work] = works_from_plan(build_plan(config, RUN), config)
    assert work.children == ((25_000, 10), (1, 1))
    assert (work.containers, work.items, work.item_seconds) == (25_001, 250_001, 3.0)
