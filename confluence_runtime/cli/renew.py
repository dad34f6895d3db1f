"""``confluence-submit renew ...`` and ``credentials ...``: parse, call confluence_runtime.venue.renew, render."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..aws.api import AwsOptions
from ..config import load_config
from ..errors import RenewError
from ..names import PODAAC_BUCKETS
from ..venue import renew as core
from .common import AWS, Common, common_options, config_options, handle_errors, out

F = TypeVar("F", bound=Callable[..., Any])


def renew_options(fn: F) -> F:
    """The options every command takes: which configuration (for the prefix) and where AWS is."""

    @config_options
    @common_options(*AWS)
    @functools.wraps(fn)
    @handle_errors
    def wrapper(config_path: str, venue: str | None, common: Common, **kw: Any) -> Any:
        prefix = load_config(config_path, venue=venue).prefix
        return fn(common.aws, prefix, **kw)

    return wrapper  # type: ignore[return-value]


def _schedule_line(schedule: core.ScheduleState) -> str:
    return f"schedule {schedule.group}/{schedule.name}: {schedule.state} ({schedule.expression})"


@click.group()
def renew() -> None:
    """The credential-renew Lambda and its 50-minute schedule."""


@renew.command()
@renew_options
def enable(options: AwsOptions, prefix: str) -> None:
    """Turn the renew schedule on (every other setting of the schedule is kept)."""
    names = core.resolve_names(options, prefix)
    state = core.set_schedule(options, names, enabled=True)
    out.print(_schedule_line(state) + (f", was {state.previous_state}" if state.previous_state else ""))


@renew.command()
@renew_options
def disable(options: AwsOptions, prefix: str) -> None:
    """Turn the renew schedule off (every other setting of the schedule is kept)."""
    names = core.resolve_names(options, prefix)
    state = core.set_schedule(options, names, enabled=False)
    out.print(_schedule_line(state) + (f", was {state.previous_state}" if state.previous_state else ""))


@renew.command()
@renew_options
def now(options: AwsOptions, prefix: str) -> None:
    """Invoke the renew Lambda once and report the new credentials' expiration."""
    result = core.invoke_now(options, core.resolve_names(options, prefix))
    out.print(f"{result.function_name}: credentials renewed, expire {result.expiration}")
    for name in result.parameters:
        out.print(f"  {name}")


@renew.command()
@renew_options
def status(options: AwsOptions, prefix: str) -> None:
    """Show the schedule's state and the stored credentials' expiration."""
    info = core.status(options, prefix)
    out.print(f"function {info.names.function_name}")
    if info.schedule:
        out.print(_schedule_line(info.schedule))
    else:
        out.print(f"schedule {info.names.schedule_group}/{info.names.schedule_name}: not found")
    out.print(f"{info.names.expiration_parameter}: {info.expiration or 'never written'}")
    if not info.names.published:
        out.print(f"(names are conventional: nothing published under {core.names_path(prefix)})")
    if info.schedule is None:
        # A status with nothing to show the state of is a failure a script must notice (exit 1).
        raise RenewError(
            f"schedule {info.names.schedule_group}/{info.names.schedule_name} not found; is the renew stack "
            "deployed for this venue?"
        )


@click.group()
def credentials() -> None:
    """The temporary S3 credentials modules read from SSM."""


@credentials.command()
@renew_options
@click.option("--kms-key-id", default=None, help="KMS key for the SecureStrings (default: the renew stack's key).")
@click.option(
    "--role-arn", default=None, help="Store a one-hour session of this role instead of a 12-hour federation token."
)
def simulate(options: AwsOptions, prefix: str, kms_key_id: str | None, role_arn: str | None) -> None:
    """Store credentials that can only read the PO.DAAC buckets in the four parameters (testing without
    Earthdata): a 12-hour federation token of your IAM user, or with --role-arn a one-hour role session."""
    result = core.simulate_credentials(options, prefix, kms_key_id, role_arn)
    hours = result.seconds // 3600
    out.print(
        f"stored {result.source} limited to reading the PO.DAAC buckets ({PODAAC_BUCKETS}), valid {hours} h until "
        f"{result.expiration}; every s3_credentials job of {prefix} can read it (key {result.kms_key_id}):",
        highlight=False,
    )
    for name in result.parameters:
        out.print(f"  {name}", highlight=False)
