"""`run --renew`: fresh PO.DAAC credentials once and the renew schedule enabled before anything is submitted."""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import boto3

REGION = "us-west-2"
RUN = "20261125T130000-0001"


def post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")  # noqa: S310 - local
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - our own emulator on 127.0.0.1


def deploy_renew(url: str) -> Any:
    """The renew function and its disabled schedule, as stacks/renew.py deploys them for prefix confluence-dev."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    role = session.client("iam", endpoint_url=url).create_role(RoleName="renew", AssumeRolePolicyDocument="{}")
    function = session.client("lambda", endpoint_url=url).create_function(
        FunctionName="confluence-dev-renew", Runtime="python3.13", Role=role["Role"]["Arn"],
        Handler="handler.handler", Code={"ZipFile": code.getvalue()},
    )  # fmt: skip
    scheduler = session.client("scheduler", endpoint_url=url)
    scheduler.create_schedule(
        Name="confluence-dev-renew", ScheduleExpression="rate(50 minutes)", State="DISABLED",
        FlexibleTimeWindow={"Mode": "OFF"}, Target={"Arn": function["FunctionArn"], "RoleArn": role["Role"]["Arn"]},
    )  # fmt: skip
    # moto runs no Lambda code without Docker: it answers with the result queued here, as the handler would.
    post(f"{url}/moto-api/config", {"lambda": {"use_docker": False}})
    answer = {"expiration": "2026-11-25 14:00:00+00:00", "parameters": ["/confluence-dev/s3_creds_key"]}
    post(f"{url}/moto-api/static/lambda-simple/response", {"results": [json.dumps(answer)], "region": REGION})
    return scheduler


def test_run_with_renew_refreshes_credentials_and_enables_the_schedule(
    cli: Any, provisioned: Any, batch_server: Any, tmp_path: Path
) -> None:
    provisioned("stages: {a: {m: {array_size: 2}}}\n", tmp=tmp_path)
    scheduler = deploy_renew(batch_server.url)
    result = cli("run", "-c", str(tmp_path / "confluence-0.yaml"), "--run-id", RUN, "-s", "sub.csv", "--renew")
    assert result.returncode == 0, result.stderr
    assert (
        "renew: confluence-dev-renew wrote fresh credentials (expire 2026-11-25 14:00:00+00:00); schedule ENABLED"
        in result.stderr
    )
    schedule = scheduler.get_schedule(Name="confluence-dev-renew")
    assert (schedule["State"], schedule["ScheduleExpression"]) == ("ENABLED", "rate(50 minutes)")
