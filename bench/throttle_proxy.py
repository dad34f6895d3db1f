"""A small HTTP proxy that throttles like AWS Batch: SubmitJob capped at N requests/s, plus a random share of 429s.

Requests it refuses never reach the server, as with AWS, so a client that retries them submits each job once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from batch_emulator.proxy import FaultProxy, Reply, serving

THROTTLED_BODY = b'{"__type":"TooManyRequestsException","message":"Too Many Requests"}'


class Bucket:
    """Token bucket: ``rate`` tokens per second, burst ``rate`` (AWS's own limits are a bucket too)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class ThrottleProxy(FaultProxy):
    def __init__(self, upstream: str, submit_rate: float, share: float, seed: int = 0) -> None:
        super().__init__(upstream)
        self.bucket = Bucket(submit_rate)
        self.share = share
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()

    def exchange(self, operation: str, body: bytes, forward: Callable[[], Reply]) -> Reply | None:
        if operation == "submitjob":
            with self.lock:
                unlucky = self.random.random() < self.share
            if unlucky or not self.bucket.take():
                with self.lock:
                    self.counts["throttled"] += 1
                headers = (("Content-Type", "application/json"), ("x-amzn-ErrorType", "TooManyRequestsException"))
                return Reply(429, headers, THROTTLED_BODY)
            with self.lock:
                self.counts["SubmitJob"] += 1
        return forward()


@contextmanager
def throttle_proxy(
    upstream: str, submit_rate: float = 50.0, share: float = 0.1, seed: int = 0
) -> Iterator[ThrottleProxy]:
    with serving(ThrottleProxy(upstream, submit_rate, share, seed)) as proxy:
        yield proxy
