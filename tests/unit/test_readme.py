"""The front door cannot rot: the README's diagram is the one generated from confluence.yaml, it shows exactly the
two set-up commands, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from confluence_runtime.config import load_config
from confluence_runtime.render import mermaid

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_workflow_diagram_is_generated_from_confluence_yaml() -> None:
    blocks = re.findall(r"```mermaid\n(.*?)```", README, flags=re.S)
    assert blocks == [mermaid(load_config(ROOT / "confluence.yaml"))], (
        "README diagram is stale: regenerate it with `confluence-submit plan --format mermaid`"
    )


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in commands] == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        # each front door installs what it needs by itself
        assert re.search(rf"^{target}: install\b", makefile, flags=re.M)
