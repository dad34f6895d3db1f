"""The submitter policy lets people supervise runs from their machine with ``items`` lists and the venue's alerts
topic, and nothing more: the exact statements in the templates (the shipped yaml has no items list: no statement;
the extended yaml's one list: exactly its ARN, the same in the supervisor function's role), and every request of
``run`` (arrays sized from the lists), ``run --supervise local --alerts-topic ARN`` (sized when the stage starts,
the summary published) and ``report`` (failed items by value), recorded from the real CLI against moto and evaluated
against the synthesized document (tests/infra/policies.py ``allows``), as test_submitter_supervised_runs.py does for
the cloud hand-over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk.cx_api as cxapi
import boto3
import pytest
from aws_cdk.assertions import Template
from click.testing import CliRunner
from moto import mock_aws

from confluence_runtime import names
from confluence_runtime.cli import main

from .conftest import EXTENDED_ITEMS, EXTENDED_PREFIX, PREFIX
from .policies import ACCOUNT, REGION_IN_TESTS, allows
from .test_submitter_supervised_runs import _iam, create_queues, record_requests

PARTITION = {"Ref": "AWS::Partition"}
TOPIC_PARAMETER = "/{prefix}/alerts/topic-arn"


def _parameter(template: dict[str, Any], name: str) -> str:
    """The template parameter through which a stack reads ``name`` from SSM at deploy time."""
    [parameter] = [
        n
        for n, p in template["Parameters"].items()
        if p.get("Default") == name and p["Type"] == "AWS::SSM::Parameter::Value<String>"
    ]
    return parameter


def _statements(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        s["Sid"]: s
        for r in template["Resources"].values()
        if r["Type"] == resource_type
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if "Sid" in s
    }


def _submitter(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    [policy] = [
        r["Properties"]["PolicyDocument"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::ManagedPolicy" and r["Properties"]["ManagedPolicyName"] == f"{prefix}-submitter"
    ]
    return dict(policy)


def _summary_statements(topic: dict[str, str], region: Any) -> list[dict[str, Any]]:
    return [
        {"Sid": "PublishRunSummaries", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic},
        {
            "Sid": "EncryptRunSummaries",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": region, "kms:EncryptionContext:aws:sns:topicArn": topic}},
        },
    ]


def test_the_shipped_submitter_publishes_summaries_on_the_venues_topic_and_reads_no_items(
    templates: dict[str, Template],
) -> None:
    batch = templates["batch"].to_json()
    statements = _statements(batch, "AWS::IAM::ManagedPolicy")
    topic = {"Ref": _parameter(batch, TOPIC_PARAMETER.format(prefix=PREFIX))}
    # The CLI synth has a region: the endpoint SNS uses the key through is a literal.
    expected = _summary_statements(topic, "sns.us-west-2.amazonaws.com")
    assert [statements[s["Sid"]] for s in expected] == expected
    # The topic is the alerts stack's own, read from the parameter it publishes (no export).
    alerts = templates["alerts"].to_json()
    [topic_id] = alerts_topics = [k for k, r in alerts["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    assert len(alerts_topics) == 1
    published = {
        r["Properties"]["Name"]: r["Properties"]["Value"]
        for r in alerts["Resources"].values()
        if r["Type"] == "AWS::SSM::Parameter"
    }
    assert published[TOPIC_PARAMETER.format(prefix=PREFIX)] == {"Ref": topic_id}
    # The shipped yaml names no items list: neither the submitter nor the supervisor function may read one.
    assert "ReadItemsLists" not in statements
    assert "ReadItemsLists" not in _statements(templates["supervisor"].to_json(), "AWS::IAM::Policy")


def test_with_an_items_list_both_the_submitter_and_the_supervisor_read_exactly_it(
    extended_assembly: cxapi.CloudAssembly,
) -> None:
    batch = extended_assembly.get_stack_by_name(f"{EXTENDED_PREFIX}-batch").template
    supervisor = extended_assembly.get_stack_by_name(f"{EXTENDED_PREFIX}-supervisor").template
    expected = {
        "Sid": "ReadItemsLists",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        # {prefix} expanded at synth: the dev1 venue's json bucket, the key as the yaml gives it.
        "Resource": {"Fn::Join": ["", ["arn:", PARTITION, f":s3:::{EXTENDED_PREFIX}-json/lists/reaches.json"]]},
    }
    assert f"s3://{EXTENDED_PREFIX}-json/lists/reaches.json" == EXTENDED_ITEMS
    assert _statements(batch, "AWS::IAM::ManagedPolicy")["ReadItemsLists"] == expected
    assert _statements(supervisor, "AWS::IAM::Policy")["ReadItemsLists"] == expected
    # The summary statements do not depend on the yaml (an environment-agnostic synth: the region is a token).
    topic = {"Ref": _parameter(batch, TOPIC_PARAMETER.format(prefix=EXTENDED_PREFIX))}
    region = {"Fn::Join": ["", ["sns.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
    expected_summary = _summary_statements(topic, region)
    statements = _statements(batch, "AWS::IAM::ManagedPolicy")
    assert [statements[s["Sid"]] for s in expected_summary] == expected_summary


# -- the requests the commands send ------------------------------------------------------------------------------

ITEMS_BUCKET, ITEMS_KEY = f"{EXTENDED_PREFIX}-json", "lists/reaches.json"
ITEMS = [{"reach_id": 71_000_000 + i} for i in range(3)]
TOPIC = f"arn:aws:sns:{REGION_IN_TESTS}:{ACCOUNT}:{names.alerts_topic(EXTENDED_PREFIX)}"
# The extended yaml's items list, in a two-stage workflow of the same venue.
CONFIG = """
prefix: confluence-dev1
log_file: out/confluence.log
submission_file: out/submission.csv
stages:
  input:
    tolerated_failure: 2
    input: {items: "s3://{prefix}-json/lists/reaches.json", arguments: [-i, "-235"]}
  output:
    output: {}
