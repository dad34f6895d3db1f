"""One job definition (Fargate, or EC2 for modules with ``compute: ec2*``) with its own log group, job role,
execution role, EFS mounts and secrets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from confluence_runtime.config import ExitRule


@dataclass(frozen=True)
class EfsMount:
    """An access point of the shared file system mounted at ``path``."""

    name: str
    path: str
    access_point: efs.IAccessPoint
    read_only: bool = False


class FargateJob(Construct):
    """``job_definition``, ``job_role`` (None when the job needs no AWS access), ``log_group``.

    ``ec2=True`` builds the definition for EC2 (``platformCapabilities: EC2``): AWS Batch runs a job definition on
    one platform only, and a queue of EC2 compute environments takes EC2 definitions only. ``secrets`` (variable ->
    secret) are injected by ECS through the execution role, which may read exactly those secrets.

    Mounts go through an access point with TLS and IAM authorization, so the job role gets exactly
    ``ClientMount`` (plus ``ClientWrite`` when writable) on that access point and nothing else of the file system.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        job_definition_name: str,
        image: ecs.ContainerImage,
        vcpus: float,
        memory_mib: int,
        log_group_name: str,
        log_retention: logs.RetentionDays,
        file_system: efs.IFileSystem | None = None,
        mounts: Sequence[EfsMount] = (),
        command: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        timeout_seconds: int | None = None,
        retries: int | None = None,
        retry_on: Sequence[ExitRule] = (),
        tags: Mapping[str, str] | None = None,
        with_job_role: bool = True,
        ec2: bool = False,
        secrets: Mapping[str, secretsmanager.ISecret] | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=log_group_name,
            retention=log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.job_role = (
            iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
            if with_job_role or mounts
            else None
        )
        common: dict[str, object] = {
            "image": image,
            "cpu": vcpus,
            "memory": cdk.Size.mebibytes(memory_mib),
            "command": list(command) if command else None,
            "environment": dict(environment) if environment else None,
            "job_role": self.job_role,
            "logging": ecs.LogDrivers.aws_logs(stream_prefix="job", log_group=self.log_group),
            "volumes": [self._volume(file_system, m) for m in mounts] if file_system else None,
            # Batch.Secret.from_secrets_manager grants the execution role read on exactly that secret.
            "secrets": {k: batch.Secret.from_secrets_manager(v) for k, v in secrets.items()} if secrets else None,
        }
        self.container: batch.EcsEc2ContainerDefinition | batch.EcsFargateContainerDefinition
        if ec2:
            self.container = batch.EcsEc2ContainerDefinition(self, "Container", **common)  # type: ignore[arg-type]
        else:
            # Jobs reach AWS through the NAT gateway or VPC endpoints; a public IP would only widen exposure.
            self.container = batch.EcsFargateContainerDefinition(
                self,
                "Container",
                assign_public_ip=False,
                **common,  # type: ignore[arg-type]
            )
        self.execution_role = self.container.execution_role
        self.job_definition = batch.EcsJobDefinition(
            self,
            "JobDefinition",
            job_definition_name=job_definition_name,
            container=self.container,
            timeout=cdk.Duration.seconds(timeout_seconds) if timeout_seconds else None,
            retry_attempts=retries,
            retry_strategies=[_retry_strategy(rule) for rule in retry_on] or None,
            propagate_tags=True,
        )
        for key, value in (tags or {}).items():
            cdk.Tags.of(self.job_definition).add(key, value)
        if file_system is not None:
            for mount in mounts:
                self._grant_mount(file_system, mount)

    def _volume(self, file_system: efs.IFileSystem, mount: EfsMount) -> batch.EcsVolume:
        return batch.EcsVolume.efs(
            name=mount.name,
            file_system=file_system,
            container_path=mount.path,
            access_point_id=mount.access_point.access_point_id,
            enable_transit_encryption=True,
            use_job_role=True,
            readonly=mount.read_only,
        )

    def _grant_mount(self, file_system: efs.IFileSystem, mount: EfsMount) -> None:
        assert self.job_role is not None
        actions = ["elasticfilesystem:ClientMount"]
        if not mount.read_only:
            actions.append("elasticfilesystem:ClientWrite")
        # EFS has no per-access-point grant method: the access point is a condition on the file system ARN.
        self.job_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=actions,
                resources=[file_system.file_system_arn],
                conditions={"StringEquals": {"elasticfilesystem:AccessPointArn": mount.access_point.access_point_arn}},
            )
        )


def _retry_strategy(rule: ExitRule) -> batch.RetryStrategy:
    action = batch.Action.RETRY if rule.action == "RETRY" else batch.Action.EXIT
    reason = batch.Reason.custom(
        on_exit_code=rule.on_exit_code, on_status_reason=rule.on_status_reason, on_reason=rule.on_reason
    )
    return batch.RetryStrategy.of(action, reason)
