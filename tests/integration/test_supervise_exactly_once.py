"""A supervised run killed at any instant, or losing SubmitJob replies, ends with every job name exactly once.

AWS: SubmitJob has no idempotency token ("SubmitJob ... clientToken" does not exist for Batch), so a job whose reply
was lost, or whose supervisor died between SubmitJob's answer and the ledger write, exists without a record. The
supervisor claims a stage (its pieces fixed in the document) before any SubmitJob: that claim is the write-ahead
record, and whoever continues the stage looks its names up (ListJobs with a JOB_NAME filter, every status) before it
submits anything. These tests kill ``run --supervise local`` with SIGKILL at chosen instants (tests/integration/
crash.py), then run the ``supervise`` command the tool prints, and count the run's jobs on the emulator by name.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lossy_proxy import lossy_proxy
from supervised_workflow import QUEUES, set_up

from confluence_runtime.records.document import SupervisorState, read_state
from confluence_runtime.records.ledger import Ledger, LocalStore, local_root

HERE = Path(__file__).resolve().parent
EXPECTED = ("input_input_0", "flpe_neobam_0", "flpe_sad_0", "output_output_0")


@pytest.fixture
def workflow(provisioned: Any, batch_control: Any, batch_server: Any, tmp_path: Path) -> Path:
    path = set_up(tmp_path, provisioned, batch_server.url)
    batch_control.set_durations(default=0.2, queue=0.05)
    return path


def held(batch_client: Any, run_id: str, queues: tuple[str, ...] = QUEUES) -> Counter[str]:
    """How many jobs the emulator holds under each of the run's names (any status), found by name."""
    found: Counter[str] = Counter()
    for queue in queues:
        pages = batch_client.get_paginator("list_jobs").paginate(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{run_id}_*"]}]
        )
        for page in pages:
            found.update(job["jobName"] for job in page["jobSummaryList"])
    return found


def killed(cli: Any, workflow: Path, run_id: str, point: str, n: int) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(HERE / "crash.py"),
        point,
        str(n),
        "--",
        "run",
        "-c",
        str(workflow),
        "--run-id",
        run_id,
        "--supervise",
        "local",
        "--poll",
        "0.2",
        "--endpoint-url",
        cli.endpoint_url,
    ]
    return subprocess.run(command, cwd=cli.cwd, env=cli.env(), capture_output=True, text=True, timeout=120, check=False)


def document(tmp_path: Path, run_id: str) -> SupervisorState:
    ledger = Ledger(LocalStore(local_root(tmp_path / "out/submission.csv")))
    state = read_state(lambda name: ledger.read(run_id, name))
    assert state is not None
    return state


def continue_and_check(cli: Any, batch_client: Any, tmp_path: Path, run_id: str) -> None:
    result = cli("supervise", "--run-id", run_id, "-s", str(tmp_path / "out/submission.csv"), "--poll", "0.2")
    assert result.returncode == 0, result.stderr + result.stdout
    assert document(tmp_path, run_id).state == "succeeded"
    assert held(batch_client, run_id) == Counter(f"{run_id}_{n}" for n in EXPECTED)


@pytest.mark.parametrize(
    ("point", "n"),
    [
        ("begin", 1),  # the header is written, the supervisor's document is not
        ("submitted", 1),  # AWS accepted input; no row or document names it
        ("submitted", 2),  # the first of flpe's two jobs
        ("submitted", 3),  # the second of flpe's two jobs (the first is recorded)
        ("submitted", 4),  # output
        ("recorded", 2),  # a row written, the document not yet
        ("written", 1),
        ("written", 2),
        ("written", 3),
        ("written", 5),
        ("written", 8),
        ("written", 13),
        ("written", 21),
    ],
)
def test_a_supervised_run_killed_at_an_instant_is_continued_by_supervise_with_every_job_once(
    cli: Any, workflow: Path, batch_client: Any, tmp_path: Path, point: str, n: int
) -> None:
    run_id = f"kill-{point}-{n}"
    result = killed(cli, workflow, run_id, point, n)
    assert result.returncode in (-9, 0), result.stderr
    continue_and_check(cli, batch_client, tmp_path, run_id)


