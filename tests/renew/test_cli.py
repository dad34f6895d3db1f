"""`renew` and `credentials` commands through click's CliRunner against the moto server."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from confluence_runtime.aws.api import AwsOptions
from confluence_runtime.cli.renew import credentials, renew
from confluence_runtime.names import credential_parameters
from confluence_runtime.venue import renew as core

from .conftest import REGION, _post

PREFIX = "conf-test"
TARGET = {
    "Arn": f"arn:aws:lambda:{REGION}:123456789012:function:{PREFIX}-renew",
    "RoleArn": "arn:aws:iam::123456789012:role/scheduler-renew",
    "Input": '{"action": "renew"}',
    "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 900},
    "DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:123456789012:renew-dlq"},
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "confluence.yaml"
    path.write_text(
        f"log_file: c.log\nsubmission_file: s.csv\nprefix: {PREFIX}\n"
        "stages:\n  input:\n    input: {num_jobs: 1, array_size: 0, arguments: []}\n"
    )
    return path


@pytest.fixture
def cli(aws_env: str, config: Path) -> Any:
    def run(group: Any, *args: str) -> Result:
        return CliRunner().invoke(
            group, [*args, "-c", str(config), "--endpoint-url", aws_env, "--region", REGION], catch_exceptions=False
        )

    return run


def create_schedule(boto: Any, name: str = f"{PREFIX}-renew", state: str = "DISABLED") -> None:
    boto("scheduler").create_schedule(
        Name=name,
        ScheduleExpression="rate(50 minutes)",
        FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 5},
        Target=TARGET,
        State=state,
        Description="renew PO.DAAC S3 credentials",
    )


def publish(boto: Any, **values: str) -> None:
    """What stacks/renew.py publishes under /{prefix}/renew/."""
    for key, value in values.items():
        boto("ssm").put_parameter(Name=f"/{PREFIX}/renew/{key.replace('_', '-')}", Value=value, Type="String")


def create_function(boto: Any, name: str = f"{PREFIX}-renew") -> None:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    role = boto("iam").create_role(RoleName="renew", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto("lambda").create_function(
        FunctionName=name, Runtime="python3.13", Role=role, Handler="handler.handler", Code={"ZipFile": code.getvalue()}
    )


def test_enable_then_disable_keeps_the_other_fields(cli: Any, boto: Any) -> None:
    create_schedule(boto)
    before = boto("scheduler").get_schedule(Name=f"{PREFIX}-renew")

    result = cli(renew, "enable")
    assert result.exit_code == 0, result.output
    assert result.output == f"schedule default/{PREFIX}-renew: ENABLED (rate(50 minutes)), was DISABLED\n"
    after = boto("scheduler").get_schedule(Name=f"{PREFIX}-renew")
    assert after["State"] == "ENABLED"
    ignore = ("State", "LastModificationDate", "ResponseMetadata")
    assert {k: v for k, v in after.items() if k not in ignore} == {k: v for k, v in before.items() if k not in ignore}

    result = cli(renew, "disable")
    assert result.exit_code == 0, result.output
    assert "DISABLED (rate(50 minutes)), was ENABLED" in result.output
    final = boto("scheduler").get_schedule(Name=f"{PREFIX}-renew")
    assert final["State"] == "DISABLED"
    assert final["Target"] == TARGET
    assert final["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 5}


def test_published_names_win_over_conventional_ones(cli: Any, boto: Any) -> None:
    create_schedule(boto, name="custom-schedule")
    publish(boto, schedule_name="custom-schedule", schedule_group="default", function_name="custom-fn")
    result = cli(renew, "enable")
    assert result.exit_code == 0, result.output
    assert boto("scheduler").get_schedule(Name="custom-schedule")["State"] == "ENABLED"


def test_missing_schedule_is_a_clear_error(cli: Any) -> None:
    result = CliRunner().invoke(renew, ["enable", "-c", "nope.yaml"])
    assert result.exit_code == 2  # a missing configuration is bad input
    result = cli(renew, "enable")
    assert result.exit_code == 1
    assert f"schedule default/{PREFIX}-renew not found (conventional name" in result.output
    assert "is the renew stack deployed" in result.output


def test_status_of_a_missing_schedule_exits_non_zero(cli: Any) -> None:
    result = cli(renew, "status")
    assert result.exit_code == 1
    assert result.output.splitlines()[:3] == [
        f"function {PREFIX}-renew",
        f"schedule default/{PREFIX}-renew: not found",
        f"/{PREFIX}/s3_creds_expiration: never written",
    ]
    assert f"error: schedule default/{PREFIX}-renew not found; is the renew stack deployed" in result.output


def test_status(cli: Any, boto: Any) -> None:
    create_schedule(boto, state="ENABLED")
    result = cli(renew, "status")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"function {PREFIX}-renew",
        f"schedule default/{PREFIX}-renew: ENABLED (rate(50 minutes))",
        f"/{PREFIX}/s3_creds_expiration: never written",
        f"(names are conventional: nothing published under /{PREFIX}/renew/)",
    ]
    boto("ssm").put_parameter(
        Name=f"/{PREFIX}/s3_creds_expiration", Value="2026-11-20 19:37:01+00:00", Type="SecureString"
    )
    assert f"/{PREFIX}/s3_creds_expiration: 2026-11-20 19:37:01+00:00" in cli(renew, "status").output


def test_now_reports_the_expiration(cli: Any, boto: Any, aws_env: str) -> None:
    # moto's Docker-less Lambda runs no code: it answers with results queued here, which is what the real
    # function returns on success.
    create_function(boto)
    answer = {"expiration": "2026-11-20 19:37:01+00:00", "parameters": [f"/{PREFIX}/s3_creds_key"]}
    _post(f"{aws_env}/moto-api/static/lambda-simple/response", {"results": [json.dumps(answer)], "region": REGION})
    result = cli(renew, "now")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{PREFIX}-renew: credentials renewed, expire 2026-11-20 19:37:01+00:00",
        f"  /{PREFIX}/s3_creds_key",
    ]


def test_now_with_an_answer_lacking_expiration(cli: Any, boto: Any) -> None:
    create_function(boto)  # moto's simple Lambda echoes the payload: {"action": "renew"}
    result = cli(renew, "now")
    assert result.exit_code == 1
    assert result.output == f'error: {PREFIX}-renew answered without an expiration: {{"action": "renew"}}\n'


def test_function_error_is_surfaced() -> None:
    # moto's simple Lambda cannot fail, so the parsing of a FunctionError answer is checked on its own.
    payload = {
        "errorMessage": "login: host answered HTTP 401; Earthdata Login rejected",
        "errorType": "CredentialsRejected",
    }
    response = {"FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(payload).encode())}
    with pytest.raises(core.RenewError, match=r"fn failed: CredentialsRejected: login: host answered HTTP 401"):
        core.parse_invoke_response("fn", response)


def test_prepare_run_invokes_then_enables(aws_env: str, boto: Any) -> None:
    create_function(boto)
    create_schedule(boto)
    answer = {"expiration": "2026-11-20 19:37:01+00:00", "parameters": []}
    _post(f"{aws_env}/moto-api/static/lambda-simple/response", {"results": [json.dumps(answer)], "region": REGION})
    result = core.prepare_run(AwsOptions(endpoint_url=aws_env, region=REGION), PREFIX)
    assert result.expiration == "2026-11-20 19:37:01+00:00"
    assert result.schedule is not None and result.schedule.state == "ENABLED"
    assert boto("scheduler").get_schedule(Name=f"{PREFIX}-renew")["State"] == "ENABLED"


def test_prepare_run_leaves_the_schedule_alone_when_the_invoke_fails(aws_env: str, boto: Any) -> None:
    create_schedule(boto)
    with pytest.raises(core.RenewError):
        core.prepare_run(AwsOptions(endpoint_url=aws_env, region=REGION), PREFIX)
    assert boto("scheduler").get_schedule(Name=f"{PREFIX}-renew")["State"] == "DISABLED"


def test_simulate_stores_a_federation_token_that_can_only_read_podaac(cli: Any, boto: Any) -> None:
    key = boto("kms").create_key()["KeyMetadata"]["KeyId"]
    publish(boto, kms_key_id=key)
    result = cli(credentials, "simulate")
    assert result.exit_code == 0, result.output
    names = list(credential_parameters(PREFIX).values())
    ssm = boto("ssm")
    described = {p["Name"]: p for p in ssm.describe_parameters()["Parameters"] if p["Name"] in names}
    assert {n: (p["Type"], p["KeyId"]) for n, p in described.items()} == {n: ("SecureString", key) for n in names}
    values = {p["Name"]: p["Value"] for p in ssm.get_parameters(Names=names, WithDecryption=True)["Parameters"]}
    assert all(values[n] for n in names[:3])  # moto's STS makes up the key, secret and token
    # The user is told plainly what is stored, for how long, and who can read it.
    assert result.output.splitlines()[0] == (
        f"stored a federation token limited to reading the PO.DAAC buckets (podaac-*), valid 12 h until "
        f"{values[names[3]]}; every s3_credentials job of {PREFIX} can read it (key {key}):"
    )
    # Twelve hours, as the original -s: the stored expiration is about 12 h from now.
    left = datetime.fromisoformat(values[names[3]]) - datetime.now(UTC)
    assert 11.9 * 3600 < left.total_seconds() <= 12 * 3600


def test_simulate_with_a_role_stores_a_one_hour_session(cli: Any, boto: Any) -> None:
    role = "arn:aws:iam::123456789012:role/podaac-reader"
    result = cli(credentials, "simulate", "--kms-key-id", "alias/test", "--role-arn", role)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"stored a session of role {role} limited to reading the PO.DAAC buckets")
    assert "valid 1 h until" in result.output


def test_the_simulated_session_policy_allows_reading_podaac_buckets_only() -> None:
    # The session's permissions are the intersection of the caller's and this policy (AWS: "The resulting session's
    # permissions are the intersection of the user's identity-based policy and the session policies").
    assert core.simulate_policy() == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadPodaacObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::podaac-*/*",
            },
            {
                "Sid": "ListPodaacBuckets",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": "arn:aws:s3:::podaac-*",
            },
        ],
    }


def test_simulate_needs_a_key(cli: Any) -> None:
    result = cli(credentials, "simulate")
    assert result.exit_code == 1
    assert f"/{PREFIX}/renew/kms-key-id is absent; pass --kms-key-id" in result.output


def test_simulate_with_explicit_key(cli: Any, boto: Any) -> None:
    result = cli(credentials, "simulate", "--kms-key-id", "alias/test")
    assert result.exit_code == 0, result.output
    key_ids = {p["KeyId"] for p in boto("ssm").describe_parameters()["Parameters"]}
    assert key_ids == {"alias/test"}


def test_published_credential_parameters(aws_env: str, boto: Any) -> None:
    names = {"key": "/x/k", "secret": "/x/s", "token": "/x/t", "expiration": "/x/e"}
    publish(boto, credential_parameters=json.dumps(names), function_name="fn")
    resolved = core.resolve_names(AwsOptions(endpoint_url=aws_env, region=REGION), PREFIX)
    assert resolved.credential_parameters == ("/x/k", "/x/s", "/x/t", "/x/e")
    assert resolved.function_name == "fn"
    assert resolved.schedule_name == f"{PREFIX}-renew"
    assert resolved.published


def test_runtime_imports_no_cdk_and_no_boto3_directly() -> None:
    # The house rule: only confluence_runtime/aws/api.py imports boto3; the runtime never imports aws_cdk or lambdas.
    import subprocess
    import sys

    code = (
        "import sys, confluence_runtime.cli.renew, confluence_runtime.venue.renew as r, inspect\n"
        "assert not any(m == 'aws_cdk' or m.startswith(('aws_cdk.', 'stacks', 'handler', 'earthdata')) "
        "for m in sys.modules), sorted(sys.modules)\n"
        "assert 'import boto3' not in inspect.getsource(r)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
