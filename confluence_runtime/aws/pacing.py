"""How every AWS call is paced and retried: one layer, one deadline, one adaptive rate per operation.

Pure (no AWS SDK): ``aws.py`` classifies botocore's errors into a :class:`Kind` and runs each call through
:meth:`Pacer.call`, with botocore's own retries switched off, so there is exactly one retry loop and each of its
waits is logged before it happens.

Why not botocore's adaptive mode: it reads every 429 as "over capacity" and cuts its rate (CUBIC), so a few random
429s on top of a 50/s limit drive a submitter to a quarter of the limit, and its retries sat inside ours, so one
failing endpoint took minutes of silent waiting. Here:

- :class:`AdaptiveRate` mirrors AWS's token bucket on the client. A call AWS accepts spends a token and nudges the
  rate up (additive increase, a fiftieth of the ceiling per accepted call, so the rate climbs back within a second
  or so); a throttled call gets its token back (AWS did not count it) and cuts the rate by 7 %
  (multiplicative decrease). Isolated 429s (one call in ten) therefore leave the rate near its ceiling, three in
  ten cost about a third of it, and a real capacity limit, which refuses a growing share of calls as the rate
  rises, settles the rate at that limit (simulated in tests/unit/test_pacing.py; measured by bench/submit.py).
- :class:`Pacer` gives each call a deadline: it retries throttling and transient faults with full-jitter
  exponential backoff until the next wait would pass the deadline, then raises :class:`GaveUp` naming the attempts,
  the time spent and the last error.
- A failure after the request may have been applied (a read timeout, a reset connection, a 500) is *ambiguous*:
  an idempotent call is retried, a non-idempotent one (SubmitJob) raises :class:`AmbiguousFailure` at once, so the
  caller can look the job up by its unique name before deciding to submit again.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import AwsError

log = logging.getLogger("confluence")

T = TypeVar("T")

DEFAULT_DEADLINE = 60.0  # seconds one call may take, retries and waits included
BACKOFF_BASE = 0.05  # first retry waits up to 50 ms (full jitter), doubling per attempt ...
BACKOFF_CAP = 5.0  # ... up to 5 s
INCREASE_SHARE = 0.02  # each accepted call adds this share of the ceiling to the rate
DECREASE_FACTOR = 0.93  # each throttled call multiplies the rate by this
FLOOR_SHARE = 0.05  # the rate never falls below this share of the ceiling
BURST_SECONDS = 0.1  # missed slots a limiter may catch up on, in seconds of its rate
# A refused connection or a host name that does not resolve, before the endpoint ever answered, is a wrong endpoint
# or region far more often than a blip: a few quick retries cover a restarting proxy or resolver, then the command
# says so (the AWS CLI gives up within seconds too). Once the endpoint has answered (a watch hours into a run), the
# same failure is an outage and gets the call's whole deadline, as throttling and 5xx always do.
UNREACHABLE_DEADLINE = 5.0


class Kind(enum.Enum):
    """What a failed call tells us, decided by error code (``aws.classify``)."""

    THROTTLED = "throttled"  # refused for rate (429, TooManyRequestsException ...): not applied; retry, slow down
    TRANSIENT = "transient"  # not applied (connect timeout, 502/503/504): retry
    UNREACHABLE = "unreachable"  # not applied (connection refused, no such host): retry briefly, then give up
    AMBIGUOUS = "ambiguous"  # maybe applied (read timeout, reset after sending, 500): retry only if idempotent
    FATAL = "fatal"  # the request itself is wrong or forbidden: never retry


class GaveUp(AwsError):
    """A call still failed when its deadline came (or failed in a way no retry can fix).

    ``detail`` is the reason without the operation's name, for messages that name the job themselves.
    """

    def __init__(self, message: str, *, operation: str, attempts: int, kind: Kind, detail: str) -> None:
        super().__init__(message)
        self.operation, self.attempts, self.kind, self.detail = operation, attempts, kind, detail


class AmbiguousFailure(AwsError):
    """A non-idempotent call failed after its request may have reached AWS: it may or may not have taken effect.

    Retrying blindly could apply it twice (a second job for one SubmitJob); the caller decides, e.g. by looking the
    job up by its unique name first.
    """

    def __init__(self, message: str, *, operation: str, attempts: int, detail: str) -> None:
        super().__init__(message)
        self.operation, self.attempts, self.detail = operation, attempts, detail


class AdaptiveRate:
    """A thread-safe token bucket whose rate adapts to throttling (AIMD), never above ``ceiling`` per second.

    Calls are spaced evenly (a bucket of one token): :meth:`reserve` hands out the next free slot, so many threads
    share one rate; :meth:`acquire` reserves and sleeps until the slot, outside the lock. Pure arithmetic on the
    ``now`` it is given, so a simulation can drive it (tests/unit/test_pacing.py).
    """

    def __init__(
        self,
        ceiling: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if ceiling <= 0:
            raise ValueError("rate must be positive")
        self.ceiling = float(ceiling)
        self.rate = float(ceiling)
        self.floor = self.ceiling * FLOOR_SHARE
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """The time at which the caller may send its request.

        Slots missed while callers were busy (a slow reply holding every worker) may be caught up, up to a tenth
        of a second's worth at once: a burst any token bucket at AWS's rate holds.
        """
        with self._lock:
            slot = max(now - BURST_SECONDS, self._next)
            self._next = slot + 1.0 / self.rate
            return max(now, slot)

    def acquire(self) -> float:
        """Wait for this caller's slot; returns the seconds waited."""
        now = self._clock()
        wait = self.reserve(now) - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def accepted(self) -> None:
        with self._lock:
            self.rate = min(self.ceiling, self.rate + self.ceiling * INCREASE_SHARE)

    def throttled(self, now: float | None = None) -> None:
        with self._lock:
            # The refused call spent no token at AWS: hand its slot back, then slow down.
            now = self._clock() if now is None else now
            self._next = max(now - BURST_SECONDS, self._next - 1.0 / self.rate)
            self.rate = max(self.floor, self.rate * DECREASE_FACTOR)


