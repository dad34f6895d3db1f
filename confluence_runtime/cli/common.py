"""What every command module shares: the consoles, the error-to-exit-code mapping, logging, the options every
command may take (declared once, here) and the context of commands that work on an existing run."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import ConsoleDimensions
from rich.text import Text

from .. import names
from ..apply.cancel import StopReport
from ..apply.reconcile import Reconciled
from ..apply.recover import Recovery, recovery_plan
from ..apply.submit import DEFAULT_RATE, DEFAULT_WORKERS
from ..aws.api import AwsOptions, Batch, access_problem, region_in_use
from ..aws.pacing import DEFAULT_DEADLINE
from ..config import VENUES, Config, load_config
from ..errors import ConfluenceError, NoAccessError, PathError, RecordError
from ..planning.plan import Plan, build_plan
from ..records import provenance
from ..records.ledger import Ledger, open_ledger
from ..records.runlock import root_of
from ..safetext import CleanFormatter, SafeConsole, clean, markup
from ..shellcmd import FORMAT, Arg, options
from ..views.runview import RunView, open_run

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("confluence")
LOG_FORMAT = "%(asctime)s : %(levelname)s : %(message)s"


PIPED_WIDTH = 120


class _Console(SafeConsole):
    """A console that takes its width when it renders, not when it is made (at import): COLUMNS, else the
    terminal's width now (a resized window), else for piped output (CI logs, files) 120 columns instead of rich's 80.
    Whatever it prints is cleaned of terminal control (see safetext)."""

    def __init__(self, *, stderr: bool) -> None:
        super().__init__(stderr=stderr, soft_wrap=True)  # names and commands to copy must never be wrapped
        # rich reads COLUMNS once, in its constructor, and would keep that width for good.
        self._width = self._height = None

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def _console(*, stderr: bool) -> SafeConsole:
    return _Console(stderr=stderr)


out = _console(stderr=False)
err = _console(stderr=True)


def _fail(message: str, hint: str | None, code: int) -> None:
    # The message may quote a yaml value or AWS's words: text, never markup.
    err.print(Text("error:", style="bold red") + Text(" " + clean(message)), highlight=False, soft_wrap=True)
    if hint:
        err.print(Text(f"hint: {clean(hint)}"), highlight=False, soft_wrap=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Map every exception to a message on stderr and an exit code; nothing else decides exit codes.

    The core's errors carry their own message and code. A file the system refuses (a directory, no permission, a
    full disk) is named with the system's reason. Anything else is a bug: one line saying so, and the traceback
    only when CONFLUENCE_DEBUG=1 asks for it.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfluenceError as e:
            # An AWS call that failed because AWS cannot be asked at all: one line and exit code 3.
            problem = access_problem(e) if not isinstance(e, NoAccessError) else None
            if problem is not None:
                _fail(problem, None, NoAccessError.exit_code)
            _fail(str(e), e.hint, e.exit_code)
        except click.ClickException:
            raise  # a usage error found after parsing (options that only make sense together): click says it, exit 2
        except Exception as e:
            # No credentials, an unknown profile or an unreachable endpoint raised outside the core's wrappers:
            # still one line and exit code 3, never a traceback.
            problem = access_problem(e)
            if problem is not None:
                _fail(problem, None, NoAccessError.exit_code)
            if isinstance(e, OSError):
                where = f"{e.filename}: " if e.filename else ""
                _fail(f"{where}{e.strerror or e}", None, 1)
            if os.environ.get(names.ENV_DEBUG):
                raise
            _fail(
                f"unexpected {type(e).__name__}: {e}",
                f"this is a bug in confluence-submit; {names.ENV_DEBUG}=1 shows where it happened",
                1,
            )

    return wrapper  # type: ignore[return-value]


def report_duplicates(reconciled: Reconciled | None, run_id: str) -> None:
    """Name on the console each second job a lost SubmitJob reply left, what became of it, and the job kept."""
    if reconciled is None or not reconciled.duplicates:
        return
    stopped = reconciled.stopped or StopReport()
    states = {
        **dict.fromkeys(stopped.cancelled, "cancelled"),
        **dict.fromkeys(stopped.terminated, "terminated"),
        **dict.fromkeys(stopped.already_finished, "had already finished"),
        **{job_id: f"NOT stopped ({why})" for job_id, why in stopped.not_stopped},
    }
    err.print(
        f"[yellow]warning:[/] AWS held a second job under {len(reconciled.duplicates)} name(s) of run {markup(run_id)} "
        "(a SubmitJob reply was lost, then the job was submitted again); the recorded job is kept:",
        highlight=False,
    )
    for d in reconciled.duplicates:
        state = states.get(d.job_id, "cancelled")
        err.print(Text(clean(f"  {d.name}: duplicate {d.job_id} {state}, kept {d.kept}")), highlight=False)


def check_output_file(path: str | Path, key: str) -> Path:
    """Refuse, before anything is submitted, a file the command will append to but cannot: a directory, a folder
    that cannot be created, or no permission. ``key`` names the setting in the message."""
    path = Path(path)
    problem = None
    if path.is_dir():
        problem = "is a directory"
    elif path.exists():
        if not os.access(path, os.W_OK):
            problem = "is not writable"
    else:
        folder = next((p for p in path.parents if p.exists()), Path("."))
        if not folder.is_dir():
            problem = f"cannot be created: {folder} is not a directory"
        elif not os.access(folder, os.W_OK | os.X_OK):
            problem = f"cannot be created: {folder} is not writable"
    if problem:
        error = PathError(f"{key} {path} {problem}")
        error.hint = f"pass another --{key.replace('_', '-')} or fix the path in the config"
        raise error
    return path


def setup_logging(log_file: str | None, verbose: bool = False) -> None:
    """Console and log file both get ``%(asctime)s : %(message)s`` lines (with the level), as the original did."""
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(CleanFormatter(LOG_FORMAT))
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    log.addHandler(console)
    if log_file:
        check_output_file(log_file, "log_file")
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        # delay: a command refused before its first log line leaves no empty log file behind.
        handler = logging.FileHandler(log_file, encoding="utf-8", delay=True)
        handler.setFormatter(CleanFormatter(LOG_FORMAT))
        log.addHandler(handler)


# --------------------------------------------------------------------------------------------------------------
# Options


def _context_habit(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``-c venue=dev1`` is the CDK's context flag (``cdk synth -c venue=dev1``); here -c names the workflow file."""
    if value and "=" in value and not Path(value).exists():
        key, _, setting = value.partition("=")
        habit = "-c names the workflow file; -c KEY=VALUE is the CDK's context flag"
        message = (
            f"{value!r} is not a file; did you mean `--venue {setting}`? ({habit})"
            if key == "venue"
            else f"{value!r} is not a file: {habit}, not confluence-submit's"
        )
        raise click.BadParameter(message, ctx=ctx, param=param)
    return value


