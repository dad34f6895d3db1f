"""What every command module shares: rich consoles, the error-to-exit-code mapping and common options."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from .config import VENUES
from .errors import ConfluenceError

F = TypeVar("F", bound=Callable[..., Any])


def _console(*, stderr: bool) -> Console:
    """Rich consoles; piped output (CI logs, files) gets 120 columns instead of rich's 80 unless COLUMNS says."""
    console = Console(stderr=stderr, soft_wrap=True)  # names and commands to copy must never be wrapped
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 120
    return console


out = _console(stderr=False)
err = _console(stderr=True)


def handle_errors(fn: F) -> F:
    """Map the core's errors to a message on stderr and an exit code; nothing else decides exit codes."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfluenceError as e:
            err.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
            if e.hint:
                err.print(f"hint: {e.hint}", highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)

    return wrapper  # type: ignore[return-value]


def config_options(fn: F) -> F:
    fn = click.option(
        "-c",
        "--config",
        "config_path",
        default="confluence.yaml",
        show_default=True,
        type=click.Path(dir_okay=False),
        help="The workflow file.",
    )(fn)
    return click.option(
        "--venue", type=click.Choice(VENUES), help="Deployment venue: sets the prefix to confluence-VENUE."
    )(fn)


def aws_options(fn: F) -> F:
    fn = click.option(
        "--endpoint-url",
        envvar="CONFLUENCE_ENDPOINT_URL",
        help="AWS endpoint (moto server, LocalStack); default: AWS or AWS_ENDPOINT_URL.",
    )(fn)
    return click.option("--region", help="AWS region; default: AWS_REGION / AWS_DEFAULT_REGION / us-west-2.")(fn)
