"""Hydrocron's budget: ``plan`` shows a run's expected requests (items x requests_per_item) against the
non-replenishable consumable resource it spends, and ``run`` refuses a run over budget (exit 2, the figures, nothing
submitted) unless ``--force``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG = """\
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
prefix: budget
infrastructure:
  consumable_resources:
    hydrocron: {{type: replenishable, total: 3}}
    hydrocron_month: {{type: non_replenishable, total: {total}}}
stages:
  input:
    input: {{array_size: 214, consumes: {{hydrocron: 1, hydrocron_month: 70}}, requests_per_item: 70}}
"""


def write(tmp_path: Path, total: int) -> Path:
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path, total=total))
    return path


def test_plan_shows_expected_requests_against_the_budget(cli: Any, tmp_path: Path) -> None:
    path = write(tmp_path, 10_000)
    shown = cli("plan", "-c", str(path), endpoint=False)
    assert shown.returncode == 0, shown.stderr
    assert (
        "Requests: hydrocron_month: this run expects 14,980 requests (input.input 214 items x 70); 10,000 in all "
        "(the yaml's total; run reads what is left): over by 4,980" in " ".join(shown.stdout.split())
    )
    data = json.loads(cli("plan", "-c", str(path), "--format", "json", endpoint=False).stdout)
    assert data["request_budgets"] == [
        {
            "resource": "hydrocron_month",
            "expected": 14_980,
            "parts": [["input.input", 214, 70.0]],
            "left": 10_000,
            "read_from_aws": False,
            "over": True,
        }
    ]


def test_run_refuses_a_run_over_budget_unless_forced(
    cli: Any, provisioned: Any, batch_client: Any, tmp_path: Path
) -> None:
    path = write(tmp_path, 10_000)
    provisioned(path)
    refused = cli("run", "-c", str(path), "--run-id", "b1")
    assert refused.returncode == 2, refused.stderr
    text = " ".join(refused.stderr.split())
    assert "this run expects 14,980 requests (input.input 214 items x 70)" in text
    assert "over by" in text and "(nothing was submitted)" in text
    assert "confluence-submit resources set hydrocron_month N" in text
    assert batch_client.list_jobs(jobQueue="budget-input", jobStatus="SUBMITTED")["jobSummaryList"] == []
    forced = cli("run", "-c", str(path), "--run-id", "b2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "(--force: submitting anyway)" in " ".join(forced.stderr.split())
