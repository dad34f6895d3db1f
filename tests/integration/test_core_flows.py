"""The core flows run without the command line: start_run (pre-flight, submit, stop on failure) and retry_failed
(plan, cancel, submit) called directly against the Batch emulator, as a supervisor or a notebook would."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from confluence_runtime.apply.resume import retry_failed
from confluence_runtime.apply.run import start_run
from confluence_runtime.aws.api import AwsOptions, Batch
from confluence_runtime.errors import PlanError
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.record import read_rows
from confluence_runtime.views.runview import open_run

TWO_STAGES = "stages:\n  a:\n    m: {array_size: 4}\n  b:\n    n: {}\n"


def batch_for(batch_client: Any) -> Batch:
    return Batch(AwsOptions(endpoint_url=batch_client.meta.endpoint_url, region="us-west-2"))


def test_start_run_refuses_a_missing_queue_before_submitting(
    provisioned: Any, batch_client: Any, tmp_path: Path
) -> None:
    config = provisioned(TWO_STAGES, tmp=tmp_path, skip_queues=("confluence-dev-b",))
    with pytest.raises(PlanError, match="job queues not found: confluence-dev-b"):
        start_run(batch_for(batch_client), build_plan(config, "r"), tmp_path / "sub.csv")
    assert not (tmp_path / "sub.csv").exists()


def test_start_run_stops_what_it_submitted_when_a_submission_fails(
    provisioned: Any, batch_client: Any, batch_control: Any, tmp_path: Path
) -> None:
    batch_control.set_durations(default=60)
    config = provisioned(TWO_STAGES, tmp=tmp_path, skip_queues=("confluence-dev-b",))
    started: list[object] = []
    result = start_run(
        batch_for(batch_client), build_plan(config, "r"), tmp_path / "sub.csv", check=False, on_start=started.append
    )
    assert started == [None]  # told once, before the first SubmitJob (no renew asked)
    assert result.outcome.submitted == ["r_a_m_0"]
    assert result.outcome.failure is not None and result.outcome.failure.submission.name == "r_b_n_0"
    assert result.stopped is not None
    assert len(result.stopped.cancelled) + len(result.stopped.terminated) == 1
    assert [r.job_name for r in read_rows(tmp_path / "sub.csv")] == ["r_a_m_0"]


def test_retry_failed_resubmits_the_failed_indices_without_the_cli(
    provisioned: Any, batch_client: Any, batch_control: Any, tmp_path: Path
) -> None:
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail("r_a_m_0", indices=[2], exit_code=4)
    config = provisioned(TWO_STAGES, tmp=tmp_path)
    batch, plan, csv_path = batch_for(batch_client), build_plan(config, "r"), tmp_path / "sub.csv"
    assert start_run(batch, plan, csv_path).outcome.ok
    ids = [r.job_id for r in read_rows(csv_path)]
    deadline = time.monotonic() + 30
    while any(j["status"] not in ("SUCCEEDED", "FAILED") for j in batch.describe_jobs(ids)):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.1)

    view = open_run(batch, run_id="r", csv_path=csv_path, plan_for=lambda _: plan)
    result = retry_failed(batch, plan, view, csv_path)

    assert result.rerun.retried == {("a", "m", 0): [2]}
    assert result.rerun.rerun == ["r_b_n_0"]
    assert result.outcome is not None and result.outcome.ok
    assert sorted(result.outcome.submitted) == ["r_a_m_0_retry-1", "r_b_n_0_rerun-1"]
