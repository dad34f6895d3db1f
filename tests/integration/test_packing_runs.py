"""A packed module through run, status and retry-failed against the Batch emulator: a failed child stands for its
items, and its retry tells the module which items to redo (the README's module contract)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from confluence_runtime import names

CONFIG = """\
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
prefix: pk
stages:
  reaches:
    fit: {{array_size: 25, items_per_child: 4}}
  after:
    out: {{}}
"""


def wait_finished(batch_client: Any, job_ids: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = batch_client.describe_jobs(jobs=job_ids)["jobs"]
        if all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs):
            return
        time.sleep(0.2)
    raise AssertionError("jobs did not finish")


def test_a_failed_packed_child_is_retried_with_its_items(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN 25 items packed 4 to a child (7 children) where children 2 and 6 (items 8-11 and 24) fail
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    provisioned(path)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail("pk1_reaches_fit_0", indices=[2, 6], exit_code=2)
    result = cli("run", "-c", str(path), "--run-id", "pk1")
    assert result.returncode == 0, result.stderr
    listed = batch_client.list_jobs(jobQueue="pk-reaches", filters=[{"name": "JOB_NAME", "values": ["pk1_*"]}])
    fit = listed["jobSummaryList"][0]
    assert fit["arrayProperties"]["size"] == 7
    wait_finished(batch_client, [fit["jobId"]])
    # AND status names the failed children with the items they stood for
    shown = cli("status", "-c", str(path), "--run-id", "pk1")
    assert "indices 2, 6 (items 8-11, 24)" in " ".join(shown.stdout.split())
    data = json.loads(cli("status", "-c", str(path), "--run-id", "pk1", "--format", "json").stdout)
    [failure] = [f for f in data["failures"] if f["module"] == "fit"]
    assert (failure["indices"], failure["items"]) == ([2, 6], [[8, 11], [24, 24]])
    # AND Confluence's failure report lists the items those children stood for, one by one
    reported = cli("report", "-c", str(path), "--run-id", "pk1", "--output-dir", str(tmp_path / "report"))
    assert reported.returncode == 0, reported.stderr
    failures = json.loads((tmp_path / "report" / "module_data_failures.json").read_text())
    assert failures["Fit"] == [{"Index": i, "Value": i} for i in (8, 9, 10, 11, 24)]

    # WHEN retry-failed runs
    retried = cli("retry-failed", "-c", str(path), "--run-id", "pk1")

    # THEN one compact array of the two failed children, whose children read exactly the failed items
    assert retried.returncode == 0, retried.stderr
    assert "retry reaches.fit[0]: 2 failed indices: 2, 6" in retried.stdout
    listed = batch_client.list_jobs(
        jobQueue="pk-reaches", filters=[{"name": "JOB_NAME", "values": ["pk1_reaches_fit_0_retry*"]}]
    )
    [retry] = batch_client.describe_jobs(jobs=[listed["jobSummaryList"][0]["jobId"]])["jobs"]
    env = {e["name"]: e["value"] for e in retry["container"]["environment"]}
    assert "CONFLUENCE_ITEM_START" not in env
    assert (env["CONFLUENCE_INDEX_MAP"], env["CONFLUENCE_ITEM_COUNT"]) == ("2,6", "4")
    read = [list(names.items_in_environment(env, i)) for i in range(retry["arrayProperties"]["size"])]
    assert read == [[8, 9, 10, 11], [24]]
