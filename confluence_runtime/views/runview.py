"""The run view: a run's jobs found and read back, the shared base of status, cancel, resume and retry-failed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import names
from ..aws.api import Batch
from ..errors import RecordError
from ..planning.plan import Plan
from ..records.record import Row, read_rows

PLAIN = -1  # the "index" of a plain (non-array) job in coverage sets


@dataclass
class RunView:
    """Everything known about one run: its rows (record order) and, once described, each job as AWS reports it."""

    run_id: str
    rows: list[Row]
    source: str  # "csv", "api" or "csv+api"
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> DescribeJobs entry
    duplicates: list[tuple[str, list[str]]] = field(default_factory=list)  # name, extra ids AWS also holds
    unrecorded: list[Row] = field(default_factory=list)  # jobs AWS holds that the CSV lacks

    def by_name(self) -> dict[str, Row]:
        """The first row of each job name (a name submitted twice keeps its first id, as the record does)."""
        named: dict[str, Row] = {}
        for row in self.rows:
            named.setdefault(row.job_name, row)
        return named

    def job(self, row: Row) -> dict[str, Any]:
        return self.jobs.get(row.job_id, {})


def queue_name(arn_or_name: str) -> str:
    return arn_or_name.rsplit("job-queue/", 1)[-1]


def definition_name(arn_or_name: str) -> str:
    return arn_or_name.rsplit("job-definition/", 1)[-1].split(":", 1)[0]


def environment(job: Mapping[str, Any]) -> dict[str, str]:
    env = (job.get("container") or {}).get("environment") or []
    return {e.get("name", ""): e.get("value", "") for e in env}


def index_map(job: Mapping[str, Any]) -> list[int] | None:
    """The global indices a compact retry job stands for, from its container environment."""
    return names.indices_from_environment(environment(job))


def row_from_job(job: Mapping[str, Any], run_id: str, plan: Plan | None) -> Row:
    """Rebuild a record row from DescribeJobs output (tags, environment), preferring the plan's own figures."""
    name = str(job["jobName"])
    tags = job.get("tags") or {}
    env = environment(job)
    size = int((job.get("arrayProperties") or {}).get("size") or 0)
    parsed = names.parse_name(name)
    submission = plan.by_name().get(parsed.plan_name or "") if plan else None
    if tags.get(names.TAG_KIND) == names.RETRY or parsed.generation:
        kind = names.RETRY
    elif tags.get(names.TAG_MODULE) == names.BARRIER:
        kind = names.BARRIER
    else:
        kind = names.MODULE
    created = job.get("createdAt")
    submitted_at = datetime.fromtimestamp(int(created) / 1000, UTC).isoformat(timespec="seconds") if created else ""
    if submission is not None:
        stage, module, job_index, offset = (
            submission.stage,
            submission.module,
            submission.job_index,
            submission.array_offset,
        )
    else:
        stage, module = str(tags.get(names.TAG_STAGE, "")), str(tags.get(names.TAG_MODULE, ""))
        job_index = int(env.get(names.ENV_JOB_INDEX) or 0)
        offset = int(env.get(names.ENV_ARRAY_OFFSET) or 0)
    if kind == names.RETRY and index_map(job) is not None:
        offset = 0
    return Row(
        stage=stage,
        algorithm=module,
        job_name=name,
        job_id=str(job["jobId"]),
        run_id=run_id,
        kind=kind,
        job_index=job_index,
        array_size=size,
        array_offset=offset,
        job_queue=queue_name(str(job.get("jobQueue", ""))),
        job_definition=definition_name(str(job.get("jobDefinition", ""))),
        depends_on=";".join(str(d.get("jobId", "")) for d in job.get("dependsOn") or []),
        submitted_at=submitted_at,
        plan_digest=plan.digest if plan and kind != names.RETRY else "",
    )


def list_run_jobs(batch: Batch, run_id: str, queues: Iterable[str]) -> list[dict[str, Any]]:
    """Summaries of the run's jobs in ``queues``, any status (:meth:`Batch.jobs_named`, the one lookup)."""
    return batch.jobs_named(names.run_name_prefix(run_id), queues)


