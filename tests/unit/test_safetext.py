"""Text from AWS, files and containers reaches a terminal as data: escape sequences and control characters are
removed, brackets stay brackets, and rich's own styling still works."""

from __future__ import annotations

import io

import pytest
from rich.text import Text

from confluence_runtime.safetext import SafeConsole, clean, clean_line, markup, text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\x1b[2Jb", "ab"),  # CSI: clear the screen
        ("x\x1b]52;c;cHduZWQ=\x07y", "xy"),  # OSC 52: write the clipboard (BEL-terminated)
        ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),  # OSC 8: a hidden link (ST-terminated)
        ("c1\x9b31mX", "c1X"),  # an 8-bit CSI
        ("\x9d0;title\x9cafter", "after"),  # an 8-bit OSC
        ("bell\x07\r\x00\x7f", "bell"),  # C0, DEL
        ("reset\x1bc", "reset"),  # ESC c: reset the terminal
        ("open \x1b]0;title\nnext", "open \nnext"),  # an unterminated OSC ends at the line
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("[/x] [bold]é ✓", "[/x] [bold]é ✓"),
    ],
)
def test_clean(raw: str, shown: str) -> None:
    assert clean(raw) == shown


def test_text_and_markup_keep_brackets_as_written() -> None:
    assert text("[/x]\x1b[2J").plain == "[/x]"
    console = SafeConsole(file=io.StringIO(), width=80)
    console.print(f"[bold]error:[/] {markup('[/x] closed [bold]')}")
    assert console.file.getvalue() == "error: [/x] closed [bold]\n"  # type: ignore[attr-defined]
    assert clean_line("one\ntwo\x1b[2J") == "one two"


def test_the_console_strips_what_a_renderable_holds_and_keeps_its_own_styles() -> None:
    console = SafeConsole(file=io.StringIO(), width=80, force_terminal=True, color_system="standard")
    console.print(Text("boom\x1b]52;c;eA==\x1b\\!", style="red"))
    written = console.file.getvalue()  # type: ignore[attr-defined]
    assert written == "\x1b[31mboom!\x1b[0m\n"
