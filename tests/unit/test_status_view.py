"""What a person sees in `status --watch`: it fits 80x24 and 120x40 with the summary and failures visible, the two
postdiagnostics stages stay apart, failed work is never a green 100 %, a cancelled run reads cancelled."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from confluence_runtime.config import load_config
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.ledger import RunHeader
from confluence_runtime.states import STATUSES
from confluence_runtime.views.render import _bar, _percent, status_summary, status_view, watch_changes
from confluence_runtime.views.status import FailureGroup, ModuleCounts, RunStatus, where_differs

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)


def shipped_status(*, failed_stage: str | None = "flpe", running_from: str | None = None) -> RunStatus:
    """The shipped workflow (13 stages, flpe with 6 modules): done up to ``running_from``, flpe's neobam with 3
    failed children and everything after it failed by the dependency."""
    plan = build_plan(load_config(ROOT / "confluence.yaml"), "r1")
    modules: list[ModuleCounts] = []
    state = "done"
    for stage in plan.stages:
        if stage == running_from:
            state = "running"
        for module in dict.fromkeys(s.module for s in plan.for_stage(stage) if s.kind != "barrier"):
            size = sum(max(s.array_size, 1) for s in plan.for_stage(stage) if s.module == module)
            counts = dict.fromkeys(STATUSES, 0)
            if state == "done":
                counts["SUCCEEDED"] = size
            elif state == "running":
                counts["RUNNING"] = size
            else:
                counts["FAILED"] = size
            if stage == failed_stage and module == "neobam":
                counts["SUCCEEDED"], counts["FAILED"] = size - 3, 3
            modules.append(ModuleCounts(stage, module, jobs=1, counts=counts))
        if stage == failed_stage:
            state = "failed"
        elif state == "running":
            state = "queued"
    failures = []
    if failed_stage:
        failures = [
            FailureGroup(
                "flpe",
                "neobam",
                "r1_flpe_neobam_0",
                "id",
                "Essential container in task exited (exit code 2)",
                3,
                (3, 17, 40),
            ),
            FailureGroup(
                "postdiagnostics_flpe",
                "postdiagnostics_flpe",
                "r1_postdiagnostics_flpe_0",
                "id2",
                "Dependent Job failed",
                214,
                tuple(range(214)),
            ),
        ]
    return RunStatus(
        run_id="20261126T013312-f70d",
        source="csv",
        stages=list(plan.stages),
        modules=modules,
        failures=failures,
        outstanding={("all", "failed", 0): set(range(861))} if failed_stage else {},
        missing=[],
        duplicates=[],
        started_at=NOW - timedelta(minutes=3),
        stopped_at=NOW - timedelta(seconds=5),
    )


def render(status: RunStatus, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, file=io.StringIO(), color_system=None, record=True)
    logs = "confluence-submit logs -s out/submission.csv --run-id 20261126T013312-f70d --endpoint-url http://127.0.0.1:45875"
    console.print(
        status_view(
            status,
            now=NOW,
            width=width,
            height=height,
            hint=["--endpoint-url", "http://127.0.0.1:45875"],
            logs_command=lambda f: f"{logs} --stage {f.stage} --module {f.module} --index {f.indices[0]}",
        )
    )
    return console.export_text().rstrip("\n").split("\n")


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
def test_a_failed_run_fits_the_terminal_with_summary_and_failures_visible(width: int, height: int) -> None:
    lines = render(shipped_status(), width, height)
    assert len(lines) <= height - 1  # one line left for the prompt
    assert max(len(line) for line in lines) <= width
    assert lines[0] == "run 20261126T013312-f70d: failed (from csv)"
    assert lines[1] == "elapsed 0:02:55 · updated 02:00:00 UTC"
    assert lines[2] == "2267 children: 1406 succeeded, 861 failed, 0 running, 0 queued"
    text = "\n".join(lines)
    assert "failed: flpe/neobam 3 x Essential container in task exited (exit code 2)" in text.replace("\n  ", " ")
    names = [line.split()[0] for line in lines[5:] if line and not line.startswith((" ", "failed", "..."))]
    assert "postdiagnostics_flpe" in names and "postdiagnostics_moi" in names
    # the logs command, folded with shell continuations, is the exact command once joined
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("confluence-submit logs"))
    command = []
    for line in lines[start:]:
        command.append(line.strip().removesuffix("\\").strip())
        if not line.endswith("\\"):
            break
    assert " ".join(command) == (
        "confluence-submit logs -s out/submission.csv --run-id 20261126T013312-f70d --endpoint-url "
        "http://127.0.0.1:45875 --stage flpe --module neobam --index 3"
    )


def test_a_running_run_shows_elapsed_and_an_eta_and_folds_what_is_done_on_a_small_screen() -> None:
    status = shipped_status(failed_stage=None, running_from="flpe")
    status.stopped_at = None
    lines = render(status, 80, 24)
    assert lines[0] == "run 20261126T013312-f70d: running (from csv)"
    assert lines[1].startswith("elapsed 0:03:00 · ETA in ~0:")  # a duration, not a time of day
    assert any(line.startswith("datagen +5 done") for line in lines)
    assert len(lines) <= 23


def test_failed_work_is_never_a_green_100_percent_and_cancelled_reads_cancelled() -> None:
    percent = _percent({"SUCCEEDED": 199_999, "FAILED": 1})
    assert (percent.plain, percent.style) == ("100%", "red")
    assert _percent({"SUCCEEDED": 5}).style == "green"
    bar = _bar({"SUCCEEDED": 199_999, "FAILED": 1}, 10)
    assert [span.style for span in bar.spans] == ["green", "red"]  # one failed child of 200,000 still shows red
    assert (bar.plain, bar.spans[1].end - bar.spans[1].start) == ("━" * 10, 1)
    status = shipped_status()
    status.cancelled = True
    assert status.state == "cancelled"
    assert render(status, 120, 40)[0] == "run 20261126T013312-f70d: cancelled (from csv)"


def test_a_long_summary_line_folds_instead_of_being_cut() -> None:
    status = shipped_status()
    status.outstanding = {("flpe", "neobam", 0): {3, 17, 40}}  # after retry-failed: only 3 still count
    lines = render(status, 80, 24)
    assert max(len(line) for line in lines) <= 80
    assert lines[2] == "2267 children: 1406 succeeded, 861 failed, 0 running, 0 queued;"
    assert lines[3] == "  3 failed and not retried"


def test_a_piped_watch_prints_a_line_only_for_what_changed() -> None:
    running = shipped_status(failed_stage=None, running_from="flpe")
    # nothing changed: nothing printed
    assert watch_changes(running, running, NOW) == []
    # the counts changed: one line with the time, the state and the counts
    done = shipped_status(failed_stage="flpe")
    [line, *failures] = watch_changes(running, done, NOW)
    assert line.plain.startswith("02:00:00 failed: ")
    assert line.plain.endswith(status_summary(done, NOW)[2].plain)
    # the new failures, once each, without commands
    assert [f.plain.split(":")[0] for f in failures] == ["failed", "blocked"]
    assert watch_changes(done, done, NOW) == []


def test_where_a_run_was_recorded_is_compared_with_where_it_is_asked() -> None:
    header = RunHeader(
        run_id="r1",
        plan_digest="d",
        config_path="c",
        config_sha256="0",
        prefix="p",
        region="us-west-2",
        started_at="2026-11-26T01:00:00+00:00",
        tool_version="0",
        account="123456789012",
        endpoint="http://127.0.0.1:5000",
    )
    assert where_differs(header, "us-west-2", "http://127.0.0.1:5000", "123456789012") == []
    assert where_differs(header, "us-west-2", "http://127.0.0.1:5000", None) == []  # account unknown: not compared
    assert where_differs(header, "eu-west-1", None, "999999999999") == [
        "endpoint AWS",
        "region eu-west-1",
        "account 999999999999",
    ]


def test_what_does_not_fit_is_named_with_a_command_that_pastes() -> None:
    lines = render(shipped_status(), 80, 16)
    assert len(lines) <= 15
    said = next(i for i, line in enumerate(lines) if line.startswith("... "))
    assert lines[said] == "... 2 more failures, all of them:"
    assert lines[said + 1].strip() == "confluence-submit status --endpoint-url http://127.0.0.1:45875 --format json"
