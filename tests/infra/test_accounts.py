"""The accounts the team really has: the allowed region, counted venues only, and a permissions boundary."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

import app as cdk_app
from confluence_runtime.errors import ConfigError

from .conftest import CONFIG, STACK_KINDS

BOUNDARY = "arn:aws:iam::123456789012:policy/team-boundary"


def problems(context: dict[str, Any], env: cdk.Environment | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        cdk_app.build_app({"config": str(CONFIG), **context}, env=env, nag=False)
    return [str(p) for p in caught.value.problems]


def test_synth_fails_outside_the_allowed_regions() -> None:
    assert problems({"venue": "dev1"}, cdk.Environment(region="eu-west-1")) == [
        "context: region: eu-west-1 is not an allowed region (us-west-2): PO.DAAC's temporary S3 credentials work "
        "only in us-west-2, so every s3_credentials module would be denied there; deploy to us-west-2, or pass "
        "-c regions=REGION,... on purpose"
    ]


def test_a_region_allowed_on_purpose_synthesizes() -> None:
    app = cdk_app.build_app(
        {"config": str(CONFIG), "venue": "dev1", "regions": "us-west-2,eu-west-1"},
        env=cdk.Environment(region="eu-west-1"),
        nag=False,
    )
    assert {c.node.id for c in app.node.children if isinstance(c, cdk.Stack)} >= {"confluence-dev1-batch"}


def test_every_template_refuses_other_regions_at_deploy_time(templates: dict[str, Template]) -> None:
    # An environment-agnostic template can be deployed anywhere: the rule makes CloudFormation refuse it.
    for kind in STACK_KINDS:
        rules = templates[kind].to_json()["Rules"]
        assert rules["AllowedRegion"]["Assertions"][0]["Assert"] == {
            "Fn::Contains": [["us-west-2"], {"Ref": "AWS::Region"}]
        }, kind


def test_deploying_needs_a_counted_venue() -> None:
    # With an account the CLI is about to deploy (or diff): the default venue would be a fourth one.
    assert problems({}, cdk.Environment(account="123456789012", region="us-west-2")) == [
        "context: venue: venue 'dev' is for offline synth only; deploy one of dev1, dev2, ops with -c venue=... "
        "(each venue's Batch budget assumes 3 venues per region)"
    ]


def test_a_boundary_that_is_not_a_policy_arn_is_refused() -> None:
    assert problems({"venue": "dev1", "permissionsBoundary": "team-boundary"}) == [
        "context: permissionsBoundary: 'team-boundary' is not a managed policy ARN "
        "(arn:aws:iam::123456789012:policy/NAME)"
    ]


def test_the_permissions_boundary_applies_to_every_role_of_every_stack() -> None:
    app = cdk_app.build_app(
        {"config": str(CONFIG), "venue": "dev1", "permissionsBoundary": BOUNDARY, "github": "owner/repo"}, nag=False
    )
    assembly = app.synth()
    roles = {
        (stack.stack_name, lid): resource["Properties"].get("PermissionsBoundary")
        for stack in assembly.stacks
        for lid, resource in stack.template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    # flow logs, job and execution roles, the renew function and scheduler, the supervisor function, the GitHub
    # deploy role
    assert {stack for stack, _ in roles} == {
        "confluence-dev1-network",
        "confluence-dev1-renew",
        "confluence-dev1-batch",
        "confluence-dev1-supervisor",
        "confluence-github",
    }
    assert set(roles.values()) == {BOUNDARY}