@dataclass(frozen=True)
class Attempted:
    """One failed attempt, as the log and the final error describe it."""

    kind: Kind
    message: str


class Pacer:
    """The one retry layer: per-operation adaptive rates and a deadline per call.

    ``rates`` gives the ceiling of an operation (``{"SubmitJob": 40}``); an operation not named gets
    ``default_rate``. ``classify`` and ``describe`` turn an exception of one of the ``catch`` types (the SDK's) into
    a :class:`Kind` and a one-line message.
    """

    def __init__(
        self,
        classify: Callable[[BaseException], Kind],
        describe: Callable[[BaseException], str],
        *,
        catch: tuple[type[BaseException], ...] = (Exception,),
        rates: dict[str, float] | None = None,
        default_rate: float = 20.0,
        deadline: float = DEFAULT_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.classify, self.describe, self.catch = classify, describe, catch
        self.deadline = deadline
        self._rates_given = dict(rates or {})
        self._default_rate = default_rate
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()
        self._limiters: dict[str, AdaptiveRate] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}  # "SubmitJob" -> attempts; "SubmitJob:throttled" -> throttled answers
        self.reached = False  # the endpoint answered once (a result or an error of its own)

    def limiter(self, operation: str) -> AdaptiveRate:
        with self._lock:
            if operation not in self._limiters:
                ceiling = self._rates_given.get(operation, self._default_rate)
                self._limiters[operation] = AdaptiveRate(ceiling, clock=self._clock, sleep=self._sleep)
            return self._limiters[operation]

    def set_rate(self, operation: str, ceiling: float) -> None:
        """Set an operation's ceiling (``run --rate``); its current rate starts there."""
        with self._lock:
            self._rates_given[operation] = ceiling
            self._limiters[operation] = AdaptiveRate(ceiling, clock=self._clock, sleep=self._sleep)

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def backoff(self, failures: int) -> float:
        """Full jitter: a uniform wait up to ``base * 2**(failures - 1)``, capped."""
        return self._rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1)))

    def call(
        self,
        operation: str,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        what: str = "",
        deadline: float | None = None,
    ) -> T:
        """Run ``fn`` (one AWS request) until it succeeds, fails for good, or ``deadline`` seconds have passed."""
        full_budget = self.deadline if deadline is None else deadline
        limiter = self.limiter(operation)
        label = f"{operation} {what}".rstrip()
        start = self._clock()
        failures = 0
        while True:
            limiter.acquire()
            self._count(operation)
            try:
                result = fn()
            except self.catch as error:  # anything else is a bug of ours: it propagates untouched
                kind = self.classify(error)
                message = self.describe(error)
                failures += 1
                if kind is not Kind.UNREACHABLE:
                    self.reached = True
                first_contact = kind is Kind.UNREACHABLE and not self.reached
                budget = min(full_budget, UNREACHABLE_DEADLINE) if first_contact else full_budget
                if kind is Kind.THROTTLED:
                    limiter.throttled()
                    self._count(f"{operation}:throttled")
                if kind is Kind.FATAL:
                    raise GaveUp(
                        f"{label} failed: {message}", operation=operation, attempts=failures, kind=kind, detail=message
                    ) from error
                if kind is Kind.AMBIGUOUS and not idempotent:
                    detail = f"{message}; AWS may or may not have applied it"
                    raise AmbiguousFailure(
                        f"{label}: {detail}", operation=operation, attempts=failures, detail=detail
                    ) from error
                elapsed = self._clock() - start
                # A first 429 is answered by the slower rate alone (the next free slot); backing off on top would
                # idle the slot the refused call handed back. Repeated failures of one call back off exponentially.
                throttled = kind is Kind.THROTTLED
                delay = 0.0 if throttled and failures == 1 else self.backoff(failures - throttled)
                if elapsed + delay >= budget:
                    detail = (
                        f"{message} (gave up after {failures} attempt{'s' if failures > 1 else ''} in {elapsed:.1f} s,"
                        f" deadline {budget:g} s)"
                    )
                    raise GaveUp(
                        f"{label} failed: {detail}", operation=operation, attempts=failures, kind=kind, detail=detail
                    ) from error
                when = f"in {delay:.2f} s" if delay else "at once"
                # An unreachable endpoint gets one line at the end, not one per quick retry (they show with -v).
                log.log(
                    logging.INFO if throttled or first_contact else logging.WARNING,
                    "%s: %s (attempt %d, %s); retrying %s%s, %.1f s left of %g s",
                    label,
                    message,
                    failures,
                    kind.value,
                    when,
                    f" at {limiter.rate:.1f}/s" if throttled else "",
                    budget - elapsed - delay,
                    budget,
                )
                self._sleep(delay)
                continue
            limiter.accepted()
            self.reached = True
            return result
