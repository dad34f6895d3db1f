"""moto's Batch backend, extended with a real job lifecycle, installed in place inside the server process.

Only the job API (SubmitJob, DescribeJobs, ListJobs, CancelJob, TerminateJob) is replaced; compute
environments, queues, job definitions, tags and scheduling policies stay moto's own code and state, so
CloudFormation-created queues and definitions are visible to jobs.
"""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any

from moto.batch import models as batch_models
from moto.batch.exceptions import ClientException
from moto.batch.models import JOB_NAME_REGEX, BatchBackend, JobDefinition
from moto.batch.responses import BatchResponse
from moto.batch.utils import make_arn_for_job
from moto.moto_api._internal import mock_random

from .injection import Injector
from .states import STATUSES, BatchJob, Engine, Leaf

INJECTOR = Injector()
ENGINE = Engine(INJECTOR)

MAX_DEPENDENCIES = 20  # AWS limit per job
MAX_DESCRIBE = 100  # AWS limit per DescribeJobs call
ARRAY_MIN, ARRAY_MAX = 2, 10_000
DEFAULT_PAGE = 1000  # AWS: ListJobs without maxResults returns up to 1000 results and a nextToken
_JOB_ARN = re.compile(r"^arn:[^:]+:batch:[^:]*:\d*:job/(.+)$")


