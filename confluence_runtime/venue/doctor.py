"""``doctor``: a deployed venue checked end to end, one line per check saying what it found.

The emulator and moto cannot show what only a real account shows: whether the stacks published what the runtime
reads, whether a job really reaches SUCCEEDED on each queue and compute kind, whether its log lands where ``logs``
looks, whether a module's secrets and mounts resolve (ECS fails a task whose secret or EFS mount does not), whether
the Fargate and EC2 quotas allow ``max_vcpus``, whether alerts reach a confirmed subscriber, whether Batch events
carry the job's tags (the supervisor's rule matches on them), and whether the ledger bucket honours a conditional
write. Each check here is a small canary or a read; nothing of the venue is changed except what the doctor creates
and removes again (canary jobs, one temporary EventBridge rule and SQS queue, one ledger object) and the answer
about event tags, recorded in the venue's SSM for the supervisor.

The judgments (``judge_*``) are pure; :func:`examine` runs the checks through ``aws/api.py``'s clients.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from .. import names
from ..aws.api import AwsOptions, Batch, call, client, describe_error, error_code
from ..config import Config
from ..errors import AwsError
from ..planning.estimate import QUOTA_ON_DEMAND, QUOTA_SPOT
from ..shellcmd import Arg, shell
from ..states import FINAL, SUCCEEDED

# Service Quotas codes: EC2's vCPU quotas for standard (A, C, D, H, I, M, R, T, Z) instances.
QUOTA_EC2_ON_DEMAND = "L-1216C47A"  # Running On-Demand Standard instances (vCPUs)
QUOTA_EC2_SPOT = "L-34B43A08"  # All Standard Spot Instance Requests (vCPUs)
CANARY_COMMAND = ("true",)  # the harmless command override of a module's canary: only the start matters
EVENT_TAGS_KEY = "event-tags"  # names.supervisor_parameter(prefix, EVENT_TAGS_KEY): "present" or "absent"
LEDGER_BUCKET_KEY = "ledger-bucket"
SUBMITTER_POLICY_KEY = "iam/submitter-policy-arn"
DEFAULT_TIMEOUT = 900.0  # a first Fargate task in a fresh account can take minutes to start


@dataclass(frozen=True)
class Check:
    """One line of the doctor's answer."""

    name: str
    ok: bool | None  # None: could not be checked here (skipped, said why)
    found: str
    fix: tuple[str, ...] = ()  # command lines to paste (shellcmd), each printed on a line of its own

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Canary:
    """A tiny job submitted by the doctor: on a queue with the barrier definition, or on a module's definition."""

    label: str  # the check's name
    queue: str
    definition: str
    command: tuple[str, ...] = ()
    module: str = ""


def passed(checks: Iterable[Check]) -> bool:
    """Exit 0 only when every check passed (a skipped check does not fail the venue, and says why)."""
    return all(c.ok is not False for c in checks)


# --------------------------------------------------------------------------------------------------------------
# Pure judgments


def judge_parameters(prefix: str, found: Mapping[str, str], wanted: Mapping[str, str | None]) -> Check:
    """``wanted``: parameter -> the value this yaml expects (None: any). The Batch stack publishes each module's job
    definition name: one this yaml names and the venue does not (or names otherwise) means the venue was deployed
    from another confluence.yaml, which every run of this one would meet as a SubmitJob refused mid-run."""
    missing = [name for name in wanted if name not in found]
    kinds = sorted({name.removeprefix(f"/{prefix}/").split("/", 1)[0] for name in found})
    other = [
        f"{name} is {found[name]}, not {want}"
        for name, want in wanted.items()
        if name in found and want not in (None, found[name])
    ]
    problems = [f"missing SSM parameters: {', '.join(missing)} (is every stack deployed?)"] if missing else []
    if other:
        problems.append(
            f"the venue was deployed from another confluence.yaml: {'; '.join(other)} (cdk deploy this one)"
        )
    if problems:
        return Check("stacks", False, "; ".join(problems))
    policy = found.get(names.venue_parameter(prefix, SUBMITTER_POLICY_KEY))
    attach = f"; whoever submits runs needs the policy {policy}" if policy else ""
    return Check("stacks", True, f"{len(found)} SSM parameters under /{prefix}/ from {', '.join(kinds)}{attach}")


