"""What the shipped confluence.yaml provisions, read from the one CLI synthesis of the session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from aws_cdk.assertions import Match, Template

from confluence_runtime.config import EFS_AREAS, Config, load_config
from stacks.checks import fargate_size

from .conftest import CONFIG, PREFIX, VENUE
from .policies import allowed_by


def resources(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(type_)


def job_definitions(template: Template) -> dict[str, dict[str, Any]]:
    """Job definition name -> properties."""
    return {
        r["Properties"]["JobDefinitionName"]: r["Properties"]
        for r in resources(template, "AWS::Batch::JobDefinition").values()
    }


def requirements(props: dict[str, Any]) -> dict[str, str]:
    return {r["Type"]: r["Value"] for r in props["ContainerProperties"]["ResourceRequirements"]}


def role_statements(template: Template, role_arn: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of the inline policies attached to the role whose Arn GetAtt is ``role_arn``."""
    logical_id = role_arn["Fn::GetAtt"][0]
    statements = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": logical_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def wired(template: Template, value: Any) -> str | None:
    """The SSM parameter a ``{"Ref": ...}`` reads at deploy time (stacks/constructs/wiring.py), or None."""
    if not (isinstance(value, dict) and set(value) == {"Ref"}):
        return None
    parameter = template.to_json().get("Parameters", {}).get(value["Ref"], {})
    if not str(parameter.get("Type", "")).startswith("AWS::SSM::Parameter::Value<"):
        return None
    return str(parameter["Default"])


