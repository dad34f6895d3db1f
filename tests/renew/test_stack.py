"""stacks/renew.py: the Renew construct in a small test stack, with template assertions and cdk-nag."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from stacks.renew import Renew

PREFIX = "confluence-test"


def param_arn(name: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":ssm:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":parameter/{PREFIX}/{name}",
            ],
        ]
    }


PARAM_ARNS = [param_arn(n) for n in ("s3_creds_key", "s3_creds_secret", "s3_creds_token", "s3_creds_expiration")]
SSM_VIA = {"StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["ssm.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}}


@dataclass(frozen=True)
class Built:
    stack: cdk.Stack
    renew: Renew
    template: Template
    module_role: iam.Role
    disable_role: iam.Role


@pytest.fixture(scope="session")
def built() -> Built:
    app = cdk.App()
    stack = cdk.Stack(app, "RenewTest")
    renew = Renew(stack, "Renew", prefix=PREFIX, log_retention_days=14)
    # Stand-ins for a module's job role and the disable_renew job role of the Batch stack.
    module_role = iam.Role(stack, "ModuleRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    renew.grant_read_credentials(module_role)
    disable_role = iam.Role(stack, "DisableRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    renew.grant_invoke_disable(disable_role)
    cdk.Aspects.of(stack).add(AwsSolutionsChecks(verbose=True))
    return Built(stack, renew, Template.from_stack(stack), module_role, disable_role)


def logical_id(built: Built, construct: Any) -> str:
    return built.stack.get_logical_id(construct.node.default_child)


def policy_statements(built: Built, role: iam.Role) -> list[dict[str, Any]]:
    policies = built.template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": logical_id(built, role)}]}}
    )
    assert len(policies) == 1
    return next(iter(policies.values()))["Properties"]["PolicyDocument"]["Statement"]


def getatt(built: Built, construct: Any, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(built, construct), attribute]}


def test_function(built: Built) -> None:
    built.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": f"{PREFIX}-renew",
            "Runtime": "python3.14",
            "Handler": "handler.handler",
            "Timeout": 180,
            "MemorySize": 256,
            # no reserved concurrency: new accounts with low quotas reject any (Lambda keeps 100 unreserved)
            "ReservedConcurrentExecutions": Match.absent(),
            "LoggingConfig": {"LogGroup": {"Ref": logical_id(built, built.renew.log_group)}},
            "Environment": {
                "Variables": {
                    "RENEW_SECRET_ID": {"Ref": logical_id(built, built.renew.secret)},
                    "RENEW_KMS_KEY_ID": getatt(built, built.renew.key),
                    "RENEW_PARAMETER_PREFIX": f"/{PREFIX}/",
                    "RENEW_SCHEDULE_NAME": f"{PREFIX}-renew",
                    "RENEW_SCHEDULE_GROUP": "default",
                    "RENEW_ENDPOINT": "https://archive.podaac.earthdata.nasa.gov/s3credentials",
                    "RENEW_LOCK_PARAMETER": f"/{PREFIX}/renew/lock",
                    "RENEW_LOCK_SECONDS": "240",
                }
            },
        },
    )
    built.template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": f"/aws/lambda/{PREFIX}-renew", "RetentionInDays": 14}
    )
    # asynchronous invocations that still fail go to the dead-letter queue, whose alarm reaches people
    built.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 2700,
            "DestinationConfig": {"OnFailure": {"Destination": getatt(built, built.renew.dead_letter_queue)}},
        },
    )
    # No AWS managed policy on the function's role.
    role = built.template.find_resources("AWS::IAM::Role")[logical_id(built, built.renew.role)]
    assert "ManagedPolicyArns" not in role["Properties"]


def test_schedule(built: Built) -> None:
    built.template.resource_count_is("AWS::Scheduler::Schedule", 1)
    built.template.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "Name": f"{PREFIX}-renew",
            "GroupName": "default",
            "ScheduleExpression": "rate(50 minutes)",
            "State": "DISABLED",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": getatt(built, built.renew.function),
                "RoleArn": getatt(built, built.renew.scheduler_role),
                "Input": '{"action": "renew"}',
                "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 2700},
                "DeadLetterConfig": {"Arn": getatt(built, built.renew.dead_letter_queue)},
            },
        },
    )
    assert built.renew.schedule_name == f"{PREFIX}-renew"
    built.template.has_resource_properties(
        "AWS::SQS::Queue", {"QueueName": f"{PREFIX}-renew-dlq", "SqsManagedSseEnabled": True}
    )
    # enforce_ssl: a queue policy denying aws:SecureTransport false.
    built.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": [
                    Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
                ]
            }
        },
    )


def secret_name(built: Built) -> Any:
    """The generated secret's name as the template computes it from the secret's ARN."""
    name = built.stack.resolve(built.renew.secret.secret_name)
    assert logical_id(built, built.renew.secret) in json.dumps(name)
    return name


def test_key_and_secret(built: Built) -> None:
    built.template.resource_count_is("AWS::KMS::Key", 1)
    built.template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    built.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            # no fixed name: a deleted secret's name stays taken for its recovery window (destroy, then deploy)
            "Name": Match.absent(),
            "GenerateSecretString": {
                "SecretStringTemplate": '{"username": "SET-ME"}',
                "GenerateStringKey": "password",
            },
        },
    )


def test_alarms(built: Built) -> None:
    built.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"{PREFIX}-renew-errors",
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": logical_id(built, built.renew.function)}}],
            "Statistic": "Sum",
            "Period": 3600,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
    )
    built.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"AlarmName": f"{PREFIX}-renew-undelivered", "MetricName": "ApproximateNumberOfMessagesVisible"},
    )


def test_function_role_statements(built: Built) -> None:
    renew = built.renew
    assert policy_statements(built, renew.role) == [
        # X-Ray (tracing: Active): no resource-level permissions
        {"Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Effect": "Allow", "Resource": "*"},
        # the asynchronous-failure destination
        {
            "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Effect": "Allow",
            "Resource": getatt(built, renew.dead_letter_queue),
        },
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": getatt(built, renew.log_group),
        },
        {
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Effect": "Allow",
            "Resource": {"Ref": logical_id(built, renew.secret)},
        },
        {"Action": "ssm:PutParameter", "Effect": "Allow", "Resource": PARAM_ARNS},
        # the lock that keeps two renewals from interleaving their writes
        {
            "Action": ["ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter"],
            "Effect": "Allow",
            "Resource": param_arn("renew/lock"),
        },
        {"Action": "kms:Encrypt", "Condition": SSM_VIA, "Effect": "Allow", "Resource": getatt(built, renew.key)},
        {
            "Action": ["scheduler:GetSchedule", "scheduler:UpdateSchedule"],
            "Effect": "Allow",
            "Resource": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":scheduler:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        f":schedule/default/{PREFIX}-renew",
                    ],
                ]
            },
        },
        {
            "Action": "iam:PassRole",
            "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            "Effect": "Allow",
            "Resource": getatt(built, renew.scheduler_role),
        },
    ]


def test_scheduler_role_statements(built: Built) -> None:
    renew = built.renew
    assert policy_statements(built, renew.scheduler_role) == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": getatt(built, renew.function)},
        {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": getatt(built, renew.dead_letter_queue)},
    ]
    role = built.template.find_resources("AWS::IAM::Role")[logical_id(built, renew.scheduler_role)]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
        }
    ]


def test_grants(built: Built) -> None:
    renew = built.renew
    assert policy_statements(built, built.module_role) == [
        {"Action": ["ssm:GetParameter", "ssm:GetParameters"], "Effect": "Allow", "Resource": PARAM_ARNS},
        {"Action": "kms:Decrypt", "Condition": SSM_VIA, "Effect": "Allow", "Resource": getatt(built, renew.key)},
    ]
    assert policy_statements(built, built.disable_role) == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": getatt(built, renew.function)}
    ]


def test_credential_environment(built: Built) -> None:
    assert built.renew.credential_environment == {
        "S3_CREDS_KEY_PARAMETER": f"/{PREFIX}/s3_creds_key",
        "S3_CREDS_SECRET_PARAMETER": f"/{PREFIX}/s3_creds_secret",
        "S3_CREDS_TOKEN_PARAMETER": f"/{PREFIX}/s3_creds_token",
        "S3_CREDS_EXPIRATION_PARAMETER": f"/{PREFIX}/s3_creds_expiration",
    }


def test_published_names(built: Built) -> None:
    params = built.template.find_resources("AWS::SSM::Parameter")
    published = {p["Properties"]["Name"]: p["Properties"]["Value"] for p in params.values()}
    assert published == {
        f"/{PREFIX}/renew/function-name": {"Ref": logical_id(built, built.renew.function)},
        f"/{PREFIX}/renew/schedule-name": f"{PREFIX}-renew",
        f"/{PREFIX}/renew/schedule-group": "default",
        f"/{PREFIX}/renew/kms-key-id": getatt(built, built.renew.key),
        f"/{PREFIX}/renew/scheduler-role-arn": getatt(built, built.renew.scheduler_role),
        f"/{PREFIX}/renew/secret-name": secret_name(built),
        f"/{PREFIX}/renew/credential-parameters": (
            f'{{"key": "/{PREFIX}/s3_creds_key", "secret": "/{PREFIX}/s3_creds_secret", '
            f'"token": "/{PREFIX}/s3_creds_token", "expiration": "/{PREFIX}/s3_creds_expiration"}}'
        ),
    }
    assert {p["Properties"]["Type"] for p in params.values()} == {"String"}


def test_cdk_nag_has_no_unsuppressed_findings(built: Built) -> None:
    annotations = Annotations.from_stack(built.stack)
    pattern = Match.string_like_regexp("AwsSolutions-.*")
    findings = [
        f"{m.id}: {m.entry.data}" for m in annotations.find_error("*", pattern) + annotations.find_warning("*", pattern)
    ]
    assert findings == []


def test_suppressions_are_narrow(built: Built) -> None:
    """Exactly three acknowledgements, each on its one resource, with a reason; X-Ray's '*' only as '*'."""
    suppressed = {
        logical_id: [(s["id"], bool(s["reason"])) for s in resource["Metadata"]["cdk_nag"]["rules_to_suppress"]]
        for logical_id, resource in built.template.to_json()["Resources"].items()
        if "cdk_nag" in resource.get("Metadata", {})
    }
    assert suppressed == {
        logical_id(built, built.renew.secret): [("AwsSolutions-SMG4", True)],
        logical_id(built, built.renew.dead_letter_queue): [("AwsSolutions-SQS3", True)],
        logical_id(built, built.renew.role): [("AwsSolutions-IAM5", True)],
        built.stack.get_logical_id(built.renew.role.node.find_child("DefaultPolicy").node.default_child): [
            ("AwsSolutions-IAM5", True)
        ],
    }
    policy = built.renew.role.node.find_child("DefaultPolicy").node.default_child
    (rule,) = policy.get_metadata("cdk_nag")["rules_to_suppress"]
    assert rule["applies_to"] == ["Resource::*"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "Confluence_Dev"}, "prefix 'Confluence_Dev' must be 1-41 lower-case letters"),
        ({"prefix": "p", "log_retention_days": 31}, "log_retention_days 31 is not a CloudWatch Logs retention"),
        ({"prefix": "p", "endpoint": "http://example.org/s3credentials"}, "must be an https:// URL"),
    ],
)
def test_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Renew(cdk.Stack(cdk.App(), "Bad"), "Renew", **kwargs)


def test_custom_endpoint() -> None:
    stack = cdk.Stack(cdk.App(), "Endpoint")
    Renew(stack, "Renew", prefix="p", endpoint="https://archive.podaac.uat.earthdata.nasa.gov/s3credentials")
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {"RENEW_ENDPOINT": "https://archive.podaac.uat.earthdata.nasa.gov/s3credentials"}
                )
            }
        },
    )
