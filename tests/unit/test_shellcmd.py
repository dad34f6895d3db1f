"""Every command line printed for a person to paste is built by one helper that quotes each argument, so a path
with a space, a quote or a ``$`` pastes as the one argument it is."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from confluence_runtime.shellcmd import command, options, shell

ROOT = Path(__file__).resolve().parents[2]
# A literal "confluence-submit ..." running into a formatted value: a command line put together by hand.
# a command: the tool, a subcommand, then arguments (a version after the tool's name is not one)
HAND_BUILT = re.compile(r"confluence-submit [a-z][a-z-]*(?: [^`,;()\n]*)?$")


def test_each_argument_is_quoted_once_and_plain_ones_are_left_alone() -> None:
    assert command("status", "-s", Path("out/submission.csv"), "--run-id", "20261126T013312-f70d") == (
        "confluence-submit status -s out/submission.csv --run-id 20261126T013312-f70d"
    )
    assert (
        command("logs", "-s", Path("my runs/sub.csv"), "--index", 3)
        == "confluence-submit logs -s 'my runs/sub.csv' --index 3"
    )
    assert shell("aws", "batch", "describe-jobs", "--jobs", "a$b") == "aws batch describe-jobs --jobs 'a$b'"
    assert options([("--venue", None), ("--ledger", "s3://b/p")]) == ["--ledger", "s3://b/p"]


@given(st.lists(st.text(alphabet=st.characters(exclude_characters="\x00"), min_size=0, max_size=12), max_size=6))
def test_a_shell_splits_the_printed_line_back_into_the_same_arguments(args: list[str]) -> None:
    assert shlex.split(command(*args)) == ["confluence-submit", *args]


def test_no_command_line_is_built_by_hand_in_the_runtime() -> None:
    found = []
    for path in sorted((ROOT / "confluence_runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.JoinedStr):
                continue
            for part, after in zip(node.values, node.values[1:], strict=False):
                hand_built = isinstance(part, ast.Constant) and HAND_BUILT.search(str(part.value))
                if hand_built and isinstance(after, ast.FormattedValue):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def test_the_check_finds_a_hand_built_command_line() -> None:
    tree = ast.parse('f"continue with: confluence-submit resume -s {csv} --run-id {run_id}"')
    joined = next(n for n in ast.walk(tree) if isinstance(n, ast.JoinedStr))
    assert HAND_BUILT.search(str(joined.values[0].value))  # type: ignore[attr-defined]
