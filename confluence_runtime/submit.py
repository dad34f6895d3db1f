"""Apply a plan: the only caller of ``submit_job``.

Submissions go wave by wave (a wave depends only on earlier waves), concurrently inside a wave. Pacing and
retrying belong to the AWS layer alone (``Batch.pacer``): an adaptive SubmitJob rate whose ceiling is ``rate``
(below AWS's 50 SubmitJob/s account limit), throttled calls retried within a deadline. A SubmitJob whose reply
was lost (``AmbiguousFailure``) is not sent again blindly: it stops the run like any other failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .aws import Batch, describe_error
from .plan import Plan, Submission
from .record import Recorder, Row

log = logging.getLogger("confluence")

DEFAULT_RATE = 40.0
DEFAULT_WORKERS = 8


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

    @property
    def ok(self) -> bool:
        return self.failure is None


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
) -> Outcome:
    """Submit every submission of ``plan`` not in ``known`` (name -> job id), recording each one as it lands.

    ``sleep`` is unused (waits happen in the AWS layer) and kept for callers that pass it.
    """
    outcome = Outcome(job_ids=dict(known or {}))
    batch.pacer.set_rate("SubmitJob", rate)
    stop = threading.Event()

    def submit_one(submission: Submission) -> str | None:
        if stop.is_set():
            return None
        return batch.submit_job(submission.request(outcome.job_ids))

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
            if outcome.failure:
                break
    return outcome
