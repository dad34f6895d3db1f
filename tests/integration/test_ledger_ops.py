"""The run ledger through the real console script against the Batch emulator: a kill at any instant loses no job,
status never calls unknown jobs a success, forgotten jobs are answered from the ledger, and runs/report/logs."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from holds import wait_held
from workflow import JOBS, csv_rows, server_jobs, write_config

from confluence_runtime.planning.plan import build_plan

HERE = Path(__file__).resolve().parent


def server_names(batch_client: Any, config: Any, run_id: str) -> Counter[str]:
    """How many times each job name of the run exists on the server (found by name, as an operator would)."""
    return Counter(job["jobName"] for job in server_jobs(batch_client, config.job_queues, run_id))


def killed_run(cli: Any, config_path: Path, run_id: str, point: str, n: int) -> subprocess.CompletedProcess[str]:
    """``run`` SIGKILLed at an instant (see crash.py): right after the header, the N-th SubmitJob or N-th row."""
    command = [
        sys.executable,
        str(HERE / "crash.py"),
        point,
        str(n),
        "--",
        "run",
        "-c",
        str(config_path),
        "--run-id",
        run_id,
        "--workers",
        "1",
        "--endpoint-url",
        cli.endpoint_url,
    ]
    return subprocess.run(command, cwd=cli.cwd, env=cli.env(), capture_output=True, text=True, timeout=120, check=False)


def wait_done(cli: Any, config_path: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    return cli("status", "-c", str(config_path), "--run-id", run_id, "--watch", "--interval", "0.1")


# --------------------------------------------------------------------------------------------------------------
# A kill at any instant, then `resume -c confluence.yaml` with no other argument


@pytest.mark.parametrize(
    ("point", "n"),
    [
        ("begin", 1),  # the header is written, nothing submitted yet
        ("submitted", 1),  # AWS accepted the first job; no row names it yet
        ("recorded", 1),
        ("submitted", 3),
        ("recorded", 4),
        ("submitted", JOBS),  # the last job exists, its row does not
    ],
)
@pytest.mark.slow
def test_a_kill_at_any_instant_is_completed_exactly_once_by_resume_with_the_config_alone(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path, point: str, n: int
) -> None:
    # GIVEN a run SIGKILLed at one instant of its submission
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30)  # nothing finishes during the test: only submission matters
    killed = killed_run(cli, config_path, "kill", point, n)
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "submission.ledger" / "kill" / "run.json").exists()  # recorded before the first SubmitJob
    before = sum(server_names(batch_client, config, "kill").values())
    assert before == (0 if point == "begin" else n if point == "submitted" else before)

    # WHEN the operator resumes with nothing but the config (the ledger names the run)
    result = cli("resume", "-c", str(config_path))

    # THEN every plan job exists exactly once on the server and once in the submission file
    assert result.returncode == 0, result.stderr
    plan = build_plan(config, "kill")
    assert server_names(batch_client, config, "kill") == Counter(s.name for s in plan.submissions)
    assert Counter(r["job_name"] for r in csv_rows(tmp_path / "submission.csv")) == Counter(
        s.name for s in plan.submissions
    )
    assert batch_control.counters()["calls"]["SubmitJob"] == JOBS
    assert f"run kill now has all {JOBS} jobs" in result.stdout or "nothing to resume" in result.stdout
    # AND a second resume has nothing to do
    again = cli("resume", "-c", str(config_path))
    assert again.returncode == 0
    assert f"nothing to resume: all {JOBS} jobs of run kill are submitted" in again.stdout


# --------------------------------------------------------------------------------------------------------------
# Status never calls jobs nobody knows a success


# A run asked for in another region than it was recorded in: test_honest_views.py (refused before AWS is asked).


# --------------------------------------------------------------------------------------------------------------
# AWS forgets finished jobs; the ledger does not


def failing_run(cli: Any, batch_control: Any, config_path: Path, run_id: str) -> None:
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail(f"{run_id}_first_gen_0", indices=[1, 4], exit_code=3)
    assert cli("run", "-c", str(config_path), "--run-id", run_id).returncode == 0
    watched = wait_done(cli, config_path, run_id)  # observes (and records) every outcome
    assert watched.returncode == 1


@pytest.mark.slow
def test_status_report_and_retry_failed_answer_from_the_ledger_once_aws_forgot_the_jobs(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    if not hasattr(batch_control, "retention"):
        pytest.skip("this emulator cannot forget finished jobs (retention arrives with issue 11)")
    # GIVEN a finished run with failures, observed once by status
    config_path, _ = write_config(tmp_path, provisioned)
    failing_run(cli, batch_control, config_path, "old")
    before = json.loads(cli("status", "-c", str(config_path), "--run-id", "old", "--format", "json").stdout)

    # WHEN AWS forgets finished jobs (AWS: "persisted in AWS Batch for at least 7 days")
    batch_control.retention(0)
    assert batch_client.describe_jobs(jobs=[r["job_id"] for r in csv_rows(tmp_path / "submission.csv")])["jobs"] == []

    # THEN status answers from the ledger, says so, and reads the same
    status = cli("status", "-c", str(config_path), "--run-id", "old", "--format", "json")
    assert status.returncode == 0, status.stderr
    after = json.loads(status.stdout)
    assert after["source"] == "csv+ledger"
    assert len(after["from_ledger"]) == JOBS
    # (a failure's last log lines are read from CloudWatch while AWS still describes the job: not compared)
    for f in before["failures"]:
        f.pop("log_tail", None)
    for key in ("totals", "stages", "failures", "state", "outstanding_failures"):
        assert after[key] == before[key], key
    text = cli("status", "-c", str(config_path), "--run-id", "old")
    assert f"from the ledger: {JOBS} jobs AWS no longer describes (as last observed)" in text.stdout
    # AND report writes the same figures
    report = cli("report", "-c", str(config_path), "--run-id", "old", "--output-dir", "rep")
    assert report.returncode == 0, report.stderr
    assert f"AWS no longer describes {JOBS} jobs of run old; they are reported from the ledger" in report.stderr
    failures = json.loads((tmp_path / "rep" / "module_data_failures.json").read_text())
    assert failures["Gen"] == [{"Index": 1, "Value": 1}, {"Index": 4, "Value": 4}]
    # AND retry-failed plans from the ledger (and says so)
    batch_control.retention(None)
    retry = cli("retry-failed", "-c", str(config_path), "--run-id", "old", "--dry-run")
    assert retry.returncode == 0, retry.stderr
    assert f"from the ledger: {JOBS} jobs of run old are no longer described by AWS" in retry.stdout
    assert "retry first.gen[0]: 2 failed indices: 1, 4" in retry.stdout


# --------------------------------------------------------------------------------------------------------------
# runs, report, logs


@pytest.mark.slow
def test_runs_lists_every_run_of_the_ledger(cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    failing_run(cli, batch_control, config_path, "one")
    batch_control.set_durations(default=30)
    assert cli("run", "-c", str(config_path), "--run-id", "two").returncode == 0

    listed = cli("runs", "-c", str(config_path), "--output", "json")

    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["run_id"] for r in runs] == ["one", "two"]
    one, two = runs
    # 2 children failed, the 12 that waited for them never ran (blocked)
    summary = (one["state"], one["jobs"], one["children"], one["succeeded"], one["failed"], one["blocked"])
    assert summary == ("failed", 5, 18, 4, 2, 12)
    assert (two["state"], two["children"], two["unfinished"]) == ("not observed", 18, 18)
    assert (one["account"], one["region"], one["endpoint"]) == ("123456789012", "us-west-2", cli.endpoint_url)
    table = cli("runs", "-c", str(config_path))
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "run",
        "venue",
        "started",
        "UTC",
        "took",
        "state",
        "jobs",
        "children",
        "ok",
        "failed",
        "blocked",
        "cancelled",
        "left",
    ]
    assert lines[2].split()[0] == "one"
    assert lines[2].split()[-4:] == ["2", "12", "0", "0"]  # failed, blocked, cancelled, left
    assert "failed" in lines[2].split()


@pytest.mark.slow
def test_report_writes_confluences_json_exactly(cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    failing_run(cli, batch_control, config_path, "rep")

    result = cli("report", "-c", str(config_path), "--run-id", "rep", "--temporal-range", "2024-01-01,2024-03-31")

    assert result.returncode == 0, result.stderr
    folder = tmp_path / "submission.ledger" / "rep"
    assert f"wrote {folder / 'module_data_report.json'}" in result.stdout
    document = json.loads((folder / "module_data_report.json").read_text())
    assert list(document) == ["name", "temporal_range", "modules", "total_time"]
    assert document["name"] == "rep"
    assert document["temporal_range"] == "2024-01-01,2024-03-31"
    modules = [{k: v for k, v in m.items() if k != "Execution Time"} for m in document["modules"]]
    # gen: 2 of 6 children failed; algo and single never ran (their dependency failed); out: 2 jobs x 3 children
    assert modules == [
        {"Module": "Gen", "Total Jobs": 6, "Succeeded": 4, "Failed": 2, "Percentage Failed": (2 / 6) * 100},
        {"Module": "Algo", "Total Jobs": 5, "Succeeded": 0, "Failed": 5, "Percentage Failed": 100.0},
        {"Module": "Single", "Total Jobs": 1, "Succeeded": 0, "Failed": 1, "Percentage Failed": 100.0},
        {"Module": "Out", "Total Jobs": 6, "Succeeded": 0, "Failed": 6, "Percentage Failed": 100.0},
    ]
    for module in document["modules"]:
        assert list(module) == ["Module", "Total Jobs", "Succeeded", "Failed", "Percentage Failed", "Execution Time"]
        assert isinstance(module["Percentage Failed"], float)
        hours, minutes, seconds = module["Execution Time"].split(":")  # str(timedelta)
        assert int(hours) == 0 and int(minutes) < 60 and float(seconds) < 60
    assert isinstance(document["total_time"], str)
    assert json.loads((folder / "module_data_failures.json").read_text()) == {
        "Gen": [{"Index": 1, "Value": 1}, {"Index": 4, "Value": 4}],
        "Algo": [{"Index": i, "Value": i} for i in range(5)],
        "Single": [{"Index": 0, "Value": 0}],
        "Out": [{"Index": i, "Value": i} for i in range(3)] * 2,
    }
    page = (folder / "report.html").read_text()
    assert "Essential container in task exited (exit code 3)" in page
    assert f"confluence-submit logs -s {tmp_path / 'submission.csv'} --run-id rep --endpoint-url" in page


def test_logs_says_plainly_when_the_stream_does_not_exist(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=30, queue=30)  # nothing reaches RUNNING
    assert cli("run", "-c", str(config_path), "--run-id", "quiet").returncode == 0

    result = cli(
        "logs", "-c", str(config_path), "--run-id", "quiet", "--stage", "first", "--module", "gen", "--index", "2"
    )

    assert result.returncode == 1
    assert "quiet_first_gen_0 child 2 (index 2) attempt 1 of 1: SUBMITTED" in result.stderr
    # AWS names a stream only once an attempt reached RUNNING; an emulator that names it early has no such stream
    # in CloudWatch. Either way the answer is one plain sentence that the stream does not exist.
    assert ("has no log stream: it never reached RUNNING" in result.stderr) or (
        "does not exist in group /aws/batch/job" in result.stderr
    )
    unknown = cli("logs", "-c", str(config_path), "--run-id", "quiet", "--stage", "first", "--module", "nope")
    assert unknown.returncode == 2
    assert "no job of stage 'first', module 'nope' in this run; it has first/gen" in unknown.stderr


# --------------------------------------------------------------------------------------------------------------
# report.html in a real browser: Debian's headless chromium renders the page of a run with injected failures, and
# the screenshot shows what a person must see first (a red "failed" badge, the timeline's bars, the failures).

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RED, BLUE, GREY = (0xCF, 0x22, 0x2E), (0x2F, 0x81, 0xF7), (0xD0, 0xD7, 0xDE)  # report.py's failed, running, queued


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit non-interlaced PNG (what chromium writes), with no imaging library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = {}, 8
    idat = b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            idat += body
        else:
            chunks[kind] = body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and interlace == 0 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = previous[x]
            c = previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + predictor) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        previous = line
    return width, height, rows


def count(rows: list[bytes], colour: tuple[int, int, int], top: int, bottom: int) -> int:
    """Pixels of ``colour`` (within a small tolerance: anti-aliasing) between rows ``top`` and ``bottom``."""
    found = 0
    for line in rows[top:bottom]:
        for x in range(0, len(line), 3):
            if all(abs(line[x + i] - colour[i]) <= 6 for i in range(3)):
                found += 1
    return found


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs Debian's chromium)")
def test_the_report_page_renders_in_chromium_with_its_failures_visible(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run whose middle array failed on two children: gen and single ran, out never did
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.3, queue=0.05)
    batch_control.fail("web_middle_algo_0", indices=[1, 3], exit_code=3)
    assert cli("run", "-c", str(config_path), "--run-id", "web").returncode == 0
    assert wait_done(cli, config_path, "web").returncode == 1
    assert cli("report", "-c", str(config_path), "--run-id", "web", "--output-dir", "out").returncode == 0
    page = tmp_path / "out" / "report.html"
    shot = tmp_path / "report.png"
    assert CHROMIUM is not None
    browser = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]

    rendered = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False
    )
    shot_run = subprocess.run(
        [*browser, "--window-size=1280,1000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # THEN the browser parsed the page we wrote (the DOM holds the state badge, the failure rows, their logs commands)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert '<span class="state failed" id="state">failed</span>' in rendered.stdout
    assert rendered.stdout.count("Essential container in task exited (exit code 3)") == 2  # indices 1 and 4
    assert "--stage middle --module algo --index 3" in rendered.stdout
    # AND the screenshot shows it: a red badge in the heading, the timeline's running (blue) and queued (grey) bars
    # and the red bar of the module with failures, drawn by the SVG without any external resource
    assert shot_run.returncode == 0 and shot.exists(), shot_run.stderr[-2000:]
    width, height, rows = read_png(shot)
    assert (width, height) == (1280, 1000)
    assert count(rows, RED, 0, 80) > 500  # the "failed" badge
    assert count(rows, BLUE, 180, 400) > 1000  # gen and single ran (below the legend)
    assert count(rows, RED, 180, 400) > 1000  # algo failed
    assert count(rows, GREY, 180, 400) > 300  # queued before starting; out never started
    blank = sum(1 for line in rows for x in range(0, len(line), 3) if line[x : x + 3] == b"\xff\xff\xff")
    assert blank < width * height * 0.95  # something was drawn


@pytest.mark.slow
def test_logs_prints_a_failed_childs_stream_with_its_reason_and_still_does_once_aws_forgot_it(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN child 2 of gen failed, its container's last words in its CloudWatch stream
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail("lg_first_gen_0", indices=[2], exit_code=3, log=["reading reach 2", "ValueError: no SWOT data"])
    assert cli("run", "-c", str(config_path), "--run-id", "lg").returncode == 0
    assert wait_done(cli, config_path, "lg").returncode == 1

    # WHEN the operator runs the command status printed for it
    shown = cli("status", "-c", str(config_path), "--run-id", "lg").stdout
    command = next(line.strip() for line in shown.splitlines() if line.strip().startswith("confluence-submit logs"))
    assert command.endswith("--stage first --module gen --index 2")
    result = cli(*command.split()[1:], endpoint=False)

    # THEN the stream is printed, under the job's state, reason and exit code
    assert result.returncode == 0, result.stderr
    assert (
        "lg_first_gen_0 child 2 (index 2) attempt 1 of 1: FAILED: Essential container in task exited (exit code 3)"
        in (result.stderr)
    )
    assert [line.split("  ", 1)[1] for line in result.stdout.splitlines()][-2:] == [
        "reading reach 2",
        "ValueError: no SWOT data",
    ]
    # AND once AWS forgot the job, the stream recorded by report is still read (the ledger says where)
    assert cli("report", "-c", str(config_path), "--run-id", "lg").returncode == 0
    batch_control.retention(0)
    later = cli(*command.split()[1:], endpoint=False)
    assert later.returncode == 0, later.stderr
    assert "(AWS no longer describes this job; from the ledger)" in later.stderr
    assert later.stdout.splitlines()[-1].endswith("ValueError: no SWOT data")


def test_logs_follow_prints_lines_as_the_job_writes_them_and_returns_when_it_ends(
    cli: Any, batch_control: Any, batch_client: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a plain job held RUNNING (the emulator's hold: it stays there until released, whatever the clock says),
    # so its stream holds only its first lines so far
    config_path, config = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    hold = batch_control.hold("RUNNING", name_glob="fl_middle_single_0")
    assert cli("run", "-c", str(config_path), "--run-id", "fl").returncode == 0
    (job,) = [j for j in server_jobs(batch_client, config.job_queues, "fl") if j["jobName"] == "fl_middle_single_0"]
    assert wait_held(batch_control, hold) == [job["jobId"]]

    # WHEN the operator follows its log while it runs, and the job then goes on to its end
    process = cli.popen(
        "logs",
        "-c",
        str(config_path),
        "--run-id",
        "fl",
        "--stage",
        "middle",
        "--module",
        "single",
        "--follow",
        "--interval",
        "0.1",
    )
    assert process.stderr is not None
    header = process.stderr.readline()  # the command follows the job now
    batch_control.release(hold)
    out, rest = process.communicate(timeout=60)
    followed = subprocess.CompletedProcess(process.args, process.returncode, out, header + rest)

    # THEN the command printed the lines written before and after it started, and returned once the job ended
    assert followed.returncode == 0, followed.stderr
    assert "fl_middle_single_0 attempt 1 of 1: RUNNING" in followed.stderr
    lines = [line.split("  ", 1)[1] for line in followed.stdout.splitlines()]
    assert lines[0].startswith(f"batch emulator: job fl_middle_single_0 ({job['jobId']}) attempt 1 started")
    assert lines[-1] == "batch emulator: exit code 0"
    assert batch_client.describe_jobs(jobs=[job["jobId"]])["jobs"][0]["status"] == "SUCCEEDED"


@pytest.mark.slow
def test_after_retry_failed_superseded_failures_no_longer_count(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a run whose middle array failed on children 0 and 3, then retry-failed, and the retries succeeded
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail("sup_middle_algo_0", indices=[0, 3], exit_code=2)
    assert cli("run", "-c", str(config_path), "--run-id", "sup").returncode == 0
    assert wait_done(cli, config_path, "sup").returncode == 1
    assert cli("retry-failed", "-c", str(config_path), "--run-id", "sup").returncode == 0
    watched = wait_done(cli, config_path, "sup")

    # THEN the run reads succeeded, with no FAIL left and no failed: line
    assert watched.returncode == 0, watched.stdout
    final = json.loads(cli("status", "-c", str(config_path), "--run-id", "sup", "--format", "json").stdout)
    assert final["state"] == "succeeded"
    assert final["totals"]["FAILED"] == 0
    algo = next(m for s in final["stages"] for m in s["modules"] if m["module"] == "algo")
    assert (algo["counts"]["FAILED"], algo["superseded_failures"]) == (0, 2)
    assert final["failures"] == []
    text = cli("status", "-c", str(config_path), "--run-id", "sup").stdout
    assert "failed:" not in text
    assert "run sup: succeeded" in text


def test_a_run_mirrored_to_s3_is_listed_by_a_teammate_without_the_local_files(
    cli: Any, batch_control: Any, provisioned: Any, tmp_path: Path
) -> None:
    # GIVEN a team ledger in S3 (the emulator's moto S3) and a run recorded there too
    s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=cli.endpoint_url)
    s3.create_bucket(Bucket="team", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    config_path, _ = write_config(tmp_path, provisioned)
    batch_control.set_durations(default=0.05, queue=0.01)
    batch_control.fail("mirror_first_gen_0", indices=[1], exit_code=3)
    assert cli("run", "-c", str(config_path), "--run-id", "local").returncode == 0  # not mirrored
    assert cli("run", "-c", str(config_path), "--run-id", "mirror", "--ledger", "s3://team/runs").returncode == 0
    assert wait_done(cli, config_path, "mirror").returncode == 1  # observed in the local ledger ...
    assert cli("status", "-c", str(config_path), "--run-id", "mirror", "--ledger", "s3://team/runs").returncode == 0

    # WHEN a teammate with no submission file and no config lists the team's runs
    elsewhere = tmp_path / "teammate"
    elsewhere.mkdir()
    teammate = type(cli)(endpoint_url=cli.endpoint_url, cwd=elsewhere)
    listed = teammate("runs", "--ledger", "s3://team/runs", "--output", "json")

    # THEN the mirrored run is there, as observed (and only it: the other run was not mirrored)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["run_id"] for r in runs] == ["mirror"]
    assert (runs[0]["state"], runs[0]["jobs"], runs[0]["children"]) == ("failed", 5, 18)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="team")["Contents"])
    assert keys == [
        "runs/mirror/events.json",
        "runs/mirror/jobs.csv",
        "runs/mirror/outcomes.json",
        "runs/mirror/provenance.json",  # the run record (images by digest): docs/provenance.md
        "runs/mirror/run.json",
    ]
