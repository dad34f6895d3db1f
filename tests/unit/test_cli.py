"""The command line's own contract: every command declares the shared options it takes, and an AWS setup
problem (here an unknown --profile) is a one-line error with exit code 3 (AWS cannot be asked), not a traceback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from click.testing import CliRunner

from confluence_runtime.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_profile_is_an_error_message_and_exit_code_3(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-west-2\n")
    result = CliRunner(env={"AWS_CONFIG_FILE": str(config)}).invoke(
        main, ["status", "-c", str(ROOT / "confluence.yaml"), "--run-id", "r1", "--profile", "nowhere"]
    )
    assert result.exit_code == 3
    assert result.output.strip() == (
        "error: AWS profile 'nowhere' is not configured (see ~/.aws/config, or `aws configure list-profiles`)"
    )


def test_each_command_takes_the_shared_options_it_needs() -> None:
    options = {
        name: {opt for param in command.params for opt in param.opts}
        for name, command in main.commands.items()  # type: ignore[attr-defined]
    }
    aws = {"--endpoint-url", "--region", "--profile", "--deadline"}
    for name in ("run", "status", "cancel", "resume", "retry-failed"):
        assert aws <= options[name], name
    assert {"--rate", "--workers", "--log-file", "--verbose"} <= options["run"]
    assert {"--rate", "--workers"} <= options["resume"] & options["retry-failed"]
    # resume and retry-failed submit like run: they log and watch like it
    assert {"--log-file", "--verbose", "--watch", "--interval"} <= options["resume"] & options["retry-failed"]
    assert "--format" in options["status"] and "--format" in options["plan"]


def test_missing_credentials_are_one_line_and_exit_code_3(tmp_path: Path) -> None:
    # botocore finds no credentials anywhere: the command says so in one line, before any request is sent
    env = {
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = CliRunner(env=env).invoke(
        main, ["status", "-c", str(ROOT / "confluence.yaml"), "--run-id", "r1", "--region", "us-west-2"]
    )
    assert result.exit_code == 3, result.output
    assert result.output.strip() == (
        "error: no AWS credentials found: pass --profile NAME (after `aws configure` or `aws sso login`) or set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )


def test_an_unreachable_endpoint_is_one_error_line_after_the_deadline(tmp_path: Path) -> None:
    # GIVEN an endpoint nobody listens on and a one-second budget per AWS call
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner(env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}).invoke(
        main,
        [
            "status",
            "-c",
            str(ROOT / "confluence.yaml"),
            "--run-id",
            "r1",
            "--endpoint-url",
            f"http://127.0.0.1:{port}",
            "--deadline",
            "1",
        ],
    )
    # THEN the command gives up with the attempts and the deadline named (every wait was logged as it happened)
    assert result.exit_code == 3
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f'error: cannot reach AWS: Could not connect to the endpoint URL: "http://127.0.0.1:{port}/')
    assert " (gave up after " in last
    assert last.endswith(" s, deadline 1 s)")


def test_a_dead_endpoint_is_one_line_and_exit_code_3_within_seconds() -> None:
    # GIVEN nobody listening at the endpoint and the default 60 s deadline per call
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-west-2"}
    started = time.monotonic()
    result = CliRunner(env=env).invoke(
        main,
        ["status", "-c", str(ROOT / "confluence.yaml"), "--run-id", "r1", "--endpoint-url", "http://127.0.0.1:1"],
    )
    # THEN the command gives up in seconds, in one line: a refused connection does not start answering
    assert time.monotonic() - started < 10
    assert result.exit_code == 3, result.output
    assert result.output.strip().startswith(
        'error: cannot reach AWS: Could not connect to the endpoint URL: "http://127.0.0.1:1/'
    )
    assert len(result.output.strip().splitlines()) == 1


def test_an_unknown_region_is_refused_at_once_with_the_region_meant() -> None:
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    started = time.monotonic()
    result = CliRunner(env=env).invoke(
        main, ["status", "-c", str(ROOT / "confluence.yaml"), "--run-id", "r1", "--region", "us-wset-2"]
    )
    assert time.monotonic() - started < 3
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == "error: unknown AWS region 'us-wset-2'; did you mean us-west-2?"


def test_aws_profile_from_the_environment_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-west-2\n")
    result = CliRunner(env={"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "nope"}).invoke(
        main, ["status", "-c", str(ROOT / "confluence.yaml"), "--run-id", "r1"]
    )
    assert result.exit_code == 3
    assert result.output.strip() == (
        "error: AWS profile 'nope' is not configured (see ~/.aws/config, or `aws configure list-profiles`)"
    )


def test_output_table_is_the_aws_cli_habit_for_the_text_tables() -> None:
    # GIVEN the shipped workflow, planned as text and as the AWS CLI's --output table
    shipped = str(Path(__file__).resolve().parents[2] / "confluence.yaml")
    text = CliRunner().invoke(main, ["plan", "-c", shipped, "--run-id", "r1", "--output", "text"])
    table = CliRunner().invoke(main, ["plan", "-c", shipped, "--run-id", "r1", "--output", "table"])
    # THEN both print the same tables; a format a command does not have is still refused with the choices
    assert table.exit_code == 0, table.output
    assert table.output == text.output
    wrong = CliRunner().invoke(main, ["plan", "-c", shipped, "--output", "yaml"])
    assert wrong.exit_code == 2
    assert "'yaml' is not one of 'text', 'json', 'mermaid', 'dot', 'table'" in wrong.output
