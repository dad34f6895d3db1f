"""Consumable resources from confluence.yaml, as templates: the resources, each job definition's properties (the
L1 ``ConsumableResourceProperties``: aws-cdk-lib 2.275 has no L2 for them), and the submitter's grant to read and
set them (``confluence-submit resources``). Checked with cdk-nag and cfn-lint like the shipped venue."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
import aws_cdk.cx_api as cxapi
import pytest
from aws_cdk.assertions import Template

from confluence_runtime.venue.sandbox import Consumable, resources_from_templates

from .conftest import CONFIG, PREFIX
from .test_stacks import job_definitions, resources
from .test_synth import CFN_LINT_IGNORED

HYDROCRON = """
infrastructure:
  consumable_resources:
    hydrocron: {type: replenishable, total: 3}
    hydrocron_month: {type: non_replenishable, total: 15000000}
"""
INPUT_LINE = "      secrets: {HYDROCRON_API_KEY: hydrocron-api-key}"


@pytest.fixture(scope="module")
def assembly(build: Callable[..., cdk.App], tmp_path_factory: pytest.TempPathFactory) -> cxapi.CloudAssembly:
    text = CONFIG.read_text(encoding="utf-8")
    assert INPUT_LINE in text
    text = text.replace(INPUT_LINE, "      consumes: {hydrocron: 1, hydrocron_month: 70}\n" + INPUT_LINE, 1)
    path = tmp_path_factory.mktemp("hydrocron") / "confluence.yaml"
    path.write_text(HYDROCRON + text, encoding="utf-8")
    return build(path, nag=True).synth()


@pytest.fixture(scope="module")
def batch(assembly: cxapi.CloudAssembly) -> Template:
    return Template.from_json(assembly.get_stack_by_name(f"{PREFIX}-batch").template)


def test_each_declared_resource_is_created_with_its_type_and_total(batch: Template) -> None:
    found = {
        r["Properties"]["ConsumableResourceName"]: r["Properties"]
        for r in resources(batch, "AWS::Batch::ConsumableResource").values()
    }
    assert found == {
        f"{PREFIX}-hydrocron": {
            "ConsumableResourceName": f"{PREFIX}-hydrocron",
            "ResourceType": "REPLENISHABLE",
            "TotalQuantity": 3,
            "Tags": {"project": "confluence", "venue": "dev"},
        },
        f"{PREFIX}-hydrocron_month": {
            "ConsumableResourceName": f"{PREFIX}-hydrocron_month",
            "ResourceType": "NON_REPLENISHABLE",
            "TotalQuantity": 15_000_000,
            "Tags": {"project": "confluence", "venue": "dev"},
        },
    }
    # Logical ids from the names, never positions: a resource added before them renames nothing
    assert [logical[:-8] for logical in resources(batch, "AWS::Batch::ConsumableResource")] == [
        "ConsumableResourcehydrocron",
        "ConsumableResourcehydrocronmonth",
    ]


def test_the_consuming_module_s_job_definition_names_them_and_no_other(batch: Template) -> None:
    logical = {
        r["Properties"]["ConsumableResourceName"]: name
        for name, r in resources(batch, "AWS::Batch::ConsumableResource").items()
    }
    definitions = job_definitions(batch)
    # CloudFormation: Ref of a consumable resource is its ARN
    assert definitions[f"{PREFIX}-input"]["ConsumableResourceProperties"] == {
        "ConsumableResourceList": [
            {"ConsumableResource": {"Ref": logical[f"{PREFIX}-hydrocron"]},
             "Quantity": 1},
            {"ConsumableResource": {"Ref": logical[f"{PREFIX}-hydrocron_month"]},
             "Quantity": 70},
        ]
    }  # fmt: skip
    others = [name for name, props in definitions.items() if "ConsumableResourceProperties" in props]
    assert others == [f"{PREFIX}-input"]


def test_the_submitter_may_read_and_set_them(batch: Template) -> None:
    (policy,) = resources(batch, "AWS::IAM::ManagedPolicy").values()
    (statement,) = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "ConsumableResources"
    ]
    assert statement["Action"] == [
        "batch:DescribeConsumableResource",
        "batch:ListJobsByConsumableResource",
        "batch:SubmitJob",  # run names them in consumableResourcePropertiesOverride (the yaml's consumes)
        "batch:UpdateConsumableResource",
    ]
    # CloudFormation: Ref of a consumable resource is its ARN
    assert [arn["Ref"][:-8] for arn in statement["Resource"]] == [
        "ConsumableResourcehydrocron",
        "ConsumableResourcehydrocronmonth",
    ]


def test_the_supervisor_function_may_submit_jobs_naming_them(assembly: cxapi.CloudAssembly) -> None:
    supervisor = Template.from_json(assembly.get_stack_by_name(f"{PREFIX}-supervisor").template)
    statements = [
        s
        for policy in resources(supervisor, "AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "SubmitWithConsumableResources"
    ]
    (statement,) = statements
    assert statement["Action"] == "batch:SubmitJob"
    # the ARNs of exactly the venue's resources, built from their names (Fn::Join of partition, region, account)
    assert [json.dumps(arn).count(f':consumable-resource/{PREFIX}-{name}"') for arn, name in
            zip(statement["Resource"], ("hydrocron", "hydrocron_month"), strict=True)] == [1, 1]  # fmt: skip


def test_the_run_asks_for_the_yaml_s_units_in_every_submission_of_the_module(tmp_path: Path) -> None:
    # The job definition has what the last deploy wrote; each SubmitJob names the yaml's units as they are now
    # (AWS SubmitJob consumableResourcePropertiesOverride), so a changed ``consumes`` needs no deploy.
    from confluence_runtime.config import load_config
    from confluence_runtime.planning.plan import build_plan

    text = CONFIG.read_text(encoding="utf-8").replace(
        INPUT_LINE, "      consumes: {hydrocron: 2, hydrocron_month: 70}\n" + INPUT_LINE, 1
    )
    path = tmp_path / "confluence.yaml"
    path.write_text(HYDROCRON + text, encoding="utf-8")
    plan = build_plan(load_config(path), "20261208T040000-cons")
    overrides = {
        s.module: s.request({d.name: "id" for d in s.depends_on}).get("consumableResourcePropertiesOverride")
        for s in plan.submissions
    }
    assert overrides["input"] == {
        "consumableResourceList": [
            {"consumableResource": f"{PREFIX}-hydrocron", "quantity": 2},
            {"consumableResource": f"{PREFIX}-hydrocron_month", "quantity": 70},
        ]
    }
    assert {m for m, o in overrides.items() if o is not None} == {"input"}


def test_without_resources_the_template_has_none(templates: dict[str, Template]) -> None:
    batch = templates["batch"]
    assert resources(batch, "AWS::Batch::ConsumableResource") == {}
    assert not any("ConsumableResourceProperties" in p for p in job_definitions(batch).values())


def test_passes_cdk_nag_and_cfn_lint(assembly: cxapi.CloudAssembly) -> None:
    findings = [
        (stack.stack_name, message.entry.data)
        for stack in assembly.stacks
        for message in stack.messages
        if message.level in (cxapi.SynthesisMessageLevel.ERROR, cxapi.SynthesisMessageLevel.WARNING)
        and "AwsSolutions-" in str(message.entry.data)
    ]
    assert findings == []
    files = [str(Path(assembly.directory) / s.template_file) for s in assembly.stacks]
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", *CFN_LINT_IGNORED, "--", *files],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sandbox_reads_them_from_the_templates(assembly: cxapi.CloudAssembly) -> None:
    templates = {s.stack_name: s.template for s in assembly.stacks}
    resources_ = resources_from_templates(templates)
    assert resources_.consumable_resources == (
        Consumable(f"{PREFIX}-hydrocron", "REPLENISHABLE", 3),
        Consumable(f"{PREFIX}-hydrocron_month", "NON_REPLENISHABLE", 15_000_000),
    )
    definitions = {d.name: d.consumables for d in resources_.job_definitions}
    assert definitions[f"{PREFIX}-input"] == ((f"{PREFIX}-hydrocron", 1), (f"{PREFIX}-hydrocron_month", 70))
    assert definitions[f"{PREFIX}-output"] == ()
