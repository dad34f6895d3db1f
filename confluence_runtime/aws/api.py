"""The only module that talks to boto3.

Clients are never created at import: :func:`client` builds one from explicit options or the standard AWS
environment variables (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_BATCH``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_PROFILE``), so the same code runs against AWS, a moto server or LocalStack.

boto3 and botocore are imported inside the functions that use them, here and nowhere else: every other module
imports this one at the top, and still ``confluence-submit --help``, ``plan`` and a config error never pay for
loading the SDK (a third of a second, before any AWS call is due).

One retry layer: botocore makes exactly one attempt per call (``total_max_attempts: 1``) and every call goes
through a :class:`~confluence_runtime.aws.pacing.Pacer`, which paces it per operation, retries by the error code
:func:`classify` reads, and gives up at the call's deadline (``AwsOptions.deadline``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import AwsError, NoAccessError, UnknownRegionError
from .pacing import DEFAULT_DEADLINE, AmbiguousFailure, GaveUp, Kind, Pacer

DEFAULT_REGION = "us-west-2"
DESCRIBE_CHUNK = 100  # DescribeJobs takes at most 100 job ids per call
THROTTLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
    }
)
# Refused before any work was done: safe to send again, whatever the operation.
TRANSIENT_CODES = frozenset(
    {"ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "PriorRequestNotComplete"}
)
TRANSIENT_STATUS = frozenset({502, 503, 504})
SUBMIT_RATE = 40.0  # SubmitJob per second by default: below AWS's 50 per account, room for other submitters
DEFAULT_RATE = 20.0  # any other operation (AWS does not publish most per-operation Batch limits)


@dataclass(frozen=True)
class AwsOptions:
    """Where to send requests; ``None`` means "whatever boto3 resolves from the environment"."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    deadline: float = DEFAULT_DEADLINE  # seconds one call may take, retries included

    @property
    def resolved_region(self) -> str:
        return self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


class Operation:
    """One operation of a :class:`Client` (``s3.get_object``). It is not callable: it runs only through
    :func:`call` or :func:`call_write`, paced, retried in one place and under the client's deadline."""

    __slots__ = ("deadline", "method")

    def __init__(self, method: Callable[..., Any], deadline: float) -> None:
        self.method = method
        self.deadline = deadline


class Client:
    """An AWS client for the rest of the runtime: each attribute is an :class:`Operation` for :func:`call`."""

    def __init__(self, sdk_client: Any, deadline: float) -> None:
        self._sdk = sdk_client
        self._deadline = deadline

    def __getattr__(self, name: str) -> Operation:
        if name.startswith("_"):
            raise AttributeError(name)
        return Operation(getattr(self._sdk, name), self._deadline)


def client(service: str, options: AwsOptions | None = None, *, max_pool: int = 20) -> Client:
    """A client of ``service`` whose operations run only through :func:`call` / :func:`call_write`."""
    options = options or AwsOptions()
    return Client(_sdk_client(service, options, max_pool=max_pool), options.deadline)


def _sdk_client(service: str, options: AwsOptions | None = None, *, max_pool: int = 20) -> Any:
    """A boto3 client that makes one attempt per call: retrying is the :class:`Pacer`'s job, and only its."""
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError

    options = options or AwsOptions()
    config = BotoConfig(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max_pool,
        connect_timeout=5,
        read_timeout=min(30.0, options.deadline),
    )
    session = _session(options)
    region = region_in_use(options, session)[0]
    if not (options.endpoint_url or _endpoint_from_environment(service)):
        check_region(region)
    try:
        return session.client(
            service,
            region_name=region,
            endpoint_url=options.endpoint_url,
            config=config,
        )
    except BotoCoreError as e:
        raise AwsError(f"cannot set up an AWS {service} client: {e}") from e


def _session(options: AwsOptions) -> Any:
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.session.Session(profile_name=options.profile)
        session.region_name  # noqa: B018 - reads the profile now: AWS_PROFILE naming no profile fails here, by name
        return session
    except ProfileNotFound as e:
        name = options.profile or e.kwargs.get("profile") or os.environ.get("AWS_PROFILE")
        raise NoAccessError(
            f"AWS profile {name!r} is not configured (see ~/.aws/config, or `aws configure list-profiles`)"
        ) from e


