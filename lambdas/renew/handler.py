"""The renew Lambda: refresh PO.DAAC's one-hour S3 credentials into four SSM SecureString parameters.

Events:
  * anything without ``action`` (the schedule sends ``{"action": "renew"}``): fetch and store credentials,
    return ``{"expiration": ..., "parameters": [...]}``;
  * ``{"action": "disable"}``: switch this function's own schedule off, keeping every other field (sent by the
    ``disable_renew`` Batch job once the input stage is done).

Environment (set by stacks/renew.py):
  RENEW_SECRET_ID          Secrets Manager secret with JSON {"username", "password"} (Earthdata Login)
  RENEW_KMS_KEY_ID         KMS key encrypting the SecureString parameters
  RENEW_PARAMETER_PREFIX   prefix of the four parameter names, e.g. "/confluence-dev1/" (default "": bare names)
  RENEW_SCHEDULE_NAME      EventBridge Scheduler schedule of this function
  RENEW_SCHEDULE_GROUP     its group (default "default")
  RENEW_ENDPOINT           s3credentials endpoint (default PO.DAAC's)
  RENEW_HTTP_TIMEOUT / RENEW_HTTP_ATTEMPTS / RENEW_HTTP_BACKOFF   per-request timeout (s), attempts, first backoff (s)
  RENEW_LOCK_PARAMETER     String parameter held while a renewal writes (default "{prefix}renew/lock")
  RENEW_LOCK_SECONDS       how long a lock is honoured: longer than the function timeout (default 240)
  RENEW_LOGIN_HOSTS        comma-separated hosts the password may be posted to (default: Earthdata Login's)
  AWS_ENDPOINT_URL         honoured by boto3 itself (tests point it at a moto server)

The operator stores the Earthdata Login after deploying (a file keeps the password out of shell history):
  secret=$(aws ssm get-parameter --name /confluence-dev1/renew/secret-name --query Parameter.Value --output text)
  aws secretsmanager put-secret-value --secret-id "$secret" \
      --secret-string file://earthdata-login.json      # {"username": "...", "password": "..."}

Only the standard library and boto3 (both in the Lambda runtime), so the directory deploys without bundling.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from earthdata import (
    DEFAULT_ENDPOINT,
    LOGIN_HOSTS,
    REDACTOR,
    HttpSettings,
    RenewError,
    TemporaryCredentials,
    fetch_credentials,
)

LOG = logging.getLogger("renew")
LOG.setLevel(logging.INFO)
# botocore's DEBUG lines print request parameters and response bodies by design (the secret's value, the
# parameters' values): whatever level the function's log is set to (AWS_LAMBDA_LOG_LEVEL), the SDK logs warnings
# only. The redaction filter masks any secret the function knows in every other line.
SDK_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


def guard_logs() -> None:
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    REDACTOR.install()
    REDACTOR.install(LOG)


guard_logs()

# The names existing module images read; a venue prefix keeps two venues in one account apart. This directory
# deploys without confluence_runtime: a copy of names.CREDENTIAL_PARAMETERS (tests/renew/test_names.py keeps them
# equal), as is the default schedule group below (names.RENEW_SCHEDULE_GROUP).
DEFAULT_SCHEDULE_GROUP = "default"
PARAMETER_NAMES = ("s3_creds_key", "s3_creds_secret", "s3_creds_token", "s3_creds_expiration")
# What the stack puts in the generated secret until the operator sets the real login.
UNSET_USERNAME = "SET-ME"
# update_schedule fields get_schedule returns; anything else (Arn, dates, ResponseMetadata) is read-only.
SCHEDULE_FIELDS = (
    "Name",
    "GroupName",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "StartDate",
    "EndDate",
    "Description",
    "KmsKeyArn",
    "Target",
    "FlexibleTimeWindow",
    "ActionAfterCompletion",
)


class SecretError(RenewError):
    """The Earthdata Login secret is missing, unreadable or not {"username", "password"}."""


class ParameterWriteError(RenewError):
    """Storing the credentials failed; the message says which parameters were already overwritten."""


class ScheduleError(RenewError):
    """Reading or updating this function's schedule failed."""