"""
QUEUES = DEFINITIONS = (f"{EXTENDED_PREFIX}-input", f"{EXTENDED_PREFIX}-output")
# Each definition names its module's release in the venue's own repository {prefix}-{module} (stacks/batch.py), as
# a deployed venue's do: the run record looks each tag's digest up (ECR DescribeImages).
IMAGE_TAG = "1.0.0"
IMAGES = {
    definition: f"{ACCOUNT}.dkr.ecr.{REGION_IN_TESTS}.amazonaws.com/{definition}:{IMAGE_TAG}"
    for definition in DEFINITIONS
}
# Every AWS call each command makes, as IAM actions.
EXPECTED = {
    # (the run record names each job definition's revision and image: DescribeJobDefinitions)
    "run": {
        "s3:GetObject",
        "ecr:DescribeImages",
        "batch:SubmitJob",
        "batch:TagResource",
        "batch:DescribeJobQueues",
        "batch:ListJobs",
        "batch:DescribeJobDefinitions",
    },
    # (a new run id is checked against AWS first: DescribeJobQueues, ListJobs)
    "run --supervise local": {
        "s3:GetObject",
        "ecr:DescribeImages",
        "batch:DescribeJobDefinitions",
        "batch:DescribeJobQueues",
        "batch:ListJobs",
        "batch:SubmitJob",
        "batch:TagResource",
        "batch:DescribeJobs",
        "sns:Publish",
    },
    "report": {"s3:GetObject", "batch:ListJobs", "batch:DescribeJobs"},
}


def _local_iam(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """Beyond ``_iam``: SubmitJob is authorized against its queue and job definition, with the request's tags, and
    again as batch:TagResource on the definition (stacks/constructs/submit_grant.py); Publish against its topic;
    GetCallerIdentity needs no permission."""
    if service == "batch" and operation == "SubmitJob":
        arn = f"arn:aws:batch:{REGION_IN_TESTS}:{ACCOUNT}:"
        tags = {f"aws:RequestTag/{k}": v for k, v in params.get("tags", {}).items()}
        queue, definition = f"{arn}job-queue/{params['jobQueue']}", f"{arn}job-definition/{params['jobDefinition']}"
        return [
            ("batch:SubmitJob", queue, tags),
            ("batch:SubmitJob", definition, tags),
            ("batch:TagResource", definition, tags),
        ]
    if service == "sns" and operation == "Publish":
        return [("sns:Publish", params["TopicArn"], {})]
    if service == "ecr" and operation == "DescribeImages":
        repository = f"arn:aws:ecr:{REGION_IN_TESTS}:{params['registryId']}:repository/{params['repositoryName']}"
        return [("ecr:DescribeImages", repository, {})]
    if service == "sts" and operation == "GetCallerIdentity":
        # STS API reference: "No permissions are required to perform this operation."
        return []
    return _iam(service, operation, params)


@pytest.fixture
def digests() -> dict[str, str]:
    """Each definition's image digest, as ECR (moto) answered the push of its tag (filled by ``recorded``)."""
    return {}


@pytest.fixture
def recorded(
    monkeypatch: pytest.MonkeyPatch, digests: dict[str, str]
) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """The requests (``record_requests``) with moto behind them: the items list, the topic, queues, definitions and
    their images, pushed to the venue's repositories."""
    calls = record_requests(monkeypatch)
    # Batch without Docker: moto's jobs succeed without running a container.
    with mock_aws(config={"batch": {"use_docker": False}}):
        s3 = boto3.client("s3", region_name=REGION_IN_TESTS)
        s3.create_bucket(Bucket=ITEMS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION_IN_TESTS})
        s3.put_object(Bucket=ITEMS_BUCKET, Key=ITEMS_KEY, Body=json.dumps(ITEMS).encode())
        assert (
            boto3.client("sns", region_name=REGION_IN_TESTS).create_topic(Name=names.alerts_topic(EXTENDED_PREFIX))[
                "TopicArn"
            ]
            == TOPIC
        )
        create_queues(QUEUES)
        batch = boto3.client("batch", region_name=REGION_IN_TESTS)
        ecr = boto3.client("ecr", region_name=REGION_IN_TESTS)
        for definition in DEFINITIONS:
            ecr.create_repository(repositoryName=definition)
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": f"sha256:{definition.encode().hex():0<64}"},
            }
            pushed = ecr.put_image(repositoryName=definition, imageManifest=json.dumps(manifest), imageTag=IMAGE_TAG)
            digests[definition] = pushed["image"]["imageId"]["imageDigest"]
            batch.register_job_definition(
                jobDefinitionName=definition,
                type="container",
                containerProperties={"image": IMAGES[definition], "vcpus": 1, "memory": 512},
            )
        yield calls


