"""The one statement that lets a principal read the modules' ``items`` lists: the submitter managed policy
(stacks/batch.py; ``run`` sizes arrays from them, ``run --supervise local`` when a stage starts, ``report`` and the
supervisor's reporter name failed items by value) and the supervisor function's role (stacks/supervisor.py) both
use it, so both list the same ARNs.

Resources: exactly the objects confluence.yaml names (``items: s3://BUCKET/KEY``, ``{prefix}`` already expanded by
the loader), one ARN per distinct URL, in first-use order; no statement at all when no module has one. Each ARN is
as long as its URL (about 30 characters plus the key): a managed policy holds 6,144 characters ("IAM and AWS STS
quotas"), so modules that share one list (a per_index workflow's usual case) share one ARN.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from confluence_runtime.config import Config

SID = "ReadItemsLists"


def items_resources(config: Config) -> list[str]:
    """``arn:PARTITION:s3:::BUCKET/KEY`` of each distinct items list, in the order the yaml first names it."""
    urls = dict.fromkeys(m.items for m in config.modules if m.items)
    return [f"arn:{cdk.Aws.PARTITION}:s3:::{url.removeprefix('s3://')}" for url in urls]


def items_statement(config: Config) -> iam.PolicyStatement | None:
    """s3:GetObject of exactly the modules' items lists (wherever they are), or None when the yaml has none."""
    resources = items_resources(config)
    if not resources:
        return None
    return iam.PolicyStatement(sid=SID, actions=["s3:GetObject"], resources=resources)
