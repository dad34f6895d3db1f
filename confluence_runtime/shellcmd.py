"""Command lines printed for a person to paste: every argument ``shlex.quote``d, so a path with a space or a
value with a ``$`` pastes as one argument. The one place a printed command line is put together."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from os import PathLike

PROGRAM = "confluence-submit"
FORMAT = "--format"  # the output option of every command (declared in cli/common.py, printed in hints)

Arg = str | int | PathLike[str]


def shell(*argv: Arg) -> str:
    """Any command line, each argument quoted for a POSIX shell."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def command(*args: Arg) -> str:
    """A ``confluence-submit`` command line."""
    return shell(PROGRAM, *args)


def options(pairs: Iterable[tuple[str, Arg | None]]) -> list[Arg]:
    """The flags and values of the options that are set (``None`` leaves a flag out)."""
    return [item for flag, value in pairs if value is not None for item in (flag, value)]
