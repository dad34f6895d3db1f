"""``python -m batch_emulator``: run the emulator, or steer a running one.

    python -m batch_emulator serve [--host 127.0.0.1] [--port 0]
    python -m batch_emulator fail 'run1_input_*' --indices 3,17 --log 'ValueError: reach 17' --endpoint-url URL
    python -m batch_emulator throttle --share 0.2 --operation SubmitJob --endpoint-url URL
    python -m batch_emulator durations --default 2 --name 'run1_flpe_*=30' --endpoint-url URL
    python -m batch_emulator retention 86400 --endpoint-url URL      # or: retention off
    python -m batch_emulator events --duplicates 0.1 --reorder-window 5 --endpoint-url URL
    python -m batch_emulator counters --endpoint-url URL
    python -m batch_emulator spot 'run1_*' --share 0.05 --endpoint-url URL   # Spot reclaims, AWS's reasons
    python -m batch_emulator oom 'run1_flpe_*' --indices 3 --endpoint-url URL
    python -m batch_emulator quota --fargate 6 --fargate-spot 6 --endpoint-url URL
    python -m batch_emulator events --drop 0.01 --no-tags --endpoint-url URL
    python -m batch_emulator hold RUNNING --name 'run1_flpe_*' --endpoint-url URL   # prints the hold id
    python -m batch_emulator release 1 --endpoint-url URL                          # or: release --all
    python -m batch_emulator holds --endpoint-url URL
    python -m batch_emulator reset --endpoint-url URL

``--endpoint-url`` defaults to ``$AWS_ENDPOINT_URL``. The older ``python -m batch_emulator --port N`` still serves.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from .control import EmulatorControl

endpoint_option = click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    required=True,
    metavar="URL",
    help="The emulator to steer (default: $AWS_ENDPOINT_URL), e.g. http://127.0.0.1:5000.",
)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, float]:
    """``KEY=SECONDS`` options -> {KEY: seconds}."""
    result = {}
    for value in values:
        key, sep, seconds = value.rpartition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=SECONDS, got {value!r}", param_hint=option)
        try:
            result[key] = float(seconds)
        except ValueError as error:
            raise click.BadParameter(f"{seconds!r} is not a number of seconds", param_hint=option) from error
    return result


def _indices(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError as error:
        raise click.BadParameter(
            f"expected comma-separated array indices, got {value!r}", param_hint="--indices"
        ) from error


def _call(endpoint_url: str, action: Callable[[EmulatorControl], Any]) -> Any:
    try:
        return action(EmulatorControl(endpoint_url))
    except OSError as error:  # URLError and HTTPError are OSErrors: the emulator is not there or said no
        raise click.ClickException(f"{endpoint_url}: {error}") from error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """A local AWS Batch (moto's server with Batch's job states, events and logs), and its control commands."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, show_default=True, help="0 picks a free port (printed when ready).")
def serve(host: str, port: int) -> None:
    """Run the emulator until interrupted; prints 'batch emulator listening on URL' when ready."""
    from .server import serve as run

    run(host, port)


@cli.command()
@click.argument("name_glob")
@click.option("--indices", help="Comma-separated array indices to fail (default: every index / the plain job).")
@click.option("--share", type=float, help="Fail a seeded share (0..1) of the matching children instead.")
@click.option("--exit-code", type=int, default=1, show_default=True)
@click.option("--reason", help="Fail like the host did (e.g. 'Host EC2 (instance i-0) terminated.'), no exit code.")
@click.option("--times", type=int, help="Fail only the first N attempts, so a retry strategy can recover.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--log", "log", multiple=True, help="A last line of the failed attempt's log stream (repeatable).")
@endpoint_option
def fail(
    name_glob: str,
    indices: str | None,
    share: float | None,
    exit_code: int,
    reason: str | None,
    times: int | None,
    seed: int,
    log: tuple[str, ...],
    endpoint_url: str,
) -> None:
    """Fail attempts of jobs whose name matches NAME_GLOB (attempts that start from now on)."""
    _call(
        endpoint_url,
        lambda c: c.fail(
            name_glob,
            indices=_indices(indices),
            share=share,
            exit_code=exit_code,
            reason=reason,
            seed=seed,
            times=times,
            log=log,
        ),
    )
    click.echo(f"failing {name_glob}" + (f" indices {indices}" if indices else ""))


