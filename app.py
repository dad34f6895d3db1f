"""The CDK app of Confluence on AWS: one venue's network, storage and Batch stacks, driven by confluence.yaml.

Run it through the CDK CLI with the project's virtualenv active (cdk.json runs ``python3 app.py``)::

    source .venv/bin/activate
    export CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
    node_modules/.bin/cdk synth -q --no-notices                      # venue dev -> prefix confluence-dev
    node_modules/.bin/cdk deploy --all -c venue=dev1 -c config=confluence.yaml

Context (``-c key=value``, defaults in cdk.json):

- ``venue``   one of dev, dev1, dev2, ops (default ``confluence:venue`` = dev); the prefix is ``confluence-{venue}``
- ``config``  the workflow file (default ``confluence:config`` = confluence.yaml, relative to the working directory)
- ``confluence:batchQuotaPerRegion``  AWS Batch queues (and compute environments) allowed per region (50)
- ``confluence:venuesPerRegion``      venues sharing that quota in one region (3: dev1, dev2, ops); each venue
  may use quota // venues queues and compute environments, checked at synth time

- ``alertEmail``  ADDRESS[,ADDRESS] subscribed to the venue's alerts topic (default: cdk.json
  ``confluence:alertEmails`` for the venue); deploying with none is refused unless ``-c alerts=none``
- ``tags``    a JSON object of tags for every resource (default ``confluence:tags``); compute environments keep
  the tags they were created with (theirs are create-only), so adding a tag never replaces anything
- ``region``  the region to synthesize for (default: the region your AWS configuration names, else the first of
  ``confluence:regions``); a region outside ``confluence:regions`` is refused

The account comes from CDK_DEFAULT_ACCOUNT (set by the CLI when it finds credentials); without one the stacks are
account-agnostic, so ``cdk synth`` needs no account, credentials or network. The region is always explicit: on a
machine with no AWS configuration the CLI passes ``us-east-1`` (its own fallback, even over a CDK_DEFAULT_REGION you
set), which is not a region the venue may use, so app.py then takes the allowed region instead (:func:`synth_region`).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

from confluence_runtime import names
from confluence_runtime.config import Config, load_config
from confluence_runtime.errors import ConfigError, Problem
from stacks.alerts import AlertsStack
from stacks.batch import BatchStack
from stacks.checks import check_config, compute_environment_count
from stacks.deploy_role import GithubDeployStack, asset_folder
from stacks.network import NetworkStack
from stacks.protocols import RenewSource
from stacks.renew import Renew
from stacks.storage import StorageStack
from stacks.supervisor import SupervisorStack

HERE = Path(__file__).resolve().parent
PROJECT = "confluence"
_POLICY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:policy/[\w+=,.@/-]+$")
# What the CDK CLI puts in CDK_DEFAULT_REGION when neither the environment nor a profile names a region.
CLI_FALLBACK_REGION = "us-east-1"
# Resource types whose Tags are create-only (their CloudFormation registry schema): a tag added to one replaces it,
# and a compute environment has a fixed name, so CloudFormation refuses the update. App-wide tags skip them (the
# project and venue tags they carry from their creation never change). tests/infra/test_tags.py reads the schemas.
CREATE_ONLY_TAGS = ("AWS::Batch::ComputeEnvironment",)
# The GitHub environments the workflows deploy through (.github/workflows/deploy.yml), each one venue.
GITHUB_ENVIRONMENTS = ("dev1", "ops")


@dataclass(frozen=True)
class CliEnvironment:
    """What the CDK CLI and the machine say about where to deploy (read by :func:`cli_environment`).

    ``cli_region``: CDK_DEFAULT_REGION as the CLI set it; ``configured_region``: the region AWS_REGION,
    AWS_DEFAULT_REGION or the active profile's config names (None on a machine with no AWS configuration)."""

    account: str | None = None
    cli_region: str | None = None
    configured_region: str | None = None


def synth_region(cli: CliEnvironment, *, context_region: str | None, allowed: list[str]) -> str:
    """``-c region`` first, then the configured region, then what the CLI passed unless it is only the CLI's own
    fallback (``us-east-1`` with nothing configured; ``cdk --profile NAME`` with a region also arrives here, since
    the app cannot see the profile), then the first allowed region. A region outside ``allowed`` is returned as it
    is: :func:`_account_problems` refuses it, naming it."""
    if context_region:
        return context_region
    if cli.configured_region:
        return cli.configured_region
    if cli.cli_region and cli.cli_region != CLI_FALLBACK_REGION:
        return cli.cli_region
    return allowed[0]