def wired_in(template: Template, value: Any) -> set[str]:
    """Every SSM parameter that ``value`` (an ARN built with Fn::Join, a condition, ...) reads at deploy time."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        name = wired(template, node)
        if name is not None:
            found.add(name)
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(value)
    return found


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for s in statements:
        found.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return found


# -- network ---------------------------------------------------------------------------------------------------


def test_vpc_spans_two_azs_with_private_compute_subnets_nat_and_flow_logs(templates: dict[str, Template]) -> None:
    network = templates["network"]
    network.resource_count_is("AWS::EC2::VPC", 1)
    # GIVEN nat_gateway defaults to true: a public and a private subnet per AZ, one NAT gateway
    network.resource_count_is("AWS::EC2::Subnet", 4)
    network.resource_count_is("AWS::EC2::NatGateway", 1)
    private = [s for s in resources(network, "AWS::EC2::Subnet").values() if not s["Properties"]["MapPublicIpOnLaunch"]]
    assert len(private) == 2
    network.has_resource_properties("AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL"})
    network.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway"})
    network.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {"GroupDescription": "Confluence Batch jobs: outbound only", "SecurityGroupIngress": Match.absent()},
    )


# -- storage ---------------------------------------------------------------------------------------------------


def test_file_system_is_encrypted_elastic_backed_up_and_denies_plain_nfs(templates: dict[str, Template]) -> None:
    storage = templates["storage"]
    storage.resource_count_is("AWS::EFS::FileSystem", 1)
    storage.has_resource_properties(
        "AWS::EFS::FileSystem",
        {
            "Encrypted": True,
            "ThroughputMode": "elastic",
            "BackupPolicy": {"Status": "ENABLED"},
            "FileSystemPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )
    # one mount target per private subnet (one per AZ)
    storage.resource_count_is("AWS::EFS::MountTarget", 2)


def test_one_access_point_per_workflow_area(templates: dict[str, Template]) -> None:
    storage = templates["storage"]
    points = resources(storage, "AWS::EFS::AccessPoint").values()
    assert sorted(p["Properties"]["RootDirectory"]["Path"] for p in points) == sorted(f"/{a}" for a in EFS_AREAS)
    for point in points:
        assert point["Properties"]["PosixUser"] == {"Uid": "1000", "Gid": "1000"}


def test_nfs_is_open_only_to_the_compute_security_group(templates: dict[str, Template]) -> None:
    storage = templates["storage"]
    ingress = list(resources(storage, "AWS::EC2::SecurityGroupIngress").values())
    assert len(ingress) == 1
    props = ingress[0]["Properties"]
    assert (props["IpProtocol"], props["FromPort"], props["ToPort"]) == ("tcp", 2049, 2049)
    assert wired(storage, props["SourceSecurityGroupId"]) == f"/{PREFIX}/network/compute-security-group"
    assert "CidrIp" not in props


# -- batch -----------------------------------------------------------------------------------------------------


def test_fargate_spot_and_on_demand_compute_environments(templates: dict[str, Template], config: Config) -> None:
    batch = templates["batch"]
    batch.resource_count_is("AWS::Batch::ComputeEnvironment", 2)
    for name, kind in ((f"{PREFIX}-fargate-spot", "FARGATE_SPOT"), (f"{PREFIX}-fargate", "FARGATE")):
        batch.has_resource_properties(
            "AWS::Batch::ComputeEnvironment",
            {
                "ComputeEnvironmentName": name,
                "ComputeResources": Match.object_like(
                    {"Type": kind, "MaxvCpus": config.infrastructure.max_vcpus, "SecurityGroupIds": Match.any_value()}
                ),
            },
        )


def test_one_queue_per_configured_name_spot_first_with_runnable_timeouts(
    templates: dict[str, Template], config: Config
) -> None:
    batch = templates["batch"]
    queues = {
        q["Properties"]["JobQueueName"]: q["Properties"] for q in resources(batch, "AWS::Batch::JobQueue").values()
    }
    # and the efs tool's queue, on Fargate On-Demand (tests/infra/test_module_resources.py)
    assert sorted(queues) == sorted([*config.job_queues, f"{PREFIX}-efs"])
    assert len(queues) == 14
    for name, props in queues.items():
        order = sorted(props["ComputeEnvironmentOrder"], key=lambda o: o["Order"])
        if name == f"{PREFIX}-efs":
            continue
        assert [o["ComputeEnvironment"]["Fn::GetAtt"][0].startswith("FargateSpot") for o in order] == [True, False]
        assert props["JobStateTimeLimitActions"] == [
            {"Action": "CANCEL", "MaxTimeSeconds": 3600, "Reason": reason, "State": "RUNNABLE"}
            for reason in (
                "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
                "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
                "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
            )
        ]
        assert props["Tags"] == {"project": "confluence", "venue": "dev"}


def test_a_job_definition_per_module_plus_the_barrier(templates: dict[str, Template], config: Config) -> None:
    definitions = job_definitions(templates["batch"])
    tool = [f"{PREFIX}-barrier", f"{PREFIX}-efs-ls", f"{PREFIX}-efs-sync"]
    assert sorted(definitions) == sorted([m.job_definition for m in config.modules] + tool)
    assert len(definitions) == 21


def test_job_definition_size_timeout_retry_and_network(templates: dict[str, Template], config: Config) -> None:
    definitions = job_definitions(templates["batch"])
    for module in config.modules:
        props = definitions[module.job_definition]
        size = fargate_size(module)
        assert requirements(props) == {"VCPU": f"{size.vcpus:g}", "MEMORY": str(size.memory)}, module.name
        assert props["PlatformCapabilities"] == ["FARGATE"]
        assert props["Timeout"] == {"AttemptDurationSeconds": module.timeout}
        assert props["RetryStrategy"] == {
            "Attempts": module.retries,
            "EvaluateOnExit": [{k[0].upper() + k[1:]: v for k, v in rule.to_aws().items()} for rule in module.retry_on],
        }
        assert props["ContainerProperties"]["NetworkConfiguration"] == {"AssignPublicIp": "DISABLED"}
        assert props["PropagateTags"] is True
    # spot reclamation and host errors retry, application failures exit (the yaml defaults)
    assert definitions[f"{PREFIX}-output"]["RetryStrategy"]["EvaluateOnExit"][-1] == {"Action": "EXIT", "OnReason": "*"}
    assert requirements(definitions[f"{PREFIX}-output"]) == {"VCPU": "16", "MEMORY": "65536"}
    assert definitions[f"{PREFIX}-output"]["Timeout"] == {"AttemptDurationSeconds": 36000}


def test_mounts_go_through_the_area_access_point_with_tls_and_iam(
    templates: dict[str, Template], config: Config
) -> None:
    definitions = job_definitions(templates["batch"])
    for module in config.modules:
        container = definitions[module.job_definition]["ContainerProperties"]
        assert [(m["SourceVolume"], m["ContainerPath"], m["ReadOnly"]) for m in container.get("MountPoints", [])] == [
            (m.area, m.path, m.read_only) for m in module.mounts
        ]
        for volume in container.get("Volumes", []):
            efs = volume["EfsVolumeConfiguration"]
            assert efs["TransitEncryption"] == "ENABLED"
            assert efs["AuthorizationConfig"]["Iam"] == "ENABLED"
            assert wired(templates["batch"], efs["AuthorizationConfig"]["AccessPointId"]) == (
                f"/{PREFIX}/storage/access-points/{volume['Name']}"
            )


def test_images_come_from_per_module_repositories_or_the_yaml(templates: dict[str, Template], config: Config) -> None:
    batch = templates["batch"]
    repositories = {r["Properties"]["RepositoryName"] for r in resources(batch, "AWS::ECR::Repository").values()}
    assert repositories == {f"{PREFIX}-{m.name}" for m in config.modules if m.image is None}
    definitions = job_definitions(batch)
    assert definitions[f"{PREFIX}-disable_renew"]["ContainerProperties"]["Image"] == (
        "public.ecr.aws/aws-cli/aws-cli:2.22.35"
    )
    # pinned: the yaml's image_tag, never :latest; the repositories refuse to move a pushed tag
    for module in config.modules:
        image = json.dumps(definitions[module.job_definition]["ContainerProperties"]["Image"])
        if module.image is None:
            assert image.endswith(':1.0.0"]]}'), (module.name, image)
        assert ":latest" not in image, module.name
    for repository in resources(batch, "AWS::ECR::Repository").values():
        assert repository["Properties"]["ImageTagMutability"] == "IMMUTABLE"


def test_a_log_group_per_module_with_retention(templates: dict[str, Template], config: Config) -> None:
    groups = {
        g["Properties"]["LogGroupName"]: g["Properties"]
        for g in resources(templates["batch"], "AWS::Logs::LogGroup").values()
    }
    for module in config.modules:
        assert groups[f"/aws/batch/{PREFIX}/{module.name}"]["RetentionInDays"] == 30


def test_barrier_is_the_smallest_fargate_job_that_exits_zero(templates: dict[str, Template]) -> None:
    barrier = job_definitions(templates["batch"])[f"{PREFIX}-barrier"]
    container = barrier["ContainerProperties"]
    assert requirements(barrier) == {"VCPU": "0.25", "MEMORY": "512"}
    assert container["Image"].startswith("public.ecr.aws/docker/library/busybox")
    assert container["Command"] == ["true"]
    assert "JobRoleArn" not in container
    assert container["NetworkConfiguration"] == {"AssignPublicIp": "DISABLED"}


# -- IAM -------------------------------------------------------------------------------------------------------


def test_job_role_mounts_only_its_areas_writing_only_where_writable(templates: dict[str, Template]) -> None:
    batch = templates["batch"]
    hivdi = job_definitions(batch)[f"{PREFIX}-hivdi"]["ContainerProperties"]
    statements = [s for s in role_statements(batch, hivdi["JobRoleArn"]) if "elasticfilesystem" in json.dumps(s)]
    by_area = {area.rsplit("/", 1)[-1]: s["Action"] for s in statements for area in wired_in(batch, s["Condition"])}
    assert by_area == {
        "input": "elasticfilesystem:ClientMount",
        "flpe": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
    }
    for s in statements:
        assert wired_in(batch, s["Resource"]) == {f"/{PREFIX}/storage/file-system-id"}
        assert list(s["Condition"]["StringEquals"]) == ["elasticfilesystem:AccessPointArn"]


def test_only_credential_modules_read_the_s3_credentials(templates: dict[str, Template], config: Config) -> None:
    batch = templates["batch"]
    definitions = job_definitions(batch)
    for module in config.modules:
        container = definitions[module.job_definition]["ContainerProperties"]
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        actions = actions_of(role_statements(batch, container["JobRoleArn"]))
        if module.s3_credentials:
            assert env["S3_CREDS_KEY_PARAMETER"] == f"/{PREFIX}/s3_creds_key"
            assert {"ssm:GetParameter", "kms:Decrypt"} <= actions
        else:
            assert "S3_CREDS_KEY_PARAMETER" not in env
            assert not {"ssm:GetParameter", "kms:Decrypt"} & actions, module.name


def test_only_disable_renew_invokes_the_renew_function(templates: dict[str, Template], config: Config) -> None:
    batch = templates["batch"]
    definitions = job_definitions(batch)
    for module in config.modules:
        statements = role_statements(batch, definitions[module.job_definition]["ContainerProperties"]["JobRoleArn"])
        invokes = [s for s in statements if "lambda:InvokeFunction" in actions_of([s])]
        if module.name == "disable_renew":
            assert len(invokes) == 1
            assert f":function:{PREFIX}-renew" in json.dumps(invokes[0]["Resource"])
        else:
            assert invokes == [], module.name


def batch_arn(resource: str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:aws:batch:us-west-2:", {"Ref": "AWS::AccountId"}, f":{resource}"]]}


JOB_ARNS = batch_arn("job/*")
# Every queue and job definition of the venue, and nothing else (stacks/constructs/submit_grant.py): the shipped
# yaml names them all {prefix}-..., and {prefix}-* matches a definition with and without its revision.
VENUE_SUBMIT_RESOURCES = [batch_arn(f"job-definition/{PREFIX}-*"), batch_arn(f"job-queue/{PREFIX}-*")]


def test_submitter_policy_is_scoped_to_this_venue(templates: dict[str, Template], config: Config) -> None:
    policies = list(resources(templates["batch"], "AWS::IAM::ManagedPolicy").values())
    assert len(policies) == 1
    props = policies[0]["Properties"]
    assert props["ManagedPolicyName"] == f"{PREFIX}-submitter"
    statements = {s["Sid"]: s for s in props["PolicyDocument"]["Statement"]}
    assert all(q.startswith(f"{PREFIX}-") for q in [*config.job_queues, *(m.job_definition for m in config.modules)])
    assert statements["SubmitToThisVenue"]["Resource"] == VENUE_SUBMIT_RESOURCES
    assert statements["ReadBatchState"]["Resource"] == "*"
    assert all(a.startswith(("batch:Describe", "batch:List")) for a in statements["ReadBatchState"]["Action"])
    # jobs have random ids: cancel/terminate only jobs tagged with this venue's prefix
    control = statements["ControlThisVenuesJobs"]
    assert control["Action"] == ["batch:CancelJob", "batch:TerminateJob"]
    assert control["Resource"] == JOB_ARNS
    assert control["Condition"] == {"StringEquals": {"aws:ResourceTag/confluence:prefix": PREFIX}}
    params = json.dumps(statements["ReadVenueParameters"]["Resource"])
    assert f":parameter/{PREFIX}/*" in params
    assert "parameter/*" not in params
    assert set(statements) >= {"ControlRenew", "EnableRenewSchedule", "PassRenewSchedulerRole"}
    assert f":schedule/default/{PREFIX}-renew" in json.dumps(statements["EnableRenewSchedule"]["Resource"])
    assert statements["PassRenewSchedulerRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }


def test_the_submitter_tags_jobs_only_when_submitting_them(templates: dict[str, Template]) -> None:
    """Issue 17 point 5: a dev1 submitter must not tag an ops job (or one carrying no venue tag) as dev1 and then
    terminate it through ControlThisVenuesJobs. Batch has no tag-on-create condition key; SubmitJob's tagging is
    authorized as batch:TagResource against the job definition (AWS names that ARN when it refuses it), so
    TagResource is granted with SubmitJob, on the same queues and definitions, and on no job ARN."""
    (policy,) = resources(templates["batch"], "AWS::IAM::ManagedPolicy").values()
    listed = policy["Properties"]["PolicyDocument"]["Statement"]
    statements = {s["Sid"]: s for s in listed}
    submit = statements["SubmitToThisVenue"]
    assert (submit["Effect"], submit["Action"], submit["Condition"]) == (
        "Allow",
        ["batch:SubmitJob", "batch:TagResource"],
        {"StringEquals": {"aws:RequestTag/confluence:prefix": PREFIX}},
    )
    # Only this venue's queues and job definitions: no job ARN, no wildcard of every resource.
    assert submit["Resource"] == VENUE_SUBMIT_RESOURCES
    # Nothing else allows tagging ...
    tagging = [s["Sid"] for s in listed if s["Effect"] == "Allow" and "batch:TagResource" in actions_of([s])]
    assert tagging == ["SubmitToThisVenue"]
    # ... and tagging a job not tagged with this venue is refused even if another policy of the person allows it
    # (IAM: with StringNotEquals, a key absent from the request context makes the condition true).
    assert statements["NoTaggingOtherJobs"] == {
        "Sid": "NoTaggingOtherJobs",
        "Effect": "Deny",
        "Action": "batch:TagResource",
        "Resource": JOB_ARNS,
        "Condition": {"StringNotEquals": {"aws:ResourceTag/confluence:prefix": PREFIX}},
    }


def test_no_role_or_policy_grants_admin_wildcards(templates: dict[str, Template]) -> None:
    for kind, template in templates.items():
        for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for policy in resources(template, type_).values():
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    assert statement["Action"] not in ("*", ["*"]), kind
                    actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
                    assert not any(a.endswith(":*") for a in actions), (kind, statement)


# -- discovery -------------------------------------------------------------------------------------------------


def test_names_are_published_in_ssm_under_the_prefix(templates: dict[str, Template], config: Config) -> None:
    parameters = {
        p["Properties"]["Name"]: p["Properties"]
        for kind in ("storage", "batch")
        for p in resources(templates[kind], "AWS::SSM::Parameter").values()
    }
    expected = {
        f"/{PREFIX}/batch/job-queues",
        f"/{PREFIX}/batch/barrier-job-definition",
        f"/{PREFIX}/iam/submitter-policy-arn",
        f"/{PREFIX}/storage/file-system-id",
        *(f"/{PREFIX}/batch/job-definitions/{m.name}" for m in config.modules),
        # for the Batch stack, read at deploy time (every area, mounted today or not)
        *(f"/{PREFIX}/storage/access-points/{area}" for area in EFS_AREAS),
        # the venue's buckets exist by default
        *(f"/{PREFIX}/storage/buckets/{bucket}" for bucket in ("sos", "json", "config")),
    }
    assert set(parameters) == expected
    queues = parameters[f"/{PREFIX}/batch/job-queues"]
    assert queues["Type"] == "StringList"
    assert queues["Value"] == ",".join(config.job_queues)
    assert parameters[f"/{PREFIX}/batch/job-definitions/output"]["Value"] == f"{PREFIX}-output"
    outputs = templates["batch"].find_outputs("*")
    assert any(o["Value"] == f"{PREFIX}-renew" for o in outputs.values())


def test_the_submitter_reads_the_credential_expiration_and_never_the_credentials(
    templates: dict[str, Template], config: Config
) -> None:
    (policy,) = resources(templates["batch"], "AWS::IAM::ManagedPolicy").values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    # SSM: "Parameter Store uses the encryption context PARAMETER_ARN" (the parameter's ARN) for SecureStrings, so
    # Decrypt through SSM is allowed for the expiration parameter's ciphertext alone.
    decrypt = statements["ReadCredentialExpiration"]
    assert (decrypt["Effect"], decrypt["Action"]) == ("Allow", "kms:Decrypt")
    condition = decrypt["Condition"]["StringEquals"]
    assert set(condition) == {"kms:ViaService", "kms:EncryptionContext:PARAMETER_ARN"}
    assert condition["kms:ViaService"] == "ssm.us-west-2.amazonaws.com"

    def arn(name: str) -> dict[str, Any]:
        return {"Fn::Join": ["", ["arn:aws:ssm:us-west-2:", {"Ref": "AWS::AccountId"}, f":parameter/{PREFIX}/{name}"]]}

    assert condition["kms:EncryptionContext:PARAMETER_ARN"] == arn("s3_creds_expiration")
    assert statements["NoCredentialValues"] == {
        "Sid": "NoCredentialValues",
        "Effect": "Deny",
        "Action": ["ssm:GetParameter", "ssm:GetParameterHistory", "ssm:GetParameters"],
        "Resource": [arn("s3_creds_key"), arn("s3_creds_secret"), arn("s3_creds_token")],
    }
    # The only other statement granting kms:Decrypt is the alerts topic's key, through SNS alone (not SSM).
    decrypts = [sid for sid, s in statements.items() if "kms:Decrypt" in json.dumps(s["Action"])]
    assert decrypts == ["ReadCredentialExpiration", "EncryptRunSummaries"]
    summaries = statements["EncryptRunSummaries"]["Condition"]["StringEquals"]
    assert summaries["kms:ViaService"] == "sns.us-west-2.amazonaws.com"


def test_the_runtimes_requests_satisfy_the_submitter_policy(
    templates: dict[str, Template], config: Config, tmp_path: Path
) -> None:
    from confluence_runtime.apply.efs import ls_job, sync_job
    from confluence_runtime.names import TAG_PREFIX, credential_parameters
    from confluence_runtime.planning.plan import build_plan
    from confluence_runtime.venue.renew import RenewNames

    # Every SubmitJob (a run's, barriers included, and the efs tool's) sets this venue's tag, the condition of
    # SubmitToThisVenue, and names a queue and a job definition that statement lists: SubmitJob and its tagging
    # (batch:TagResource, authorized against the job definition) are both allowed for exactly these requests.
    # The shipped workflow with 21 datagen jobs, so that combine_data waits through a barrier job.
    workflow = yaml.safe_load(CONFIG.read_text())
    workflow["stages"]["datagen"]["datagen"]["num_jobs"] = 21
    (tmp_path / "confluence.yaml").write_text(yaml.safe_dump(workflow))
    plan = build_plan(load_config(tmp_path / "confluence.yaml", venue=VENUE), "policy")
    assert plan.barriers
    ids = {n.name: "id" for n in plan.submissions}
    requests = [s.request(ids) for s in plan.submissions]
    requests += [ls_job(config, "input/sword").request, sync_job(config, "s3://b/k", "input/sword").request]
    (policy,) = resources(templates["batch"], "AWS::IAM::ManagedPolicy").values()
    submit = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}["SubmitToThisVenue"]
    assert submit["Condition"] == {"StringEquals": {f"aws:RequestTag/{TAG_PREFIX}": PREFIX}}
    for request in requests:
        assert request["tags"][TAG_PREFIX] == PREFIX, request["jobName"]
        assert allowed_by(submit, request), request["jobName"]
    # Not another venue's queue or definition (the '-' after the prefix: confluence-dev1 is not confluence-dev).
    for other in ("confluence-dev1", "confluence-ops", "confluence2-dev"):
        assert not allowed_by(submit, {"jobQueue": f"{other}-input", "jobDefinition": f"{PREFIX}-input"})
        assert not allowed_by(submit, {"jobQueue": f"{PREFIX}-input", "jobDefinition": f"{other}-input"})
    # ... and `renew status` decrypts the expiration parameter, the one ReadCredentialExpiration names.
    names = RenewNames("f", "s", "default", tuple(credential_parameters(PREFIX).values()))  # type: ignore[arg-type]
    assert names.expiration_parameter == f"/{PREFIX}/s3_creds_expiration"
