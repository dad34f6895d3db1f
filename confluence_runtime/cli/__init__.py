"""``confluence-submit``: thin commands that parse, call one core function, render, and pick the exit code."""

from __future__ import annotations

import click

from .. import __version__
from .cancel import cancel
from .doctor import doctor
from .efs import efs
from .ledger import logs, report, runs
from .plan import plan
from .provenance import lineage, show
from .renew import credentials, renew
from .resources import resources
from .resume import resume, retry_failed_command
from .run import run
from .sandbox import sandbox
from .status import status
from .supervise import supervise


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="confluence-submit")
def main() -> None:
    """Plan, run, watch, cancel, resume and retry Confluence runs on AWS Batch."""


_COMMANDS = (
    plan,
    run,
    status,
    runs,
    report,
    logs,
    lineage,
    cancel,
    resume,
    retry_failed_command,
    renew,
    credentials,
    sandbox,
    efs,
    resources,
    doctor,
)
for _command in (*_COMMANDS, supervise):
    main.add_command(_command)
runs.add_command(show)
