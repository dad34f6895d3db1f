"""Apply a plan: the only caller of ``submit_job``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..aws.api import Batch, describe_error
from ..aws.pacing import AmbiguousFailure
from ..planning.plan import Plan
from ..planning.shaping import Submission
from ..records.record import Recorder, Row

log = logging.getLogger("confluence")

DEFAULT_RATE = 40.0
DEFAULT_WORKERS = 8
LOST_REPLY_ATTEMPTS = 3  # SubmitJob calls for one job whose replies keep getting lost, each after a lookup by name


@dataclass(frozen=True)
class Failure:
    submission: Submission
    message: str


@dataclass
class Outcome:
    """What a submission pass did: ids of every job of the run known so far, and the failure that stopped it."""

    job_ids: dict[str, str]
    submitted: list[str] = field(default_factory=list)
    failure: Failure | None = None
    lost_replies: list[str] = field(default_factory=list)  # names whose SubmitJob reply was lost at least once
    stopped_by: str | None = None  # who asked the submission to stop (``should_stop``: a `cancel`), if anyone

    @property
    def ok(self) -> bool:
        return self.failure is None


def find_job(batch: Batch, submission: Submission) -> str | None:
    """The id of the job AWS holds under this submission's name (unique within a run), if ListJobs shows one: the
    oldest, through the runtime's one lookup (:meth:`Batch.jobs_named`)."""
    found = batch.jobs_named(submission.name, [submission.job_queue], [submission.name])
    return str(found[0]["jobId"]) if found else None


def submit_plan(
    plan: Plan,
    batch: Batch,
    recorder: Recorder,
    *,
    known: Mapping[str, str] | None = None,
    rate: float = DEFAULT_RATE,
    workers: int = DEFAULT_WORKERS,
    on_submitted: Callable[[Submission, str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], object | None] | None = None,
) -> Outcome:
    """Submit every submission of ``plan`` not in ``known`` (name -> job id), recording each one as it lands.

    ``should_stop`` is asked before each SubmitJob; once it answers (who asked: anything but None) nothing more
    is submitted and ``outcome.stopped_by`` says who asked. ``sleep`` is unused (waits happen in the AWS layer)
    and kept for callers that pass it.
    """
    outcome = Outcome(job_ids=dict(known or {}))
    batch.pacer.set_rate("SubmitJob", rate)
    stop = threading.Event()

    def submit_one(submission: Submission) -> str | None:
        request = submission.request(outcome.job_ids)
        for attempt in range(1, LOST_REPLY_ATTEMPTS + 1):
            if not stop.is_set() and should_stop is not None:
                asked = should_stop()
                if asked is not None:
                    outcome.stopped_by = outcome.stopped_by or str(asked)
                    stop.set()
            if stop.is_set():
                return None
            try:
                return batch.submit_job(request)
            except AmbiguousFailure as e:
                outcome.lost_replies.append(submission.name)
                found = find_job(batch, submission)
                if found is not None:
                    log.warning("%s: %s; AWS holds it as %s", submission.name, e.detail, found)
                    return found
                if attempt == LOST_REPLY_ATTEMPTS:
                    raise
                log.warning("%s: %s; not listed by name, submitting it again", submission.name, e.detail)
        return None  # pragma: no cover - the loop returns or raises

    def land(future: Future[str | None], submission: Submission) -> None:
        """Record one finished submission (or the failure that stops the run)."""
        try:
            job_id = future.result()
        except Exception as e:
            stop.set()
            if outcome.failure is None:
                outcome.failure = Failure(submission, describe_error(e))
                log.error("submitting %s failed: %s", submission.name, outcome.failure.message)
            return
        if job_id is None:
            return
        outcome.job_ids[submission.name] = job_id
        outcome.submitted.append(submission.name)
        dependency_ids = [outcome.job_ids[d.name] for d in submission.depends_on]
        recorder.append(Row.for_submission(submission, job_id, plan.run_id, plan.digest, dependency_ids))
        log.info("submitted %s as %s", submission.name, job_id)
        if on_submitted:
            on_submitted(submission, job_id)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="submit") as pool:
        for wave in plan.waves():
            todo = [s for s in wave if s.name not in outcome.job_ids]
            futures: dict[Future[str | None], Submission] = {pool.submit(submit_one, s): s for s in todo}
            try:
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        land(future, futures.pop(future))
            except KeyboardInterrupt:
                # Ctrl-C: start nothing new, but record what AWS is accepting right now before giving up.
                stop.set()
                for future, submission in futures.items():
                    land(future, submission)
                raise
            if outcome.failure or outcome.stopped_by:
                break
    return outcome
