"""``run --supervise local --max-cost USD``: the supervisor stops a run once its measured spending passes the cap.

Measured as ``report`` measures it (``views/cost.py``): each finished job's attempts from AWS's timestamps
("startedAt: The Unix timestamp (in milliseconds) for when the job was started", "stoppedAt: ... for when the job
was stopped"), priced On-Demand by ``planning/prices.yaml`` with Fargate's one-minute minimum ("Pricing is
calculated ... rounded up to the nearest second with a 1-minute minimum"). The emulator's children run for well
under a minute, so each of an array's 12 children is billed the minute: a stage's cost is exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_supervise_local import document, jobs_by_name
from test_supervise_local import workflow as workflow  # the fixture

from confluence_runtime.planning.estimate import child_cost, load_prices
from confluence_runtime.views.cost import job_size


def test_a_supervised_run_over_its_cost_cap_cancels_what_waits_and_starts_nothing_new(
    cli: Any, workflow: Path, batch_control: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN a cap between what input costs and what input and flpe.neobam cost, and flpe.sad waiting (RUNNABLE)
    run_id = "20261208T031500-capp"
    batch_control.hold("RUNNABLE", name_glob=f"{run_id}_flpe_sad_*")
    [definition] = batch_client.describe_job_definitions(jobDefinitionName="confluence-dev-input", status="ACTIVE")[
        "jobDefinitions"
    ]
    vcpus, memory = job_size({"container": definition["containerProperties"]})
    stage = 12 * child_cost(load_prices("us-west-2"), vcpus, memory, 1.0)  # 12 children, each billed one minute
    cap = 1.5 * stage

    result = cli(
        "run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2",
        "--max-cost", f"{cap:.6f}",
    )  # fmt: skip

    # THEN once neobam's cost is measured the run ends over cost: sad is cancelled, output never submitted
    assert result.returncode == 1, result.stderr + result.stdout
    state = document(tmp_path, run_id)
    reason = f"its measured spending ${2 * stage:,.4f} (finished jobs, On-Demand prices) passed --max-cost ${cap:,.4f}"
    assert (state.state, state.reason, state.max_cost) == ("over_cost", reason, round(cap, 6))
    jobs = jobs_by_name(batch_client, run_id)
    assert sorted(jobs) == [f"{run_id}_flpe_neobam_0", f"{run_id}_flpe_sad_0", f"{run_id}_input_input_0"]
    [sad] = batch_client.describe_jobs(jobs=[jobs[f"{run_id}_flpe_sad_0"][0]["jobId"]])["jobs"]
    assert sad["status"] == "FAILED" and sad["statusReason"] == f"Confluence run {run_id} stopped: {reason}"
    assert not any(a.get("startedAt") for a in sad.get("attempts") or [])
    # AND the verdict (the alert's summary) and the report say so
    assert f"over cost: Confluence run {run_id} ended over cost: {reason}." in " ".join(result.stdout.split())
    report = cli("report", "-c", str(workflow), "--run-id", run_id)
    assert report.stdout.splitlines()[0].startswith(f"run {run_id}: over_cost;"), report.stdout
