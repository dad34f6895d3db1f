"""The one statement that lets a principal submit (and tag, at submission) jobs of one venue: the submitter managed
policy (stacks/batch.py) and the supervisor function's role (stacks/supervisor.py) both use it.

Resources. The venue's queues and job definitions are granted as ``job-queue/{prefix}-*`` and
``job-definition/{prefix}-*`` (``names.venue_names``), plus each yaml-chosen name outside that pattern:

* Both forms of a job definition must match. The runtime submits definitions by bare name (the latest active
  revision), and AWS's Batch user guide is ambiguous about which ARN such a request is authorized against. "Restrict
  to job definition prefix on job submission" says: "A policy that references only the job definition name without
  a revision number or wildcard (for example, job-definition/my-job-def) does not match SubmitJob requests, because
  the request ARN includes the revision (for example, job-definition/my-job-def:1)". "Restrict job submission by
  resource tags on job definition and job queue" says: "If you submit jobs without specifying a revision, job
  definition tags will not be evaluated ... The *:* pattern in the resource ARN enforces that submissions must
  include a revision", i.e. a submission without a revision does not match ``NAME:*``. ``{prefix}-*`` matches
  ``NAME`` and ``NAME:REV`` alike; a name outside it is listed as ``NAME`` and ``NAME:*``.
* Size. A managed policy holds at most 6,144 characters ("IAM and AWS STS quotas"), a role's inline policies
  10,240 together; one ARN per queue and definition (about 75 characters each, 150 for both forms of a definition)
  outgrew that at about 20 modules. The wildcards keep the statement's size independent of the number of modules.
* No other venue. A deployed prefix has exactly one '-' (stacks/checks.py), so no other venue's prefix starts with
  ``{prefix}-``: confluence-dev's ``confluence-dev-*`` is not confluence-dev1's ``confluence-dev1-*``, and no
  ``confluence-dev-x`` venue can exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import RegexAppliesTo

from confluence_runtime import names

SID = "SubmitToThisVenue"


def _arn(stack: cdk.Stack, resource: str, name: str) -> str:
    return stack.format_arn(
        service="batch", resource=resource, resource_name=name, arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME
    )


def _outside(prefix: str, chosen: Iterable[str]) -> list[str]:
    return [n for n in dict.fromkeys(chosen) if not names.in_venue_names(prefix, n)]


def submit_resources(stack: cdk.Stack, prefix: str, *, queues: Iterable[str], definitions: Iterable[str]) -> list[str]:
    """The queue and job definition ARNs a submission of this venue may name (see the module's docstring)."""
    wildcard = names.venue_names(prefix)
    return (
        [_arn(stack, "job-queue", wildcard)]
        + [_arn(stack, "job-queue", q) for q in _outside(prefix, queues)]
        + [_arn(stack, "job-definition", wildcard)]
        + [_arn(stack, "job-definition", form) for d in _outside(prefix, definitions) for form in (d, f"{d}:*")]
    )


def submit_statement(
    stack: cdk.Stack, prefix: str, *, queues: Iterable[str], definitions: Iterable[str]
) -> iam.PolicyStatement:
    """SubmitJob, and the tagging SubmitJob does, of jobs tagged with this venue on this venue's queues and
    definitions. SubmitJob with tags is also authorized as batch:TagResource, against the job definition (the job
    does not exist yet; AWS's refusal names ``job-definition/NAME``), and Batch has no condition key telling
    tag-on-create apart: so TagResource is granted on exactly these resources and on no job ARN, and the condition
    (which SubmitJob supports too) makes every job carry this venue's tag."""
    return iam.PolicyStatement(
        sid=SID,
        actions=["batch:SubmitJob", "batch:TagResource"],
        resources=submit_resources(stack, prefix, queues=queues, definitions=definitions),
        conditions={"StringEquals": {f"aws:RequestTag/{names.TAG_PREFIX}": prefix}},
    )


def nag_findings(prefix: str, *, definitions: Iterable[str]) -> list[RegexAppliesTo]:
    """cdk-nag's IAM5 findings of the statement: the two venue wildcards and each ``NAME:*`` outside them. A
    wildcard ARN built by format_arn prints partition, region and account as literals or as ``<AWS::Region>``."""
    part = "(?:<AWS::[A-Za-z]+>|[^:<>]+)"
    resources = [f"job-queue/{names.venue_names(prefix)}", f"job-definition/{names.venue_names(prefix)}"]
    resources += [f"job-definition/{d}:*" for d in _outside(prefix, definitions)]
    return [RegexAppliesTo(regex=f"/^Resource::arn:{part}:batch:{part}:{part}:{re.escape(r)}$/") for r in resources]
