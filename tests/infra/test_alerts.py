"""Alerts reach people: every alarm notifies the venue's encrypted {prefix}-alerts topic; the default security
group of the VPC allows nothing."""

from __future__ import annotations

from collections.abc import Callable

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

import app as cdk_app
from confluence_runtime.errors import ConfigError

from .conftest import CONFIG, PREFIX, STACK_KINDS
from .test_stacks import wired


def test_one_encrypted_topic_per_venue(templates: dict[str, Template]) -> None:
    alerts = templates["alerts"]
    topic_id, topic = next(iter(alerts.find_resources("AWS::SNS::Topic").items()))
    assert topic["Properties"]["TopicName"] == f"{PREFIX}-alerts"
    assert "KmsMasterKeyId" in topic["Properties"]
    alerts.resource_count_is("AWS::SNS::Subscription", 0)  # no address without -c alertEmail
    alerts.has_resource_properties(
        "AWS::SSM::Parameter", {"Name": f"/{PREFIX}/alerts/topic-arn", "Value": {"Ref": topic_id}}
    )
    # CloudWatch publishes as the service: the key lets it encrypt for the topic
    key = next(iter(alerts.find_resources("AWS::KMS::Key").values()))
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in statements)


def test_every_alarm_notifies_the_alerts_topic(templates: dict[str, Template]) -> None:
    alarms = {
        (kind, alarm["Properties"]["AlarmName"]): alarm["Properties"].get("AlarmActions")
        for kind in STACK_KINDS
        for alarm in templates[kind].find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert set(alarms) >= {("renew", f"{PREFIX}-renew-errors"), ("renew", f"{PREFIX}-renew-undelivered")}
    for (kind, name), actions in alarms.items():
        assert actions is not None and len(actions) == 1, name
        assert wired(templates[kind], actions[0]) == f"/{PREFIX}/alerts/topic-arn", name


def _subscribers(app: cdk.App, prefix: str = PREFIX) -> list[str]:
    alerts = next(c for c in app.node.children if isinstance(c, cdk.Stack) and c.node.id == f"{prefix}-alerts")
    subscriptions = Template.from_stack(alerts).find_resources("AWS::SNS::Subscription").values()
    assert all(s["Properties"]["Protocol"] == "email" for s in subscriptions)
    return sorted(s["Properties"]["Endpoint"] for s in subscriptions)


def test_an_address_from_the_context_is_subscribed(build: Callable[..., cdk.App]) -> None:
    app = build(alertEmail="confluence-ops@example.org, oncall@example.org")
    assert _subscribers(app) == ["confluence-ops@example.org", "oncall@example.org"]


def test_cdk_json_names_each_venues_subscribers(build: Callable[..., cdk.App]) -> None:
    venues = {"dev1": "dev@example.org", "ops": ["ops@example.org", "oncall@example.org"]}
    app = build(venue="ops", **{"confluence:alertEmails": venues})
    assert _subscribers(app, "confluence-ops") == ["oncall@example.org", "ops@example.org"]


DEPLOYING = cdk.Environment(account="123456789012", region="us-west-2")


def _problems(context: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        cdk_app.build_app({"config": str(CONFIG), "venue": "dev1", **context}, env=DEPLOYING, nag=False)
    return [str(p) for p in caught.value.problems]


def test_deploying_a_venue_nobody_hears_is_refused_unless_said_on_purpose() -> None:
    assert _problems({}) == [
        "context: alertEmail: venue dev1 has no alert subscriber: its alarms would reach nobody; set cdk.json "
        '"confluence:alertEmails": {"dev1": "ADDRESS"} or pass -c alertEmail=ADDRESS (or -c alerts=none to deploy '
        "without one on purpose)"
    ]
    assert _problems({"alertEmail": "not-an-address"}) == [
        "context: alertEmail: 'not-an-address' is not an e-mail address"
    ]
    assert _problems({"alerts": "off"}) == [
        "context: alerts: 'off': the only value is none (no subscriber, on purpose)"
    ]
    # On purpose, or offline (no account: a fresh machine's synth), it builds.
    assert cdk_app.build_app({"config": str(CONFIG), "venue": "dev1", "alerts": "none"}, env=DEPLOYING, nag=False)
    assert cdk_app.build_app({"config": str(CONFIG), "venue": "dev1"}, nag=False)


def test_the_default_security_group_is_closed(templates: dict[str, Template]) -> None:
    templates["network"].has_resource_properties(
        "Custom::VpcRestrictDefaultSG",
        {"DefaultSecurityGroupId": {"Fn::GetAtt": [Match.any_value(), "DefaultSecurityGroup"]}},
    )


def test_the_function_alarms_keep_their_logical_ids(templates: dict[str, Template]) -> None:
    """The renew and supervisor alarms come from one construct (stacks/constructs/alarms.py) and have fixed names:
    a changed logical id is a delete plus a create under the same name, which CloudFormation cannot update in place.
    These are the ids every deployed venue has (each stack's own alarms, before the construct was shared)."""
    alarms = {
        (kind, logical_id): (
            alarm["Properties"]["AlarmName"],
            alarm["Properties"].get("MetricName"),
            alarm["Properties"]["Period"],
            alarm["Properties"]["Statistic"],
            alarm["Properties"]["Threshold"],
            alarm["Properties"]["ComparisonOperator"],
            alarm["Properties"]["TreatMissingData"],
        )
        for kind in ("renew", "supervisor")
        for logical_id, alarm in templates[kind].find_resources("AWS::CloudWatch::Alarm").items()
    }
    at_least_one = ("GreaterThanOrEqualToThreshold", "notBreaching")
    assert alarms == {
        ("renew", "RenewErrorsAlarmBD8C3351"): (f"{PREFIX}-renew-errors", "Errors", 3600, "Sum", 1, *at_least_one),
        ("renew", "RenewDeadLettersAlarm467A90B9"): (
            f"{PREFIX}-renew-undelivered",
            "ApproximateNumberOfMessagesVisible",
            300,
            "Maximum",
            1,
            *at_least_one,
        ),
        ("supervisor", "ErrorsAlarm39B3548B"): (f"{PREFIX}-supervisor-errors", "Errors", 300, "Sum", 1, *at_least_one),
        ("supervisor", "DeadLettersAlarm3F8DE0AC"): (
            f"{PREFIX}-supervisor-undelivered",
            "ApproximateNumberOfMessagesVisible",
            300,
            "Maximum",
            1,
            *at_least_one,
        ),
    }
