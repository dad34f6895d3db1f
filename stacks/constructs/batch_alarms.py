"""Batch-level alarms of a venue, from Batch's own events: they fire for every run, supervised or not, with no
process of ours watching.

- ``{prefix}-batch-failed-jobs``: a job in one of the venue's queues went to FAILED (array children count one by
  one), in the last five minutes.
- ``{prefix}-batch-runnable-blocked``: Batch found a RUNNABLE job of the venue's queues that cannot start ("Batch Job
  Queue Blocked": a compute environment too small for it, a resource it cannot get, no instance capacity). Such a
  job would stay RUNNABLE for ever; each queue cancels it after ``infrastructure.runnable_timeout`` (its job state
  time limit), which then counts as a failed job too.

EventBridge sends each matching event to an SQS queue of the venue, and each alarm counts the messages sent there
(``NumberOfMessagesSent``): an aggregate, so 214 failed children are one alarm, not 214 e-mails, and the messages
(kept four days) say which jobs: ``aws sqs receive-message --queue-url URL`` (the ``Batch...EventsQueueUrl`` output).
The alarms have fixed names, so their construct ids are fixed too (added straight under the stack).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

PERIOD = Duration.minutes(5)
RETENTION = Duration.days(4)
BLOCKED = "Batch Job Queue Blocked"
STATE_CHANGE = "Batch Job State Change"


@dataclass(frozen=True)
class BatchAlarm:
    key: str  # in names and construct ids: failed-jobs, runnable-blocked
    detail_type: str
    statuses: tuple[str, ...]
    description: str


ALARMS = (
    BatchAlarm(
        "failed-jobs",
        STATE_CHANGE,
        ("FAILED",),
        "Jobs of this venue's queues FAILED in the last 5 minutes: see their reasons with confluence-submit status "
        "(or the messages of the BatchFailedJobsEvents queue)",
    ),
    BatchAlarm(
        "runnable-blocked",
        BLOCKED,
        (),
        "Batch found RUNNABLE jobs of this venue's queues that cannot start (compute environment too small, "
        "resource or capacity missing); the queue cancels them after infrastructure.runnable_timeout",
    ),
)


def batch_alarms(
    scope: Construct, *, prefix: str, queue_arns: Sequence[str], topic: sns.ITopic | None
) -> dict[str, cloudwatch.Alarm]:
    """One rule, queue and alarm per entry of :data:`ALARMS`, notifying ``topic``."""
    alarms = {}
    for spec in ALARMS:
        construct = "".join(part.capitalize() for part in spec.key.split("-"))
        queue = sqs.Queue(
            scope,
            f"Batch{construct}Events",
            retention_period=RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        NagSuppressions.add_resource_suppressions(
            queue,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3",
                    reason="A record of Batch events that an alarm counts; nothing consumes it, so nothing could "
                    "fail to and need a dead-letter queue.",
                )
            ],
        )
        detail: dict[str, list[str]] = {"jobQueue": list(queue_arns)}
        if spec.statuses:
            detail["status"] = list(spec.statuses)
        rule = events.Rule(
            scope,
            f"Batch{construct}Rule",
            description=f"{spec.detail_type} events of {prefix}'s queues ({spec.key}), counted by an alarm",
            event_pattern=events.EventPattern(source=["aws.batch"], detail_type=[spec.detail_type], detail=detail),
        )
        rule.add_target(targets.SqsQueue(queue))
        alarm = cloudwatch.Alarm(
            scope,
            f"Batch{construct}Alarm",
            alarm_name=f"{prefix}-batch-{spec.key}",
            alarm_description=spec.description,
            metric=queue.metric_number_of_messages_sent(period=PERIOD, statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        if topic is not None:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        cdk.CfnOutput(
            scope,
            f"Batch{construct}EventsQueueUrl",
            value=queue.queue_url,
            description=f"The {spec.detail_type} events behind the {prefix}-batch-{spec.key} alarm",
        )
        alarms[spec.key] = alarm
    return alarms
