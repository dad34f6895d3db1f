"""Test-controlled misbehaviour: failing job attempts, throttling the HTTP API, counting calls.

Everything here is plain data plus small pure decisions, so the state machine (states.py) and the HTTP
middleware (server.py) share one place that says what "fail child 3" or "throttle 30 % of SubmitJob" means.
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# What AWS writes into statusReason when the container itself exits (with any exit code, 0 included).
CONTAINER_EXITED = "Essential container in task exited"
# Spot reclaims, as AWS words them: Fargate Spot's task stop reason, and EC2 Spot's host termination.
FARGATE_SPOT_REASON = "Your Spot Task was interrupted."
EC2_SPOT_REASON = "Host EC2 (instance {instance}) terminated."
# ECS's container reason for a container the kernel killed for exceeding its memory; exit code 137 (SIGKILL).
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
OOM_EXIT_CODE = 137
KINDS = ("fail", "spot", "oom")


@dataclass(frozen=True)
class Failure:
    """How one attempt ends badly: a container exit code, or a host-level reason with no exit code.

    AWS reports the two differently: a non-zero exit keeps statusReason "Essential container in task exited" and
    sets container.exitCode; an infrastructure failure (e.g. CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY, a Spot
    reclaim) sets statusReason and container.reason and no exit code. evaluateOnExit rules match on those fields.
    """

    exit_code: int | None
    reason: str | None
    log: tuple[str, ...] = ()  # the last lines the container wrote before it failed (its error message)
    after: float | None = None  # share of the attempt's duration it ran before the failure (None: all of it)
    status: str | None = None  # statusReason when it is not the reason (an OOM kill: the container exited)

    @property
    def status_reason(self) -> str:
        if self.status is not None:
            return self.status
        return self.reason if self.reason is not None else CONTAINER_EXITED


@dataclass(frozen=True)
class FailRule:
    """Fail attempts of jobs whose name matches ``name_glob``: given array indices, or a seeded share of them."""

    name_glob: str
    indices: frozenset[int] | None = None
    share: float | None = None
    exit_code: int = 1
    reason: str | None = None
    seed: int = 0
    times: int | None = None  # fail only the first N attempts (so a retry can succeed); None = every attempt
    log: tuple[str, ...] = ()  # last lines of the attempt's log stream, e.g. a traceback's final line
    # "fail" (as above), "spot" (a Spot reclaim: only attempts placed on a Spot environment, with AWS's reason for
    # Fargate Spot or EC2 Spot, halfway through) or "oom" (ECS's out-of-memory kill, halfway through).
    kind: str = "fail"

    def failure_for(
        self, job_name: str, index: int | None, attempt: int, placed_on: str | None = None, task_id: str | None = None
    ) -> Failure | None:
        if not fnmatch.fnmatchcase(job_name, self.name_glob):
            return None
        if self.times is not None and attempt > self.times:
            return None
        if self.indices is not None and (index is None or index not in self.indices):
            return None
        if self.kind == "spot" and placed_on not in ("SPOT", "FARGATE_SPOT"):
            return None
        if self.share is not None:
            # Seeded by name and index (not the random job id) so a run is reproducible between sessions; a
            # reclaim is drawn per attempt (a retry lands on another Spot host).
            key = f"{self.seed}|{job_name}|{index}" + (f"|{attempt}" if self.kind == "spot" else "")
            if random.Random(key).random() >= self.share:
                return None
        if self.kind == "spot":
            if placed_on == "FARGATE_SPOT":
                reason = FARGATE_SPOT_REASON
            else:
                reason = EC2_SPOT_REASON.format(instance=f"i-{(task_id or '0' * 17)[:17]}")
            return Failure(exit_code=None, reason=reason, after=0.5)
        if self.kind == "oom":
            return Failure(exit_code=OOM_EXIT_CODE, reason=OOM_REASON, log=self.log, after=0.5, status=CONTAINER_EXITED)
        return Failure(exit_code=None if self.reason is not None else self.exit_code, reason=self.reason, log=self.log)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FailRule:
        indices = body.get("indices")
        return cls(
            name_glob=str(body.get("name_glob", "*")),
            indices=frozenset(int(i) for i in indices) if indices is not None else None,
            share=float(body["share"]) if body.get("share") is not None else None,
            exit_code=int(body.get("exit_code", 1)),
            reason=body.get("reason"),
            seed=int(body.get("seed", 0)),
            times=int(body["times"]) if body.get("times") is not None else None,
            log=tuple(str(line) for line in body.get("log") or ()),
            kind=_kind(body.get("kind")),
        )


def _kind(value: Any) -> str:
    kind = str(value or "fail")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {' | '.join(KINDS)}, got {kind!r}")
    return kind


def glob_matches(pattern: str, value: str | None) -> bool:
    """AWS evaluateOnExit matching: exact, or a prefix when the pattern ends with ``*`` (only there)."""
    if value is None:
        return False
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def retry_decision(retry_strategy: dict[str, Any] | None, attempts_done: int, failure: Failure) -> bool:
    """True when AWS would put the job back to RUNNABLE after this failed attempt.

    AWS: the first evaluateOnExit rule whose given conditions all match decides (RETRY/EXIT, case-insensitive);
    when none matches the job is retried as long as attempts remain.
    """
    strategy = retry_strategy or {}
    allowed = int(strategy.get("attempts") or 1)
    remaining = attempts_done < allowed
    exit_code = None if failure.exit_code is None else str(failure.exit_code)
    for rule in strategy.get("evaluateOnExit") or []:
        checks = [
            ("onExitCode", exit_code),
            ("onStatusReason", failure.status_reason),
            ("onReason", failure.reason),
        ]
        given = [(rule[key], value) for key, value in checks if rule.get(key) is not None]
        if given and all(glob_matches(str(pattern), value) for pattern, value in given):
            return str(rule.get("action", "")).upper() == "RETRY" and remaining
    return remaining


@dataclass
class Throttle:
    """HTTP-level failures: a share of Batch calls answered 429/500, and an optional SubmitJob rate cap."""

    share: float = 0.0
    status: int = 429
    operations: frozenset[str] | None = None
    submit_rate: float | None = None
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random)
    _window_start: float = 0.0
    _window_count: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def decide(self, operation: str) -> int | None:
        """HTTP status to inject for this call, or None to let moto answer."""
        if operation == "SubmitJob" and self.submit_rate is not None:
            now = time.monotonic()
            if now - self._window_start >= 1.0:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            if self._window_count > self.submit_rate:
                return 429
        if self.share <= 0.0:
            return None
        if self.operations is not None and operation not in self.operations:
            return None
        return self.status if self._rng.random() < self.share else None


class Injector:
    """The mutable test settings of one server process, guarded by one lock (werkzeug serves threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fail_rules: list[FailRule] = []
        self.throttle = Throttle()
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def reset(self) -> None:
        with self.lock:
            self.fail_rules = []
            self.throttle = Throttle()
            self.calls.clear()
            self.injected.clear()

    def add_fail_rule(self, rule: FailRule) -> None:
        with self.lock:
            self.fail_rules.append(rule)

    def failure_for(
        self, job_name: str, index: int | None, attempt: int, placed_on: str | None = None, task_id: str | None = None
    ) -> Failure | None:
        if not self.fail_rules:
            return None
        with self.lock:
            rules = list(self.fail_rules)
        for rule in rules:
            failure = rule.failure_for(job_name, index, attempt, placed_on, task_id)
            if failure is not None:
                return failure
        return None

    def on_call(self, operation: str) -> int | None:
        """Count one Batch API call; return the HTTP status to inject, if any."""
        with self.lock:
            self.calls[operation] += 1
            status = self.throttle.decide(operation)
            if status is not None:
                self.injected[operation] += 1
            return status

    def counters(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {"calls": dict(self.calls), "injected": dict(self.injected)}
