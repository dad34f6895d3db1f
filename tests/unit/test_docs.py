"""The documents a newcomer reads cannot rot: every relative link of README.md, ARCHITECTURE.md and docs/*.md reaches
an existing file (and heading), the README links every page of docs/, every Markdown file the documents name is in
the repository, and every ``confluence-submit`` and ``python -m batch_emulator`` command line they show parses with
the real command-line interface (its commands, options and choices)."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", flags=re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", flags=re.M)
MARKDOWN_NAME = re.compile(r"[\w./-]*\w\.md\b")


def documents(root: Path = ROOT) -> list[Path]:
    """The documents a reader is pointed at: the README, the architecture (once it exists) and docs/."""
    found = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    if (root / "ARCHITECTURE.md").is_file():
        found.insert(1, root / "ARCHITECTURE.md")
    return found


def prose(text: str) -> str:
    """The text outside fenced code blocks (a link inside a code block is an example, not a link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces as `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a linked heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(path.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """Each relative link of ``path`` that names no existing file, or a heading its Markdown target lacks."""
    problems = []
    for target in LINK.findall(prose(path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not a file of the repository
            continue
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{path.name}: {target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            problems.append(f"{path.name}: {target}: {linked.name} has no heading #{fragment}")
    return problems


def linked_files(path: Path) -> set[Path]:
    return {
        (path.parent / target.partition("#")[0]).resolve()
        for target in LINK.findall(prose(path.read_text()))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and target.partition("#")[0]
    }


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_an_existing_file_and_heading(path: Path) -> None:
    assert broken_links(path) == []


def test_the_readme_links_every_page_of_docs() -> None:
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md")}
    assert len(pages) >= 6
    assert sorted(p.name for p in pages - linked_files(ROOT / "README.md")) == []


def test_every_markdown_file_the_documents_name_is_in_the_repository() -> None:
    """A document may only send its reader to files that are here (not to notes kept outside the project)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    present = {Path(p).name for p in tracked.split()} | {p.name for p in documents()}
    named = {(path.name, Path(name).name) for path in documents() for name in MARKDOWN_NAME.findall(path.read_text())}
    assert sorted((doc, name) for doc, name in named if name not in present) == []


def test_the_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Packing (`items_per_child`)\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/page.md#packing-items_per_child) [gone](docs/gone.md) [bad](docs/page.md#nothing)\n"
        "```\n[in a code block](docs/ignored.md)\n```\n[web](https://example.org/x.md)\n"
    )
    assert broken_links(tmp_path / "README.md") == [
        "README.md: docs/gone.md: no such file",
        "README.md: docs/page.md#nothing: page.md has no heading #nothing",
    ]


# --------------------------------------------------------------------------------------------------------------
# Command lines


def _confluence_submit() -> click.Group:
    (script,) = entry_points(group="console_scripts", name="confluence-submit")
    group = script.load()
    assert isinstance(group, click.Group)
    return group


def _batch_emulator() -> click.Group:
    from batch_emulator.__main__ import cli

    return cli


PROGRAMS = {"confluence-submit": _confluence_submit, "python -m batch_emulator": _batch_emulator}


def command_lines(text: str) -> Iterator[tuple[str, bool]]:
    """The program's command lines a document shows, each with whether it is whole: in code blocks (with or
    without a `$ ` prompt, continued lines joined) a whole line; in inline code, maybe only the command's name."""
    for block in FENCE.finditer(text):
        body = block.group(0).split("\n", 1)[1].rsplit("\n", 1)[0].replace("\\\n", " ")
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith(tuple(PROGRAMS)):
                yield line, True
    for span in re.findall(r"`([^`\n]+)`", prose(text)):
        if span.startswith(tuple(f"{program} " for program in PROGRAMS)):
            yield span, False


def documented_commands() -> list[tuple[str, str, bool]]:
    found = {(path.name, line, whole) for path in documents() for line, whole in command_lines(path.read_text())}
    return sorted(found)


def words(line: str) -> list[str]:
    """The words of one shell command: quotes removed, up to a comment or a control operator (`&`, `|`, `;`)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    found = []
    for word in lexer:
        if word and set(word) <= set(";&|"):
            break
        found.append(word)
    return found


def parse(line: str, whole: bool = True) -> None:
    """Parse ``line`` as the real CLI would, down to the leaf command's options; run nothing. A line that is not
    ``whole`` (a command named in prose) may leave out required options."""
    program = next(p for p in PROGRAMS if line.startswith(p))
    args = words(line[len(program) :])
    command: click.Command = PROGRAMS[program]()
    name = program
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.commands.get(args[0])
        if sub is None:
            raise click.UsageError(f"no command {args[0]!r} in {name}")
        name, command, args = f"{name} {args[0]}", sub, args[1:]
    try:
        command.make_context(name, args)
    except click.exceptions.Exit:  # --help, --version: parsed, then click exits
        pass
    except click.MissingParameter:
        if whole:
            raise


def test_documents_show_command_lines() -> None:
    """The parse test below checks something: the walkthrough and the references do show command lines."""
    shown = {line.split()[1] for _, line, whole in documented_commands() if whole and line.startswith("confluence-")}
    assert {"sandbox", "status", "logs", "report", "retry-failed", "runs", "run", "cancel", "resume"} <= shown


@pytest.mark.parametrize(
    ("document", "line", "whole"),
    [pytest.param(*shown, id=f"{shown[0]}-{number}") for number, shown in enumerate(documented_commands())],
)
def test_every_documented_command_line_parses(
    document: str, line: str, whole: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")  # the emulator's controls are shown after export
    try:
        parse(line, whole)
    except click.ClickException as e:
        pytest.fail(f"{document}: `{line}` does not parse: {e.format_message()}")


def test_a_wrong_option_or_command_does_not_parse() -> None:
    with pytest.raises(click.NoSuchOption):
        parse("confluence-submit status --run 20261125T154320-3f9a")
    with pytest.raises(click.UsageError):
        parse("confluence-submit retry-faild --run-id 20261125T154320-3f9a")
    with pytest.raises(click.BadParameter):
        parse("confluence-submit run --on-failure ignore")
    with pytest.raises(click.MissingParameter):
        parse("confluence-submit logs --module neobam")
    parse("confluence-submit logs", whole=False)  # named in prose
    assert words("confluence-submit runs --output json | jq . # all") == [
        "confluence-submit",
        "runs",
        "--output",
        "json",
    ]
