"""The roles GitHub Actions assumes (OIDC, no stored keys) to diff and deploy the CDK app into one account.

Deploy it once per account (and region), by hand with your own credentials, before the workflows can run::

    node_modules/.bin/cdk deploy confluence-github -c github=OWNER/REPO

then set, in each GitHub environment (dev1, ops), the variable ``CONFLUENCE_DEPLOY_ROLE_ARN`` to that environment's
``DeployRoleArn...`` output, and the repository variable ``CONFLUENCE_DIFF_ROLE_ARN`` to ``DiffRoleArn``.

IAM, not the workflow, keeps the environments apart:

- ``{prefix}-github-deploy-{environment}`` (one per GitHub environment) trusts only the OIDC subject
  ``repo:OWNER/REPO:environment:{environment}``: a job gets that subject only when it runs in the environment, so
  past its protection rules (the ops environment's required reviewers). It may change only its venue's stacks
  (``{venue prefix}-*``) and publish only under its venue's folder of the CDK assets bucket. It does not assume the
  CDK bootstrap roles: those may change every stack of the account, so a dev1 job holding them could deploy ops.
  The CDK CLI, denied the bootstrap deploy and publishing roles, carries on with the job's own credentials ("could
  not be used to assume ..., but are for the right account. Proceeding anyway."), and passes the bootstrap's
  CloudFormation execution role to CloudFormation, which this role may pass and nothing more.
- ``{prefix}-github-diff`` trusts pull requests and pushes to main (``repo:OWNER/REPO:pull_request``,
  ``repo:OWNER/REPO:ref:refs/heads/main``: the ops diff shown before the approval). It reads stack templates and
  nothing else: not the CDK lookup role, whose ReadOnlyAccess reads every S3 object of the account; bucket contents
  are denied outright. The CLI, denied the lookup role, warns ("Lookup role ... was not assumed. Proceeding with
  default credentials.") and diffs with this role.

What a deploy may change inside its stacks is decided by the bootstrap's execution policies, not here: with several
venues in one account, a venue's stack could still name another venue's resources (stacks/checks.py refuses that in
confluence.yaml); put ops in its own account for a boundary no template can cross.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
# What `cdk deploy` does with a venue's stacks (change sets; a failed first create is deleted before the next try).
DEPLOY_STACK_ACTIONS = (
    "cloudformation:CreateChangeSet",
    "cloudformation:DeleteChangeSet",
    "cloudformation:DeleteStack",
    "cloudformation:DescribeChangeSet",
    "cloudformation:DescribeStackEvents",
    "cloudformation:DescribeStacks",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:GetTemplate",
    "cloudformation:ListStackResources",
    "cloudformation:RollbackStack",
    "cloudformation:ContinueUpdateRollback",
)
# What `cdk diff --no-change-set` reads: the deployed template of each stack.
DIFF_STACK_ACTIONS = (
    "cloudformation:DescribeStacks",
    "cloudformation:GetTemplate",
    "cloudformation:ListStackResources",
)

# GitHub owner/repository names: letters, digits, '-', and for repositories also '.' and '_'.
_REPOSITORY_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}\Z")
# `cdk bootstrap --qualifier`: up to 10 lower-case letters and digits.
_QUALIFIER_RE = re.compile(r"^[a-z0-9]{1,10}\Z")
# A branch or environment name goes verbatim into an exact-match `sub` condition: no wildcards, no ':'.
_NAME_RE = re.compile(r"^[A-Za-z0-9._/-]{1,255}\Z")
_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,48}\Z")


def deploy_role_name(prefix: str, environment: str) -> str:
    return f"{prefix}-github-deploy-{environment}"


def asset_folder(venue_prefix: str) -> str:
    """The venue's folder in the CDK assets bucket (app.py gives each venue stack this ``bucket_prefix``)."""
    return f"{venue_prefix}/"


