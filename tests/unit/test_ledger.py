"""The run ledger on disk: a header written once, outcomes merged whatever the order, files a person can read."""

from __future__ import annotations

import csv
import dataclasses
import json
import multiprocessing
from pathlib import Path

import pytest

from confluence_runtime.records.ledger import (
    ChildOutcome,
    JobOutcome,
    Ledger,
    LedgerConflict,
    LedgerError,
    LocalStore,
    RunEvent,
    RunHeader,
    local_root,
    merge_outcome,
    open_ledger,
    outcome_from_job,
)
from confluence_runtime.records.record import Recorder, Row


def header(run_id: str = "r1", started_at: str = "2026-11-26T01:00:00.000+00:00", **changes: object) -> RunHeader:
    values: dict[str, object] = {
        "run_id": run_id,
        "plan_digest": "abc123",
        "config_path": "confluence.yaml",
        "config_sha256": "f" * 64,
        "prefix": "confluence-dev",
        "region": "us-west-2",
        "started_at": started_at,
        "tool_version": "0.1.0",
        "account": "123456789012",
        "endpoint": "http://127.0.0.1:5000",
        "stages": ("input", "flpe"),
        **changes,
    }
    return RunHeader(**values)  # type: ignore[arg-type]


def row(run: str, name: str, job_id: str) -> Row:
    return Row(stage="input", algorithm="input", job_name=name, job_id=job_id, run_id=run, array_size=3)


# A DescribeJobs entry of a finished array parent, as AWS documents it (epoch milliseconds).
FAILED_ARRAY = {
    "jobId": "id-1",
    "jobName": "r1_input_input_0",
    "status": "FAILED",
    "statusReason": "Array Child Job failed",
    "createdAt": 1_790_000_000_000,
    "startedAt": 1_790_000_030_000,
    "stoppedAt": 1_790_000_090_500,
    "arrayProperties": {"size": 3, "statusSummary": {"SUCCEEDED": 2, "FAILED": 1, "RUNNING": 0}},
    "container": {},
    "attempts": [],
}


def test_the_ledger_sits_beside_the_submission_csv_and_reads_as_plain_files(tmp_path: Path) -> None:
    csv_path = tmp_path / "out" / "submission.csv"
    ledger = open_ledger(csv_path)
    assert local_root(csv_path) == tmp_path / "out" / "submission.ledger"
    ledger.begin(header())
    with ledger.recorder("r1") as recorder:
        recorder.append(row("r1", "r1_input_input_0", "id-1"))
    failed = ChildOutcome(
        index=7,
        status="FAILED",
        reason="Essential container in task exited",
        exit_code=1,
        array_index=2,
        log_stream="t-input/default/abc",
    )
    ledger.observe("r1", [outcome_from_job(FAILED_ARRAY, observed_at="2026-11-26T01:05:00.000+00:00", failed=[failed])])
    ledger.note("r1", RunEvent(at="2026-11-26T01:06:00.000+00:00", kind="cancelled", by="cancel"))

    # The submission CSV keeps the original columns first; the rest of the ledger is JSON beside it.
    with csv_path.open() as f:
        assert next(csv.reader(f))[:4] == ["stage", "algorithm", "job_name", "job_id"]
    run_json = json.loads((tmp_path / "out/submission.ledger/r1/run.json").read_text())
    assert run_json["run_id"] == "r1"
    assert run_json["account"] == "123456789012"
    assert run_json["stages"] == ["input", "flpe"]
    outcomes = json.loads((tmp_path / "out/submission.ledger/r1/outcomes.json").read_text())
    assert outcomes["id-1"]["status"] == "FAILED"
    assert outcomes["id-1"]["created_at"] == "2026-09-21T14:13:20.000+00:00"
    assert outcomes["id-1"]["stopped_at"] == "2026-09-21T14:14:50.500+00:00"
    assert outcomes["id-1"]["counts"] == {"SUCCEEDED": 2, "FAILED": 1}
    assert outcomes["id-1"]["failed"][0]["reason"] == "Essential container in task exited"
    assert outcomes["id-1"]["failed"][0]["exit_code"] == 1

    record = Ledger(LocalStore(local_root(csv_path))).snapshot("r1")  # a reader without the CSV sees the rest
    assert record.header == header()
    assert record.cancelled
    full = open_ledger(csv_path).snapshot("r1")
    assert [r.job_id for r in full.rows] == ["id-1"]
    assert full.outcomes["id-1"].failed == (failed,)
    assert full.outcomes["id-1"].count_map == {"SUCCEEDED": 2, "FAILED": 1}


def test_a_run_id_is_recorded_once(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "submission.csv")
    ledger.begin(header())
    ledger.begin(header())  # the same header again (a retried write) is fine
    with pytest.raises(LedgerConflict, match="run r1 is already recorded"):
        ledger.begin(header(plan_digest="other"))
    assert ledger.header("r1") == header()


def test_runs_are_listed_oldest_first_with_runs_known_only_from_the_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "submission.csv"
    with Recorder(csv_path) as recorder:  # a run recorded before the ledger existed
        recorder.append(row("old", "old_input_input_0", "id-0"))
    ledger = open_ledger(csv_path)
    ledger.begin(header("r2", started_at="2026-11-26T02:00:00.000+00:00"))
    ledger.begin(header("r1", started_at="2026-11-26T01:00:00.000+00:00"))
    assert ledger.run_ids() == ["old", "r1", "r2"]
    assert [h.run_id for h in ledger.headers()] == ["r1", "r2"]
    assert ledger.latest() == header("r2", started_at="2026-11-26T02:00:00.000+00:00")


