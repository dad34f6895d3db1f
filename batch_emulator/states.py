"""The AWS Batch job state machine on a controllable clock.

One ``Engine`` per server process owns a heap of timed events and advances it from a background ticker thread
(so ``status --watch`` sees progress without API calls) and before every Batch API answer (so reads are exact).
A runnable unit is a ``Leaf``: a plain job or one array child. Array children are small slotted objects with
no thread each (moto's Job is a Thread; starting 10,000 of them is what we avoid). Parent counters
(statusSummary) are updated incrementally, so describing a 10,000-child array is O(1).
"""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .injection import CONTAINER_EXITED, Failure, Injector, retry_decision

SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED = (
    "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED",
)
STATUSES = (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED)
TERMINAL = frozenset({SUCCEEDED, FAILED})
CANCELLABLE = frozenset({SUBMITTED, PENDING, RUNNABLE})
TERMINABLE = frozenset({SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING})

# AWS wording when a job's dependency fails; the dependent never runs.
DEPENDENT_FAILED = "Dependent Job failed"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
RUN_TAG = "confluence:run"


@dataclass
class Durations:
    """Seconds a job spends RUNNING (per attempt), and in each of SUBMITTED, RUNNABLE and STARTING (``queue``).

    Most specific wins: run tag, then job-name glob (first match in insertion order), then job definition name.
    """

    default: float = 0.1
    queue: float = 0.02
    by_definition: dict[str, float] = field(default_factory=dict)
    by_name: dict[str, float] = field(default_factory=dict)
    by_run: dict[str, float] = field(default_factory=dict)

    def running_for(self, job_name: str, definition_name: str, tags: dict[str, str]) -> float:
        run_id = tags.get(RUN_TAG)
        if run_id is not None and run_id in self.by_run:
            return self.by_run[run_id]
        for pattern, seconds in self.by_name.items():
            if fnmatch.fnmatchcase(job_name, pattern):
                return seconds
        return self.by_definition.get(definition_name, self.default)


class Clock:
    """Monotonic seconds that can be paused; epoch milliseconds derived from it for AWS timestamps."""

    def __init__(self) -> None:
        self._mono0 = time.monotonic()
        self._epoch0 = time.time()
        self._offset = 0.0
        self._paused_at: float | None = None

    def now(self) -> float:
        if self._paused_at is not None:
            return self._paused_at
        return time.monotonic() - self._offset

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = self.now()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._offset = time.monotonic() - self._paused_at
            self._paused_at = None

    def epoch_ms(self, t: float) -> int:
        return int((self._epoch0 + (t - self._mono0)) * 1000)


class Leaf:
    """One runnable unit: a plain job (index None) or an array child."""

    __slots__ = (
        "attempt_started",
        "attempts",
        "container_reason",
        "dependents",
        "exit_code",
        "failure",
        "index",
        "job",
        "seq",
        "started_at",
        "status",
        "status_reason",
        "stopped_at",
        "waiting",
    )

    def __init__(self, job: BatchJob, index: int | None) -> None:
        self.job = job
        self.index = index
        self.status = SUBMITTED
        self.status_reason: str | None = None
        self.exit_code: int | None = None
        self.container_reason: str | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.attempts: list[dict[str, Any]] = []
        self.waiting = 0
        self.dependents: list[Leaf | BatchJob] = []
        self.seq = 0
        self.failure: Failure | None = None
        self.attempt_started = 0.0

    @property
    def job_id(self) -> str:
        return self.job.job_id if self.index is None else f"{self.job.job_id}:{self.index}"

    @property
    def arn(self) -> str:
        return self.job.arn if self.index is None else f"{self.job.arn}:{self.index}"