def _endpoint_from_environment(service: str) -> str | None:
    """An endpoint boto3 takes from the environment (a moto server, LocalStack): any region name goes there."""
    specific = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return os.environ.get(specific) or os.environ.get("AWS_ENDPOINT_URL")


def known_regions() -> tuple[str, ...]:
    """Every region of every partition the installed botocore knows (its partitions data, as the SDK resolves
    endpoints from it), without the partitions' ``*-global`` pseudo-regions."""
    import botocore.session

    data = botocore.session.get_session().get_data("partitions")
    return tuple(
        sorted(name for p in data["partitions"] for name in p.get("regions", {}) if not name.endswith("-global"))
    )


def check_region(region: str) -> None:
    """Refuse a region name no partition has before any request: its endpoint host would not resolve, and every
    retry would fail the same way."""
    regions = known_regions()
    if region in regions:
        return
    close = difflib.get_close_matches(region, regions, n=1, cutoff=0.6)
    error = UnknownRegionError(f"unknown AWS region {region!r}" + (f"; did you mean {close[0]}?" if close else ""))
    error.hint = (
        "pass --region (or set AWS_REGION) to one of the regions botocore knows; a region newer than the installed "
        "botocore needs `pip install -U botocore`"
    )
    raise error


def region_in_use(options: AwsOptions, session: Any = None) -> tuple[str, str]:
    """The region requests go to and where it came from (the option, the environment or profile, or the
    default), so a command can say which region it used when none was configured."""
    if options.region:
        return options.region, "option"
    configured = os.environ.get("AWS_REGION") or (session or _session(options)).region_name
    if configured:
        return str(configured), "the AWS environment/profile"
    return DEFAULT_REGION, "default"


def caller_account(options: AwsOptions) -> str:
    """The account the credentials act in (STS GetCallerIdentity), recorded in the run ledger's header."""
    answer = call("GetCallerIdentity", client("sts", options).get_caller_identity)
    return str(answer["Account"])


