"""The submission CSV: original columns first, one durable row per job, several runs per file, crash-tolerant reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from confluence_runtime.errors import RecordError
from confluence_runtime.records.record import COLUMNS, Recorder, Row, read_rows, run_ids


def row(run: str, name: str, job_id: str) -> Row:
    return Row(stage="input", algorithm="input", job_name=name, job_id=job_id, run_id=run, array_size=214)


def test_rows_are_appended_and_read_back_per_run(tmp_path: Path) -> None:
    path = tmp_path / "out" / "submission.csv"
    with Recorder(path) as recorder:
        recorder.append(row("r1", "r1_input_input_0", "id-1"))
    with Recorder(path) as recorder:  # a second run appends; nothing of the first is lost
        recorder.append(row("r2", "r2_input_input_0", "id-2"))
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert lines[0].startswith("stage,algorithm,job_name,job_id,run_id,")
    assert lines[1].startswith("input,input,r1_input_input_0,id-1,r1,module,0,214,0,")
    assert run_ids(path) == ["r1", "r2"]
    assert [r.job_id for r in read_rows(path)] == ["id-2"]  # the latest run by default
    assert read_rows(path, "r1") == [row("r1", "r1_input_input_0", "id-1")]


def test_a_row_torn_by_a_crash_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "submission.csv"
    with Recorder(path) as recorder:
        recorder.append(row("r1", "r1_a", "id-1"))
    with path.open("a") as f:
        f.write("input,input,r1_b")  # the process died mid-write
    assert [r.job_id for r in read_rows(path, "r1")] == ["id-1"]


def test_foreign_files_are_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "submission.csv"
    path.write_text("stage,algorithm,job_name,job_id\ninput,input,input_input_0,abc\n")
    with (
        pytest.raises(
            RecordError,
            match="a submission file of the original tool \\(columns stage,algorithm,job_name,job_id only\\)",
        ),
        Recorder(path) as recorder,
    ):
        recorder.append(row("r1", "r1_a", "id-1"))
    assert path.read_text() == "stage,algorithm,job_name,job_id\ninput,input,input_input_0,abc\n"
    with pytest.raises(RecordError, match="no such submission file"):
        read_rows(tmp_path / "missing.csv")
