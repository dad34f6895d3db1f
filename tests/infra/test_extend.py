"""Another confluence.yaml, built in-process: a new module needs no code, and the infrastructure switches work.

One extra app for the whole session (conftest ``extended_assembly``, built once): venue dev1, an extra stage and
module (with an items list), no NAT gateway, buckets, no Fargate Spot, one shared queue.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk.cx_api as cxapi
import pytest
from aws_cdk.assertions import Match, Template

from .conftest import EXTENDED_PREFIX
from .test_synth import CFN_LINT_IGNORED

PREFIX = EXTENDED_PREFIX


@pytest.fixture(scope="module")
def assembly(extended_assembly: cxapi.CloudAssembly) -> cxapi.CloudAssembly:
    return extended_assembly


@pytest.fixture(scope="module")
def extended(assembly: cxapi.CloudAssembly) -> dict[str, Template]:
    # From the one assembly: Template.from_stack would synthesize the whole app again for every stack.
    return {
        kind: Template.from_json(assembly.get_stack_by_name(f"{PREFIX}-{kind}").template)
        for kind in ("network", "storage", "batch")
    }


def test_cdk_nag_finds_nothing_open_in_this_variant(assembly: cxapi.CloudAssembly) -> None:
    open_findings = [
        (stack.stack_name, message.id, message.entry.data)
        for stack in assembly.stacks
        for message in stack.messages
        if message.level in (cxapi.SynthesisMessageLevel.ERROR, cxapi.SynthesisMessageLevel.WARNING)
        and "AwsSolutions-" in str(message.entry.data)
    ]
    assert open_findings == []


def test_an_added_module_gets_its_job_definition_repository_and_parameter(extended: dict[str, Template]) -> None:
    batch = extended["batch"]
    batch.has_resource_properties(
        "AWS::Batch::JobDefinition",
        {
            "JobDefinitionName": f"{PREFIX}-sword_check",
            "Timeout": {"AttemptDurationSeconds": 600},
            "ContainerProperties": Match.object_like(
                {
                    "ResourceRequirements": [{"Type": "MEMORY", "Value": "8192"}, {"Type": "VCPU", "Value": "2"}],
                    "MountPoints": [
                        {"ContainerPath": "/mnt/data/input", "ReadOnly": True, "SourceVolume": "input"},
                        {"ContainerPath": "/mnt/data/validation", "ReadOnly": False, "SourceVolume": "validation"},
                    ],
                }
            ),
        },
    )
    batch.has_resource_properties("AWS::ECR::Repository", {"RepositoryName": f"{PREFIX}-sword_check"})
    batch.has_resource_properties("AWS::Logs::LogGroup", {"LogGroupName": f"/aws/batch/{PREFIX}/sword_check"})
    batch.has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": f"/{PREFIX}/batch/job-definitions/sword_check", "Value": f"{PREFIX}-sword_check"},
    )
    batch.resource_count_is("AWS::Batch::JobDefinition", 22)  # and the efs tool's ls and sync


def test_shared_queue_mode_makes_one_queue_on_demand_only(extended: dict[str, Template]) -> None:
    batch = extended["batch"]
    batch.resource_count_is("AWS::Batch::JobQueue", 2)  # and the efs tool's
    batch.resource_count_is("AWS::Batch::ComputeEnvironment", 1)
    batch.has_resource_properties(
        "AWS::Batch::JobQueue",
        {"JobQueueName": f"{PREFIX}-jobs", "ComputeEnvironmentOrder": [Match.object_like({"Order": 1})]},
    )
    batch.has_resource_properties(
        "AWS::Batch::ComputeEnvironment",
        {"ComputeResources": Match.object_like({"Type": "FARGATE", "MaxvCpus": 64})},
    )
    batch.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})


def test_without_nat_subnets_are_isolated_and_endpoints_serve_the_jobs(extended: dict[str, Template]) -> None:
    network = extended["network"]
    network.resource_count_is("AWS::EC2::NatGateway", 0)
    network.resource_count_is("AWS::EC2::InternetGateway", 0)
    network.resource_count_is("AWS::EC2::Subnet", 2)
    services = json.dumps(
        [e["Properties"]["ServiceName"] for e in network.find_resources("AWS::EC2::VPCEndpoint").values()]
    )
    for service in ("ecr.api", "ecr.dkr", "logs", "ssm", "secretsmanager", "sts", "lambda", "s3"):
        assert f".{service}" in services, service
    # No module runs on EC2 here: no endpoint for the ECS agent (tests/infra/test_upgrade.py has one that does).
    assert ".ecs" not in services


def test_buckets_are_encrypted_private_and_ssl_only(extended: dict[str, Template]) -> None:
    storage = extended["storage"]
    storage.resource_count_is("AWS::S3::Bucket", 4)  # sos, json, config + their access log bucket
    for bucket in storage.find_resources("AWS::S3::Bucket").values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "AES256"
        }
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    policies = storage.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    for name in ("sos", "json", "config"):
        storage.has_resource_properties("AWS::SSM::Parameter", {"Name": f"/{PREFIX}/storage/buckets/{name}"})


def test_venue_tags_and_names(extended: dict[str, Template]) -> None:
    extended["batch"].has_resource_properties(
        "AWS::Batch::JobQueue", {"Tags": {"project": "confluence", "venue": "dev1"}}
    )
    extended["storage"].has_resource_properties(
        "AWS::EFS::FileSystem",
        {"FileSystemTags": Match.array_with([{"Key": "venue", "Value": "dev1"}])},
    )
    extended["batch"].has_resource_properties("AWS::IAM::ManagedPolicy", {"ManagedPolicyName": f"{PREFIX}-submitter"})


def test_added_module_reads_buckets_but_cannot_write(extended: dict[str, Template]) -> None:
    from .test_module_resources import bucket_access
    from .test_stacks import job_definitions

    batch = extended["batch"]
    role = job_definitions(batch)[f"{PREFIX}-sword_check"]["ContainerProperties"]["JobRoleArn"]
    assert bucket_access(batch, role) == {"sos": "ro"}  # exactly its buckets: {sos: ro}


def test_cfn_lint_finds_no_problem_in_this_variant(assembly: cxapi.CloudAssembly) -> None:
    templates = [str(Path(assembly.directory) / stack.template_file) for stack in assembly.stacks]
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", *CFN_LINT_IGNORED, "--", *templates],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_nat_public_images_come_through_an_ecr_pull_through_cache(extended: dict[str, Template]) -> None:
    batch = extended["batch"]
    batch.has_resource_properties(
        "AWS::ECR::PullThroughCacheRule",
        {"EcrRepositoryPrefix": f"{PREFIX}-public", "UpstreamRegistryUrl": "public.ecr.aws"},
    )
    definitions = {
        d["Properties"]["JobDefinitionName"]: json.dumps(d["Properties"]["ContainerProperties"]["Image"])
        for d in batch.find_resources("AWS::Batch::JobDefinition").values()
    }
    assert f"/{PREFIX}-public/docker/library/busybox:1.37" in definitions[f"{PREFIX}-barrier"]
    assert f"/{PREFIX}-public/aws-cli/aws-cli:" in definitions[f"{PREFIX}-disable_renew"]
    assert "public.ecr.aws" not in json.dumps(definitions)
