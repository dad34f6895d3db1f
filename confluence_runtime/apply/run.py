"""Start a run: check that the venue holds what the plan names, submit the plan, and stop everything already
submitted when a submission fails for good (unless asked to keep it for ``resume``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__, names
from ..aws.api import AwsOptions, Batch, caller_account, region_in_use
from ..errors import PlanError, RecordError
from ..planning.estimate import QUOTA_ON_DEMAND, QUOTA_SPOT
from ..planning.plan import Plan
from ..planning.shaping import Submission
from ..records import provenance as run_record
from ..records.ledger import Ledger, RunEvent, RunHeader, config_sha256, now_iso, open_ledger
from ..records.provenance import Provenance
from ..records.runlock import RunLock, root_of
from ..shellcmd import command, options
from ..venue.renew import RenewResult, prepare_run
from ..views.runview import list_run_jobs
from .cancel import StopReport, stop_jobs
from .reconcile import Reconciled, cancel_duplicates
from .submit import DEFAULT_RATE, DEFAULT_WORKERS, Outcome, submit_plan

log = logging.getLogger("confluence")
ON_FAILURE = ("cancel", "keep")


@dataclass
class RunResult:
    outcome: Outcome
    renewed: RenewResult | None = None
    stopped: StopReport | None = None  # what was stopped after a failed submission (on_failure="cancel")
    warnings: list[str] = field(default_factory=list)  # pre-flight: quotas below what max_vcpus promises
    reconciled: Reconciled | None = None  # duplicates left by lost SubmitJob replies, and their cancellation
    cancelled_by: str | None = None  # who asked the run to stop while it was submitting (`cancel`), if anyone


def jobs_on_aws(batch: Batch, plan: Plan) -> list[str]:
    """Names of the jobs AWS holds for this run id in the plan's queues: listed by the run's name prefix, confirmed
    by the run tag (the prefix of run ``a`` also matches run ``a_b``). A fresh run id costs one DescribeJobQueues
    and one ListJobs per queue; a queue that does not exist holds no job (ListJobs would refuse it: pre-flight says
    so)."""
    wanted = sorted({s.job_queue for s in plan.submissions})
    queues = [str(q["jobQueueName"]) for q in batch.describe_job_queues(wanted)]
    summaries = list_run_jobs(batch, plan.run_id, queues)
    jobs = batch.describe_jobs([str(s["jobId"]) for s in summaries]) if summaries else []
    return sorted(str(j["jobName"]) for j in jobs if (j.get("tags") or {}).get(names.TAG_RUN) == plan.run_id)


def run_id_in_use(run_id: str, *, record: str | None, ledger: str | None, aws: list[str]) -> str | None:
    """Where a run id is already used (the submission record, the ledger, jobs on AWS), in words; None when
    nowhere. Pure: the caller looked."""
    if record is not None:
        return f"{record} already records it"
    if ledger is not None:
        return f"the run ledger {ledger} already holds it"
    if aws:
        shown = ", ".join(aws[:3]) + (f" and {len(aws) - 3} more" if len(aws) > 3 else "")
        return f"AWS already holds {len(aws)} of its jobs ({shown})"
    return None


def check_new_run(plan: Plan, ledger: Ledger, batch: Batch | None = None, submission_file: Path | None = None) -> None:
    """A run id names one run: refuse to start one that the submission record, the ledger (the local one and a
    shared one) or AWS (``batch``: jobs named and tagged with it, recorded anywhere) already holds. Only ``resume``
    continues a run."""
    run_id = plan.run_id
    known = run_id in ledger.run_ids()
    in_record = known and submission_file is not None and run_id in ledger.job_log.run_ids()
    where = run_id_in_use(
        run_id,
        record=str(submission_file) if in_record else None,
        ledger=ledger.location if known else None,
        aws=jobs_on_aws(batch, plan) if batch is not None and not known else [],
    )
    if where is None:
        return
    # Jobs only AWS holds were recorded elsewhere (another CSV, another machine): resume from that record.
    record = options([("-s", "FILE_IT_WAS_RECORDED_TO" if not known else submission_file)])
    again = command("resume", "-c", plan.source, *record, "--run-id", run_id)
    raise RecordError(
        f"run {run_id} already exists: {where}; only resume continues a run: {again} (or leave out --run-id to start "
        "a new run)"
    )


def run_header(
    plan: Plan, options: AwsOptions, *, venue: str | None, submission_file: Path | str, account: str | None = None
) -> RunHeader:
    """The ledger's header of a run about to start: what, from which file, and where (asks STS for the account
    unless given)."""
    config_path = Path(plan.source)
    return RunHeader(
        run_id=plan.run_id,
        plan_digest=plan.digest,
        config_path=str(config_path),
        config_sha256=config_sha256(config_path) if config_path.is_file() else "",
        prefix=plan.prefix,
        region=region_in_use(options)[0],
        started_at=now_iso(),
        tool_version=__version__,
        venue=venue,
        account=account if account is not None else caller_account(options),
        endpoint=options.endpoint_url,
        profile=options.profile,
        submission_file=str(submission_file),
        submit_calls=plan.submit_calls,
        children=plan.children,
        stages=tuple(plan.stages),
    )


def _submission_file(ledger: Ledger) -> Path | None:
    """The submission CSV a ledger records jobs to (for messages), if it is a local one."""
    jobs = getattr(ledger.job_log, "path", None)
    return Path(jobs) if jobs is not None else None


def _str_or_none(value: object | None) -> str | None:
    return None if value is None else str(value)


def preflight(
    batch: Batch, plan: Plan, quotas: Callable[[Sequence[str]], Mapping[str, float | str]] | None = None
) -> list[str]:
    """Fail before submitting anything when a queue or job definition the plan names does not exist, or a job
    cannot fit any compute environment of its queue; return warnings about the account's Fargate vCPU quotas
    (read through ``quotas``, code -> vCPUs or why unreadable) that cap what ``max_vcpus`` promises."""
    queues = sorted({s.job_queue for s in plan.submissions})
    queue_info = {q["jobQueueName"]: q for q in batch.describe_job_queues(queues)}
    missing_queues = [q for q in queues if q not in queue_info]
    definitions = sorted({s.job_definition for s in plan.submissions})
    definition_info = {d["jobDefinitionName"]: d for d in batch.describe_job_definitions(definitions)}
    missing_defs = [d for d in definitions if d not in definition_info]
    if missing_queues or missing_defs:
        parts = []
        if missing_queues:
            parts.append(f"job queues not found: {', '.join(missing_queues)}")
        if missing_defs:
            parts.append(f"active job definitions not found: {', '.join(missing_defs)}")
        error = PlanError("; ".join(parts) + " (nothing was submitted)")
        error.hint = "deploy the CDK app for this venue (cdk deploy -c venue=...), or pass the right --venue/--region"
        raise error
    arns = sorted({o["computeEnvironment"] for q in queue_info.values() for o in q.get("computeEnvironmentOrder", [])})
    environments = {e["computeEnvironmentArn"]: e for e in batch.describe_compute_environments(arns)} if arns else {}
    misfits = fit_problems(plan, queue_info, definition_info, environments)
    if misfits:
        error = PlanError(
            "jobs that no compute environment of their queue can run (nothing was submitted):\n  - "
            + "\n  - ".join(misfits)
        )
        error.hint = "raise infrastructure.max_vcpus (and redeploy) or lower the module's vcpus"
        raise error
    fargate = [e for e in environments.values() if _fargate_kind(e) and _max_vcpus(e) is not None]
    if not fargate or quotas is None:
        return []
    kinds = {QUOTA_SPOT if _fargate_kind(e) == "FARGATE_SPOT" else QUOTA_ON_DEMAND for e in fargate}
    return quota_warnings(fargate, quotas(sorted(kinds)))


def _fargate_kind(environment: Mapping[str, Any]) -> str | None:
    kind = str(environment.get("computeResources", {}).get("type", ""))
    return kind if kind in ("FARGATE", "FARGATE_SPOT") else None


def _max_vcpus(environment: Mapping[str, Any]) -> float | None:
    """A managed environment's vCPU ceiling; None for an unmanaged one (it promises nothing)."""
    value = environment.get("computeResources", {}).get("maxvCpus")
    return float(value) if value is not None else None


