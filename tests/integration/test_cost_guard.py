"""``run --max-cost`` against the emulator, and reading the Fargate vCPU quotas where Service Quotas cannot
answer for Fargate (moto implements it for the vpc service code only): a clear, degraded answer, not a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluence_runtime.aws.api import AwsOptions, fargate_vcpu_quotas

CONFIG = """\
submission_file: {tmp}/submission.csv
log_file: {tmp}/confluence.log
prefix: cg
stages:
  reaches:
    fit: {{array_size: 500, items_per_child: 10, vcpus: 1, memory: 2048, expected_duration: 30}}
"""


def test_run_refuses_a_run_above_max_cost_and_shows_the_estimate(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    provisioned(path)
    # 50 children of 20 + 300 s at 1 vCPU and 2 GB: 50 * 320 / 3600 * (0.04048 + 2 * 0.004445) = $0.22
    result = cli("run", "-c", str(path), "--run-id", "cg1", "--max-cost", "0.10")
    assert result.returncode == 2, result.stderr
    flat = " ".join(result.stderr.split())
    assert "error: the run's estimate is $0.22 On-Demand ($0.07 with 100% on Spot), above --max-cost 0.10 " in flat
    assert "(nothing was submitted)" in flat
    assert "Fargate On-Demand: $0.22" in flat
    assert batch_control.counters()["calls"].get("SubmitJob", 0) == 0

    result = cli("run", "-c", str(path), "--run-id", "cg2", "--max-cost", "1")
    assert result.returncode == 0, result.stderr
    assert "estimate $0.22 On-Demand is within --max-cost 1.00" in result.stderr
    assert batch_control.counters()["calls"]["SubmitJob"] == 1


def test_max_cost_cannot_guard_a_module_without_a_duration(cli: Any, provisioned: Any, tmp_path: Path) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path).replace(", expected_duration: 30", ""))
    provisioned(path)
    result = cli("run", "-c", str(path), "--run-id", "cg3", "--max-cost", "100")
    assert result.returncode == 2
    assert "--max-cost 100: cannot price the run, no duration for reaches.fit (nothing was submitted)" in result.stderr


def test_unreadable_fargate_quotas_are_reported_not_guessed(batch_server: Any) -> None:
    quotas = fargate_vcpu_quotas(AwsOptions(endpoint_url=batch_server.url, region="us-west-2"), ["L-3032A538"])
    assert isinstance(quotas["L-3032A538"], str)
    assert quotas["L-3032A538"].startswith("NoSuchResourceException")
