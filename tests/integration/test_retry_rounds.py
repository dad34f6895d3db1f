"""Retry rounds compose: after any sequence of retry-failed calls (interrupted or not, with failures surfacing at
different times), each failed child is retried once per round and the run can end succeeded.

AWS: "If the dependency job fails, the dependent job also fails" and a job's ``dependsOn`` cannot be changed once
submitted, so a later round must never make a new job wait on a job an earlier round already replaced.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from workflow import write_config

from confluence_runtime.apply.resume import RetryResult, retry_failed
from confluence_runtime.apply.run import start_run
from confluence_runtime.aws.api import AwsOptions, Batch
from confluence_runtime.config import load_config
from confluence_runtime.planning.plan import Plan, build_plan
from confluence_runtime.views.runview import open_run
from confluence_runtime.views.status import collect_status

FINAL = ("SUCCEEDED", "FAILED")


class InterruptAfter(Batch):
    """A real client on the emulator that behaves as if Ctrl-C came after ``limit`` SubmitJob calls."""

    def __init__(self, options: AwsOptions, limit: int) -> None:
        super().__init__(options)
        self.limit = limit

    def submit_job(self, request: dict[str, Any]) -> str:
        if self.calls.get("SubmitJob", 0) >= self.limit:
            raise KeyboardInterrupt
        return super().submit_job(request)


class Run:
    """One run on the emulator, driven through the core functions the commands call."""

    def __init__(self, tmp_path: Path, provisioned: Any, batch_server: Any, run_id: str) -> None:
        path, _ = write_config(tmp_path, provisioned)
        self.config = load_config(path)
        self.plan: Plan = build_plan(self.config, run_id)
        self.csv = tmp_path / "submission.csv"
        self.options = AwsOptions(endpoint_url=batch_server.url, region="us-west-2")
        self.batch = Batch(self.options)

    def view(self) -> Any:
        return open_run(
            self.batch,
            run_id=self.plan.run_id,
            csv_path=self.csv,
            plan_for=lambda _: self.plan,
            queues=self.config.job_queues,
        )

    def jobs(self) -> dict[str, dict[str, Any]]:
        view = self.view()
        collect_status(self.batch, view, self.plan)
        return {r.job_name: view.job(r) for r in view.rows}

    def wait(self, until: Any = None, timeout: float = 30) -> dict[str, dict[str, Any]]:
        """Poll until every job is final (or ``until(jobs)`` holds)."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            done = until(jobs) if until else all(j.get("status") in FINAL for j in jobs.values())
            if done or time.monotonic() > deadline:
                return jobs
            time.sleep(0.1)

    def retry(self, batch: Batch | None = None) -> RetryResult:
        return retry_failed(batch or self.batch, self.plan, self.view(), self.csv)

    def state(self) -> str:
        return collect_status(self.batch, self.view(), self.plan).state

    def depends_on(self, name: str) -> list[str]:
        jobs = self.jobs()
        names_by_id = {j["jobId"]: n for n, j in jobs.items()}
        return sorted(names_by_id[d["jobId"]] for d in jobs[name].get("dependsOn") or [])


@pytest.fixture
def rounds(tmp_path: Path, provisioned: Any, batch_server: Any, batch_control: Any) -> Run:
    batch_control.set_durations(default=0.05, queue=0.01)
    return Run(tmp_path, provisioned, batch_server, "rr")


def test_a_retry_that_fails_again_is_retried_in_the_next_round_and_the_run_succeeds(
    rounds: Run, batch_control: Any
) -> None:
    # GIVEN algo fails children 0, 2, 3, and the first retry of them fails again on its child 1 (global index 2)
    batch_control.fail("rr_middle_algo_0", indices=[0, 2, 3])
    batch_control.fail("rr_middle_algo_0_retry-1", indices=[1])
    assert start_run(rounds.batch, rounds.plan, rounds.csv, check=False).outcome.ok
    rounds.wait()
    # WHEN retry-failed runs after each round ends
    first = rounds.retry()
    rounds.wait()
    second = rounds.retry()
    rounds.wait()
    # THEN each round retried exactly what was still failed, and the run ends succeeded
    assert first.rerun.retried == {("middle", "algo", 0): [0, 2, 3]}
    assert second.rerun.retried == {("middle", "algo", 0): [2]}
    assert rounds.depends_on("rr_last_out_0_rerun-2") == ["rr_middle_algo_0_retry-2"]
    assert rounds.state() == "succeeded"


