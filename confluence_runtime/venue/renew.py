"""Control the credential-renew Lambda and its schedule: enable, disable, invoke once, status, simulate."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..aws.api import AwsOptions, Client, call, client, error_code
from ..errors import AwsError, RenewError
from ..names import (
    PODAAC_BUCKETS,
    RENEW_PUBLISHED,
    RENEW_SCHEDULE_GROUP,
    credential_parameters,
    renew_function,
    renew_published_path,
    renew_schedule,
    simulate_session,
)

SESSION_SECONDS = 43_200  # the original `-s`: a 12-hour session, long enough for a test run
# AssumeRole from role credentials is role chaining, which AWS limits to one hour.
ROLE_SESSION_SECONDS = 3_600
# update_schedule fields get_schedule returns; the rest (Arn, dates, ResponseMetadata) is read-only.
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


@dataclass(frozen=True)
class RenewNames:
    """Where the renew machinery of one deployment lives."""

    function_name: str
    schedule_name: str
    schedule_group: str
    credential_parameters: tuple[str, str, str, str]  # key, secret, token, expiration
    kms_key_id: str | None = None
    published: bool = False  # False: conventional names, the stack's parameters were not found

    @property
    def expiration_parameter(self) -> str:
        return self.credential_parameters[3]


@dataclass(frozen=True)
class ScheduleState:
    name: str
    group: str
    state: str
    expression: str
    previous_state: str | None = None


@dataclass(frozen=True)
class RenewResult:
    function_name: str
    expiration: str
    parameters: tuple[str, ...]
    schedule: ScheduleState | None = None


@dataclass(frozen=True)
class RenewStatus:
    schedule: ScheduleState | None
    expiration: str | None
    names: RenewNames


@dataclass(frozen=True)
class SimulatedCredentials:
    expiration: str
    parameters: tuple[str, ...]
    kms_key_id: str
    source: str = ""  # what was stored: "a federation token" or "a session of role ARN"
    seconds: int = SESSION_SECONDS


def simulate_policy(buckets: str = PODAAC_BUCKETS) -> dict[str, Any]:
    """The session policy of `credentials simulate`: read the PO.DAAC buckets, nothing else.

    A session's permissions are the intersection of the caller's and this policy, so the stored credentials (which
    every ``s3_credentials`` job can read) cannot do what the operator can beyond reading those buckets.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadPodaacObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{buckets}/*",
            },
            {
                "Sid": "ListPodaacBuckets",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": f"arn:aws:s3:::{buckets}",
            },
        ],
    }


def names_path(prefix: str) -> str:
    return renew_published_path(prefix)


def conventional_names(prefix: str) -> RenewNames:
    """What stacks/renew.py deploys; used when its published parameters cannot be read."""
    params = tuple(credential_parameters(prefix).values())
    return RenewNames(
        renew_function(prefix),
        renew_schedule(prefix),
        RENEW_SCHEDULE_GROUP,
        params,  # type: ignore[arg-type]
    )


def resolve_names(options: AwsOptions, prefix: str) -> RenewNames:
    """Read /{prefix}/renew/{function-name,schedule-name,schedule-group,kms-key-id,credential-parameters}."""
    fallback = conventional_names(prefix)
    base = names_path(prefix)
    ssm = client("ssm", options)
    found = call("GetParameters", ssm.get_parameters, Names=[base + k for k in RENEW_PUBLISHED])
    values = {p["Name"][len(base) :]: p["Value"] for p in found.get("Parameters", [])}
    parameters = fallback.credential_parameters
    if "credential-parameters" in values:
        parameters = _credential_parameters(values["credential-parameters"], base)
    return RenewNames(
        function_name=values.get("function-name", fallback.function_name),
        schedule_name=values.get("schedule-name", fallback.schedule_name),
        schedule_group=values.get("schedule-group", fallback.schedule_group),
        credential_parameters=parameters,
        kms_key_id=values.get("kms-key-id"),
        published=bool(values),
    )


def _credential_parameters(text: str, base: str) -> tuple[str, str, str, str]:
    try:
        data = json.loads(text)
        return (data["key"], data["secret"], data["token"], data["expiration"])
    except (ValueError, KeyError, TypeError) as e:
        raise RenewError(
            f"{base}credential-parameters is not JSON with key, secret, token, expiration; redeploy the stack"
        ) from e


def update_request(schedule: Mapping[str, Any], state: str) -> dict[str, Any]:
    """update_schedule replaces the whole schedule, so every field get_schedule returned is sent back."""
    request = {k: schedule[k] for k in SCHEDULE_FIELDS if schedule.get(k) is not None}
    request["State"] = state
    return request


def _get_schedule(scheduler: Client, names: RenewNames) -> dict[str, Any]:
    try:
        return dict(
            call("GetSchedule", scheduler.get_schedule, Name=names.schedule_name, GroupName=names.schedule_group)
        )
    except AwsError as e:
        if e.__cause__ is not None and error_code(e.__cause__) == "ResourceNotFoundException":
            where = (
                "" if names.published else " (conventional name: the stack's /{prefix}/renew/ parameters are absent)"
            )
            raise RenewError(
                f"schedule {names.schedule_group}/{names.schedule_name} not found{where}; is the renew stack deployed "
                "for this venue?"
            ) from e
        raise


def set_schedule(options: AwsOptions, names: RenewNames, *, enabled: bool) -> ScheduleState:
    """Enable or disable the schedule, keeping every other field (get_schedule -> update_schedule)."""
    scheduler = client("scheduler", options)
    schedule = _get_schedule(scheduler, names)
    state = "ENABLED" if enabled else "DISABLED"
    call("UpdateSchedule", scheduler.update_schedule, **update_request(schedule, state))
    return ScheduleState(
        names.schedule_name,
        names.schedule_group,
        state,
        str(schedule.get("ScheduleExpression", "")),
        previous_state=schedule.get("State"),
    )


def schedule_state(options: AwsOptions, names: RenewNames) -> ScheduleState:
    schedule = _get_schedule(client("scheduler", options), names)
    return ScheduleState(
        names.schedule_name, names.schedule_group, str(schedule.get("State")), str(schedule.get("ScheduleExpression"))
    )


def parse_invoke_response(function_name: str, response: Mapping[str, Any]) -> RenewResult:
    """Turn a synchronous Invoke answer into a result, or the function's own error message into a RenewError."""
    raw = response["Payload"].read() if hasattr(response.get("Payload"), "read") else response.get("Payload", b"")
    try:
        payload = json.loads(raw or b"null")
    except ValueError:
        payload = None
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else None
        kind = payload.get("errorType") if isinstance(payload, dict) else None
        detail = f"{kind}: {message}" if kind and message else (message or response["FunctionError"])
        raise RenewError(f"{function_name} failed: {detail} (see its CloudWatch log group /aws/lambda/{function_name})")
    if not isinstance(payload, dict) or not isinstance(payload.get("expiration"), str):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise RenewError(f"{function_name} answered without an expiration: {text[:200]}")
    return RenewResult(function_name, payload["expiration"], tuple(payload.get("parameters") or ()))


def invoke_now(options: AwsOptions, names: RenewNames) -> RenewResult:
    """Invoke the function once, synchronously, and report the new credentials' expiration."""
    lam = client("lambda", options)
    response = call(
        "Invoke",
        lam.invoke,
        FunctionName=names.function_name,
        InvocationType="RequestResponse",
        Payload=json.dumps({"action": "renew"}).encode(),
    )
    return parse_invoke_response(names.function_name, response)


def read_expiration(options: AwsOptions, names: RenewNames) -> str | None:
    """The stored credentials' expiration, or None when they were never written."""
    ssm = client("ssm", options)
    try:
        answer = call("GetParameter", ssm.get_parameter, Name=names.expiration_parameter, WithDecryption=True)
    except AwsError as e:
        if e.__cause__ is not None and error_code(e.__cause__) == "ParameterNotFound":
            return None
        raise
    return str(answer["Parameter"]["Value"])


def status(options: AwsOptions, prefix: str) -> RenewStatus:
    names = resolve_names(options, prefix)
    try:
        schedule: ScheduleState | None = schedule_state(options, names)
    except RenewError:
        schedule = None
    return RenewStatus(schedule, read_expiration(options, names), names)


def prepare_run(options: AwsOptions, prefix: str) -> RenewResult:
    """For `run --renew`: fresh credentials now (fails early if Earthdata refuses), then enable the schedule."""
    names = resolve_names(options, prefix)
    result = invoke_now(options, names)
    schedule = set_schedule(options, names, enabled=True)
    return RenewResult(result.function_name, result.expiration, result.parameters, schedule)


def simulate_credentials(
    options: AwsOptions, prefix: str, kms_key_id: str | None = None, role_arn: str | None = None
) -> SimulatedCredentials:
    """The original `-s`, scoped down: store a session that can only read the PO.DAAC buckets in the four
    parameters (never the operator's own session, which every ``s3_credentials`` job could then use).

    An IAM user gets a 12-hour federation token; with ``role_arn`` a one-hour session of that role. Either carries
    :func:`simulate_policy` as its session policy.
    """
    names = resolve_names(options, prefix)
    key = kms_key_id or names.kms_key_id
    if not key:
        raise RenewError(f"no KMS key: {names_path(prefix)}kms-key-id is absent; pass --kms-key-id")
    sts = client("sts", options)
    policy = json.dumps(simulate_policy(), separators=(",", ":"))
    if role_arn:
        source, seconds = f"a session of role {role_arn}", ROLE_SESSION_SECONDS
        answer = call(
            "AssumeRole",
            sts.assume_role,
            RoleArn=role_arn,
            RoleSessionName=simulate_session(prefix),
            Policy=policy,
            DurationSeconds=seconds,
        )
    else:
        source, seconds = "a federation token", SESSION_SECONDS
        try:
            answer = call(
                "GetFederationToken",
                sts.get_federation_token,
                Name=simulate_session(prefix),
                Policy=policy,
                DurationSeconds=seconds,
            )
        except AwsError as e:
            error = RenewError(f"{e} (GetFederationToken needs an IAM user's long-term credentials)")
            error.hint = "with role credentials, pass --role-arn ROLE_YOU_CAN_ASSUME (a one-hour session)"
            raise error from e
    session = answer["Credentials"]
    expiration = session["Expiration"]
    expiration_text = expiration.isoformat() if hasattr(expiration, "isoformat") else str(expiration)
    values = (session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"], expiration_text)
    ssm = client("ssm", options)
    written: list[str] = []
    # Expiration last, as the Lambda does: a new expiration means the other three are already new.
    for name, value in zip(names.credential_parameters, values, strict=True):
        try:
            call(
                "PutParameter",
                ssm.put_parameter,
                Name=name,
                Value=value,
                Type="SecureString",
                KeyId=key,
                Overwrite=True,
            )
        except AwsError as e:
            raise RenewError(f"{e}; already overwritten: {', '.join(written) or 'none'}") from e
        written.append(name)
    return SimulatedCredentials(expiration_text, tuple(written), key, source, seconds)
