"""After a run is submitted: compare the jobs AWS holds under the run's names with the record, and cancel any
second job for one name."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ..aws.api import Batch
from ..planning.plan import Plan
from ..views.runview import list_run_jobs
from .cancel import StopReport, stop_jobs


@dataclass(frozen=True)
class Duplicate:
    name: str
    job_id: str  # the extra job AWS holds
    kept: str  # the recorded job of that name


@dataclass
class Reconciled:
    duplicates: list[Duplicate] = field(default_factory=list)
    stopped: StopReport | None = None


def find_duplicates(
    batch: Batch, plan: Plan, job_ids: Mapping[str, str], names: Collection[str] | None = None
) -> list[Duplicate]:
    """Jobs AWS lists under a name of this run (of ``names`` only, when given) whose id is not the recorded one
    (ListJobs by name, in the queues of those names)."""
    wanted = set(job_ids) if names is None else set(names) & set(job_ids)
    queues = [s.job_queue for s in plan.submissions if s.name in wanted]
    duplicates = []
    for summary in list_run_jobs(batch, plan.run_id, queues):
        name, job_id = str(summary["jobName"]), str(summary["jobId"])
        kept = job_ids.get(name)
        if name in wanted and kept is not None and job_id != kept:
            duplicates.append(Duplicate(name, job_id, kept))
    return sorted(duplicates, key=lambda d: (d.name, d.job_id))


def cancel_duplicates(
    batch: Batch, plan: Plan, job_ids: Mapping[str, str], names: Collection[str] | None = None
) -> Reconciled:
    """Find the run's duplicate jobs (under ``names``: those whose SubmitJob reply was lost) and stop them; the
    recorded jobs are left alone. Only names with a lost reply are looked at: a second job under another name is
    not this process's doing, and cancelling it could stop a run someone started with the same id."""
    result = Reconciled(find_duplicates(batch, plan, job_ids, names))
    if result.duplicates:
        reason = f"Confluence run {plan.run_id}: duplicate of a recorded job (a SubmitJob reply was lost)"
        result.stopped = stop_jobs(batch, [d.job_id for d in result.duplicates], reason)
    return result