class EmulatedBatchBackend(BatchBackend):
    """BatchBackend whose jobs move through AWS states on the shared ``ENGINE`` clock (no Docker, no threads)."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        self.emulated_jobs: dict[str, BatchJob] = {}
        self.jobs_by_queue: dict[str, list[BatchJob]] = {}

    @property
    def _url_module(self) -> ModuleType:  # type: ignore[override]
        # moto derives the URL module from the class's module; ours lives outside moto.
        from moto.batch import urls

        return urls

    def reset(self) -> None:
        ENGINE.forget(list(self.emulated_jobs.values()))
        super().reset()

    # -- lookups -----------------------------------------------------------------------------------------------
    def find_job_definition(self, identifier: str) -> JobDefinition:
        """AWS resolves an ARN, ``name:revision``, or a bare name to its latest ACTIVE revision."""
        job_def = self.get_job_definition_by_arn(identifier)
        if job_def is None and ":" in identifier and not identifier.startswith("arn:"):
            name, revision = identifier.rsplit(":", 1)
            if revision.isdigit():
                job_def = self.get_job_definition_by_name_revision(name, revision)
        elif job_def is None:
            active = [d for d in self._job_definitions.values() if d.name == identifier and d.status == "ACTIVE"]
            job_def = max(active, key=lambda d: d.revision) if active else None
        if job_def is None or job_def.status != "ACTIVE":
            raise ClientException(f"Job definition {identifier} does not exist")
        return job_def

    def find_job(self, identifier: str) -> tuple[BatchJob, Leaf | None] | None:
        """A job id, ``parent:index`` child id, or either as an ARN -> (job, child leaf or None)."""
        match = _JOB_ARN.match(identifier)
        job_id = match.group(1) if match else identifier
        job = self.emulated_jobs.get(job_id)
        if job is not None:
            return job, None
        parent_id, _, index = job_id.rpartition(":")
        job = self.emulated_jobs.get(parent_id)
        if job is None or not job.is_array or not index.isdigit() or int(index) >= len(job.children):
            return None
        return job, job.children[int(index)]

    # -- SubmitJob ---------------------------------------------------------------------------------------------
    def submit_request(self, body: dict[str, Any]) -> dict[str, str]:
        name = str(body.get("jobName") or "")
        if JOB_NAME_REGEX.match(name) is None:
            raise ClientException("Job name should match valid pattern")
        definition = self.find_job_definition(str(body.get("jobDefinition") or ""))
        queue_id = str(body.get("jobQueue") or "")
        queue = self.get_job_queue(queue_id)
        if queue is None:
            raise ClientException(f"Job queue {queue_id} does not exist")
        size = (body.get("arrayProperties") or {}).get("size")
        if size is not None and not ARRAY_MIN <= int(size) <= ARRAY_MAX:
            raise ClientException(f"Array size must be between {ARRAY_MIN} and {ARRAY_MAX}, got {size}")
        depends_on = body.get("dependsOn") or []
        if len(depends_on) > MAX_DEPENDENCIES:
            raise ClientException(
                f"A job can depend on at most {MAX_DEPENDENCIES} jobs; {len(depends_on)} dependencies given"
            )
        tags = dict(body.get("tags") or {})
        job_id = str(mock_random.uuid4())
        with ENGINE.lock:
            job = BatchJob(
                job_id=job_id,
                arn=make_arn_for_job(self.account_id, job_id, self.region_name),
                name=name,
                request=body,
                definition=definition,
                queue_arn=queue.arn,
                tags=tags,
                created_at=ENGINE.clock.now(),
                size=int(size) if size is not None else None,
                running=ENGINE.durations.running_for(name, definition.name, tags),
                retry_strategy=body.get("retryStrategy") or definition.retry_strategy,
                timeout=body.get("timeout") or definition.timeout,
            )
            deps = self._resolve_dependencies(job, depends_on)
            if tags:
                self.tagger.tag_resource(job.arn, self.tagger.convert_dict_to_tags_input(tags))
            self.emulated_jobs[job_id] = job
            self.jobs_by_queue.setdefault(queue.arn, []).append(job)
            ENGINE.admit(job, deps)
        return {"jobArn": job.arn, "jobName": name, "jobId": job_id}

    def _resolve_dependencies(
        self, job: BatchJob, depends_on: list[dict[str, Any]]
    ) -> list[tuple[Leaf | BatchJob, Leaf | BatchJob]]:
        """(waiter, target) pairs. AWS: a plain dependency on an array waits for the whole array; N_TO_N pairs
        child i with child i of an equally sized array; SEQUENTIAL (no jobId) chains the job's own children."""
        pairs: list[tuple[Leaf | BatchJob, Leaf | BatchJob]] = []
        own: Leaf | BatchJob = job.leaf if job.leaf is not None else job
        for dependency in depends_on:
            kind = str(dependency.get("type") or "").upper()
            if kind == "SEQUENTIAL":
                if not job.is_array:
                    raise ClientException("SEQUENTIAL dependencies are only valid for array jobs")
                pairs.extend((job.children[i], job.children[i - 1]) for i in range(1, len(job.children)))
                continue
            dep_id = str(dependency.get("jobId") or "")
            found = self.find_job(dep_id)
            if found is None:
                raise ClientException(f"Dependent job ID {dep_id} does not exist")
            target_job, target_leaf = found
            if kind == "N_TO_N":
                if not job.is_array or target_leaf is not None or target_job.size != job.size:
                    raise ClientException(
                        f"N_TO_N dependency on {dep_id} requires both jobs to be array jobs of the same size"
                    )
                pairs.extend(zip(job.children, target_job.children, strict=True))
                continue
            pairs.append((own, target_leaf if target_leaf is not None else target_job))
        return pairs

    def submit_job(self, job_name: str, job_def_id: str, job_queue: str, array_properties: dict[str, Any],
                   depends_on: list[dict[str, str]] | None = None, container_overrides: dict[str, Any] | None = None,
                   eks_properties_override: dict[str, Any] | None = None, timeout: dict[str, int] | None = None,
                   parameters: dict[str, str] | None = None, tags: dict[str, str] | None = None,
                   ) -> tuple[str, str, str]:
        """moto's signature, for other moto services (e.g. Step Functions) that submit jobs in-process."""
        body = {
            "jobName": job_name, "jobDefinition": job_def_id, "jobQueue": job_queue,
            "arrayProperties": array_properties, "dependsOn": depends_on, "containerOverrides": container_overrides,
            "timeout": timeout, "parameters": parameters, "tags": tags,
        }
        result = self.submit_request({k: v for k, v in body.items() if v})
        return result["jobName"], result["jobId"], result["jobArn"]

    # -- DescribeJobs / ListJobs -------------------------------------------------------------------------------
    def describe_jobs(self, jobs: list[str] | None) -> list[dict[str, Any]]:
        ids = list(jobs or [])
        if len(ids) > MAX_DESCRIBE:
            raise ClientException(f"A maximum of {MAX_DESCRIBE} jobs can be described at a time; {len(ids)} given")
        ENGINE.advance()
        result = []
        with ENGINE.lock:
            for identifier in ids:
                found = self.find_job(identifier)
                if found is not None:  # AWS silently omits unknown ids
                    result.append(self._describe(*found))
        return result

    def list_request(self, body: dict[str, Any]) -> dict[str, Any]:
        ENGINE.advance()
        status, filters = body.get("jobStatus"), body.get("filters")
        candidates: list[tuple[BatchJob, Leaf | None]]
        with ENGINE.lock:
            if body.get("arrayJobId"):
                found = self.find_job(str(body["arrayJobId"]))
                parent = found[0] if found is not None and found[1] is None else None
                candidates = [(parent, c) for c in parent.children] if parent is not None else []
            elif body.get("jobQueue"):
                queue = self.get_job_queue(str(body["jobQueue"]))
                if queue is None:
                    raise ClientException(f"Job queue {body['jobQueue']} does not exist")
                candidates = [(j, None) for j in self.jobs_by_queue.get(queue.arn, [])]
            else:
                raise ClientException("jobQueue, arrayJobId or multiNodeJobId must be specified")
            if filters:  # AWS ignores jobStatus when filters are given and returns every status
                selected = [c for c in candidates if all(_matches(f, *c) for f in filters)]
            else:
                # AWS: without jobStatus and filters, only RUNNING jobs are listed.
                wanted = status or "RUNNING"
                if wanted not in STATUSES:
                    raise ClientException(
                        "Job status is not one of SUBMITTED | PENDING | RUNNABLE | STARTING | RUNNING | "
                        "SUCCEEDED | FAILED"
                    )
                selected = [c for c in candidates if (c[1] or c[0]).status == wanted]
            start = int(body.get("nextToken") or 0)
            page = int(body.get("maxResults") or DEFAULT_PAGE)
            chunk = selected[start:start + page]
            result: dict[str, Any] = {"jobSummaryList": [self._summary(j, leaf) for j, leaf in chunk]}
        if start + page < len(selected):
            result["nextToken"] = str(start + page)
        return result

    # -- CancelJob / TerminateJob ------------------------------------------------------------------------------
    def cancel_job(self, job_id: str, reason: str) -> None:
        self._stop(job_id, reason, terminate=False)

    def terminate_job(self, job_id: str, reason: str) -> None:
        self._stop(job_id, reason, terminate=True)

    def _stop(self, job_id: str, reason: str, *, terminate: bool) -> None:
        if not job_id:
            raise ClientException("'jobId' is a required field (cannot be an empty string)")
        if not reason:
            raise ClientException("'reason' is a required field (cannot be an empty string)")
        ENGINE.advance()
        found = self.find_job(job_id)
        if found is None:
            return  # as moto: unknown ids are accepted silently
        job, leaf = found
        ENGINE.stop_units(job, [leaf] if leaf is not None else job.units(), reason, terminate=terminate)

    # -- rendering ---------------------------------------------------------------------------------------------
    def _summary(self, job: BatchJob, leaf: Leaf | None) -> dict[str, Any]:
        epoch = ENGINE.clock.epoch_ms
        unit: Leaf | BatchJob = leaf if leaf is not None else (job.leaf or job)
        status_reason = leaf.status_reason if leaf is not None else (
            job.leaf.status_reason if job.leaf is not None else job.status_reason)
        result: dict[str, Any] = {
            "jobArn": unit.arn if isinstance(unit, Leaf) else job.arn,
            "jobId": unit.job_id if isinstance(unit, Leaf) else job.job_id,
            "jobName": job.name,
            "createdAt": epoch(job.created_at),
            "status": unit.status,
            "jobDefinition": job.definition.arn,
        }
        if status_reason is not None:
            result["statusReason"] = status_reason
        if unit.started_at is not None:
            result["startedAt"] = epoch(unit.started_at)
        stopped = unit.stopped_at if isinstance(unit, Leaf) or job.status in ("SUCCEEDED", "FAILED") else None
        if stopped is not None:
            result["stoppedAt"] = epoch(stopped)
        if isinstance(unit, Leaf):
            container = {}
            if unit.exit_code is not None:
                container["exitCode"] = unit.exit_code
            if unit.container_reason is not None:
                container["reason"] = unit.container_reason
            if container:
                result["container"] = container
            if unit.index is not None:
                result["arrayProperties"] = {"index": unit.index}
        else:
            result["arrayProperties"] = {"size": job.size, "statusSummary": dict(job.counts)}
        return result

    def _describe(self, job: BatchJob, leaf: Leaf | None) -> dict[str, Any]:
        result = self._summary(job, leaf)
        unit = leaf if leaf is not None else job.leaf
        request = job.request
        definition = job.definition
        parameters = {**(definition.parameters or {}), **(request.get("parameters") or {})}
        container = _container(definition, request.get("containerOverrides") or {}, parameters)
        container.update(result.pop("container", {}))
        if unit is not None:
            container["logStreamName"] = f"{definition.name}/default/{unit.job_id.replace(':', '-')}"
        result.update({
            "jobQueue": job.queue_arn,
            "dependsOn": request.get("dependsOn") or [],
            "parameters": parameters,
            "container": container,
            "tags": dict(job.tags),
            "propagateTags": bool(request.get("propagateTags", definition.propagate_tags or False)),
            "platformCapabilities": definition.platform_capabilities or [],
            "attempts": list(unit.attempts) if unit is not None else [],
        })
        for key, value in (("retryStrategy", job.retry_strategy), ("timeout", job.timeout),
                           ("shareIdentifier", request.get("shareIdentifier")),
                           ("schedulingPriority", request.get("schedulingPriorityOverride"))):
            if value:
                result[key] = value
        if job.is_array and leaf is None:
            result["arrayProperties"] = {"size": job.size, "statusSummary": dict(job.counts)}
        return result


