"""`confluence-submit renew ...` and `confluence-submit credentials ...`: parse, call confluence_runtime.renew, render.

The main CLI registers both groups with ``main.add_command(renew)`` and ``main.add_command(credentials)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from . import renew as core
from .aws import AwsOptions
from .config import load_config
from .errors import ConfluenceError

F = TypeVar("F", bound=Callable[..., Any])


def _console(stderr: bool = False) -> Console:
    # Built per call so CliRunner's captured streams are used, not the ones at import time.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def aws_options(fn: F) -> F:
    """The options every command takes: which configuration (for the prefix) and where AWS is."""

    @click.option(
        "-c", "--config", "config_path", default="confluence.yaml", show_default=True, type=click.Path(dir_okay=False)
    )
    @click.option("--venue", default=None, help="Venue (dev1, dev2, ops): overrides the configuration's prefix.")
    @click.option("--endpoint-url", default=None, help="AWS endpoint (a moto server, LocalStack).")
    @click.option("--region", default=None, help="AWS region (default: environment, then us-west-2).")
    @functools.wraps(fn)
    def wrapper(config_path: str, venue: str | None, endpoint_url: str | None, region: str | None, **kw: Any) -> Any:
        try:
            prefix = load_config(config_path, venue=venue).prefix
            return fn(AwsOptions(endpoint_url=endpoint_url, region=region), prefix, **kw)
        except ConfluenceError as e:
            # Only the command layer turns errors into messages and exit codes.
            _console(stderr=True).print(f"[red]error:[/red] {e}", markup=True)
            if e.hint:
                _console(stderr=True).print(f"hint: {e.hint}")
            raise SystemExit(e.exit_code) from e

    return wrapper  # type: ignore[return-value]


def _schedule_line(schedule: core.ScheduleState) -> str:
    return f"schedule {schedule.group}/{schedule.name}: {schedule.state} ({schedule.expression})"


@click.group()
def renew() -> None:
    """The credential-renew Lambda and its 50-minute schedule."""


@renew.command()
@aws_options
def enable(options: AwsOptions, prefix: str) -> None:
    """Turn the renew schedule on (every other setting of the schedule is kept)."""
    names = core.resolve_names(options, prefix)
    state = core.set_schedule(options, names, enabled=True)
    _console().print(_schedule_line(state) + (f", was {state.previous_state}" if state.previous_state else ""))


@renew.command()
@aws_options
def disable(options: AwsOptions, prefix: str) -> None:
    """Turn the renew schedule off (every other setting of the schedule is kept)."""
    names = core.resolve_names(options, prefix)
    state = core.set_schedule(options, names, enabled=False)
    _console().print(_schedule_line(state) + (f", was {state.previous_state}" if state.previous_state else ""))


@renew.command()
@aws_options
def now(options: AwsOptions, prefix: str) -> None:
    """Invoke the renew Lambda once and report the new credentials' expiration."""
    result = core.invoke_now(options, core.resolve_names(options, prefix))
    _console().print(f"{result.function_name}: credentials renewed, expire {result.expiration}")
    for name in result.parameters:
        _console().print(f"  {name}")


@renew.command()
@aws_options
def status(options: AwsOptions, prefix: str) -> None:
    """Show the schedule's state and the stored credentials' expiration."""
    info = core.status(options, prefix)
    console = _console()
    console.print(f"function {info.names.function_name}")
    if info.schedule:
        console.print(_schedule_line(info.schedule))
    else:
        console.print(f"schedule {info.names.schedule_group}/{info.names.schedule_name}: not found")
    console.print(f"{info.names.expiration_parameter}: {info.expiration or 'never written'}")
    if not info.names.published:
        console.print(f"(names are conventional: nothing published under {core.names_path(prefix)})")


@click.group()
def credentials() -> None:
    """The temporary S3 credentials modules read from SSM."""


@credentials.command()
@aws_options
@click.option("--kms-key-id", default=None, help="KMS key for the SecureStrings (default: the renew stack's key).")
def simulate(options: AwsOptions, prefix: str, kms_key_id: str | None) -> None:
    """Store your own 12-hour STS session credentials in the four parameters (testing without Earthdata)."""
    result = core.simulate_credentials(options, prefix, kms_key_id)
    _console().print(f"stored STS session credentials expiring {result.expiration} (key {result.kms_key_id}):")
    for name in result.parameters:
        _console().print(f"  {name}")
