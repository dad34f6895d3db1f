"""The three-stage workflow the operations tests run, and how they read it back from the emulator and the CSV.

first (array 6) -> middle: algo (array 5), single (plain job) -> last: out (2 jobs of array 3): 5 SubmitJob calls.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluence_runtime import names

CONFIG = """\
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
prefix: t
stages:
  first:
    gen:
      array_size: 6
      arguments: [-i, "-235"]
  middle:
    algo:
      array_size: 5
    single:
      array_size: 0
  last:
    out:
      num_jobs: 2
      array_size: 3
"""
JOBS = 5


def write_config(tmp_path: Path, provisioned: Any, text: str = CONFIG) -> tuple[Path, Any]:
    """Write the workflow to ``tmp_path/confluence.yaml`` and provision its queues on the emulator."""
    path = tmp_path / "confluence.yaml"
    path.write_text(text.format(tmp=tmp_path))
    return path, provisioned(path)


def server_jobs(batch_client: Any, queues: Iterable[str], run_id: str) -> list[dict[str, Any]]:
    """Every parent job of the run the server holds, found by name (the way an operator would): ListJobs summaries."""
    jobs: list[dict[str, Any]] = []
    for queue in queues:
        pages = batch_client.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [names.run_name_prefix(run_id) + "*"]}]
        )
        jobs += [job for page in pages for job in page["jobSummaryList"]]
    return jobs


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The submission CSV's rows ([] before the run wrote it)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
