"""The only module that talks to boto3.

Clients are never created at import: :func:`client` builds one from explicit options or the standard AWS
environment variables (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_BATCH``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_PROFILE``), so the same code runs against AWS, a moto server or LocalStack.

boto3 and botocore are imported inside the functions that use them, here and nowhere else: every other module
imports this one at the top, and still ``confluence-submit --help``, ``plan`` and a config error never pay for
loading the SDK (a third of a second, before any AWS call is due).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import AwsError

DEFAULT_REGION = "us-west-2"
DESCRIBE_CHUNK = 100  # DescribeJobs takes at most 100 job ids per call
THROTTLE_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded", "SlowDown"}
)


@dataclass(frozen=True)
class AwsOptions:
    """Where to send requests; ``None`` means "whatever boto3 resolves from the environment"."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    max_attempts: int = 10

    @property
    def resolved_region(self) -> str:
        return self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def client(service: str, options: AwsOptions | None = None, *, max_pool: int = 20) -> Any:
    """A boto3 client with botocore's adaptive retry mode (client-side rate limiting plus backoff on throttling)."""
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError

    options = options or AwsOptions()
    config = BotoConfig(
        retries={"mode": "adaptive", "max_attempts": options.max_attempts},
        max_pool_connections=max_pool,
        connect_timeout=10,
        read_timeout=60,
    )
    try:
        session = boto3.session.Session(profile_name=options.profile)
        return session.client(
            service,
            region_name=options.resolved_region,
            endpoint_url=options.endpoint_url,
            config=config,
        )
    except BotoCoreError as e:  # e.g. a --profile that is not configured
        raise AwsError(f"cannot set up an AWS {service} client: {e}") from e


def error_code(error: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return type(error).__name__


def is_retryable(error: BaseException) -> bool:
    """Throttling and server-side faults are worth another try; a 4xx validation error is not."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(error) in THROTTLE_CODES or status == 429 or status >= 500
    # A dropped connection or a read timeout may pass; missing credentials or a bad parameter never will.
    return isinstance(error, (BotoConnectionError, HTTPClientError))


def describe_error(error: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(error) or type(error).__name__


def call(operation: str, fn: Any, /, **kwargs: Any) -> Any:
    """Call one AWS operation, turning botocore errors (already retried by botocore) into AwsError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as e:
        raise AwsError(f"{operation} failed: {describe_error(e)}") from e


class Batch:
    """Thin AWS Batch wrapper: the calls the runtime makes, chunked and paginated as the API requires."""

    def __init__(self, options: AwsOptions | None = None, *, max_pool: int = 20) -> None:
        self.options = options or AwsOptions()
        self._client = client("batch", self.options, max_pool=max_pool)
        self.calls: dict[str, int] = {}

    def _count(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def submit_job(self, request: dict[str, Any]) -> str:
        """Submit one job; botocore errors propagate so the caller can classify them (see :func:`is_retryable`)."""
        self._count("SubmitJob")
        return str(self._client.submit_job(**request)["jobId"])

    def describe_jobs(self, job_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(job_ids))
        jobs: list[dict[str, Any]] = []
        for start in range(0, len(ids), DESCRIBE_CHUNK):
            self._count("DescribeJobs")
            chunk = ids[start : start + DESCRIBE_CHUNK]
            jobs.extend(call("DescribeJobs", self._client.describe_jobs, jobs=chunk)["jobs"])
        return jobs

    def list_jobs(
        self,
        *,
        job_queue: str | None = None,
        array_job_id: str | None = None,
        status: str | None = None,
        name_prefix: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """ListJobs, paginated. With ``name_prefix`` AWS filters by name (``prefix*``) and ignores ``status``."""
        kwargs: dict[str, Any] = {}
        if job_queue:
            kwargs["jobQueue"] = job_queue
        if array_job_id:
            kwargs["arrayJobId"] = array_job_id
        if name_prefix:
            kwargs["filters"] = [{"name": "JOB_NAME", "values": [f"{name_prefix}*"]}]
        elif status:
            kwargs["jobStatus"] = status
        while True:
            self._count("ListJobs")
            page = call("ListJobs", self._client.list_jobs, **kwargs)
            yield from page.get("jobSummaryList", [])
            token = page.get("nextToken")
            if not token:
                return
            kwargs["nextToken"] = token

    def cancel_job(self, job_id: str, reason: str) -> None:
        self._count("CancelJob")
        call("CancelJob", self._client.cancel_job, jobId=job_id, reason=reason)

    def terminate_job(self, job_id: str, reason: str) -> None:
        self._count("TerminateJob")
        call("TerminateJob", self._client.terminate_job, jobId=job_id, reason=reason)

    def describe_job_queues(self, names: Sequence[str]) -> list[dict[str, Any]]:
        self._count("DescribeJobQueues")
        return list(call("DescribeJobQueues", self._client.describe_job_queues, jobQueues=list(names))["jobQueues"])

    def describe_job_definitions(self, names: Sequence[str]) -> list[dict[str, Any]]:
        self._count("DescribeJobDefinitions")
        result = call(
            "DescribeJobDefinitions",
            self._client.describe_job_definitions,
            jobDefinitions=list(names),
            status="ACTIVE",
        )
        return list(result["jobDefinitions"])

