"""The supervisor stack (stacks/supervisor.py) in the CLI-synthesized template of the shipped confluence.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match, Template

from confluence_runtime import names
from confluence_runtime.config import Config

PREFIX = "confluence-dev"


def resources(template: Template, kind: str) -> dict[str, Any]:
    return template.find_resources(kind)


def test_rule_sends_terminal_states_of_every_venue_queue_to_the_function(
    templates: dict[str, Template], config: Config
) -> None:
    supervisor = templates["supervisor"]
    rule = rules(supervisor)[f"{PREFIX}-supervisor"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.batch"]
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert pattern["detail"]["status"] == ["SUCCEEDED", "FAILED"]
    # Parent jobs only (array children never invoke the function), and only fields AWS documents for the event:
    # no condition on the job's tags (the documented example event carries "tags": {"resourceArn": ...}).
    assert "tags" not in pattern["detail"]
    assert pattern["detail"]["arrayProperties"] == {"index": [{"exists": False}]}
    # Every queue of the venue by one ARN prefix: ...:job-queue/confluence-dev- (the shipped queues all have it).
    assert all(q.startswith(f"{PREFIX}-") for q in config.job_queues)
    [matcher] = pattern["detail"]["jobQueue"]
    assert list(matcher) == ["prefix"]
    assert json.dumps(matcher["prefix"]).endswith(f':job-queue/{PREFIX}-"]]}}')
    # EventBridge's maximum retries, and a dead-letter queue for what still cannot be delivered.
    target = rule["Targets"][0]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert "DeadLetterConfig" in target


def rules(template: Template) -> dict[str, Any]:
    return {r["Properties"]["Name"]: r["Properties"] for r in resources(template, "AWS::Events::Rule").values()}


def test_runs_handed_over_or_cancelled_reach_the_function_like_batch_events(templates: dict[str, Template]) -> None:
    supervisor = templates["supervisor"]
    assert sorted(rules(supervisor)) == [
        f"{PREFIX}-supervisor",
        f"{PREFIX}-supervisor-runs",
        f"{PREFIX}-supervisor-sweep",
    ]
    runs = rules(supervisor)[f"{PREFIX}-supervisor-runs"]
    # Exactly the event run --supervise cloud and cancel put on the bus (names.supervisor_event), of this venue only.
    assert runs["EventPattern"] == {
        "source": ["confluence.supervisor"],
        "detail-type": ["Confluence Supervised Run"],
        "detail": {"prefix": [PREFIX]},
    }
    assert runs["EventPattern"] == names.supervisor_event_pattern(PREFIX)
    [target] = runs["Targets"]
    [batch_target] = rules(supervisor)[f"{PREFIX}-supervisor"]["Targets"]
    function = next(iter(resources(supervisor, "AWS::Lambda::Function")))
    assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]} == batch_target["Arn"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert target["DeadLetterConfig"] == batch_target["DeadLetterConfig"]
    # EventBridge may invoke the function for this rule (a permission per rule, scoped to the rule's ARN).
    permissions = resources(supervisor, "AWS::Lambda::Permission").values()
    assert sorted(p["Properties"]["Principal"] for p in permissions) == ["events.amazonaws.com"] * 3


def test_a_sweep_every_five_minutes_reaches_the_same_function(templates: dict[str, Template]) -> None:
    supervisor = templates["supervisor"]
    sweep = rules(supervisor)[f"{PREFIX}-supervisor-sweep"]
    assert sweep["ScheduleExpression"] == "rate(5 minutes)"
    assert sweep["State"] == "ENABLED"
    [target] = sweep["Targets"]
    [batch_target] = rules(supervisor)[f"{PREFIX}-supervisor"]["Targets"]
    assert target["Arn"] == batch_target["Arn"]
    # A missed sweep is replaced by the next one: not retried for a day, and no dead letter raises an alarm.
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 300}
    assert "DeadLetterConfig" not in target


def test_function_bundles_the_runtime_and_knows_its_ledger_and_topic(templates: dict[str, Template]) -> None:
    supervisor = templates["supervisor"]
    supervisor.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": f"{PREFIX}-supervisor",
            "Handler": "handler.handler",
            "Runtime": "python3.14",
            "Timeout": 900,  # = the lease of a stage claim (supervisor.CLOUD_LEASE)
            "TracingConfig": {"Mode": "Active"},
            "Environment": {
                "Variables": {
                    names.ENV_SUPERVISOR_LEDGER: Match.any_value(),
                    names.ENV_ALERTS_TOPIC: Match.any_value(),
                }
            },
        },
    )
    # Events the function fails on three times are kept, with the error, in the queue its alarm watches.
    (queue_id,) = resources(supervisor, "AWS::SQS::Queue")
    supervisor.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 2,
            "Qualifier": "$LATEST",
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}},
        },
    )
    alarm = next(
        a["Properties"] for a in resources(supervisor, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] == f"{PREFIX}-supervisor-undelivered"
    )  # fmt: skip
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]


def test_bundle_holds_the_handler_runtime_package_and_yaml(cli_synth: Any) -> None:
    template = json.loads(Path(cli_synth.template_path("supervisor")).read_text())
    function = next(r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    asset = function["Metadata"]["aws:asset:path"]
    bundle = Path(cli_synth.outdir) / asset
    assert (bundle / "handler.py").exists()
    # the whole package, its folders included (the handler imports supervision/, records/, aws/ ...)
    assert (bundle / "confluence_runtime" / "supervision" / "loop.py").exists()
    assert (bundle / "confluence_runtime" / "aws" / "api.py").exists()
    assert not (bundle / "confluence_runtime" / "cli").exists()
    assert (bundle / "yaml" / "__init__.py").exists()


def test_alarms_and_summaries_go_to_the_venues_alerts_topic_and_names_are_published(
    templates: dict[str, Template],
) -> None:
    supervisor = templates["supervisor"]
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"] for a in resources(supervisor, "AWS::CloudWatch::Alarm").values()
    }
    assert sorted(alarms) == [f"{PREFIX}-supervisor-errors", f"{PREFIX}-supervisor-undelivered"]
    # The topic of the alerts stack, read from SSM at deploy time (no export), and no topic of its own.
    supervisor.resource_count_is("AWS::SNS::Topic", 0)
    parameter = next(
        name
        for name, p in supervisor.to_json()["Parameters"].items()
        if p.get("Default") == f"/{PREFIX}/alerts/topic-arn"
    )
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": parameter}]
    function = next(iter(resources(supervisor, "AWS::Lambda::Function").values()))["Properties"]
    assert function["Environment"]["Variables"][names.ENV_ALERTS_TOPIC] == {"Ref": parameter}
    published = sorted(p["Properties"]["Name"] for p in resources(supervisor, "AWS::SSM::Parameter").values())
    assert published == [
        f"/{PREFIX}/supervisor/function-name",
        f"/{PREFIX}/supervisor/ledger",
        f"/{PREFIX}/supervisor/ledger-bucket",  # for the Batch stack's submitter policy
    ]


def test_function_may_stop_only_this_venues_jobs(templates: dict[str, Template]) -> None:
    policy = next(iter(resources(templates["supervisor"], "AWS::IAM::Policy").values()))
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid")}
    assert statements["StopThisVenuesJobs"]["Action"] == ["batch:CancelJob", "batch:TerminateJob"]
    assert statements["StopThisVenuesJobs"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/confluence:prefix": PREFIX}
    }
    # Tagging only at SubmitJob time (issue 17 point 5): with SubmitJob, on its queues and definitions, never on a job.
    submit = statements["SubmitToThisVenue"]
    assert (submit["Action"], submit["Condition"]) == (
        ["batch:SubmitJob", "batch:TagResource"],
        {"StringEquals": {"aws:RequestTag/confluence:prefix": PREFIX}},
    )

    def arn(resource: str) -> dict[str, Any]:
        return {"Fn::Join": ["", ["arn:aws:batch:us-west-2:", {"Ref": "AWS::AccountId"}, f":{resource}"]]}

    # The venue's queues and definitions, with and without revision (stacks/constructs/submit_grant.py).
    assert submit["Resource"] == [arn(f"job-definition/{PREFIX}-*"), arn(f"job-queue/{PREFIX}-*")]
    tagging = [s for s in statements.values() if "batch:TagResource" in json.dumps(s["Action"])]
    assert tagging == [submit]


def test_every_job_the_supervisor_submits_is_allowed_and_none_is_a_barrier(
    templates: dict[str, Template], config: Config
) -> None:
    """The supervisor submits a stage once the previous one is over (supervise.submission: no dependsOn), so it
    never submits a barrier; {prefix}-* would allow the barrier definitions too. Every module's requests, arrays and
    plain jobs, name a queue and definition (both forms) the function's statement allows, and carry the venue tag."""
    from confluence_runtime.records.document import RunSpec, children_of, is_array
    from confluence_runtime.supervision.decisions import module_pieces, submission

    from .policies import allowed_by

    policy = next(iter(resources(templates["supervisor"], "AWS::IAM::Policy").values()))
    submit = next(s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "SubmitToThisVenue")
    run = RunSpec.from_config(config, "policy")
    requests = [
        submission(spec, piece, run, 214).request({})
        for stage in run.stages
        for spec in stage.modules
        for piece in module_pieces(spec, run.run_id, children_of(spec, 214) if is_array(spec) else 0)
    ]
    assert {r["jobDefinition"] for r in requests} == {m.job_definition for m in config.modules}
    assert not {r["jobDefinition"] for r in requests} & set(config.barrier_job_definitions)
    for request in requests:
        assert request["tags"][names.TAG_PREFIX] == PREFIX
        assert allowed_by(submit, request), request["jobName"]
