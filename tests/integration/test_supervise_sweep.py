"""The cloud supervisor never stalls and never duplicates: events dropped, events without the job's tags, an
invocation killed in the middle of a stage, SubmitJob replies lost; the sweep (a scheduled event every few
minutes, stacks/supervisor.py) picks up whatever no event delivered.

AWS: "EventBridge ... delivers events at least once" and an event whose delivery keeps failing ends in the
dead-letter queue; the documented "Batch Job State Change" example carries ``"tags": {"resourceArn": ...}``, not
the job's own tags. So here events are dropped on the way to the function, and published with or without the
job's tags (the emulator's own option, ``EmulatorControl.events(tags=False)``); the function must decide from the
job name and the ledger alone. The drops stay here, at delivery: "stalled" below needs to know which job's last
event was lost, and the emulator's drop share only counts them. "Stalled" is decided from AWS and the
ledger (every job of the current stage final, or the stage's claim run out), never from a clock, and then exactly
one scheduled event is delivered.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lossy_proxy import lossy_proxy
from supervised_workflow import BUCKET, QUEUES, REGION, set_up
from test_supervise_cloud import LEDGER, Cloud, held_jobs

from confluence_runtime.aws.api import AwsOptions, Batch
from confluence_runtime.records.document import CLAIMED, SUBMITTED, SupervisorState, read_state
from confluence_runtime.records.ledger import Ledger, S3Store
from confluence_runtime.states import FINAL
from lambdas.supervisor import handler

SWEEP = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
EXPECTED = ("flpe_neobam_0", "flpe_sad_0", "input_input_0", "output_output_0")


@pytest.fixture
def cloud(provisioned: Any, batch_control: Any, batch_server: Any, batch_client: Any, tmp_path: Path) -> Cloud:
    """The emulator with the supervised workflow's queues and items, and what the CDK app deploys around the
    function (tests/integration/test_supervise_cloud.py); events duplicated and reordered as AWS may."""
    set_up(tmp_path, provisioned, batch_server.url)
    batch_control.set_durations(default=0.2, queue=0.05)
    batch_control.events(duplicates=0.5, reorder_window=4, seed=15)
    return Cloud(batch_server.url, batch_client)


class Killed(BaseException):
    """The invocation dies here (a timeout, an out-of-memory kill): nothing after this point runs."""


class Function:
    """The supervisor function as EventBridge drives it: each invocation a new claimant, events dropped on the
    way, the sweep delivered when (and only when) the run is stalled."""

    def __init__(self, cloud: Cloud, batch: Batch, *, drop: float = 0.0, seed: int = 3) -> None:
        self.cloud, self.batch = cloud, batch
        self.ledger = Ledger(S3Store(BUCKET, "runs", cloud.function_s3))
        self.rng = random.Random(seed)
        self.drop = drop
        self.invocations = self.dropped = self.sweeps = 0
        self.tagged = self.untagged = 0  # Batch events that came with the job's tags, and without
        self.lease = 900.0
        self.seen: set[str] = set()  # jobs whose terminal event came out of EventBridge (delivered or dropped)

    def invoke(self, event: dict[str, Any], *, batch: Batch | None = None, lease: float | None = None) -> Any:
        self.invocations += 1
        return handler.handle(
            event,
            ledger=self.ledger,
            batch=batch or self.batch,
            s3=self.cloud.function_s3,
            sns=self.cloud.function_sns,
            topic=self.cloud.topic,
            token=f"invocation-{self.invocations}",
            lease=lease or self.lease,
        )

    def deliver(self, event: dict[str, Any]) -> None:
        if event["source"] == "aws.batch":
            self.seen.add(event["detail"]["jobId"])
            if event["detail"].get("tags"):
                self.tagged += 1
            else:
                self.untagged += 1
            if self.rng.random() < self.drop:
                self.dropped += 1
                return
        self.invoke(event)

    def state(self, run_id: str) -> SupervisorState:
        state = read_state(lambda n: self.ledger.read(run_id, n))
        assert state is not None
        return state

    def stalled(self, run_id: str) -> bool:
        """Nothing more will come for the run unless someone looks: its stage's claim ran out, or every job of its
        stage is final in AWS (and every event the emulator sent for them has been delivered or dropped)."""
        state = self.state(run_id)
        current = state.current()
        if state.over:
            return not state.notified
        if current is None:
            return True
        if current.status == CLAIMED:
            return current.claim_until <= datetime.now(UTC).isoformat(timespec="milliseconds")
        if current.status != SUBMITTED:
            return False
        # Every job final, and its event out of EventBridge already: nothing is still on its way.
        jobs = self.batch.describe_jobs([job_id for _, job_id in current.jobs])
        return all(j["status"] in FINAL and j["jobId"] in self.seen for j in jobs)

    def until_over(self, run_id: str, max_sweeps: int = 20) -> SupervisorState:
        for _ in range(2_000):
            state = self.state(run_id)
            if state.over and state.notified:
                return state
            events = self.cloud.receive()
            for event in events:
                self.deliver(event)
            if not events and self.stalled(run_id):
                assert self.sweeps < max_sweeps, f"still not over after {self.sweeps} sweeps: {state.stages}"
                self.sweeps += 1
                self.invoke(dict(SWEEP))
        raise AssertionError(f"the run did not end: {self.state(run_id).stages}")


MANY = """
prefix: confluence-dev
log_file: out/confluence.log
submission_file: out/submission.csv
stages:
  input:
    input: {num_jobs: 30, array_size: 2}
  flpe:
    neobam: {num_jobs: 30}
  output:
    output: {num_jobs: 30}
