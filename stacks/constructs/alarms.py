"""The two alarms of a Lambda function fed asynchronously: its errors, and what is left in its dead-letter queue.

Both alarms have fixed names (``{function}-errors``, ``{function}-undelivered``), so CloudFormation must update them
in place: a changed logical id would create the new alarm, under the same name, before deleting the old one, and
fail. They are therefore added straight under the given scope with the construct ids the stacks always used
(``ErrorsAlarm``, ``DeadLettersAlarm``): no intermediate construct, whose id would enter the logical ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ERRORS_ID = "ErrorsAlarm"
DEAD_LETTERS_ID = "DeadLettersAlarm"


@dataclass(frozen=True)
class FunctionAlarms:
    errors: cloudwatch.Alarm
    dead_letters: cloudwatch.Alarm

    @property
    def all(self) -> tuple[cloudwatch.Alarm, cloudwatch.Alarm]:
        return self.errors, self.dead_letters


def function_alarms(
    scope: Construct,
    *,
    function: lambda_.IFunction,
    function_name: str,
    dead_letter_queue: sqs.IQueue,
    errors_description: str,
    dead_letters_description: str,
    errors_period: Duration,
    topic: sns.ITopic | None,
) -> FunctionAlarms:
    """Alarm at the first error in ``errors_period`` and at the first dead letter; notify ``topic`` (if any)."""

    def alarm(id: str, suffix: str, description: str, metric: cloudwatch.IMetric) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            scope,
            id,
            alarm_name=f"{function_name}-{suffix}",
            alarm_description=description,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # No invocations and an empty queue are the normal state between runs.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    alarms = FunctionAlarms(
        errors=alarm(
            ERRORS_ID, "errors", errors_description, function.metric_errors(period=errors_period, statistic="Sum")
        ),
        dead_letters=alarm(
            DEAD_LETTERS_ID,
            "undelivered",
            dead_letters_description,
            dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
        ),
    )
    if topic is not None:
        # An alarm nobody hears is no alarm: both notify the venue's alerts topic (stacks/alerts.py).
        for each in alarms.all:
            each.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    return alarms
