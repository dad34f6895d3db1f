"""The one family of errors the core raises; only the CLI turns them into messages and exit codes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ConfluenceError(Exception):
    """Base class of every error the runtime raises on purpose."""

    exit_code = 1
    hint: str | None = None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file, located as precisely as we know."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ConfluenceError):
    """The configuration cannot be used; every problem found is listed at once."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        files = sorted({p.file for p in self.problems})
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head} in {', '.join(files)}:\n{lines}")


class PlanError(ConfluenceError):
    """A valid configuration that cannot be turned into AWS Batch submissions."""

    exit_code = 2


class SubmitError(ConfluenceError):
    """AWS refused a submission for good (after retries)."""


class RecordError(ConfluenceError):
    """The run record (submission CSV) is unreadable or disagrees with the plan."""

    exit_code = 2


class AwsError(ConfluenceError):
    """An AWS call failed for good; carries the operation and AWS's own message."""


class RenewError(ConfluenceError):
    """The renew Lambda or its schedule could not do what was asked."""


class NoAccessError(AwsError):
    """AWS cannot be asked at all: no credentials, an unknown profile, or an endpoint that does not answer."""

    exit_code = 3


class UnknownRegionError(AwsError):
    """A region name no AWS partition has (a typo such as us-wset-2): bad input, refused before any request."""

    exit_code = 2


class PathError(ConfluenceError):
    """A file the command must read or write is a directory, missing its folder, or not writable."""

    exit_code = 2


class RunBusyError(ConfluenceError):
    """Another command holds the run's record (it is submitting into the run): nothing wrong with the input, the
    command can be repeated once that one ends (exit code 1)."""
