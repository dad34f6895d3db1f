"""The renew Lambda run in-process against the fake Earthdata server and the moto server."""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.parse
from typing import Any

import pytest

from .conftest import ANSWER, PASSWORD, SECRETS, USERNAME, Earthdata

PREFIX = "/confluence-test/"
NAMES = [f"{PREFIX}{n}" for n in ("s3_creds_key", "s3_creds_secret", "s3_creds_token", "s3_creds_expiration")]
SECRET_ID = "/confluence-test/earthdata-login"


@pytest.fixture
def lam(
    handler_module: Any, aws_env: str, earthdata: Earthdata, boto: Any, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The handler configured like the stack configures it, with short timeouts so failure tests stay fast."""
    key_id = boto("kms").create_key(Description="renew test")["KeyMetadata"]["KeyId"]
    boto("secretsmanager").create_secret(
        Name=SECRET_ID, SecretString=json.dumps({"username": USERNAME, "password": PASSWORD})
    )
    env = {
        "RENEW_SECRET_ID": SECRET_ID,
        "RENEW_KMS_KEY_ID": key_id,
        "RENEW_PARAMETER_PREFIX": PREFIX,
        "RENEW_SCHEDULE_NAME": "confluence-test-renew",
        "RENEW_SCHEDULE_GROUP": "default",
        "RENEW_ENDPOINT": earthdata.endpoint,
        "RENEW_HTTP_TIMEOUT": "0.5",
        "RENEW_HTTP_ATTEMPTS": "3",
        "RENEW_HTTP_BACKOFF": "0.01",
        # The fake Earthdata Login is this loopback server (plain http is accepted for loopback only).
        "RENEW_LOGIN_HOSTS": urllib.parse.urlsplit(earthdata.endpoint).netloc,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handler_module.client.cache_clear()
    return {"key_id": key_id, "handler": handler_module.handler, "module": handler_module}


def stored(boto: Any) -> dict[str, dict[str, Any]]:
    ssm = boto("ssm")
    params = ssm.get_parameters(Names=NAMES, WithDecryption=True)["Parameters"]
    described = {p["Name"]: p for p in ssm.describe_parameters()["Parameters"]}
    return {
        p["Name"]: {"Value": p["Value"], "Type": p["Type"], "KeyId": described[p["Name"]].get("KeyId")} for p in params
    }


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, "a secret value reached the logs or an error message"


def test_renew_writes_the_four_securestrings(
    lam: dict[str, Any], boto: Any, earthdata: Earthdata, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    # DEBUG for our loggers; botocore at DEBUG prints request bodies by design and the Lambda never enables it.
    caplog.set_level("INFO")
    caplog.set_level("DEBUG", logger="renew")
    result = lam["handler"]({"action": "renew"})

    assert result == {"expiration": ANSWER["expiration"], "parameters": NAMES}
    values = (ANSWER["accessKeyId"], ANSWER["secretAccessKey"], ANSWER["sessionToken"], ANSWER["expiration"])
    assert stored(boto) == {
        name: {"Value": value, "Type": "SecureString", "KeyId": lam["key_id"]}
        for name, value in zip(NAMES, values, strict=True)
    }
    # The login POST carried the Origin header the archive checks.
    assert earthdata.state.origins == [earthdata.endpoint]
    out = capsys.readouterr()
    assert "stored credentials expiring" in caplog.text
    assert_no_secret(caplog.text + out.out + out.err + json.dumps(result))


def test_empty_event_renews_too(lam: dict[str, Any], boto: Any) -> None:
    assert lam["handler"]({})["expiration"] == ANSWER["expiration"]
    assert len(stored(boto)) == 4


def test_second_renew_overwrites(lam: dict[str, Any], boto: Any, earthdata: Earthdata) -> None:
    lam["handler"]({})
    earthdata.state.body = json.dumps({**ANSWER, "expiration": "2026-11-20 20:37:01+00:00"}).encode()
    assert lam["handler"]({})["expiration"] == "2026-11-20 20:37:01+00:00"
    assert stored(boto)[NAMES[3]]["Value"] == "2026-11-20 20:37:01+00:00"


def test_500_then_success_is_retried(lam: dict[str, Any], boto: Any, earthdata: Earthdata, caplog: Any) -> None:
    earthdata.state.fail_first = 2
    assert lam["handler"]({})["expiration"] == ANSWER["expiration"]
    assert earthdata.state.credential_gets == 3
    assert caplog.text.count("HTTP 500 (attempt") == 2
    assert len(stored(boto)) == 4


def failure(lam: dict[str, Any], boto: Any, caplog: Any, capsys: Any, error: str, match: str) -> None:
    """Run the handler expecting `error`; nothing may be written and no secret may be logged."""
    # DEBUG for our loggers; botocore at DEBUG prints request bodies by design and the Lambda never enables it.
    caplog.set_level("INFO")
    caplog.set_level("DEBUG", logger="renew")
    module = lam["module"]
    # The HTTP errors live in earthdata.py, the AWS ones in handler.py.
    cls = getattr(module, error, None) or getattr(sys.modules["earthdata"], error)
    with pytest.raises(cls, match=match) as info:
        lam["handler"]({})
    assert stored(boto) == {}
    out = capsys.readouterr()
    assert_no_secret(caplog.text + out.out + out.err + str(info.value) + repr(info.value))
    assert "failed:" in caplog.text  # the failure is logged, not silent


def test_wrong_password_is_a_clear_401(
    lam: dict[str, Any], boto: Any, earthdata: Earthdata, caplog: Any, capsys: Any
) -> None:
    boto("secretsmanager").put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps({"username": USERNAME, "password": "wrong-" + PASSWORD})
    )
    failure(lam, boto, caplog, capsys, "CredentialsRejected", r"login: .* HTTP 401; Earthdata Login rejected")
    assert len(earthdata.state.origins) == 1  # a rejected password is never retried


def test_persistent_500_gives_up(
    lam: dict[str, Any], boto: Any, earthdata: Earthdata, caplog: Any, capsys: Any
) -> None:
    earthdata.state.fail_first = 99
    failure(lam, boto, caplog, capsys, "EndpointError", r"credentials: 127\.0\.0\.1:\d+ HTTP 500 after 3 attempts")
    assert earthdata.state.credential_gets == 3


def test_slow_answer_times_out(lam: dict[str, Any], boto: Any, earthdata: Earthdata, caplog: Any, capsys: Any) -> None:
    earthdata.state.delay = 1.0
    failure(lam, boto, caplog, capsys, "EndpointError", r"credentials: .* timed out after 3 attempts")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html>maintenance</html>", r"not JSON \(24 bytes\)"),
        (
            json.dumps({"accessKeyId": "A", "expiration": "2026-11-20T00:00:00+00:00"}).encode(),
            "lacks non-empty string field\\(s\\): secretAccessKey, sessionToken",
        ),
        (json.dumps({**ANSWER, "expiration": "tomorrow"}).encode(), "'tomorrow' is not an ISO date-time"),
        (b"[]", "a JSON list, expected an object"),
    ],
)
def test_malformed_answer(
    lam: dict[str, Any], boto: Any, earthdata: Earthdata, caplog: Any, capsys: Any, body: bytes, match: str
) -> None:
    earthdata.state.body = body
    failure(lam, boto, caplog, capsys, "MalformedAnswer", match)


def test_missing_secret(lam: dict[str, Any], boto: Any, caplog: Any, capsys: Any) -> None:
    boto("secretsmanager").delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)
    failure(
        lam,
        boto,
        caplog,
        capsys,
        "SecretError",
        "secret /confluence-test/earthdata-login not found .* put-secret-value",
    )


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("not json", "is not a JSON object"),
        (json.dumps({"username": USERNAME}), r"needs non-empty 'username' and 'password' \(has: \['username'\]\)"),
        (json.dumps({"username": "SET-ME", "password": "generated"}), "still holds the placeholder"),
    ],
)
def test_unusable_secret(lam: dict[str, Any], boto: Any, caplog: Any, capsys: Any, value: str, match: str) -> None:
    boto("secretsmanager").put_secret_value(SecretId=SECRET_ID, SecretString=value)
    failure(lam, boto, caplog, capsys, "SecretError", match)


def test_put_failing_midway_is_reported(lam: dict[str, Any], boto: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    module = lam["module"]
    original = module.client
    real = original("ssm")

    class FailsOnToken:
        def __getattr__(self, name: str) -> Any:  # everything else (the renewal lock) is the real client
            return getattr(real, name)

        def put_parameter(self, **kwargs: Any) -> Any:
            if kwargs["Name"].endswith("s3_creds_token"):
                raise module.ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "PutParameter")
            return real.put_parameter(**kwargs)

    monkeypatch.setattr(module, "client", lambda service: FailsOnToken() if service == "ssm" else original(service))
    with pytest.raises(module.ParameterWriteError) as info:
        module.renew(module.Settings.from_env(os.environ))
    message = str(info.value)
    assert "writing /confluence-test/s3_creds_token failed (InternalServerError: boom)" in message
    assert "already overwritten: /confluence-test/s3_creds_key, /confluence-test/s3_creds_secret" in message
    # The expiration (written last) still names the old set, so readers are not told the mix is fresh.
    assert NAMES[3] not in stored(boto)


def test_disable_keeps_the_other_fields(lam: dict[str, Any], boto: Any) -> None:
    scheduler = boto("scheduler")
    target = {
        "Arn": "arn:aws:lambda:us-west-2:123456789012:function:confluence-test-renew",
        "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
        "Input": '{"action": "renew"}',
        "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 600},
        "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-west-2:123456789012:dlq"},
    }
    scheduler.create_schedule(
        Name="confluence-test-renew",
        ScheduleExpression="rate(50 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
        State="ENABLED",
        Description="renew PO.DAAC credentials",
    )
    assert lam["handler"]({"action": "disable"}) == {
        "schedule": "confluence-test-renew",
        "group": "default",
        "state": "DISABLED",
    }
    after = scheduler.get_schedule(Name="confluence-test-renew")
    assert after["State"] == "DISABLED"
    assert after["ScheduleExpression"] == "rate(50 minutes)"
    assert after["Target"] == target
    assert after["Description"] == "renew PO.DAAC credentials"
    assert after["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert stored(boto) == {}  # disabling never touches the credentials


def test_disable_missing_schedule(lam: dict[str, Any]) -> None:
    with pytest.raises(lam["module"].ScheduleError, match="cannot disable schedule default/confluence-test-renew"):
        lam["handler"]({"action": "disable"})


def test_unknown_action(lam: dict[str, Any]) -> None:
    with pytest.raises(lam["module"].RenewError, match="unknown action 'rotate'"):
        lam["handler"]({"action": "rotate"})


# -- one renewal at a time (no reserved concurrency) -----------------------------------------------------------

LOCK = f"{PREFIX}renew/lock"


def test_a_renewal_in_progress_makes_a_second_one_stop_without_writing(lam: dict[str, Any], boto: Any) -> None:
    ssm = boto("ssm")
    held = json.dumps({"until": 4102444800})  # 2100: held by a renewal still running
    ssm.put_parameter(Name=LOCK, Value=held, Type="String")
    assert lam["handler"]({"action": "renew"}) == {"skipped": "another renewal is in progress", "lock": LOCK}
    assert stored(boto) == {}
    assert ssm.get_parameter(Name=LOCK)["Parameter"]["Value"] == held


def test_a_lock_left_by_a_dead_renewal_is_taken_over_and_released(lam: dict[str, Any], boto: Any) -> None:
    ssm = boto("ssm")
    ssm.put_parameter(Name=LOCK, Value=json.dumps({"until": 1}), Type="String")
    assert lam["handler"]({"action": "renew"})["parameters"] == NAMES
    assert ssm.get_parameters(Names=[LOCK])["InvalidParameters"] == [LOCK]


def test_a_failed_renewal_releases_the_lock(lam: dict[str, Any], boto: Any) -> None:
    boto("secretsmanager").put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps({"username": USERNAME, "password": "wrong-" + PASSWORD})
    )
    with pytest.raises(Exception, match="HTTP 401"):
        lam["handler"]({"action": "renew"})
    assert boto("ssm").get_parameters(Names=[LOCK])["InvalidParameters"] == [LOCK]


def test_debug_logging_everywhere_never_shows_a_secret(
    lam: dict[str, Any], boto: Any, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    # GIVEN the function's log at DEBUG (AWS_LAMBDA_LOG_LEVEL=DEBUG) and botocore's request logging asked for too
    caplog.set_level("DEBUG")
    caplog.set_level("DEBUG", logger="botocore")
    # WHEN it renews, and some library then logs a secret it was handed
    result = lam["handler"]({"action": "renew"})
    logging.getLogger("somelibrary").warning("posting credentials=%s for %s", PASSWORD, USERNAME)
    # THEN the renewal is logged, the SDK logged no request or response body, and the secret is masked
    out = capsys.readouterr()
    assert "stored credentials expiring" in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("botocore") and r.levelno < logging.WARNING]
    assert f"posting credentials=*** for {USERNAME}" in caplog.text
    assert_no_secret(caplog.text + out.out + out.err + json.dumps(result))


@pytest.mark.parametrize(
    ("location", "hosts", "match"),
    [
        (
            "http://urs.earthdata.nasa.gov/oauth/authorize",
            "urs.earthdata.nasa.gov",
            r"refusing to send the Earthdata password to http URL urs\.earthdata\.nasa\.gov: https only",
        ),
        (
            "https://login.example.com/oauth/authorize",
            "urs.earthdata.nasa.gov",
            r"refusing to send the Earthdata password to login\.example\.com: not an Earthdata Login host "
            r"\(urs\.earthdata\.nasa\.gov\)",
        ),
    ],
)
def test_the_password_goes_only_to_an_earthdata_host_over_https(
    lam: dict[str, Any],
    earthdata: Earthdata,
    monkeypatch: pytest.MonkeyPatch,
    caplog: Any,
    location: str,
    hosts: str,
    match: str,
) -> None:
    # GIVEN an endpoint whose redirect points somewhere else than Earthdata Login over https
    earthdata.state.login_location = location
    monkeypatch.setenv("RENEW_LOGIN_HOSTS", hosts)
    # WHEN the function renews, THEN it refuses before posting anything
    with pytest.raises(Exception, match=match) as raised:
        lam["handler"]({"action": "renew"})
    assert type(raised.value).__name__ == "EndpointError"
    assert earthdata.state.origins == []
