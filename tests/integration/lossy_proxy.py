"""A test HTTP proxy in front of the emulator that loses SubmitJob replies *after* forwarding the request.

The server accepted the job; the client only sees its connection closed, exactly what a reset or a timeout after
AWS took the request looks like. Which replies are lost is chosen by job name, so a test is reproducible.

``stale_lists`` models ListJobs's eventual consistency (AWS: a job may not be listed, even described, right after
SubmitJob): the first that many ListJobs answers leave out the jobs whose replies were lost.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from batch_emulator.proxy import FaultProxy, Reply, serving


class LossyProxy(FaultProxy):
    def __init__(self, upstream: str, lose: Callable[[str, int], bool], stale_lists: int = 0) -> None:
        """``lose(job_name, attempt)`` says whether to lose the reply of the attempt-th SubmitJob of that name."""
        super().__init__(upstream)
        self.lose = lose
        self.attempts: Counter[str] = Counter()
        self.lost: list[str] = []
        self.lost_ids: set[str] = set()
        self.stale_lists = stale_lists

    def exchange(self, operation: str, body: bytes, forward: Callable[[], Reply]) -> Reply | None:
        if operation == "submitjob":
            name = str(json.loads(body or b"{}").get("jobName", ""))
            with self.lock:
                self.attempts[name] += 1
                lose = self.lose(name, self.attempts[name])
                if lose:
                    self.lost.append(name)
            reply = forward()
            if not lose:
                return reply
            # The job exists upstream; the client gets no answer at all.
            with self.lock:
                self.lost_ids.add(str(json.loads(reply.body).get("jobId")))
            return None
        reply = forward()
        if operation == "listjobs" and reply.status == 200:
            return replace(reply, body=self._stale(reply.body))
        return reply

    def _stale(self, data: bytes) -> bytes:
        with self.lock:
            if self.stale_lists <= 0 or not self.lost_ids:
                return data
            self.stale_lists -= 1
            hidden = set(self.lost_ids)
        page = json.loads(data)
        page["jobSummaryList"] = [j for j in page.get("jobSummaryList", []) if j.get("jobId") not in hidden]
        return json.dumps(page).encode()


@contextmanager
def lossy_proxy(upstream: str, lose: Callable[[str, int], bool], stale_lists: int = 0) -> Iterator[LossyProxy]:
    with serving(LossyProxy(upstream, lose, stale_lists)) as proxy:
        yield proxy


class GatedProxy(FaultProxy):
    """Lets the first ``let_through`` SubmitJob requests pass, then holds every later one until :meth:`open`: a run
    that stays "submitting" for exactly as long as a test needs, whatever the machine's load (no rate to race)."""

    def __init__(self, upstream: str, let_through: int) -> None:
        super().__init__(upstream)
        self.let_through = let_through
        self.gate = threading.Event()

    def open(self) -> None:
        self.gate.set()

    def exchange(self, operation: str, body: bytes, forward: Callable[[], Reply]) -> Reply | None:
        if operation == "submitjob":
            with self.lock:
                self.let_through -= 1
                wait = self.let_through < 0
            if wait and not self.gate.wait(timeout=300):
                return None
        return forward()


@contextmanager
def gated_proxy(upstream: str, let_through: int = 1) -> Iterator[GatedProxy]:
    with serving(GatedProxy(upstream, let_through)) as proxy:
        try:
            yield proxy
        finally:
            proxy.open()