@dataclass(frozen=True)
class Settings:
    secret_id: str
    kms_key_id: str
    parameter_prefix: str
    schedule_name: str
    schedule_group: str
    endpoint: str
    http: HttpSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        missing = [k for k in ("RENEW_SECRET_ID", "RENEW_KMS_KEY_ID") if not env.get(k)]
        if missing:
            raise RenewError(f"environment variable(s) not set: {', '.join(missing)} (the stack sets them)")
        return cls(
            secret_id=env["RENEW_SECRET_ID"],
            kms_key_id=env["RENEW_KMS_KEY_ID"],
            parameter_prefix=env.get("RENEW_PARAMETER_PREFIX", ""),
            schedule_name=env.get("RENEW_SCHEDULE_NAME", ""),
            schedule_group=env.get("RENEW_SCHEDULE_GROUP") or DEFAULT_SCHEDULE_GROUP,
            endpoint=env.get("RENEW_ENDPOINT") or DEFAULT_ENDPOINT,
            http=HttpSettings(
                timeout=float(env.get("RENEW_HTTP_TIMEOUT", "10")),
                attempts=int(env.get("RENEW_HTTP_ATTEMPTS", "4")),
                backoff=float(env.get("RENEW_HTTP_BACKOFF", "1")),
                login_hosts=tuple(h.strip() for h in env.get("RENEW_LOGIN_HOSTS", "").split(",") if h.strip())
                or LOGIN_HOSTS,
            ),
        )

    @property
    def lock_parameter(self) -> str:
        return os.environ.get("RENEW_LOCK_PARAMETER") or f"{self.parameter_prefix}renew/lock"

    @property
    def lock_seconds(self) -> float:
        return float(os.environ.get("RENEW_LOCK_SECONDS", "240"))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f"{self.parameter_prefix}{name}" for name in PARAMETER_NAMES)


@functools.cache
def client(service: str) -> Any:
    """Built on first use, not at import; boto3 resolves AWS_ENDPOINT_URL and the region from the environment."""
    return boto3.session.Session().client(
        service, config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20)
    )


def _aws_message(error: BaseException) -> str:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}"
    return f"{type(error).__name__}: {error}"


def read_login(secret_id: str) -> tuple[str, str]:
    """(username, password) from the secret; every failure names the secret and how to fix it."""
    guard_logs()  # before the first call whose answer carries the password
    fix = f"set it with: aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string file://login.json"
    try:
        value = client("secretsmanager").get_secret_value(SecretId=secret_id)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise SecretError(f"secret {secret_id} not found or has no value; {fix}") from e
        raise SecretError(f"cannot read secret {secret_id}: {_aws_message(e)}") from e
    except BotoCoreError as e:
        raise SecretError(f"cannot read secret {secret_id}: {_aws_message(e)}") from e
    try:
        data = json.loads(value.get("SecretString") or "")
    except ValueError:
        data = None
    # The message lists the keys present, never a value.
    if not isinstance(data, dict):
        raise SecretError(f'secret {secret_id} is not a JSON object {{"username", "password"}}; {fix}')
    username, password = data.get("username"), data.get("password")
    if isinstance(password, str):
        REDACTOR.add(password)
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise SecretError(f"secret {secret_id} needs non-empty 'username' and 'password' (has: {sorted(data)}); {fix}")
    if username == UNSET_USERNAME:
        raise SecretError(f"secret {secret_id} still holds the placeholder the stack created; {fix}")
    return username, password


def store_credentials(credentials: TemporaryCredentials, settings: Settings) -> list[str]:
    """Overwrite the four SecureStrings, expiration last so a reader seeing a new expiration sees a complete set."""
    values = (
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
        credentials.expiration,
    )
    ssm = client("ssm")
    written: list[str] = []
    for name, value in zip(settings.parameter_names, values, strict=True):
        try:
            ssm.put_parameter(Name=name, Value=value, Type="SecureString", KeyId=settings.kms_key_id, Overwrite=True)
        except (ClientError, BotoCoreError) as e:
            done = ", ".join(written) if written else "none"
            raise ParameterWriteError(
                f"writing {name} failed ({_aws_message(e)}); already overwritten: {done}. The parameters now mix "
                "old and new credentials until the next successful renew (invoke the function again)"
            ) from e
        written.append(name)
    return written