def _job_size(definition: Mapping[str, Any]) -> tuple[float, int]:
    container = definition.get("containerProperties", {})
    needs = {r["type"]: r["value"] for r in container.get("resourceRequirements", [])}
    return float(needs.get("VCPU", container.get("vcpus", 0))), int(needs.get("MEMORY", container.get("memory", 0)))


def fit_problems(
    plan: Plan,
    queues: Mapping[str, Mapping[str, Any]],
    definitions: Mapping[str, Mapping[str, Any]],
    environments: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Jobs whose vCPUs exceed every managed compute environment of their queue (they would wait in RUNNABLE
    forever). Unmanaged environments are not judged."""
    found: dict[tuple[str, str], str] = {}
    for s in plan.submissions:
        vcpus, memory = _job_size(definitions.get(s.job_definition, {}))
        order = queues.get(s.job_queue, {}).get("computeEnvironmentOrder", [])
        ceilings = [_max_vcpus(environments.get(o["computeEnvironment"], {})) for o in order]
        if not ceilings or any(c is None for c in ceilings) or vcpus <= max(c for c in ceilings if c is not None):
            continue
        found.setdefault(
            (s.stage, s.module),
            f"{s.stage}.{s.module} ({s.job_definition}) needs {vcpus:g} vCPUs and {memory} MiB; the compute "
            f"environments of queue {s.job_queue} allow at most {max(c for c in ceilings if c is not None):g} vCPUs",
        )
    return list(found.values())


def quota_warnings(environments: Sequence[Mapping[str, Any]], quotas: Mapping[str, float | str]) -> list[str]:
    """Where the account's Fargate vCPU quota is below what a compute environment's max_vcpus promises."""
    warnings = []
    for environment in sorted(environments, key=lambda e: str(e.get("computeEnvironmentName"))):
        spot = _fargate_kind(environment) == "FARGATE_SPOT"
        code = QUOTA_SPOT if spot else QUOTA_ON_DEMAND
        label = "Fargate Spot" if spot else "Fargate On-Demand"
        name, ceiling = environment.get("computeEnvironmentName"), _max_vcpus(environment) or 0
        quota = quotas.get(code)
        if isinstance(quota, str) or quota is None:
            warnings.append(
                f"could not read the {label} vCPU quota {code} ({quota or 'not asked'}): check in Service Quotas "
                f"that it covers max_vcpus {ceiling:g} of {name}"
            )
        elif quota < ceiling:
            warnings.append(
                f"the account's {label} vCPU quota {code} is {quota:g} vCPUs, below max_vcpus {ceiling:g} of {name}: "
                f"at most {quota:g} vCPUs will run at once; request an increase of {code} in Service Quotas"
            )
    return warnings


def start_run(
    batch: Batch,
    plan: Plan,
    ledger: Ledger | Path,
    header: Callable[[], RunHeader] | None = None,
    *,
    check: bool = True,
    renew: AwsOptions | None = None,
    on_failure: str = "cancel",
    rate: float = DEFAULT_RATE,
    workers: int = DEFAULT_WORKERS,
    on_start: Callable[[RenewResult | None], None] | None = None,
    quotas: Callable[[Sequence[str]], Mapping[str, float | str]] | None = None,
    on_submitted: Callable[[Submission, str], None] | None = None,
    provenance: Callable[[RunHeader], Provenance | None] | None = None,
) -> RunResult:
    """Pre-flight (``check``), renew the credentials (``renew``: where the renew Lambda is), record the run in the
    ledger (``header()``), submit every job, recording each as AWS accepts it, and on a failed submission stop the
    run's jobs (``on_failure="cancel"``).

    The header is written before the first SubmitJob, so a kill at any later instant leaves a run that ``resume``
    finds (its jobs by name). ``on_start`` is told just before the first SubmitJob. Ctrl-C (KeyboardInterrupt)
    propagates once the jobs AWS was accepting are recorded.

    ``ledger`` may be a submission CSV path (its ledger beside it); ``header`` defaults to :func:`run_header` for
    ``batch``'s endpoint, region and profile. ``provenance(header)`` writes the run record (images, items lists)
    before the first SubmitJob; each accepted job's definition revision is added to it once submitted.
    """
    if not isinstance(ledger, Ledger):
        csv_path = ledger
        ledger = open_ledger(csv_path)
        header = header or (lambda: run_header(plan, batch.options, venue=None, submission_file=csv_path))
    if header is None:
        raise ValueError("start_run needs a header factory when given a Ledger")
    # Held until the run is submitted: a second command on this record fails at once, told who holds it; the
    # check below cannot race a second `run` of the same id into the same record.
    with RunLock(root_of(ledger), plan.run_id, "run") as lock:
        return _start_locked(
            batch,
            plan,
            ledger,
            header,
            lock,
            check=check,
            renew=renew,
            on_failure=on_failure,
            rate=rate,
            workers=workers,
            on_start=on_start,
            quotas=quotas,
            on_submitted=on_submitted,
            provenance=provenance,
        )


def _start_locked(
    batch: Batch,
    plan: Plan,
    ledger: Ledger,
    header: Callable[[], RunHeader],
    lock: RunLock,
    *,
    check: bool,
    renew: AwsOptions | None,
    on_failure: str,
    rate: float,
    workers: int,
    on_start: Callable[[RenewResult | None], None] | None,
    quotas: Callable[[Sequence[str]], Mapping[str, float | str]] | None,
    on_submitted: Callable[[Submission, str], None] | None = None,
    provenance: Callable[[RunHeader], Provenance | None] | None = None,
) -> RunResult:
    check_new_run(plan, ledger, batch, _submission_file(ledger))
    warnings = preflight(batch, plan, quotas) if check else []
    for warning in warnings:
        log.warning("pre-flight: %s", warning)
    result = RunResult(Outcome(job_ids={}), warnings=warnings)
    if renew is not None:
        result.renewed = prepare_run(renew, plan.prefix)
    begun = header()
    ledger.begin(begun)
    record = provenance(begun) if provenance is not None else None
    if on_start is not None:
        on_start(result.renewed)
    log.info("run %s: %d submissions from %s", plan.run_id, plan.submit_calls, plan.source)
    with ledger.recorder(plan.run_id) as recorder:
        result.outcome = submit_plan(
            plan,
            batch,
            recorder,
            rate=rate,
            workers=workers,
            should_stop=lock.stop_requested,
            on_submitted=on_submitted,  # a person sees the submission advance (run's progress lines)
        )
    outcome = result.outcome
    if record is not None:
        run_record.note_jobs(ledger, plan.run_id, run_record.job_definitions_of(plan, record, outcome.job_ids))
    # A `cancel` that asked as the last jobs were being accepted is honoured all the same.
    outcome.stopped_by = outcome.stopped_by or _str_or_none(lock.stop_requested())
    # A lost SubmitJob reply may have left a second job under one name: the recorded one stays, the other goes.
    if outcome.lost_replies:
        result.reconciled = cancel_duplicates(batch, plan, outcome.job_ids, outcome.lost_replies)
    for duplicate in result.reconciled.duplicates if result.reconciled else ():
        log.warning("run %s: cancelled %s, a duplicate of %s", plan.run_id, duplicate.job_id, duplicate.name)
    if outcome.stopped_by:
        # `cancel` asked us to stop: it waits for this process to let go of the record, then stops the jobs.
        result.cancelled_by = outcome.stopped_by
        detail = f"{outcome.stopped_by} asked to stop after {len(outcome.submitted)} of {plan.submit_calls} jobs"
        log.info("run %s: %s", plan.run_id, detail)
        ledger.note(plan.run_id, RunEvent(now_iso(), "stopped", detail, "run"))
        return result
    if outcome.ok:
        log.info("run %s: all %d jobs submitted", plan.run_id, len(outcome.submitted))
        ledger.note(plan.run_id, RunEvent(now_iso(), "submitted", f"{len(outcome.submitted)} jobs", "run"))
        return result
    assert outcome.failure is not None
    failed = f"submitting {outcome.failure.submission.name} failed: {outcome.failure.message}"
    ledger.note(plan.run_id, RunEvent(now_iso(), "submission-failed", failed, "run"))
    if on_failure == "keep":
        return result
    assert outcome.failure is not None
    reason = f"Confluence run {plan.run_id} stopped: submitting {outcome.failure.submission.name} failed"
    report = stop_jobs(batch, list(outcome.job_ids.values()), reason)
    log.info(
        "run %s: cancelled %d, terminated %d, finished %d, not stopped %d",
        plan.run_id,
        len(report.cancelled),
        len(report.terminated),
        len(report.already_finished),
        len(report.not_stopped),
    )
    result.stopped = report
    ledger.note(plan.run_id, RunEvent(now_iso(), "cancelled", reason, "run"))
    return result
