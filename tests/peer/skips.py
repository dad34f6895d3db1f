"""The moto tests (tests/test_batch of the pinned moto sdist) the peer suite does not run, each with its reason.

Loaded as a pytest plugin by ``run.py``: every listed test is marked skipped with its reason, and the run fails
if a listed test no longer exists (so the list cannot go stale). Everything else must pass against the emulator.
"""

from __future__ import annotations

from typing import Any

import pytest

CONTAINERS = "assumes a real container: reads the CloudWatch output of a real command"
DOCS = "contradicts the AWS documentation, which the emulator follows"

SKIPS: dict[str, str] = {
    "test_batch_jobs.py::test_submit_job": f"{CONTAINERS} (expects the single log line 'hello' from `echo hello`)",
    "test_batch_jobs.py::test_submit_job_multinode": f"{CONTAINERS} ('hello' twice from a two-node `echo`); the emulator runs no multi-node parallel jobs",
    "test_batch_jobs.py::test_terminate_job": f"{CONTAINERS} (expects only 'start' from `echo start && sleep 30 && echo stop` cut short)",
    "test_batch_jobs.py::test_dependencies": f"{CONTAINERS} ('hello' in streams named after the job id; AWS names them after the ECS task id)",
    "test_batch_jobs.py::test_container_overrides": f"{CONTAINERS} (parses `printenv` output for the overridden environment)",
    "test_batch_jobs.py::test_failed_job": "assumes a real container: only a real `kill` command fails the job (the emulator fails jobs by rule)",
    "test_batch_jobs.py::test_failed_dependencies": "assumes a real container: only a real `kill` command fails the dependency (the emulator fails by rule)",
    "test_batch_jobs.py::test_submit_job_with_timeout_set_at_definition": "assumes a real container: only a real `sleep 30` outlasts the definition's 1 s timeout",
    "test_batch_jobs.py::test_submit_job_with_timeout": f"{DOCS}: SubmitJob timeout 1 s, but 'The minimum value for the timeout is 60 seconds.'",
    "test_batch_jobs.py::test_list_jobs": f"{DOCS}: expects ListJobs without jobStatus to list queued jobs, but 'If you don't specify a status, "
    "only RUNNING jobs are returned.' (and relies on a real `sleep 2`)",
    "test_batch_jobs.py::test_submit_job_array_size": f"{DOCS}: expects ListJobs(arrayJobId) without jobStatus to list finished children, but 'If you don't "
    "specify a status, only RUNNING jobs are returned.'",
    "test_batch_jobs.py::test_cancel_running_job": f"{DOCS}: expects no statusReason on a SUCCEEDED job, but AWS reports 'Essential container in task "
    "exited'; and a cancel that lands while the job is RUNNABLE cancels it, as CancelJob documents",
}


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    seen = set()
    for item in items:
        key = f"{item.path.name}::{item.originalname}"
        if key in SKIPS:
            seen.add(key)
            item.add_marker(pytest.mark.skip(reason=SKIPS[key]))
    stale = sorted(set(SKIPS) - seen)
    if stale:
        raise pytest.UsageError(f"skip list names tests that do not exist in this moto version: {stale}")
