"""The one retry layer: an adaptive rate that shrugs off isolated 429s, one deadline per call, honest log lines.

Time is a simulated clock (every sleep advances it), so these tests are exact and take no wall time; throughput
under a real throttling proxy is measured by ``bench/submit.py``, not here.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Callable

import pytest

from confluence_runtime.aws.pacing import UNREACHABLE_DEADLINE, AdaptiveRate, AmbiguousFailure, GaveUp, Kind, Pacer


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class Refused(Exception):
    def __init__(self, kind: Kind) -> None:
        super().__init__(kind.value)
        self.kind = kind


def classify(error: BaseException) -> Kind:
    return error.kind if isinstance(error, Refused) else Kind.FATAL


def describe(error: BaseException) -> str:
    return f"Refused: {error}" if isinstance(error, Refused) else str(error)


def pacer(clock: SimClock, **kwargs: object) -> Pacer:
    return Pacer(classify, describe, clock=clock, sleep=clock.sleep, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


def failing(*kinds: Kind, result: str = "ok") -> Callable[[], str]:
    """One AWS request that fails with each of ``kinds`` in turn, then succeeds."""
    queue = list(kinds)

    def call() -> str:
        if queue:
            raise Refused(queue.pop(0))
        return result

    return call


def test_calls_are_spaced_evenly_at_the_ceiling() -> None:
    clock = SimClock()
    rate = AdaptiveRate(10, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(5):
        rate.acquire()
        stamps.append(round(clock.now, 6))
        rate.accepted()
    assert stamps == [0.0, 0.1, 0.2, 0.3, 0.4]


class Server:
    """AWS's side of a SubmitJob limit: a token bucket of ``cap`` per second (burst ``cap``) plus random 429s."""

    def __init__(self, cap: float | None, share: float, rng: random.Random) -> None:
        self.cap, self.share, self.rng = cap, share, rng
        self.tokens, self.stamp = cap or 0.0, 0.0

    def refuses(self, now: float) -> bool:
        if self.rng.random() < self.share:
            return True
        if self.cap is None:
            return False
        self.tokens = min(self.cap, self.tokens + (now - self.stamp) * self.cap)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return False
        return True


def simulate(ceiling: float, server: Server, calls: int = 6000, workers: int = 8) -> tuple[float, float]:
    """Eight workers sharing one AdaptiveRate, as ``run`` does; returns (accepted calls/s, share refused).

    A discrete-event simulation: each worker sends at its reserved slot; a refused call waits the Pacer's backoff
    before asking for a slot again; a request takes 20 ms.
    """
    rate = AdaptiveRate(ceiling)
    pacer = Pacer(classify, describe, rng=random.Random(3))
    ready = [(0.0, w, 0) for w in range(workers)]  # (time the worker wants a slot, worker, failures of its call)
    accepted = refused = 0
    now = 0.0
    while accepted < calls:
        wants, worker, failures = heapq.heappop(ready)
        now = rate.reserve(wants)
        if server.refuses(now):
            refused += 1
            rate.throttled(now)
            heapq.heappush(ready, (now + 0.02 + pacer.backoff(failures + 1), worker, failures + 1))
        else:
            accepted += 1
            rate.accepted()
            heapq.heappush(ready, (now + 0.02, worker, 0))
    return accepted / now, refused / (accepted + refused)


@pytest.mark.parametrize(("share", "at_least"), [(0.05, 0.97), (0.10, 0.95), (0.30, 0.55)])
def test_isolated_429s_cost_little_of_the_ceiling(share: float, at_least: float) -> None:
    # GIVEN a 50/s ceiling and a share of requests refused at random (not for capacity)
    # WHEN 6,000 calls go through
    achieved, _ = simulate(50, Server(None, share, random.Random(1)))
    # THEN accepted calls arrive near the ceiling: a refused call hands its slot back, and one 429 costs 7 %
    # of the rate, which the next 3.5 accepted calls win back
    assert achieved >= at_least * 50


def test_aws_s_own_cap_with_random_429s_on_top() -> None:
    achieved, _ = simulate(50, Server(50, 0.10, random.Random(1)))
    assert achieved >= 0.95 * 50


def test_a_real_capacity_limit_settles_the_rate_at_it() -> None:
    # GIVEN a 50/s ceiling but AWS accepting only 25/s (another submitter shares the account's limit)
    achieved, refused = simulate(50, Server(25, 0.0, random.Random(1)))
    # THEN it gets the 25/s there is, and fewer than 40 % of its requests are refused (no 429 storm)
    assert achieved == pytest.approx(25, rel=0.02)
    assert refused < 0.4


