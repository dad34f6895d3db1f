"""The one retry layer against real servers: what is retried, what is surfaced, and that a deadline holds.

botocore makes one attempt per call; ``aws.Batch`` retries by error code through its Pacer. Each test reads the
server's own call counters, so "retried N times" means N requests reached the server.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from confluence_runtime.aws.api import AwsOptions, Batch
from confluence_runtime.aws.pacing import AmbiguousFailure, GaveUp, Kind

CONFIG = """\
submission_file: {tmp}/submission.csv
log_file: {tmp}/confluence.log
prefix: rt
stages:
  one:
    a: {{}}
"""


@pytest.fixture
def request_for(provisioned: Any, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    config = provisioned(path)
    module = config.modules[0]
    return {"jobName": "rt_one_a_0", "jobQueue": module.job_queue, "jobDefinition": module.job_definition}


def test_throttled_submissions_are_retried_and_each_job_lands_once(
    batch_server: Any, batch_control: Any, batch_client: Any, request_for: dict[str, Any]
) -> None:
    # GIVEN a server answering 60 % of SubmitJob calls with 429 TooManyRequestsException
    batch_control.throttle(share=0.6, operations=["SubmitJob"], seed=3)
    batch = Batch(AwsOptions(endpoint_url=batch_server.url, region="us-west-2"))
    # WHEN five jobs are submitted
    ids = [batch.submit_job({**request_for, "jobName": f"rt_{i}"}) for i in range(5)]
    # THEN each exists once, and every refused request was sent again by our layer alone (botocore adds none)
    assert len(set(ids)) == 5
    counters = batch_control.counters()
    assert counters["calls"]["SubmitJob"] == 5 + counters["injected"]["SubmitJob"]
    assert batch.pacer.counts["SubmitJob:throttled"] == counters["injected"]["SubmitJob"] > 0
    listed = batch_client.list_jobs(
        jobQueue=request_for["jobQueue"], filters=[{"name": "JOB_NAME", "values": ["rt_*"]}]
    )
    assert sorted(j["jobName"] for j in listed["jobSummaryList"]) == [f"rt_{i}" for i in range(5)]


def test_a_500_on_submit_job_is_surfaced_as_ambiguous_not_sent_again(
    batch_server: Any, batch_control: Any, request_for: dict[str, Any]
) -> None:
    # AWS Batch API reference, Common Errors: "ServerException ... These errors are usually caused by a server
    # issue." A 500 may come after the job was created: sending SubmitJob again could create a second job.
    batch_control.throttle(share=1.0, status=500, operations=["SubmitJob"])
    batch = Batch(AwsOptions(endpoint_url=batch_server.url, region="us-west-2"))
    with pytest.raises(AmbiguousFailure) as raised:
        batch.submit_job(request_for)
    assert str(raised.value).startswith("SubmitJob rt_one_a_0: ServerException: ")
    assert str(raised.value).endswith("; AWS may or may not have applied it")
    assert batch_control.counters()["calls"]["SubmitJob"] == 1


def test_a_500_on_an_idempotent_read_is_retried_until_the_deadline(
    batch_server: Any, batch_control: Any, caplog: pytest.LogCaptureFixture
) -> None:
    batch_control.throttle(share=1.0, status=500, operations=["DescribeJobs"])
    batch = Batch(AwsOptions(endpoint_url=batch_server.url, region="us-west-2", deadline=1.0))
    with caplog.at_level(logging.INFO, logger="confluence"), pytest.raises(GaveUp) as raised:
        batch.describe_jobs(["x"])
    attempts = raised.value.attempts
    assert attempts > 1
    assert str(raised.value).startswith("DescribeJobs failed: ServerException: ")
    assert f"(gave up after {attempts} attempts in " in str(raised.value)
    assert batch_control.counters()["calls"]["DescribeJobs"] == attempts
    # every wait is announced: one line per retry, none hidden in botocore
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == attempts - 1
    assert all(line.startswith("DescribeJobs: ServerException: ") for line in retries)


def test_an_unreachable_endpoint_gives_up_at_the_deadline() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    batch = Batch(AwsOptions(endpoint_url=f"http://127.0.0.1:{port}", region="us-west-2", deadline=0.5))
    with pytest.raises(GaveUp) as raised:
        batch.describe_jobs(["x"])
    assert raised.value.kind is Kind.UNREACHABLE
    assert str(raised.value).startswith(
        f'DescribeJobs failed: Could not connect to the endpoint URL: "http://127.0.0.1:{port}/'
    )
    assert str(raised.value).endswith(" s, deadline 0.5 s)")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that reads the request and never answers: a reply lost after AWS received the call."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in held:
        connection.close()


def test_a_lost_submit_job_reply_is_ambiguous(silent_server: str) -> None:
    batch = Batch(AwsOptions(endpoint_url=silent_server, region="us-west-2", deadline=0.5))
    with pytest.raises(AmbiguousFailure, match=r"^SubmitJob j: Read timeout on endpoint URL: ") as raised:
        batch.submit_job({"jobName": "j", "jobQueue": "q", "jobDefinition": "d"})
    assert raised.value.attempts == 1
