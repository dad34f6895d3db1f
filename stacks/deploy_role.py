"""The role GitHub Actions assumes (OIDC, no stored keys) to diff and deploy the CDK app into one account.

Deploy it once per account (and region), by hand with your own credentials, before the workflows can run::

    node_modules/.bin/cdk deploy confluence-github -c github=OWNER/REPO

then set the repository (or environment) variable ``CONFLUENCE_DEPLOY_ROLE_ARN`` to its ``DeployRoleArn`` output.

The role can do one thing: assume the CDK bootstrap roles the CLI uses (deploy, file and image publishing, lookup),
so what a deploy may change is decided by the bootstrap (its CloudFormation execution policies), not here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
# The roles `cdk bootstrap` creates that the CLI itself assumes; cfn-exec-role is left out on purpose: only
# CloudFormation assumes it, and it carries the (by default administrator) execution policies.
BOOTSTRAP_ROLES = ("deploy-role", "file-publishing-role", "image-publishing-role", "lookup-role")

# GitHub owner/repository names: letters, digits, '-', and for repositories also '.' and '_'.
_REPOSITORY_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# `cdk bootstrap --qualifier`: up to 10 lower-case letters and digits.
_QUALIFIER_RE = re.compile(r"^[a-z0-9]{1,10}$")
# A branch or environment name goes verbatim into an exact-match `sub` condition: no wildcards, no ':'.
_NAME_RE = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")
_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,48}$")


class GithubDeployStack(cdk.Stack):
    """``provider`` (created or imported) and ``role``: ``{prefix}-github-deploy``, output as ``DeployRoleArn``.

    The role trusts only GitHub's OIDC tokens for ``repository`` whose subject is one of: a push to ``branch``
    (``repo:OWNER/REPO:ref:refs/heads/main``), a pull request (``repo:OWNER/REPO:pull_request``), or a job bound to
    one of ``environments`` (``repo:OWNER/REPO:environment:dev1``; a job with ``environment:`` gets that subject
    instead of its ref). An account holds one provider per URL: pass ``provider_arn`` to import an existing one.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        repository: str,
        prefix: str,
        environments: Sequence[str] = (),
        branch: str | None = "main",
        pull_requests: bool = True,
        provider_arn: str | None = None,
        qualifier: str = "hnb659fds",
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        _validate(id, repository=repository, prefix=prefix, environments=environments, branch=branch,
                  qualifier=qualifier)
        self.subjects = _subjects(repository, branch=branch, pull_requests=pull_requests, environments=environments)
        if not self.subjects:
            raise ValueError(f"{id}: no branch, pull_requests or environments: nothing could assume the role")
        self.provider = self._provider(provider_arn)
        self.role = self._role(prefix, qualifier)
        cdk.CfnOutput(self, "DeployRoleArn", value=self.role.role_arn,
                      description=f"role-to-assume for {repository} (variable CONFLUENCE_DEPLOY_ROLE_ARN)")

    def _provider(self, provider_arn: str | None) -> iam.IOidcProvider:
        if provider_arn is not None:
            return iam.OidcProviderNative.from_oidc_provider_arn(self, "GithubProvider", provider_arn)
        # The native AWS::IAM::OIDCProvider (no custom-resource Lambda); IAM trusts GitHub's certificate
        # through its own CA list, so no thumbprint is pinned.
        return iam.OidcProviderNative(self, "GithubProvider", url=GITHUB_OIDC_URL, client_ids=[STS_AUDIENCE])

    def _role(self, prefix: str, qualifier: str) -> iam.Role:
        principal = iam.OpenIdConnectPrincipal(
            self.provider,
            conditions={
                # Exact subjects (StringEquals, not StringLike): a list is an OR of its values.
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": list(self.subjects),
                }
            },
        )
        role = iam.Role(
            self,
            "DeployRole",
            role_name=f"{prefix}-github-deploy",
            assumed_by=principal,
            description="GitHub Actions (OIDC): may only assume the CDK bootstrap roles of this account and region",
            max_session_duration=cdk.Duration.hours(1),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sts:AssumeRole"],
                resources=[self.bootstrap_role_arn(qualifier, name) for name in BOOTSTRAP_ROLES],
            )
        )
        return role

    def bootstrap_role_arn(self, qualifier: str, name: str) -> str:
        """``arn:${Partition}:iam::${Account}:role/cdk-{qualifier}-{name}-${Account}-${Region}``."""
        return self.format_arn(
            service="iam",
            region="",
            resource="role",
            resource_name=f"cdk-{qualifier}-{name}-{self.account}-{self.region}",
        )


def _subjects(repository: str, *, branch: str | None, pull_requests: bool, environments: Sequence[str]) -> list[str]:
    subjects = []
    if branch is not None:
        subjects.append(f"repo:{repository}:ref:refs/heads/{branch}")
    if pull_requests:
        subjects.append(f"repo:{repository}:pull_request")
    subjects += [f"repo:{repository}:environment:{environment}" for environment in environments]
    return subjects


def _validate(
    id: str, *, repository: str, prefix: str, environments: Sequence[str], branch: str | None, qualifier: str
) -> None:
    if not _REPOSITORY_RE.match(repository):
        raise ValueError(f"{id}: repository {repository!r} must be OWNER/REPO (e.g. SWOT-Confluence/confluence-aws)")
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"{id}: prefix {prefix!r} must be 1-49 lower-case letters, digits and '-'")
    if not _QUALIFIER_RE.match(qualifier):
        raise ValueError(f"{id}: qualifier {qualifier!r} must be 1-10 lower-case letters and digits (cdk bootstrap)")
    if isinstance(environments, str):
        raise TypeError(f"{id}: environments must be a sequence of names, not the string {environments!r}")
    for kind, name in [("branch", branch), *(("environment", e) for e in environments)]:
        if name is not None and not _NAME_RE.match(name):
            raise ValueError(
                f"{id}: {kind} {name!r} must be letters, digits, '.', '_', '-' or '/' (an exact match: no wildcards)"
            )
