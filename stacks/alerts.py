"""Alerts that reach people: one SNS topic per venue, ``{prefix}-alerts``, the action of every alarm.

The topic is encrypted with its own key, which CloudWatch may use (alarms cannot publish to a topic encrypted with
the AWS managed SNS key). Each address of ``emails`` (app.py: ``-c alertEmail`` or cdk.json
``confluence:alertEmails``) is subscribed (AWS sends it a confirmation first); app.py refuses to deploy a venue
with none unless ``-c alerts=none``.
Other stacks read the topic's ARN from ``/{prefix}/alerts/topic-arn`` at deploy time (stacks/constructs/wiring.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from confluence_runtime import names
from stacks.constructs.wiring import publish, read

TOPIC_ARN = "alerts/topic-arn"


class AlertsStack(cdk.Stack):
    """``topic``, ``key``; :meth:`references` hands another stack the topic."""

    def __init__(self, scope: Construct, id: str, *, prefix: str, emails: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.prefix = prefix
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the {names.alerts_topic(prefix)} topic",
            enable_key_rotation=True,
        )
        # CloudWatch alarms publish as the service: it must be able to encrypt for the topic.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=names.alerts_topic(prefix),
            display_name=f"Confluence {prefix} alerts",
            master_key=self.key,
            enforce_ssl=True,
        )
        for email in emails:
            # The subscription's logical id comes from the address: adding one never renames another.
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        publish(
            self,
            "Wiring-topic",
            prefix=prefix,
            name=TOPIC_ARN,
            value=self.topic.topic_arn,
            description="Topic every alarm of the venue notifies",
        )

    def references(self, scope: Construct) -> sns.ITopic:
        """The topic as another stack sees it (its ARN read from SSM at deploy time)."""
        return sns.Topic.from_topic_arn(scope, "Alerts", read(scope, self, prefix=self.prefix, name=TOPIC_ARN))