def config_options(fn: F) -> F:
    """Which workflow file, and which venue's names."""
    fn = click.option(
        "-c",
        "--config",
        "config_path",
        default="confluence.yaml",
        show_default=True,
        type=click.Path(dir_okay=False),
        callback=_context_habit,
        help="The workflow file.",
    )(fn)
    return click.option(
        "--venue", type=click.Choice(VENUES), help="Deployment venue: sets the prefix to confluence-VENUE."
    )(fn)


def run_options(fn: F) -> F:
    """Which run: --run-id and/or -s FILE, plus the config that names its queues and plan."""
    fn = click.option("--run-id", help="The run (default: the latest run in the submission file).")(fn)
    fn = click.option(
        "-s", "--submission-file", help="Submission CSV (default: submission_file from the config, if it exists)."
    )(fn)
    return config_options(fn)


@dataclass(frozen=True)
class Common:
    """The shared options, handed to a command as one value (each command declares which it takes)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    fmt: str = "text"
    verbose: bool = False
    log_file: str | None = None
    rate: float = DEFAULT_RATE
    workers: int = DEFAULT_WORKERS
    ledger: str | None = None
    deadline: float = DEFAULT_DEADLINE

    @property
    def aws(self) -> AwsOptions:
        return AwsOptions(
            endpoint_url=self.endpoint_url, region=self.region, profile=self.profile, deadline=self.deadline
        )

    @property
    def aws_args(self) -> list[Arg]:
        """The endpoint, region and profile options this command was given, for every command line we print."""
        values = {"endpoint_url": self.endpoint_url, "region": self.region, "profile": self.profile}
        return options((AWS_FLAGS[name], value or None) for name, value in values.items())

    def note_region(self) -> None:
        """Say which region is used when none was configured (AWS would otherwise be asked somewhere silently)."""
        region, source = region_in_use(self.aws)
        if source == "default":
            err.print(f"note: no AWS region configured; using {region} (pass --region to choose)", highlight=False)


AWS = ("endpoint_url", "region", "profile", "deadline")
# The AWS options' flags, declared once: the options below and every command line printed for a person use them.
AWS_FLAGS = {"endpoint_url": "--endpoint-url", "region": "--region", "profile": "--profile"}
_SHARED: dict[str, Callable[..., Callable[[F], F]]] = {
    "endpoint_url": lambda: click.option(
        AWS_FLAGS["endpoint_url"],
        envvar=names.ENV_ENDPOINT_URL,
        help="AWS endpoint (moto server, LocalStack); default: AWS or AWS_ENDPOINT_URL.",
    ),
    "region": lambda: click.option(
        AWS_FLAGS["region"], help="AWS region; default: AWS_REGION / AWS_DEFAULT_REGION / us-west-2."
    ),
    "profile": lambda: click.option(
        AWS_FLAGS["profile"], help="AWS profile; default: AWS_PROFILE or the default credentials."
    ),
    "deadline": lambda: click.option(
        "--deadline",
        envvar=names.ENV_AWS_DEADLINE,
        type=click.FloatRange(min=0.1),
        default=DEFAULT_DEADLINE,
        show_default=True,
        help="Seconds one AWS call may take, its retries included, before the command gives up.",
    ),
    "fmt": lambda formats: click.option(
        FORMAT,
        "--output",
        "fmt",
        # The AWS CLI's habit: --output table. Our text output is already tables, so table is its other name.
        type=click.Choice([*formats, "table"] if "text" in formats else formats),
        callback=lambda _ctx, _param, value: "text" if value == "table" else value,
        default=formats[0],
        show_default=True,
        help="Output format (--output as in the AWS CLI; table is text).",
    ),
    "ledger": lambda: click.option(
        "--ledger",
        envvar=names.ENV_SUPERVISOR_LEDGER,
        help="Shared run ledger s3://BUCKET/PREFIX, mirrored beside the local one (default: ledger in the config).",
    ),
    "verbose": lambda: click.option("-v", "--verbose", is_flag=True, help="Log every submission to the console too."),
    "log_file": lambda: click.option("--log-file", help="Log file (default: log_file from the config)."),
    "rate": lambda: click.option(
        "--rate",
        type=click.FloatRange(min=0.1, max=50),
        default=DEFAULT_RATE,
        show_default=True,
        help="Client-side SubmitJob limit per second (AWS allows 50 per account).",
    ),
    "workers": lambda: click.option(
        "--workers",
        type=click.IntRange(1, 64),
        default=DEFAULT_WORKERS,
        show_default=True,
        help="Concurrent submissions within a wave.",
    ),
}


def common_options(*wanted: str, formats: tuple[str, ...] = ("text", "json")) -> Callable[[F], F]:
    """Give a command the shared options ``wanted`` (keys of :class:`Common`), passed as ``common=Common(...)``."""
    unknown = set(wanted) - set(_SHARED)
    if unknown:
        raise ValueError(f"no shared option {sorted(unknown)}")

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in wanted}
            return fn(*args, common=Common(**values), **kwargs)

        # functools.wraps shares the wrapped function's option list: give the wrapper its own.
        wrapper.__click_params__ = list(getattr(fn, "__click_params__", []))  # type: ignore[attr-defined]
        decorated: Any = wrapper
        for name in reversed(wanted):
            option = _SHARED[name](formats) if name == "fmt" else _SHARED[name]()
            decorated = option(decorated)
        return decorated

    return decorate


# --------------------------------------------------------------------------------------------------------------
# Commands on an existing run


class RunContext:
    """What status, cancel, resume and retry-failed need: the config (when readable), the CSV path, a Batch client
    and the run's plan."""

    def __init__(
        self,
        config_path: str,
        venue: str | None,
        submission_file: str | None,
        aws: AwsOptions,
        *,
        need_config: bool = False,
        max_pool: int = 20,
        shared_ledger: str | None = None,
    ) -> None:
        self.aws = aws
        self.config_path, self.venue = config_path, venue
        self.config: Config | None = None
        if need_config or Path(config_path).exists():
            self.config = load_config(config_path, venue=venue)
        elif config_path != "confluence.yaml":
            load_config(config_path, venue=venue)  # raises "file not found" for a path the user named
        path = submission_file or (self.config.submission_file if self.config else None)
        self.csv_path = Path(path) if path else None
        self.batch = Batch(aws, max_pool=max_pool)
        self._plans: dict[str, Plan] = {}
        self.shared_ledger = shared_ledger or (self.config.ledger if self.config else None)
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        """The run ledger: beside the submission CSV, mirrored to the shared location when one is set."""
        if self._ledger is None:
            self._ledger = open_ledger(self.csv_path, self.shared_ledger, self.aws)
        return self._ledger

    @property
    def has_ledger(self) -> bool:
        return self.csv_path is not None or self.shared_ledger is not None

    @property
    def lock_root(self) -> Path | None:
        """Where runs' locks are (beside the submission CSV); None without a CSV."""
        return root_of(self.csv_path)

    def run_id_for(self, run_id: str | None) -> str:
        """The run meant: ``run_id``, or the run started last."""
        run_id = run_id or self.latest_run()
        if run_id is None:
            where = f"{self.csv_path} and its ledger hold no run; " if self.csv_path is not None else ""
            raise RecordError(f"{where}name the run: pass --run-id ID or -s submissions.csv")
        return run_id

    def latest_run(self) -> str | None:
        """The run started last (by the ledger's headers; runs that predate the ledger come first)."""
        ids = self.ledger.run_ids() if self.has_ledger else []
        return ids[-1] if ids else None

    def plan_for(self, run_id: str) -> Plan | None:
        if self.config is None:
            return None
        if run_id not in self._plans:
            self._plans[run_id] = self._recovered_plan(run_id) or build_plan(self.config, run_id)
        return self._plans[run_id]

    def _recovered_plan(self, run_id: str) -> Plan | None:
        """A run recovered from a stage (run --from-stage) planned only that stage on: rebuilt from its record."""
        if self.config is None or not self.has_ledger:
            return None
        record = provenance.read(self.ledger, run_id)
        if record is None or record.origin_run_id is None or record.from_stage is None:
            return None
        origin = provenance.read(self.ledger, record.origin_run_id)
        if origin is None:
            return None
        recovery = Recovery(record.origin_run_id, record.from_stage, record.subset)
        try:
            return recovery_plan(self.config, run_id, origin, recovery)
        except RecordError:
            return None  # the yaml changed since: the record's jobs are still read, by name

    def open(self, run_id: str | None, *, reconcile: bool = True) -> RunView:
        run_id = self.run_id_for(run_id)
        recorded = self.has_ledger and self.ledger.header(run_id) is not None
        return open_run(
            self.batch,
            run_id=run_id,
            csv_path=self.csv_path,
            plan_for=self.plan_for,
            queues=self.config.job_queues if self.config else (),
            reconcile=reconcile,
            recorded=recorded,
            rows=None if self.shared_ledger is None else self.ledger.jobs(run_id),
        )

    def open_with_plan(self, run_id: str | None) -> tuple[RunView, Plan]:
        """The run and its plan (commands that submit need the config)."""
        view = self.open(run_id)
        plan = self.plan_for(view.run_id)
        assert plan is not None, "need_config=True loads the config"
        return view, plan