def _container(definition: JobDefinition, overrides: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """Job definition containerProperties with containerOverrides applied the way AWS merges them:
    command replaced, environment merged by name, resourceRequirements replaced by type."""
    props = dict(definition.container_properties or {})
    props.pop("command", None)
    command = list(overrides.get("command") or (definition.container_properties or {}).get("command") or [])
    for name, value in parameters.items():  # Ref::name placeholders, as AWS substitutes them
        command = [part.replace(f"Ref::{name}", value) for part in command]
    env = {e["name"]: e.get("value", "") for e in props.get("environment") or []}
    env.update({e["name"]: e.get("value", "") for e in overrides.get("environment") or []})
    requirements = {r["type"]: r for r in props.get("resourceRequirements") or []}
    requirements.update({r["type"]: r for r in overrides.get("resourceRequirements") or []})
    props.update(command=command, environment=[{"name": k, "value": v} for k, v in env.items()])
    if requirements:
        props["resourceRequirements"] = list(requirements.values())
    for key in ("vcpus", "memory", "instanceType"):
        if overrides.get(key) is not None:
            props[key] = overrides[key]
    return props


def _matches(flt: dict[str, Any], job: BatchJob, leaf: Leaf | None) -> bool:
    """ListJobs filters. AWS: JOB_NAME/JOB_DEFINITION accept a trailing ``*`` prefix match; dates are epoch ms."""
    name, values = flt.get("name"), [str(v) for v in flt.get("values") or []]
    if name == "JOB_NAME":
        return any(_prefix_or_equal(v.lower(), job.name.lower()) for v in values)
    if name == "JOB_DEFINITION":
        d = job.definition
        return any(_prefix_or_equal(v, c) for v in values for c in (d.name, f"{d.name}:{d.revision}", d.arn))
    created = ENGINE.clock.epoch_ms(job.created_at)
    if name == "BEFORE_CREATED_AT":
        return all(created < int(v) for v in values)
    if name == "AFTER_CREATED_AT":
        return all(created > int(v) for v in values)
    return True


def _prefix_or_equal(pattern: str, value: str) -> bool:
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


# -- installation into moto's own classes ----------------------------------------------------------------------
def _body(response: BatchResponse) -> dict[str, Any]:
    return json.loads(response.body) if response.body else {}


def _backend(response: BatchResponse) -> EmulatedBatchBackend:
    # Always ours, whatever {"batch": {"use_docker": ...}} says: simple mode would bypass the state machine.
    return batch_models.batch_backends[response.current_account][response.region]  # type: ignore[return-value]


def _submitjob(self: BatchResponse) -> str:
    return json.dumps(_backend(self).submit_request(_body(self)))


def _describejobs(self: BatchResponse) -> str:
    return json.dumps({"jobs": _backend(self).describe_jobs(_body(self).get("jobs"))})


def _listjobs(self: BatchResponse) -> str:
    return json.dumps(_backend(self).list_request(_body(self)))


_installed = False


def install() -> None:
    """Make every moto Batch backend in this process an EmulatedBatchBackend and start the clock."""
    global _installed
    if _installed:
        return
    batch_models.batch_backends.backend = EmulatedBatchBackend
    batch_models.batch_backends.clear()
    BatchResponse.batch_backend = property(_backend)  # type: ignore[assignment,method-assign]
    BatchResponse.submitjob = _submitjob  # type: ignore[method-assign]
    BatchResponse.describejobs = _describejobs  # type: ignore[method-assign]
    BatchResponse.listjobs = _listjobs  # type: ignore[method-assign]
    ENGINE.start()
    _installed = True
