"""The AWS Batch job state machine on a controllable clock.

One ``Engine`` per server process owns a heap of timed events and advances it from a background ticker thread
(so ``status --watch`` sees progress without API calls) and before every Batch API answer (so reads are exact).
A runnable unit is a ``Leaf``: a plain job or one array child. Array children are small slotted objects with
no thread each (moto's Job is a Thread; starting 10,000 of them is what we avoid). Parent counters
(statusSummary) are updated incrementally, so describing a 10,000-child array is O(1).

Side effects a client can observe outside Batch (EventBridge events, CloudWatch Logs streams) are reported to an
``Observer`` while the state changes under the lock and delivered by it after the lock is released, so the
state machine itself knows nothing about moto's other services.
"""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from .injection import CONTAINER_EXITED, Failure, Injector, retry_decision

SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED = (
    "SUBMITTED",
    "PENDING",
    "RUNNABLE",
    "STARTING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
)
STATUSES = (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED)
TERMINAL = frozenset({SUCCEEDED, FAILED})
CANCELLABLE = frozenset({SUBMITTED, PENDING, RUNNABLE})
TERMINABLE = frozenset({SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING})

# AWS wording when a job's dependency fails; the dependent never runs.
DEPENDENT_FAILED = "Dependent Job failed"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
RUN_TAG = "confluence:run"
# AWS: "The minimum value for the timeout is 60 seconds." Tests may lower it (Durations.min_timeout).
MIN_TIMEOUT_SECONDS = 60
# ECS task ids (32 hex digits) need only be unique; uuid.uuid4() cost more than the rest of an attempt.
_TASK_IDS = random.Random()

# An attempt as recorded, kept as a flat tuple (a dict per attempt would be several objects for the garbage
# collector to walk, millions of them in a global run): task id, log stream, started and stopped (epoch ms),
# exit code, container reason, status reason. ``attempt_detail`` renders it as DescribeJobs does.
Attempt = tuple[str, str | None, int, int, int | None, str | None, str]


def attempt_detail(job: BatchJob, attempt: Attempt) -> dict[str, Any]:
    task_id, stream, started, stopped, exit_code, reason, status_reason = attempt
    container: dict[str, Any] = {
        "taskArn": f"arn:aws:ecs:{job.region}:{job.account_id}:task/{task_id}",
        "networkInterfaces": [],
    }
    if stream is not None:
        container["logStreamName"] = stream
    if exit_code is not None:
        container["exitCode"] = exit_code
    if reason is not None:
        container["reason"] = reason
    return {"container": container, "startedAt": started, "stoppedAt": stopped, "statusReason": status_reason}


@dataclass
class Durations:
    """Seconds a job spends RUNNING (per attempt), and in each of SUBMITTED, RUNNABLE and STARTING (``queue``).

    Most specific wins: run tag, then job-name glob (first match in insertion order), then job definition name.
    ``min_timeout`` is the smallest ``attemptDurationSeconds`` SubmitJob accepts (AWS: 60); tests that want a
    timeout to fire within a second opt into a lower value.
    """

    default: float = 0.1
    queue: float = 0.02
    min_timeout: int = MIN_TIMEOUT_SECONDS
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


HOLDABLE = (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING)


@dataclass(frozen=True)
class Hold:
    """Keep matching jobs in ``state`` until released: by job id (a plain job, an array parent -- all of its
    children -- or one ``parent:index`` child) or by an fnmatch pattern on the job name."""

    hold_id: int
    state: str
    job_id: str | None = None
    name_glob: str | None = None

    def matches(self, leaf: Leaf) -> bool:
        if leaf.status != self.state:
            return False
        if self.job_id is not None and self.job_id not in (leaf.job.job_id, leaf.job_id):
            return False
        return self.name_glob is None or fnmatch.fnmatchcase(leaf.job.name, self.name_glob)

    def as_json(self) -> dict[str, Any]:
        return {"hold_id": self.hold_id, "state": self.state, "job_id": self.job_id, "name_glob": self.name_glob}


class Observer(Protocol):
    """What the engine reports while it holds its lock; ``deliver`` runs after the lock is released."""

    def changed(self, job: BatchJob, leaf: Leaf | None, at: float) -> None: ...

    def attempt_started(self, leaf: Leaf, at: float) -> None: ...

    def attempt_ended(self, leaf: Leaf, at: float, failure: Failure | None, terminated: bool) -> None: ...

    def deliver(self) -> None: ...


class NullObserver:
    def changed(self, job: BatchJob, leaf: Leaf | None, at: float) -> None:
        return None

    def attempt_started(self, leaf: Leaf, at: float) -> None:
        return None

    def attempt_ended(self, leaf: Leaf, at: float, failure: Failure | None, terminated: bool) -> None:
        return None

    def deliver(self) -> None:
        return None