@pytest.mark.parametrize("seed", range(4))
def test_a_supervised_run_killed_at_a_random_instant_is_continued_by_supervise_with_every_job_once(
    cli: Any, workflow: Path, batch_client: Any, tmp_path: Path, seed: int
) -> None:
    at = random.Random(seed).randrange(800, 5_000)  # ms after start: the CLI takes about 0.6 s to import
    run_id = f"kill-random-{seed}"
    result = killed(cli, workflow, run_id, "after-ms", at)
    assert result.returncode in (-9, 0), result.stderr
    if not (local_root(tmp_path / "out/submission.csv") / run_id / "run.json").exists():
        # Killed before the run was recorded: nothing of it exists, and the same command starts it cleanly.
        assert held(batch_client, run_id) == Counter()
        again = cli("run", "-c", str(workflow), "--run-id", run_id, "--supervise", "local", "--poll", "0.2")
        assert again.returncode == 0, again.stderr
    continue_and_check(cli, batch_client, tmp_path, run_id)


def test_a_supervised_run_killed_twice_in_a_row_is_still_completed_once(
    cli: Any, workflow: Path, batch_client: Any, tmp_path: Path
) -> None:
    run_id = "kill-twice"
    assert killed(cli, workflow, run_id, "submitted", 2).returncode == -9
    # the continuation is killed too, right after its first SubmitJob (flpe's second job)
    command = [
        sys.executable,
        str(HERE / "crash.py"),
        "submitted",
        "1",
        "--",
        "supervise",
        "--run-id",
        run_id,
        "-s",
        str(tmp_path / "out/submission.csv"),
        "--poll",
        "0.2",
        "--endpoint-url",
        cli.endpoint_url,
    ]
    again = subprocess.run(command, cwd=cli.cwd, env=cli.env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == -9, again.stderr
    continue_and_check(cli, batch_client, tmp_path, run_id)


# --------------------------------------------------------------------------------------------------------------
# Lost SubmitJob replies

MANY = """
prefix: confluence-dev
log_file: out/confluence.log
submission_file: out/submission.csv
stages:
  input:
    input: {num_jobs: 40, array_size: 2}
  flpe:
    neobam: {num_jobs: 40}
  output:
    output: {num_jobs: 40}
"""


def lossy(share: float, seed: int) -> Any:
    """Lose a reproducible ``share`` of SubmitJob replies, chosen by job name and attempt."""

    def lose(name: str, attempt: int) -> bool:
        digest = hashlib.sha256(f"{seed}:{name}:{attempt}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < share

    return lose


@pytest.mark.parametrize("share", [0.02, 0.05])
def test_lost_submit_replies_never_duplicate_a_supervised_job(
    cli: Any, provisioned: Any, batch_control: Any, batch_server: Any, batch_client: Any, tmp_path: Path, share: float
) -> None:
    # GIVEN 120 jobs in three stages, and a network that loses a share of SubmitJob replies after AWS took them
    (tmp_path / "confluence.yaml").write_text(MANY)
    provisioned(tmp_path / "confluence.yaml")
    batch_control.set_durations(default=0.05, queue=0.01)
    run_id = f"lossy-{int(share * 100)}"
    with lossy_proxy(batch_server.url, lossy(share, seed=7)) as proxy:
        # WHEN the run is supervised locally through it
        result = replace(cli, endpoint_url=proxy.url)(
            "run", "-c", str(tmp_path / "confluence.yaml"), "--run-id", run_id, "--supervise", "local", "--poll", "0.2"
        )
    # THEN replies were lost, each lost one was found by name, and every job exists exactly once
    assert result.returncode == 0, result.stderr + result.stdout
    assert proxy.lost, "the proxy lost no reply: the test proves nothing"
    queues = ("confluence-dev-input", "confluence-dev-flpe", "confluence-dev-output")
    counts = held(batch_client, run_id, queues)
    assert len(counts) == 120
    assert set(counts.values()) == {1}
    assert all(proxy.attempts[name] == 1 for name in proxy.lost)
    assert document(tmp_path, run_id).state == "succeeded"
