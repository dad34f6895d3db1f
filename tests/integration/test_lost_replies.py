"""A lost SubmitJob reply never leaves a duplicate job: `run` through a proxy that forwards SubmitJob to the emulator
and then drops the reply.

AWS: SubmitJob has no idempotency token, so a request whose reply is lost may or may not have created the job.
The runtime looks the job up by its name (unique within a run) before submitting it again, and at the end of the
run cancels any second job AWS holds under one name (ListJobs is eventually consistent, so the lookup can miss).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

from lossy_proxy import lossy_proxy
from workflow import server_jobs, write_config

from confluence_runtime.planning.plan import build_plan


def described_jobs(batch_client: Any, queues: tuple[str, ...], run_id: str) -> list[dict[str, Any]]:
    ids = [job["jobId"] for job in server_jobs(batch_client, queues, run_id)]
    return batch_client.describe_jobs(jobs=ids)["jobs"] if ids else []


def recorded(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        return {r["job_name"]: r["job_id"] for r in csv.DictReader(f)}


def test_a_lost_reply_is_found_by_name_and_never_submitted_twice(
    cli: Any, batch_server: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a network that loses the replies of two SubmitJob calls after the emulator accepted them
    config_path, config = write_config(tmp_path, provisioned)
    lose = {"lr_middle_algo_0", "lr_last_out_1"}
    with lossy_proxy(batch_server.url, lambda name, attempt: name in lose and attempt == 1) as proxy:
        # WHEN the run is submitted through it
        result = replace(cli, endpoint_url=proxy.url)("run", "-c", str(config_path), "--run-id", "lr")
    # THEN each of those jobs was sent once, found by name, and the server holds exactly the plan
    assert result.returncode == 0, result.stderr
    assert sorted(proxy.lost) == sorted(lose)
    assert all(proxy.attempts[name] == 1 for name in lose)
    plan = build_plan(config, "lr")
    jobs = described_jobs(batch_client, config.job_queues, "lr")
    assert sorted(j["jobName"] for j in jobs) == sorted(s.name for s in plan.submissions)
    assert recorded(tmp_path / "submission.csv") == {j["jobName"]: j["jobId"] for j in jobs}
    assert "duplicate" not in result.stderr


def test_a_duplicate_the_lookup_could_not_see_is_cancelled_at_the_end_of_the_run_and_named(
    cli: Any, batch_server: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a lost reply for the first job, and ListJobs not yet listing it when the runtime looks (eventual
    # consistency), so the job is submitted a second time
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.hold("RUNNING", name_glob="dup_first_gen_0")  # still there to stop at the end of the run
    with lossy_proxy(
        batch_server.url, lambda name, attempt: name == "dup_first_gen_0" and attempt == 1, stale_lists=1
    ) as proxy:
        # WHEN the run is submitted through it
        result = replace(cli, endpoint_url=proxy.url)("run", "-c", str(config_path), "--run-id", "dup")
    # THEN the run succeeds, the user is told which duplicate was stopped and which job was kept
    assert result.returncode == 0, result.stderr
    assert proxy.attempts["dup_first_gen_0"] == 2
    ids = recorded(tmp_path / "submission.csv")
    jobs = {j["jobId"]: j for j in described_jobs(batch_client, config.job_queues, "dup")}
    (extra,) = [i for i, j in jobs.items() if j["jobName"] == "dup_first_gen_0" and i != ids["dup_first_gen_0"]]
    assert (
        "warning: AWS held a second job under 1 name(s) of run dup (a SubmitJob reply was lost, then the job was "
        "submitted again); the recorded job is kept:\n"
        f"  dup_first_gen_0: duplicate {extra} terminated, kept {ids['dup_first_gen_0']}\n"
    ) in result.stderr
    # AND the duplicate is stopped with a reason saying why; what depends on the first stage waits on the kept job
    assert jobs[extra]["status"] == "FAILED"
    assert "duplicate of a recorded job (a SubmitJob reply was lost)" in jobs[extra]["statusReason"]
    middle = jobs[ids["dup_middle_algo_0"]]
    assert [d["jobId"] for d in middle["dependsOn"]] == [ids["dup_first_gen_0"]]
    assert jobs[ids["dup_first_gen_0"]]["status"] != "FAILED"