def acquire_lock(settings: Settings, now: float) -> bool:
    """Create the lock parameter, which only one caller can do (PutParameter with Overwrite=False fails with
    ParameterAlreadyExists). A lock past its time was left by a renewal that died: it is cleared and taken once."""
    ssm, name = client("ssm"), settings.lock_parameter
    for _ in range(2):
        try:
            ssm.put_parameter(
                Name=name, Value=json.dumps({"until": now + settings.lock_seconds}), Type="String", Overwrite=False
            )
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ParameterAlreadyExists":
                raise ParameterWriteError(f"cannot take the renewal lock {name}: {_aws_message(e)}") from e
        try:
            held_until = float(json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])["until"])
        except ClientError:
            held_until = 0.0  # released meanwhile: try again
        except (ValueError, KeyError, TypeError):
            held_until = 0.0  # not ours to understand: treat as stale
        if held_until > now:
            return False
        release_lock(settings)
    return False


def release_lock(settings: Settings) -> None:
    try:
        client("ssm").delete_parameter(Name=settings.lock_parameter)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "ParameterNotFound":
            LOG.warning("could not release the renewal lock %s: %s", settings.lock_parameter, _aws_message(e))


def renew(settings: Settings) -> dict[str, Any]:
    # Two renewals at once (the schedule, `renew now`, Lambda's own retries) would interleave their four writes;
    # without reserved concurrency (new accounts cannot spare it) a lock parameter keeps them apart.
    if not acquire_lock(settings, time.time()):
        LOG.info("another renewal holds %s; this one stops (that one writes a complete set)", settings.lock_parameter)
        return {"skipped": "another renewal is in progress", "lock": settings.lock_parameter}
    try:
        # Everything is fetched and validated before the first write, so a failure leaves the old set intact.
        username, password = read_login(settings.secret_id)
        credentials = fetch_credentials(settings.endpoint, username, password, settings.http)
        written = store_credentials(credentials, settings)
    finally:
        release_lock(settings)
    LOG.info("stored credentials expiring %s in %s", credentials.expiration, ", ".join(written))
    return {"expiration": credentials.expiration, "parameters": written}


def update_request(schedule: Mapping[str, Any], state: str) -> dict[str, Any]:
    """update_schedule replaces the whole schedule, so every field get_schedule returned is sent back."""
    request = {k: schedule[k] for k in SCHEDULE_FIELDS if schedule.get(k) is not None}
    request["State"] = state
    return request


def disable_schedule(settings: Settings) -> dict[str, Any]:
    if not settings.schedule_name:
        raise ScheduleError("RENEW_SCHEDULE_NAME is not set; cannot find this function's schedule")
    scheduler = client("scheduler")
    where = f"schedule {settings.schedule_group}/{settings.schedule_name}"
    try:
        schedule = scheduler.get_schedule(Name=settings.schedule_name, GroupName=settings.schedule_group)
        scheduler.update_schedule(**update_request(schedule, "DISABLED"))
    except (ClientError, BotoCoreError) as e:
        raise ScheduleError(f"cannot disable {where}: {_aws_message(e)}") from e
    LOG.info("disabled %s (was %s)", where, schedule.get("State"))
    return {"schedule": settings.schedule_name, "group": settings.schedule_group, "state": "DISABLED"}


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    guard_logs()  # again: the runtime (or a test) may have changed levels or handlers since import
    action = event.get("action", "renew") if isinstance(event, dict) else "renew"
    try:
        settings = Settings.from_env(os.environ)
        if action == "renew":
            return renew(settings)
        if action == "disable":
            return disable_schedule(settings)
        raise RenewError(f"unknown action {action!r}; expected 'renew' or 'disable'")
    except RenewError as e:
        # Logged before raising so the failure is in the function's log group (and its Errors metric alarms).
        LOG.error("%s failed: %s", action, e)
        raise
