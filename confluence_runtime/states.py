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
