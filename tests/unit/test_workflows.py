""".github/workflows: valid workflows (GitHub's workflow schema, offline), and the promises of the pipeline:
OIDC only, no stored AWS keys, tests on every pull request, ops deployed only after dev1 and behind its environment.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
BIN = Path(sys.executable).parent
CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"
ROLE = "${{ vars.CONFLUENCE_DEPLOY_ROLE_ARN }}"
# Pull requests and the ops diff assume the diff role: it reads deployed templates only (stacks/deploy_role.py).
DIFF_ROLE = "${{ vars.CONFLUENCE_DIFF_ROLE_ARN }}"


def load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 (PyYAML) reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in job.get("steps", []))


def all_jobs() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    workflows = {f.name: load(f.name) for f in FILES}
    return [
        (file, name, job, workflow) for file, workflow in workflows.items() for name, job in workflow["jobs"].items()
    ]


def test_the_two_workflows_exist() -> None:
    assert [f.name for f in FILES] == ["deploy.yml", "pull-request.yml"]


def test_workflows_match_the_github_workflow_schema() -> None:
    # check-jsonschema ships SchemaStore's github-workflow schema in its wheel: no network.
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_long_lived_aws_keys() -> None:
    for f in FILES:
        text = f.read_text(encoding="utf-8")
        for forbidden in ("aws-access-key-id", "aws-secret-access-key", "secrets.AWS_", "AWS_SECRET_ACCESS_KEY"):
            assert forbidden.lower() not in text.lower(), f"{f.name} contains {forbidden}"


def test_every_job_assuming_the_role_gets_an_oidc_token_and_only_it() -> None:
    assuming = []
    for file, name, job, workflow in all_jobs():
        permissions = job.get("permissions", workflow.get("permissions", {}))
        credentials = steps_using(job, CREDENTIALS_ACTION)
        if credentials:
            assuming.append((file, name))
            assert permissions == {"id-token": "write", "contents": "read"}, (file, name)
            expected = DIFF_ROLE if file == "pull-request.yml" or name == "diff-ops" else ROLE
            assert [s["with"]["role-to-assume"] for s in credentials] == [expected], (file, name)
        else:
            assert permissions.get("id-token", "none") == "none", f"{file}:{name} asks for an OIDC token it never uses"
    assert assuming == [
        ("deploy.yml", "deploy-dev"),
        ("deploy.yml", "diff-ops"),
        ("deploy.yml", "deploy-ops"),
        ("pull-request.yml", "synth"),
    ]
    # Nothing is granted workflow-wide beyond reading the repository.
    assert {f.name: load(f.name)["permissions"] for f in FILES} == {
        "deploy.yml": {"contents": "read"},
        "pull-request.yml": {"contents": "read"},
    }


def test_actions_are_pinned_to_a_full_commit_sha() -> None:
    # A tag can be moved to other code; a commit cannot (tests/infra/test_workflows.py also wants the tag comment).
    for file, name, job, _ in all_jobs():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), (
                    file,
                    name,
                    step["uses"],
                )


def test_pull_request_runs_lint_tests_synth_nag_cfn_lint_and_diff_for_dev1() -> None:
    workflow = load("pull-request.yml")
    assert "pull_request" in workflow["on"]
    test, synth = workflow["jobs"]["test"], workflow["jobs"]["synth"]
    assert "make lint" in runs(test).splitlines()
    assert "make test" in runs(test).splitlines()
    assert workflow["env"]["VENUE"] == "dev1"
    commands = runs(synth)
    assert "make install" in commands
    # --strict: a cdk-nag warning fails the synth as an error does.
    region = '-c "region=$CONFLUENCE_REGION"'  # a fresh runner has no AWS configuration
    assert f'node_modules/.bin/cdk synth -q --no-notices --strict -c "venue=$VENUE" {region}' in commands
    assert ".venv/bin/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json" in commands
    # --no-change-set: the lookup role reads the deployed templates; creating a change set would need the deploy role
    assert f'node_modules/.bin/cdk diff --all --no-notices --no-change-set -c "venue=$VENUE" {region}' in commands
    # The diff is the only step that needs AWS: it comes after the credentials, synth and cfn-lint before.
    names = [s.get("name", s.get("uses")) for s in synth["steps"]]
    assert names.index("cdk synth and cdk-nag") < names.index("AWS credentials (OIDC)") < names.index("cdk diff")


def test_deploy_runs_dev1_then_ops_behind_its_environment() -> None:
    workflow = load("deploy.yml")
    assert workflow["on"] == {"push": {"branches": ["main"]}}
    dev, diff, ops = (workflow["jobs"][j] for j in ("deploy-dev", "diff-ops", "deploy-ops"))
    assert "needs" not in dev
    # The ops diff runs outside the ops environment (whose approval gates a whole job), before the approval.
    assert diff["needs"] == "deploy-dev" and "environment" not in diff
    assert ops["needs"] in ("diff-ops", ["diff-ops"])
    assert (dev["environment"], dev["env"]["VENUE"]) == ("dev1", "dev1")
    assert (ops["environment"], ops["env"]["VENUE"]) == ("ops", "ops")
    for job in (dev, ops):
        assert (
            "node_modules/.bin/cdk deploy --all --no-notices --require-approval never "
            '-c "venue=$VENUE" -c "region=$CONFLUENCE_REGION"'
        ) in runs(job)
        names = [s.get("name", s.get("uses")) for s in job["steps"]]
        credentials = next(n for n in names if str(n).startswith("AWS credentials (OIDC"))
        assert names.index(credentials) < names.index("cdk deploy")


def test_two_deploys_of_one_venue_never_overlap() -> None:
    jobs = load("deploy.yml")["jobs"]
    groups = {name: job["concurrency"] for name, job in jobs.items() if name.startswith("deploy-")}
    assert groups == {
        "deploy-dev": {"group": "confluence-deploy-dev1", "cancel-in-progress": False},
        "deploy-ops": {"group": "confluence-deploy-ops", "cancel-in-progress": False},
    }


@pytest.mark.parametrize("name", ["deploy.yml", "pull-request.yml"])
def test_cdk_runs_with_the_project_environment(name: str) -> None:
    env = load(name)["env"]
    assert env["CDK_DISABLE_CLI_TELEMETRY"] == "true"
    # Node 22 (the Makefile's NODE_VERSION) is supported by jsii: no end-of-life warning to silence.
    assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION" not in env
    assert env["CONFLUENCE_REGION"] == "us-west-2"
