"""Shared storage: one encrypted EFS file system with an access point per workflow area (and per sub-directory a
module mounts), and the venue's buckets.

SSM parameters (and stack outputs) published here:

- ``/{prefix}/storage/file-system-id``        the EFS file system id
- ``/{prefix}/storage/buckets/{name}``        bucket names, name in sos, json, config (only with ``buckets: true``)

and, for the Batch stack only (stacks/constructs/wiring.py), ``/{prefix}/storage/access-points/{area}`` for every
area of the Terraform deployment whether or not a module mounts it today (which of those the yaml mounts must never
change what this stack publishes). The access points of other areas the yaml names (``coastalq``) and of the
sub-directories modules mount (an ECS volume with an access point must use ``rootDirectory: /``, so a sub-directory
is reached through an access point rooted there) are the Batch stack's: a yaml edit can remove them, and there they
are deleted after the job definitions that mounted them are replaced (BatchStack._access_point).

Read-only mounts are enforced by IAM, not only by the container's ``readOnly`` flag: the file system policy grants
nothing to anyone (it only denies unencrypted transport), so a job may write only where its role was granted
``elasticfilesystem:ClientWrite`` on that access point (stacks/constructs/fargate_job.py), and a read-only mount
grants ``ClientMount`` alone.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from confluence_runtime import names
from confluence_runtime.config import EFS_AREAS
from stacks.constructs.discovery import Discovery
from stacks.constructs.wiring import LazyMap, publish, read, unavailable
from stacks.protocols import NetworkLike, StorageRefs

BUCKETS = names.VENUE_BUCKETS
# Lifecycle (docs/deploying-security.md): an overwritten or deleted object of a venue bucket stays recoverable for
# NONCURRENT_DAYS; unfinished multipart uploads are dropped after MULTIPART_DAYS; access logs kept ACCESS_LOG_DAYS.
NONCURRENT_DAYS = 30
MULTIPART_DAYS = 7
ACCESS_LOG_DAYS = 365
NFS_PORT = 2049
# Every area is owned by one POSIX user so a module can read what another wrote; the access point forces it.
POSIX_UID = "1000"
POSIX_GID = "1000"


class StorageStack(cdk.Stack):
    """``file_system``, ``access_points`` (``area`` or ``area/sub/dir`` -> access point rooted there) and
    ``buckets``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        network: NetworkLike,
        buckets: bool,
        retain: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.prefix = prefix
        self.retain = retain
        # Only the areas no yaml edit removes: the access point of a sub-directory or of another area belongs to
        # the Batch stack (BatchStack._access_point), so that removing its last mount deletes it last.
        self._roots = tuple(EFS_AREAS)
        refs = network.references(self)
        self.security_group = self._security_group(refs.vpc, refs.security_group)
        self.file_system = self._file_system(refs.vpc, refs.subnets)
        self._enforce_transit_encryption()
        self.access_points = self._access_points()
        self.buckets = self._buckets() if buckets else {}
        self._publish()

    def _security_group(self, vpc: ec2.IVpc, compute: ec2.ISecurityGroup) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self,
            "FileSystemSecurityGroup",
            vpc=vpc,
            description="Confluence EFS: NFS from jobs only",
            allow_all_outbound=False,
        )
        group.add_ingress_rule(compute, ec2.Port.tcp(NFS_PORT), "NFS from Confluence Batch jobs")
        return group

    def _file_system(self, vpc: ec2.IVpc, subnets: ec2.SubnetSelection) -> efs.FileSystem:
        return efs.FileSystem(
            self,
            "FileSystem",
            vpc=vpc,
            vpc_subnets=subnets,
            security_group=self.security_group,
            encrypted=True,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            enable_automatic_backups=True,
            # A retained venue's (ops) workflow data outlives the stack; a dev venue can be destroyed and redeployed.
            removal_policy=cdk.RemovalPolicy.RETAIN if self.retain else cdk.RemovalPolicy.DESTROY,
            # Anonymous (non-IAM) clients are still refused: once a file system policy exists they need an Allow in
            # it, and this one allows nothing. What CDK's default (allow_anonymous_access=False) would add is an
            # Allow of ClientWrite and ClientRootAccess to every IAM principal through a mount target, which would
            # leave a read-only mount read-only by the container flag alone; here a job writes only where its role
            # was granted ClientWrite on that access point.
            allow_anonymous_access=True,
            file_system_policy=iam.PolicyDocument(),
        )

    def _enforce_transit_encryption(self) -> None:
        # Job definitions ask for TLS, but only the file system policy makes it impossible to mount without.
        self.file_system.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyUnencryptedTransport",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["*"],
                conditions={"Bool": {"aws:SecureTransport": "false"}},
            )
        )

    def _access_points(self) -> dict[str, efs.AccessPoint]:
        return {
            root: self.file_system.add_access_point(
                access_point_id(root),
                path=f"/{root}",
                create_acl=efs.Acl(owner_uid=POSIX_UID, owner_gid=POSIX_GID, permissions="0755"),
                posix_user=efs.PosixUser(uid=POSIX_UID, gid=POSIX_GID),
            )
            for root in self._roots
        }

    def _buckets(self) -> dict[str, s3.Bucket]:
        access_logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=cdk.RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=cdk.Duration.days(ACCESS_LOG_DAYS)),
            ],
        )
        NagSuppressions.add_resource_suppressions(
            access_logs,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1", reason="This is the access log bucket; logging it into itself would loop."
                )
            ],
        )
        return {
            name: s3.Bucket(
                self,
                f"{name.capitalize()}Bucket",
                encryption=s3.BucketEncryption.S3_MANAGED,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                versioned=True,
                server_access_logs_bucket=access_logs,
                server_access_logs_prefix=f"{name}/",
                removal_policy=cdk.RemovalPolicy.RETAIN,
                lifecycle_rules=[
                    # Versioning keeps an overwritten or deleted object recoverable for this long, not for ever.
                    s3.LifecycleRule(
                        id="expire-noncurrent-versions",
                        noncurrent_version_expiration=cdk.Duration.days(NONCURRENT_DAYS),
                        abort_incomplete_multipart_upload_after=cdk.Duration.days(MULTIPART_DAYS),
                    )
                ],
            )
            for name in BUCKETS
        }

    def _publish(self) -> None:
        discovery = Discovery(self, "Discovery", prefix=self.prefix)
        discovery.publish(
            "storage/file-system-id", self.file_system.file_system_id, description="Confluence EFS file system id"
        )
        for name, bucket in self.buckets.items():
            discovery.publish(f"storage/buckets/{name}", bucket.bucket_name, description=f"Confluence {name} bucket")
        wiring = {names.access_point_wiring(root): ap.access_point_id for root, ap in self.access_points.items()}
        for name, value in wiring.items():
            publish(self, f"Wiring-{name}", prefix=self.prefix, name=name, value=value, description=f"{name} (wiring)")

    def references(self, scope: Construct) -> StorageRefs:
        """File system, access points and buckets as another stack sees them (read from SSM at deploy)."""

        def value(name: str) -> str:
            return read(scope, self, prefix=self.prefix, name=name)

        # A consumer only mounts: NFS from the compute security group is allowed here already, so the file
        # system's own security group is never needed there (and fails the synthesis if it ever is).
        security_group = ec2.SecurityGroup.from_security_group_id(
            scope, "FileSystemSecurityGroup", unavailable("the file system's security group"), allow_all_outbound=False
        )
        file_system = efs.FileSystem.from_file_system_attributes(
            scope, "FileSystem", file_system_id=value("storage/file-system-id"), security_group=security_group
        )
        # Every area is published; a consumer reads those its modules mount today.
        access_points: LazyMap[efs.IAccessPoint] = LazyMap(
            tuple(self.access_points),
            lambda root: efs.AccessPoint.from_access_point_attributes(
                scope,
                access_point_id(root),
                access_point_id=value(names.access_point_wiring(root)),
                file_system=file_system,
            ),
        )
        buckets = {
            name: s3.Bucket.from_bucket_name(scope, f"{name.capitalize()}Bucket", value(f"storage/buckets/{name}"))
            for name in self.buckets
        }
        return StorageRefs(file_system=file_system, access_points=access_points, buckets=buckets)


def access_point_id(root: str) -> str:
    """The construct id of the access point of ``area`` (kept from the first deployment) or ``area/sub/dir``."""
    return f"{root.capitalize()}AccessPoint" if "/" not in root else f"AccessPoint-{root}"