def judge_canary(label: str, job: Mapping[str, Any] | None, seconds: float) -> Check:
    if job is None:
        return Check(label, False, "the canary job was not found after submission")
    status = str(job.get("status"))
    if status == SUCCEEDED:
        return Check(label, True, f"canary {job.get('jobName')} SUCCEEDED in {seconds:.1f} s")
    if status in FINAL:
        reason = job.get("statusReason") or (job.get("container") or {}).get("reason") or "no reason given"
        return Check(label, False, f"canary {job.get('jobName')} {status}: {reason}")
    return Check(label, False, f"canary {job.get('jobName')} still {status} after {seconds:.0f} s")


def judge_secret(
    module: str, values: Mapping[str, str | None], aws_args: Sequence[Arg] = (), missing: Iterable[str] = ()
) -> Check:
    """``values``: secret name -> its value, or None when it has none; ``missing``: those that do not exist (the
    Batch stack creates each, empty). The answer names the command that fills each empty one (``aws_args``: the
    endpoint, region and profile the doctor was given, which the AWS CLI takes alike), VALUE to replace;
    put-secret-value cannot fill a secret that does not exist."""
    absent = [name for name in values if name in set(missing)]
    if absent:
        return Check(f"secrets {module}", False, f"{', '.join(absent)} does not exist (is every stack deployed?)")
    empty = [name for name, value in values.items() if not value]
    if empty:
        fill = tuple(
            shell(
                "aws", "secretsmanager", "put-secret-value", "--secret-id", name, "--secret-string", "VALUE", *aws_args
            )
            for name in empty
        )
        return Check(f"secrets {module}", False, f"no value in {', '.join(empty)}; put one (VALUE replaced):", fill)
    return Check(f"secrets {module}", True, f"{len(values)} secrets hold a value: {', '.join(values)}")


def judge_quota(label: str, quota: float | str | None, wanted: int) -> Check:
    if isinstance(quota, str):
        return Check(label, False, f"quota not readable ({quota})")
    if quota is None:
        return Check(label, None, "Service Quotas does not answer at this endpoint: not checked")
    if quota < wanted:
        return Check(label, False, f"quota {quota:g} vCPUs < max_vcpus {wanted}: ask for an increase")
    return Check(label, True, f"quota {quota:g} vCPUs >= max_vcpus {wanted}")


def judge_subscribers(topic: str, subscriptions: Sequence[Mapping[str, Any]] | None) -> Check:
    if subscriptions is None:
        return Check("alerts", False, f"topic {topic} does not exist")
    confirmed = [
        s for s in subscriptions if str(s.get("SubscriptionArn", "")) not in ("PendingConfirmation", "Deleted", "")
    ]
    pending = len(subscriptions) - len(confirmed)
    if not confirmed:
        waiting = f" ({pending} waiting for confirmation)" if pending else ""
        return Check("alerts", False, f"topic {topic} has no confirmed subscriber{waiting}")
    who = ", ".join(f"{s.get('Protocol')}:{s.get('Endpoint')}" for s in confirmed)
    return Check("alerts", True, f"topic {topic} has {len(confirmed)} confirmed subscribers ({who})")


