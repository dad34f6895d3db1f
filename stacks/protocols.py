"""Interfaces the stacks accept from constructs written elsewhere (so stacks/batch.py never imports them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct


@dataclass(frozen=True)
class NetworkRefs:
    """The network as a consumer stack sees it (``NetworkStack.references``)."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup


@dataclass(frozen=True)
class StorageRefs:
    """Storage as a consumer stack sees it (``StorageStack.references``): every area's access point, always."""

    file_system: efs.IFileSystem
    access_points: Mapping[str, efs.IAccessPoint]
    buckets: Mapping[str, s3.IBucket] = field(default_factory=dict)


class NetworkLike(Protocol):
    def references(self, scope: Construct, *, vpc_id: bool = True) -> NetworkRefs: ...


class StorageLike(Protocol):
    def references(self, scope: Construct) -> StorageRefs: ...


class RenewLike(Protocol):
    """What the Batch stack needs of the renew construct (stacks/renew.py ``Renew``, or its ``references``)."""

    # Read-only properties, so a construct holding concrete types (kms.Key, iam.Role) still matches.
    @property
    def function(self) -> lambda_.IFunction: ...

    @property
    def key(self) -> kms.IKey: ...

    @property
    def schedule_name(self) -> str: ...

    @property
    def schedule_group(self) -> str: ...

    @property
    def scheduler_role(self) -> iam.IRole:
        """EventBridge Scheduler's UpdateSchedule passes this role again: enabling the schedule needs PassRole."""
        ...

    def grant_read_credentials(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the s3_creds_* SecureString parameters and decrypt them."""
        ...

    def grant_invoke_disable(self, grantee: iam.IGrantable) -> iam.Grant:
        """Invoke the renew function (the disable_renew module turns the schedule off)."""
        ...

    @property
    def credential_environment(self) -> dict[str, str]:
        """Environment variables telling a job where its S3 credentials are."""
        ...


class RenewSource(Protocol):
    """The renew construct in its own stack: hands a consumer stack a ``RenewLike`` read from SSM."""

    def references(self, scope: Construct) -> RenewLike: ...


class SupervisorSource(Protocol):
    """The supervisor stack (stacks/supervisor.py), as the Batch stack's submitter policy needs it."""

    def ledger_bucket_name(self, scope: Construct) -> str:
        """The run ledger's bucket, read from SSM when ``scope``'s stack deploys (no export)."""
        ...


class AlertsSource(Protocol):
    """The alerts stack (stacks/alerts.py), as the Batch stack's submitter policy needs it."""

    def references(self, scope: Construct) -> sns.ITopic:
        """The venue's alerts topic, its ARN read from SSM when ``scope``'s stack deploys (no export)."""
        ...