@cli.command()
@click.option("--share", type=float, default=0.0, show_default=True, help="Share of calls answered with --status.")
@click.option("--status", type=click.Choice(["429", "500", "503"]), default="429", show_default=True)
@click.option("--operation", "operations", multiple=True, help="Only these operations, e.g. SubmitJob (repeatable).")
@click.option("--submit-rate", type=float, help="Cap SubmitJob at this many requests per second (429 beyond).")
@click.option("--seed", type=int, default=0, show_default=True)
@endpoint_option
def throttle(
    share: float, status: str, operations: tuple[str, ...], submit_rate: float | None, seed: int, endpoint_url: str
) -> None:
    """Answer Batch calls with throttling or server errors (replaces earlier throttle settings)."""
    _call(
        endpoint_url,
        lambda c: c.throttle(
            share=share, status=int(status), operations=operations or None, submit_rate=submit_rate, seed=seed
        ),
    )
    click.echo("throttle set")


@cli.command()
@click.option("--default", "default", type=float, help="Seconds every attempt stays RUNNING.")
@click.option("--queue", type=float, help="Seconds in each of SUBMITTED, RUNNABLE and STARTING.")
@click.option("--definition", multiple=True, metavar="NAME=SECONDS", help="Per job definition name.")
@click.option("--name", multiple=True, metavar="GLOB=SECONDS", help="Per job name glob.")
@click.option("--run", multiple=True, metavar="RUN_ID=SECONDS", help="Per confluence:run tag.")
@click.option("--min-timeout", type=int, help="Smallest attemptDurationSeconds SubmitJob accepts (AWS: 60).")
@click.option(
    "--time-limit-scale",
    type=float,
    help="Job-clock seconds per second of a queue's jobStateTimeLimitActions (0.001: 600 s fire after 0.6 s).",
)
@endpoint_option
def durations(
    default: float | None,
    queue: float | None,
    definition: tuple[str, ...],
    name: tuple[str, ...],
    run: tuple[str, ...],
    min_timeout: int | None,
    time_limit_scale: float | None,
    endpoint_url: str,
) -> None:
    """How long jobs take on the emulator's clock (applies to jobs submitted from now on)."""
    _call(
        endpoint_url,
        lambda c: c.set_durations(
            default=default,
            queue=queue,
            by_definition=_pairs(definition, "--definition"),
            by_name=_pairs(name, "--name"),
            by_run=_pairs(run, "--run"),
            min_timeout=min_timeout,
            time_limit_scale=time_limit_scale,
        ),
    )
    click.echo("durations set")


@cli.command()
@click.argument("seconds")
@endpoint_option
def retention(seconds: str, endpoint_url: str) -> None:
    """Forget finished jobs SECONDS after they finished ('off' keeps them for ever)."""
    value: float | None
    if seconds.lower() == "off":
        value = None
    else:
        try:
            value = float(seconds)
        except ValueError as error:
            raise click.BadParameter(f"expected seconds or 'off', got {seconds!r}", param_hint="SECONDS") from error
    _call(endpoint_url, lambda c: c.retention(value))
    click.echo("retention off" if value is None else f"finished jobs are forgotten after {value:g} s")


@cli.command()
@click.option("--duplicates", type=float, default=0.0, show_default=True, help="Share of events delivered twice.")
@click.option(
    "--reorder-window",
    type=int,
    default=1,
    show_default=True,
    help="Release events N at a time in a seeded random order (1 = in order).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--drop", type=float, default=0.0, show_default=True, help="Share of events never delivered.")
@click.option("--no-tags", is_flag=True, help="Events carry no job tags (AWS documents none).")
@click.option("--off", is_flag=True, help="Publish no Batch events at all.")
@endpoint_option
def events(
    duplicates: float, reorder_window: int, seed: int, drop: float, no_tags: bool, off: bool, endpoint_url: str
) -> None:
    """Batch Job State Change events into EventBridge (default bus), with injected duplicates, reordering, loss."""
    _call(
        endpoint_url,
        lambda c: c.events(
            duplicates=duplicates,
            reorder_window=reorder_window,
            seed=seed,
            enabled=not off,
            drop=drop,
            tags=not no_tags,
        ),
    )
    click.echo("events off" if off else "events on")


def _fault_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        (
            click.argument("name_glob", default="*"),
            click.option("--indices", help="Comma-separated array indices (default: every index / the plain job)."),
            click.option("--share", type=float, help="A seeded share (0..1) of the matching attempts instead."),
            click.option("--times", type=int, help="Only the first N attempts, so a retry strategy can recover."),
            click.option("--seed", type=int, default=0, show_default=True),
            endpoint_option,
        )
    ):
        command = option(command)
    return command


