"""AWS Batch job states, named once: every module that asks where a job is in its life imports them from here."""

from __future__ import annotations

SUBMITTED = "SUBMITTED"
PENDING = "PENDING"
RUNNABLE = "RUNNABLE"
STARTING = "STARTING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"

STATUSES = (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED)  # a job's life, in order
QUEUED = (SUBMITTED, PENDING, RUNNABLE)  # not started: CancelJob stops it
STARTED = (STARTING, RUNNING)  # started: only TerminateJob stops it
ACTIVE = QUEUED + STARTED  # not final
FINAL = (SUCCEEDED, FAILED)
WAITING = (*QUEUED, STARTING)  # no container running yet (what a progress bar shows as waiting)

# Two states of our own, for the views: a child AWS reports FAILED that never ran because a job it depends on
# failed is BLOCKED, and one that confluence-submit stopped (cancel, a failed submission, the supervisor) is
# CANCELLED. Counting them as FAILED turned two real failures into "860 failed".
BLOCKED = "BLOCKED"
CANCELLED = "CANCELLED"
VIEW_STATUSES = (*STATUSES, BLOCKED, CANCELLED)  # what status, the report and runs count children in
NOT_SUCCEEDED = (FAILED, BLOCKED, CANCELLED)  # final and not a success: what retry-failed runs again

# AWS's statusReason for a job whose dependency failed (the job never ran).
DEPENDENCY_FAILED = "Dependent Job failed"
# Every reason confluence-submit gives CancelJob and TerminateJob starts so: "Confluence run RUN cancelled",
# "Confluence run RUN stopped: ...", "Confluence run RUN is over: ...".
STOP_REASON_PREFIX = "Confluence run "


def failure_state(reason: str | None) -> str:
    """FAILED, BLOCKED or CANCELLED for a job or child AWS reports FAILED with ``reason`` (its statusReason)."""
    reason = reason or ""
    if reason.startswith(DEPENDENCY_FAILED):
        return BLOCKED
    if reason.startswith(STOP_REASON_PREFIX):
        return CANCELLED
    return FAILED
