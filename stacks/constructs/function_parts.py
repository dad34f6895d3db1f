"""What each of the venue's Lambda functions has around it: its log group and its dead-letter queue.

Both have fixed names, so they are created straight under the caller's scope with the construct ids each stack
always used: no intermediate construct, whose id would enter the logical ids and make CloudFormation replace them.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct


def function_log_group(scope: Construct, function_name: str, retention_days: int) -> logs.LogGroup:
    """``/aws/lambda/{function_name}``, kept ``retention_days``."""
    group = logs.LogGroup(
        scope,
        "Logs",
        log_group_name=f"/aws/lambda/{function_name}",
        # A retained group with this fixed name would block the next deployment of the same venue.
        removal_policy=RemovalPolicy.DESTROY,
    )
    # The L2 takes an enum; the validated number goes straight into the template.
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = retention_days
    return group


def dead_letter_queue(scope: Construct, construct_id: str, function_name: str) -> sqs.Queue:
    """``{function_name}-dlq``: what could not be delivered to the function waits here 14 days (the most SQS keeps)."""
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=f"{function_name}-dlq",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
