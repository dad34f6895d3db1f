"""The submitter policy lets people run supervised runs in the cloud, and nothing more: the exact statements in the
template, and every request the commands send (recorded from the real CLI against moto) allowed by them.

``run --supervise cloud`` records the run in the supervisor's ledger bucket (conditional writes) and puts one
``Confluence Supervised Run`` event on the default bus; ``cancel`` of a cloud run puts another; ``supervise
--status/--cancel``, ``status``, ``runs`` and ``report`` with ``--ledger s3://...`` read (and note in) the ledger.
Neither moto nor the emulator evaluates IAM, so the recorded requests are evaluated against the synthesized
document (tests/infra/policies.py ``allows``).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Match, Template
from click.testing import CliRunner
from moto import mock_aws

from confluence_runtime import names
from confluence_runtime.aws import api as runtime_aws
from confluence_runtime.cli import main

from .conftest import PREFIX
from .policies import ACCOUNT, REGION_IN_TESTS, allows

LEDGER_PARAMETER = names.supervisor_parameter(PREFIX, "ledger-bucket")
PARTITION = {"Ref": "AWS::Partition"}


def _ledger_ref(template: Template) -> dict[str, str]:
    """The template parameter through which the Batch stack reads the ledger bucket at deploy time."""
    [name] = [
        n
        for n, p in template.to_json()["Parameters"].items()
        if p.get("Default") == LEDGER_PARAMETER and p["Type"] == "AWS::SSM::Parameter::Value<String>"
    ]
    return {"Ref": name}


def _submitter(template: Template) -> dict[str, Any]:
    [policy] = [
        r["Properties"]
        for r in template.find_resources("AWS::IAM::ManagedPolicy").values()
        if r["Properties"]["ManagedPolicyName"] == f"{PREFIX}-submitter"
    ]
    return dict(policy["PolicyDocument"])


def test_the_submitter_may_hand_over_and_keep_supervised_runs_exactly(templates: dict[str, Template]) -> None:
    batch = templates["batch"]
    bucket = _ledger_ref(batch)
    statements = [
        {
            "Sid": "HandOverSupervisedRuns",
            "Effect": "Allow",
            "Action": "events:PutEvents",
            # This account's and region's default bus (the CLI synth has a region: partition and region are literal).
            "Resource": {
                "Fn::Join": ["", ["arn:aws:events:us-west-2:", {"Ref": "AWS::AccountId"}, ":event-bus/default"]]
            },
            "Condition": {
                "StringEquals": {
                    "events:source": "confluence.supervisor",
                    "events:detail-type": "Confluence Supervised Run",
                }
            },
        },
        {
            "Sid": "KeepSupervisedRunsLedger",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": {"Fn::Join": ["", ["arn:", PARTITION, ":s3:::", bucket, "/runs/*"]]},
        },
        {
            "Sid": "ListSupervisedRuns",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": {"Fn::Join": ["", ["arn:", PARTITION, ":s3:::", bucket]]},
            "Condition": {"StringLike": {"s3:prefix": "runs/*"}},
        },
    ]
    batch.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {"ManagedPolicyName": f"{PREFIX}-submitter", "PolicyDocument": {"Statement": Match.array_with(statements)}},
    )

    # Before recording a cloud run, the runtime asks whether the supervisor is there: its function and two rules,
    # by name, and nothing else (the CLI synth has a region: partition and region are literal).
    def arn(service: str, resource: str) -> dict[str, Any]:
        return {"Fn::Join": ["", [f"arn:aws:{service}:us-west-2:", {"Ref": "AWS::AccountId"}, resource]]}

    [check] = [s for s in _submitter(batch)["Statement"] if s["Sid"] == "CheckSupervisor"]
    assert check == {
        "Sid": "CheckSupervisor",
        "Effect": "Allow",
        "Action": ["events:DescribeRule", "lambda:GetFunction"],
        "Resource": [
            arn("events", f":rule/{PREFIX}-supervisor"),
            arn("events", f":rule/{PREFIX}-supervisor-runs"),
            arn("lambda", f":function:{PREFIX}-supervisor"),
        ],
    }
    # Nothing else of the policy touches EventBridge or S3: these statements are all of it.
    others = [
        s
        for s in _submitter(batch)["Statement"]
        if s["Sid"] not in {t["Sid"] for t in statements} | {"CheckSupervisor"}
        and any(
            a.startswith(("events:", "s3:")) for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        )
    ]
    assert others == []
    # The conditions are the event the runtime puts (names.supervisor_event), whatever the run.
    entry = names.supervisor_event(PREFIX, "r1", names.RUN_STARTED, "s3://b/runs")
    assert (entry["Source"], entry["DetailType"]) == (names.SUPERVISOR_EVENT_SOURCE, names.SUPERVISOR_EVENT)
    assert (entry["Source"], entry["DetailType"]) == ("confluence.supervisor", "Confluence Supervised Run")


def test_the_ledger_bucket_reaches_the_batch_stack_through_ssm_without_an_export(
    templates: dict[str, Template],
) -> None:
    batch, supervisor = templates["batch"].to_json(), templates["supervisor"].to_json()
    # The supervisor stack publishes its bucket's name (a new parameter: nothing named or stateful changes) ...
    [ledger_id] = [k for k, r in supervisor["Resources"].items() if r["Type"] == "AWS::S3::Bucket"]
    published = {
        r["Properties"]["Name"]: r["Properties"]["Value"]
        for r in supervisor["Resources"].values()
        if r["Type"] == "AWS::SSM::Parameter"
    }
    assert published[LEDGER_PARAMETER] == {"Ref": ledger_id}
    # ... and the Batch stack reads it when it deploys: no export, no import anywhere.
    for template in (batch, supervisor):
        assert not [o for o in template.get("Outputs", {}).values() if "Export" in o]
        assert "Fn::ImportValue" not in json.dumps(template)
    # SSE-S3 (AES256): reading and writing the ledger needs no KMS grant.
    encryption = supervisor["Resources"][ledger_id]["Properties"]["BucketEncryption"]
    assert encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }


# -- the requests the commands send ------------------------------------------------------------------------------

BUCKET = f"{PREFIX}-supervisor-ledger1a2b3c4d-5e6f7a8b9c0d"  # what CloudFormation names the ledger bucket
LEDGER = f"s3://{BUCKET}/runs"
CONFIG = """
prefix: confluence-dev
log_file: out/confluence.log
submission_file: out/submission.csv
stages:
  input:
    tolerated_failure: 2
    input: {arguments: [-i, "-235"]}
  output:
    output: {}