class Leaf:
    """One runnable unit: a plain job (index None) or an array child."""

    __slots__ = (
        "attempt_started",
        "attempts",
        "cancel_reason",
        "container_reason",
        "created_at",
        "dependents",
        "exit_code",
        "failure",
        "index",
        "job",
        "log_group",
        "seq",
        "started_at",
        "status",
        "status_reason",
        "stopped_at",
        "stream_name",
        "task_id",
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
        self.attempts: tuple[Attempt, ...] = ()  # a tuple of flat tuples: nothing for the collector to walk
        self.waiting = 0
        self.dependents: list[Leaf | BatchJob] | None = None  # created on the first dependent: most have none
        self.seq = 0
        self.failure: Failure | None = None
        self.attempt_started = 0.0
        # AWS: "A PENDING job is canceled after all dependency jobs are completed." The request waits here
        # until the dependencies finish; None when nobody asked.
        self.cancel_reason: str | None = None
        self.created_at: float | None = None  # array children: when the parent spawned them
        self.task_id: str | None = None  # the current attempt's ECS task id (it names the log stream)
        self.stream_name: str | None = None  # AWS: a log stream exists only once an attempt reached RUNNING
        self.log_group: str | None = None

    @property
    def job_id(self) -> str:
        return self.job.job_id if self.index is None else f"{self.job.job_id}:{self.index}"

    @property
    def arn(self) -> str:
        return self.job.arn if self.index is None else f"{self.job.arn}:{self.index}"


class BatchJob:
    """What SubmitJob created: a plain job (one Leaf) or an array parent (``size`` Leaf children)."""

    def __init__(
        self,
        *,
        job_id: str,
        arn: str,
        name: str,
        request: dict[str, Any],
        definition: Any,
        queue_arn: str,
        tags: dict[str, str],
        created_at: float,
        size: int | None,
        running: float,
        retry_strategy: dict[str, Any] | None,
        timeout: dict[str, Any] | None,
        account_id: str = "",
        region: str = "",
        serial: int = 0,
    ) -> None:
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
        self.account_id = account_id
        self.region = region
        self.serial = serial  # submission order, to order jobs created within the same clock reading
        # Parent only: why the parent failed as a whole (cancel, terminate, a failed parent-level dependency).
        self.status_reason: str | None = None
        # Parent only: AWS "The array parent job is canceled when all child jobs are completed."
        self.cancel_reason: str | None = None
        self.waiting = 0  # parent-level dependencies still unfinished (arrays only; plain jobs use the leaf)
        self.dependents: list[Leaf | BatchJob] | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.finished_at: float | None = None  # when the job became SUCCEEDED/FAILED (retention counts from it)
        self.summary_updated_at = created_at
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
            return FAILED if self.counts[FAILED] or self.cancel_reason is not None else SUCCEEDED
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
        self.observer: Observer = NullObserver()
        self.retention: float | None = None  # seconds a finished job stays visible; None = for ever
        # Timed events, one heap entry per instant holding its (leaf, seq) pairs in scheduling order: the
        # children of an array move together, so a 10,000-child step is one heap operation, not 10,000.
        self._heap: list[tuple[float, int, list[tuple[Leaf, int]]]] = []
        self._instants: dict[float, list[tuple[Leaf, int]]] = {}  # the instants not yet reached
        self._counter = itertools.count()
        self._notices: deque[tuple[Leaf | BatchJob, bool]] = deque()
        self._tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.holds: dict[int, Hold] = {}
        self._hold_ids = itertools.count(1)
        # Leaves a hold stopped, keyed by id(): their timer fired (or their dependencies finished) while held.
        self._held: dict[int, Leaf] = {}

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
            self._instants.clear()
            self._notices.clear()
            self.durations = Durations()
            self.retention = None
            self.holds.clear()
            self._held.clear()
            self._hold_ids = itertools.count(1)
            self.clock.resume()

    def forget(self, jobs: list[BatchJob]) -> None:
        """Drop the timed events of jobs whose moto backend was reset."""
        with self.lock:
            gone = {id(j) for j in jobs}
            for _, _, events in self._heap:
                events[:] = [e for e in events if id(e[0].job) not in gone]

    # -- holds -------------------------------------------------------------------------------------------------
    def hold(self, state: str, job_id: str | None = None, name_glob: str | None = None) -> Hold:
        if state not in HOLDABLE:
            raise ValueError(f"state must be one of {' | '.join(HOLDABLE)}, got {state!r}")
        if (job_id is None) == (name_glob is None):
            raise ValueError("give exactly one of job_id or name_glob")
        with self.lock:
            hold = Hold(next(self._hold_ids), state, job_id, name_glob)
            self.holds[hold.hold_id] = hold
            return hold

    def release(self, hold_ids: list[int] | None = None) -> list[Hold]:
        """Drop the given holds (None: all); what they held moves on from now, as if its timer fired now."""
        with self.lock:
            ids = list(self.holds) if hold_ids is None else [i for i in hold_ids if i in self.holds]
            released = [self.holds.pop(i) for i in ids]
            now = self.clock.now()
            for key, leaf in list(self._held.items()):
                if leaf.status in TERMINAL or not self._is_held(leaf):
                    del self._held[key]
                    if leaf.status == PENDING:
                        self._notices.append((leaf, True))
                        leaf.waiting += 1  # the notice takes back the one it gives
                    elif leaf.status not in TERMINAL:
                        self._schedule(leaf, now)
            self._drain()
        self.observer.deliver()
        return released

    def held_ids(self, hold: Hold) -> list[str]:
        with self.lock:
            return sorted(leaf.job_id for leaf in self._held.values() if hold.matches(leaf))

    def _is_held(self, leaf: Leaf) -> bool:
        return any(hold.matches(leaf) for hold in self.holds.values())

    def _keep(self, leaf: Leaf) -> bool:
        """True when a hold keeps ``leaf`` where it is (it is parked until released)."""
        if self.holds and self._is_held(leaf):
            self._held[id(leaf)] = leaf
            return True
        return False

    # -- scheduling --------------------------------------------------------------------------------------------
    def _schedule(self, leaf: Leaf, at: float) -> None:
        leaf.seq += 1
        events = self._instants.get(at)
        if events is None:
            events = self._instants[at] = []
            heapq.heappush(self._heap, (at, next(self._counter), events))
        events.append((leaf, leaf.seq))

    def advance(self) -> None:
        with self.lock:
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now:
                at, _, events = heapq.heappop(self._heap)
                # Reached: what is scheduled for this same instant from now on goes after these, as in time order.
                del self._instants[at]
                for leaf, seq in events:
                    if seq == leaf.seq and leaf.status not in TERMINAL:
                        self._on_timer(leaf, at)
            self._drain()
        self.observer.deliver()

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
                elif target.dependents is None:
                    target.dependents = [waiter]
                else:
                    target.dependents.append(waiter)
            for unit in job.units():
                self._schedule(unit, now + self.durations.queue)
            self._drain()
        self.observer.deliver()

    # -- transitions -------------------------------------------------------------------------------------------
    def _set(self, leaf: Leaf, status: str, at: float) -> None:
        job = leaf.job
        if job.is_array:
            before = job.status
            job.counts[leaf.status] -= 1
            job.counts[status] += 1
            job.summary_updated_at = at
            leaf.status = status
            self.observer.changed(job, leaf, at)
            if job.status != before:
                if job.status in TERMINAL:
                    job.finished_at = at
                    if job.started_at is not None:  # AWS: stoppedAt only for a job that ran
                        job.stopped_at = at
                self.observer.changed(job, None, at)
            return
        leaf.status = status
        if status in TERMINAL:
            job.finished_at = at
        self.observer.changed(job, leaf, at)

    def _on_timer(self, leaf: Leaf, at: float) -> None:
        if self.holds and self._keep(leaf):
            return
        status = leaf.status
        if status == SUBMITTED:
            if leaf.created_at is None:
                leaf.created_at = at
            if leaf.waiting > 0:
                self._set(leaf, PENDING, at)
            else:
                self._runnable(leaf, at)
        elif status == RUNNABLE:
            self._set(leaf, STARTING, at)
            self._schedule(leaf, at + self.durations.queue)
        elif status == STARTING:
            self._start_attempt(leaf, at)
        elif status == RUNNING:
            self._end_attempt(leaf, at)

    def _runnable(self, leaf: Leaf, at: float) -> None:
        self._set(leaf, RUNNABLE, at)
        self._schedule(leaf, at + self.durations.queue)

    def _start_attempt(self, leaf: Leaf, at: float) -> None:
        job = leaf.job
        leaf.attempt_started = at
        if leaf.started_at is None:
            leaf.started_at = at
        if job.started_at is None:
            job.started_at = at
        leaf.task_id = f"{_TASK_IDS.getrandbits(128):032x}"  # every attempt is a new ECS task, so a new log stream
        attempt = len(leaf.attempts) + 1
        leaf.failure = self.injector.failure_for(job.name, leaf.index, attempt)
        duration = job.running
        limit = (job.timeout or {}).get("attemptDurationSeconds")
        if limit is not None and float(limit) < duration:
            duration = float(limit)
            leaf.failure = Failure(exit_code=None, reason=TIMEOUT_REASON)
        self.observer.attempt_started(leaf, at)  # names the stream before RUNNING is reported
        self._set(leaf, RUNNING, at)
        self._schedule(leaf, at + duration)

    def _end_attempt(self, leaf: Leaf, at: float) -> None:
        failure = leaf.failure
        self.observer.attempt_ended(leaf, at, failure, terminated=False)
        self._record_attempt(leaf, at, failure)
        if failure is None:
            self._finish(leaf, SUCCEEDED, CONTAINER_EXITED, at, exit_code=0)
        elif retry_decision(leaf.job.retry_strategy, len(leaf.attempts), failure):
            leaf.status_reason = failure.status_reason
            self._runnable(leaf, at)
        else:
            self._finish(leaf, FAILED, failure.status_reason, at, exit_code=failure.exit_code, reason=failure.reason)

    def _record_attempt(self, leaf: Leaf, at: float, failure: Failure | None, reason: str | None = None) -> None:
        exit_code: int | None = None
        container_reason: str | None = None
        if failure is None and reason is None:
            exit_code = 0
            status_reason = CONTAINER_EXITED
        elif failure is not None:
            exit_code = failure.exit_code
            container_reason = failure.reason
            status_reason = failure.status_reason
        else:
            status_reason = reason or ""
        leaf.attempts += (
            (
                leaf.task_id or "",
                leaf.stream_name,
                self.clock.epoch_ms(leaf.attempt_started),
                self.clock.epoch_ms(at),
                exit_code,
                container_reason,
                status_reason,
            ),
        )

    def _finish(
        self,
        leaf: Leaf,
        status: str,
        status_reason: str | None,
        at: float,
        exit_code: int | None = None,
        reason: str | None = None,
    ) -> None:
        leaf.seq += 1  # invalidates any pending timer
        leaf.status_reason = status_reason
        leaf.exit_code = exit_code
        leaf.container_reason = reason
        if leaf.started_at is not None:  # AWS: stoppedAt is when the job went from RUNNING to a final state
            leaf.stopped_at = at
        job = leaf.job
        if not job.is_array and leaf.started_at is not None:
            job.stopped_at = at
        self._set(leaf, status, at)
        ok = status == SUCCEEDED
        for waiter in leaf.dependents or ():
            self._notices.append((waiter, ok))
        leaf.dependents = None
        if job.is_array and job.status not in TERMINAL:
            return
        ok = job.status == SUCCEEDED
        for waiter in job.dependents or ():
            self._notices.append((waiter, ok))
        job.dependents = None

    def _drain(self) -> None:
        """Deliver dependency outcomes iteratively: a SEQUENTIAL chain of 10,000 must not recurse."""
        now = self.clock.now()
        while self._notices:
            waiter, ok = self._notices.popleft()
            if isinstance(waiter, BatchJob):  # an array parent's own dependencies gate all of its children
                if not ok:
                    # AWS gives the parent a reason too, not only its children.
                    if waiter.status_reason is None:
                        waiter.status_reason = waiter.cancel_reason or DEPENDENT_FAILED
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
                    # A cancel requested while waiting wins over the dependency's failure: it is what the
                    # operator asked for and what they will look for in statusReason.
                    self._finish(waiter, FAILED, waiter.cancel_reason or DEPENDENT_FAILED, now)
                continue
            waiter.waiting -= 1
            if waiter.waiting == 0:
                if waiter.cancel_reason is not None:
                    self._finish(waiter, FAILED, waiter.cancel_reason, now)
                elif waiter.status == PENDING and not (self.holds and self._keep(waiter)):
                    self._runnable(waiter, now)

    # -- user actions ------------------------------------------------------------------------------------------
    def stop_units(self, job: BatchJob, units: list[Leaf], reason: str, *, terminate: bool) -> None:
        """CancelJob (SUBMITTED/PENDING/RUNNABLE only, a no-op later) or TerminateJob (also STARTING/RUNNING).

        AWS: "A PENDING job is canceled after all dependency jobs are completed" -- a cancelled job that still
        waits for dependencies keeps waiting and fails with the reason once they finish. Called on an array
        parent, ``units`` is every child: "AWS Batch attempts to cancel all child jobs. The array parent job is
        canceled when all child jobs are completed." Dependents then fail as after any failed dependency.
        """
        allowed = TERMINABLE if terminate else CANCELLABLE
        whole_array = job.is_array and len(units) > 1
        with self.lock:
            now = self.clock.now()
            if whole_array and job.status not in TERMINAL:
                job.status_reason = reason
                if not terminate:
                    job.cancel_reason = reason
            for leaf in units:
                if leaf.status not in allowed:
                    continue
                if not terminate and leaf.waiting > 0:
                    leaf.cancel_reason = reason
                    continue
                if leaf.status == RUNNING:
                    self.observer.attempt_ended(leaf, now, None, terminated=True)
                    self._record_attempt(leaf, now, None, reason=reason)
                self._finish(leaf, FAILED, reason, now)
            self._drain()
        self.observer.deliver()
