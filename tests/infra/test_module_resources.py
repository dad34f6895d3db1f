"""What modules really need, as templates: EC2 compute, secrets, buckets, the mount layout and the efs tool.

The shipped confluence.yaml is read from the session's one CLI synthesis (``templates``); EC2 Spot, EC2 On-Demand,
sub-directory mounts and an area the Terraform deployment did not have (``coastalq``) from one extra in-process app
built once for this module, with cdk-nag, and checked with cfn-lint like the shipped one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import aws_cdk.cx_api as cxapi
import pytest
from aws_cdk.assertions import Template

from confluence_runtime.config import EFS_AREAS, Config

from .conftest import CONFIG, PREFIX
from .policies import allowed_by
from .test_stacks import actions_of, job_definitions, requirements, resources, role_statements, wired_in
from .test_synth import CFN_LINT_IGNORED

EC2 = """
infrastructure: {ec2_instance_classes: [m6i, m6a, c6i.2xlarge, c6a, r6i, r6a], ec2_max_vcpus: 512, ec2_root_volume_gib: 200}
"""
EXTRA = """
  coastal:
    coastalq:
      array_size: 214
      compute: ec2_spot
      vcpus: 4
      memory: 16384
      secrets: {HYDROCRON_API_KEY: hydrocron-api-key}
      buckets: {json: ro}
      mounts: {"flpe/momma": "/mnt/data/output:ro", coastalq: /mnt/data/coastalq}
    coastal_merge:
      compute: ec2
      vcpus: 1
      mounts: {"coastalq": "/mnt/data/coastalq:ro"}
