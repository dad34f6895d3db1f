"""The report from a ledger snapshot: Confluence's JSON exactly, superseded failures dropped, a readable page."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from confluence_runtime.config import load_config
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.ledger import ChildOutcome, JobOutcome, RunEvent, RunHeader, RunRecord
from confluence_runtime.records.record import Row
from confluence_runtime.views.report import (
    build_report,
    confluence_failures,
    confluence_report,
    count_line,
    module_label,
    render_html,
)

HEADER = RunHeader(
    run_id="r1",
    plan_digest="abc",
    config_path="confluence.yaml",
    config_sha256="0" * 64,
    prefix="confluence-dev",
    region="us-west-2",
    started_at="2026-11-26T01:00:00.000+00:00",
    tool_version="0.1.0",
    stages=("input", "flpe", "postdiagnostics_flpe", "output"),
)
ROOT = Path(__file__).resolve().parents[2]
T = "2026-11-26T01:{:02d}:{:02d}.000+00:00"


def row(
    stage: str,
    module: str,
    job_id: str,
    size: int = 0,
    *,
    index: int = 0,
    name: str = "",
    kind: str = "module",
    offset: int = 0,
) -> Row:
    return Row(
        stage=stage,
        algorithm=module,
        job_name=name or f"r1_{stage}_{module}_{index}",
        job_id=job_id,
        run_id="r1",
        kind=kind,
        job_index=index,
        array_size=size,
        array_offset=offset,
    )


def outcome(
    job_id: str,
    status: str,
    created: tuple[int, int],
    started: tuple[int, int] | None,
    stopped: tuple[int, int],
    **extra: object,
) -> JobOutcome:
    return JobOutcome(
        job_id=job_id,
        job_name=job_id,
        status=status,
        observed_at=T.format(59, 0),
        created_at=T.format(*created),
        started_at=T.format(*started) if started else None,
        stopped_at=T.format(*stopped),
        **extra,
    )  # type: ignore[arg-type]


def child(index: int, reason: str = "Essential container in task exited", exit_code: int | None = 1) -> ChildOutcome:
    return ChildOutcome(index=index, status="FAILED", reason=reason, exit_code=exit_code, array_index=index)


def record() -> RunRecord:
    rows = (
        row("input", "input", "j-in", 4),
        row("input", "barrier", "j-bar", name="r1_input_barrier-0", kind="barrier"),
        row("flpe", "neobam", "j-neo", 4),
        row("flpe", "metroman", "j-met"),
        row("postdiagnostics_flpe", "postdiagnostics_flpe", "j-post", 4),
        # retry-failed generation 1: neobam's index 3 again, and it succeeded
        row("flpe", "neobam", "j-neo-retry", 0, name="r1_flpe_neobam_0_retry-1", kind="retry"),
        row("output", "output", "j-out"),
    )
    outcomes = {
        "j-in": outcome(
            "j-in",
            "SUCCEEDED",
            (0, 0),
            (0, 30),
            (2, 0),
            counts=(("SUCCEEDED", 4),),
            slowest=(ChildOutcome(index=2, status="SUCCEEDED", started_at=T.format(0, 30), stopped_at=T.format(2, 0)),),
        ),
        "j-bar": outcome("j-bar", "SUCCEEDED", (0, 0), (2, 5), (2, 6)),
        "j-neo": outcome(
            "j-neo",
            "FAILED",
            (0, 0),
            (2, 10),
            (5, 10),
            counts=(("SUCCEEDED", 2), ("FAILED", 2)),
            failed=(child(1), child(3, "Host EC2 (instance i-0abc) terminated.", None)),
        ),
        "j-met": outcome(
            "j-met", "FAILED", (0, 0), (2, 10), (3, 0), status_reason="Essential container in task exited", exit_code=2
        ),
        "j-post": outcome(
            "j-post",
            "FAILED",
            (0, 0),
            None,
            (5, 11),
            status_reason="Dependent Job failed",
            counts=(("FAILED", 4),),
            failed=(child(0, "Dependent Job failed", None),),
        ),
        "j-neo-retry": outcome("j-neo-retry", "SUCCEEDED", (6, 0), (6, 30), (7, 0), index_map=(3,)),
        "j-out": outcome("j-out", "FAILED", (0, 0), None, (5, 11), status_reason="Dependent Job failed"),
    }
    return RunRecord(header=HEADER, rows=rows, outcomes=outcomes, events=())


def test_module_names_are_confluence_labels() -> None:
    assert module_label("postdiagnostics_flpe") == "Postdiagnostics Flpe"
    assert module_label("input") == "Input"


def test_confluence_report_json_has_their_keys_types_and_order() -> None:
    report = build_report(record())
    document = confluence_report(report, temporal_range="2023-01-01T00:00:00Z,2023-12-31T23:59:59Z")
    assert list(document) == ["name", "temporal_range", "modules", "total_time"]
    assert document == {
        "name": "r1",
        "temporal_range": "2023-01-01T00:00:00Z,2023-12-31T23:59:59Z",
        "modules": [
            {
                "Module": "Input",
                "Total Jobs": 4,
                "Succeeded": 4,
                "Failed": 0,
                "Percentage Failed": 0.0,
                "Execution Time": "0:01:30",
            },
            # index 3 failed, then succeeded in retry generation 1: only index 1 still counts
            {
                "Module": "Neobam",
                "Total Jobs": 4,
                "Succeeded": 3,
                "Failed": 1,
                "Percentage Failed": 25.0,
                "Execution Time": "0:04:50",
            },
            {
                "Module": "Metroman",
                "Total Jobs": 1,
                "Succeeded": 0,
                "Failed": 1,
                "Percentage Failed": 100.0,
                "Execution Time": "0:00:50",
            },
            {
                "Module": "Postdiagnostics Flpe",
                "Total Jobs": 4,
                "Succeeded": 0,
                "Failed": 4,
                "Percentage Failed": 100.0,
                "Execution Time": "0:00:00",
            },
            {
                "Module": "Output",
                "Total Jobs": 1,
                "Succeeded": 0,
                "Failed": 1,
                "Percentage Failed": 100.0,
                "Execution Time": "0:00:00",
            },
        ],
        "total_time": "0:07:00",
    }
    for module in document["modules"]:
        assert list(module) == ["Module", "Total Jobs", "Succeeded", "Failed", "Percentage Failed", "Execution Time"]
        assert isinstance(module["Percentage Failed"], float)
    json.dumps(document)  # plain JSON types only


def test_failures_json_lists_latest_failures_with_item_values() -> None:
    report = build_report(record())
    assert confluence_failures(report) == {
        "Neobam": [{"Index": 1, "Value": 1}],
        "Metroman": [{"Index": 0, "Value": 0}],
        "Postdiagnostics Flpe": [{"Index": i, "Value": i} for i in range(4)],
        "Output": [{"Index": 0, "Value": 0}],
    }
    reaches = [{"reach_id": 71224100001 + i} for i in range(4)]
    values = confluence_failures(report, {"neobam": reaches, "postdiagnostics_flpe": reaches})
    assert values["Neobam"] == [{"Index": 1, "Value": {"reach_id": 71224100002}}]
    assert values["Postdiagnostics Flpe"][3] == {"Index": 3, "Value": {"reach_id": 71224100004}}
    nothing_failed = RunRecord(HEADER, record().rows[:1], {"j-in": record().outcomes["j-in"]}, ())
    assert confluence_failures(build_report(nothing_failed)) == {}


def test_a_run_still_going_or_cancelled_says_so() -> None:
    full = record()
    running = RunRecord(
        HEADER, full.rows, {**full.outcomes, "j-out": outcome("j-out", "RUNNABLE", (0, 0), None, (0, 0))}, ()
    )
    report = build_report(running)
    assert report.state == "running"
    assert report.modules[-1].unfinished == 1
    cancelled = RunRecord(HEADER, full.rows, full.outcomes, (RunEvent(at=T.format(9, 0), kind="cancelled"),))
    assert build_report(cancelled).state == "cancelled"
    assert build_report(full).state == "failed"


def test_html_page_is_self_contained_and_names_failures_with_logs_commands() -> None:
    report = build_report(record())
    page = render_html(
        report,
        logs_command=lambda f: (
            f"confluence-submit logs --run-id r1 --stage {f.stage} --module {f.module} --index {f.index}"
        ),
    )
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert "https://" not in page
    assert '<span class="state failed" id="state">failed</span>' in page
    assert "confluence-submit logs --run-id r1 --stage flpe --module neobam --index 1" in page
    assert "Essential container in task exited (exit code 1)" in page
    # One bar per attempt: the first round (02:10 -> 05:10) and the retry (06:30 -> 07:00), never the gap between
    assert "<title>neobam: 0:03:00</title>" in page
    assert "<title>neobam: 30.000 s</title>" in page
    assert "<title>neobam: 0:04:50</title>" not in page
    assert "sha256 000000000000" in page


def test_runs_lists_one_summary_per_run_from_the_ledger(tmp_path: Path) -> None:
    from confluence_runtime.records.ledger import open_ledger
    from confluence_runtime.views.runs import list_runs

    ledger = open_ledger(tmp_path / "submission.csv")
    full = record()
    ledger.begin(HEADER)
    with ledger.recorder("r1") as recorder:
        for r in full.rows:
            recorder.append(r)
    ledger.begin(replace(HEADER, run_id="r2", started_at="2026-11-26T02:00:00.000+00:00"))
    assert [s.run_id for s in list_runs(ledger)] == ["r1", "r2"]
    assert list_runs(ledger)[0].state == "not observed"
    ledger.observe("r1", full.outcomes.values())
    first = list_runs(ledger)[0]
    summary = (first.state, first.jobs, first.children, first.succeeded, first.failed, first.blocked, first.duration)
    assert summary == ("failed", 6, 14, 7, 2, 5, "0:07:00")
    ledger.note("r1", RunEvent(at=T.format(9, 0), kind="cancelled"))
    assert list_runs(ledger)[0].state == "cancelled"


def test_modules_follow_the_plan_order_when_given() -> None:
    plain = [m.module for m in build_report(record()).modules]
    assert plain == ["input", "neobam", "metroman", "postdiagnostics_flpe", "output"]  # the record's order
    ordered = build_report(record(), module_order=[("flpe", "metroman"), ("flpe", "neobam")])
    assert [m.module for m in ordered.modules] == ["input", "metroman", "neobam", "postdiagnostics_flpe", "output"]


def test_children_that_never_ran_are_blocked_not_failed_and_retries_are_counted() -> None:
    # GIVEN neobam with child 1 failed and child 3 failed then retried successfully, metroman failed, and
    # everything downstream never ran ("Dependent Job failed")
    report = build_report(record())
    counts = {m.module: (m.total, m.succeeded, m.failed, m.blocked, m.cancelled, m.retried) for m in report.modules}
    # THEN only the children that failed themselves count as failed; the rest are blocked
    assert counts == {
        "input": (4, 4, 0, 0, 0, 0),
        "neobam": (4, 3, 1, 0, 0, 1),
        "metroman": (1, 0, 1, 0, 0, 0),
        "postdiagnostics_flpe": (4, 0, 0, 4, 0, 0),
        "output": (1, 0, 0, 1, 0, 0),
    }
    assert count_line(report) == ("14 children: 7 succeeded, 2 failed, 5 blocked, 0 not finished; 1 needed a retry")
    # AND Confluence's JSON keeps its format: Failed is every child that did not succeed (blocked included)
    post = next(m for m in confluence_report(report)["modules"] if m["Module"] == "Postdiagnostics Flpe")
    assert (post["Failed"], post["Percentage Failed"]) == (4, 100.0)
    # AND the page lists own failures with their logs, blocked children per module, each attempt of the retried
    page = render_html(report, logs_command=lambda f: f"logs {f.module} {f.index}")
    assert "<h2>Failed children (2)</h2>" in page
    assert "<h2>Blocked children (5)</h2>" in page
    assert "never ran" not in page.split("<h2>Blocked")[0]  # no row per child that never ran among the failures
    assert "<h2>Children that needed a retry (1)</h2>" in page
    assert '<td class="n">1 of 2</td><td class="fail">Host EC2 (instance i-0abc) terminated.</td>' in page
    assert "<td>SUCCEEDED</td><td><code>r1_flpe_neobam_0_retry-1</code>" in page.replace(
        '<td class="n">2 of 2</td>', ""
    )


def test_a_cancelled_childs_state_is_cancelled() -> None:
    full = record()
    stopped = ChildOutcome(index=0, status="FAILED", reason="Confluence run r1 cancelled", array_index=0)
    outcomes = {
        **full.outcomes,
        "j-post": outcome("j-post", "FAILED", (0, 0), None, (5, 11), counts=(("FAILED", 4),), failed=(stopped,)),
    }
    report = build_report(RunRecord(HEADER, full.rows, outcomes, ()))
    post = next(m for m in report.modules if m.module == "postdiagnostics_flpe")
    assert (post.failed, post.blocked, post.cancelled) == (0, 0, 4)
    assert "<h2>Cancelled children (4)</h2>" in render_html(report)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = 1280  # the narrowest laptop screen the page is read on


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs Debian's chromium)")
def test_the_page_of_the_shipped_workflow_fits_1280_pixels(tmp_path: Path) -> None:
    # GIVEN the report of the shipped workflow (its longest module and stage names), every module with failures,
    # blocked children and a retry, so that every column has something to show
    plan = build_plan(load_config(ROOT / "confluence.yaml"), "20261126T013312-f70d")
    rows, outcomes = [], {}
    for i, s in enumerate(s for s in plan.submissions if s.kind != "barrier"):
        job_id = f"j{i}"
        rows.append(row(s.stage, s.module, job_id, s.array_size, name=s.name, offset=s.array_offset))
        failed = (child(0, "Essential container in task exited " * 3), child(1, "Dependent Job failed", None))
        outcomes[job_id] = outcome(
            job_id, "FAILED", (0, 0), (1, 0), (59, 59), counts=(("SUCCEEDED", 1), ("FAILED", 2)), failed=failed
        )
    report = build_report(RunRecord(HEADER, tuple(rows), outcomes, ()))
    page = render_html(report, logs_command=lambda f: f"confluence-submit logs --run-id r1 --module {f.module}")
    # The page has no script of its own: the test's copy measures itself and writes the width into the DOM.
    probe = "<script>document.body.dataset.width = document.documentElement.scrollWidth;</script></body>"
    (tmp_path / "page.html").write_text(page.replace("</body>", probe))
    assert CHROMIUM is not None
    dumped = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WINDOW},1000", "--dump-dom",
            (tmp_path / "page.html").as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    # THEN a 1280 px window shows it without a horizontal scroll bar
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    width = int(re.search(r'data-width="(\d+)"', dumped.stdout)[1])  # type: ignore[index]
    assert width <= WINDOW, width
