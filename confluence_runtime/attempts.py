"""What ended a job's attempt, in AWS's own words: a Spot reclaim, an out-of-memory kill, a timeout, or a failure.

Pure functions over DescribeJobs answers (a job's ``attempts``, its ``statusReason``), shared by the supervisor's
decisions, ``status``/``report`` and ``retry-failed``. The reason texts AWS gives:

- Fargate Spot: the attempt's ``statusReason`` is ``Your Spot Task was interrupted.`` (two minutes' notice);
- EC2 Spot: ``Host EC2 (instance i-0123456789abcdef0) terminated.``;
- out of memory: the container's ``reason`` reads ``OutOfMemoryError: Container killed due to memory usage``
  (exit code 137);
- a timeout: the job's ``statusReason`` ``Job attempt duration exceeded timeout``; AWS Batch: "If a job is
  terminated for exceeding the timeout duration, it isn't retried."

And the memory an out-of-memory retry asks for: more, but always a size Fargate offers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import FARGATE_MEMORY, OomMemory

SUCCEEDED, RECLAIMED, OUT_OF_MEMORY, TIMED_OUT, FAILED = (
    "succeeded",
    "reclaimed",
    "out of memory",
    "timed out",
    "failed",
)
FARGATE_SPOT_REASON = "Your Spot Task was interrupted."
EC2_SPOT_REASON_START, EC2_SPOT_REASON_END = "Host EC2 (instance ", ") terminated."
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
OOM_EXIT_CODE = 137
TIMEOUT_REASON = "Job attempt duration exceeded timeout"


_FARGATE_SPOT_START = FARGATE_SPOT_REASON.rstrip(".")


def is_reclaim(reason: str | None) -> bool:
    text = (reason or "").strip()
    return text.startswith(_FARGATE_SPOT_START) or (
        text.startswith(EC2_SPOT_REASON_START) and text.endswith(EC2_SPOT_REASON_END)
    )


def classify_attempt(attempt: Mapping[str, Any]) -> str:
    """One entry of a job's ``attempts`` (DescribeJobs): how it ended."""
    container = attempt.get("container") or {}
    status_reason = str(attempt.get("statusReason") or "")
    if is_reclaim(status_reason):
        return RECLAIMED
    if str(container.get("reason") or "").startswith(OOM_REASON):
        return OUT_OF_MEMORY
    if status_reason.startswith(TIMEOUT_REASON):
        return TIMED_OUT
    if container.get("exitCode") == 0:
        return SUCCEEDED
    return FAILED


def classify_job(job: Mapping[str, Any]) -> str:
    """How a finished job (or array child) ended: its last attempt, or the job's own ``statusReason`` when the
    attempt says nothing more (a timeout is stated on the job)."""
    if job.get("status") == "SUCCEEDED":
        return SUCCEEDED
    attempts = list(job.get("attempts") or [])
    last = classify_attempt(attempts[-1]) if attempts else FAILED
    if last == FAILED and str(job.get("statusReason") or "").startswith(TIMEOUT_REASON):
        return TIMED_OUT
    if last == FAILED and is_reclaim(str(job.get("statusReason") or "")):
        return RECLAIMED
    return last


def classify_child(reason: str | None, exit_code: int | None = None) -> str:
    """How a failed child ended, from what ListJobs keeps of it (its ``statusReason`` and container ``reason``,
    joined as the ledger's ``ChildOutcome.reason``) and its exit code: a Spot reclaim, an out-of-memory kill, a
    timeout, or a failure."""
    text = (reason or "").strip()
    if not text:
        return FAILED
    if is_reclaim(text):
        return RECLAIMED
    if OOM_REASON in text:
        return OUT_OF_MEMORY
    if text.startswith(TIMEOUT_REASON):
        return TIMED_OUT
    return FAILED


def reclaims(job: Mapping[str, Any]) -> int:
    """How many of a job's attempts a Spot reclaim ended."""
    return sum(1 for attempt in job.get("attempts") or [] if classify_attempt(attempt) == RECLAIMED)


def count_outcomes(jobs: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Finished jobs by how they ended, and ``reclaims``: every reclaimed attempt, retried or not."""
    counts = {SUCCEEDED: 0, RECLAIMED: 0, OUT_OF_MEMORY: 0, TIMED_OUT: 0, FAILED: 0, "reclaims": 0}
    for job in jobs:
        if job.get("status") in ("SUCCEEDED", "FAILED"):
            counts[classify_job(job)] += 1
        counts["reclaims"] += reclaims(job)
    return counts


@dataclass(frozen=True)
class Size:
    vcpus: float
    memory: int  # MiB


def fargate_sizes() -> list[Size]:
    return [Size(float(v), m) for v, memories in FARGATE_MEMORY.items() for m in memories]


def next_memory(size: Size, rule: OomMemory, *, fargate: bool = True) -> Size | None:
    """The size an out-of-memory retry asks for: ``rule`` applied to the memory, then on Fargate the smallest size
    of its table with at least that memory and the job's vCPUs (more vCPUs when the memory needs them). None when
    nothing larger exists (Fargate's largest is 16 vCPUs and 120 GiB) or the rule asks for no more memory."""
    wanted = rule.mib if rule.mib is not None else math.ceil(size.memory * (rule.factor or 1.0))
    if wanted <= size.memory:
        return None
    if not fargate:
        return Size(size.vcpus, wanted)
    fitting = [s for s in fargate_sizes() if s.memory >= wanted and s.vcpus >= size.vcpus]
    return min(fitting, key=lambda s: (s.vcpus, s.memory)) if fitting else None
