"""The run record (``runs show``): what a run ran, written before the first SubmitJob and completed as it goes.

ECR: "imageDigest: The sha256 digest of the image manifest" (DescribeImages, ImageDetail); a tag pushed again
with another image names the new image from then on, so only the digest says what a past run ran.
S3: "If you enable versioning for a bucket, Amazon S3 automatically generates a unique version ID for the object
being stored" (PutObject, x-amz-version-id).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from provenance_workflow import REACHES, Workflow, first_digest, items_body, wait_run

from confluence_runtime.records.ledger import local_root


def test_runs_show_names_every_image_digest_and_the_items_version_and_hash(
    cli: Any, batch_server: Any, pv1: Workflow, tmp_path: Path
) -> None:
    # GIVEN a workflow whose images are in the emulator's ECR and whose items list is in a versioned bucket, run
    path, version = pv1.path, pv1.version

    # THEN runs show prints every module's definition revision and image digest, and the list's version and hash
    shown = cli("runs", "show", "pv1", "-c", str(path))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for name in ("pv-input", "pv-fit", "pv-sad", "pv-output"):
        at = lines.index(f"  arn:aws:batch:us-west-2:123456789012:job-definition/{name}:1")
        assert lines[at + 1] == f"    image 123456789012.dkr.ecr.us-west-2.amazonaws.com/{name}:1.0.0"
        assert lines[at + 2] == f"    digest {first_digest(name)} (ECR DescribeImages)"
    assert "  flpe.fit: s3://pv-json/reaches.json (6 items)" in lines
    assert f'    version {version}, ETag "{hashlib.md5(items_body()).hexdigest()}"' in lines  # noqa: S324
    assert f"    sha256 {hashlib.sha256(items_body()).hexdigest()}" in lines
    assert "  account 123456789012, region us-west-2, venue -, prefix pv, endpoint " + batch_server.url in lines
    assert "  flpe.fit: pv-fit, array of 6 items, 2 items per child" in lines

    # AND the JSON holds the yaml as submitted and each job's definition revision
    data = json.loads(cli("runs", "show", "pv1", "-c", str(path), "--output", "json").stdout)
    assert data["config_text"] == path.read_text()
    assert data["tool_version"] and data["header"]["run_id"] == "pv1"
    assert len(data["jobs"]) == 4  # input, fit, sad, output: each under revision 1 of its definition
    assert sorted(set(data["jobs"].values())) == [
        f"arn:aws:batch:us-west-2:123456789012:job-definition/pv-{m}:1" for m in ("fit", "input", "output", "sad")
    ]
    # AND the items' values are kept for lineage
    kept = json.loads((local_root(tmp_path / "submission.csv") / "pv1" / "items.json").read_text())
    assert kept == {"input.input": REACHES, "flpe.fit": REACHES}


def test_re_tagging_an_image_between_two_runs_shows_two_digests(cli: Any, batch_control: Any, pv1: Workflow) -> None:
    # GIVEN a run of the workflow
    path = pv1.path

    # WHEN fit's tag 1.0.0 is pushed again with a rebuilt image, and the workflow runs again
    rebuilt = batch_control.push_image("pv-fit", "1.0.0", content="fit, rebuilt")
    second = cli("run", "-c", str(path), "--run-id", "pv2")
    assert second.returncode == 0, second.stderr

    # THEN each run's record names the digest its tag named when it started
    def digest(run_id: str) -> str:
        data = json.loads(cli("runs", "show", run_id, "-c", str(path), "--output", "json").stdout)
        [fit] = [d for d in data["definitions"] if d["name"] == "pv-fit"]
        return str(fit["digest"])

    assert digest("pv1") == first_digest("pv-fit")
    assert digest("pv2") == rebuilt != first_digest("pv-fit")


def test_runs_show_refuses_a_run_it_has_no_record_of(cli: Any, pv_workflow: Workflow) -> None:
    shown = cli("runs", "show", "nope", "-c", str(pv_workflow.path))
    assert shown.returncode == 2
    assert "run nope: no run record in" in shown.stderr and "(no such run;" in shown.stderr


def test_lineage_of_a_reach_through_a_packed_module_and_its_retry_round(
    cli: Any, batch_control: Any, batch_client: Any, pv_workflow: Workflow, tmp_path: Path
) -> None:
    # GIVEN a run where fit's child 1 (reaches 2 and 3, packed two to a child) fails, and retry-failed redoes it
    path = pv_workflow.path
    batch_control.fail("pv1_flpe_fit_0", indices=[1], exit_code=2)
    assert cli("run", "-c", str(path), "--run-id", "pv1").returncode == 0
    wait_run(batch_client, tmp_path, "pv1")
    retried = cli("retry-failed", "-c", str(path), "--run-id", "pv1")
    assert retried.returncode == 0, retried.stderr
    wait_run(batch_client, tmp_path, "pv1")

    # WHEN the lineage of reach 3 (REACHES[3]) is asked
    shown = cli("lineage", "-c", str(path), "--run-id", "pv1", "--item", REACHES[3])
    assert shown.returncode == 0, shown.stderr
    data = json.loads(
        cli("lineage", "-c", str(path), "--run-id", "pv1", "--item", REACHES[3], "--output", "json").stdout
    )

    # THEN fit shows both rounds: child 1 of the first array failed; the retry, a plain job told its index 1
    # (CONFLUENCE_INDEX), succeeded
    fit = [h for h in data["handlings"] if h["module"] == "fit"]
    assert [(h["round"], h["child"], h["array_index"], h["status"]) for h in fit] == [
        (0, 1, 1, "FAILED"),
        (1, 1, None, "SUCCEEDED"),
    ]
    assert fit[0]["job_name"] == "pv1_flpe_fit_0" and fit[1]["job_name"].startswith("pv1_flpe_fit_0_retry-1")
    assert all(h["digest"] == first_digest("pv-fit") and h["attempts"] == 1 and h["log_stream"] for h in fit)
    # AND input (an items list, one reach per child) found the reach at index 3; output is the plain job after
    [source] = [h for h in data["handlings"] if h["module"] == "input"]
    assert (source["item"], source["child"], source["array_index"], source["status"]) == (3, 3, 3, "SUCCEEDED")
    assert source["child_job_id"].endswith(":3") and source["digest"] == first_digest("pv-input")
    outputs = [(h["round"], h["array_index"], h["status"]) for h in data["handlings"] if h["module"] == "output"]
    assert outputs[-1] == (1, None, "SUCCEEDED")  # rerun after the retry; the first output failed with fit
    # AND sad, with no items list, cannot place a reach id (its index would)
    assert data["not_found"] == [f"flpe.sad: no items list to find {REACHES[3]!r} in (pass its index)"]
    text = " ".join(shown.stdout.split())
    assert f"flpe.fit item 3: FAILED job pv1_flpe_fit_0 ({fit[0]['child_job_id']}), child 1, first submission" in text
    assert "output.output every item: SUCCEEDED job pv1_output_output_0_rerun-1" in text
    assert f"flpe.fit item 3: SUCCEEDED job {fit[1]['job_name']} ({fit[1]['job_id']}), plain job, round 1" in text
    # AND by index, sad's child 3 answers too
    by_index = json.loads(cli("lineage", "-c", str(path), "--run-id", "pv1", "--item", "3", "--output", "json").stdout)
    assert [(h["module"], h["child"]) for h in by_index["handlings"] if h["module"] == "sad"] == [("sad", 3)]


def test_report_ro_crate_is_a_workflow_run_crate_that_rocrate_reads(cli: Any, pv1: Workflow, tmp_path: Path) -> None:
    from rocrate.rocrate import ROCrate

    # GIVEN a finished run
    path, version = pv1.path, pv1.version

    # WHEN its report is written with --ro-crate
    out = tmp_path / "report"
    result = cli("report", "-c", str(path), "--run-id", "pv1", "--output-dir", str(out), "--ro-crate")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out / 'ro-crate-metadata.json'}" in result.stdout

    # THEN the rocrate library reads it without a warning, and its main entity is the yaml the run submitted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crate = ROCrate(str(out))
    workflow = crate.mainEntity
    assert workflow.id == "confluence.yaml" and (out / "confluence.yaml").read_text() == path.read_text()
    assert set(workflow.type) == {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"}
    profiles = {p["@id"] for p in crate.root_dataset.properties()["conformsTo"]}
    assert "https://w3id.org/ro/wfrun/provenance/0.5" in profiles
    assert "https://w3id.org/ro/wfrun/workflow/0.5" in profiles
    # AND each module is a tool with its image digest, reached from a HowToStep (Provenance Run Crate's MUSTs)
    tools = {t.id: t for t in workflow["hasPart"]}
    assert sorted(tools) == ["#module-flpe.fit", "#module-flpe.sad", "#module-input.input", "#module-output.output"]
    assert tools["#module-flpe.fit"]["softwareVersion"] == first_digest("pv-fit")
    assert sorted(s["workExample"].id for s in workflow["step"]) == sorted(tools)
    # AND the run is an action of the workflow, with the items list (its version) in and the report files out
    [run] = crate.root_dataset["mentions"]
    assert run.type == "CreateAction" and run["instrument"].id == "confluence.yaml"
    [items] = run["object"]
    assert (items.id, items["version"]) == ("s3://pv-json/reaches.json", version)
    assert items["sha256"] == hashlib.sha256(items_body()).hexdigest()
    assert sorted(r.id for r in run["result"]) == [
        "cost.json",
        "module_data_failures.json",
        "module_data_report.json",
        "report.html",
    ]
    assert run.properties()["actionStatus"]["@id"] == "http://schema.org/CompletedActionStatus"
    # AND each job is an action of its module's tool with start, end, status and its container image
    jobs = [e for e in crate.get_entities() if e.type == "CreateAction" and e.id != run.id]
    assert len(jobs) == 4
    for job in jobs:
        assert job["instrument"].id in tools
        assert job["startTime"] <= job["endTime"]
        assert job.properties()["actionStatus"]["@id"] == "http://schema.org/CompletedActionStatus"
        assert (
            job["containerImage"]["sha256"] == first_digest(job["instrument"].id.split(".")[-1].join(["pv-", ""]))[7:]
        )
    # AND the engine's OrganizeAction orchestrates one ControlAction per job and results in the run
    [organize] = [e for e in crate.get_entities() if e.type == "OrganizeAction"]
    assert organize["result"].id == run.id
    assert sorted(c["object"].id for c in organize["object"]) == sorted(j.id for j in jobs)


def test_a_supervised_run_has_a_record_and_a_lineage(cli: Any, pv_workflow: Workflow) -> None:
    # GIVEN a run supervised here (its items lists sized when each stage starts)
    path, version = pv_workflow.path, pv_workflow.version
    result = cli("run", "-c", str(path), "--run-id", "ps1", "--supervise", "local", "--poll", "0.2")
    assert result.returncode == 0, result.stderr

    # THEN its record names the items list read at its start, and its modules sized by it
    data = json.loads(cli("runs", "show", "ps1", "-c", str(path), "--output", "json").stdout)
    assert [(i["module"], i["count"], i["version_id"]) for i in data["items"]] == [
        ("input.input", 6, version),
        ("flpe.fit", 6, version),
    ]
    assert {m["module"]: m["array_size"] for m in data["modules"]} == {"input": 6, "fit": 6, "sad": 6, "output": 0}
    # AND the lineage of a reach names the children the supervisor submitted for it
    lineage = json.loads(
        cli("lineage", "-c", str(path), "--run-id", "ps1", "--item", REACHES[2], "--output", "json").stdout
    )
    handled = {(h["module"], h["child"], h["status"]) for h in lineage["handlings"]}
    assert handled == {("input", 2, "SUCCEEDED"), ("fit", 1, "SUCCEEDED"), ("output", -1, "SUCCEEDED")}
