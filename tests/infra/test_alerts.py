"""Alerts reach people: every alarm notifies the venue's encrypted {prefix}-alerts topic; the default security
group of the VPC allows nothing."""

from __future__ import annotations

from collections.abc import Callable

import aws_cdk as cdk
from aws_cdk.assertions import Match, Template

from .conftest import PREFIX, STACK_KINDS
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


def test_an_address_from_the_context_is_subscribed(build: Callable[..., cdk.App]) -> None:
    app = build(alertEmail="confluence-ops@example.org")
    alerts = next(c for c in app.node.children if isinstance(c, cdk.Stack) and c.node.id == f"{PREFIX}-alerts")
    Template.from_stack(alerts).has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "confluence-ops@example.org"}
    )


def test_the_default_security_group_is_closed(templates: dict[str, Template]) -> None:
    templates["network"].has_resource_properties(
        "Custom::VpcRestrictDefaultSG", {"DefaultSecurityGroupId": {"Fn::GetAtt": [Match.any_value(), "DefaultSecurityGroup"]}}
    )
