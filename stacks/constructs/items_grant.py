"""The one statement that lets a principal read the modules' ``items`` lists: the submitter managed policy
(stacks/batch.py; ``run`` sizes arrays from them, ``run --supervise local`` when a stage starts, ``report`` and the
supervisor's reporter name failed items by value) and the supervisor function's role (stacks/supervisor.py) both
use it, so both list the same ARNs.

Resources: exactly the objects confluence.yaml names (``items: s3://BUCKET/KEY``, ``{prefix}`` already expanded by
the loader), one ARN per distinct URL, in first-use order; no statement at all when no module has one.

Size. A managed policy holds at most 6,144 characters ("IAM and AWS STS quotas"), and each ARN is as long as its
URL plus the partition (up to ``aws-us-gov``): 34 lists of 60-character keys outgrew the submitter policy. So when
the exact ARNs together would pass ``BUDGET`` characters, each bucket's lists are granted as one ARN instead: the
keys' common beginning followed by ``*`` (``lists/reach*`` for ``lists/reaches-1.json`` and ``lists/reaches-2.json``;
a single list of a bucket stays exact). Modules that share one list (a per_index workflow's usual case) share one
ARN either way.
"""

from __future__ import annotations

import re

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import RegexAppliesTo

from confluence_runtime.config import Config

SID = "ReadItemsLists"
# Characters the items ARNs may take in a policy before they are granted per bucket: what the submitter policy
# leaves of its 6,144 with 40 modules, renew and the ledger (tests/infra/test_policy_size.py).
BUDGET = 1500
_LONGEST_ARN_START = len('"arn:aws-us-gov:s3:::",')


def items_objects(config: Config) -> list[str]:
    """``BUCKET/KEY`` (or ``BUCKET/KEYSTART*``) of the modules' items lists, in the order the yaml first names them;
    per bucket once the exact list would pass ``BUDGET`` (see the module's docstring)."""
    exact = [url.removeprefix("s3://") for url in dict.fromkeys(m.items for m in config.modules if m.items)]
    if sum(_LONGEST_ARN_START + len(o) for o in exact) <= BUDGET:
        return exact
    by_bucket: dict[str, list[str]] = {}
    for path in exact:
        bucket, _, key = path.partition("/")
        by_bucket.setdefault(bucket, []).append(key)
    return [
        f"{bucket}/{keys[0]}" if len(keys) == 1 else f"{bucket}/{_common_start(keys)}*"
        for bucket, keys in by_bucket.items()
    ]


def _common_start(keys: list[str]) -> str:
    """The characters every key begins with (not whole path components: an IAM ``*`` matches any characters)."""
    first, last = min(keys), max(keys)
    end = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))
    return first[:end]


def items_statement(config: Config) -> iam.PolicyStatement | None:
    """s3:GetObject of the modules' items lists (wherever they are), or None when the yaml has none."""
    objects = items_objects(config)
    if not objects:
        return None
    return iam.PolicyStatement(
        sid=SID, actions=["s3:GetObject"], resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{o}" for o in objects]
    )


def nag_findings(config: Config) -> list[RegexAppliesTo]:
    """cdk-nag's IAM5 findings of the statement: each per-bucket ARN (none while the lists are granted exactly)."""
    return [
        RegexAppliesTo(regex=f"/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):s3:::{re.escape(o)}$/")
        for o in items_objects(config)
        if o.endswith("*")
    ]
