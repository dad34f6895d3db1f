"""The shared ledger in S3 (the emulator's moto S3): conditional writes keep two writers from clobbering each other.

AWS: "put_object(..., IfNoneMatch='*')" creates only if absent; "IfMatch" replaces only the version read; a failed
condition is HTTP 412 PreconditionFailed (see shared AWS-FACTS: S3 conditional writes).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from confluence_runtime.aws.api import AwsOptions, call, client
from confluence_runtime.records.ledger import (
    JobOutcome,
    Ledger,
    LedgerConflict,
    RunEvent,
    RunHeader,
    S3Store,
    open_ledger,
    open_store,
)
from confluence_runtime.records.record import Row

HEADER = RunHeader(
    run_id="r1",
    plan_digest="abc",
    config_path="confluence.yaml",
    config_sha256="0" * 64,
    prefix="confluence-dev",
    region="us-west-2",
    started_at="2026-11-26T01:00:00.000+00:00",
    tool_version="0.1.0",
)


@pytest.fixture
def s3(batch_server: Any, batch_control: Any) -> tuple[AwsOptions, Any]:
    options = AwsOptions(endpoint_url=batch_server.url, region="us-west-2")
    s3 = client("s3", options)
    call(
        "CreateBucket",
        s3.create_bucket,
        Bucket="team-ledger",
        CreateBucketConfiguration={"LocationConstraint": "us-west-2"},
    )
    return options, s3


def test_s3_store_creates_once_and_replaces_only_the_version_read(s3: tuple[AwsOptions, Any]) -> None:
    options, s3_client = s3
    store = open_store("s3://team-ledger/runs/dev", options)
    assert isinstance(store, S3Store)
    assert store.location == "s3://team-ledger/runs/dev"
    first = store.create("r1/x.json", b"1")
    with pytest.raises(LedgerConflict, match="PreconditionFailed"):
        store.create("r1/x.json", b"2")
    second = store.replace("r1/x.json", b"2", first.version)
    with pytest.raises(LedgerConflict):
        store.replace("r1/x.json", b"3", first.version)
    with pytest.raises(LedgerConflict):
        store.replace("r1/missing.json", b"3", first.version)  # moto: 404 NoSuchKey for IfMatch on a missing key
    assert store.get("r1/x.json") == second
    assert store.get("r1/none.json") is None
    assert store.list_dirs() == ["r1"]
    keys = [o["Key"] for o in call("ListObjectsV2", s3_client.list_objects_v2, Bucket="team-ledger")["Contents"]]
    assert keys == ["runs/dev/r1/x.json"]


def test_a_mirrored_ledger_lets_a_teammate_see_the_run(s3: tuple[AwsOptions, Any], tmp_path: Path) -> None:
    options, _ = s3
    mine = open_ledger(tmp_path / "submission.csv", "s3://team-ledger/runs", options)
    mine.begin(HEADER)
    with mine.recorder("r1") as recorder:
        recorder.append(Row(stage="a", algorithm="a", job_name="r1_a_a_0", job_id="id-1", run_id="r1"))
        recorder.append(Row(stage="b", algorithm="b", job_name="r1_b_b_0", job_id="id-2", run_id="r1"))
    mine.observe("r1", [JobOutcome(job_id="id-1", job_name="r1_a_a_0", status="SUCCEEDED", observed_at="t1")])

    theirs = open_ledger(None, "s3://team-ledger/runs", options)  # no local files at all
    assert theirs.run_ids() == ["r1"]
    record = theirs.snapshot("r1")
    assert record.header == HEADER
    assert [r.job_id for r in record.rows] == ["id-1", "id-2"]
    assert record.outcomes["id-1"].status == "SUCCEEDED"
    assert [r.job_id for r in mine.snapshot("r1").rows] == ["id-1", "id-2"]  # from the local CSV


def test_two_writers_racing_on_s3_lose_nothing(s3: tuple[AwsOptions, Any]) -> None:
    options, _ = s3
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        ledger = Ledger(open_store("s3://team-ledger/race", options))
        try:
            for i in range(8):
                ledger.note("r1", RunEvent(at=f"{worker}-{i}", kind="test"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = Ledger(open_store("s3://team-ledger/race", options)).events("r1")
    assert sorted(e.at for e in events) == sorted(f"{w}-{i}" for w in range(3) for i in range(8))