@cli.command()
@_fault_options
def spot(
    name_glob: str, indices: str | None, share: float | None, times: int | None, seed: int, endpoint_url: str
) -> None:
    """Reclaim the Spot capacity under matching attempts (on SPOT / FARGATE_SPOT environments only), with AWS's
    reason: 'Your Spot Task was interrupted.' (Fargate Spot) or 'Host EC2 (instance i-...) terminated.' (EC2)."""
    _call(
        endpoint_url,
        lambda c: c.spot_reclaim(name_glob, indices=_indices(indices), share=share, seed=seed, times=times),
    )
    click.echo(f"reclaiming {name_glob}" + (f" indices {indices}" if indices else ""))


@cli.command()
@_fault_options
def oom(
    name_glob: str, indices: str | None, share: float | None, times: int | None, seed: int, endpoint_url: str
) -> None:
    """Kill matching attempts for running out of memory: exit code 137, 'OutOfMemoryError: Container killed due
    to memory usage'."""
    _call(endpoint_url, lambda c: c.oom(name_glob, indices=_indices(indices), share=share, seed=seed, times=times))
    click.echo(f"oom-killing {name_glob}" + (f" indices {indices}" if indices else ""))


@cli.command()
@click.option("--fargate", type=float, help="Fargate On-Demand vCPU quota (L-3032A538).")
@click.option("--fargate-spot", type=float, help="Fargate Spot vCPU quota (L-36FBB829).")
@endpoint_option
def quota(fargate: float | None, fargate_spot: float | None, endpoint_url: str) -> None:
    """Set (or, with no option, show) the account's Fargate vCPU quotas; a new account has 6 of each."""
    result = _call(endpoint_url, lambda c: c.quota(fargate=fargate, fargate_spot=fargate_spot))
    click.echo(json.dumps(result, indent=2, sort_keys=True))


HOLD_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


@cli.command()
@click.argument("state", type=click.Choice(HOLD_STATES, case_sensitive=False))
@click.option("--job-id", help="A job id, an array parent's id (every child) or a PARENT:INDEX child id.")
@click.option("--name", "name_glob", metavar="GLOB", help="Every job whose name matches GLOB (fnmatch).")
@endpoint_option
def hold(state: str, job_id: str | None, name_glob: str | None, endpoint_url: str) -> None:
    """Keep matching jobs in STATE until released, whatever the clock says; prints the hold id."""
    if (job_id is None) == (name_glob is None):
        raise click.UsageError("give exactly one of --job-id or --name")
    hold_id = _call(endpoint_url, lambda c: c.hold(state.upper(), job_id=job_id, name_glob=name_glob))
    click.echo(f"hold {hold_id}: {job_id or name_glob} stays {state.upper()}")


@cli.command()
@click.argument("hold_ids", nargs=-1, type=int)
@click.option("--all", "release_all", is_flag=True, help="Release every hold.")
@endpoint_option
def release(hold_ids: tuple[int, ...], release_all: bool, endpoint_url: str) -> None:
    """Release the holds HOLD_IDS (or --all); what they held moves on from now."""
    if bool(hold_ids) == release_all:
        raise click.UsageError("give hold ids or --all")
    released = _call(endpoint_url, lambda c: c.release(*hold_ids))
    click.echo(f"released {len(released)} hold(s)" + "".join(f" {h['hold_id']}" for h in released))


@cli.command()
@endpoint_option
def holds(endpoint_url: str) -> None:
    """List the holds and the jobs each one is keeping where they are now (JSON)."""
    click.echo(json.dumps(_call(endpoint_url, lambda c: c.holds()), indent=2, sort_keys=True))


@cli.command()
@endpoint_option
def counters(endpoint_url: str) -> None:
    """Print the API calls, injected errors and published events since the last reset (JSON)."""
    click.echo(json.dumps(_call(endpoint_url, lambda c: c.counters()), indent=2, sort_keys=True))


@cli.command()
@endpoint_option
def reset(endpoint_url: str) -> None:
    """Forget every resource, job, setting, failure rule and counter."""
    _call(endpoint_url, lambda c: c.reset())
    click.echo("reset")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("--host", "--port"):
        args = ["serve", *args]  # the original interface: python -m batch_emulator [--host H] [--port N]
    cli.main(args=args, prog_name="python -m batch_emulator")


if __name__ == "__main__":
    main()
