"""stacks/deploy_role.py: one deploy role per GitHub environment, each trusting only that environment's subject and
changing only its venue's stacks; a diff role that reads templates and never bucket contents; cdk-nag."""

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
VENUES = {"dev1": "confluence-dev1", "ops": "confluence-ops"}
ACCOUNT, REGION, PARTITION = ({"Ref": f"AWS::{p}"} for p in ("AccountId", "Region", "Partition"))


@dataclass(frozen=True)
class Built:
    stack: GithubDeployStack
    template: Template


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    """Two variants in ONE app (one synthesis): a new provider with defaults, and an imported one, narrowed."""
    app = cdk.App()
    stacks = {
        "created": GithubDeployStack(app, "Created", repository=REPOSITORY, prefix="confluence", environments=VENUES),
        "imported": GithubDeployStack(
            app,
            "Imported",
            repository=REPOSITORY,
            prefix="confluence-ops",
            environments={"ops": "confluence-ops"},
            diff_branch=None,
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


def arn(service: str, resource: str, *, region: bool = True) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            ["arn:", PARTITION, f":{service}:", *([REGION] if region else []), ":", ACCOUNT, f":{resource}"],
        ]
    }


def role_named(built: Built, name: str) -> dict[str, Any]:
    return only(built.template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": name}}))


def trust_statement(built: Built, name: str) -> dict[str, Any]:
    statements = role_named(built, name)["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert len(statements) == 1
    return statements[0]


def subjects(built: Built, name: str) -> list[str]:
    return trust_statement(built, name)["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]


def statements_of(built: Built, role: Any) -> list[dict[str, Any]]:
    policy = only(
        built.template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": logical_id(built, role)}]}})
    )
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_each_environment_has_its_own_role_trusting_only_that_environment(built: dict[str, Built]) -> None:
    created = built["created"]
    provider = created.template.find_resources("AWS::IAM::OIDCProvider")
    assert only(provider)["Properties"] == {
        "Url": "https://token.actions.githubusercontent.com",
        "ClientIdList": ["sts.amazonaws.com"],
    }
    for environment in ("dev1", "ops"):
        assert trust_statement(created, f"confluence-github-deploy-{environment}") == {
            "Effect": "Allow",
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": {"Ref": next(iter(provider))}},
            "Condition": {
                "StringEquals": {
                    "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                    # No branch subject: a workflow on main outside the environment gets no deploy role.
                    "token.actions.githubusercontent.com:sub": [f"repo:{REPOSITORY}:environment:{environment}"],
                }
            },
        }
        created.template.has_resource_properties(
            "AWS::IAM::Role", {"RoleName": f"confluence-github-deploy-{environment}", "MaxSessionDuration": 3600}
        )
        created.template.has_output(
            f"DeployRoleArn{environment.capitalize()}",
            {"Value": {"Fn::GetAtt": [logical_id(created, created.stack.roles[environment]), "Arn"]}},
        )
    # The one role of the old design, trusted by main and both environments, is gone.
    assert not created.template.find_resources(
        "AWS::IAM::Role", {"Properties": {"RoleName": "confluence-github-deploy"}}
    )
    assert subjects(created, "confluence-github-diff") == [
        f"repo:{REPOSITORY}:pull_request",
        f"repo:{REPOSITORY}:ref:refs/heads/main",
    ]


@pytest.mark.parametrize("environment", ["dev1", "ops"])
def test_a_deploy_role_changes_only_its_venues_stacks_and_assets(built: dict[str, Built], environment: str) -> None:
    created = built["created"]
    venue = VENUES[environment]
    role = role_named(created, f"confluence-github-deploy-{environment}")
    assert "ManagedPolicyArns" not in role["Properties"] and "Policies" not in role["Properties"]
    statements = {s["Sid"]: s for s in statements_of(created, created.stack.roles[environment])}
    assert statements["DeployTheVenuesStacks"]["Resource"] == arn("cloudformation", f"stack/{venue}-*/*")
    assets = {"Fn::Join": ["", ["arn:", PARTITION, ":s3:::cdk-hnb659fds-assets-", ACCOUNT, "-", REGION]]}
    assert statements["PublishTheVenuesAssets"]["Resource"] == {
        "Fn::Join": ["", [*assets["Fn::Join"][1], f"/{venue}/*"]]
    }
    assert statements["FindTheVenuesAssets"]["Condition"] == {"StringLike": {"s3:prefix": f"{venue}/*"}}
    assert statements["PassTheCdkExecutionRole"] == {
        "Sid": "PassTheCdkExecutionRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": {
            "Fn::Join": [
                "",
                ["arn:", PARTITION, ":iam::", ACCOUNT, ":role/cdk-hnb659fds-cfn-exec-role-", ACCOUNT, "-", REGION],
            ]
        },
        "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
    }
    # It never assumes a CDK bootstrap role: those may change every stack of the account (another venue's too).
    actions = [a for s in statements.values() for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert "sts:AssumeRole" not in actions
    text = str(statements)
    other = next(v for e, v in VENUES.items() if e != environment)
    assert other not in text


def test_the_diff_role_reads_templates_and_never_bucket_contents(built: dict[str, Built]) -> None:
    created = built["created"]
    diff = created.stack.diff_role
    assert diff is not None
    statements = statements_of(created, diff)
    assert statements == [
        {
            "Sid": "ReadDeployedTemplates",
            "Effect": "Allow",
            "Action": [
                "cloudformation:DescribeStacks",
                "cloudformation:GetTemplate",
                "cloudformation:ListStackResources",
            ],
            "Resource": [
                arn("cloudformation", "stack/confluence-dev1-*/*"),
                arn("cloudformation", "stack/confluence-ops-*/*"),
            ],
        },
        {
            "Sid": "NoBucketContents",
            "Effect": "Deny",
            "Action": ["s3:GetObject*", "s3:ListBucket*", "sts:AssumeRole"],
            "Resource": "*",
        },
    ]
    created.template.has_output("DiffRoleArn", {"Value": {"Fn::GetAtt": [logical_id(created, diff), "Arn"]}})


def test_imported_provider_creates_none(built: dict[str, Built]) -> None:
    imported = built["imported"]
    imported.template.resource_count_is("AWS::IAM::OIDCProvider", 0)
    deploy = "confluence-ops-github-deploy-ops"
    assert trust_statement(imported, deploy)["Principal"] == {"Federated": IMPORTED_PROVIDER}
    # No diff readers: no diff role.
    assert imported.stack.diff_role is None
    assert subjects(imported, deploy) == [f"repo:{REPOSITORY}:environment:ops"]
    statements = {s["Sid"]: s for s in statements_of(imported, imported.stack.roles["ops"])}
    assert "cdk-conf1-cfn-exec-role-" in str(statements["PassTheCdkExecutionRole"]["Resource"])


@pytest.mark.parametrize("kind", ["created", "imported"])
def test_cdk_nag_has_no_open_finding_and_each_suppression_is_narrow(built: dict[str, Built], kind: str) -> None:
    annotations = Annotations.from_stack(built[kind].stack)
    pattern = Match.string_like_regexp("AwsSolutions-.*")
    findings = [
        f"{m.id}: {m.entry.data}" for m in annotations.find_error("*", pattern) + annotations.find_warning("*", pattern)
    ]
    assert findings == []
    resources = built[kind].template.to_json()["Resources"].values()
    for resource in resources:
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            assert rule["id"] == "AwsSolutions-IAM5" and rule["applies_to"], rule


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repository": "confluence-aws"}, "repository 'confluence-aws' must be OWNER/REPO"),
        ({"qualifier": "Not-Valid"}, "qualifier 'Not-Valid' must be 1-10 lower-case letters and digits"),
        ({"environments": {"dev*": "confluence-dev1"}}, "environment 'dev\\*' must be letters, .* no wildcards"),
        ({"environments": ["ops"]}, "environments must map each environment to its venue prefix"),
        ({"environments": {"ops": "Ops Venue"}}, "venue prefix 'Ops Venue' is not a venue prefix"),
        ({"environments": {}, "diff_branch": None, "pull_requests": False}, "nothing could assume a role"),
    ],
)
def test_validation(kwargs: dict[str, Any], message: str) -> None:
    props = {"repository": REPOSITORY, "prefix": "confluence", "environments": VENUES, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        GithubDeployStack(cdk.App(), "Bad", **props)
