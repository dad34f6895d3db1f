"""What a run really cost, on the Batch emulator: ``report`` prices every attempt AWS describes (started to
stopped, the job's vCPUs and memory, Fargate's one-minute minimum) and writes it beside the estimate."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

CONFIG = """\
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
prefix: cost
defaults:
  retries: 2
  retry_on: [{{action: RETRY, on_status_reason: "Your Spot Task was interrupted*"}}, {{action: EXIT, on_reason: "*"}}]
stages:
  reaches:
    fit: {{array_size: 5, vcpus: 1, memory: 2048, expected_duration: 30}}
  after:
    out: {{vcpus: 0.5, memory: 1024, expected_duration: 10}}
"""
VCPU_HOUR, GB_HOUR = 0.04048, 0.004445  # us-west-2 in prices.yaml
MINUTE = 60 / 3600  # every attempt here is shorter than Fargate's one-minute minimum


def wait_finished(batch_client: Any, queue: str, prefix: str, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = batch_client.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{prefix}*"]}])
        jobs = listed["jobSummaryList"]
        if len(jobs) == count and all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs):
            return jobs
        time.sleep(0.2)
    raise AssertionError("jobs did not finish")


def test_report_prices_each_attempt_beside_the_estimate(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run whose child 3 is reclaimed once by Fargate Spot (AWS's reason) and then succeeds
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    provisioned(path)
    batch_control.set_durations(default=0.3, queue=0.01)
    batch_control.fail("cost1_reaches_fit_*", indices=[3], reason="Your Spot Task was interrupted.", times=1)
    result = cli("run", "-c", str(path), "--run-id", "cost1")
    assert result.returncode == 0, result.stderr
    wait_finished(batch_client, "cost-after", "cost1_", 1)
    # WHEN the run is reported
    reported = cli("report", "-c", str(path), "--run-id", "cost1", "--output-dir", str(tmp_path / "report"))
    assert reported.returncode == 0, reported.stderr
    cost = json.loads((tmp_path / "report" / "cost.json").read_text())
    # THEN six attempts of fit (one reclaimed) and one of out are billed a minute each at their sizes
    fit_minute = MINUTE * (1 * VCPU_HOUR + 2 * GB_HOUR)
    out_minute = MINUTE * (0.5 * VCPU_HOUR + 1 * GB_HOUR)
    modules = {m["module"]: m for m in cost["modules"]}
    assert (modules["fit"]["attempts"], modules["fit"]["reclaimed"], modules["out"]["attempts"]) == (6, 1, 1)
    assert modules["fit"]["on_demand"] == pytest.approx(6 * fit_minute, abs=1e-4)
    assert cost["measured_on_demand_usd"] == pytest.approx(6 * fit_minute + out_minute, abs=1e-4)
    # AND all on Spot (fargate_spot, the default): 70 % less
    assert cost["measured_with_spot_usd"] == pytest.approx((6 * fit_minute + out_minute) * 0.3, abs=1e-4)
    # AND beside it the estimate from expected_duration: 5 children of 20 + 30 s and one of 20 + 10 s, a minute each
    assert modules["fit"]["estimate_on_demand"] == pytest.approx(5 * fit_minute, abs=1e-4)
    assert cost["estimate_with_spot_usd"] == pytest.approx((5 * fit_minute + out_minute) * 0.3, abs=1e-4)
    # AND the console says so, and the page has the section
    text = " ".join(reported.stdout.split())
    assert f"cost: ${cost['measured_with_spot_usd']:,.2f} measured with 100% of Spot-capable attempts on Spot" in text
    assert "1 attempts ended by a Spot reclaim (retried; counted apart from failures)" in text
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<h2>What it cost</h2>" in page and '<table id="cost">' in page