def test_a_throttled_call_is_retried_at_a_slower_rate_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    clock = SimClock()
    calls = pacer(clock, rates={"SubmitJob": 50})
    with caplog.at_level(logging.INFO, logger="confluence"):
        result = calls.call("SubmitJob", failing(Kind.THROTTLED), idempotent=False, what="run_input_input_0")
    assert result == "ok"
    assert calls.counts == {"SubmitJob": 2, "SubmitJob:throttled": 1}
    assert [r.getMessage() for r in caplog.records] == [
        "SubmitJob run_input_input_0: Refused: throttled (attempt 1, throttled); retrying at once at 46.5/s, "
        "60.0 s left of 60 s"
    ]


def test_a_fatal_error_is_not_retried() -> None:
    clock = SimClock()
    calls = pacer(clock)
    with pytest.raises(GaveUp, match=r"^DescribeJobs failed: Refused: fatal$") as raised:
        calls.call("DescribeJobs", failing(Kind.FATAL))
    assert raised.value.attempts == 1
    assert calls.counts == {"DescribeJobs": 1}


def test_an_ambiguous_failure_of_a_non_idempotent_call_is_surfaced_not_retried() -> None:
    clock = SimClock()
    calls = pacer(clock)
    with pytest.raises(AmbiguousFailure, match="AWS may or may not have applied it") as raised:
        calls.call("SubmitJob", failing(Kind.AMBIGUOUS), idempotent=False, what="run_x_0")
    assert (raised.value.operation, raised.value.attempts) == ("SubmitJob", 1)


def test_an_ambiguous_failure_of_an_idempotent_call_is_retried() -> None:
    clock = SimClock()
    calls = pacer(clock)
    assert calls.call("DescribeJobs", failing(Kind.AMBIGUOUS, Kind.TRANSIENT), idempotent=True) == "ok"
    assert calls.counts == {"DescribeJobs": 3}


def test_a_failing_endpoint_gives_up_at_the_deadline_with_every_wait_logged(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN an endpoint that never answers (each attempt fails at once) and a 10 s deadline
    clock = SimClock()
    calls = pacer(clock, deadline=10)
    with caplog.at_level(logging.INFO, logger="confluence"), pytest.raises(GaveUp) as raised:
        calls.call("ListJobs", failing(*[Kind.TRANSIENT] * 100))
    # THEN it stops before the deadline, and the log accounts for every second of waiting
    assert clock.now < 10
    message = str(raised.value)
    assert message.startswith(
        f"ListJobs failed: Refused: transient (gave up after {raised.value.attempts} attempts in "
    )
    assert message.endswith(" s, deadline 10 s)")
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == raised.value.attempts - 1
    waits = [float(line.split("retrying in ")[1].split(" s")[0]) for line in logged]
    assert sum(waits) == pytest.approx(clock.now, abs=0.01 * len(waits) + 0.2)


def test_a_refused_connection_gives_up_within_seconds_while_throttling_keeps_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a 60 s deadline per call
    clock = SimClock()
    calls = pacer(clock, deadline=60)
    # WHEN nobody answers at the endpoint (connection refused, or a host name that does not resolve)
    with caplog.at_level(logging.WARNING, logger="confluence"), pytest.raises(GaveUp) as raised:
        calls.call("ListJobs", failing(*[Kind.UNREACHABLE] * 1000))
    # THEN a few quick retries, then one error within the unreachable budget, and no warning per retry
    assert raised.value.attempts > 1 and clock.now <= UNREACHABLE_DEADLINE
    assert raised.value.kind is Kind.UNREACHABLE
    assert str(raised.value).endswith(f" s, deadline {UNREACHABLE_DEADLINE:g} s)")
    assert caplog.records == []
    # AND throttling still gets the whole deadline
    clock = SimClock()
    throttled = pacer(clock, deadline=60)
    with pytest.raises(GaveUp):
        throttled.call("ListJobs", failing(*[Kind.THROTTLED] * 100_000))
    assert UNREACHABLE_DEADLINE * 5 < clock.now < 60


def test_an_endpoint_that_answered_before_gets_the_whole_deadline_when_it_stops_answering() -> None:
    # GIVEN a watch whose endpoint answered its first call
    clock = SimClock()
    calls = pacer(clock, deadline=60)
    assert calls.call("DescribeJobs", failing()) == "ok"
    # WHEN the network goes away for 20 s (refused connections), then comes back
    started = clock.now
    outage = failing(*[Kind.UNREACHABLE] * 1000)

    def flaky() -> str:
        return "ok" if clock.now - started > 20 else outage()

    # THEN the call rides out the outage within its deadline: an outage, not a wrong endpoint
    assert calls.call("DescribeJobs", flaky) == "ok"
    assert 20 < clock.now - started < 60
