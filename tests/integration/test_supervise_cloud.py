"""``run --supervise cloud`` and the supervisor function, driven by Batch Job State Change events through moto's
EventBridge to SQS (moto cannot invoke a Lambda target, so the test delivers each SQS message to the handler
in-process), with the ledger in the emulator's S3. The command itself submits nothing: it records the run and puts
one ``Confluence Supervised Run`` event on the bus, which the stack's second rule (the same pattern,
``names.supervisor_event_pattern``) routes to the function like the Batch events.

AWS: "EventBridge ... delivers events at least once" and promises no order, so every message here is delivered
twice, batches are shuffled, and old events are delivered again at random moments. The run must end exactly as the
same run supervised locally (tests/integration/test_supervise_local.py): the same jobs, each submitted once, and the
same Confluence report, written next to the ledger in S3, with the summary published to the alerts topic.

The emulator publishes the Batch Job State Change events (every job, array children included) to moto's default bus
whenever a rule exists, here with half of them duplicated and released four at a time in a random order.
"""

from __future__ import annotations

import io
import json
import random
import time
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from supervised_workflow import BUCKET, CONFIG, ITEMS, QUEUES, REGION, aws, set_up

from batch_emulator.proxy import FaultProxy, Reply, serving
from confluence_runtime import names
from confluence_runtime.aws.api import AwsOptions, Batch, client
from confluence_runtime.records.document import SupervisorState, read_state
from confluence_runtime.records.ledger import Ledger, S3Store
from lambdas.supervisor import handler

LEDGER = f"s3://{BUCKET}/runs"