def judge_event(rule: Mapping[str, Any] | None, targets: Sequence[str], function: str, event: Any) -> Check:
    """``event``: the canary's Batch Job State Change as EventBridge delivered it (None: none came)."""
    if rule is None:
        return Check("events", False, f"the supervisor's rule {function} does not exist")
    if rule.get("State") != "ENABLED":
        return Check("events", False, f"the supervisor's rule {function} is {rule.get('State')}")
    # The sandbox runs the function in its own process, fed by the queue FUNCTION-events (venue/sandbox.py): moto
    # cannot invoke a Lambda function from a rule.
    if not any(t.endswith((f":function:{function}", f":{function}-events")) for t in targets):
        return Check("events", False, f"the supervisor's rule {function} does not target the function {function}")
    if event is None:
        return Check("events", False, "no Batch event of the canary reached EventBridge")
    tags = (event.get("detail") or {}).get("tags") or {}
    if tags.get(names.TAG_SUPERVISED) != "true":
        return Check(
            "events",
            False,
            "the canary's Batch event carried no job tags: the supervisor's rule, which matches on them, would see "
            "no event of this venue",
        )
    return Check("events", True, "the canary's Batch event matched the supervisor's rule, with the job's tags")


# --------------------------------------------------------------------------------------------------------------
# Asking the venue


def canaries(config: Config) -> list[Canary]:
    """One barrier canary per queue (each queue is one compute kind), one module canary per module with mounts or
    secrets (its own definition and queue, the command overridden): ECS starts no task whose secret or EFS mount
    does not resolve, so SUCCEEDED means they did."""
    kinds: dict[str, str] = {}
    for module in config.modules:
        kinds.setdefault(module.job_queue, module.compute)
    found = [
        Canary(
            f"canary {queue} ({compute})",
            queue,
            names.barrier_definition(config.prefix, names.platform(compute)),
        )
        for queue, compute in kinds.items()
    ]
    found += [
        Canary(f"module {m.name}", m.job_queue, m.job_definition, CANARY_COMMAND, m.name)
        for m in config.modules
        if m.mounts or m.secrets
    ]
    return found


def expected_parameters(config: Config) -> dict[str, str | None]:
    """What the runtime reads from SSM (the Batch stack's queues, the supervisor's ledger and function), and what
    the Batch stack publishes of this yaml: each module's and the barrier's job definition name (their values
    expected), and the submitter policy (stacks/batch.py ``_publish``)."""
    prefix = config.prefix
    wanted: dict[str, str | None] = {
        names.venue_parameter(prefix, "batch/job-queues"): None,
        **{names.supervisor_parameter(prefix, key): None for key in ("ledger", "function-name", LEDGER_BUCKET_KEY)},
        names.venue_parameter(prefix, SUBMITTER_POLICY_KEY): None,
        names.venue_parameter(prefix, "batch/barrier-job-definition"): config.barrier_job_definition,
    }
    for module in config.modules:
        wanted[names.venue_parameter(prefix, f"batch/job-definitions/{module.name}")] = module.job_definition
    return wanted


