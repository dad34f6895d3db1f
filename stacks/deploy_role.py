"""The role GitHub Actions assumes (OIDC, no stored keys) to diff and deploy the CDK app into one account.

Deploy it once per account (and region), by hand with your own credentials, before the workflows can run::

    node_modules/.bin/cdk deploy confluence-github -c github=OWNER/REPO

then set the repository (or environment) variable ``CONFLUENCE_DEPLOY_ROLE_ARN`` to its ``DeployRoleArn`` output.

Two roles, so a pull request can never deploy: ``{prefix}-github-deploy`` (pushes to main and jobs of the dev1 and
ops environments) may assume the CDK bootstrap roles a deploy uses (deploy, file and image publishing, lookup);
``{prefix}-github-diff`` (pull requests) may assume the lookup role only, which reads the deployed templates for
``cdk diff --no-change-set``. What a deploy may change is decided by the bootstrap (its CloudFormation execution
policies), not here. Set ``CONFLUENCE_DIFF_ROLE_ARN`` to the ``DiffRoleArn`` output for the pull-request workflow.
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
# A pull request may read what is deployed, never change it.
DIFF_BOOTSTRAP_ROLES = ("lookup-role",)

# GitHub owner/repository names: letters, digits, '-', and for repositories also '.' and '_'.
_REPOSITORY_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}\Z")
# `cdk bootstrap --qualifier`: up to 10 lower-case letters and digits.
_QUALIFIER_RE = re.compile(r"^[a-z0-9]{1,10}\Z")
# A branch or environment name goes verbatim into an exact-match `sub` condition: no wildcards, no ':'.
_NAME_RE = re.compile(r"^[A-Za-z0-9._/-]{1,255}\Z")
_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,48}\Z")


class GithubDeployStack(cdk.Stack):
    """``provider`` (created or imported), ``role`` (``{prefix}-github-deploy``, output ``DeployRoleArn``) and
    ``diff_role`` (``{prefix}-github-diff``, output ``DiffRoleArn``; None without ``pull_requests``).

    Both trust only GitHub's OIDC tokens for ``repository``. The deploy role's subjects: a push to ``branch``
    (``repo:OWNER/REPO:ref:refs/heads/main``) or a job bound to one of ``environments``
    (``repo:OWNER/REPO:environment:ops``; a job with ``environment:`` gets that subject instead of its ref). The
    diff role's: a pull request (``repo:OWNER/REPO:pull_request``). An account holds one provider per URL: pass
    ``provider_arn`` to import an existing one.
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
        _validate(
            id, repository=repository, prefix=prefix, environments=environments, branch=branch, qualifier=qualifier
        )
        self.subjects = _subjects(repository, branch=branch, environments=environments)
        self.diff_subjects = [f"repo:{repository}:pull_request"] if pull_requests else []
        if not self.subjects and not self.diff_subjects:
            raise ValueError(f"{id}: no branch, pull_requests or environments: nothing could assume the role")
        self.provider = self._provider(provider_arn)
        self.role = (
            self._role(
                f"{prefix}-github-deploy",
                "DeployRole",
                self.subjects,
                qualifier,
                BOOTSTRAP_ROLES,
                "GitHub Actions (OIDC): may only assume the CDK bootstrap roles of this account and region",
            )
            if self.subjects
            else None
        )
        self.diff_role = (
            self._role(
                f"{prefix}-github-diff",
                "DiffRole",
                self.diff_subjects,
                qualifier,
                DIFF_BOOTSTRAP_ROLES,
                "GitHub Actions pull requests (OIDC): may only assume the CDK lookup role (cdk diff)",
            )
            if self.diff_subjects
            else None
        )
        if self.role is not None:
            cdk.CfnOutput(
                self,
                "DeployRoleArn",
                value=self.role.role_arn,
                description=f"role-to-assume for {repository} deploys (variable CONFLUENCE_DEPLOY_ROLE_ARN)",
            )
        if self.diff_role is not None:
            cdk.CfnOutput(
                self,
                "DiffRoleArn",
                value=self.diff_role.role_arn,
                description=f"role-to-assume for {repository} pull requests (CONFLUENCE_DIFF_ROLE_ARN)",
            )

    def _provider(self, provider_arn: str | None) -> iam.IOidcProvider:
        if provider_arn is not None:
            return iam.OidcProviderNative.from_oidc_provider_arn(self, "GithubProvider", provider_arn)
        # The native AWS::IAM::OIDCProvider (no custom-resource Lambda); IAM trusts GitHub's certificate
        # through its own CA list, so no thumbprint is pinned.
        return iam.OidcProviderNative(self, "GithubProvider", url=GITHUB_OIDC_URL, client_ids=[STS_AUDIENCE])

    def _role(
        self, name: str, id: str, subjects: Sequence[str], qualifier: str, bootstrap: Sequence[str], description: str
    ) -> iam.Role:
        principal = iam.OpenIdConnectPrincipal(
            self.provider,
            conditions={
                # Exact subjects (StringEquals, not StringLike): a list is an OR of its values.
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": list(subjects),
                }
            },
        )
        role = iam.Role(
            self,
            id,
            role_name=name,
            assumed_by=principal,
            description=description,
            max_session_duration=cdk.Duration.hours(1),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sts:AssumeRole"],
                resources=[self.bootstrap_role_arn(qualifier, role_name) for role_name in bootstrap],
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


def _subjects(repository: str, *, branch: str | None, environments: Sequence[str]) -> list[str]:
    subjects = []
    if branch is not None:
        subjects.append(f"repo:{repository}:ref:refs/heads/{branch}")
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
