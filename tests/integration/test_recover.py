"""Recover from a stage: ``run --from-stage STAGE --origin-run-id R [--items-subset FILE]`` submits STAGE and every
later stage, on the origin's items (or a subset), linked to the origin in both runs' records.

AWS Batch: "For array jobs, the AWS_BATCH_JOB_ARRAY_INDEX environment variable is set to the container's
corresponding job array index number" -- a subset's scattered children read their item from
CONFLUENCE_INDEX_MAP at that index, as retry-failed's compact arrays do.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from provenance_workflow import REACHES, Workflow, wait_run

from confluence_runtime import names


def rows(tmp_path: Path, run_id: str) -> list[dict[str, str]]:
    with (tmp_path / "submission.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["run_id"] == run_id]


def environment(batch_client: Any, job_id: str) -> dict[str, str]:
    [job] = batch_client.describe_jobs(jobs=[job_id])["jobs"]
    return {e["name"]: e["value"] for e in job["container"]["environment"]}


def test_recovered_from_flpe_on_three_reaches_submits_only_flpe_and_later_for_them(
    cli: Any, batch_client: Any, pv1: Workflow, tmp_path: Path
) -> None:
    # GIVEN a finished run pv1 of the workflow (input, flpe: fit packed two reaches a child and sad, output)
    path = pv1.path
    subset = tmp_path / "subset.txt"
    subset.write_text(f"{REACHES[1]}\n{REACHES[4]}\n\n{REACHES[5]}\n")

    # WHEN it is recovered from flpe on three reaches (items 1, 4 and 5)
    result = cli(
        "run", "-c", str(path), "--run-id", "pv2", "--from-stage", "flpe", "--origin-run-id", "pv1",
        "--items-subset", str(subset),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    # THEN only flpe and output are submitted: fit's children 0 and 2 (items 0-1, 4-5), sad's 1, 4 and 5
    submitted = {r["job_name"]: r for r in rows(tmp_path, "pv2")}
    assert sorted(submitted) == ["pv2_flpe_fit_0", "pv2_flpe_sad_0", "pv2_output_output_0"]
    fit = environment(batch_client, submitted["pv2_flpe_fit_0"]["job_id"])
    sad = environment(batch_client, submitted["pv2_flpe_sad_0"]["job_id"])
    assert (fit[names.ENV_INDEX_MAP], fit[names.ENV_ITEM_COUNT], fit[names.ENV_ARRAY_SIZE]) == ("0,2", "2", "6")
    assert (submitted["pv2_flpe_fit_0"]["array_size"], submitted["pv2_flpe_sad_0"]["array_size"]) == ("2", "3")
    assert sad[names.ENV_INDEX_MAP] == "1,4,5"
    assert [list(names.items_in_environment(fit, i)) for i in range(2)] == [[0, 1], [4, 5]]
    wait_run(batch_client, tmp_path, "pv2")

    # AND both runs' records, status, runs and report show the link
    assert "  recovered from run pv1 at stage flpe, 3 items" in cli("runs", "show", "pv2", "-c", str(path)).stdout
    assert "  recovered by: pv2" in cli("runs", "show", "pv1", "-c", str(path)).stdout
    status2 = cli("status", "-c", str(path), "--run-id", "pv2")
    assert status2.returncode == 0, status2.stderr + status2.stdout
    assert "run pv2: recovered from run pv1 at stage flpe on 3 items" in status2.stdout
    assert "run pv1: recovered by run pv2" in cli("status", "-c", str(path), "--run-id", "pv1").stdout
    status_json = json.loads(cli("status", "-c", str(path), "--run-id", "pv2", "--output", "json").stdout)
    assert status_json["link"] == {"origin_run_id": "pv1", "from_stage": "flpe", "subset": 3}
    assert status_json["state"] == "succeeded"
    listed = cli("runs", "-c", str(path)).stdout
    assert "run pv1: recovered by run pv2" in listed and "run pv2: recovered from run pv1 at stage flpe" in listed
    for run_id, says in (("pv1", "recovered by run pv2"), ("pv2", "recovered from run pv1 at stage flpe on 3 items")):
        reported = cli("report", "-c", str(path), "--run-id", run_id, "--output-dir", str(tmp_path / run_id))
        assert f"run {run_id}: {says}" in reported.stdout, reported.stderr
    as_json = cli("report", "-c", str(path), "--run-id", "pv2", "--output-dir", str(tmp_path / "j"), "--output", "json")
    assert json.loads(as_json.stdout)["link"] == {"origin_run_id": "pv1", "from_stage": "flpe", "subset": 3}

    # AND the lineage of reach 4 in pv2 takes input from pv1 and fit from pv2's child 1 (index map 0,2)
    data = json.loads(
        cli("lineage", "-c", str(path), "--run-id", "pv2", "--item", REACHES[4], "--output", "json").stdout
    )
    handled = [(h["run_id"], h["module"], h["child"], h["array_index"], h["via"]) for h in data["handlings"]]
    assert handled == [
        ("pv1", "input", 4, 4, "origin pv1"),
        ("pv2", "fit", 2, 1, ""),
        ("pv2", "output", -1, None, ""),
    ]
    assert data["origins"] == ["pv1"]


def test_recovery_is_refused_with_its_reason(
    cli: Any, batch_control: Any, batch_client: Any, pv_workflow: Workflow, tmp_path: Path
) -> None:
    # GIVEN a run pv1 whose input child 2 failed (so flpe and output failed after it)
    path = pv_workflow.path
    batch_control.fail("pv1_input_input_0", indices=[2], exit_code=2)
    assert cli("run", "-c", str(path), "--run-id", "pv1").returncode == 0
    wait_run(batch_client, tmp_path, "pv1")

    def recover(*extra: str) -> Any:
        return cli("run", "-c", str(path), "--from-stage", "flpe", "--origin-run-id", "pv1", *extra)

    # THEN recovering from flpe is refused: input did not finish
    refused = recover()
    assert refused.returncode == 2
    assert (
        "--origin-run-id pv1: the stages before flpe did not finish: input.input[0] has 1 failed children (2) no "
        "retry redid" in " ".join(refused.stderr.split())
    )
    # AND once retry-failed has redone it, a subset naming an item pv1 did not have is refused
    assert cli("retry-failed", "-c", str(path), "--run-id", "pv1").returncode == 0
    wait_run(batch_client, tmp_path, "pv1")
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps([REACHES[0], "71000999", 6]))
    refused = recover("--items-subset", str(subset))
    assert refused.returncode == 2
    assert f"{subset}: run pv1 had no item 71000999, 6: not in its items lists (s3://pv-json/reaches.json" in (
        " ".join(refused.stderr.split())
    )
    # AND a yaml that changed input (a stage before flpe) is refused
    path.write_text(path.read_text().replace("input: {items:", "input: {arguments: [-x], items:"))
    refused = recover()
    assert refused.returncode == 2
    assert f"--from-stage flpe: {path} changed stage input since run pv1" in " ".join(refused.stderr.split())
    # AND nothing was submitted by any refused recovery
    assert {r["run_id"] for r in csv.DictReader((tmp_path / "submission.csv").open())} == {"pv1"}


def test_a_supervised_recovery_and_a_recovery_of_a_recovered_run(cli: Any, pv1: Workflow, tmp_path: Path) -> None:
    # GIVEN a finished run pv1
    path = pv1.path

    # WHEN it is recovered from flpe under local supervision
    supervised = cli(
        "run", "-c", str(path), "--run-id", "pv2", "--from-stage", "flpe", "--origin-run-id", "pv1",
        "--supervise", "local", "--poll", "0.2",
    )  # fmt: skip

    # THEN the supervisor submitted flpe and output only, sized as pv1 (fit: 3 children of 2 reaches)
    assert supervised.returncode == 0, supervised.stderr
    submitted = {r["job_name"]: r["array_size"] for r in rows(tmp_path, "pv2")}
    assert {n.split("_")[2] for n in submitted} == {"fit", "sad", "output"}, submitted
    assert "  recovered from run pv1 at stage flpe" in cli("runs", "show", "pv2", "-c", str(path)).stdout

    # AND a run recovered from pv2 at output submits output only; from input it is refused (pv2 never ran input)
    third = cli(
        "run", "-c", str(path), "--run-id", "pv3", "--from-stage", "output", "--origin-run-id", "pv2",
        "--watch", "--interval", "0.1",
    )  # fmt: skip
    assert third.returncode == 0, third.stderr  # watched until it succeeded
    assert [r["job_name"] for r in rows(tmp_path, "pv3")] == ["pv3_output_output_0"]
    refused = cli("run", "-c", str(path), "--from-stage", "input", "--origin-run-id", "pv2")
    assert refused.returncode == 2
    assert (
        "--from-stage input: run pv2 started at stage flpe (recovered from run pv1); recover from run pv1 to redo input"
        in " ".join(refused.stderr.split())
    )