def discover(batch: Batch, run_id: str, queues: Iterable[str], plan: Plan | None) -> RunView:
    """The run as the Batch API knows it: jobs found by name in each queue, confirmed by their run tag."""
    summaries = list_run_jobs(batch, run_id, queues)
    described = batch.describe_jobs([s["jobId"] for s in summaries])
    # The name filter is a prefix match, so run "a" also matches run "a_b": the run tag decides.
    jobs = [j for j in described if (j.get("tags") or {}).get(names.TAG_RUN, run_id) == run_id]
    jobs.sort(key=lambda j: (int(j.get("createdAt") or 0), str(j["jobName"])))
    view = RunView(run_id=run_id, rows=[], source="api", jobs={j["jobId"]: j for j in jobs})
    by_name: dict[str, list[str]] = {}
    for job in jobs:
        by_name.setdefault(str(job["jobName"]), []).append(str(job["jobId"]))
        if len(by_name[str(job["jobName"])]) == 1:
            view.rows.append(row_from_job(job, run_id, plan))
    view.duplicates = [(name, ids[1:]) for name, ids in by_name.items() if len(ids) > 1]
    return view


def open_run(
    batch: Batch,
    *,
    run_id: str | None,
    csv_path: Path | None,
    plan_for: Any = None,
    queues: Sequence[str] = (),
    reconcile: bool = True,
    recorded: bool = False,
    rows: Sequence[Row] | None = None,
) -> RunView:
    """Load a run from the CSV (or the ledger's ``rows``), the API, or both.

    ``plan_for(run_id)`` returns the run's plan (or None without a config). With a CSV and ``reconcile``, jobs AWS
    holds but the CSV lacks (a crash between SubmitJob's answer and the fsync) are added to the view, marked so
    the caller can append them to the record. ``recorded``: the ledger holds the run's header, so a run with no
    job anywhere is a run killed before its first SubmitJob, not an unknown run.
    """
    if rows is not None:
        rows = list(rows)
    elif csv_path is not None and csv_path.exists():
        rows = read_rows(csv_path, run_id)
        if run_id is None:
            if not rows:
                raise RecordError(f"{csv_path}: holds no run (pass --run-id to find the jobs by name)")
            run_id = rows[0].run_id
    else:
        rows = []
    if run_id is None:
        where = f"{csv_path} does not exist; " if csv_path is not None else ""
        raise RecordError(f"{where}pass --run-id ID or -s submissions.csv to name the run")
    plan = plan_for(run_id) if plan_for else None
    all_queues = [*queues, *(r.job_queue for r in rows)]
    if plan is not None:
        all_queues.extend(s.job_queue for s in plan.submissions)
    if not rows:
        view = discover(batch, run_id, all_queues, plan)
        if not view.rows and recorded:
            return RunView(run_id=run_id, rows=[], source="ledger")  # killed before its first SubmitJob
        if not view.rows:
            raise RecordError(
                f"run {run_id}: no submission record"
                + (f" in {csv_path}" if csv_path is not None else "")
                + f" and no job named {names.run_name_prefix(run_id)}* in queues "
                + ", ".join(dict.fromkeys(q for q in all_queues if q))
            )
        # The record is lost (or never held this run): everything found belongs in it.
        view.unrecorded = list(view.rows)
        return view
    view = RunView(run_id=run_id, rows=rows, source="csv")
    if reconcile:
        api = discover(batch, run_id, all_queues, plan)
        view.jobs.update(api.jobs)
        recorded_ids_by_name = {r.job_name: r.job_id for r in rows}
        recorded_ids = set(recorded_ids_by_name.values())
        view.unrecorded = [
            r for r in api.rows if r.job_name not in recorded_ids_by_name and r.job_id not in recorded_ids
        ]
        if view.unrecorded:
            view.rows.extend(view.unrecorded)
            view.source = "csv+api"
        ids_by_name: dict[str, list[str]] = {}
        for job in api.jobs.values():
            ids_by_name.setdefault(str(job["jobName"]), []).append(str(job["jobId"]))
        view.duplicates = []
        for name, ids in ids_by_name.items():
            keep = recorded_ids_by_name.get(name, ids[0])
            extra = [i for i in ids if i != keep]
            if extra:
                view.duplicates.append((name, extra))
    return view


def describe(batch: Batch, view: RunView) -> RunView:
    """Fill ``view.jobs`` for every row not described yet (DescribeJobs takes 100 ids per call)."""
    missing = [r.job_id for r in view.rows if r.job_id not in view.jobs]
    for job in batch.describe_jobs(missing):
        view.jobs[job["jobId"]] = job
    return view


def refresh(batch: Batch, view: RunView) -> RunView:
    """Describe every job of the view again (a new poll)."""
    return describe(batch, replace(view, jobs={}))
