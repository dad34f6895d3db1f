"""Interfaces the stacks accept from constructs written elsewhere (so stacks/batch.py never imports them)."""

from __future__ import annotations

from typing import Protocol

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_


class RenewLike(Protocol):
    """What the Batch stack needs of the renew construct (stacks/renew.py ``Renew``)."""

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