def test_outcomes_converge_whatever_the_order_and_duplicates() -> None:
    running = JobOutcome(job_id="a", job_name="n", status="RUNNING", observed_at="2026-11-26T01:00:00+00:00")
    done = JobOutcome(job_id="a", job_name="n", status="SUCCEEDED", observed_at="2026-11-26T01:00:05+00:00")
    late_running = JobOutcome(job_id="a", job_name="n", status="RUNNING", observed_at="2026-11-26T01:00:09+00:00")
    orders = [[running, done, late_running], [late_running, done, running], [done, done, running, late_running]]
    for order in orders:
        merged = None
        for outcome in order:
            merged = merge_outcome(merged, outcome)
        assert merged == done  # a final observation is never replaced by a non-final one, even a later one


def test_documents_are_compare_and_swapped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    first = store.create("r1/x.json", b"1")
    with pytest.raises(LedgerConflict):
        store.create("r1/x.json", b"2")
    second = store.replace("r1/x.json", b"2", first.version)
    with pytest.raises(LedgerConflict, match="changed since it was read"):
        store.replace("r1/x.json", b"3", first.version)  # a writer that read the old version loses
    assert store.get("r1/x.json") == second
    assert sorted(p.name for p in (tmp_path / "r1").iterdir() if not p.name.startswith(".")) == ["x.json"]


def _add_events(root: str, worker: int) -> None:
    ledger = Ledger(LocalStore(root))
    for i in range(15):
        ledger.note("r1", RunEvent(at=f"{worker}-{i}", kind="test"))


def test_concurrent_writers_never_lose_an_update(tmp_path: Path) -> None:
    processes = [multiprocessing.Process(target=_add_events, args=(str(tmp_path), w)) for w in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    assert all(p.exitcode == 0 for p in processes)
    events = Ledger(LocalStore(tmp_path)).events("r1")
    assert sorted(e.at for e in events) == sorted(f"{w}-{i}" for w in range(4) for i in range(15))


def test_a_document_written_by_a_newer_version_still_reads(tmp_path: Path) -> None:
    ledger = Ledger(LocalStore(tmp_path))
    data = {**header().to_dict(), "some_future_field": 1}
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "run.json").write_text(json.dumps(data))
    assert ledger.header("r1") == header()


def test_a_childs_record_keeps_only_what_is_known_and_reads_back_the_same() -> None:
    # A global run records hundreds of thousands of failed children: defaults are left out of each record.
    bare = ChildOutcome(index=7, status="FAILED")
    assert bare.to_dict() == {"index": 7, "status": "FAILED"}
    full = ChildOutcome(
        index=7,
        status="FAILED",
        reason="Essential container in task exited",
        exit_code=0,
        array_index=0,
        log_stream="s",
        attempts=2,
        started_at="2026-11-26T01:00:00.000+00:00",
        stopped_at="2026-11-26T01:01:00.000+00:00",
        reclaims=1,
    )
    assert set(full.to_dict()) == {f.name for f in dataclasses.fields(ChildOutcome)}
    for child in (bare, full):
        outcome = JobOutcome(job_id="j", job_name="n", status="FAILED", observed_at="t", failed=(child,))
        assert JobOutcome.from_dict(json.loads(json.dumps(outcome.to_dict()))) == outcome


def test_a_compact_jobs_index_map_is_kept_as_ranges_and_earlier_lists_still_read() -> None:
    outcome = JobOutcome(job_id="j", job_name="n", status="SUCCEEDED", observed_at="t", index_map=(0, 1, 2, 7))
    assert outcome.to_dict()["index_map"] == "0-2,7"
    assert JobOutcome.from_dict(outcome.to_dict()) == outcome
    assert JobOutcome.from_dict({**outcome.to_dict(), "index_map": [0, 1, 2, 7]}) == outcome


def test_final_outcomes_kept_by_reference_read_as_themselves_and_stay_references(tmp_path: Path) -> None:
    ledger = Ledger(LocalStore(tmp_path))
    failed = JobOutcome(
        job_id="j1",
        job_name="r1_input_input_0",
        status="FAILED",
        observed_at="2026-11-26T01:00:00.000+00:00",
        array_size=3,
        counts=(("FAILED", 1), ("SUCCEEDED", 2)),
        failed=(ChildOutcome(index=2, status="FAILED", reason="Essential container in task exited", exit_code=1),),
    )
    ledger.update("r1", "supervisor-outcome-j1-detail.json", lambda _: failed.to_dict())
    ledger.keep_final("r1", {"j1": ("FAILED", "supervisor-outcome-j1-detail.json")})

    # Each failed child is written once: outcomes.json names the object that holds the job's outcome.
    stored = json.loads((tmp_path / "r1/outcomes.json").read_text())
    assert stored == {"j1": {"$ref": "supervisor-outcome-j1-detail.json", "status": "FAILED"}}
    assert ledger.outcomes("r1") == {"j1": failed}

    # Observing another job leaves the reference as it is; the merged view still reads the referenced outcome.
    running = JobOutcome(job_id="j2", job_name="r1_flpe_sad_0", status="RUNNING", observed_at="t")
    ledger.observe("r1", [running])
    assert ledger.outcomes("r1") == {"j1": failed, "j2": running}
    assert json.loads((tmp_path / "r1/outcomes.json").read_text())["j1"] == stored["j1"]

    # A reference to an object that is gone is named in the error.
    ledger.keep_final("r1", {"j3": ("SUCCEEDED", "supervisor-outcome-j3-detail.json")})
    with pytest.raises(LedgerError, match=r"names supervisor-outcome-j3-detail\.json, which is missing"):
        ledger.outcomes("r1")
