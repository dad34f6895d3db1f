"""``confluence-submit resources``: the venue's consumable resources (an API's concurrency, a request budget) with
use and total, and ``resources set NAME TOTAL`` to change a total during a run (UpdateConsumableResource; AWS
allows it while jobs hold units: waiting jobs start as soon as units are free)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

import click
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table

from ..aws.api import Batch
from ..config import load_config
from ..errors import ConfigError, Problem
from ..names import consumable_resource
from ..safetext import text
from ..views.why import ResourceUse, resource_uses
from .common import AWS, Common, common_options, config_options, handle_errors, out

DEFAULT_CONFIG = "confluence.yaml"  # config_options' default: a -c given before `set` counts when none is after


@click.group(invoke_without_command=True)
@config_options
@common_options(*AWS, "fmt")
@click.pass_context
@handle_errors
def resources(ctx: click.Context, config_path: str, venue: str | None, common: Common) -> None:
    """List the venue's consumable resources: type, use, total and jobs waiting for units."""
    ctx.obj = (config_path, venue, common)
    if ctx.invoked_subcommand is not None:
        return
    config = load_config(config_path, venue=venue)
    uses = resource_uses(Batch(common.aws), config)
    if common.fmt == "json":
        click.echo(json.dumps([asdict(u) for u in uses], indent=2))
        return
    if not uses:
        out.print(text(f"no consumable resources in {config.source} (infrastructure.consumable_resources)"))
        return
    for line in resources_view(uses, out):
        out.print(line, soft_wrap=False)  # prose: wrapped at words to the terminal, never mid-word by it


@resources.command("set")
@click.argument("name")
@click.argument("total", type=click.IntRange(min=0))
@config_options
@common_options(*AWS)
@click.pass_obj
@handle_errors
def set_total(
    obj: tuple[str, str | None, Common], name: str, total: int, config_path: str, venue: str | None, common: Common
) -> None:
    """Set a consumable resource's total now, also while jobs hold units (NAME as in confluence.yaml). Options
    given before ``set`` (resources -c FILE set ...) count as well."""
    parent_config, parent_venue, parent = obj
    config_path = config_path if config_path != DEFAULT_CONFIG else parent_config
    venue = venue or parent_venue
    if not (common.endpoint_url or common.region or common.profile):
        common = parent
    config = load_config(config_path, venue=venue)
    resource = config.infrastructure.consumable(name)
    if resource is None:
        known = ", ".join(r.name for r in config.infrastructure.consumable_resources) or "none declared"
        raise ConfigError(
            [Problem(config.source, None, "infrastructure.consumable_resources", f"no resource {name!r} ({known})")]
        )
    aws_name = consumable_resource(config.prefix, name)
    batch = Batch(common.aws)
    before = batch.describe_consumable_resource(aws_name)
    now = batch.update_consumable_resource(aws_name, total)
    out.print(
        text(
            f"{aws_name}: total {int(before.get('totalQuantity', 0)):,} -> {now:,} "
            f"({int(before.get('inUseQuantity', 0)):,} in use); waiting jobs start as units are free. confluence.yaml "
            f"says {resource.total:,}; a deploy sets the total only when that value changes there (CloudFormation "
            f"updates a property whose template value changed): write {now:,} there to keep it."
        ),
        highlight=False,
    )


def resources_view(uses: Sequence[ResourceUse], console: Console) -> list[RenderableType]:
    """A table named by the yaml's names (what ``resources set NAME`` takes) when it fits the console's width now;
    narrower, each resource on two lines, so no name or figure is ever cut short. Then the notes: a total someone
    set apart from the yaml's, or a budget (non-replenishable: AWS takes consumed units "from both the total and
    available quantities") partly used up."""
    columns = ("resource", "type", "in use", "total", "available", "jobs waiting", "in the yaml")
    rows = [
        (u.name, u.type.lower(), "?", "?", "?", "?", f"{u.declared:,}")
        if u.problem is not None
        else (
            u.name,
            u.type.lower(),
            f"{u.in_use:,}",
            f"{u.total:,}",
            f"{u.available:,}",
            "-" if u.waiting is None else f"{u.waiting:,}",
            f"{u.declared:,}",
        )
        for u in uses
    ]
    table = Table(box=box.SIMPLE_HEAD)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < 2 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(text(cell) for cell in row))
    view: list[RenderableType] = []
    # (measured unbounded: rich caps a measurement at the console's width)
    if console.measure(table, options=console.options.update(max_width=10_000)).maximum <= console.width:
        view.append(table)
    else:
        for name, kind, in_use, total, _available, waiting, declared in rows:  # available: total - in use
            view.append(text(f"{name}: {kind}"))
            view.append(text(f"  {in_use} of {total} in use, {waiting} jobs waiting; the yaml says {declared}"))
    prefix = {u.aws_name.removesuffix(u.name) for u in uses}
    if len(prefix) == 1:
        view.append(text(f"AWS names: {prefix.pop()}NAME", style="dim"))
    for u in uses:
        if u.problem is not None:
            view.append(text(f"{u.name}: not readable ({u.problem})", style="yellow"))
        elif u.total is not None and u.type == "NON_REPLENISHABLE" and u.total < u.declared:
            view.append(
                text(
                    f"{u.name}: {u.declared - u.total:,} of the yaml's {u.declared:,} used up by jobs "
                    "(non-replenishable units never come back)",
                    style="dim",
                )
            )
        elif u.total != u.declared:
            view.append(
                text(
                    f"{u.name}: total {u.total:,} set during a run; the yaml says {u.declared:,}, which a deploy "
                    "sets only when it changes there",
                    style="dim",
                )
            )
    return view
