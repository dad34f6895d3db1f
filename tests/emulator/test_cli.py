"""``python -m batch_emulator``: the control commands a person types instead of curl."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from .conftest import BatchEnv, submit, wait_status


def emulator(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--endpoint-url", url] if url else []
    return subprocess.run(
        [sys.executable, "-m", "batch_emulator", *args, *extra], capture_output=True, text=True, timeout=60, check=False
    )


def test_fail_durations_counters_and_reset_from_the_shell(
    batch_server: Any, batch_client: Any, batch_env: BatchEnv
) -> None:
    url = batch_server.url
    result = emulator("fail", "cli-*", "--indices", "1", "--exit-code", "4", "--log", "boom", url=url)
    assert (result.returncode, result.stdout) == (0, "failing cli-* indices 1\n")
    assert emulator("durations", "--name", "cli-*=0.2", url=url).stdout == "durations set\n"
    array = submit(batch_client, batch_env, "cli-array", arrayProperties={"size": 2})
    parent = wait_status(batch_client, array, "FAILED")
    assert parent["arrayProperties"]["statusSummary"]["FAILED"] == 1
    child = wait_status(batch_client, f"{array}:1", "FAILED")
    assert child["container"]["exitCode"] == 4
    assert child["stoppedAt"] - child["startedAt"] >= 200
    counters = json.loads(emulator("counters", url=url).stdout)
    assert counters["calls"]["SubmitJob"] == 1
    assert emulator("reset", url=url).stdout == "reset\n"
    assert batch_client.describe_job_queues()["jobQueues"] == []


def test_retention_events_and_throttle_from_the_shell(batch_server: Any, batch_control: Any) -> None:
    url = batch_server.url
    assert emulator("retention", "86400", url=url).stdout == "finished jobs are forgotten after 86400 s\n"
    assert emulator("retention", "off", url=url).stdout == "retention off\n"
    assert emulator("events", "--duplicates", "0.5", "--reorder-window", "4", url=url).stdout == "events on\n"
    assert emulator("throttle", "--share", "1", "--operation", "ListJobs", url=url).stdout == "throttle set\n"


def test_bad_input_and_an_unreachable_emulator_exit_non_zero() -> None:
    bad = emulator("retention", "soon", url="http://127.0.0.1:9")
    assert bad.returncode == 2
    assert "expected seconds or 'off', got 'soon'" in bad.stderr
    gone = emulator("counters", url="http://127.0.0.1:9")
    assert gone.returncode == 1
    assert gone.stderr.startswith("Error: http://127.0.0.1:9: ")
    missing = emulator("reset")
    assert missing.returncode == 2
    assert "--endpoint-url" in missing.stderr


def test_a_stubbed_lambda_answers_every_invoke(batch_control: Any, aws: Any) -> None:
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    role = aws("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    aws("lambda").create_function(
        FunctionName="answers",
        Runtime="python3.13",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    batch_control.stub_lambda("answers", {"expiration": "2026-11-26 03:00:00+00:00"})
    for _ in range(2):  # not a queue that runs dry
        payload = aws("lambda").invoke(FunctionName="answers", Payload=b'{"action": "renew"}')["Payload"].read()
        assert json.loads(payload) == {"expiration": "2026-11-26 03:00:00+00:00"}
