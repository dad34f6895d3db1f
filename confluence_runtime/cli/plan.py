"""``confluence-submit plan``: every job a run would submit, or the workflow as a diagram; no AWS call."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from ..aws.api import AwsOptions
from ..config import Config, load_config
from ..planning.estimate import (
    Capacity,
    Estimate,
    Work,
    estimate_cost,
    estimate_to_dict,
    load_prices,
    loads_to_dict,
    request_budgets,
    run_time,
    run_time_to_dict,
    stage_loads,
    works_from_plan,
)
from ..planning.plan import Plan, build_plan, new_run_id, plan_to_dict
from ..safetext import text
from ..views.render import dot, estimate_view, mermaid, plan_table, scale_view
from ..views.runs import measured_seconds
from .common import Common, F, common_options, config_options, handle_errors, out


def estimate_options(fn: F) -> F:
    """The options that price a run (``plan --estimate`` and ``run --max-cost``)."""
    fn = click.option(
        "--durations-from",
        "durations_from",
        metavar="RUN_ID",
        help="Seconds per item measured in this earlier run (from its ledger) instead of expected_duration.",
    )(fn)
    fn = click.option(
        "--prices", "prices_file", type=click.Path(dir_okay=False), help="Price table overriding the shipped one."
    )(fn)
    return click.option(
        "--spot-share",
        type=click.FloatRange(0, 1),
        default=None,
        help="Share of containers on Fargate Spot (default: 1 with fargate_spot, else 0).",
    )(fn)


def price_run(
    config: Config,
    the_plan: Plan,
    aws: AwsOptions,
    *,
    durations_from: str | None,
    prices_file: str | None,
    spot_share: float | None,
) -> tuple[list[Work], Estimate]:
    """The plan's work (with expected or measured durations) and its estimate in the options' region."""
    prices = load_prices(aws.resolved_region, prices_file)
    measured = measured_seconds(config, durations_from) if durations_from else None
    works = works_from_plan(the_plan, config, measured)
    share = spot_share if spot_share is not None else (1.0 if config.infrastructure.fargate_spot else 0.0)
    return works, estimate_cost(works, prices, spot_share=share)


@click.command()
@config_options
@click.option("--run-id", help="Use this run id instead of a new one (names the jobs).")
@click.option("--estimate", is_flag=True, help="Price the run: containers x duration x size x the price table.")
@estimate_options
@common_options("region", "fmt", formats=("text", "json", "mermaid", "dot"))
@handle_errors
def plan(
    config_path: str,
    venue: str | None,
    run_id: str | None,
    estimate: bool,
    durations_from: str | None,
    prices_file: str | None,
    spot_share: float | None,
    common: Common,
) -> None:
    """Show every job a run would submit, with no AWS call (no credentials needed)."""
    config = load_config(config_path, venue=venue)
    if common.fmt == "mermaid":
        click.echo(mermaid(config), nl=False)
        return
    if common.fmt == "dot":
        click.echo(dot(config), nl=False)
        return
    the_plan = build_plan(config, run_id or new_run_id())
    capacity = Capacity.of(config)
    priced: Estimate | None = None
    if estimate or durations_from:
        works, priced = price_run(
            config,
            the_plan,
            common.aws,
            durations_from=durations_from,
            prices_file=prices_file,
            spot_share=spot_share,
        )
        capacity = Capacity.of(config, priced.prices)
        loads = stage_loads(works, capacity, priced.prices)
    else:
        loads = stage_loads(works_from_plan(the_plan, config), capacity)
    if common.fmt == "json":
        data = plan_to_dict(the_plan)
        data["stage_loads"] = loads_to_dict(loads)
        data["run_time"] = run_time_to_dict(run_time(loads))
        data["request_budgets"] = [asdict(b) | {"over": b.over} for b in request_budgets(the_plan, config)]
        if priced is not None:
            data["estimate"] = estimate_to_dict(priced)
        click.echo(json.dumps(data, indent=2))
        return
    out.print(plan_table(the_plan))
    out.print(scale_view(loads, capacity))
    for budget in request_budgets(the_plan, config):
        out.print(text(f"Requests: {budget.text()}"), style="red" if budget.over else "", highlight=False)
    if priced is not None:
        out.print(estimate_view(priced))