"""
QUEUES = ("confluence-dev-input", "confluence-dev-output")
# Every AWS call each command makes, as IAM actions: the list this policy was written from.
EXPECTED = {
    # (the run id is checked first: the ledger's runs, then the run's jobs on AWS, as `run` does)
    "run --supervise cloud": {
        "ssm:GetParameter",
        "s3:ListBucket",
        "s3:GetObject",
        "batch:DescribeJobQueues",
        "batch:ListJobs",
        "s3:PutObject",
        "events:PutEvents",
        "lambda:GetFunction",
        "events:DescribeRule",
        "batch:DescribeJobDefinitions",  # the run record: each job definition's revision and image
    },
    "supervise --status": {"s3:GetObject"},
    "status": {"s3:GetObject", "batch:ListJobs"},
    "runs": {"s3:ListBucket", "s3:GetObject"},
    "report": {"s3:GetObject", "s3:PutObject", "batch:ListJobs"},
    "cancel": {"s3:GetObject", "s3:PutObject", "batch:ListJobs", "events:PutEvents"},
    "supervise --cancel": {"s3:GetObject", "s3:PutObject"},
}


def _iam(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(action, resource ARN, condition keys) IAM authorizes a request with (the Service Authorization Reference:
    ListObjectsV2 is s3:ListBucket with s3:prefix; PutEvents is authorized per entry on its bus)."""
    if service == "s3" and operation in ("GetObject", "PutObject"):
        return [(f"s3:{operation}", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", {})]
    if service == "s3" and operation == "ListObjectsV2":
        return [("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", {"s3:prefix": params.get("Prefix", "")})]
    if service == "events" and operation == "PutEvents":
        bus = f"arn:aws:events:{REGION_IN_TESTS}:{ACCOUNT}:event-bus/"
        return [
            (
                "events:PutEvents",
                bus + e.get("EventBusName", "default"),
                {"events:source": e["Source"], "events:detail-type": e["DetailType"]},
            )
            for e in params["Entries"]
        ]
    if service == "lambda" and operation == "GetFunction":
        return [
            ("lambda:GetFunction", f"arn:aws:lambda:{REGION_IN_TESTS}:{ACCOUNT}:function:{params['FunctionName']}", {})
        ]
    if service == "events" and operation == "DescribeRule":
        return [("events:DescribeRule", f"arn:aws:events:{REGION_IN_TESTS}:{ACCOUNT}:rule/{params['Name']}", {})]
    if service == "ssm" and operation == "GetParameter":
        return [("ssm:GetParameter", f"arn:aws:ssm:{REGION_IN_TESTS}:{ACCOUNT}:parameter{params['Name']}", {})]
    if service == "batch" and operation.startswith(("List", "Describe")):
        return [(f"batch:{operation}", "*", {})]  # no resource-level permissions
    raise AssertionError(f"a call this test does not know: {service} {operation}")


def record_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request the runtime's clients build from now on (botocore's before-parameter-build), as (service,
    operation, parameters)."""
    calls: list[tuple[str, str, dict[str, Any]]] = []
    session = runtime_aws._session

    def recording(options: Any) -> Any:
        made = session(options)

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append((model.service_model.service_name, model.name, dict(params)))

        made.events.register("before-parameter-build", record)
        return made

    monkeypatch.setattr(runtime_aws, "_session", recording)
    return calls


def create_queues(queues: Iterable[str]) -> None:
    """The venue's queues in moto (inside mock_aws)."""
    role = boto3.client("iam").create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = boto3.client("batch", region_name=REGION_IN_TESTS)
    environment = batch.create_compute_environment(
        computeEnvironmentName="ledger-test", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    for queue in queues:
        batch.create_job_queue(
            jobQueueName=queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )


def create_supervisor(prefix: str) -> None:
    """The venue's supervisor function and its Batch-events and hand-over rules in moto (inside mock_aws): what
    ``run --supervise cloud`` checks before it records anything."""
    role = boto3.client("iam").create_role(RoleName="supervisor", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    boto3.client("lambda", region_name=REGION_IN_TESTS).create_function(
        FunctionName=names.supervisor_function(prefix),
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    events = boto3.client("events", region_name=REGION_IN_TESTS)
    for rule in names.supervisor_rules(prefix)[:2]:
        events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["aws.batch"]}), State="ENABLED")


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """The requests (``record_requests``) with moto behind them: the ledger bucket, the published ledger, the
    venue's queues."""
    calls = record_requests(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION_IN_TESTS)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION_IN_TESTS})
        ssm = boto3.client("ssm", region_name=REGION_IN_TESTS)
        ssm.put_parameter(Name=names.supervisor_parameter(PREFIX, "ledger"), Value=LEDGER, Type="String")
        create_queues(QUEUES)
        create_supervisor(PREFIX)
        yield calls


