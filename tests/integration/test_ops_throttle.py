"""Under throttling (the emulator answers a share of SubmitJob with 429 and caps it at 50/s), every job of a run
is submitted exactly once, and status reads it back."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from confluence_runtime.planning.plan import build_plan

CONFIG = """\
submission_file: {tmp}/submission.csv
log_file: {tmp}/confluence.log
prefix: th
stages:
  one:
    a: {{num_jobs: 12, array_size: 4}}
  two:
    b: {{num_jobs: 12}}
"""


def test_every_job_is_submitted_exactly_once_under_429s(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a 24-call plan (12 arrays, then 12 jobs each waiting on all of them) and a server refusing 30 % of SubmitJob calls, at most 50/s
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    config = provisioned(path)
    batch_control.set_durations(default=30)
    batch_control.throttle(share=0.3, status=429, operations=["SubmitJob"], submit_rate=50)

    # WHEN the run is submitted at the account limit
    result = cli("run", "-c", str(path), "--run-id", "thr", "--rate", "50")

    # THEN it succeeds, some calls were refused, and each plan job exists once on the server and in the CSV
    assert result.returncode == 0, result.stderr
    plan = build_plan(config, "thr")
    counters = batch_control.counters()
    assert sum(counters["injected"].values()) > 0
    names: Counter[str] = Counter()
    for queue in config.job_queues:
        page = batch_client.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["thr_*"]}])
        names.update(j["jobName"] for j in page["jobSummaryList"])
    assert names == Counter(s.name for s in plan.submissions)
    batch_control.throttle(share=0)
    status = json.loads(cli("status", "-c", str(path), "--run-id", "thr", "--format", "json").stdout)
    assert sum(m["jobs"] for s in status["stages"] for m in s["modules"]) == plan.submit_calls == 24
