"""IAM's size quotas hold for every policy of every stack, for the shipped yaml and for one with 40 modules.

"IAM and AWS STS quotas": managed policy size 6,144 characters; role policy size (all inline policies of a role
together) 10,240 characters; white space is not counted. A policy over them fails the deploy, so the size is
asserted here, with every token resolved to the longest value it can deploy as (tests/infra/policies.py).
"""

from __future__ import annotations

from collections.abc import Callable

import aws_cdk as cdk
import aws_cdk.cx_api as cxapi
import pytest
import yaml
from aws_cdk.assertions import Template

from stacks.constructs.submit_grant import submit_resources

from .conftest import CONFIG, PREFIX, STACK_KINDS
from .policies import MANAGED_POLICY_LIMIT, ROLE_INLINE_LIMIT, policy_sizes

MODULES = 40


@pytest.fixture(scope="module")
def many_modules(build: Callable[..., cdk.App], tmp_path_factory: pytest.TempPathFactory) -> cxapi.CloudAssembly:
    """The shipped yaml plus one stage of modules up to 40 in all (CloudFormation's 500 resources a stack allow
    about 55), each with credentials, a bucket, a mount and an items list of its own: what makes a module's
    policies, the submitter policy and the supervisor's role longest."""
    workflow = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    shipped = sum(len(stage) for stage in workflow["stages"].values())
    workflow["stages"]["extra"] = {
        f"extra{i}": {
            "num_jobs": 1,
            "array_size": 0,
            "arguments": [],
            "s3_credentials": True,
            "buckets": {"json": "rw"},
            "mounts": {"input": "/mnt/data/input"},
            # A list of its own each (one ARN each in the submitter policy and the supervisor's role).
            "items": f"s3://{{prefix}}-json/lists/extra{i}/reaches-of-the-continent.json",
        }
        for i in range(MODULES - shipped)
    }
    path = tmp_path_factory.mktemp("many") / "confluence.yaml"
    path.write_text(yaml.safe_dump(workflow), encoding="utf-8")
    return build(path, nag=True).synth()  # with cdk-nag: the items lists are granted per bucket only here


def _sizes(templates: dict[str, dict]) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    return {kind: policy_sizes(f"{PREFIX}-{kind}", template) for kind, template in templates.items()}


def _within_quotas(sizes: dict[str, tuple[dict[str, int], dict[str, int]]]) -> None:
    for kind, (managed, inline) in sizes.items():
        for policy, size in managed.items():
            assert size <= MANAGED_POLICY_LIMIT, (kind, policy, size)
        for role, size in inline.items():
            assert size <= ROLE_INLINE_LIMIT, (kind, role, size)


def test_every_policy_of_the_shipped_yaml_is_within_iams_quotas(templates: dict[str, Template]) -> None:
    sizes = _sizes({kind: templates[kind].to_json() for kind in STACK_KINDS})
    _within_quotas(sizes)
    assert list(sizes["batch"][0]) == ["SubmitterPolicy2DBADDEA"]  # the one managed policy, its logical id kept


def test_forty_modules_stay_within_the_quotas_and_the_venue_wide_policies_do_not_grow(
    many_modules: cxapi.CloudAssembly,
) -> None:
    many = _sizes({kind: many_modules.get_stack_by_name(f"{PREFIX}-{kind}").template for kind in STACK_KINDS})
    _within_quotas(many)
    # The submitter policy and the supervisor function's role name the venue's queues and definitions as
    # {prefix}-* (one ARN each grew them past the quota at about 20 modules): their statement is the same two ARNs.
    for kind in ("batch", "supervisor"):
        (submit,) = [
            statement
            for resource in many_modules.get_stack_by_name(f"{PREFIX}-{kind}").template["Resources"].values()
            if resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy")
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]
            if statement.get("Sid") == "SubmitToThisVenue"
        ]
        assert [r["Fn::Join"][1][-1] for r in submit["Resource"]] == [
            f":job-definition/{PREFIX}-*",
            f":job-queue/{PREFIX}-*",
        ]
        # Their 34 items lists, one ARN each, would not fit: one ARN for the bucket, the keys' common beginning.
        (items,) = [
            statement
            for resource in many_modules.get_stack_by_name(f"{PREFIX}-{kind}").template["Resources"].values()
            if resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy")
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]
            if statement.get("Sid") == "ReadItemsLists"
        ]
        assert items == {
            "Sid": "ReadItemsLists",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{PREFIX}-json/lists/extra*"]]},
        }
    # cdk-nag finds the per-bucket ARN acknowledged (stacks/constructs/items_grant.py nag_findings).
    assert [
        (stack.stack_name, message.entry.data)
        for stack in many_modules.stacks
        for message in stack.messages
        if message.level in (cxapi.SynthesisMessageLevel.ERROR, cxapi.SynthesisMessageLevel.WARNING)
        and "AwsSolutions-" in str(message.entry.data)
    ] == []


def test_names_outside_the_venue_pattern_are_listed_in_both_forms() -> None:
    """A yaml may name a queue or definition outside {prefix}-*: each is granted exactly, a definition with and
    without its revision; nothing else is added."""
    stack = cdk.Stack(cdk.App(), "s", env=cdk.Environment(account="123456789012", region="us-west-2"))
    arns = stack.resolve(
        submit_resources(
            stack, PREFIX, queues=[f"{PREFIX}-input", "shared-q"], definitions=[f"{PREFIX}-input", "custom-def"]
        )
    )
    base = "arn:aws:batch:us-west-2:123456789012:"
    partition = {"Ref": "AWS::Partition"}
    assert ["".join("aws" if p == partition else p for p in a["Fn::Join"][1]) for a in arns] == [
        f"{base}job-queue/{PREFIX}-*",
        f"{base}job-queue/shared-q",
        f"{base}job-definition/{PREFIX}-*",
        f"{base}job-definition/custom-def",
        f"{base}job-definition/custom-def:*",
    ]
