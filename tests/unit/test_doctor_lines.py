"""``doctor`` at an 80-column terminal: a long check wraps at words under its name (past the mark), never mid-word
at the terminal's edge; piped, each check stays one line (what logs and grep expect)."""

from __future__ import annotations

import io

from rich.console import Console

from confluence_runtime.cli.doctor import check_line
from confluence_runtime.venue.doctor import Check

CHECK = Check(
    "logs confluence-dev-postdiagnostics_moi (fargate_spot)",
    True,
    "stream confluence-dev-barrier/default/4b27fca491b5952e43c97c0d991dc923 is in /aws/batch/job, where logs looks",
)


def shown(terminal: bool, width: int = 80) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None, soft_wrap=True)
    console.print(check_line(CHECK, terminal=terminal))
    return [line.rstrip() for line in console.file.getvalue().splitlines()]  # type: ignore[attr-defined]


def test_at_a_terminal_a_check_wraps_at_words_under_its_name() -> None:
    assert shown(terminal=True) == [
        "ok   logs confluence-dev-postdiagnostics_moi (fargate_spot): stream",
        "     confluence-dev-barrier/default/4b27fca491b5952e43c97c0d991dc923 is in",
        "     /aws/batch/job, where logs looks",
    ]


def test_piped_a_check_is_one_line() -> None:
    assert shown(terminal=False) == [f"ok   {CHECK.name}: {CHECK.found}"]


def test_the_verdict_names_at_most_ten_failed_checks() -> None:
    from confluence_runtime.cli.doctor import failed_names

    names = [f"module m{i}" for i in range(41)]
    assert failed_names(names[:3]) == "module m0, module m1, module m2"
    assert failed_names(names).endswith("module m9 and 31 more (the FAIL lines above)")