class BatchJob:
    """What SubmitJob created: a plain job (one Leaf) or an array parent (``size`` Leaf children)."""

    def __init__(self, *, job_id: str, arn: str, name: str, request: dict[str, Any], definition: Any,
                 queue_arn: str, tags: dict[str, str], created_at: float, size: int | None, running: float,
                 retry_strategy: dict[str, Any] | None, timeout: dict[str, Any] | None) -> None:
        self.job_id = job_id
        self.arn = arn
        self.name = name
        self.request = request
        self.definition = definition
        self.queue_arn = queue_arn
        self.tags = tags
        self.created_at = created_at
        self.size = size
        self.running = running
        self.retry_strategy = retry_strategy
        self.timeout = timeout
        self.status_reason: str | None = None  # parent only: the cancel/terminate reason
        self.waiting = 0  # parent-level dependencies still unfinished (arrays only; plain jobs use the leaf)
        self.dependents: list[Leaf | BatchJob] = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.counts = dict.fromkeys(STATUSES, 0)
        if size is None:
            self.leaf: Leaf | None = Leaf(self, None)
            self.children: list[Leaf] = []
        else:
            self.leaf = None
            self.children = [Leaf(self, i) for i in range(size)]
            self.counts[SUBMITTED] = size

    @property
    def is_array(self) -> bool:
        return self.size is not None

    @property
    def status(self) -> str:
        if self.leaf is not None:
            return self.leaf.status
        # AWS: a parent is only ever SUBMITTED, PENDING, SUCCEEDED or FAILED; PENDING once any child moved on.
        done = self.counts[SUCCEEDED] + self.counts[FAILED]
        if done == self.size:
            return FAILED if self.counts[FAILED] else SUCCEEDED
        return SUBMITTED if self.counts[SUBMITTED] == self.size else PENDING

    def units(self) -> list[Leaf]:
        return [self.leaf] if self.leaf is not None else self.children


