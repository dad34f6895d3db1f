"""stacks/deploy_role.py: who may assume the GitHub deploy role, what it may do, and cdk-nag, in one small app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from stacks.deploy_role import GithubDeployStack

REPOSITORY = "SWOT-Confluence/confluence-aws"
IMPORTED_PROVIDER = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Built:
    stack: GithubDeployStack
    template: Template


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    """Two variants in ONE app (one synthesis): a new provider with defaults, and an imported one, narrowed."""
    app = cdk.App()
    stacks = {
        "created": GithubDeployStack(
            app, "Created", repository=REPOSITORY, prefix="confluence", environments=["dev1", "ops"]
        ),
        "imported": GithubDeployStack(
            app,
            "Imported",
            repository=REPOSITORY,
            prefix="confluence-ops",
            environments=["ops"],
            branch=None,
            pull_requests=False,
            provider_arn=IMPORTED_PROVIDER,
            qualifier="conf1",
        ),
    }
    # As app.py does: AwsSolutions checks as an Aspect on the whole app.
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return {kind: Built(stack, Template.from_stack(stack)) for kind, stack in stacks.items()}


def logical_id(built: Built, construct: Any) -> str:
    return built.stack.get_logical_id(construct.node.default_child)


def only(resources: dict[str, Any]) -> dict[str, Any]:
    assert len(resources) == 1, resources
    return next(iter(resources.values()))


def bootstrap_role(qualifier: str, name: str) -> dict[str, Any]:
    account, region, partition = ({"Ref": f"AWS::{p}"} for p in ("AccountId", "Region", "Partition"))
    return {
        "Fn::Join": [
            "",
            ["arn:", partition, ":iam::", account, f":role/cdk-{qualifier}-{name}-", account, "-", region],
        ]
    }


def role_named(built: Built, name: str) -> dict[str, Any]:
    return only(built.template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": name}}))


def trust_statement(built: Built, name: str = "confluence-github-deploy") -> dict[str, Any]:
    role = role_named(built, name)
    statements = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert len(statements) == 1
    return statements[0]


def test_trust_is_github_oidc_for_this_repository_only(built: dict[str, Built]) -> None:
    created = built["created"]
    provider = created.template.find_resources("AWS::IAM::OIDCProvider")
    assert only(provider)["Properties"] == {
        "Url": "https://token.actions.githubusercontent.com",
        "ClientIdList": ["sts.amazonaws.com"],
    }
    assert trust_statement(created) == {
        "Effect": "Allow",
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": {"Ref": next(iter(provider))}},
        "Condition": {
            "StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": [
                    f"repo:{REPOSITORY}:ref:refs/heads/main",
                    f"repo:{REPOSITORY}:environment:dev1",
                    f"repo:{REPOSITORY}:environment:ops",
                ],
            }
        },
    }
    created.template.has_resource_properties(
        "AWS::IAM::Role", {"RoleName": "confluence-github-deploy", "MaxSessionDuration": 3600}
    )
    # Pull requests get their own role, and no other subject does.
    diff = trust_statement(created, "confluence-github-diff")
    assert diff["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        f"repo:{REPOSITORY}:pull_request"
    ]


def test_pull_requests_may_assume_the_lookup_role_only(built: dict[str, Built]) -> None:
    created = built["created"]
    diff_role = logical_id(created, created.stack.diff_role)
    policies = [
        p["Properties"]
        for p in created.template.find_resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": diff_role}]
    ]
    assert [p["PolicyDocument"]["Statement"] for p in policies] == [
        [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": bootstrap_role("hnb659fds", "lookup-role")}]
    ]
    created.template.has_output("DiffRoleArn", {"Value": {"Fn::GetAtt": [diff_role, "Arn"]}})


def test_imported_provider_creates_none(built: dict[str, Built]) -> None:
    imported = built["imported"]
    imported.template.resource_count_is("AWS::IAM::OIDCProvider", 0)
    deploy = "confluence-ops-github-deploy"
    assert trust_statement(imported, deploy)["Principal"] == {"Federated": IMPORTED_PROVIDER}
    # No branch, no pull requests: only jobs bound to the ops environment, and no diff role.
    assert imported.stack.diff_role is None
    assert trust_statement(imported, deploy)["Condition"]["StringEquals"][
        "token.actions.githubusercontent.com:sub"
    ] == [f"repo:{REPOSITORY}:environment:ops"]


@pytest.mark.parametrize(("kind", "qualifier"), [("created", "hnb659fds"), ("imported", "conf1")])
def test_only_permission_is_assuming_the_cdk_bootstrap_roles(
    built: dict[str, Built], kind: str, qualifier: str
) -> None:
    template, stack = built[kind].template, built[kind].stack
    assert stack.role is not None
    role = role_named(built[kind], f"{'confluence' if kind == 'created' else 'confluence-ops'}-github-deploy")
    assert "ManagedPolicyArns" not in role["Properties"] and "Policies" not in role["Properties"]
    policy = only(
        template.find_resources(
            "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": logical_id(built[kind], stack.role)}]}}
        )
    )["Properties"]
    # Not cfn-exec-role: only CloudFormation assumes that one, and it holds the execution policies.
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": [
                bootstrap_role(qualifier, name)
                for name in ("deploy-role", "file-publishing-role", "image-publishing-role", "lookup-role")
            ],
        }
    ]
    template.resource_count_is("AWS::IAM::ManagedPolicy", 0)


def test_outputs_the_role_arn(built: dict[str, Built]) -> None:
    created = built["created"]
    created.template.has_output(
        "DeployRoleArn", {"Value": {"Fn::GetAtt": [logical_id(created, created.stack.role), "Arn"]}}
    )


@pytest.mark.parametrize("kind", ["created", "imported"])
def test_cdk_nag_has_no_findings_and_nothing_is_suppressed(built: dict[str, Built], kind: str) -> None:
    annotations = Annotations.from_stack(built[kind].stack)
    pattern = Match.string_like_regexp("AwsSolutions-.*")
    findings = [
        f"{m.id}: {m.entry.data}" for m in annotations.find_error("*", pattern) + annotations.find_warning("*", pattern)
    ]
    assert findings == []
    resources = built[kind].template.to_json()["Resources"].values()
    assert [r for r in resources if "cdk_nag" in r.get("Metadata", {})] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repository": "confluence-aws"}, "repository 'confluence-aws' must be OWNER/REPO"),
        ({"qualifier": "Not-Valid"}, "qualifier 'Not-Valid' must be 1-10 lower-case letters and digits"),
        ({"environments": ["dev*"]}, "environment 'dev\\*' must be letters, .* no wildcards"),
        ({"environments": "ops"}, "environments must be a sequence of names, not the string 'ops'"),
        ({"branch": None, "pull_requests": False}, "nothing could assume the role"),
    ],
)
def test_validation(kwargs: dict[str, Any], message: str) -> None:
    props = {"repository": REPOSITORY, "prefix": "confluence", **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        GithubDeployStack(cdk.App(), "Bad", **props)
