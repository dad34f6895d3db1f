"""Time and money of a plan: launch time under Fargate's launch rate, concurrency bounds, and the cost arithmetic."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from confluence_runtime.config import load_config
from confluence_runtime.errors import ConfigError
from confluence_runtime.planning.estimate import (
    Capacity,
    Work,
    child_items,
    estimate_cost,
    load_prices,
    run_time,
    stage_loads,
    works_from_plan,
)
from confluence_runtime.planning.plan import build_plan

RUN = "20261125T000000-abcd"
SMALL = """
    log_file: confluence.log
    submission_file: submission.csv
    infrastructure: {max_vcpus: 100}
    stages:
      prepare:
        setup: {vcpus: 4, memory: 8192}
      reaches:
        fit: {array_size: 250, vcpus: 1, memory: 2048}
        check: {array_size: 250}
"""


def small_works(tmp_path: Path, seconds: dict[str, float] | None = None) -> list[Work]:
    path = tmp_path / "confluence.yaml"
    path.write_text(textwrap.dedent(SMALL).lstrip())
    config = load_config(path)
    return works_from_plan(build_plan(config, RUN), config, seconds)


def test_the_shipped_table_is_dated_and_keyed_by_region() -> None:
    prices = load_prices("us-east-1")
    assert (prices.date, prices.fargate_vcpu_hour, prices.fargate_gb_hour) == ("2026-11-01", 0.04048, 0.004445)
    assert prices.minimum_billed_seconds == 60
    assert load_prices("us-west-2").region == "us-west-2"


def test_an_override_file_replaces_single_prices(tmp_path: Path) -> None:
    override = tmp_path / "prices.yaml"
    override.write_text('date: "2027-01-01"\nregions:\n  us-west-2: {fargate_vcpu_hour: 0.05}\n')
    prices = load_prices("us-west-2", override)
    assert (prices.date, prices.fargate_vcpu_hour, prices.fargate_gb_hour) == ("2027-01-01", 0.05, 0.004445)


def test_an_unknown_region_says_which_are_known() -> None:
    with pytest.raises(ConfigError, match=r"regions\.eu-north-1: no prices for this region \(known: us-east-1, "):
        load_prices("eu-north-1")


def test_packing_shapes_children() -> None:
    assert child_items(250, 1) == [(250, 1)]
    assert child_items(250, 100) == [(2, 100), (1, 50)]
    assert child_items(200, 100) == [(2, 100)]


def test_works_follow_the_plan_with_sizes_and_durations(tmp_path: Path) -> None:
    works = small_works(tmp_path, {"reaches.fit": 120})
    assert [(w.stage, w.module, w.children, w.vcpus, w.memory, w.item_seconds) for w in works] == [
        ("prepare", "setup", ((1, 1),), 4, 8192, None),
        ("reaches", "fit", ((250, 1),), 1, 2048, 120),
        # no size in the yaml: the job definition's default, 0.25 vCPU with 512 MiB
        ("reaches", "check", ((250, 1),), 0.25, 512, None),
    ]


def test_launch_time_and_the_limit_that_bounds_a_stage(tmp_path: Path) -> None:
    works = small_works(tmp_path)
    # GIVEN Spot and On-Demand environments of 100 vCPUs and an account's default On-Demand quota of 6 vCPUs
    capacity = Capacity(max_vcpus=100, spot=True, quota_on_demand=6)
    loads = {load.stage: load for load in stage_loads(works, capacity)}
    # THEN Spot holds 100 of the 106 usable vCPUs, so it launches 100/106 of the 500 containers and On-Demand the
    # rest, each purchase option from its own bucket: (500 x 100/106 - 100 burst) / 20 per second, at best
    assert loads["reaches"].containers == 500
    assert loads["reaches"].spot_launches == pytest.approx(500 * 100 / 106)
    assert loads["reaches"].on_demand_launches == pytest.approx(500 * 6 / 106)
    assert loads["reaches"].launch_seconds == pytest.approx((500 * 100 / 106 - 100) / 20)
    # AND 250 x 1 + 250 x 0.25 vCPUs exceed 100 (Spot) + 6 (On-Demand quota): at most 106 / 0.625 at once
    assert loads["reaches"].vcpus_wanted == 312.5
    assert loads["reaches"].bound == "Fargate vCPU quota L-3032A538 (6) and max_vcpus (100)"
    assert loads["reaches"].at_once == 169
    assert (loads["prepare"].launch_seconds, loads["prepare"].bound, loads["prepare"].at_once) == (0.0, None, 1)


def test_the_estimate_arithmetic_on_a_small_plan(tmp_path: Path) -> None:
    prices = load_prices("us-east-1")
    works = small_works(tmp_path, {"prepare.setup": 10, "reaches.fit": 120, "reaches.check": 30})
    estimate = estimate_cost(works, prices, spot_share=0.5)
    by_module = {m.module: m for m in estimate.modules}
    # setup: 20 s start-up + 10 s of work is billed as the one-minute minimum, at 4 vCPU and 8 GB
    assert by_module["setup"].on_demand == pytest.approx(60 / 3600 * (4 * 0.04048 + 8 * 0.004445))
    # fit: 250 children of 20 + 120 s at 1 vCPU and 2 GB
    assert by_module["fit"].on_demand == pytest.approx(250 * 140 / 3600 * (1 * 0.04048 + 2 * 0.004445))
    assert by_module["fit"].billed_hours == pytest.approx(250 * 140 / 3600)
    # check: 250 children of 20 + 30 s, billed as 60 s each, at 0.25 vCPU and 0.5 GB
    assert by_module["check"].on_demand == pytest.approx(250 * 60 / 3600 * (0.25 * 0.04048 + 0.5 * 0.004445))
    assert estimate.on_demand == pytest.approx(sum(m.on_demand or 0 for m in estimate.modules))
    # Half on Spot at 70 % off: 35 % less
    assert estimate.with_spot == pytest.approx(estimate.on_demand * 0.65)
    # A per-item Step Functions Map would bill 2 transitions for each of the 501 items
    assert estimate.step_functions_transitions == 1002
    assert estimate.step_functions == pytest.approx(1002 * 0.000025)


def test_a_module_without_a_duration_is_named_not_guessed(tmp_path: Path) -> None:
    estimate = estimate_cost(small_works(tmp_path, {"reaches.fit": 120}), load_prices("us-east-1"))
    assert estimate.unknown == ("prepare.setup", "reaches.check")
    assert {m.module: m.on_demand for m in estimate.modules}["setup"] is None


def test_packing_trades_start_ups_and_minimums_for_longer_children() -> None:
    prices = load_prices("us-east-1")
    one = Work("s", "m", tuple(child_items(210_000, 1)), 0.5, 1024, 5.0)
    hundred = Work("s", "m", tuple(child_items(210_000, 100)), 0.5, 1024, 5.0)
    cost_one, cost_hundred = (estimate_cost([w], prices).on_demand for w in (one, hundred))
    # 210,000 children billed a minute each, against 2,100 children of 20 + 500 s
    assert cost_one == pytest.approx(210_000 * 60 / 3600 * (0.5 * 0.04048 + 1 * 0.004445))
    assert cost_hundred == pytest.approx(2_100 * 520 / 3600 * (0.5 * 0.04048 + 1 * 0.004445))
    capacity = Capacity(max_vcpus=10_000, spot=False)
    assert capacity.launch_seconds(one.containers) == pytest.approx((210_000 - 100) / 20)
    assert capacity.launch_seconds(hundred.containers) == pytest.approx((2_100 - 100) / 20)


def reach_stage(items: int, per_child: int, seconds: float, compute: str = "fargate_spot") -> Work:
    return Work("reaches", "fit", tuple(child_items(items, per_child)), 1.0, 2048, seconds, compute)


def test_the_minimum_run_time_names_its_bound() -> None:
    # GIVEN Spot and On-Demand environments of 256 vCPUs each, 21,000 reaches of 30 s at 1 vCPU
    capacity = Capacity(max_vcpus=256, spot=True)
    (ten,) = stage_loads([reach_stage(21_000, 10, 30.0)], capacity)
    (hundred,) = stage_loads([reach_stage(21_000, 100, 30.0)], capacity)
    # THEN 10 per child: 2,100 children of 300 s need 630,000 vCPU-seconds over 512 vCPUs, more than launching
    # 1,050 tasks per purchase option ((1,050 - 100) / 20 = 47.5 s) or the longest child (300 s)
    assert ten.launch_seconds == pytest.approx(47.5)
    assert (ten.min_seconds, ten.min_bound) == (pytest.approx(630_000 / 512), "vCPUs")
    assert ten.min_bound_detail == "175.0 vCPU-hours over 512 usable vCPUs (max_vcpus (256))"
    # AND 100 per child is slower: 210 children all run at once, but each takes 100 x 30 s
    assert (hundred.min_seconds, hundred.min_bound) == (3000.0, "longest child")
    assert hundred.min_bound_detail == "fit's longest child: 100 items x 30 s"
    total = run_time([ten])
    assert (total.seconds, total.bounds) == (pytest.approx(630_000 / 512), (("vCPUs", 1),))


def test_launching_bounds_a_run_of_small_children() -> None:
    capacity = Capacity(max_vcpus=10_000, spot=True)
    (load,) = stage_loads([Work("s", "m", ((210_000, 1),), 0.25, 512, 5.0)], capacity)
    # 52,500 vCPUs wanted, 10,000 on Spot: each purchase option launches half, 105,000 tasks, at 20/s
    assert load.launch_seconds == pytest.approx((105_000 - 100) / 20)
    assert load.min_bound == "launching"
    assert load.min_bound_detail == "launching 210,000 Fargate tasks at 20 tasks/s per purchase option"
    # With On-Demand only (fargate_spot false) one bucket launches them all
    (alone,) = stage_loads([Work("s", "m", ((210_000, 1),), 0.25, 512, 5.0)], Capacity(max_vcpus=10_000, spot=False))
    assert alone.launch_seconds == pytest.approx((210_000 - 100) / 20)


def test_ec2_modules_are_priced_and_modelled_apart_from_fargate() -> None:
    prices = load_prices("us-east-1")
    work = reach_stage(1_000, 1, 60.0, compute="ec2_spot")
    estimate = estimate_cost([work], prices, spot_share=1.0)
    # An m6i-like instance: $0.048 per vCPU-hour (4 GiB per vCPU), start-up billed, no one-minute minimum
    assert estimate.on_demand == pytest.approx(1_000 * (20 + 60) / 3600 * 1 * 0.048)
    assert estimate.with_spot == pytest.approx(estimate.on_demand * (1 - 0.6))
    # AND 8 GiB at 1 vCPU pays for 2 vCPUs of the instance
    big = Work("s", "big", ((1, 1),), 1.0, 8192, 3600.0, "ec2")
    assert estimate_cost([big], prices).on_demand == pytest.approx((3600 + 20) / 3600 * 2 * 0.048)
    # AND no Fargate launching: the environment scales up instances first (an assumption of the price table)
    (load,) = stage_loads([work], Capacity(max_vcpus=256, spot=True, ec2_scale_up_seconds=180), prices)
    assert (load.launch_seconds, load.ec2_containers, load.vcpus_usable) == (180, 1_000, 512)


def test_a_price_table_without_ec2_prices_says_it_cannot_price_them(tmp_path: Path) -> None:
    table = tmp_path / "prices.yaml"
    fargate = {k: 1 for k in ("fargate_vcpu_hour", "fargate_gb_hour", "fargate_spot_discount",
                              "minimum_billed_seconds", "billed_startup_seconds", "step_functions_per_transition",
                              "step_functions_transitions_per_item", "lambda_per_request", "lambda_gb_second")}  # fmt: skip
    table.write_text(yaml.safe_dump({"regions": {"eu-north-1": fargate}}))
    prices = load_prices("eu-north-1", table)
    estimate = estimate_cost([reach_stage(10, 1, 60.0, compute="ec2")], prices)
    assert (estimate.unknown, estimate.modules[0].on_demand) == (("reaches.fit",), None)
