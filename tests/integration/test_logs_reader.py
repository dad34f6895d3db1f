"""Reading a CloudWatch stream the documented way, against moto's CloudWatch Logs (the emulator server).

AWS: GetLogEvents returns pages (sometimes empty); "If the results include a token, there are more log events
available"; reading forward, the end is reached when nextForwardToken equals the token passed in.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from supervised_workflow import aws

from confluence_runtime.aws.api import AwsOptions, Client, client
from confluence_runtime.views.logs import LogReader, NoLogStream, iter_lines


@pytest.fixture
def logs(batch_server: Any, batch_control: Any) -> Any:
    """A plain boto3 client of moto's CloudWatch Logs, to write what the reader then reads."""
    return aws("logs", batch_server.url)


@pytest.fixture
def runtime_logs(batch_server: Any) -> Client:
    return client("logs", AwsOptions(endpoint_url=batch_server.url, region="us-west-2"))


def test_a_stream_is_read_to_its_end_across_pages(logs: Any, runtime_logs: Client) -> None:
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName="t-neobam/default/abc")
    now = int(time.time() * 1000)  # AWS rejects events older than 14 days
    logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName="t-neobam/default/abc",
        logEvents=[{"timestamp": now + i, "message": f"line {i}"} for i in range(25)],
    )
    reader = LogReader(runtime_logs, page_limit=10)
    events, token = reader.read("/aws/batch/job", "t-neobam/default/abc")
    assert [e.message for e in events] == [f"line {i}" for i in range(25)]
    assert reader.calls >= 3
    assert next(iter_lines(events)).endswith("  line 0")
    logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName="t-neobam/default/abc",
        logEvents=[{"timestamp": now + 100, "message": "more"}],
    )
    later, _ = reader.read("/aws/batch/job", "t-neobam/default/abc", token)  # --follow continues from the token
    assert [e.message for e in later] == ["more"]


def test_a_missing_stream_is_said_plainly(logs: Any, runtime_logs: Client) -> None:
    logs.create_log_group(logGroupName="/aws/batch/job")
    with pytest.raises(NoLogStream, match="log stream t/default/x does not exist in group /aws/batch/job"):
        LogReader(runtime_logs).read("/aws/batch/job", "t/default/x")