"""


def started(cli: Any, run_id: str) -> None:
    result = cli("run", "-c", "confluence.yaml", "--run-id", run_id, "--supervise", "cloud", "--ledger", LEDGER)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize("tags", [True, False], ids=["with-tags", "without-tags"])
def test_a_tenth_of_events_dropped_delays_the_run_by_a_sweep_each_and_it_ends_as_without_loss(
    cli: Any, cloud: Cloud, batch_control: Any, tmp_path: Path, tags: bool
) -> None:
    # GIVEN 90 jobs in three stages, and a tenth of the events on their way to the function dropped
    (tmp_path / "confluence.yaml").write_text(MANY)
    # jobs that outlast their stage's submission, so the run moves on events, not inside one invocation
    batch_control.set_durations(default=2.0, queue=0.01)
    # AND the events published with the job's tags, or without them (the emulator's option; AWS documents none)
    batch_control.events(duplicates=0.5, reorder_window=4, seed=15, tags=tags)
    run_id = f"20261126T020000-drop{'t' if tags else 'n'}"
    function = Function(cloud, Batch(AwsOptions(endpoint_url=cloud.url, region=REGION)), drop=0.1)
    started(cli, run_id)

    state = function.until_over(run_id)

    # THEN the run ends as it would have without loss, each job once
    assert state.state == "succeeded"
    counts = Counter(held_jobs(cloud, run_id))
    assert (len(counts), set(counts.values())) == (90, {1})
    # AND a sweep was delivered only when the run could not move without one (a stage's last event dropped): at
    # most one per dropped event
    assert function.dropped >= 1, "no event was dropped: the test proves nothing"
    assert function.sweeps <= function.dropped
    # AND the events came as the emulator was told: all with the job's tags, or all without
    assert (function.tagged > 0, function.untagged > 0) == (tags, not tags)


@pytest.mark.parametrize("tags", [True, False], ids=["with-tags", "without-tags"])
def test_every_event_of_a_stage_lost_is_made_up_for_by_one_sweep(
    cli: Any, cloud: Cloud, batch_control: Any, tags: bool
) -> None:
    run_id = f"20261126T020000-lost{'t' if tags else 'n'}"
    # Each event once and in order here: a late duplicate of an earlier event would also move the run on; and
    # jobs that outlast an invocation, so no invocation finds its stage over before that stage's events come.
    batch_control.events(duplicates=0.0, reorder_window=1, seed=15, tags=tags)
    batch_control.set_durations(default=2.0, queue=0.05)
    function = Function(cloud, Batch(AwsOptions(endpoint_url=cloud.url, region=REGION)))
    function.drop = 0.0
    started(cli, run_id)
    # GIVEN every terminal event of flpe's jobs lost (dead-lettered, or answered "wait")
    original = function.deliver

    def losing(event: dict[str, Any]) -> None:
        if event["source"] == "aws.batch" and "_flpe_" in event["detail"]["jobName"]:
            function.seen.add(event["detail"]["jobId"])
            function.dropped += 1
            return
        original(event)

    function.deliver = losing  # type: ignore[method-assign]
    state = function.until_over(run_id)
    # THEN one sweep advanced the run past flpe (output submitted), and its own event ended it
    assert function.dropped >= 2
    assert function.sweeps == 1
    assert state.state == "succeeded"
    assert (function.tagged > 0, function.untagged > 0) == (tags, not tags)
    assert Counter(held_jobs(cloud, run_id)) == Counter(f"{run_id}_{n}" for n in EXPECTED)


class Dying(Batch):
    """AWS Batch as seen by an invocation that is killed right after the ``kill_at``-th SubmitJob answered (counted
    over every invocation), before it could record the job."""

    calls = 0
    kill_at = 0

    def submit_job(self, request: dict[str, Any]) -> str:
        job_id = super().submit_job(request)
        Dying.calls += 1
        if Dying.calls == Dying.kill_at:
            raise Killed(request["jobName"])
        return job_id


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_an_invocation_killed_mid_stage_is_taken_over_once_its_claim_ends_and_nothing_is_submitted_twice(
    cli: Any, cloud: Cloud, batch_control: Any, kill_at: int
) -> None:
    run_id = f"20261126T020000-kill{kill_at}"
    options = AwsOptions(endpoint_url=cloud.url, region=REGION)
    Dying.calls, Dying.kill_at = 0, kill_at
    dying = Dying(options)
    function = Function(cloud, Batch(options))
    started(cli, run_id)
    original = function.invoke

    def invoke(event: dict[str, Any], **kwargs: Any) -> Any:
        if Dying.calls >= kill_at:
            return original(event, **kwargs)
        # Until the kill, invocations run with a short claim: the Lambda's remaining time, here 1 s.
        try:
            return original(event, batch=dying, lease=1.0)
        except Killed:
            return None

    function.invoke = invoke  # type: ignore[method-assign]
    state = function.until_over(run_id)

    assert Dying.calls >= kill_at
    assert state.state == "succeeded"
    # The job the killed invocation submitted was adopted by name, not submitted again.
    assert Counter(held_jobs(cloud, run_id)) == Counter(f"{run_id}_{n}" for n in EXPECTED)


def test_lost_submit_replies_never_duplicate_a_job_of_the_cloud_supervisor(
    cli: Any, cloud: Cloud, batch_control: Any, batch_server: Any, tmp_path: Path
) -> None:
    (tmp_path / "confluence.yaml").write_text(MANY)
    batch_control.set_durations(default=0.05, queue=0.01)
    run_id = "20261126T020000-lossy"

    def lose(name: str, attempt: int) -> bool:
        digest = hashlib.sha256(f"5:{name}:{attempt}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < 0.05

    with lossy_proxy(batch_server.url, lose) as proxy:
        function = Function(cloud, Batch(AwsOptions(endpoint_url=proxy.url, region=REGION)))
        started(cli, run_id)
        state = function.until_over(run_id)

    assert proxy.lost, "no reply was lost: the test proves nothing"
    assert state.state == "succeeded"
    counts = Counter(held_jobs(cloud, run_id))
    assert len(counts) == 90
    assert set(counts.values()) == {1}
    assert all(proxy.attempts[name] == 1 for name in proxy.lost)
    assert sorted(QUEUES) == sorted({"confluence-dev-input", "confluence-dev-flpe", "confluence-dev-output"})