def test_failures_surfacing_at_different_times_compose_over_two_rounds(rounds: Run, batch_control: Any) -> None:
    # GIVEN algo fails at once while single is still running (held RUNNING by the emulator; it fails later)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.hold("RUNNING", name_glob="rr_middle_single_0")
    batch_control.fail("rr_middle_algo_0", indices=[4])
    assert start_run(rounds.batch, rounds.plan, rounds.csv, check=False).outcome.ok
    rounds.wait(
        lambda jobs: (
            jobs["rr_middle_algo_0"].get("status") == "FAILED"
            and jobs["rr_middle_single_0"].get("status") == "RUNNING"
            and all(jobs[f"rr_last_out_{i}"].get("status") == "FAILED" for i in (0, 1))
        )
    )
    # WHEN retry-failed retries algo (last waits on it and on the running single) ...
    first = rounds.retry()
    assert first.rerun.retried == {("middle", "algo", 0): [4]}
    assert rounds.depends_on("rr_last_out_0_rerun-1") == ["rr_middle_algo_0_retry-1", "rr_middle_single_0"]
    rounds.wait(lambda jobs: jobs["rr_middle_algo_0_retry-1"].get("status") == "SUCCEEDED")
    # ... then single fails, and retry-failed runs again
    rounds.batch.terminate_job(rounds.jobs()["rr_middle_single_0"]["jobId"], "fails later than algo")
    rounds.wait()
    second = rounds.retry()
    rounds.wait()
    # THEN the second round's reruns wait for single's rerun only, not for algo's original FAILED array
    assert second.rerun.rerun == ["rr_middle_single_0", "rr_last_out_0", "rr_last_out_1"]
    assert rounds.depends_on("rr_last_out_0_rerun-2") == ["rr_middle_single_0_rerun-2"]
    assert rounds.state() == "succeeded"


@pytest.mark.parametrize("interrupt_after", [1, 2])
def test_an_interrupted_retry_failed_then_another_completes_the_run(
    rounds: Run, batch_control: Any, interrupt_after: int
) -> None:
    # GIVEN a run whose algo failed on children 1 and 3 (and last by the dependency)
    batch_control.fail("rr_middle_algo_0", indices=[1, 3])
    assert start_run(rounds.batch, rounds.plan, rounds.csv, check=False).outcome.ok
    rounds.wait()
    # WHEN retry-failed is interrupted after submitting the compact retry (and perhaps one rerun) ...
    with pytest.raises(KeyboardInterrupt):
        rounds.retry(InterruptAfter(rounds.options, interrupt_after))
    rounds.wait()
    # ... and run again
    second = rounds.retry()
    rounds.wait()
    # THEN nothing was retried twice, the reruns of round 2 do not wait on algo's FAILED original, and it succeeds
    assert second.rerun.retried == {}
    jobs = rounds.jobs()
    assert "rr_middle_algo_0_retry-2" not in jobs
    for name in second.rerun.plan.submissions:
        assert "rr_middle_algo_0" not in rounds.depends_on(name.name)
    assert rounds.state() == "succeeded"


def test_three_rounds_with_a_new_failure_downstream_each_round(rounds: Run, batch_control: Any) -> None:
    # GIVEN gen fails child 5; once rerun, last's first job fails child 0; its retry fails once more
    batch_control.fail("rr_first_gen_0", indices=[5])
    batch_control.fail("rr_last_out_0_rerun-1", indices=[0])
    batch_control.fail("rr_last_out_0_retry-2", indices=None)
    assert start_run(rounds.batch, rounds.plan, rounds.csv, check=False).outcome.ok
    rounds.wait()
    # WHEN retry-failed runs after each round, four times
    results = []
    for _ in range(4):
        results.append(rounds.retry())
        rounds.wait()
    # THEN each round retried only what was failed then, and the run ends succeeded
    assert [r.rerun.retried for r in results] == [
        {("first", "gen", 0): [5]},
        {("last", "out", 0): [0]},
        {("last", "out", 0): [0]},
        {},
    ]
    assert rounds.state() == "succeeded"