"""


def by_name(template: Template, type_: str, key: str) -> dict[str, dict[str, Any]]:
    return {r["Properties"][key]: r for r in resources(template, type_).values()}


@pytest.fixture(scope="module")
def ec2_assembly(build: Callable[..., cdk.App], tmp_path_factory: pytest.TempPathFactory) -> cxapi.CloudAssembly:
    path = tmp_path_factory.mktemp("ec2") / "confluence.yaml"
    path.write_text(EC2 + CONFIG.read_text(encoding="utf-8") + EXTRA, encoding="utf-8")
    return build(path, nag=True).synth()


@pytest.fixture(scope="module")
def ec2(ec2_assembly: cxapi.CloudAssembly) -> dict[str, Template]:
    return {
        kind: Template.from_json(ec2_assembly.get_stack_by_name(f"{PREFIX}-{kind}").template)
        for kind in ("storage", "batch")
    }


# -- compute ---------------------------------------------------------------------------------------------------


def test_ec2_spot_and_on_demand_environments_from_infrastructure(ec2: dict[str, Template]) -> None:
    environments = by_name(ec2["batch"], "AWS::Batch::ComputeEnvironment", "ComputeEnvironmentName")
    assert sorted(environments) == [f"{PREFIX}-{k}" for k in ("ec2", "ec2-spot", "fargate", "fargate-spot")]
    spot = environments[f"{PREFIX}-ec2-spot"]["Properties"]
    assert spot["Type"] == "managed"
    resources_ = spot["ComputeResources"]
    assert (resources_["Type"], resources_["AllocationStrategy"]) == ("SPOT", "SPOT_PRICE_CAPACITY_OPTIMIZED")
    assert (resources_["InstanceTypes"], resources_["MinvCpus"], resources_["MaxvCpus"]) == (
        ["m6i", "m6a", "c6i.2xlarge", "c6a", "r6i", "r6a"], 0, 512
    )  # fmt: skip
    on_demand = environments[f"{PREFIX}-ec2"]["Properties"]["ComputeResources"]
    assert (on_demand["Type"], on_demand["AllocationStrategy"]) == ("EC2", "BEST_FIT_PROGRESSIVE")


def test_ec2_instances_get_the_root_volume_of_the_launch_template(ec2: dict[str, Template]) -> None:
    ((template_id, template),) = resources(ec2["batch"], "AWS::EC2::LaunchTemplate").items()
    data = template["Properties"]["LaunchTemplateData"]
    assert data["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {"DeleteOnTermination": True, "Encrypted": True, "VolumeSize": 200, "VolumeType": "gp3"},
        }
    ]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert "LaunchTemplateName" not in template["Properties"]  # no fixed name to collide with on a change
    environments = by_name(ec2["batch"], "AWS::Batch::ComputeEnvironment", "ComputeEnvironmentName")
    for name in (f"{PREFIX}-ec2", f"{PREFIX}-ec2-spot"):
        launch = environments[name]["Properties"]["ComputeResources"]["LaunchTemplate"]
        assert launch["LaunchTemplateId"] == {"Ref": template_id}, launch


def test_each_ec2_kind_has_its_own_queue_spot_first(ec2: dict[str, Template]) -> None:
    batch = ec2["batch"]
    environments = {
        logical: r["Properties"]["ComputeEnvironmentName"]
        for logical, r in resources(batch, "AWS::Batch::ComputeEnvironment").items()
    }
    queues = by_name(batch, "AWS::Batch::JobQueue", "JobQueueName")

    def order(queue: str) -> list[str]:
        entries = sorted(queues[queue]["Properties"]["ComputeEnvironmentOrder"], key=lambda o: o["Order"])
        return [environments[o["ComputeEnvironment"]["Fn::GetAtt"][0]] for o in entries]

    assert order(f"{PREFIX}-coastal-ec2-spot") == [f"{PREFIX}-ec2-spot", f"{PREFIX}-ec2"]
    assert order(f"{PREFIX}-coastal-ec2") == [f"{PREFIX}-ec2"]
    assert order(f"{PREFIX}-flpe") == [f"{PREFIX}-fargate-spot", f"{PREFIX}-fargate"]  # unchanged
    assert order(f"{PREFIX}-efs") == [f"{PREFIX}-fargate"]


def test_an_ec2_module_gets_an_ec2_job_definition_and_ec2_queues_an_ec2_barrier(ec2: dict[str, Template]) -> None:
    definitions = job_definitions(ec2["batch"])
    coastalq = definitions[f"{PREFIX}-coastalq"]
    assert coastalq["PlatformCapabilities"] == ["EC2"]
    assert requirements(coastalq) == {"VCPU": "4", "MEMORY": "16384"}
    assert "NetworkConfiguration" not in coastalq["ContainerProperties"]  # awsvpc settings are Fargate's
    assert requirements(definitions[f"{PREFIX}-coastal_merge"]) == {"VCPU": "1", "MEMORY": "1024"}
    barrier = definitions[f"{PREFIX}-barrier-ec2"]
    assert barrier["PlatformCapabilities"] == ["EC2"]
    assert barrier["ContainerProperties"]["Command"] == ["true"]
    assert definitions[f"{PREFIX}-barrier"]["PlatformCapabilities"] == ["FARGATE"]


def test_ec2_variant_passes_cdk_nag(ec2_assembly: cxapi.CloudAssembly) -> None:
    open_findings = [
        (stack.stack_name, message.entry.data)
        for stack in ec2_assembly.stacks
        for message in stack.messages
        if message.level in (cxapi.SynthesisMessageLevel.ERROR, cxapi.SynthesisMessageLevel.WARNING)
        and "AwsSolutions-" in str(message.entry.data)
    ]
    assert open_findings == []


def test_ec2_variant_passes_cfn_lint(ec2_assembly: cxapi.CloudAssembly) -> None:
    files = [str(Path(ec2_assembly.directory) / s.template_file) for s in ec2_assembly.stacks]
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", *CFN_LINT_IGNORED, "--", *files],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# -- mount layout ----------------------------------------------------------------------------------------------


def test_areas_are_the_yamls_and_sub_directories_get_access_points(ec2: dict[str, Template]) -> None:
    def paths(kind: str) -> list[str]:
        points = resources(ec2[kind], "AWS::EFS::AccessPoint").values()
        return sorted(p["Properties"]["RootDirectory"]["Path"] for p in points)

    # The storage stack keeps the Terraform deployment's areas for good; an area only this yaml names and a
    # sub-directory are the Batch stack's, so removing their last mount deletes them after the definitions.
    assert paths("storage") == sorted(f"/{a}" for a in EFS_AREAS)
    assert paths("batch") == ["/coastalq", "/flpe/momma"]
    # a sub-directory is mounted through its own access point (a volume with an access point has rootDirectory /)
    container = job_definitions(ec2["batch"])[f"{PREFIX}-coastalq"]["ContainerProperties"]
    volumes = {v["Name"]: v["EfsVolumeConfiguration"] for v in container["Volumes"]}
    assert sorted(volumes) == ["coastalq", "flpe-momma"]
    assert "RootDirectory" not in volumes["flpe-momma"]
    momma = next(
        lid
        for lid, r in resources(ec2["batch"], "AWS::EFS::AccessPoint").items()
        if r["Properties"]["RootDirectory"]["Path"] == "/flpe/momma"
    )
    assert volumes["flpe-momma"]["AuthorizationConfig"]["AccessPointId"] == {"Ref": momma}
    assert [(m["SourceVolume"], m["ContainerPath"], m["ReadOnly"]) for m in container["MountPoints"]] == [
        ("flpe-momma", "/mnt/data/output", True),
        ("coastalq", "/mnt/data/coastalq", False),
    ]


def test_read_only_is_enforced_by_iam_not_only_by_the_container_flag(templates: dict[str, Template]) -> None:
    # The file system policy allows nobody anything (it only denies plain NFS), so writing needs ClientWrite in
    # the job role, given per access point where the yaml mounts it writable (test_stacks checks the roles).
    storage = templates["storage"]
    (file_system,) = resources(storage, "AWS::EFS::FileSystem").values()
    statements = file_system["Properties"]["FileSystemPolicy"]["Statement"]
    assert statements == [
        {
            "Action": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Sid": "DenyUnencryptedTransport",
        }
    ]


# -- secrets ---------------------------------------------------------------------------------------------------


def test_secrets_are_created_empty(templates: dict[str, Template]) -> None:
    secrets = by_name(templates["batch"], "AWS::SecretsManager::Secret", "Name")
    assert sorted(secrets) == [f"/{PREFIX}/hydrocron-api-key", f"/{PREFIX}/lpdaac-login"]
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" not in secret["Properties"]
        assert secret["DeletionPolicy"] == "Delete"  # a dev venue keeps nothing named (test_coexist.py)


def test_a_secret_is_injected_through_an_execution_role_granted_exactly_it(
    templates: dict[str, Template], config: Config
) -> None:
    batch = templates["batch"]
    logical = {r["Properties"]["Name"]: k for k, r in resources(batch, "AWS::SecretsManager::Secret").items()}
    definitions = job_definitions(batch)
    for module in config.modules:
        container = definitions[module.job_definition]["ContainerProperties"]
        expected = [{"Name": env, "ValueFrom": {"Ref": logical[f"/{PREFIX}/{name}"]}} for env, name in module.secrets]
        assert container.get("Secrets", []) == expected, module.name
        reads = [
            s["Resource"]
            for s in role_statements(batch, container["ExecutionRoleArn"])
            if "secretsmanager:GetSecretValue" in json.dumps(s["Action"])
        ]
        assert reads == [e["ValueFrom"] for e in expected], module.name
    assert dict(config.stage("input").modules[0].secrets) == {"HYDROCRON_API_KEY": "hydrocron-api-key"}
    assert dict(config.stage("priors").modules[0].secrets) == {"LPDAAC_LOGIN": "lpdaac-login"}


# -- buckets ---------------------------------------------------------------------------------------------------


def test_the_venue_buckets_exist_by_default(templates: dict[str, Template]) -> None:
    templates["storage"].resource_count_is("AWS::S3::Bucket", 4)  # sos, json, config + their access log bucket
    names = {r["Properties"]["Name"] for r in resources(templates["storage"], "AWS::SSM::Parameter").values()}
    assert {f"/{PREFIX}/storage/buckets/{b}" for b in ("sos", "json", "config")} <= names


def bucket_access(template: Template, role_arn: dict[str, Any]) -> dict[str, str]:
    """Bucket (by the SSM parameter its name is read from) -> "ro" or "rw", from the role's statements."""
    access: dict[str, str] = {}
    for statement in role_statements(template, role_arn):
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        if not any(a.startswith("s3:") for a in actions):
            continue
        for parameter in wired_in(template, statement["Resource"]):
            bucket = parameter.rsplit("/", 1)[-1]
            mode = "rw" if "s3:PutObject" in actions else "ro"
            access[bucket] = "rw" if "rw" in (mode, access.get(bucket)) else "ro"
    return access