def test_every_request_of_local_supervision_with_items_and_alerts_is_allowed_by_the_submitter_policy(
    extended_assembly: cxapi.CloudAssembly,
    recorded: list[tuple[str, str, dict[str, Any]]],
    digests: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # the yaml's out/ (log, local ledger, report files) is relative to the directory
    config = tmp_path / "confluence.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    c, region = ["-c", str(config)], ["--region", REGION_IN_TESTS]
    commands = {
        "run": ["run", *c, "--run-id", "r1", "--no-preflight", *region],
        "run --supervise local": [
            "run", *c, "--run-id", "r2", "--supervise", "local", "--alerts-topic", TOPIC, "--no-preflight",
            "--poll", "0.1", *region,
        ],
        "report": ["report", *c, "--run-id", "r2", *region],
    }  # fmt: skip
    runner = CliRunner()
    by_command: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for name, args in commands.items():
        start = len(recorded)
        result = runner.invoke(main, args, catch_exceptions=False, env={"COLUMNS": "200"})
        assert result.exit_code == 0, (name, result.output)
        by_command[name] = recorded[start:]

    template = extended_assembly.get_stack_by_name(f"{EXTENDED_PREFIX}-batch").template
    document = _submitter(template, EXTENDED_PREFIX)
    # What the stack's SSM parameters resolve to: the topic as moto made it, any other value made up.
    refs = {name: f"value-of-{name}" for name in template["Parameters"]}
    refs[_parameter(template, TOPIC_PARAMETER.format(prefix=EXTENDED_PREFIX))] = TOPIC
    actions: dict[str, set[str]] = {}
    for name, calls in by_command.items():
        for service, operation, params in calls:
            for action, resource, context in _local_iam(service, operation, params):
                actions.setdefault(name, set()).add(action)
                assert allows(document, action, resource, context, refs), (name, action, resource, context)
    assert actions == EXPECTED

    # Through those requests, each run's record names every image by the digest ECR gave its tag.
    for run_id in ("r1", "r2"):
        record = json.loads((tmp_path / "out" / "submission.ledger" / run_id / "provenance.json").read_text())
        images = {d["name"]: (d["image"], d["digest"], d["digest_source"]) for d in record["definitions"]}
        expected = {d: (IMAGES[d], digests[d], "ECR DescribeImages") for d in DEFINITIONS}
        assert images == expected, run_id
        assert all(digest.startswith("sha256:") for digest in digests.values())

    # The list was read by each command, and only it; the summary went to the venue's topic.
    reads = [
        (p["Bucket"], p["Key"]) for service, operation, p in recorded if (service, operation) == ("s3", "GetObject")
    ]
    assert set(reads) == {(ITEMS_BUCKET, ITEMS_KEY)}
    # An unsupervised run reads it once: the read that sizes its arrays is the one its record keeps.
    assert [operation for service, operation, _ in by_command["run"] if service == "s3"] == ["GetObject"]
    [published] = [p for service, _, p in recorded if service == "sns"]
    assert (published["TopicArn"], published["Subject"]) == (TOPIC, "Confluence run r2: succeeded")

    # Nothing else: another object of the bucket, another topic, the key through another service or for another
    # topic.
    other_topic = TOPIC.replace(EXTENDED_PREFIX, "confluence-ops")
    key = f"arn:aws:kms:{REGION_IN_TESTS}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    via_sns = {
        "kms:ViaService": f"sns.{REGION_IN_TESTS}.amazonaws.com",
        "kms:EncryptionContext:aws:sns:topicArn": TOPIC,
    }
    assert allows(document, "kms:GenerateDataKey", key, via_sns, refs) == "EncryptRunSummaries"
    for action, resource, context in (
        ("s3:GetObject", f"arn:aws:s3:::{ITEMS_BUCKET}/lists/other.json", {}),
        ("s3:PutObject", f"arn:aws:s3:::{ITEMS_BUCKET}/{ITEMS_KEY}", {}),
        ("sns:Publish", other_topic, {}),
        ("kms:GenerateDataKey", key, {**via_sns, "kms:EncryptionContext:aws:sns:topicArn": other_topic}),
        ("kms:Decrypt", key, {**via_sns, "kms:ViaService": f"ssm.{REGION_IN_TESTS}.amazonaws.com"}),
    ):
        assert allows(document, action, resource, context, refs) is None, (action, resource, context)
