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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .capacity import (
    NON_REPLENISHABLE,
    TIME_LIMIT_PREFIX,
    ConsumableResource,
    Environment,
    QueueShape,
    Usage,
    blocked_reason,
    blocked_status,
)
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
    # Seconds of the job clock per second of a queue's jobStateTimeLimitActions.maxTimeSeconds (AWS's minimum is
    # 600 s; 0.001 fires it in 0.6 s).
    time_limit_scale: float = 1.0
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

    def blocked(self, job: BatchJob, leaf: Leaf | None, at: float) -> None: ...

    def deliver(self) -> None: ...


class NullObserver:
    def changed(self, job: BatchJob, leaf: Leaf | None, at: float) -> None:
        return None

    def attempt_started(self, leaf: Leaf, at: float) -> None:
        return None

    def attempt_ended(self, leaf: Leaf, at: float, failure: Failure | None, terminated: bool) -> None:
        return None

    def blocked(self, job: BatchJob, leaf: Leaf | None, at: float) -> None:
        return None

    def deliver(self) -> None:
        return None


# Where a job goes when the backend describes no queue for it: an unmanaged environment, room for everything.
ANYWHERE = Environment(arn="", name="", enabled=True)


class Leaf:
    """One runnable unit: a plain job (index None) or an array child."""

    __slots__ = (
        "attempt_started",
        "attempts",
        "blocked_at",
        "cancel_reason",
        "container_reason",
        "created_at",
        "dependents",
        "exit_code",
        "failure",
        "index",
        "job",
        "log_group",
        "placed",
        "seq",
        "started_at",
        "status",
        "status_reason",
        "stop_kind",
        "stopped_at",
        "stream_name",
        "task_id",
        "wait_since",
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
        self.placed: Environment | None = None  # where the current attempt holds capacity (STARTING, RUNNING)
        self.wait_since: float | None = None  # RUNNABLE and waiting for room, since then
        self.blocked_at: float | None = None  # when it got a blocked-queue statusReason
        self.stop_kind: str | None = None  # "cancel" or "terminate": JobDetail isCancelled / isTerminated

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
        vcpus: float = 1.0,
        memory: int = 0,
        consumables: tuple[tuple[str, int], ...] = (),
        share: str | None = None,
        priority: int = 0,
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
        self.is_array = size is not None
        self.serial = serial  # submission order, to order jobs created within the same clock reading
        self.vcpus = vcpus  # what each attempt (of each child) holds while STARTING or RUNNING
        self.memory = memory
        self.consumables = consumables  # (consumable resource ARN, quantity)
        self.share = share
        self.priority = priority
        self.stop_kind: str | None = None  # array parent: "cancel" / "terminate" asked of the whole array
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


def _first_enabled(shape: QueueShape) -> Environment:
    return next(env for env in shape.environments if env.enabled)


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
        # Placement. The backend says what each queue is (``resolve_queue``); shapes are cached until
        # ``capacity_changed``. Per queue, the jobs with RUNNABLE leaves waiting for room, in arrival order.
        self.resolve_queue: Callable[[str], QueueShape | None] = lambda arn: None
        self.usage = Usage()
        self.consumables: dict[str, ConsumableResource] = {}
        self._shapes: dict[str, QueueShape | None] = {}
        self._waiting: dict[str, dict[BatchJob, deque[Leaf]]] = {}
        self._dirty: set[str] = set()
        self._queue_use: dict[str, dict[str | None, float]] = {}  # vCPUs held, per queue and share identifier

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
            self.usage = Usage()
            self.consumables.clear()
            self._shapes.clear()
            self._waiting.clear()
            self._dirty.clear()
            self._queue_use.clear()
            self.clock.resume()

    def forget(self, jobs: list[BatchJob]) -> None:
        """Drop the timed events, waiting places and held capacity of jobs whose moto backend was reset."""
        with self.lock:
            gone = {id(j) for j in jobs}
            for _, _, events in self._heap:
                events[:] = [e for e in events if id(e[0].job) not in gone]
            for job in jobs:
                for leaf in job.units():
                    if leaf.placed is not None:
                        self._release(leaf)
                for waiting in self._waiting.values():
                    waiting.pop(job, None)
            self._dirty.clear()

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
            self._dispatch_dirty()
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
        if leaf.placed is not None and status != RUNNING:
            self._release(leaf)
        job = leaf.job
        if job.is_array:
            counts = job.counts
            # The parent's own status moves only when its first child leaves SUBMITTED or a child finishes: only
            # then is it worth deriving (twice per child step was a fifth of an array's cost).
            moves = status in TERMINAL or (leaf.status == SUBMITTED and counts[SUBMITTED] == job.size)
            before = job.status if moves else ""
            counts[leaf.status] -= 1
            counts[status] += 1
            job.summary_updated_at = at
            leaf.status = status
            self.observer.changed(job, leaf, at)
            if moves and job.status != before:
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
            if leaf.index is not None:
                # AWS: an array child's createdAt is "when the child job was spawned by its parent and entered the
                # PENDING state" -- children never show SUBMITTED.
                leaf.created_at = at
                self._set(leaf, PENDING, at)
                if leaf.waiting == 0 and not (self.holds and self._keep(leaf)):
                    self._runnable(leaf, at)
            elif leaf.waiting > 0:
                self._set(leaf, PENDING, at)
            else:
                self._runnable(leaf, at)
        elif status == RUNNABLE:
            if leaf.wait_since is not None:
                self._time_limit(leaf, at)
            else:
                self._arrive(leaf, at)
        elif status == STARTING:
            self._start_attempt(leaf, at)
        elif status == RUNNING:
            self._end_attempt(leaf, at)

    def _runnable(self, leaf: Leaf, at: float) -> None:
        self._set(leaf, RUNNABLE, at)
        self._schedule(leaf, at + self.durations.queue)

    # -- placement ---------------------------------------------------------------------------------------------
    def _shape(self, queue_arn: str) -> QueueShape | None:
        try:
            return self._shapes[queue_arn]
        except KeyError:
            shape = self._shapes[queue_arn] = self.resolve_queue(queue_arn)
            return shape

    def capacity_changed(self) -> None:
        """Compute environments, queues, quotas or consumable resources changed: look at every waiting job again."""
        with self.lock:
            self._shapes.clear()
            self._dirty.update(self._waiting)
            self._dispatch_dirty()
        self.observer.deliver()

    def _arrive(self, leaf: Leaf, at: float) -> None:
        """A RUNNABLE leaf is ready to be placed: at once where nothing limits its queue, else it waits its turn."""
        job = leaf.job
        shape = self._shape(job.queue_arn)
        if shape is None or (shape.unlimited and not job.consumables and shape.fair_share is None):
            self._start(leaf, ANYWHERE if shape is None else _first_enabled(shape), at)
            return
        leaf.wait_since = at
        waiting = self._waiting.setdefault(job.queue_arn, {})
        leaves = waiting.get(job)
        if leaves is None:
            waiting[job] = deque((leaf,))
        else:
            leaves.append(leaf)
        self._dirty.add(job.queue_arn)

    def _start(self, leaf: Leaf, env: Environment, at: float) -> None:
        job = leaf.job
        leaf.wait_since = None
        if leaf.blocked_at is not None:  # no longer blocking its queue
            leaf.blocked_at = None
            leaf.status_reason = None
        self._set(leaf, STARTING, at)
        leaf.placed = env
        if env.max_vcpus is not None:
            self.usage.take(env, job.vcpus, job.memory, job.account_id, job.region)
        for arn, quantity in job.consumables:
            resource = self.consumables.get(arn)
            # AWS: "Once a job goes to the STARTING state, the consumed resources will be subtracted from the
            # available quantity"; NON_REPLENISHABLE ones "from both the total and available quantities".
            if resource is None:
                continue
            if resource.resource_type == NON_REPLENISHABLE:
                resource.total -= quantity
            else:
                resource.in_use += quantity
        use = self._queue_use.get(job.queue_arn)
        if use is None:
            use = self._queue_use[job.queue_arn] = {}
        use[job.share] = use.get(job.share, 0.0) + job.vcpus
        self._schedule(leaf, at + self.durations.queue)

    def _release(self, leaf: Leaf) -> None:
        """The attempt ended (or went back to RUNNABLE): what it held is free again. AWS: REPLENISHABLE units are
        "added back to the available quantity as soon as the job has moved to either the SUCCEEDED or FAILED
        state"; NON_REPLENISHABLE ones "won't be added back"."""
        env, leaf.placed = leaf.placed, None
        job = leaf.job
        if env is None:
            return
        if env.max_vcpus is not None:
            self.usage.take(env, job.vcpus, job.memory, job.account_id, job.region, sign=-1)
        for arn, quantity in job.consumables:
            resource = self.consumables.get(arn)
            if resource is not None and resource.resource_type != NON_REPLENISHABLE:
                resource.in_use -= quantity
        use = self._queue_use.get(job.queue_arn)
        if use is not None:
            use[job.share] = use.get(job.share, 0.0) - job.vcpus
        if self._waiting:
            self._dirty.update(self._waiting)

    def _dispatch_dirty(self) -> None:
        while self._dirty:
            now = self.clock.now()
            dirty, self._dirty = self._dirty, set()
            for queue_arn in dirty:
                self._dispatch(queue_arn, now)

    def _order(self, queue_arn: str, shape: QueueShape, waiting: dict[BatchJob, deque[Leaf]]) -> list[BatchJob]:
        """Dispatch order. FIFO; on a fair-share queue the share using least (times its weight) goes first, then
        the higher schedulingPriority, then the earlier job."""
        jobs = list(waiting)
        policy = shape.fair_share
        if policy is None:
            return jobs
        use = self._queue_use.get(queue_arn, {})
        return sorted(jobs, key=lambda j: (use.get(j.share, 0.0) * policy.weight(j.share), -j.priority, j.serial))

    def _dispatch(self, queue_arn: str, now: float) -> None:
        waiting = self._waiting.get(queue_arn)
        if not waiting:
            self._waiting.pop(queue_arn, None)
            return
        shape = self._shape(queue_arn)
        if shape is None:
            shape = QueueShape(queue_arn, "", True, (ANYWHERE,))
        one_at_a_time = shape.fair_share is not None  # usage changes the order after every start
        while True:
            placed = 0
            for job in self._order(queue_arn, shape, waiting):
                leaves = waiting[job]
                while leaves and (leaves[0].status != RUNNABLE or leaves[0].wait_since is None):
                    leaves.popleft()
                if not leaves:
                    del waiting[job]
                    continue
                reason = blocked_reason(shape, job.vcpus, job.memory)
                if reason is not None:
                    self._block(leaves[0], shape, reason, now)
                    break  # AWS: the job at the head blocks the queue
                while leaves:
                    leaf = leaves[0]
                    if leaf.status != RUNNABLE or leaf.wait_since is None:
                        leaves.popleft()
                        continue
                    if self.holds and self._is_held(leaf):
                        leaves.popleft()
                        leaf.wait_since = None
                        self._keep(leaf)
                        continue
                    if not self._consumables_available(job):
                        break
                    env = self.usage.room(shape, job.vcpus, job.memory, job.account_id, job.region)
                    if env is None:
                        break
                    leaves.popleft()
                    self._start(leaf, env, now)
                    placed += 1
                    if one_at_a_time:
                        break
                if not leaves:
                    del waiting[job]
                if one_at_a_time and placed:
                    break
            if not (one_at_a_time and placed):
                break
        if not waiting:
            self._waiting.pop(queue_arn, None)

    def _consumables_available(self, job: BatchJob) -> bool:
        for arn, quantity in job.consumables:
            resource = self.consumables.get(arn)
            if resource is None or resource.available < quantity:
                return False
        return True

    def _block(self, leaf: Leaf, shape: QueueShape, code: str, at: float) -> None:
        """The leaf at the front of its queue can never be placed: AWS sets its statusReason, sends a "Batch Job
        Queue Blocked" event and starts the queue's jobStateTimeLimitActions for that reason."""
        status_reason = blocked_status(code)
        if leaf.blocked_at is not None and leaf.status_reason == status_reason:
            return
        leaf.blocked_at = at
        leaf.status_reason = status_reason
        job = leaf.job
        if job.is_array:
            job.summary_updated_at = at
        self.observer.blocked(job, leaf if job.is_array else None, at)
        scale = self.durations.time_limit_scale
        for limit in shape.time_limits:
            if limit.reason == code:
                self._schedule(leaf, at + limit.max_seconds * scale)

    def _time_limit(self, leaf: Leaf, at: float) -> None:
        shape = self._shape(leaf.job.queue_arn)
        if shape is None or leaf.blocked_at is None or leaf.status_reason is None:
            return
        code = leaf.status_reason.split(" - ", 1)[0]
        scale = self.durations.time_limit_scale
        for limit in shape.time_limits:
            if limit.reason == code and leaf.blocked_at + limit.max_seconds * scale <= at + 1e-9:
                leaf.stop_kind = "cancel" if limit.action == "CANCEL" else "terminate"
                self._finish(leaf, FAILED, TIME_LIMIT_PREFIX + code, at)
                return

    def snapshot(self, queue_arn: str) -> dict[str, Any]:
        """GetJobQueueSnapshot: "the first 100 RUNNABLE jobs associated to a single job queue" in dispatch order,
        and capacity use (per share identifier on a fair-share queue)."""
        with self.lock:
            now = self.clock.epoch_ms(self.clock.now())
            shape = self._shape(queue_arn)
            waiting = self._waiting.get(queue_arn, {})
            front: list[dict[str, Any]] = []
            if shape is not None:
                for job in self._order(queue_arn, shape, waiting):
                    for leaf in waiting[job]:
                        if leaf.status == RUNNABLE and leaf.wait_since is not None and len(front) < 100:
                            entry = {"jobArn": leaf.arn, "earliestTimeAtPosition": self.clock.epoch_ms(leaf.wait_since)}
                            front.append(entry)
            use = {share: vcpus for share, vcpus in self._queue_use.get(queue_arn, {}).items() if vcpus > 1e-9}
            utilization: dict[str, Any] = {
                "totalCapacityUsage": [{"capacityUnit": "VCPU", "quantity": sum(use.values())}],
                "lastUpdatedAt": now,
            }
            if shape is not None and shape.fair_share is not None:
                shares = sorted(use.items(), key=lambda item: -item[1])
                utilization["fairshareUtilization"] = {
                    "activeShareCount": len(shares),
                    "topCapacityUtilization": [
                        {"shareIdentifier": share, "capacityUsage": [{"capacityUnit": "VCPU", "quantity": vcpus}]}
                        for share, vcpus in shares
                        if share is not None
                    ],
                }
            return {"frontOfQueue": {"jobs": front, "lastUpdatedAt": now}, "queueUtilization": utilization}

    def _start_attempt(self, leaf: Leaf, at: float) -> None:
        job = leaf.job
        leaf.attempt_started = at
        if leaf.started_at is None:
            leaf.started_at = at
        if job.started_at is None:
            job.started_at = at
        leaf.task_id = f"{_TASK_IDS.getrandbits(128):032x}"  # every attempt is a new ECS task, so a new log stream
        attempt = len(leaf.attempts) + 1
        placed = leaf.placed
        leaf.failure = self.injector.failure_for(
            job.name, leaf.index, attempt, placed.kind if placed is not None else None, leaf.task_id
        )
        duration = job.running
        if leaf.failure is not None and leaf.failure.after is not None:
            duration *= leaf.failure.after  # a Spot reclaim or an OOM kill cuts the attempt short
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
        elif failure.reason != TIMEOUT_REASON and retry_decision(leaf.job.retry_strategy, len(leaf.attempts), failure):
            # AWS: "If a job is terminated for exceeding the timeout duration, it isn't retried."
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
        if leaf.wait_since is not None:
            leaf.wait_since = None
            self._dirty.add(leaf.job.queue_arn)  # the queue's front may move
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
        kind = "terminate" if terminate else "cancel"
        with self.lock:
            now = self.clock.now()
            if whole_array and job.status not in TERMINAL:
                job.status_reason = reason
                job.stop_kind = kind
                if not terminate:
                    job.cancel_reason = reason
            for leaf in units:
                if leaf.status not in allowed:
                    continue
                leaf.stop_kind = kind
                if not terminate and leaf.waiting > 0:
                    leaf.cancel_reason = reason
                    continue
                if leaf.status == RUNNING:
                    self.observer.attempt_ended(leaf, now, None, terminated=True)
                    self._record_attempt(leaf, now, None, reason=reason)
                self._finish(leaf, FAILED, reason, now)
            self._drain()
            self._dispatch_dirty()
        self.observer.deliver()
