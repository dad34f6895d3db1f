"""The GitHub workflows: actions pinned by commit SHA, a supported Node, every environment deployed with its own
role, the ops diff shown before the approval, and every cdk command naming its region."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# owner/repo[/path]@<40 hex> # vX.Y.Z
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}$")
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(.+?)\s*$")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in workflow["jobs"].items() for step in spec.get("steps", [])]


def test_there_are_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "pull-request.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_full_commit_sha_with_its_tag(path: Path) -> None:
    lines = [m.group(1) for m in map(USES.match, path.read_text(encoding="utf-8").splitlines()) if m]
    assert lines
    assert [line for line in lines if not PINNED.match(line)] == []


def test_the_pin_check_refuses_tags_and_short_shas() -> None:
    for bad in (
        "actions/checkout@v5",
        "actions/checkout@08c6903",
        "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8",
    ):
        assert not PINNED.match(bad), bad


def _makefile_node() -> str:
    match = re.search(r"^NODE_VERSION := (\d+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert match
    return match.group(1)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_ci_runs_the_makefiles_supported_node(path: Path) -> None:
    assert _makefile_node() in ("22", "24")
    versions = {
        step["with"]["node-version"] for _, step in steps(load(path)) if "setup-node" in str(step.get("uses", ""))
    }
    assert versions == {_makefile_node()}


def test_main_deploys_dev1_and_ops_each_through_its_environment_and_shows_the_ops_diff_first() -> None:
    jobs = load(ROOT / ".github" / "workflows" / "deploy.yml")["jobs"]
    assert {name: job.get("environment") for name, job in jobs.items()} == {
        "deploy-dev": "dev1",
        "diff-ops": None,
        "deploy-ops": "ops",
    }
    assert jobs["diff-ops"]["needs"] == "deploy-dev" and jobs["deploy-ops"]["needs"] == "diff-ops"
    for name in ("deploy-dev", "deploy-ops"):
        assert [
            s["with"]["role-to-assume"] for s in jobs[name]["steps"] if "with" in s and "role-to-assume" in s["with"]
        ] == [
            "${{ vars.CONFLUENCE_DEPLOY_ROLE_ARN }}"  # the environment's own variable: its own role
        ]
    diff_run = next(s["run"] for s in jobs["diff-ops"]["steps"] if "cdk diff" in s.get("run", ""))
    assert '-c "venue=$VENUE"' in diff_run and '>> "$GITHUB_STEP_SUMMARY"' in diff_run and "pipefail" in diff_run
    assert jobs["diff-ops"]["env"]["VENUE"] == jobs["deploy-ops"]["env"]["VENUE"] == "ops"
    assert [
        s["with"]["role-to-assume"] for s in jobs["diff-ops"]["steps"] if "role-to-assume" in s.get("with", {})
    ] == ["${{ vars.CONFLUENCE_DIFF_ROLE_ARN }}"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_cdk_command_names_its_region(path: Path) -> None:
    """A fresh runner has no AWS configuration: each command says the region instead of relying on one."""
    runs = [step["run"] for _, step in steps(load(path)) if "cdk " in step.get("run", "")]
    assert runs
    for run in runs:
        assert '-c "region=$CONFLUENCE_REGION"' in run, run
    assert load(path)["env"]["CONFLUENCE_REGION"] == "us-west-2"
