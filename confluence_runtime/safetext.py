"""Text from AWS, files and containers on its way to a terminal: data, never markup, never terminal control.

A job's status reason is set by whoever may cancel or terminate the venue's jobs; a log line by the container; a
value in confluence.yaml by whoever edited the file. Printed raw, ``ESC[2J`` clears the screen, OSC 52 writes the
clipboard and OSC 8 hides a link behind innocent text; through rich's markup, ``[/x]`` raises ``MarkupError``.
So such text goes through :func:`clean` (control characters and escape sequences removed) and reaches rich as
:func:`text` (a ``rich.text.Text``, which rich never parses as markup) or :func:`markup` (escaped, for a message
that also carries markup of ours). :class:`SafeConsole` is the last net: whatever a renderable holds, its text is
cleaned as it is written, while rich's own styles and cursor moves (``status --watch``) still reach the terminal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.segment import Segment
from rich.text import Text

# ECMA-48 sequences, 7-bit (ESC ...) and 8-bit (C1): a CSI up to its final byte; an OSC, DCS, SOS, PM or APC
# string up to its terminator (BEL or ST) or the end of the line (an unterminated one would swallow what follows);
# any other ESC with its intermediate and final bytes; a lone ESC.
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# C0 except tab and newline, DEL and C1.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(value: Any) -> str:
    """``value`` as text a terminal shows as it is: escape sequences and control characters removed, tabs and
    newlines kept."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case: nothing to remove
        return text
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


def clean_line(value: Any) -> str:
    """:func:`clean`, on one line: newlines (a multi-line reason) become spaces."""
    return " ".join(clean(value).splitlines())


def text(value: Any, style: str = "") -> Text:
    """Data for a rich renderable: cleaned, and a ``Text`` so that brackets in it are never markup."""
    return Text(clean(value), style=style)


def markup(value: Any) -> str:
    """Data inside a message that also holds markup of ours (``[bold red]error:[/] ...``): cleaned and escaped."""
    return escape(clean(value))


class SafeConsole(Console):
    """A rich console that cleans the text of every segment it writes (rich's control segments, its cursor moves,
    and the escape codes of its own styles are not text and pass)."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(clean(segment.text), segment.style) for segment in buffer
        )


class CleanFormatter(logging.Formatter):
    """Log lines carry AWS's messages: cleaned like everything else that reaches the console or the log file."""

    def format(self, record: logging.LogRecord) -> str:
        return clean(super().format(record))