def test_each_module_gets_exactly_its_declared_bucket_grants(templates: dict[str, Template], config: Config) -> None:
    batch = templates["batch"]
    definitions = job_definitions(batch)
    for module in config.modules:
        role = definitions[module.job_definition]["ContainerProperties"]["JobRoleArn"]
        assert bucket_access(batch, role) == dict(module.buckets), module.name
    assert dict(config.stage("combine_data").modules[0].buckets) == {"json": "rw"}


# -- the efs tool ----------------------------------------------------------------------------------------------


def test_efs_tool_definitions_mount_every_area(templates: dict[str, Template]) -> None:
    batch = templates["batch"]
    definitions = job_definitions(batch)
    for action, image, read_only in (("ls", "busybox", True), ("sync", "aws-cli/aws-cli:", False)):
        props = definitions[f"{PREFIX}-efs-{action}"]
        container = props["ContainerProperties"]
        assert props["PlatformCapabilities"] == ["FARGATE"]
        assert image in container["Image"]
        assert [(m["SourceVolume"], m["ContainerPath"], m["ReadOnly"]) for m in container["MountPoints"]] == [
            (area, f"/mnt/efs/{area}", read_only) for area in EFS_AREAS
        ]
        actions = actions_of(role_statements(batch, container["JobRoleArn"]))
        assert ("elasticfilesystem:ClientWrite" in actions) is not read_only
        assert ("s3:PutObject" in actions) is not read_only  # sync: S3 <-> area


def test_submitter_may_run_the_efs_tool_and_read_its_output(templates: dict[str, Template]) -> None:
    batch = templates["batch"]
    (policy,) = resources(batch, "AWS::IAM::ManagedPolicy").values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    # The efs tool's queue and definitions, and the barrier's, with and without a revision ({prefix}-*).
    submit = statements["SubmitToThisVenue"]
    for definition in (f"{PREFIX}-efs-ls", f"{PREFIX}-efs-sync", f"{PREFIX}-barrier"):
        assert allowed_by(submit, {"jobQueue": f"{PREFIX}-efs", "jobDefinition": definition}), definition
    groups = {k: r["Properties"]["LogGroupName"] for k, r in resources(batch, "AWS::Logs::LogGroup").items()}
    read = statements["ReadEfsToolOutput"]
    assert read["Action"] == "logs:GetLogEvents"
    assert sorted(groups[r["Fn::GetAtt"][0]] for r in read["Resource"]) == [
        f"/aws/batch/{PREFIX}/efs-ls", f"/aws/batch/{PREFIX}/efs-sync"
    ]  # fmt: skip