class GithubDeployStack(cdk.Stack):
    """``provider`` (created or imported), ``roles`` (environment -> ``{prefix}-github-deploy-{environment}``,
    outputs ``DeployRoleArn<Environment>``) and ``diff_role`` (``{prefix}-github-diff``, output ``DiffRoleArn``;
    None without readers).

    ``environments``: GitHub environment -> the prefix of the venue it deploys (``{"dev1": "confluence-dev1"}``).
    ``diff_branch``/``pull_requests``: who may read templates with the diff role. An account holds one provider per
    URL: pass ``provider_arn`` to import an existing one.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        repository: str,
        prefix: str,
        environments: Mapping[str, str],
        diff_branch: str | None = "main",
        pull_requests: bool = True,
        provider_arn: str | None = None,
        qualifier: str = "hnb659fds",
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        _validate(
            id,
            repository=repository,
            prefix=prefix,
            environments=environments,
            branch=diff_branch,
            qualifier=qualifier,
        )
        self.repository = repository
        self.qualifier = qualifier
        self.diff_subjects = ([f"repo:{repository}:pull_request"] if pull_requests else []) + (
            [f"repo:{repository}:ref:refs/heads/{diff_branch}"] if diff_branch is not None else []
        )
        if not environments and not self.diff_subjects:
            raise ValueError(f"{id}: no environments, diff_branch or pull_requests: nothing could assume a role")
        self.provider = self._provider(provider_arn)
        self.roles = {
            environment: self._deploy_role(prefix, environment, venue) for environment, venue in environments.items()
        }
        self.diff_role = self._diff_role(prefix, list(environments.values())) if self.diff_subjects else None

    def _provider(self, provider_arn: str | None) -> iam.IOidcProvider:
        if provider_arn is not None:
            return iam.OidcProviderNative.from_oidc_provider_arn(self, "GithubProvider", provider_arn)
        # The native AWS::IAM::OIDCProvider (no custom-resource Lambda); IAM trusts GitHub's certificate
        # through its own CA list, so no thumbprint is pinned.
        return iam.OidcProviderNative(self, "GithubProvider", url=GITHUB_OIDC_URL, client_ids=[STS_AUDIENCE])

    def _principal(self, subjects: Sequence[str]) -> iam.OpenIdConnectPrincipal:
        return iam.OpenIdConnectPrincipal(
            self.provider,
            conditions={
                # Exact subjects (StringEquals, not StringLike): a list is an OR of its values.
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": list(subjects),
                }
            },
        )

    def _deploy_role(self, prefix: str, environment: str, venue: str) -> iam.Role:
        construct_id = f"DeployRole-{environment}"
        role = iam.Role(
            self,
            construct_id,
            role_name=deploy_role_name(prefix, environment),
            assumed_by=self._principal([f"repo:{self.repository}:environment:{environment}"]),
            description=f"GitHub Actions, environment {environment} (OIDC): deploy the {venue}-* stacks only",
            max_session_duration=cdk.Duration.hours(1),
        )
        assets = self.assets_bucket_arn()
        folder = asset_folder(venue)
        for statement in (
            iam.PolicyStatement(
                sid="DeployTheVenuesStacks",
                actions=list(DEPLOY_STACK_ACTIONS),
                resources=[self._stack_arn(venue)],
            ),
            iam.PolicyStatement(
                sid="PassTheCdkExecutionRole",
                actions=["iam:PassRole"],
                resources=[self.bootstrap_role_arn("cfn-exec-role")],
                conditions={"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="ReadBootstrapVersionAndVenueParameters",
                actions=["ssm:GetParameter", "ssm:GetParameters"],
                resources=[
                    self._parameter_arn(f"cdk-bootstrap/{self.qualifier}/version"),
                    self._parameter_arn(f"{venue}/*"),
                ],
            ),
            iam.PolicyStatement(
                sid="PublishTheVenuesAssets",
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[f"{assets}/{folder}*"],
            ),
            iam.PolicyStatement(
                sid="FindTheVenuesAssets",
                actions=["s3:ListBucket"],
                resources=[assets],
                conditions={"StringLike": {"s3:prefix": f"{folder}*"}},
            ),
            iam.PolicyStatement(
                sid="LocateTheAssetsBucket",
                actions=["s3:GetBucketLocation", "s3:GetEncryptionConfiguration"],
                resources=[assets],
            ),
        ):
            role.add_to_policy(statement)
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The venue's own stacks ({venue prefix}-*, any stack id), its SSM parameters "
                    "(/{venue prefix}/*) and its folder of the CDK assets bucket (asset keys are content hashes).",
                    applies_to=[
                        RegexAppliesTo(
                            regex=f"/^Resource::arn:.*:cloudformation:.*:stack\\/{re.escape(venue)}-\\*\\/\\*$/"
                        ),
                        RegexAppliesTo(regex=f"/^Resource::arn:.*:ssm:.*:parameter\\/{re.escape(venue)}\\/\\*$/"),
                        RegexAppliesTo(regex=f"/^Resource::arn:.*:s3:::cdk-.*-assets-.*\\/{re.escape(venue)}\\/\\*$/"),
                    ],
                )
            ],
            apply_to_children=True,
        )
        cdk.CfnOutput(
            self,
            f"DeployRoleArn{_output_id(environment)}",
            value=role.role_arn,
            description=f"role-to-assume of the {environment} environment (its variable CONFLUENCE_DEPLOY_ROLE_ARN)",
        )
        return role

    def _diff_role(self, prefix: str, venues: Sequence[str]) -> iam.Role:
        role = iam.Role(
            self,
            "DiffRole",
            role_name=f"{prefix}-github-diff",
            assumed_by=self._principal(self.diff_subjects),
            description="GitHub Actions pull requests and main (OIDC): read the deployed templates (cdk diff)",
            max_session_duration=cdk.Duration.hours(1),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadDeployedTemplates",
                actions=list(DIFF_STACK_ACTIONS),
                resources=[self._stack_arn(venue) for venue in venues] or [self._stack_arn(prefix)],
            )
        )
        # Should anyone attach a broader policy (ReadOnlyAccess) to this role, bucket contents stay out of reach of
        # a pull request, which can change the workflow that runs with it.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="NoBucketContents",
                effect=iam.Effect.DENY,
                actions=["s3:GetObject*", "s3:ListBucket*", "sts:AssumeRole"],
                resources=["*"],
            )
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Read-only: the deployed templates of the venues' stacks ({venue prefix}-*, any stack id); "
                    "the '*' resources are a Deny.",
                    applies_to=[RegexAppliesTo(regex="/^Resource::arn:.*:cloudformation:.*:stack\\/.*-\\*\\/\\*$/")],
                )
            ],
            apply_to_children=True,
        )
        cdk.CfnOutput(
            self,
            "DiffRoleArn",
            value=role.role_arn,
            description=f"role-to-assume for {self.repository} diffs (variable CONFLUENCE_DIFF_ROLE_ARN)",
        )
        return role

    def _stack_arn(self, venue: str) -> str:
        return self.format_arn(service="cloudformation", resource="stack", resource_name=f"{venue}-*/*")

    def _parameter_arn(self, name: str) -> str:
        return self.format_arn(service="ssm", resource="parameter", resource_name=name)

    def assets_bucket_arn(self) -> str:
        """``arn:${Partition}:s3:::cdk-{qualifier}-assets-${Account}-${Region}`` (the bootstrap's file assets)."""
        return f"arn:{self.partition}:s3:::cdk-{self.qualifier}-assets-{self.account}-{self.region}"

    def bootstrap_role_arn(self, name: str) -> str:
        """``arn:${Partition}:iam::${Account}:role/cdk-{qualifier}-{name}-${Account}-${Region}``."""
        return self.format_arn(
            service="iam",
            region="",
            resource="role",
            resource_name=f"cdk-{self.qualifier}-{name}-{self.account}-{self.region}",
        )


def _output_id(environment: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", environment))


def _validate(
    id: str,
    *,
    repository: str,
    prefix: str,
    environments: Mapping[str, str],
    branch: str | None,
    qualifier: str,
) -> None:
    if not _REPOSITORY_RE.match(repository):
        raise ValueError(f"{id}: repository {repository!r} must be OWNER/REPO (e.g. SWOT-Confluence/confluence-aws)")
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"{id}: prefix {prefix!r} must be 1-49 lower-case letters, digits and '-'")
    if not _QUALIFIER_RE.match(qualifier):
        raise ValueError(f"{id}: qualifier {qualifier!r} must be 1-10 lower-case letters and digits (cdk bootstrap)")
    if not isinstance(environments, Mapping):
        raise TypeError(f"{id}: environments must map each environment to its venue prefix, not {environments!r}")
    for kind, name in [("branch", branch), *(("environment", e) for e in environments)]:
        if name is not None and not _NAME_RE.match(name):
            raise ValueError(
                f"{id}: {kind} {name!r} must be letters, digits, '.', '_', '-' or '/' (an exact match: no wildcards)"
            )
    for environment, venue in environments.items():
        if not _PREFIX_RE.match(venue):
            raise ValueError(f"{id}: environment {environment!r}: venue prefix {venue!r} is not a venue prefix")
