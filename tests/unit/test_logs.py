"""Which job, child and attempt ``logs`` reads: retry generations replace earlier jobs, attempts count from 1."""

from __future__ import annotations

import pytest

from confluence_runtime.errors import RecordError
from confluence_runtime.records.ledger import JobOutcome
from confluence_runtime.records.record import Row
from confluence_runtime.views.logs import DEFAULT_LOG_GROUP, locate, pick_stream


def row(
    name: str,
    job_id: str,
    size: int = 0,
    *,
    offset: int = 0,
    kind: str = "module",
    index: int = 0,
    module: str = "neobam",
) -> Row:
    return Row(
        stage="flpe",
        algorithm=module,
        job_name=name,
        job_id=job_id,
        run_id="r1",
        kind=kind,
        job_index=index,
        array_size=size,
        array_offset=offset,
    )


ROWS = [
    row("r1_flpe_neobam_0-0", "shard0", 5),
    row("r1_flpe_neobam_0-1", "shard1", 5, offset=5),
    row("r1_flpe_neobam_0_retry-1", "retry1", 2, kind="retry"),
    row("r1_flpe_metroman_0", "plain", module="metroman"),
]
OUTCOMES = {
    "retry1": JobOutcome(
        job_id="retry1", job_name="r1_flpe_neobam_0_retry-1", status="SUCCEEDED", observed_at="t", index_map=(3, 7)
    )
}


def test_an_index_is_read_from_the_job_that_ran_it_last() -> None:
    assert locate(ROWS, OUTCOMES, stage="flpe", module="neobam", index=6).job_id == "shard1:1"
    assert locate(ROWS, OUTCOMES, stage="flpe", module="neobam", index=7).job_id == "retry1:1"  # retried
    assert locate(ROWS, {}, stage="flpe", module="neobam", index=7, index_maps={"retry1": [3, 7]}).job_id == "retry1:1"
    assert locate(ROWS, {}, stage="flpe", module="neobam", index=7).job_id == "shard1:2"  # map not known
    assert locate(ROWS, OUTCOMES, stage="flpe", module="metroman", index=None).job_id == "plain"


def test_unknown_modules_indices_and_missing_index_are_explained() -> None:
    with pytest.raises(RecordError, match=r"is an array job: pass --index I \(0\.\.9\)"):
        locate(ROWS, OUTCOMES, stage="flpe", module="neobam", index=None)
    with pytest.raises(RecordError, match="has no child with index 12"):
        locate(ROWS, OUTCOMES, stage="flpe", module="neobam", index=12)
    with pytest.raises(RecordError, match="no job of stage 'flpe', module 'sad' in this run; it has flpe/metroman"):
        locate(ROWS, OUTCOMES, stage="flpe", module="sad", index=0)


def test_streams_per_attempt() -> None:
    # DescribeJobs: container.logStreamName is the latest attempt's; attempts[] keeps each attempt's.
    job = {
        "container": {"logStreamName": "def/default/b", "logConfiguration": {"options": {"awslogs-group": "/g"}}},
        "attempts": [
            {"container": {"logStreamName": "def/default/a"}},
            {"container": {"logStreamName": "def/default/b"}},
        ],
    }
    assert pick_stream(job, None).name == "def/default/b"
    assert pick_stream(job, 1).name == "def/default/a"
    assert pick_stream(job, 1).group == "/g"
    assert (pick_stream(job, None).attempt, pick_stream(job, None).attempts) == (2, 2)
    with pytest.raises(RecordError, match="attempt 3 does not exist: the job has 2 attempts"):
        pick_stream(job, 3)
    never_ran = pick_stream({"status": "RUNNABLE"}, None)
    assert never_ran.name is None
    assert never_ran.group == DEFAULT_LOG_GROUP