class Examination:
    """The checks against one venue; each ``check_*`` returns its lines."""

    def __init__(
        self,
        config: Config,
        options: AwsOptions,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        poll: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        aws_args: Sequence[Arg] = (),
    ) -> None:
        self.config = config
        self.aws_args = tuple(aws_args)  # the command's AWS options, for the commands a check prints
        self.prefix = config.prefix
        self.options = options
        self.batch = Batch(options)
        self.timeout = timeout
        self.poll = poll
        self.sleep = sleep
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.run_id = f"doctor-{self.stamp}"
        self._clients: dict[str, Any] = {}

    def service(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = client(service, self.options)
        return self._clients[service]

    # ---- stacks and parameters

    def check_parameters(self) -> Check:
        ssm = self.service("ssm")
        found: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Path": f"/{self.prefix}/", "Recursive": True}
            if token:
                kwargs["NextToken"] = token
            page = call("GetParametersByPath", ssm.get_parameters_by_path, **kwargs)
            found.update({p["Name"]: p.get("Value", "") for p in page.get("Parameters") or []})
            token = page.get("NextToken")
            if not token:
                break
        return judge_parameters(self.prefix, found, expected_parameters(self.config))

    # ---- canaries, their logs, and the event the supervisor's rule gets

    def submit(self, canary: Canary, *, supervised: bool) -> str:
        what = f"module-{canary.module}" if canary.module else f"queue-{canary.queue.removeprefix(self.prefix + '-')}"
        name = f"{self.run_id}-{what}"[:128]
        tags = names.job_tags(self.prefix, self.run_id, "doctor", canary.module or names.BARRIER, name)
        if supervised:
            tags[names.TAG_SUPERVISED] = "true"
        request: dict[str, Any] = {
            "jobName": name,
            "jobQueue": canary.queue,
            "jobDefinition": canary.definition,
            "tags": tags,
            "propagateTags": True,
        }
        if canary.command:
            request["containerOverrides"] = {"command": list(canary.command)}
        return self.batch.submit_job(request)

    def wait(self, job_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], float]:
        started = time.monotonic()
        jobs: dict[str, dict[str, Any]] = {}
        while True:
            jobs = {str(j["jobId"]): j for j in self.batch.describe_jobs(job_ids)}
            waited = time.monotonic() - started
            if all(jobs.get(i, {}).get("status") in FINAL for i in job_ids) or waited >= self.timeout:
                return jobs, waited
            self.sleep(self.poll)

    def check_log(self, label: str, job: Mapping[str, Any] | None) -> Check:
        name = label.replace("canary", "logs", 1)
        if job is None or job.get("status") != SUCCEEDED:
            return Check(name, False, "no canary ran to look for its log")
        stream = (job.get("container") or {}).get("logStreamName")
        options = ((job.get("container") or {}).get("logConfiguration") or {}).get("options") or {}
        group = str(options.get("awslogs-group") or "/aws/batch/job")
        if not stream:
            return Check(name, False, "the canary names no log stream (DescribeJobs container.logStreamName)")
        try:
            call(
                "GetLogEvents",
                self.service("logs").get_log_events,
                logGroupName=group,
                logStreamName=stream,
                limit=1,
            )
        except AwsError as e:
            return Check(name, False, f"stream {stream} not in {group}, where logs looks: {describe_error(e)}")
        return Check(name, True, f"stream {stream} is in {group}, where logs looks")

    def event_probe(self) -> tuple[str, str] | None:
        """A temporary rule with the supervisor rule's source and detail type (tags left out, to see whether the
        event carries them) sending to a temporary queue: (rule name, queue url), or None without the rule."""
        events, sqs = self.service("events"), self.service("sqs")
        try:
            rule = call("DescribeRule", events.describe_rule, Name=names.supervisor_function(self.prefix))
        except AwsError:
            return None
        pattern = json.loads(rule.get("EventPattern") or "{}")
        probe = {"source": pattern.get("source"), "detail-type": pattern.get("detail-type")}
        name = f"{self.prefix}-doctor-{self.stamp}"[:64]
        url = call("CreateQueue", sqs.create_queue, QueueName=name)["QueueUrl"]
        attributes = call("GetQueueAttributes", sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"])
        arn = attributes["Attributes"]["QueueArn"]
        rule_arn = call("PutRule", events.put_rule, Name=name, EventPattern=json.dumps(probe))["RuleArn"]
        # EventBridge may send to the queue only with its policy's leave.
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        call("SetQueueAttributes", sqs.set_queue_attributes, QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        call("PutTargets", events.put_targets, Rule=name, Targets=[{"Id": "doctor", "Arn": arn}])
        return name, url

    def event_of(self, url: str, job_id: str, deadline: float) -> Any:
        sqs = self.service("sqs")
        while True:
            answer = call(
                "ReceiveMessage", sqs.receive_message, QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in answer.get("Messages") or []:
                event = json.loads(message["Body"])
                detail = event.get("detail") or {}
                if detail.get("jobId") == job_id and detail.get("status") in FINAL:
                    return event
            if time.monotonic() >= deadline:
                return None

    def remove_probe(self, probe: tuple[str, str]) -> None:
        name, url = probe
        events, sqs = self.service("events"), self.service("sqs")
        for operation, fn, kwargs in (
            ("RemoveTargets", events.remove_targets, {"Rule": name, "Ids": ["doctor"]}),
            ("DeleteRule", events.delete_rule, {"Name": name}),
            ("DeleteQueue", sqs.delete_queue, {"QueueUrl": url}),
        ):
            # What cannot be removed is named by its doctor- prefix; the checks' answers stand.
            with contextlib.suppress(AwsError):
                call(operation, fn, **kwargs)

    def check_event(self, probe: tuple[str, str] | None, job_id: str | None) -> Check:
        function = names.supervisor_function(self.prefix)
        events = self.service("events")
        try:
            rule = call("DescribeRule", events.describe_rule, Name=function)
            targets = call("ListTargetsByRule", events.list_targets_by_rule, Rule=function).get("Targets") or []
        except AwsError:
            rule, targets = None, []
        event = None
        if probe is not None and job_id is not None:
            event = self.event_of(probe[1], job_id, time.monotonic() + min(self.timeout, 60.0))
        result = judge_event(rule, [str(t.get("Arn", "")) for t in targets], function, event)
        if event is not None:
            carried = "present" if ((event.get("detail") or {}).get("tags") or {}) else "absent"
            ssm = self.service("ssm")
            name = names.supervisor_parameter(self.prefix, EVENT_TAGS_KEY)
            call("PutParameter", ssm.put_parameter, Name=name, Value=carried, Type="String", Overwrite=True)
            result = Check(result.name, result.ok, f"{result.found}; recorded {name} = {carried}")
        return result

    # ---- secrets, quotas, alerts, ledger

    def check_secrets(self) -> list[Check]:
        checks = []
        secrets = self.service("secretsmanager")
        for module in self.config.modules:
            if not module.secrets:
                continue
            values: dict[str, str | None] = {}
            missing: list[str] = []
            for _, secret in module.secrets:
                name = names.secret_name(self.prefix, secret)
                try:
                    answer = call("GetSecretValue", secrets.get_secret_value, SecretId=name)
                    values[name] = answer.get("SecretString") or ("binary" if answer.get("SecretBinary") else None)
                except AwsError as e:
                    values[name] = None
                    # A secret created empty answers GetSecretValue with ResourceNotFoundException too ("Secrets
                    # Manager can't find the specified secret value"): DescribeSecret tells the two apart.
                    if error_code(e.__cause__ or e) == "ResourceNotFoundException" and not self._secret_exists(name):
                        missing.append(name)
            checks.append(judge_secret(module.name, values, self.aws_args, missing))
        return checks

    def _secret_exists(self, name: str) -> bool:
        try:
            call("DescribeSecret", self.service("secretsmanager").describe_secret, SecretId=name)
        except AwsError:
            return False
        return True

    def quota(self, service: str, code: str) -> float | str | None:
        quotas = self.service("service-quotas")
        try:
            answer = call("GetServiceQuota", quotas.get_service_quota, ServiceCode=service, QuotaCode=code)
        except AwsError as e:
            cause = e.__cause__ or e
            if self.options.endpoint_url and error_code(cause) == "NoSuchResourceException":
                return None  # an emulator without Service Quotas: said, not failed
            return describe_error(cause)
        return float(answer["Quota"]["Value"])

    def check_quotas(self) -> list[Check]:
        infra = self.config.infrastructure
        computes = {m.compute for m in self.config.modules}
        wanted: list[tuple[str, str, str, int]] = []
        if computes & {names.FARGATE_SPOT, names.FARGATE}:
            wanted.append(("quota Fargate On-Demand", "fargate", QUOTA_ON_DEMAND, infra.max_vcpus))
            if infra.fargate_spot and names.FARGATE_SPOT in computes:
                wanted.append(("quota Fargate Spot", "fargate", QUOTA_SPOT, infra.max_vcpus))
        if names.EC2 in computes:
            wanted.append(("quota EC2 On-Demand", "ec2", QUOTA_EC2_ON_DEMAND, infra.ec2_max_vcpus))
        if names.EC2_SPOT in computes:
            wanted.append(("quota EC2 Spot", "ec2", QUOTA_EC2_SPOT, infra.ec2_max_vcpus))
        return [judge_quota(label, self.quota(service, code), limit) for label, service, code, limit in wanted]

    def check_alerts(self) -> Check:
        sns = self.service("sns")
        topic = names.alerts_topic(self.prefix)
        arns: list[str] = []
        token: str | None = None
        while True:
            page = call("ListTopics", sns.list_topics, **({"NextToken": token} if token else {}))
            arns += [str(t["TopicArn"]) for t in page.get("Topics") or []]
            token = page.get("NextToken")
            if not token:
                break
        arn = next((a for a in arns if a.rsplit(":", 1)[-1] == topic), None)
        if arn is None:
            return judge_subscribers(topic, None)
        answer = call("ListSubscriptionsByTopic", sns.list_subscriptions_by_topic, TopicArn=arn)
        return judge_subscribers(topic, answer.get("Subscriptions") or [])

    def check_ledger(self) -> Check:
        ssm, s3 = self.service("ssm"), self.service("s3")
        try:
            parameter = names.supervisor_parameter(self.prefix, LEDGER_BUCKET_KEY)
            bucket = call("GetParameter", ssm.get_parameter, Name=parameter)["Parameter"]["Value"]
        except AwsError as e:
            return Check("ledger", False, f"the ledger bucket is not published ({describe_error(e)})")
        key = f"{names.LEDGER_FOLDER}/{self.run_id}/doctor.json"
        body = json.dumps({"doctor": self.stamp}).encode()
        try:
            call("PutObject", s3.put_object, Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        except AwsError as e:
            return Check("ledger", False, f"s3://{bucket}/{key}: a conditional write was refused: {describe_error(e)}")
        try:
            try:
                call("PutObject", s3.put_object, Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            except AwsError as e:
                if error_code(e.__cause__ or e) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return Check(
                        "ledger",
                        True,
                        f"s3://{bucket}: a conditional write is accepted, and refused when the object exists",
                    )
                return Check("ledger", False, f"s3://{bucket}: {describe_error(e)}")
            return Check("ledger", False, f"s3://{bucket} ignores If-None-Match: two runs could overwrite each other")
        finally:
            with contextlib.suppress(AwsError):
                call("DeleteObject", s3.delete_object, Bucket=bucket, Key=key)


def examine(examination: Examination, report: Callable[[Check], None]) -> list[Check]:
    """Run every check, handing each line to ``report`` as it is known."""
    checks: list[Check] = []

    def say(check: Check) -> None:
        checks.append(check)
        report(check)

    say(examination.check_parameters())
    planned = canaries(examination.config)
    probe = examination.event_probe()
    ids: list[str | None] = []
    for i, canary in enumerate(planned):
        try:
            # The first canary also tests the supervisor's rule, which matches supervised runs' jobs only.
            ids.append(examination.submit(canary, supervised=i == 0))
        except AwsError as e:
            ids.append(None)
            say(Check(canary.label, False, f"SubmitJob refused: {describe_error(e)}"))
    submitted = [i for i in ids if i is not None]
    jobs, waited = examination.wait(submitted) if submitted else ({}, 0.0)
    for canary, job_id in zip(planned, ids, strict=True):
        if job_id is None:
            continue
        job = jobs.get(job_id)
        say(judge_canary(canary.label, job, waited if job is None or job.get("status") not in FINAL else _took(job)))
        if not canary.command:
            say(examination.check_log(canary.label, job))
    try:
        say(examination.check_event(probe, ids[0] if ids else None))
    finally:
        if probe is not None:
            examination.remove_probe(probe)
    for check in examination.check_secrets():
        say(check)
    for check in examination.check_quotas():
        say(check)
    say(examination.check_alerts())
    say(examination.check_ledger())
    return checks


def _took(job: Mapping[str, Any]) -> float:
    created, stopped = job.get("createdAt"), job.get("stoppedAt")
    return (int(stopped) - int(created)) / 1000 if created and stopped else 0.0
