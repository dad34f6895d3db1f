"""The real CDK CLI synthesizes the shipped configuration; cdk-nag and cfn-lint find nothing left open."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from .conftest import STACK_KINDS, CliSynth

# cfn-lint's W3005 flags a DependsOn that a GetAtt already implies; CDK itself writes that pattern for Lambda
# roles, so this one check is ignored by name and nothing broader.
CFN_LINT_IGNORED = ("W3005",)


@pytest.mark.slow
def test_cdk_cli_synthesizes_every_stack_offline(cli_synth: CliSynth) -> None:
    assert cli_synth.returncode == 0, cli_synth.stderr[-4000:]
    for kind in STACK_KINDS:
        assert cli_synth.template_path(kind).is_file(), kind
    assert "AwsSolutions-" not in cli_synth.stderr


@pytest.mark.slow
def test_a_machine_with_no_aws_configuration_synthesizes_for_the_allowed_region(cli_synth: CliSynth) -> None:
    """The CLI passes us-east-1 when nothing names a region; app.py then takes cdk.json's allowed region."""
    assert cli_synth.returncode == 0, cli_synth.stderr[-4000:]
    assert [v for v in cli_synth.variables if v.startswith(("AWS_", "CDK_DEFAULT_"))] == []
    assert "HOME" in cli_synth.variables and not (cli_synth.home / ".aws").exists()
    manifest = json.loads((cli_synth.outdir / "manifest.json").read_text())
    environments = {
        name: artifact["environment"]
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert set(environments.values()) == {"aws://unknown-account/us-west-2"}, environments
    assert "us-east-1" not in cli_synth.stderr


@pytest.mark.slow
def test_cdk_nag_reports_no_open_finding(cli_synth: CliSynth) -> None:
    reports = sorted(cli_synth.outdir.glob("AwsSolutions-*-NagReport.csv"))
    assert len(reports) == len(STACK_KINDS)
    open_findings = []
    for report in reports:
        with report.open(newline="") as f:
            open_findings += [row for row in csv.DictReader(f) if row["Compliance"] == "Non-Compliant"]
    assert open_findings == []


@pytest.mark.slow
def test_cfn_lint_finds_no_problem_in_any_template(cli_synth: CliSynth) -> None:
    templates = [str(cli_synth.template_path(kind)) for kind in STACK_KINDS]
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--ignore-checks", *CFN_LINT_IGNORED, "--", *templates],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _suppressions(app: cdk.App) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for construct in app.node.find_all():
        if isinstance(construct, cdk.CfnResource):
            metadata = construct.get_metadata("cdk_nag") or {}
            found += [(construct.node.path, rule) for rule in metadata.get("rules_to_suppress", [])]
    return found


def test_every_suppression_is_narrow_and_has_a_reason(app: cdk.App) -> None:
    suppressions = _suppressions(app)
    assert suppressions
    for path, rule in suppressions:
        assert rule["id"].startswith("AwsSolutions-"), path
        assert len(rule["reason"]) >= 30, (path, rule)
        if rule["id"] in ("AwsSolutions-IAM4", "AwsSolutions-IAM5"):
            assert rule.get("applies_to"), (path, rule)
            assert "Resource::*" not in rule["applies_to"] or "no resource-level" in rule["reason"], (path, rule)


def test_no_suppression_is_app_or_stack_wide(app: cdk.App) -> None:
    for stack in (c for c in app.node.children if isinstance(c, cdk.Stack)):
        assert "cdk_nag" not in (stack.template_options.metadata or {}), stack.node.id