def access_problem(error: BaseException | None) -> str | None:
    """One line saying why AWS cannot be asked at all (no credentials, no such profile, an endpoint that does not
    answer), or None when ``error`` (or what it was raised from) is something else."""
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    # The retry layer's detail says how long it tried (attempts, deadline); keep it in the one line.
    tried = error.detail if isinstance(error, GaveUp) else None
    while error is not None:
        if isinstance(error, ProfileNotFound):
            return f"AWS profile not configured: {error}"
        if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
            return (
                "no AWS credentials found: pass --profile NAME (after `aws configure` or `aws sso login`) or set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
            return f"cannot reach AWS: {tried or error}"
        if isinstance(error, NoRegionError):
            return "no AWS region: pass --region or set AWS_REGION"
        error = error.__cause__
    return None


def error_code(error: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return type(error).__name__


def service_error_code(error: BaseException) -> str:
    """The AWS error code behind ``error``: the retry layer's error carries the SDK's as its cause."""
    from botocore.exceptions import ClientError

    found: BaseException | None = error
    while found is not None and not isinstance(found, ClientError):
        found = found.__cause__
    return error_code(found if found is not None else error)


def classify(error: BaseException) -> Kind:
    """What an exception of one attempt means for the next: by AWS's error code first, then the HTTP status."""
    from botocore.exceptions import ClientError, EndpointConnectionError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(error, ClientError):
        code = error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in THROTTLE_CODES or status == 429:
            return Kind.THROTTLED
        if code in TRANSIENT_CODES or status in TRANSIENT_STATUS:
            return Kind.TRANSIENT
        # A 500 (InternalError, ServerException) may come after the request took effect.
        return Kind.AMBIGUOUS if status >= 500 else Kind.FATAL
    # Nothing was sent and nobody answers: refused, or the host name does not resolve (botocore raises exactly
    # this class for both). A wrong endpoint or region: retried only briefly.
    if type(error) is EndpointConnectionError:
        return Kind.UNREACHABLE
    # Nothing was sent: the connection could not be made (connect timeout, TLS or proxy handshake).
    if isinstance(error, BotoConnectionError):
        return Kind.TRANSIENT
    # Sent, then the reply was lost (read timeout, reset, closed): AWS may have applied it.
    if isinstance(error, HTTPClientError):
        return Kind.AMBIGUOUS
    # Missing credentials, a bad parameter, an unknown region: no retry will fix them.
    return Kind.FATAL


def is_retryable(error: BaseException) -> bool:
    return classify(error) is not Kind.FATAL


def pacer(options: AwsOptions | None = None, rates: dict[str, float] | None = None) -> Pacer:
    """The retry layer for one set of clients: per-operation rates, the options' deadline per call."""
    from botocore.exceptions import BotoCoreError, ClientError

    options = options or AwsOptions()
    return Pacer(
        classify,
        describe_error,
        catch=(ClientError, BotoCoreError),
        rates={"SubmitJob": SUBMIT_RATE, **(rates or {})},
        default_rate=DEFAULT_RATE,
        deadline=options.deadline,
    )


_shared: list[Pacer] = []


def _shared_pacer() -> Pacer:
    """One retry layer for the module-level :func:`call`s of a process (built on first use, not at import)."""
    if not _shared:
        _shared.append(pacer())
    return _shared[0]


def describe_error(error: BaseException) -> str:
    from botocore.exceptions import ClientError

    if isinstance(error, (GaveUp, AmbiguousFailure)):
        return error.detail
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(error) or type(error).__name__


def call(operation: str, fn: Operation, /, **kwargs: Any) -> Any:
    """Call one idempotent AWS operation through the process's retry layer; failures raise AwsError.

    For a call that must not be repeated blindly, use :meth:`Pacer.call` with ``idempotent=False``.
    """
    method = fn.method
    return _shared_pacer().call(operation, lambda: method(**kwargs), deadline=fn.deadline)


def call_write(operation: str, fn: Operation, /, **kwargs: Any) -> Any:
    """As :func:`call`, for a write that must not be repeated blindly (a conditional PutObject whose reply was lost
    may have been applied): throttling and failures before sending are retried, a maybe-applied failure raises
    :class:`AmbiguousFailure` for the caller to resolve by reading back."""
    method = fn.method
    return _shared_pacer().call(operation, lambda: method(**kwargs), deadline=fn.deadline, idempotent=False)


def fargate_vcpu_quotas(options: AwsOptions | None, codes: Sequence[str]) -> dict[str, float | str]:
    """The account's Fargate vCPU quotas (Service Quotas, service code ``fargate``): code -> vCPUs, or why it
    could not be read (permissions, an endpoint without Service Quotas) so the caller can say so."""
    quotas = client("service-quotas", options)
    found: dict[str, float | str] = {}
    for code in codes:
        try:
            answer = call("GetServiceQuota", quotas.get_service_quota, ServiceCode="fargate", QuotaCode=code)
            found[code] = float(answer["Quota"]["Value"])
        except AwsError as e:
            found[code] = describe_error(e)
    return found


class Batch:
    """Thin AWS Batch wrapper: the calls the runtime makes, chunked and paginated as the API requires."""

    def __init__(
        self, options: AwsOptions | None = None, *, max_pool: int = 20, rates: dict[str, float] | None = None
    ) -> None:
        self.options = options or AwsOptions()
        self._client = _sdk_client("batch", self.options, max_pool=max_pool)
        self.pacer = pacer(self.options, rates)
        self.calls: dict[str, int] = {}  # operation -> calls made (each may take several attempts: pacer.counts)

    def _count(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def _call(self, operation: str, fn: Any, /, **kwargs: Any) -> Any:
        return self.pacer.call(operation, lambda: fn(**kwargs))

    def submit_job(self, request: dict[str, Any]) -> str:
        """Submit one job. SubmitJob is not idempotent: a reply lost after sending raises
        :class:`~confluence_runtime.aws.pacing.AmbiguousFailure` instead of a blind second submission."""
        self._count("SubmitJob")
        answer = self.pacer.call(
            "SubmitJob", lambda: self._client.submit_job(**request), idempotent=False, what=request["jobName"]
        )
        return str(answer["jobId"])

    def describe_jobs(self, job_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(job_ids))
        jobs: list[dict[str, Any]] = []
        for start in range(0, len(ids), DESCRIBE_CHUNK):
            self._count("DescribeJobs")
            chunk = ids[start : start + DESCRIBE_CHUNK]
            jobs.extend(self._call("DescribeJobs", self._client.describe_jobs, jobs=chunk)["jobs"])
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
            page = self._call("ListJobs", self._client.list_jobs, **kwargs)
            yield from page.get("jobSummaryList", [])
            token = page.get("nextToken")
            if not token:
                return
            kwargs["nextToken"] = token

    def jobs_named(
        self, prefix: str, queues: Iterable[str], names: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """The runtime's one lookup of what AWS accepted: every parent job (plain job or array parent, any status)
        whose name starts with ``prefix`` in ``queues``, oldest first; only those named in ``names`` when given.

        ListJobs with a ``JOB_NAME`` filter, paged: AWS: "If the filters parameter is specified, the jobStatus
        parameter is ignored and jobs with any status are returned"; without a filter or a status it lists only
        RUNNING jobs, so a queued or finished job would be missed and submitted again. The filter matches a
        prefix ("If the value ends with an asterisk (*), the filter matches any job name that begins with the
        string before the '*'") and is case-insensitive, so names are compared exactly here. Run, resume,
        retry-failed and both supervisors look jobs up through this method and nothing else."""
        wanted = set(names) if names is not None else None
        found: dict[str, dict[str, Any]] = {}
        for queue in dict.fromkeys(queues):
            if not queue:
                continue
            for summary in self.list_jobs(job_queue=queue, name_prefix=prefix):
                # Array children never show at queue level in AWS; an emulator that lists them must not confuse us.
                if (summary.get("arrayProperties") or {}).get("index") is not None:
                    continue
                name = str(summary.get("jobName", ""))
                if not name.startswith(prefix) or (wanted is not None and name not in wanted):
                    continue
                found[str(summary["jobId"])] = summary
        return sorted(found.values(), key=lambda s: (int(s.get("createdAt") or 0), str(s["jobId"])))

    def cancel_job(self, job_id: str, reason: str) -> None:
        self._count("CancelJob")
        self._call("CancelJob", self._client.cancel_job, jobId=job_id, reason=reason)

    def terminate_job(self, job_id: str, reason: str) -> None:
        self._count("TerminateJob")
        self._call("TerminateJob", self._client.terminate_job, jobId=job_id, reason=reason)

    def describe_job_queues(self, names: Sequence[str]) -> list[dict[str, Any]]:
        self._count("DescribeJobQueues")
        answer = self._call("DescribeJobQueues", self._client.describe_job_queues, jobQueues=list(names))
        return list(answer["jobQueues"])

    def describe_compute_environments(self, names: Sequence[str]) -> list[dict[str, Any]]:
        self._count("DescribeComputeEnvironments")
        answer = self._call(
            "DescribeComputeEnvironments", self._client.describe_compute_environments, computeEnvironments=list(names)
        )
        return list(answer["computeEnvironments"])

    def describe_consumable_resource(self, name: str) -> dict[str, Any]:
        """totalQuantity, inUseQuantity, availableQuantity and resourceType of one consumable resource."""
        self._count("DescribeConsumableResource")
        return dict(
            self._call("DescribeConsumableResource", self._client.describe_consumable_resource, consumableResource=name)
        )

    def update_consumable_resource(self, name: str, quantity: int, operation: str = "SET") -> int:
        """SET, ADD or REMOVE units (allowed while jobs hold them); the new totalQuantity."""
        self._count("UpdateConsumableResource")
        answer = self._call(
            "UpdateConsumableResource",
            self._client.update_consumable_resource,
            consumableResource=name,
            operation=operation,
            quantity=quantity,
        )
        return int(answer["totalQuantity"])

    def list_jobs_by_consumable_resource(self, name: str) -> list[dict[str, Any]]:
        """The jobs that hold or wait for a consumable resource (every page)."""
        kwargs: dict[str, Any] = {"consumableResource": name}
        jobs: list[dict[str, Any]] = []
        while True:
            self._count("ListJobsByConsumableResource")
            page = self._call("ListJobsByConsumableResource", self._client.list_jobs_by_consumable_resource, **kwargs)
            jobs.extend(page.get("jobs", []))
            if not page.get("nextToken"):
                return jobs
            kwargs["nextToken"] = page["nextToken"]

    def get_job_queue_snapshot(self, queue: str) -> dict[str, Any]:
        """The first 100 RUNNABLE jobs of a queue in dispatch order (``frontOfQueue.jobs``: jobArn and
        earliestTimeAtPosition)."""
        self._count("GetJobQueueSnapshot")
        return dict(self._call("GetJobQueueSnapshot", self._client.get_job_queue_snapshot, jobQueue=queue))

    def describe_job_definitions(self, names: Sequence[str]) -> list[dict[str, Any]]:
        self._count("DescribeJobDefinitions")
        result = self._call(
            "DescribeJobDefinitions",
            self._client.describe_job_definitions,
            jobDefinitions=list(names),
            status="ACTIVE",
        )
        return list(result["jobDefinitions"])


# --------------------------------------------------------------------------------------------------------------
# Paced facades of the single calls the rest of the runtime makes


def read_object(s3: Client, bucket: str, key: str) -> bytes:
    """The body of ``s3://bucket/key`` (S3 GetObject)."""
    answer = call("GetObject", s3.get_object, Bucket=bucket, Key=key)
    return bytes(answer["Body"].read())


def get_parameter(ssm: Client, name: str, *, decrypt: bool = False) -> str:
    """The value of an SSM parameter (SSM GetParameter)."""
    answer = call("GetParameter", ssm.get_parameter, Name=name, WithDecryption=decrypt)
    return str(answer["Parameter"]["Value"])


def publish(sns: Client, topic_arn: str, subject: str, message: str) -> None:
    """Publish one message to an SNS topic; SNS keeps subjects to 100 characters. A retried publish whose reply
    was lost may deliver the message twice: subscribers get it at least once."""
    call("Publish", sns.publish, TopicArn=topic_arn, Subject=subject[:100], Message=message)


# --------------------------------------------------------------------------------------------------------------
# Provenance: what an image tag and an S3 object were when a run started

# ECR: "REGISTRY_ID.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG" or ".../REPOSITORY@sha256:DIGEST".
ECR_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")


def parse_ecr_image(image: str) -> tuple[str, str, str, str] | None:
    """``(registry_id, region, repository, tag_or_digest)`` of an image in a private ECR registry; None for any
    other registry (Docker Hub, ECR Public, a local name), whose digest this tool does not ask for."""
    host, _, rest = image.partition("/")
    parts = host.split(".")
    if not rest or len(parts) < 6 or parts[1:3] != ["dkr", "ecr"] or not host.endswith(ECR_HOST_SUFFIXES):
        return None
    if "@" in rest:
        repository, _, reference = rest.partition("@")
    else:
        repository, _, reference = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
    return parts[0], parts[3], repository, reference


def image_digest(options: AwsOptions | None, image: str) -> tuple[str | None, str]:
    """The ``sha256:`` digest an image reference names now, and where it came from (or why it is unknown).

    ECR DescribeImages answers a tag with the image's ``imageDigest``; a reference that already names a digest
    needs no call. The answer is data about the moment it was asked: a mutable tag may move later."""
    parsed = parse_ecr_image(image)
    if parsed is None:
        if "@sha256:" in image:
            return image.rsplit("@", 1)[1], "named in the image reference"
        return None, "not in a private ECR registry: its digest is not looked up"
    registry, _, repository, reference = parsed
    if reference.startswith("sha256:"):
        return reference, "named in the image reference"
    ecr = client("ecr", options)
    try:
        answer = call(
            "DescribeImages",
            ecr.describe_images,
            registryId=registry,
            repositoryName=repository,
            imageIds=[{"imageTag": reference}],
        )
    except AwsError as e:
        return None, f"ECR DescribeImages: {describe_error(e)}"
    details = answer.get("imageDetails") or []
    if not details:
        return None, f"ECR holds no image tagged {reference} in {repository}"
    return str(details[0]["imageDigest"]), "ECR DescribeImages"


def s3_object(options: AwsOptions | None, url: str) -> tuple[bytes, str | None, str]:
    """The body of ``s3://BUCKET/KEY``, its version id (None when the bucket is not versioned) and its ETag."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    s3 = client("s3", options)
    answer = call("GetObject", s3.get_object, Bucket=bucket, Key=key)
    version = answer.get("VersionId")
    return answer["Body"].read(), (None if version in (None, "null") else str(version)), str(answer.get("ETag", ""))
