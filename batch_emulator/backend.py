"""moto's Batch backend, extended with a real job lifecycle, installed in place inside the server process.

Only the job API (SubmitJob, DescribeJobs, ListJobs, CancelJob, TerminateJob) is replaced; compute
environments, queues, job definitions, tags and scheduling policies stay moto's own code and state, so
CloudFormation-created queues and definitions are visible to jobs.
"""

from __future__ import annotations

import gc
import json
import re
from types import ModuleType
from typing import Any

from moto.batch import models as batch_models
from moto.batch.exceptions import ClientException, ValidationError
from moto.batch.models import JOB_NAME_REGEX, BatchBackend, ComputeEnvironment, JobDefinition, JobQueue
from moto.batch.responses import BatchResponse
from moto.batch.utils import make_arn_for_job
from moto.ec2.models.instance_types import INSTANCE_TYPES as EC2_INSTANCE_TYPES
from moto.moto_api._internal import mock_random

from .capacity import (
    EC2,
    FARGATE_MAX_MEMORY,
    FARGATE_MAX_VCPUS,
    INSUFFICIENT_CAPACITY,
    MAX_RESOURCE,
    NON_REPLENISHABLE,
    PRIORITY_MAX,
    PRIORITY_MIN,
    REPLENISHABLE,
    REQUIREMENT,
    TIME_LIMIT_MAX,
    TIME_LIMIT_MIN,
    ConsumableResource,
    Environment,
    FairShare,
    QueueShape,
    TimeLimit,
)
from .effects import MotoObserver
from .injection import Injector
from .states import STATUSES, TERMINAL, BatchJob, Engine, Leaf, attempt_detail

INJECTOR = Injector()
ENGINE = Engine(INJECTOR)
BACKENDS: dict[tuple[str, str], EmulatedBatchBackend] = {}  # (account, region) -> the backend moto made

MAX_DEPENDENCIES = 20  # AWS limit per job
MAX_DESCRIBE = 100  # AWS limit per DescribeJobs call
ARRAY_MIN, ARRAY_MAX = 2, 10_000
DEFAULT_PAGE = 1000  # AWS: ListJobs without maxResults returns up to 1000 results and a nextToken
MAX_TAGS = 50
MAX_ATTEMPTS = 10
MAX_EXIT_RULES = 5
LIST_FILTERS = ("JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT")
_JOB_ARN = re.compile(r"^arn:[^:]+:batch:[^:]*:\d*:job/(.+)$")
_QUEUE_ARN = re.compile(r"^arn:[^:]+:batch:([^:]*):(\d*):job-queue/(.+)$")
# AWS's "optimal" instance type: the newest families of C, M and R instances (C4, M4, R4 where they are offered).
OPTIMAL_FAMILIES = ("c4", "m4", "r4")
TIME_LIMIT_REASONS = (INSUFFICIENT_CAPACITY, MAX_RESOURCE, REQUIREMENT)
MAX_CONSUMABLES = 5  # AWS: "You can specify up to 5 resources for each job you define"