def test_every_request_of_the_supervised_run_commands_is_allowed_by_the_submitter_policy(
    templates: dict[str, Template],
    recorded: list[tuple[str, str, dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # the yaml's out/ (log, local ledger, report files) is relative to the directory
    config = tmp_path / "confluence.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    c, r, ledger, region = ["-c", str(config)], ["--run-id", "r1"], ["--ledger", LEDGER], ["--region", REGION_IN_TESTS]
    commands = {
        "run --supervise cloud": ["run", *c, *r, "--supervise", "cloud", "--no-preflight", *region],
        "supervise --status": ["supervise", *r, *ledger, "--status", *region],
        "status": ["status", *c, *r, *ledger, *region],
        "runs": ["runs", *c, *ledger, *region],
        "report": ["report", *c, *r, *ledger, *region],
        "cancel": ["cancel", *c, *r, *ledger, "--wait", "0", *region],
        # Ends the run here (exit 1: cancelled), its report written next to the ledger in S3.
        "supervise --cancel": ["supervise", *r, *ledger, "--cancel", "--poll", "0.1", *region],
    }
    runner = CliRunner()
    by_command: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for name, args in commands.items():
        start = len(recorded)
        result = runner.invoke(main, args, catch_exceptions=False, env={"COLUMNS": "200"})
        assert result.exit_code == (1 if name == "supervise --cancel" else 0), (name, result.output)
        by_command[name] = recorded[start:]

    document = _submitter(templates["batch"])
    refs = {_ledger_ref(templates["batch"])["Ref"]: BUCKET}
    actions: dict[str, set[str]] = {}
    for name, calls in by_command.items():
        for service, operation, params in calls:
            for action, resource, context in _iam(service, operation, params):
                actions.setdefault(name, set()).add(action)
                assert allows(document, action, resource, context, refs), (name, action, resource, context)
    assert actions == EXPECTED

    s3_requests = [p for service, _, p in recorded if service == "s3"]
    # Every object the ledger reads or writes for a run is under runs/; every listing is of runs/.
    assert {p["Bucket"] for p in s3_requests} == {BUCKET}
    assert all(p["Key"].startswith("runs/r1/") for p in s3_requests if "Key" in p)
    assert {p["Prefix"] for p in s3_requests if "Key" not in p} == {"runs/"}
    # The writes are conditional (IfNoneMatch/IfMatch): s3:PutObject is all they need.
    writes = [p for service, operation, p in recorded if (service, operation) == ("s3", "PutObject")]
    assert writes and all(("IfNoneMatch" in p) != ("IfMatch" in p) for p in writes)
    # The two events, started then cancelled: the Source and DetailType the policy's conditions name.
    entries = [e for service, op, p in recorded if (service, op) == ("events", "PutEvents") for e in p["Entries"]]
    assert [(e["Source"], e["DetailType"], json.loads(e["Detail"])["change"]) for e in entries] == [
        ("confluence.supervisor", "Confluence Supervised Run", "started"),
        ("confluence.supervisor", "Confluence Supervised Run", "cancelled"),
    ]
    assert all("EventBusName" not in e for e in entries)  # the default bus

    # Another venue's event (the same source and detail-type) is not refused: IAM cannot see the detail's prefix.
    # The rule of each venue matches its own prefix only, so it reaches only that venue's function.
    bus = f"arn:aws:events:{REGION_IN_TESTS}:{ACCOUNT}:event-bus/default"
    same = {"events:source": names.SUPERVISOR_EVENT_SOURCE, "events:detail-type": names.SUPERVISOR_EVENT}
    assert allows(document, "events:PutEvents", bus, same, refs) == "HandOverSupervisedRuns"
    for other in ({**same, "events:source": "aws.batch"}, {**same, "events:detail-type": "Batch Job State Change"}):
        assert allows(document, "events:PutEvents", bus, other, refs) is None
    assert allows(document, "events:PutEvents", bus.replace("default", "other"), same, refs) is None
    # Nothing outside runs/ of the ledger bucket.
    for action, resource, context in (
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/elsewhere/x.json", {}),
        ("s3:GetObject", f"arn:aws:s3:::{PREFIX}-json/runs/r1/run.json", {}),
        ("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": ""}),
        ("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/runs/r1/run.json", {}),
    ):
        assert allows(document, action, resource, context, refs) is None, (action, resource)
