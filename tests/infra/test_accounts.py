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


REFUSED_EU = (
    "context: region: eu-west-1 is not an allowed region (us-west-2): PO.DAAC's temporary S3 credentials work "
    "only in us-west-2, so every s3_credentials module would be denied there; deploy to us-west-2, or pass "
    "-c regions=REGION,... on purpose"
)


@pytest.mark.parametrize(
    ("cli", "context_region", "expected"),
    [
        # Nothing configured: the CLI's fallback is not a choice anybody made.
        (cdk_app.CliEnvironment(cli_region="us-east-1"), None, "us-west-2"),
        (cdk_app.CliEnvironment(), None, "us-west-2"),
        # A region somebody named is kept (and refused when not allowed), us-east-1 included.
        (cdk_app.CliEnvironment(cli_region="us-east-1", configured_region="us-east-1"), None, "us-east-1"),
        (cdk_app.CliEnvironment(cli_region="eu-west-1"), None, "eu-west-1"),
        (cdk_app.CliEnvironment(cli_region="us-east-1", configured_region="us-west-2"), None, "us-west-2"),
        (cdk_app.CliEnvironment(cli_region="us-west-2", configured_region="us-west-2"), "eu-west-1", "eu-west-1"),
    ],
)
def test_the_region_is_the_one_named_else_the_allowed_one(
    cli: cdk_app.CliEnvironment, context_region: str | None, expected: str
) -> None:
    assert cdk_app.synth_region(cli, context_region=context_region, allowed=["us-west-2"]) == expected


def test_a_region_named_by_the_configuration_or_context_is_refused_as_before() -> None:
    configured = cdk_app.CliEnvironment(cli_region="eu-west-1", configured_region="eu-west-1")
    with pytest.raises(ConfigError) as caught:
        cdk_app.build_app({"config": str(CONFIG), "venue": "dev1"}, cli=configured, nag=False)
    assert [str(p) for p in caught.value.problems] == [REFUSED_EU]
    assert problems({"venue": "dev1", "region": "eu-west-1"}) == [REFUSED_EU]


def test_the_cli_environment_reads_the_region_variables_and_ignores_the_cli_fallback() -> None:
    environ = {"CDK_DEFAULT_REGION": "us-east-1", "CDK_DEFAULT_ACCOUNT": "123456789012", "AWS_REGION": "us-west-2"}
    assert cdk_app.cli_environment(environ) == cdk_app.CliEnvironment(
        account="123456789012", cli_region="us-east-1", configured_region="us-west-2"
    )


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
    assert problems({"alerts": "none"}, cdk.Environment(account="123456789012", region="us-west-2")) == [
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
