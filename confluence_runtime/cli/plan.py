"""``confluence-submit plan``: every job a run would submit, or the workflow as a diagram; no AWS call."""

from __future__ import annotations

import json

import click

from ..config import load_config
from ..plan import build_plan, new_run_id, plan_to_dict
from ..render import dot, mermaid, plan_table
from .common import Common, common_options, config_options, handle_errors, out


@click.command()
@config_options
@click.option("--run-id", help="Use this run id instead of a new one (names the jobs).")
@common_options("fmt", formats=("text", "json", "mermaid", "dot"))
@handle_errors
def plan(config_path: str, venue: str | None, run_id: str | None, common: Common) -> None:
    """Show every job a run would submit, with no AWS call (no credentials needed)."""
    config = load_config(config_path, venue=venue)
    if common.fmt == "mermaid":
        click.echo(mermaid(config), nl=False)
    elif common.fmt == "dot":
        click.echo(dot(config), nl=False)
    elif common.fmt == "json":
        click.echo(json.dumps(plan_to_dict(build_plan(config, run_id or new_run_id())), indent=2))
    else:
        out.print(plan_table(build_plan(config, run_id or new_run_id())))
