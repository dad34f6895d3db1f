"""``confluence-submit doctor``: check a deployed venue end to end, one line per check (exit 0 only if all pass)."""

from __future__ import annotations

import json
import sys

import click
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from ..config import load_config
from ..safetext import clean
from ..venue.doctor import DEFAULT_TIMEOUT, Check, Examination, examine, passed
from .common import AWS, Common, common_options, config_options, err, handle_errors, out

INDENT = " " * 5  # under the check's name, past its mark
MARKS = {True: ("ok  ", "green"), False: ("FAIL", "bold red"), None: ("skip", "yellow")}


@click.command()
@config_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds the canary jobs may take to finish.",
)
@common_options(*AWS, "fmt")
@handle_errors
def doctor(config_path: str, venue: str | None, timeout: float, common: Common) -> None:
    """Check a deployed venue end to end: its stacks' parameters, a canary job per queue and compute kind and per
    module with mounts or secrets, the canaries' logs, the supervisor's rule and the event tags it needs, each
    module's secrets, the vCPU quotas against max_vcpus, the alerts' subscribers and the ledger's conditional
    writes. Exit 0 only when every check passes."""
    common.note_region()
    config = load_config(config_path, venue=venue)
    examination = Examination(config, common.aws, timeout=timeout, aws_args=common.aws_args)
    if common.fmt == "text":
        err.print(Text(clean(f"doctor: venue {config.prefix} (canaries are named {examination.run_id}-*)")))

    def report(check: Check) -> None:
        if common.fmt != "text":
            return
        out.print(check_line(check, terminal=out.is_terminal), highlight=False)
        for fix in check.fix:
            # A command is never broken by us: a terminal wraps it softly, and it pastes as one line.
            out.print(Text(f"{INDENT}{clean(fix)}"), soft_wrap=True, highlight=False)
        sys.stdout.flush()

    checks = examine(examination, report)
    failed = [c.name for c in checks if c.ok is False]
    if common.fmt == "json":
        click.echo(json.dumps({"venue": config.prefix, "passed": not failed, "checks": [c.to_dict() for c in checks]}))
    else:
        verdict = "every check passed" if not failed else f"{len(failed)} checks failed: {failed_names(failed)}"
        verdict_line = Text(clean(f"venue {config.prefix}: {verdict}"), style="green" if not failed else "bold red")
        out.print(verdict_line, soft_wrap=not out.is_terminal)
    sys.exit(0 if passed(checks) else 1)


def check_line(check: Check, *, terminal: bool) -> RenderableType:
    """One check. Piped (a log, grep), one line whatever its length. At a terminal, wrapped at words under its name
    (a hanging indent past the mark), so no word, stream name or pasted command is cut by the terminal's edge."""
    mark, style = MARKS[check.ok]
    said = Text(clean(f"{check.name}: {check.found}"))
    if not terminal:
        return Text(mark, style=style) + Text(" ") + said
    line = Table.grid(padding=(0, 1))
    line.add_column(no_wrap=True)
    line.add_column(overflow="fold")  # a word longer than the line (a long ARN) is folded, never dropped
    line.add_row(Text(mark, style=style), said)
    return line


def failed_names(failed: list[str], most: int = 10) -> str:
    """The failed checks' names; past ``most``, the first ones and how many more (each is a FAIL line above)."""
    if len(failed) <= most:
        return ", ".join(failed)
    return f"{', '.join(failed[:most])} and {len(failed) - most} more (the FAIL lines above)"