class EmulatedBatchBackend(BatchBackend):
    """BatchBackend whose jobs move through AWS states on the shared ``ENGINE`` clock (no Docker, no threads)."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        # The engine finds backends here, not through moto's BackendDict: its lock is held while moto resets a
        # backend, and a reset waits for the engine's lock -- looking up moto's dict under the engine's lock would
        # deadlock the two.
        BACKENDS[(account_id, region_name)] = self
        self.emulated_jobs: dict[str, BatchJob] = {}
        self.jobs_by_queue: dict[str, list[BatchJob]] = {}
        self._serial = 0
        # What moto's own models drop: queues' jobStateTimeLimitActions, job definitions' consumable resources and
        # scheduling priority (by ARN).
        self.time_limits: dict[str, list[dict[str, Any]]] = {}
        self.definition_extras: dict[str, dict[str, Any]] = {}

    @property
    def _url_module(self) -> ModuleType:  # type: ignore[override]
        # moto derives the URL module from the class's module; ours lives outside moto.
        from moto.batch import urls

        return urls

    def reset(self) -> None:
        ENGINE.forget(list(self.emulated_jobs.values()))
        with ENGINE.lock:
            for arn in [
                arn for arn, r in ENGINE.consumables.items() if _owner(arn) == (self.region_name, self.account_id)
            ]:
                del ENGINE.consumables[arn]
        super().reset()
        gc.unfreeze()  # the jobs just dropped hold reference cycles (leaf <-> job): let the collector see them

    def forget_finished(self) -> None:
        """Retention: AWS keeps finished jobs "for at least 7 days" and clients see DescribeJobs answer nothing
        after about a day. With ``ENGINE.retention`` set, jobs finished longer ago than that are gone."""
        retention = ENGINE.retention
        if retention is None:
            return
        with ENGINE.lock:
            cutoff = ENGINE.clock.now() - retention
            gone = [
                j
                for j in self.emulated_jobs.values()
                if j.status in TERMINAL and j.finished_at is not None and j.finished_at <= cutoff
            ]
            if not gone:
                return
            ids = {j.job_id for j in gone}
            for job in gone:
                del self.emulated_jobs[job.job_id]
            for queue, jobs in self.jobs_by_queue.items():
                self.jobs_by_queue[queue] = [j for j in jobs if j.job_id not in ids]
        gc.unfreeze()

    # -- compute environments and queues: placement follows every change ---------------------------------------
    def create_compute_environment(self, *args: Any, **kwargs: Any) -> ComputeEnvironment:
        env = super().create_compute_environment(*args, **kwargs)
        ENGINE.capacity_changed()
        return env

    def update_compute_environment(
        self,
        compute_environment_name: str,
        state: str | None,
        compute_resources: Any | None,
        service_role: str | None,
    ) -> tuple[str, str]:
        result = super().update_compute_environment(compute_environment_name, state, compute_resources, service_role)
        env = self.get_compute_environment(compute_environment_name)
        if compute_resources and env is not None and env.compute_resources is not None:
            # moto keeps the creation's computeResources; AWS applies the update (maxvCpus above all).
            maximum = compute_resources.get("maxvCpus")
            if maximum is not None and int(maximum) < 0:
                raise ClientException(f"computeResources.maxvCpus must be at least 0, got {maximum}")
            env.compute_resources = {**env.compute_resources, **compute_resources}
        ENGINE.capacity_changed()
        return result

    def delete_compute_environment(self, compute_environment_name: str) -> None:
        super().delete_compute_environment(compute_environment_name)
        ENGINE.capacity_changed()

    def create_job_queue(self, *args: Any, **kwargs: Any) -> JobQueue:
        queue = super().create_job_queue(*args, **kwargs)
        ENGINE.capacity_changed()
        return queue

    def update_job_queue(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        result = super().update_job_queue(*args, **kwargs)
        ENGINE.capacity_changed()
        return result

    def delete_job_queue(self, queue_name: str) -> None:
        queue = self.get_job_queue(queue_name)
        super().delete_job_queue(queue_name)
        if queue is not None:
            self.time_limits.pop(queue.arn, None)
        ENGINE.capacity_changed()

    def queue_shape(self, queue_arn: str) -> QueueShape | None:
        queue = self._job_queues.get(queue_arn)
        if queue is None:
            return None
        policy = self._scheduling_policies.get(queue.schedule_policy or "")
        fair_share = None
        if policy is not None:
            fair_share = FairShare(
                tuple(
                    (str(d.get("shareIdentifier")), float(d.get("weightFactor") or 1.0))
                    for d in policy.fairshare_policy.get("shareDistribution") or []
                )
            )
        limits = tuple(
            TimeLimit(str(a["reason"]), int(a["maxTimeSeconds"]), str(a["action"]))
            for a in self.time_limits.get(queue.arn, [])
        )
        environments = tuple(_environment(env) for env in queue.environments)
        return QueueShape(queue.arn, queue.name, queue.state == "ENABLED", environments, fair_share, limits)

    # -- consumable resources ----------------------------------------------------------------------------------
    def find_consumable(self, identifier: str) -> ConsumableResource | None:
        owner = (self.region_name, self.account_id)
        for arn, resource in ENGINE.consumables.items():
            if _owner(arn) == owner and identifier in (arn, resource.name):
                return resource
        return None

    def consumable_request(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        ENGINE.advance()
        if action == "createconsumableresource":
            name = str(body.get("consumableResourceName") or "")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", name):
                raise ClientException(
                    "consumableResourceName must be 1-128 letters, digits, hyphens or underscores, "
                    f"starting with a letter or digit; got {name!r}"
                )
            kind = str(body.get("resourceType") or REPLENISHABLE)
            if kind not in (REPLENISHABLE, NON_REPLENISHABLE):
                raise ClientException(f"resourceType must be REPLENISHABLE or NON_REPLENISHABLE, got {kind!r}")
            total = int(body.get("totalQuantity") or 0)
            if total < 0:
                raise ClientException(f"totalQuantity must be at least 0, got {total}")
            with ENGINE.lock:
                if self.find_consumable(name) is not None:
                    raise ClientException(f"Consumable resource {name} already exists")
                arn = f"arn:aws:batch:{self.region_name}:{self.account_id}:consumable-resource/{name}"
                now = ENGINE.clock.epoch_ms(ENGINE.clock.now())
                ENGINE.consumables[arn] = ConsumableResource(name, arn, kind, total, now, dict(body.get("tags") or {}))
            return {"consumableResourceName": name, "consumableResourceArn": arn}
        if action == "listconsumableresources":
            with ENGINE.lock:
                owner = (self.region_name, self.account_id)
                found = [r for a, r in ENGINE.consumables.items() if _owner(a) == owner]
                for flt in body.get("filters") or []:
                    if flt.get("name") != "CONSUMABLE_RESOURCE_NAME":
                        raise ClientException(f"Filter name {flt.get('name')} is not CONSUMABLE_RESOURCE_NAME")
                    values = [str(v) for v in flt.get("values") or []]
                    found = [r for r in found if any(_prefix_or_equal(v, r.name) for v in values)]
                rows = [
                    {k: v for k, v in r.describe().items() if k not in ("availableQuantity", "createdAt", "tags")}
                    for r in found
                ]
            return _page({"consumableResources": rows}, "consumableResources", body)
        resource = self.find_consumable(str(body.get("consumableResource") or ""))
        if resource is None:
            raise ClientException(f"Consumable resource {body.get('consumableResource')} does not exist")
        if action == "describeconsumableresource":
            with ENGINE.lock:
                return resource.describe()
        if action == "updateconsumableresource":
            operation = str(body.get("operation") or "SET")
            quantity = int(body.get("quantity") or 0)
            with ENGINE.lock:
                if operation == "SET":
                    total = quantity
                elif operation == "ADD":
                    total = resource.total + quantity
                elif operation == "REMOVE":
                    total = resource.total - quantity
                else:
                    raise ClientException(f"operation must be one of SET | ADD | REMOVE, got {operation!r}")
                if total < 0:
                    raise ClientException(
                        f"{operation} {quantity} would leave consumable resource {resource.name} "
                        f"with {total} units; it has {resource.total}"
                    )
                resource.total = total
            ENGINE.capacity_changed()  # waiting jobs may fit now
            return {
                "consumableResourceName": resource.name,
                "consumableResourceArn": resource.arn,
                "totalQuantity": resource.total,
            }
        if action == "deleteconsumableresource":
            with ENGINE.lock:
                users = [j for j in self.emulated_jobs.values() if j.status not in TERMINAL and _uses(j, resource.arn)]
                if users:
                    raise ClientException(
                        f"Consumable resource {resource.name} is required by {len(users)} unfinished job(s)"
                    )
                del ENGINE.consumables[resource.arn]
            return {}
        if action == "listjobsbyconsumableresource":
            with ENGINE.lock:
                rows = [
                    self._consumer_row(job, resource.arn)
                    for job in sorted(self.emulated_jobs.values(), key=lambda j: (j.created_at, j.serial), reverse=True)
                    if _uses(job, resource.arn)
                ]
            for flt in body.get("filters") or []:
                name, values = flt.get("name"), [str(v) for v in flt.get("values") or []]
                if name == "JOB_STATUS":
                    rows = [r for r in rows if r["jobStatus"] in values]
                elif name == "JOB_NAME":
                    rows = [r for r in rows if any(_prefix_or_equal(v, r["jobName"]) for v in values)]
                else:
                    raise ClientException(f"Filter name {name} is not one of JOB_STATUS | JOB_NAME")
            return _page({"jobs": rows}, "jobs", body)
        raise ClientException(f"unknown consumable resource action {action}")

    def _consumer_row(self, job: BatchJob, arn: str) -> dict[str, Any]:
        epoch = ENGINE.clock.epoch_ms
        row: dict[str, Any] = {
            "jobArn": job.arn,
            "jobQueueArn": job.queue_arn,
            "jobName": job.name,
            "jobDefinitionArn": job.definition.arn,
            "jobStatus": job.status,
            "quantity": sum(q for a, q in job.consumables if a == arn),
            "createdAt": epoch(job.created_at),
            "consumableResourceProperties": self._consumable_properties(job),
        }
        if job.share is not None:
            row["shareIdentifier"] = job.share
        reason = job.leaf.status_reason if job.leaf is not None else job.status_reason
        if reason is not None:
            row["statusReason"] = reason
        if job.started_at is not None:
            row["startedAt"] = epoch(job.started_at)
        return row

    def _consumable_properties(self, job: BatchJob) -> dict[str, Any]:
        names = {arn: r.name for arn, r in ENGINE.consumables.items()}
        return {
            "consumableResourceList": [
                {"consumableResource": names.get(arn, arn), "quantity": quantity} for arn, quantity in job.consumables
            ]
        }

    def _job_consumables(self, definition: JobDefinition, body: dict[str, Any]) -> tuple[tuple[str, int], ...]:
        """The definition's consumableResourceProperties, with SubmitJob's consumableResourcePropertiesOverride
        replacing the quantity of the resources it names ("this only overrides the quantity ... needed by each
        instance of the job, not the total")."""
        listed = (self.definition_extras.get(definition.arn, {}).get("consumableResourceProperties") or {}).get(
            "consumableResourceList"
        ) or []
        wanted: dict[str, int] = {str(r["consumableResource"]): int(r.get("quantity") or 0) for r in listed}
        override = (body.get("consumableResourcePropertiesOverride") or {}).get("consumableResourceList") or []
        for item in override:
            wanted[str(item["consumableResource"])] = int(item.get("quantity") or 0)
        if len(wanted) > MAX_CONSUMABLES:
            raise ClientException(
                f"A job can require at most {MAX_CONSUMABLES} consumable resources; got {len(wanted)}"
            )
        result = []
        for identifier, quantity in wanted.items():
            resource = self.find_consumable(identifier)
            if resource is None:
                raise ClientException(f"Consumable resource {identifier} does not exist")
            if quantity < 1:
                raise ClientException(
                    f"quantity of consumable resource {identifier} must be at least 1, got {quantity}"
                )
            result.append((resource.arn, quantity))
        return tuple(result)

    def snapshot_request(self, body: dict[str, Any]) -> dict[str, Any]:
        ENGINE.advance()
        identifier = str(body.get("jobQueue") or "")
        queue = self.get_job_queue(identifier)
        if queue is None:
            raise ClientException(f"Job queue {identifier} does not exist")
        return ENGINE.snapshot(queue.arn)

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
        self.forget_finished()
        definition = self.find_job_definition(str(body.get("jobDefinition") or ""))
        queue_id = str(body.get("jobQueue") or "")
        queue = self.get_job_queue(queue_id)
        if queue is None:
            raise ClientException(f"Job queue {queue_id} does not exist")
        if queue.state != "ENABLED":
            # AWS: "If the job queue state is DISABLED, new jobs can't be added to the queue, but jobs already in
            # the queue can finish."
            raise ClientException(f"Job queue {queue.name} is DISABLED: new jobs can't be added to it")
        share, priority = self._share_and_priority(queue, definition, body)
        size = (body.get("arrayProperties") or {}).get("size")
        if size is not None and not ARRAY_MIN <= int(size) <= ARRAY_MAX:
            raise ClientException(f"Array size must be between {ARRAY_MIN} and {ARRAY_MAX}, got {size}")
        depends_on = body.get("dependsOn") or []
        if len(depends_on) > MAX_DEPENDENCIES:
            raise ClientException(
                f"A job can depend on at most {MAX_DEPENDENCIES} jobs; {len(depends_on)} dependencies given"
            )
        tags = dict(body.get("tags") or {})
        self._validate_tags(tags)
        retry_strategy = body.get("retryStrategy") or definition.retry_strategy
        if body.get("retryStrategy"):
            _validate_retry_strategy(body["retryStrategy"])
        timeout = body.get("timeout") or definition.timeout
        if body.get("timeout"):
            _validate_timeout(body["timeout"])
        if definition.eks_properties is None:
            vcpus, memory = _requirements(_container(definition, body.get("containerOverrides") or {}, {}))
        else:
            vcpus, memory = 1.0, 0
        consumables = self._job_consumables(definition, body)
        job_id = str(mock_random.uuid4())
        with ENGINE.lock:
            self._serial += 1
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
                retry_strategy=retry_strategy,
                timeout=timeout,
                account_id=self.account_id,
                region=self.region_name,
                serial=self._serial,
                vcpus=vcpus,
                memory=memory,
                consumables=consumables,
                share=share,
                priority=priority,
            )
            deps = self._resolve_dependencies(job, depends_on)
            if tags:
                self.tagger.tag_resource(job.arn, self.tagger.convert_dict_to_tags_input(tags))
            self.emulated_jobs[job_id] = job
            self.jobs_by_queue.setdefault(queue.arn, []).append(job)
            ENGINE.admit(job, deps)
        return {"jobArn": job.arn, "jobName": name, "jobId": job_id}

    def _share_and_priority(
        self, queue: JobQueue, definition: JobDefinition, body: dict[str, Any]
    ) -> tuple[str | None, int]:
        """AWS SubmitJob: shareIdentifier -- "If the job queue has a scheduling policy, then this parameter must be
        specified" and, without one, "this parameter must not be specified"; schedulingPriorityOverride: "The
        minimum supported value is 0 and the maximum supported value is 9999"."""
        share = body.get("shareIdentifier")
        fair_share = bool(queue.schedule_policy)
        if fair_share and not share:
            raise ClientException(f"Job queue {queue.name} has a scheduling policy: shareIdentifier must be specified")
        if not fair_share and share:
            raise ClientException(
                f"Job queue {queue.name} has no scheduling policy: shareIdentifier must not be specified"
            )
        priority = body.get("schedulingPriorityOverride")
        if priority is None:
            priority = self.definition_extras.get(definition.arn, {}).get("schedulingPriority")
        if priority is not None and not PRIORITY_MIN <= int(priority) <= PRIORITY_MAX:
            raise ClientException(
                f"schedulingPriorityOverride must be between {PRIORITY_MIN} and {PRIORITY_MAX}, got {priority}"
            )
        return (str(share) if share else None), int(priority or 0)

    def _validate_tags(self, tags: dict[str, str]) -> None:
        # moto's own wording and code (ValidationError), which its tests check and AWS uses for the 50-tag limit.
        problem = self.tagger.validate_tags(self.tagger.convert_dict_to_tags_input(tags), MAX_TAGS)
        if problem:
            raise ValidationError(problem)

    def _resolve_dependencies(
        self, job: BatchJob, depends_on: list[dict[str, Any]]
    ) -> list[tuple[Leaf | BatchJob, Leaf | BatchJob]]:
        """(waiter, target) pairs. AWS: a plain dependency on an array waits for the whole array; N_TO_N pairs
        child i with child i of an equally sized array; SEQUENTIAL chains the job's own children.

        A ``jobId`` is never dropped: ``{"jobId": X, "type": "SEQUENTIAL"}`` waits for X (and, on an array,
        also chains the children), which is also how moto's own tests use it on plain jobs.
        """
        pairs: list[tuple[Leaf | BatchJob, Leaf | BatchJob]] = []
        own: Leaf | BatchJob = job.leaf if job.leaf is not None else job
        for dependency in depends_on:
            kind = str(dependency.get("type") or "").upper()
            if kind not in ("", "SEQUENTIAL", "N_TO_N"):
                raise ClientException(f"Dependency type {dependency.get('type')} is not one of N_TO_N | SEQUENTIAL")
            dep_id = str(dependency.get("jobId") or "")
            if kind == "SEQUENTIAL" and not dep_id:
                if not job.is_array:
                    raise ClientException("A SEQUENTIAL dependency without a jobId is only valid for array jobs")
                pairs.extend((job.children[i], job.children[i - 1]) for i in range(1, len(job.children)))
                continue
            if not dep_id:
                raise ClientException(f"A {kind or 'plain'} dependency needs a jobId")
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
            if kind == "SEQUENTIAL" and job.is_array:
                pairs.extend((job.children[i], job.children[i - 1]) for i in range(1, len(job.children)))
        return pairs

    def submit_job(
        self,
        job_name: str,
        job_def_id: str,
        job_queue: str,
        array_properties: dict[str, Any],
        depends_on: list[dict[str, str]] | None = None,
        container_overrides: dict[str, Any] | None = None,
        eks_properties_override: dict[str, Any] | None = None,
        timeout: dict[str, int] | None = None,
        parameters: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> tuple[str, str, str]:
        """moto's signature, for other moto services (e.g. Step Functions) that submit jobs in-process."""
        body = {
            "jobName": job_name,
            "jobDefinition": job_def_id,
            "jobQueue": job_queue,
            "arrayProperties": array_properties,
            "dependsOn": depends_on,
            "containerOverrides": container_overrides,
            "timeout": timeout,
            "parameters": parameters,
            "tags": tags,
        }
        result = self.submit_request({k: v for k, v in body.items() if v})
        return result["jobName"], result["jobId"], result["jobArn"]

    # -- DescribeJobs / ListJobs -------------------------------------------------------------------------------
    def describe_jobs(self, jobs: list[str] | None) -> list[dict[str, Any]]:
        ids = list(jobs or [])
        if len(ids) > MAX_DESCRIBE:
            raise ClientException(f"A maximum of {MAX_DESCRIBE} jobs can be described at a time; {len(ids)} given")
        ENGINE.advance()
        self.forget_finished()
        result = []
        with ENGINE.lock:
            for identifier in ids:
                found = self.find_job(identifier)
                if found is not None:  # AWS silently omits unknown ids
                    result.append(self._describe(*found))
        return result

    def list_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """ListJobs as the API reference describes it: exactly one of jobQueue, arrayJobId, multiNodeJobId;
        "Only one filter can be used at a time"; "When the filter is used, jobStatus is ignored"; "The filter
        doesn't apply to child jobs in an array"; "If you don't specify a status, only RUNNING jobs are
        returned"; "The results are sorted by the createdAt field, with the most recent jobs being first"."""
        ENGINE.advance()
        self.forget_finished()
        status, filters = body.get("jobStatus"), body.get("filters") or []
        scopes = [key for key in ("jobQueue", "arrayJobId", "multiNodeJobId") if body.get(key)]
        if len(scopes) != 1:
            raise ClientException(
                "Exactly one of jobQueue, arrayJobId or multiNodeJobId must be specified"
                + (f"; got {', '.join(scopes)}" if scopes else "")
            )
        if len(filters) > 1:
            raise ClientException(f"Only one filter can be used at a time; {len(filters)} given")
        for flt in filters:
            if flt.get("name") not in LIST_FILTERS:
                raise ClientException(f"Filter name {flt.get('name')} is not one of {' | '.join(LIST_FILTERS)}")
        if status is not None and status not in STATUSES:
            raise ClientException(
                "Job status is not one of SUBMITTED | PENDING | RUNNABLE | STARTING | RUNNING | SUCCEEDED | FAILED"
            )
        candidates: list[tuple[BatchJob, Leaf | None]]
        with ENGINE.lock:
            children = False
            if scopes[0] == "arrayJobId":
                found = self.find_job(str(body["arrayJobId"]))
                parent = found[0] if found is not None and found[1] is None and found[0].is_array else None
                candidates = [(parent, c) for c in parent.children] if parent is not None else []
                children = True
            elif scopes[0] == "jobQueue":
                queue = self.get_job_queue(str(body["jobQueue"]))
                if queue is None:
                    raise ClientException(f"Job queue {body['jobQueue']} does not exist")
                candidates = [(j, None) for j in self.jobs_by_queue.get(queue.arn, [])]
            else:
                candidates = []  # the emulator runs no multi-node parallel jobs
            if filters and not children:
                selected = [c for c in candidates if _matches(filters[0], *c)]
            else:
                wanted = status or "RUNNING"
                selected = [c for c in candidates if (c[1] or c[0]).status == wanted]
            selected.sort(key=lambda c: self._created(*c), reverse=True)
            start = int(body.get("nextToken") or 0)
            page = int(body.get("maxResults") or DEFAULT_PAGE)
            chunk = selected[start : start + page]
            result: dict[str, Any] = {"jobSummaryList": [self._summary(j, leaf) for j, leaf in chunk]}
        if start + page < len(selected):
            result["nextToken"] = str(start + page)
        return result

    @staticmethod
    def _created(job: BatchJob, leaf: Leaf | None) -> tuple[float, int, int]:
        # Children spawned together keep index order within "most recent first" (ties sort by -index).
        if leaf is not None and leaf.index is not None:
            return (leaf.created_at if leaf.created_at is not None else job.created_at), job.serial, -leaf.index
        return job.created_at, job.serial, 0

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
        self.forget_finished()
        found = self.find_job(job_id)
        if found is None:
            return  # as moto: unknown ids are accepted silently
        job, leaf = found
        ENGINE.stop_units(job, [leaf] if leaf is not None else job.units(), reason, terminate=terminate)

    # -- rendering ---------------------------------------------------------------------------------------------
    def _summary(self, job: BatchJob, leaf: Leaf | None) -> dict[str, Any]:
        epoch = ENGINE.clock.epoch_ms
        unit: Leaf | BatchJob = leaf if leaf is not None else (job.leaf or job)
        status_reason = (
            leaf.status_reason
            if leaf is not None
            else (job.leaf.status_reason if job.leaf is not None else job.status_reason)
        )
        created = leaf.created_at if leaf is not None and leaf.created_at is not None else job.created_at
        result: dict[str, Any] = {
            "jobArn": unit.arn if isinstance(unit, Leaf) else job.arn,
            "jobId": unit.job_id if isinstance(unit, Leaf) else job.job_id,
            "jobName": job.name,
            "createdAt": epoch(created),
            "status": unit.status,
            "jobDefinition": job.definition.arn,
        }
        if status_reason is not None:
            result["statusReason"] = status_reason
        if unit.started_at is not None:
            result["startedAt"] = epoch(unit.started_at)
        # AWS: stoppedAt is "when the job transitioned from the RUNNING state to a terminal state".
        if unit.stopped_at is not None and unit.status in TERMINAL:
            result["stoppedAt"] = epoch(unit.stopped_at)
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
            result["arrayProperties"] = self._array_properties(job)
        return result

    @staticmethod
    def _array_properties(job: BatchJob) -> dict[str, Any]:
        return {
            "size": job.size,
            "statusSummary": dict(job.counts),
            "statusSummaryLastUpdatedAt": ENGINE.clock.epoch_ms(job.summary_updated_at),
        }

    def _describe(self, job: BatchJob, leaf: Leaf | None) -> dict[str, Any]:
        result = self._summary(job, leaf)
        unit = leaf if leaf is not None else job.leaf
        request = job.request
        definition = job.definition
        parameters = {**(definition.parameters or {}), **(request.get("parameters") or {})}
        summary_container = result.pop("container", {})
        result.update(
            {
                "jobQueue": job.queue_arn,
                "dependsOn": request.get("dependsOn") or [],
                "parameters": parameters,
                "tags": dict(job.tags),
                "propagateTags": bool(request.get("propagateTags", definition.propagate_tags or False)),
                "platformCapabilities": definition.platform_capabilities or [],
                "attempts": [attempt_detail(job, a) for a in unit.attempts] if unit is not None else [],
            }
        )
        if definition.eks_properties is not None:
            # EKS jobs describe their pod (overrides merged), not a container; moto's merge is AWS's.
            result["eksProperties"] = _eks_properties(
                definition.eks_properties, request.get("eksPropertiesOverride") or {}
            )
        else:
            container = _container(definition, request.get("containerOverrides") or {}, parameters)
            container.update(summary_container)
            if unit is not None and unit.stream_name is not None:  # only once an attempt reached RUNNING
                container["logStreamName"] = unit.stream_name
            result["container"] = container
        for key, value in (
            ("retryStrategy", job.retry_strategy),
            ("timeout", job.timeout),
            ("shareIdentifier", job.share),
            ("schedulingPriority", request.get("schedulingPriorityOverride")),
        ):
            if value:
                result[key] = value
        stop_kind = unit.stop_kind if unit is not None else job.stop_kind
        result["isCancelled"] = stop_kind == "cancel"
        result["isTerminated"] = stop_kind == "terminate"
        if job.consumables:
            result["consumableResourceProperties"] = self._consumable_properties(job)
        if job.is_array and leaf is None:
            result["arrayProperties"] = self._array_properties(job)
        return result


def _owner(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    return (parts[3], parts[4]) if len(parts) > 5 else ("", "")


def _uses(job: BatchJob, arn: str) -> bool:
    return any(a == arn for a, _ in job.consumables)


def _page(result: dict[str, Any], key: str, body: dict[str, Any]) -> dict[str, Any]:
    rows = result[key]
    start = int(body.get("nextToken") or 0)
    size = int(body.get("maxResults") or 100)
    result[key] = rows[start : start + size]
    if start + size < len(rows):
        result["nextToken"] = str(start + size)
    return result


def _requirements(container: dict[str, Any]) -> tuple[float, int]:
    """(vCPUs, MiB) a job asks for: resourceRequirements VCPU/MEMORY, else the older vcpus/memory."""
    vcpus: float = float(container.get("vcpus") or 1)
    memory = int(container.get("memory") or 0)
    for requirement in container.get("resourceRequirements") or []:
        if requirement.get("type") == "VCPU":
            vcpus = float(requirement["value"])
        elif requirement.get("type") == "MEMORY":
            memory = int(requirement["value"])
    return vcpus, memory


def _instance_types(names: list[str]) -> tuple[tuple[float, int], ...]:
    """(vCPUs, MiB) of every EC2 instance type a managed environment may launch: types, families, "optimal"."""
    result = []
    for name in names:
        families = OPTIMAL_FAMILIES if name == "optimal" else (() if "." in name else (name,))
        specs = [spec for t, spec in EC2_INSTANCE_TYPES.items() if t == name or t.split(".")[0] in families]
        result.extend((float(spec["VCpuInfo"]["DefaultVCpus"]), int(spec["MemoryInfo"]["SizeInMiB"])) for spec in specs)
    return tuple(result)


def _environment(env: ComputeEnvironment) -> Environment:
    enabled = env.state == "ENABLED"
    if env.env_type != "MANAGED" or not env.compute_resources:
        return Environment(env.arn, env.name, enabled)
    resources = env.compute_resources
    kind = str(resources.get("type") or EC2)
    if "FARGATE" in kind:
        instances: tuple[tuple[float, int], ...] = ((FARGATE_MAX_VCPUS, FARGATE_MAX_MEMORY),)
    else:
        instances = _instance_types([str(t) for t in resources.get("instanceTypes") or []])
    return Environment(env.arn, env.name, enabled, kind, float(resources.get("maxvCpus") or 0), instances)


def _validate_time_limits(actions: Any) -> list[dict[str, Any]]:
    """CreateJobQueue/UpdateJobQueue jobStateTimeLimitActions, as the API Reference bounds them."""
    if actions is None:
        return []
    result = []
    for i, action in enumerate(actions):
        where = f"jobStateTimeLimitActions[{i}]"
        seconds = action.get("maxTimeSeconds")
        if seconds is None or not TIME_LIMIT_MIN <= int(seconds) <= TIME_LIMIT_MAX:
            raise ClientException(
                f"{where}.maxTimeSeconds must be between {TIME_LIMIT_MIN} and {TIME_LIMIT_MAX}, got {seconds}"
            )
        if action.get("state") != "RUNNABLE":
            raise ClientException(f"{where}.state must be RUNNABLE, got {action.get('state')!r}")
        if action.get("action") not in ("CANCEL", "TERMINATE"):
            raise ClientException(f"{where}.action must be CANCEL or TERMINATE, got {action.get('action')!r}")
        if action.get("reason") not in TIME_LIMIT_REASONS:
            raise ClientException(
                f"{where}.reason must be one of {' | '.join(TIME_LIMIT_REASONS)}, got {action.get('reason')!r}"
            )
        result.append(
            {
                "reason": action["reason"],
                "state": "RUNNABLE",
                "maxTimeSeconds": int(seconds),
                "action": action["action"],
            }
        )
    return result


def _eks_properties(definition: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    pod = definition.get("podProperties") or {}
    override_containers = (override.get("podProperties") or {}).get("containers") or []
    containers = []
    for i, base in enumerate(pod.get("containers") or []):
        merged = dict(base)
        if i < len(override_containers):
            change = override_containers[i]
            if "command" in change:
                merged["command"] = change["command"]
            env = {e["name"]: e.get("value", "") for e in base.get("env") or []}
            env.update({e["name"]: e.get("value", "") for e in change.get("env") or []})
            merged["env"] = [{"name": k, "value": v} for k, v in env.items()]
            if "resources" in change:
                merged["resources"] = change["resources"]
        containers.append(merged)
    return {"podProperties": {**{k: v for k, v in pod.items() if k != "containers"}, "containers": containers}}


def _validate_retry_strategy(strategy: dict[str, Any]) -> None:
    """AWS: "You can specify between 1 and 10 attempts"; evaluateOnExit ("up to 5 configuration objects")
    decides retries among those attempts, so it needs them."""
    attempts = strategy.get("attempts")
    rules = strategy.get("evaluateOnExit") or []
    if attempts is None and rules:
        raise ClientException("retryStrategy.evaluateOnExit requires retryStrategy.attempts")
    if attempts is not None and not 1 <= int(attempts) <= MAX_ATTEMPTS:
        raise ClientException(f"retryStrategy.attempts must be between 1 and {MAX_ATTEMPTS}, got {attempts}")
    if len(rules) > MAX_EXIT_RULES:
        raise ClientException(f"retryStrategy.evaluateOnExit allows at most {MAX_EXIT_RULES} rules, got {len(rules)}")


def _validate_timeout(timeout: dict[str, Any]) -> None:
    """AWS: "The minimum value for the timeout is 60 seconds." (lowered only by the emulator's min_timeout)."""
    seconds = timeout.get("attemptDurationSeconds")
    minimum = ENGINE.durations.min_timeout
    if seconds is not None and int(seconds) < minimum:
        raise ClientException(f"timeout.attemptDurationSeconds must be at least {minimum} seconds, got {seconds}")


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
    """One ListJobs filter. AWS: JOB_NAME/JOB_DEFINITION accept a trailing ``*`` prefix match; dates are epoch ms."""
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


def _createjobqueue(self: BatchResponse) -> str:
    limits = _validate_time_limits(_body(self).get("jobStateTimeLimitActions"))
    result = _ORIGINAL["createjobqueue"](self)
    if limits:
        backend = _backend(self)
        backend.time_limits[json.loads(result)["jobQueueArn"]] = limits
        ENGINE.capacity_changed()
    return result


def _updatejobqueue(self: BatchResponse) -> str:
    body = _body(self)
    limits = _validate_time_limits(body.get("jobStateTimeLimitActions"))
    result = _ORIGINAL["updatejobqueue"](self)
    if "jobStateTimeLimitActions" in body:
        _backend(self).time_limits[json.loads(result)["jobQueueArn"]] = limits
        ENGINE.capacity_changed()
    return result


def _describejobqueues(self: BatchResponse) -> str:
    result = json.loads(_ORIGINAL["describejobqueues"](self))
    limits = _backend(self).time_limits
    for queue in result.get("jobQueues") or []:
        queue["jobStateTimeLimitActions"] = limits.get(queue["jobQueueArn"], [])
    return json.dumps(result)


def _registerjobdefinition(self: BatchResponse) -> str:
    body = _body(self)
    priority = body.get("schedulingPriority")
    if priority is not None and not PRIORITY_MIN <= int(priority) <= PRIORITY_MAX:
        raise ClientException(f"schedulingPriority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, got {priority}")
    backend = _backend(self)
    listed = (body.get("consumableResourceProperties") or {}).get("consumableResourceList") or []
    if len(listed) > MAX_CONSUMABLES:
        raise ClientException(f"A job definition can require at most {MAX_CONSUMABLES} consumable resources")
    for item in listed:
        if backend.find_consumable(str(item.get("consumableResource"))) is None:
            raise ClientException(f"Consumable resource {item.get('consumableResource')} does not exist")
    result = _ORIGINAL["registerjobdefinition"](self)
    extras = {k: body[k] for k in ("consumableResourceProperties", "schedulingPriority") if body.get(k) is not None}
    if extras:
        backend.definition_extras[json.loads(result)["jobDefinitionArn"]] = extras
    return result


def _describejobdefinitions(self: BatchResponse) -> str:
    result = json.loads(_ORIGINAL["describejobdefinitions"](self))
    extras = _backend(self).definition_extras
    for definition in result.get("jobDefinitions") or []:
        definition.update(extras.get(definition.get("jobDefinitionArn"), {}))
    return json.dumps(result)


def _getjobqueuesnapshot(self: BatchResponse) -> str:
    return json.dumps(_backend(self).snapshot_request(_body(self)))


def _consumable_handler(action: str) -> Any:
    def handler(self: BatchResponse) -> str:
        return json.dumps(_backend(self).consumable_request(action, _body(self)))

    return handler


CONSUMABLE_ACTIONS = (
    "createconsumableresource",
    "describeconsumableresource",
    "listconsumableresources",
    "updateconsumableresource",
    "deleteconsumableresource",
    "listjobsbyconsumableresource",
)
_ORIGINAL: dict[str, Any] = {}


def _resolve_queue(queue_arn: str) -> QueueShape | None:
    match = _QUEUE_ARN.match(queue_arn)
    if match is None:
        return None
    backend = BACKENDS.get((match.group(2), match.group(1)))
    return backend.queue_shape(queue_arn) if backend is not None else None


def _render(job: BatchJob, leaf: Leaf | None) -> dict[str, Any]:
    return BACKENDS[(job.account_id, job.region)]._describe(job, leaf)


OBSERVER = MotoObserver(ENGINE.clock, _render)
# Function name -> the JSON every Invoke of it answers. moto runs no Lambda code without Docker; a sandbox needs a
# function that answers like the real one (e.g. the renew Lambda's {"expiration": ..., "parameters": [...]}).
LAMBDA_STUBS: dict[str, Any] = {}
_installed = False


def _stubbed_invoke(original: Any) -> Any:
    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> Any:
        name = function_name.rsplit(":function:", 1)[-1].split(":", 1)[0]
        if name in LAMBDA_STUBS:
            self.get_function(name, qualifier)  # an unknown function is still ResourceNotFoundException
            return json.dumps(LAMBDA_STUBS[name]).encode()
        return original(self, function_name, qualifier, body, headers, response_headers)

    return invoke


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """What survived a full collection is kept out of the next ones (``gc.freeze``) until jobs are dropped.

    A global run holds millions of array children, each alive until a reset: every full collection walked all
    of them again, which cost as much as running them. Garbage is still freed by reference counting; only
    cycles among frozen objects wait for ``gc.unfreeze`` (on reset and when retention drops jobs).
    """
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


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
    for name, handler in (
        ("createjobqueue", _createjobqueue),
        ("updatejobqueue", _updatejobqueue),
        ("describejobqueues", _describejobqueues),
        ("registerjobdefinition", _registerjobdefinition),
        ("describejobdefinitions", _describejobdefinitions),
    ):
        _ORIGINAL[name] = getattr(BatchResponse, name)
        setattr(BatchResponse, name, handler)
    BatchResponse.getjobqueuesnapshot = _getjobqueuesnapshot  # type: ignore[attr-defined]
    for action in CONSUMABLE_ACTIONS:
        setattr(BatchResponse, action, _consumable_handler(action))
    from moto.batch import urls

    for action in ("getjobqueuesnapshot", *CONSUMABLE_ACTIONS):
        urls.url_paths[f"{{0}}/v1/{action}$"] = BatchResponse.dispatch
    ENGINE.resolve_queue = _resolve_queue
    ENGINE.observer = OBSERVER
    gc.callbacks.append(_freeze_survivors)
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda_simple.models import LambdaSimpleBackend

    for cls in (LambdaBackend, LambdaSimpleBackend):
        cls.invoke = _stubbed_invoke(cls.invoke)  # type: ignore[method-assign]
    ENGINE.start()
    _installed = True
