"""Day-two care in the shipped venue's templates: Batch-level alarms from Batch's own events, the supervisor's
on-failure destination, lifecycle rules on every bucket, X-Ray on the two functions."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template

from .conftest import PREFIX
from .test_stacks import resources, wired


def _alarms(batch: Template) -> dict[str, dict[str, Any]]:
    return {a["Properties"]["AlarmName"]: a["Properties"] for a in resources(batch, "AWS::CloudWatch::Alarm").values()}


def test_failed_and_blocked_jobs_of_every_queue_raise_batch_level_alarms(templates: dict[str, Template]) -> None:
    batch = templates["batch"]
    queues = sorted(resources(batch, "AWS::Batch::JobQueue"))
    rules = {
        r["Properties"]["EventPattern"]["detail-type"][0]: r["Properties"]
        for r in resources(batch, "AWS::Events::Rule").values()
    }
    failed, blocked = rules["Batch Job State Change"], rules["Batch Job Queue Blocked"]
    # Every queue of the venue (the efs tool's too), by reference: a queue added to the yaml is watched as well.
    for rule in (failed, blocked):
        assert rule["EventPattern"]["source"] == ["aws.batch"]
        assert sorted(q["Fn::GetAtt"][0] for q in rule["EventPattern"]["detail"]["jobQueue"]) == queues
    assert failed["EventPattern"]["detail"]["status"] == ["FAILED"]
    assert "status" not in blocked["EventPattern"]["detail"]
    alarms = _alarms(batch)
    assert sorted(alarms) == [f"{PREFIX}-batch-failed-jobs", f"{PREFIX}-batch-runnable-blocked"]
    for rule, name in ((failed, "failed-jobs"), (blocked, "runnable-blocked")):
        (target,) = rule["Targets"]
        queue = target["Arn"]["Fn::GetAtt"][0]
        alarm = alarms[f"{PREFIX}-batch-{name}"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (
            "AWS/SQS", "NumberOfMessagesSent", "Sum", 300
        )  # fmt: skip
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        (action,) = alarm["AlarmActions"]
        assert wired(batch, action) == f"/{PREFIX}/alerts/topic-arn"


def test_every_bucket_has_a_lifecycle(templates: dict[str, Template]) -> None:
    rules = {
        (kind, r["Properties"].get("LoggingConfiguration", {}).get("LogFilePrefix", "")): r["Properties"]
        .get("LifecycleConfiguration", {})
        .get("Rules")
        for kind in ("storage", "supervisor")
        for r in resources(templates[kind], "AWS::S3::Bucket").values()
    }
    noncurrent = [
        {
            "Id": "expire-noncurrent-versions",
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        }
    ]
    assert rules == {
        ("storage", ""): [{"Id": "expire-access-logs", "Status": "Enabled", "ExpirationInDays": 365}],
        ("storage", "sos/"): noncurrent,
        ("storage", "json/"): noncurrent,
        ("storage", "config/"): noncurrent,
        ("supervisor", ""): [
            {
                "Id": "expire-old-ledger-states",
                "Status": "Enabled",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 90},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            }
        ],
    }


def test_both_functions_are_traced(templates: dict[str, Template]) -> None:
    for kind in ("renew", "supervisor"):
        (function,) = resources(templates[kind], "AWS::Lambda::Function").values()
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, kind