class Engine:
    """Advances every job of the process; all state changes happen under ``lock``."""

    def __init__(self, injector: Injector, tick: float = 0.01) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.injector = injector
        self.durations = Durations()
        self._heap: list[tuple[float, int, Leaf, int]] = []
        self._counter = itertools.count()
        self._notices: deque[tuple[Leaf | BatchJob, bool]] = deque()
        self._tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="batch-emulator-clock", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            self.advance()

    def reset(self) -> None:
        with self.lock:
            self._heap.clear()
            self._notices.clear()
            self.durations = Durations()
            self.clock.resume()

    def forget(self, jobs: list[BatchJob]) -> None:
        """Drop the timed events of jobs whose moto backend was reset."""
        with self.lock:
            gone = {id(j) for j in jobs}
            self._heap = [e for e in self._heap if id(e[2].job) not in gone]
            heapq.heapify(self._heap)

    # -- scheduling --------------------------------------------------------------------------------------------
    def _schedule(self, leaf: Leaf, at: float) -> None:
        leaf.seq += 1
        heapq.heappush(self._heap, (at, next(self._counter), leaf, leaf.seq))

    def advance(self) -> None:
        with self.lock:
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now:
                at, _, leaf, seq = heapq.heappop(self._heap)
                if seq == leaf.seq and leaf.status not in TERMINAL:
                    self._on_timer(leaf, at)
            self._drain()

    def admit(self, job: BatchJob, deps: list[tuple[Leaf | BatchJob, Leaf | BatchJob]]) -> None:
        """Start a freshly submitted job; ``deps`` are (waiter, target) pairs already validated."""
        with self.lock:
            now = job.created_at
            if job.is_array and any(waiter is job for waiter, _ in deps):
                for child in job.children:  # released together once the parent's own dependencies finish
                    child.waiting += 1
            for waiter, target in deps:
                waiter.waiting += 1
                if target.status in TERMINAL:
                    self._notices.append((waiter, target.status == SUCCEEDED))
                else:
                    target.dependents.append(waiter)
            for unit in job.units():
                self._schedule(unit, now + self.durations.queue)
            self._drain()

    # -- transitions -------------------------------------------------------------------------------------------
    def _set(self, leaf: Leaf, status: str) -> None:
        job = leaf.job
        if job.is_array:
            job.counts[leaf.status] -= 1
            job.counts[status] += 1
        leaf.status = status

    def _on_timer(self, leaf: Leaf, at: float) -> None:
        status = leaf.status
        if status == SUBMITTED:
            if leaf.waiting > 0:
                self._set(leaf, PENDING)
            else:
                self._runnable(leaf, at)
        elif status == RUNNABLE:
            self._set(leaf, STARTING)
            self._schedule(leaf, at + self.durations.queue)
        elif status == STARTING:
            self._start_attempt(leaf, at)
        elif status == RUNNING:
            self._end_attempt(leaf, at)

    def _runnable(self, leaf: Leaf, at: float) -> None:
        self._set(leaf, RUNNABLE)
        self._schedule(leaf, at + self.durations.queue)

    def _start_attempt(self, leaf: Leaf, at: float) -> None:
        job = leaf.job
        self._set(leaf, RUNNING)
        leaf.attempt_started = at
        if leaf.started_at is None:
            leaf.started_at = at
        if job.started_at is None:
            job.started_at = at
        attempt = len(leaf.attempts) + 1
        leaf.failure = self.injector.failure_for(job.name, leaf.index, attempt)
        duration = job.running
        limit = (job.timeout or {}).get("attemptDurationSeconds")
        if limit is not None and float(limit) < duration:
            duration = float(limit)
            leaf.failure = Failure(exit_code=None, reason=TIMEOUT_REASON)
        self._schedule(leaf, at + duration)

    def _end_attempt(self, leaf: Leaf, at: float) -> None:
        failure = leaf.failure
        self._record_attempt(leaf, at, failure)
        if failure is None:
            self._finish(leaf, SUCCEEDED, CONTAINER_EXITED, at, exit_code=0)
        elif retry_decision(leaf.job.retry_strategy, len(leaf.attempts), failure):
            leaf.status_reason = failure.status_reason
            self._runnable(leaf, at)
        else:
            self._finish(leaf, FAILED, failure.status_reason, at, exit_code=failure.exit_code, reason=failure.reason)

    def _record_attempt(self, leaf: Leaf, at: float, failure: Failure | None, reason: str | None = None) -> None:
        container: dict[str, Any] = {
            "logStreamName": f"{leaf.job.definition.name}/default/{leaf.job_id.replace(':', '-')}",
            "networkInterfaces": [],
        }
        if failure is None and reason is None:
            container["exitCode"] = 0
            status_reason = CONTAINER_EXITED
        elif failure is not None:
            if failure.exit_code is not None:
                container["exitCode"] = failure.exit_code
            if failure.reason is not None:
                container["reason"] = failure.reason
            status_reason = failure.status_reason
        else:
            status_reason = reason or ""
        leaf.attempts.append({
            "container": container,
            "startedAt": self.clock.epoch_ms(leaf.attempt_started),
            "stoppedAt": self.clock.epoch_ms(at),
            "statusReason": status_reason,
        })

    def _finish(self, leaf: Leaf, status: str, status_reason: str | None, at: float,
                exit_code: int | None = None, reason: str | None = None) -> None:
        self._set(leaf, status)
        leaf.seq += 1  # invalidates any pending timer
        leaf.status_reason = status_reason
        leaf.exit_code = exit_code
        leaf.container_reason = reason
        leaf.stopped_at = at
        ok = status == SUCCEEDED
        for waiter in leaf.dependents:
            self._notices.append((waiter, ok))
        leaf.dependents = []
        job = leaf.job
        if not job.is_array:
            job.stopped_at = at
            targets = job.dependents
        elif job.counts[SUCCEEDED] + job.counts[FAILED] == job.size:
            job.stopped_at = at
            ok = job.counts[FAILED] == 0
            targets = job.dependents
        else:
            return
        for waiter in targets:
            self._notices.append((waiter, ok))
        job.dependents = []

    def _drain(self) -> None:
        """Deliver dependency outcomes iteratively: a SEQUENTIAL chain of 10,000 must not recurse."""
        now = self.clock.now()
        while self._notices:
            waiter, ok = self._notices.popleft()
            if isinstance(waiter, BatchJob):  # an array parent's own dependencies gate all of its children
                if not ok:
                    for child in waiter.children:
                        if child.status in CANCELLABLE:
                            self._notices.append((child, False))
                    continue
                waiter.waiting -= 1
                if waiter.waiting == 0:
                    self._notices.extend((child, True) for child in waiter.children)
                continue
            if waiter.status in TERMINAL:
                continue
            if not ok:
                if waiter.status in CANCELLABLE:
                    self._finish(waiter, FAILED, DEPENDENT_FAILED, now)
                continue
            waiter.waiting -= 1
            if waiter.waiting == 0 and waiter.status == PENDING:
                self._runnable(waiter, now)

    # -- user actions ------------------------------------------------------------------------------------------
    def stop_units(self, job: BatchJob, units: list[Leaf], reason: str, *, terminate: bool) -> None:
        """CancelJob (SUBMITTED/PENDING/RUNNABLE only, a no-op later) or TerminateJob (also STARTING/RUNNING).

        Called on an array parent, ``units`` is every child; dependents then fail as after any failed dependency.
        """
        allowed = TERMINABLE if terminate else CANCELLABLE
        with self.lock:
            now = self.clock.now()
            touched = False
            for leaf in units:
                if leaf.status not in allowed:
                    continue
                touched = True
                if leaf.status == RUNNING:
                    self._record_attempt(leaf, now, None, reason=reason)
                self._finish(leaf, FAILED, reason, now)
            if touched and job.is_array and len(units) > 1:
                job.status_reason = reason
            self._drain()