class Cloud:
    """What the CDK app deploys around the function, in the emulator: the rule (to SQS instead of Lambda), the
    ledger bucket, the alerts topic (subscribed by a queue the test reads)."""

    def __init__(self, url: str, batch_client: Any) -> None:
        self.url = url
        self.batch = batch_client
        self.s3, self.sqs, self.sns, self.events = (aws(s, url) for s in ("s3", "sqs", "sns", "events"))
        # What the function is given: the runtime's paced clients of the same services.
        options = AwsOptions(endpoint_url=url, region=REGION)
        self.function_s3, self.function_sns = client("s3", options), client("sns", options)
        self.queue = self.sqs.create_queue(QueueName="supervisor-events")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        arns = [q["jobQueueArn"] for q in batch_client.describe_job_queues(jobQueues=list(QUEUES))["jobQueues"]]
        # The pattern of stacks/supervisor.py: terminal states of parent jobs in the venue's queues (every queue
        # whose ARN starts with ...:job-queue/confluence-dev-), with no condition on the job's tags.
        venue = arns[0].rsplit("job-queue/", 1)[0] + "job-queue/confluence-dev-"
        pattern = names.batch_event_pattern(queue_arn_prefixes=[venue])
        self.events.put_rule(Name="confluence-dev-supervisor", EventPattern=json.dumps(pattern))
        self.events.put_targets(Rule="confluence-dev-supervisor", Targets=[{"Id": "sqs", "Arn": queue_arn}])
        # The rule of runs handed over or cancelled (stacks/supervisor.py builds its pattern from the same function).
        runs = json.dumps(names.supervisor_event_pattern("confluence-dev"))
        self.events.put_rule(Name="confluence-dev-supervisor-runs", EventPattern=runs)
        self.events.put_targets(Rule="confluence-dev-supervisor-runs", Targets=[{"Id": "sqs", "Arn": queue_arn}])
        self.topic = self.sns.create_topic(Name="confluence-dev-alerts")["TopicArn"]
        self.function = deploy_function(url)
        self.alerts = self.sqs.create_queue(QueueName="alerts")["QueueUrl"]
        alerts_arn = self.sqs.get_queue_attributes(QueueUrl=self.alerts, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=alerts_arn)
        self.delivered: list[dict[str, Any]] = []

    def receive(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
        for m in messages:
            self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    def summaries(self) -> list[str]:
        messages = self.sqs.receive_message(QueueUrl=self.alerts, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"])["Message"] for m in messages]


def deploy_function(url: str) -> str:
    """The supervisor function as the stack names it (moto keeps it; the test delivers its events in-process):
    ``run --supervise cloud`` checks that it is deployed before it records anything."""
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = aws("iam", url).create_role(RoleName="confluence-dev-supervisor", AssumeRolePolicyDocument=json.dumps(trust))
    return str(
        aws("lambda", url).create_function(
            FunctionName="confluence-dev-supervisor",
            Runtime="python3.13",
            Role=role["Role"]["Arn"],
            Handler="handler.handler",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
    )


def until_over(
    cloud: Cloud, ledger: Ledger, run_id: str, deliver: Callable[[dict[str, Any]], Any], seed: int = 15
) -> SupervisorState:
    """Deliver the queued events to the function until the run is over and reported: each batch twice more, on top
    of the emulator's duplicates, shuffled, now and then with a late duplicate of an old event."""
    rng = random.Random(seed)
    deadline = time.monotonic() + 90
    state = read_state(lambda n: ledger.read(run_id, n))
    while not (state.over and state.notified):
        assert time.monotonic() < deadline, f"the run did not end: {state.stages}"
        batch_events = cloud.receive()
        batch_events = batch_events + batch_events
        rng.shuffle(batch_events)
        if cloud.delivered and rng.random() < 0.5:
            batch_events.insert(0, rng.choice(cloud.delivered))
        for event in batch_events:
            deliver(event)
        cloud.delivered.extend(batch_events)
        time.sleep(0.1)
        state = read_state(lambda n: ledger.read(run_id, n))
    return state


def held_jobs(cloud: Cloud, run_id: str) -> list[str]:
    """The names of the run's jobs AWS holds, sorted (a name twice if it was submitted twice)."""
    return sorted(
        j["jobName"]
        for q in QUEUES
        for j in cloud.batch.list_jobs(jobQueue=q, filters=[{"name": "JOB_NAME", "values": [f"{run_id}_*"]}])[
            "jobSummaryList"
        ]
    )


@pytest.fixture
def cloud(provisioned: Any, batch_control: Any, batch_server: Any, batch_client: Any, tmp_path: Path) -> Cloud:
    set_up(tmp_path, provisioned, batch_server.url)
    batch_control.set_durations(default=0.2, queue=0.05)
    # AWS: at least once, in no promised order.
    batch_control.events(duplicates=0.5, reorder_window=4, seed=15)
    return Cloud(batch_server.url, batch_client)


def test_the_cloud_supervisor_ends_the_run_like_the_local_one_under_duplicate_and_reordered_events(
    cli: Any, cloud: Cloud, batch_control: Any, tmp_path: Path
) -> None:
    run_id = "20261126T013000-dddd"
    # Jobs that outlast an invocation: each stage moves on its own events, however slow the machine.
    batch_control.set_durations(default=2.0, queue=0.05)
    batch_control.fail(f"{run_id}_input_input_0", indices=[3, 7])
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[4])  # child 4 of the compact array is reach 5

    started = cli("run", "-c", "confluence.yaml", "--run-id", run_id, "--supervise", "cloud", "--ledger", LEDGER)

    # THEN the command records the run, submits nothing, and hands the run over with one event on the bus
    assert started.returncode == 0, started.stderr + started.stdout
    assert (
        f"handed run {run_id} to the venue's supervisor function (confluence-dev-supervisor): it submits stage input "
        "and each stage after it. Watch with:" in " ".join(started.stderr.split())
    )
    # the command to paste names the ledger and the endpoint the run was handed over at
    assert started.stdout == (
        f"confluence-submit supervise --run-id {run_id} --ledger {LEDGER} --endpoint-url {cli.endpoint_url} --status\n"
    )
    assert held_jobs(cloud, run_id) == []
    ledger = Ledger(S3Store(BUCKET, "runs", cloud.function_s3))
    assert read_state(lambda n: ledger.read(run_id, n)).mode == "cloud"
    [handed] = cloud.receive()
    assert (handed["source"], handed["detail-type"], handed["detail"]) == (
        "confluence.supervisor",
        "Confluence Supervised Run",
        {"prefix": "confluence-dev", "run_id": run_id, "change": "started", "ledger": LEDGER},
    )
    batch = Batch(AwsOptions(endpoint_url=cloud.url, region=REGION))
    invocations = 0

    def deliver(event: dict[str, Any]) -> dict[str, Any]:
        nonlocal invocations
        invocations += 1
        return handler.handle(
            event,
            ledger=ledger,
            batch=batch,
            s3=cloud.function_s3,
            sns=cloud.function_sns,
            topic=cloud.topic,
            token=f"inv-{invocations}",
        )

    # AND the function, given that event, submits the first stage (and a duplicate of the event submits nothing)
    assert deliver(handed)["submitted"] == [f"{run_id}_input_input_0"]
    assert f"{run_id}_input_input_0" not in deliver(handed)["submitted"]  # (it may find input done: flpe goes)
    assert held_jobs(cloud, run_id).count(f"{run_id}_input_input_0") == 1
    cloud.delivered.append(handed)
    state = until_over(cloud, ledger, run_id, deliver)
    # The rule let through only the supervised run's parent jobs: no array child's event invoked the function.
    batch_events = [e for e in cloud.delivered if e["source"] == "aws.batch"]
    assert batch_events
    assert {e["detail"]["jobName"] for e in batch_events} <= set(held_jobs(cloud, run_id))
    assert [e for e in batch_events if "index" in (e["detail"].get("arrayProperties") or {})] == []

    assert state.state == "succeeded"
    assert state.stage_state("flpe").skipped == (3, 7)
    jobs = {name: job_id for s in state.stages for name, job_id in s.jobs}
    assert sorted(jobs) == [
        f"{run_id}_flpe_neobam_0",
        f"{run_id}_flpe_sad_0",
        f"{run_id}_input_input_0",
        f"{run_id}_output_output_0",
    ]
    # Each name exactly once in AWS, however many times the events came.
    assert held_jobs(cloud, run_id) == sorted(jobs)
    # The report next to the ledger, in S3, as the local run writes it.
    failures = json.loads(
        cloud.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/module_data_failures.json")["Body"].read()
    )
    assert failures == {
        "Input": [{"Index": 3, "Value": ITEMS[3]}, {"Index": 7, "Value": ITEMS[7]}],
        "Neobam": [{"Index": 5, "Value": 5}],
    }
    summaries = cloud.summaries()
    assert len(summaries) >= 1
    assert summaries[0].startswith(f"Confluence run {run_id} ended succeeded: every stage completed; 3 children failed")
    # The command run --supervise cloud printed shows the run as the function left it.
    shown = cli(*started.stdout.split()[1:])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "input                    done       jobs   1  failed     2  left out     0",
        "flpe                     done       jobs   2  failed     1  left out     2",
        "output                   done       jobs   1  failed     0  left out     0",
        f"run {run_id}: succeeded (every stage completed; 3 children failed within their budgets and 2 were left "
        "out downstream)",
    ]
    # Events of other jobs, of array children and of unsupervised runs are not the supervisor's business.
    batch_event = {"source": "aws.batch", "detail-type": "Batch Job State Change"}
    assert handler.runs_of({**batch_event, "detail": {}}, ledger) is None
    child = {"jobName": f"{run_id}_flpe_sad_0", "arrayProperties": {"index": 3}}
    assert handler.runs_of({**batch_event, "detail": child}, ledger) is None
    assert handler.runs_of({**batch_event, "detail": {"jobName": "other_flpe_sad_0"}}, ledger) is None
    assert handler.runs_of({**batch_event, "detail": {"jobName": f"{run_id}_nostage_sad_0"}}, ledger) is None
    assert handler.runs_of({**batch_event, "detail": {"jobName": f"{run_id}_flpe_sad_0"}}, ledger) == [run_id]


PACKED = (
    CONFIG.replace(
        'input: {items: "s3://{prefix}-json/reaches.json",',
        'input: {items: "s3://{prefix}-json/reaches.json", items_per_child: 3,',
    )
    .replace("array_size: 12}", "array_size: 12, items_per_child: 3}")
    .replace('"25%"', "1")
)


def test_a_packed_run_handed_to_the_cloud_supervisor_ends_as_the_local_one(
    cli: Any, cloud: Cloud, batch_control: Any, tmp_path: Path
) -> None:
    # The packed run of test_supervise_local.py: 12 reaches, 3 to a child; input child 1 (reaches 3-5) fails, and
    # child 3 of flpe.neobam (its compact array's child 2: reaches 9-11).
    (tmp_path / "confluence.yaml").write_text(PACKED)
    run_id = "20261126T013000-pppp"
    batch_control.fail(f"{run_id}_input_input_0", indices=[1])
    batch_control.fail(f"{run_id}_flpe_neobam_0", indices=[2])
    ledger = Ledger(S3Store(BUCKET, "runs", cloud.function_s3))
    batch = Batch(AwsOptions(endpoint_url=cloud.url, region=REGION))

    started = cli("run", "-c", "confluence.yaml", "--run-id", run_id, "--supervise", "cloud", "--ledger", LEDGER)

    assert started.returncode == 0, started.stderr
    state = until_over(
        cloud,
        ledger,
        run_id,
        lambda e: handler.handle(
            e, ledger=ledger, batch=batch, s3=cloud.function_s3, sns=cloud.function_sns, topic=cloud.topic, token="f"
        ),
    )
    assert (state.state, state.stage_state("flpe").skipped) == ("succeeded", (1,))
    assert {p.module: p.index_map for p in state.stage_state("flpe").pieces} == {"neobam": (0, 2, 3), "sad": (0, 2, 3)}
    assert held_jobs(cloud, run_id) == [
        f"{run_id}_flpe_neobam_0",
        f"{run_id}_flpe_sad_0",
        f"{run_id}_input_input_0",
        f"{run_id}_output_output_0",
    ]
    failures = json.loads(
        cloud.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/module_data_failures.json")["Body"].read()
    )
    assert failures == {
        "Input": [{"Index": i, "Value": ITEMS[i]} for i in (3, 4, 5)],
        "Neobam": [{"Index": i, "Value": i} for i in (9, 10, 11)],
    }


def test_a_plain_cancel_ends_a_cloud_supervised_run_cancelled_with_its_report_and_summary(
    cli: Any, cloud: Cloud, batch_control: Any, tmp_path: Path
) -> None:
    run_id = "20261126T013000-eeee"
    batch_control.set_durations(default=0.2, queue=0.05)
    batch_control.hold("RUNNING", name_glob=f"{run_id}_input_*")  # running until the cancel terminates it
    assert (
        cli("run", "-c", "confluence.yaml", "--run-id", run_id, "--supervise", "cloud", "--ledger", LEDGER).returncode
        == 0
    )
    ledger = Ledger(S3Store(BUCKET, "runs", cloud.function_s3))
    batch = Batch(AwsOptions(endpoint_url=cloud.url, region=REGION))

    def deliver_all() -> list[dict[str, Any]]:
        seen = cloud.receive()
        for event in seen:
            handler.handle(
                event,
                ledger=ledger,
                batch=batch,
                s3=cloud.function_s3,
                sns=cloud.function_sns,
                topic=cloud.topic,
                token="f",
            )
        return seen

    deliver_all()  # the hand-over: the function submits input, whose one job runs for a minute
    assert held_jobs(cloud, run_id) == [f"{run_id}_input_input_0"]

    # WHEN the run is cancelled with the command of unsupervised runs
    cancelled = cli("cancel", "-c", "confluence.yaml", "--run-id", run_id, "--ledger", LEDGER)

    # THEN the cancel is recorded, the job stopped, and the function (woken by the cancel's own event and the
    # stopped job's) ends the run cancelled, not over budget, with the report in S3 and the summary published
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.splitlines() == [
        f"run {run_id} is supervised (cloud): the cancel is recorded in its ledger; its supervisor ends it as "
        "cancelled and writes the report",
        f"run {run_id}: cancelled 0 queued jobs, terminated 1 started jobs (1 were active)",
        f"no job of run {run_id} is active",
    ]
    deadline = time.monotonic() + 30
    delivered: list[dict[str, Any]] = []
    state = read_state(lambda n: ledger.read(run_id, n))
    while not (state.over and state.notified):
        assert time.monotonic() < deadline, f"the run did not end: {state}"
        delivered += deliver_all()
        time.sleep(0.1)
        state = read_state(lambda n: ledger.read(run_id, n))
    assert (state.state, state.reason) == ("cancelled", "the run was cancelled")
    while more := cloud.receive():  # the events still queued when the run ended (the cancel's own among them)
        delivered += more
    assert {"prefix": "confluence-dev", "run_id": run_id, "change": "cancelled", "ledger": LEDGER} in [
        e["detail"] for e in delivered if e["source"] == "confluence.supervisor"
    ]
    assert held_jobs(cloud, run_id) == [f"{run_id}_input_input_0"]
    assert cloud.summaries() == [
        f"Confluence run {run_id} ended cancelled: the run was cancelled. 0 of 3 stages completed; 12 children "
        "submitted, 0 failed, 0 left out because their index failed upstream."
    ]
    report = json.loads(cloud.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/module_data_report.json")["Body"].read())
    assert [(m["Module"], m["Total Jobs"]) for m in report["modules"]] == [("Input", 12)]


# --------------------------------------------------------------------------------------------------------------
# A hand-over that cannot vanish


def test_a_venue_without_its_supervisor_refuses_a_cloud_run_before_anything_is_recorded(
    cli: Any, provisioned: Any, batch_control: Any, batch_server: Any, batch_client: Any, tmp_path: Path
) -> None:
    # GIVEN a venue whose supervisor stack is not deployed: no function, one rule of two, and it disabled
    set_up(tmp_path, provisioned, batch_server.url)
    events = aws("events", batch_server.url)
    events.put_rule(Name="confluence-dev-supervisor-runs", EventPattern=json.dumps({"source": ["x"]}), State="DISABLED")
    aws("s3", batch_server.url).create_bucket(
        Bucket="confluence-dev-ledger", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    run_id = "20261126T013000-none"

    result = cli(
        "run",
        "-c",
        "confluence.yaml",
        "--run-id",
        run_id,
        "--supervise",
        "cloud",
        "--ledger",
        "s3://confluence-dev-ledger/runs",
    )

    # THEN it says what is missing, and nothing was recorded or put on the bus
    assert result.returncode != 0
    said = " ".join(result.stderr.split())
    assert (
        "--supervise cloud: nothing was recorded: the supervisor function confluence-dev-supervisor is not deployed"
        in said
    )
    assert "the EventBridge rule confluence-dev-supervisor is not deployed" in said
    assert "the EventBridge rule confluence-dev-supervisor-runs is disabled, not enabled" in said
    assert "--supervise local" in said
    ledger = Ledger(
        S3Store("confluence-dev-ledger", "runs", client("s3", AwsOptions(endpoint_url=batch_server.url, region=REGION)))
    )
    assert ledger.header(run_id) is None
    assert read_state(lambda n: ledger.read(run_id, n)) is None


class RefusingBus(FaultProxy):
    """EventBridge refusing the hand-over entry (PutEvents answers 200 with FailedEntryCount 1, as AWS does for
    an entry it could not take)."""

    def exchange(self, operation: str, body: bytes, forward: Callable[[], Reply]) -> Reply | None:
        if b'"Entries"' in body and b"confluence.supervisor" in body:
            answer = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try later"}]}
            return Reply(200, (("Content-Type", "application/x-amz-json-1.1"),), json.dumps(answer).encode())
        return forward()


def _not_started(cli: Any, cloud: Cloud, bus: FaultProxy, run_id: str) -> tuple[str, Ledger]:
    """``run --supervise cloud`` through an EventBridge that will not take the hand-over: what it said, and the
    run's ledger, where the run is recorded, not started (nothing submitted, nothing handed over)."""
    with serving(bus) as server:
        result = replace(cli, endpoint_url=f"http://127.0.0.1:{server.server_address[1]}")(
            "run", "-c", "confluence.yaml", "--run-id", run_id, "--supervise", "cloud", "--ledger", LEDGER
        )
    assert result.returncode != 0
    said = " ".join(result.stderr.split())
    assert f"run {run_id} is recorded but not started: nothing was submitted and nobody supervises it" in said
    ledger = Ledger(S3Store(BUCKET, "runs", cloud.function_s3))
    state = read_state(lambda n: ledger.read(run_id, n))
    assert state is not None and state.current() is not None and state.current().status == "pending"
    assert [e.kind for e in ledger.events(run_id)][-1] == "hand-over-failed"
    assert held_jobs(cloud, run_id) == []
    assert cloud.receive() == []
    return said, ledger


def test_a_refused_hand_over_leaves_the_run_recorded_not_started_with_the_command_that_hands_it_over_again(
    cli: Any, cloud: Cloud, batch_control: Any, tmp_path: Path
) -> None:
    run_id = "20261126T013000-refu"
    said, ledger = _not_started(cli, cloud, RefusingBus(cloud.url), run_id)
    assert f"EventBridge did not take the started event of run {run_id}: InternalFailure try later" in said
    again = f"confluence-submit supervise --run-id {run_id} --ledger {LEDGER} --endpoint-url"
    assert f"Hand it over again with `{again}" in said

    # WHEN the printed command hands it over again, THEN the function takes it as on the first try
    handed = cli("supervise", "--run-id", run_id, "--ledger", LEDGER, "--hand-over")
    assert handed.returncode == 0, handed.stderr
    [event] = cloud.receive()
    assert event["detail"] == {"prefix": "confluence-dev", "run_id": run_id, "change": "started", "ledger": LEDGER}
    batch = Batch(AwsOptions(endpoint_url=cloud.url, region=REGION))
    deliver = lambda e: handler.handle(  # noqa: E731
        e, ledger=ledger, batch=batch, s3=cloud.function_s3, sns=cloud.function_sns, topic=cloud.topic, token="f"
    )
    deliver(event)
    assert until_over(cloud, ledger, run_id, deliver).state == "succeeded"


class DenyingBus(FaultProxy):
    """EventBridge refusing the PutEvents call itself (an error answer, as AWS gives a caller without
    events:PutEvents on the default bus: "AccessDeniedException", HTTP 400)."""

    def exchange(self, operation: str, body: bytes, forward: Callable[[], Reply]) -> Reply | None:
        if b'"Entries"' in body and b"confluence.supervisor" in body:
            answer = {"__type": "AccessDeniedException", "message": "not authorized to perform: events:PutEvents"}
            return Reply(400, (("Content-Type", "application/x-amz-json-1.1"),), json.dumps(answer).encode())
        return forward()


def test_a_put_events_call_that_fails_leaves_the_run_not_started_and_the_printed_command_starts_it(
    cli: Any, cloud: Cloud, batch_control: Any, tmp_path: Path
) -> None:
    run_id = "20261126T013000-deny"
    said, ledger = _not_started(cli, cloud, DenyingBus(cloud.url), run_id)
    assert "AccessDeniedException" in said, said

    # WHEN the second way the error printed is taken (supervise from here), THEN the run ends as on the first try
    again = f"confluence-submit supervise --run-id {run_id} --ledger {LEDGER} --endpoint-url"
    assert f"or supervise it from here with `{again}" in said
    supervised = cli("supervise", "--run-id", run_id, "--ledger", LEDGER, "--poll", "0.2")
    assert supervised.returncode == 0, supervised.stderr
    assert read_state(lambda n: ledger.read(run_id, n)).state == "succeeded"