def cli_environment(environ: Mapping[str, str]) -> CliEnvironment:
    """The imperative part of choosing the region: the CLI's variables and the machine's AWS configuration."""
    configured = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not configured:
        import botocore.exceptions
        import botocore.session

        try:
            # The active profile's region in ~/.aws/config (AWS_PROFILE, AWS_CONFIG_FILE), as the CLI reads it.
            configured = botocore.session.Session().get_config_variable("region")
        except botocore.exceptions.BotoCoreError:
            configured = None
    return CliEnvironment(
        account=environ.get("CDK_DEFAULT_ACCOUNT") or None,
        cli_region=environ.get("CDK_DEFAULT_REGION") or None,
        configured_region=configured or None,
    )


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context, so an in-process build (tests, bench) sees the same settings as the CLI."""
    return dict(json.loads((HERE / "cdk.json").read_text(encoding="utf-8"))["context"])


def build_app(
    context: Mapping[str, Any] | None = None,
    *,
    env: cdk.Environment | None = None,
    outdir: str | None = None,
    nag: bool = True,
    cli: CliEnvironment | None = None,
) -> cdk.App:
    """Build (not synthesize) the app; a bad confluence.yaml raises ConfigError naming each yaml key.

    ``cli``: what the CDK CLI passed (app.py's main); the stacks then get its account and :func:`synth_region`.
    Without it (tests, benchmarks) ``env`` is used as given, or ``-c region`` alone, or nothing (agnostic).
    ``nag=False`` leaves out the cdk-nag checks: only for tests and benchmarks that look at something else.
    """
    app = cdk.App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    venue = str(_context(app, "venue", "confluence:venue"))
    context_region = app.node.try_get_context("region")
    if cli is not None:
        region = synth_region(cli, context_region=context_region, allowed=_allowed_regions(app))
        env = cdk.Environment(account=cli.account, region=region)
    elif context_region and env is None:
        env = cdk.Environment(region=str(context_region))
    problems = _account_problems(app, venue, env)
    app_tags, tag_problems = _app_tags(_context(app, "tags", "confluence:tags"))
    problems += tag_problems
    alert_emails, alert_problems = _alert_emails(app, venue, deploying=_deploying(env))
    problems += alert_problems
    if problems:
        raise ConfigError(problems)
    config = load_config(str(_context(app, "config", "confluence:config")), venue=venue)
    infrastructure = config.infrastructure
    batch_quota = int(app.node.get_context("confluence:batchQuotaPerRegion"))
    venues_per_region = int(app.node.get_context("confluence:venuesPerRegion"))
    # Before any stack exists, so a bad file fails with the yaml keys, not with a construct's own error.
    # Venues whose data outlives their stacks (ops); the others can be destroyed and deployed again.
    retain = venue in [str(v) for v in app.node.get_context("confluence:retainVenues")]
    image_tag = app.node.try_get_context("imageTag")  # -c imageTag=TAG: this release for every module
    config_path = str(_context(app, "config", "confluence:config"))
    check_config(
        config,
        compute_environments=compute_environment_count(config),
        quota=batch_quota,
        venues=venues_per_region,
        image_tag=image_tag,
        # Another deploy venue's queues and definitions are never this venue's to grant or register.
        other_prefixes={v: load_config(config_path, venue=v).prefix for v in _deploy_venues(app) if v != venue},
    )

    alerts = AlertsStack(
        app,
        f"{config.prefix}-alerts",
        prefix=config.prefix,
        emails=alert_emails,
        env=env,
        synthesizer=_synthesizer(config.prefix),
        description=f"Confluence {venue}: the alerts topic every alarm notifies",
    )
    network = NetworkStack(
        app,
        f"{config.prefix}-network",
        prefix=config.prefix,
        nat_gateway=infrastructure.nat_gateway,
        ec2_instances=any(m.platform == names.PLATFORM_EC2 for m in config.modules),
        log_retention_days=infrastructure.log_retention_days,
        egress_allowlist=infrastructure.egress_allowlist,
        env=env,
        synthesizer=_synthesizer(config.prefix),
        description=f"Confluence {venue}: VPC, endpoints, flow logs",
    )
    storage = StorageStack(
        app,
        f"{config.prefix}-storage",
        prefix=config.prefix,
        network=network,
        buckets=infrastructure.buckets,
        retain=retain,
        env=env,
        synthesizer=_synthesizer(config.prefix),
        description=f"Confluence {venue}: EFS workflow areas and buckets",
    )
    renew = _renew(app, config, env, alerts, retain=retain)
    # Before the Batch stack: its submitter policy reads the ledger bucket the supervisor stack publishes.
    supervisor = SupervisorStack(
        app,
        f"{config.prefix}-supervisor",
        config=config,
        alerts=alerts,
        log_retention_days=infrastructure.log_retention_days,
        env=env,
        synthesizer=_synthesizer(config.prefix),
        description=f"Confluence {venue}: supervisor function for supervised runs (run --supervise cloud)",
    )
    batch_stack = BatchStack(
        app,
        f"{config.prefix}-batch",
        config=config,
        network=network,
        storage=storage,
        renew=renew,
        supervisor=supervisor,
        alerts=alerts,
        batch_quota_per_region=batch_quota,
        venues_per_region=venues_per_region,
        image_tag=image_tag,
        retain=retain,
        env=env,
        synthesizer=_synthesizer(config.prefix),
        description=f"Confluence {venue}: Batch compute, queues and job definitions from {config.source}",
    )

    github = app.node.try_get_context("github")  # -c github=OWNER/REPO: once per account, deployed by a human
    if github:
        GithubDeployStack(
            app,
            f"{PROJECT}-github",
            repository=str(github),
            prefix=PROJECT,
            # One deploy role per GitHub environment, each for its venue's stacks only.
            environments={e: load_config(config_path, venue=e).prefix for e in GITHUB_ENVIRONMENTS},
            provider_arn=app.node.try_get_context("githubProvider"),  # when the account already has one
            env=env,
            description="Confluence: GitHub Actions OIDC roles (a deploy role per environment, a diff role)",
        )
    for stack in (alerts, network, storage, cdk.Stack.of(renew), batch_stack, supervisor):
        _allowed_regions_rule(stack, _allowed_regions(app))
    boundary = app.node.try_get_context("permissionsBoundary")
    if boundary:
        # Accounts that require a boundary deny CreateRole without it: every role of every stack gets it.
        for stack in (c for c in app.node.children if isinstance(c, cdk.Stack)):
            iam.PermissionsBoundary.of(stack).apply(
                iam.ManagedPolicy.from_managed_policy_arn(stack, "PermissionsBoundary", str(boundary))
            )
    cdk.Tags.of(app).add("project", PROJECT)
    cdk.Tags.of(app).add("venue", venue)
    for key, value in app_tags.items():
        cdk.Tags.of(app).add(key, value, exclude_resource_types=list(CREATE_ONLY_TAGS))
    if nag:
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app


def _synthesizer(prefix: str) -> cdk.DefaultStackSynthesizer:
    """Each venue's assets in a folder of its own in the CDK assets bucket: a venue's GitHub deploy role may publish
    there only (stacks/deploy_role.py)."""
    return cdk.DefaultStackSynthesizer(bucket_prefix=asset_folder(prefix))


_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def _deploying(env: cdk.Environment | None) -> bool:
    """An account the CLI is about to deploy into (or diff against): offline synth has none."""
    return env is not None and env.account is not None and not cdk.Token.is_unresolved(env.account)


def _alert_emails(app: cdk.App, venue: str, *, deploying: bool) -> tuple[tuple[str, ...], list[Problem]]:
    """Who hears the venue's alarms: ``-c alertEmail=ADDRESS[,ADDRESS]``, else cdk.json ``confluence:alertEmails``
    (venue -> address or list). Deploying a venue with nobody subscribed is refused unless ``-c alerts=none``."""
    given = app.node.try_get_context("alertEmail")
    if given is None:
        given = (app.node.try_get_context("confluence:alertEmails") or {}).get(venue)
    if given is None or given == "":
        addresses: list[str] = []
    elif isinstance(given, str):
        addresses = [a.strip() for a in given.split(",") if a.strip()]
    elif isinstance(given, list) and all(isinstance(a, str) for a in given):
        addresses = [a.strip() for a in given]
    else:
        return (), [
            Problem("context", None, "alertEmail", f"expected an e-mail address or a list of them, got {given!r}")
        ]
    bad = [a for a in addresses if not _EMAIL_RE.match(a)]
    if bad:
        return (), [Problem("context", None, "alertEmail", f"{', '.join(map(repr, bad))} is not an e-mail address")]
    alerts = app.node.try_get_context("alerts")
    if alerts is not None and alerts != "none":
        return (), [
            Problem("context", None, "alerts", f"{alerts!r}: the only value is none (no subscriber, on purpose)")
        ]
    if deploying and not addresses and alerts != "none":
        return (), [
            Problem(
                "context",
                None,
                "alertEmail",
                f"venue {venue} has no alert subscriber: its alarms would reach nobody; set cdk.json "
                f'"confluence:alertEmails": {{"{venue}": "ADDRESS"}} or pass -c alertEmail=ADDRESS (or -c alerts=none '
                "to deploy without one on purpose)",
            )
        ]
    return tuple(dict.fromkeys(addresses)), []


_TAG_KEY_RE = re.compile(r"^[\w .:/=+@-]{1,128}\Z")


def _app_tags(value: Any) -> tuple[dict[str, str], list[Problem]]:
    """``-c tags='{"cost-center": "swot"}'`` (or cdk.json ``confluence:tags``): tags for every resource that may
    take one without being replaced."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    expected = 'a JSON object of tag keys to string values, e.g. -c tags=\'{"cost-center": "swot"}\''
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return {}, [Problem("context", None, "tags", f"expected {expected}")]
    bad = [k for k in value if not _TAG_KEY_RE.match(k) or k.lower().startswith("aws:")]
    if bad:
        keys = ", ".join(repr(k) for k in bad)
        return {}, [
            Problem(
                "context", None, "tags", f"{keys}: tag keys are 1-128 letters, digits, spaces and _.:/=+-@, not aws:"
            )
        ]
    return dict(value), []


def _deploy_venues(app: cdk.App) -> list[str]:
    return [str(v) for v in app.node.get_context("confluence:deployVenues")]


def _allowed_regions(app: cdk.App) -> list[str]:
    value = _context(app, "regions", "confluence:regions")
    return [r.strip() for r in value.split(",")] if isinstance(value, str) else [str(r) for r in value]


def _account_problems(app: cdk.App, venue: str, env: cdk.Environment | None) -> list[Problem]:
    """What would deploy into the wrong place: a region PO.DAAC's credentials do not work in, a venue the Batch
    budget does not count, a permissions boundary that is not a policy ARN."""
    problems = []
    allowed = _allowed_regions(app)
    region = env.region if env is not None else None
    if region and not cdk.Token.is_unresolved(region) and region not in allowed:
        problems.append(
            Problem(
                "context",
                None,
                "region",
                f"{region} is not an allowed region ({', '.join(allowed)}): PO.DAAC's temporary S3 credentials work "
                "only in us-west-2, so every s3_credentials module would be denied there; deploy to "
                f"{allowed[0]}, or pass -c regions=REGION,... on purpose",
            )
        )
    deploy_venues = _deploy_venues(app)
    venues_per_region = app.node.get_context("confluence:venuesPerRegion")
    account = env.account if env is not None else None
    if account and not cdk.Token.is_unresolved(account) and venue not in deploy_venues:
        problems.append(
            Problem(
                "context",
                None,
                "venue",
                f"venue {venue!r} is for offline synth only; deploy one of {', '.join(deploy_venues)} with "
                f"-c venue=... (each venue's Batch budget assumes {venues_per_region} venues "
                "per region)",
            )
        )
    boundary = app.node.try_get_context("permissionsBoundary")
    if boundary is not None and not _POLICY_ARN_RE.match(str(boundary)):
        problems.append(
            Problem(
                "context",
                None,
                "permissionsBoundary",
                f"{boundary!r} is not a managed policy ARN (arn:aws:iam::123456789012:policy/NAME)",
            )
        )
    return problems


def _allowed_regions_rule(stack: cdk.Stack, allowed: list[str]) -> None:
    """The same check at deploy time, for a template deployed somewhere else than the region it was synthesized for
    (``cdk deploy --app cdk.out`` with another profile, or a template handed to CloudFormation by hand)."""
    cdk.CfnRule(
        stack,
        "AllowedRegion",
        assertions=[
            cdk.CfnRuleAssertion(
                assert_=cdk.Fn.condition_contains(allowed, cdk.Aws.REGION),
                assert_description=f"Deploy to {', '.join(allowed)}: PO.DAAC's S3 credentials work only in us-west-2 "
                "(cdk.json confluence:regions, -c regions=...)",
            )
        ],
    )


def _context(app: cdk.App, key: str, default_key: str) -> Any:
    value = app.node.try_get_context(key)
    return value if value is not None else app.node.get_context(default_key)


def _renew(
    app: cdk.App, config: Config, env: cdk.Environment | None, alerts: AlertsStack, *, retain: bool
) -> RenewSource:
    """The renew construct (stacks/renew.py) in its own stack; the Batch stack reads it as a ``RenewLike``.

    The Batch stack also works with ``renew=None``: disable_renew is then granted ``{prefix}-renew`` by name.
    """
    stack = cdk.Stack(
        app,
        f"{config.prefix}-renew",
        env=env,
        synthesizer=_synthesizer(config.prefix),
        description="Confluence: PO.DAAC S3 credential renewal",
    )
    return Renew(
        stack,
        "Renew",
        prefix=config.prefix,
        log_retention_days=config.infrastructure.log_retention_days,
        alarm_topic=alerts.references(stack),
        retain=retain,
    )


def main() -> None:
    try:
        app = build_app(cli=cli_environment(os.environ))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    app.synth()


if __name__ == "__main__":
    main()
