"""AWS Batch job states, named once: every module that asks where a job is in its life imports them from here.

A job goes SUBMITTED, PENDING (waiting for its dependencies), RUNNABLE (waiting for capacity), STARTING, RUNNING,
then SUCCEEDED or FAILED. CancelJob stops a job that has not started; TerminateJob is needed from STARTING on.
"""

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
