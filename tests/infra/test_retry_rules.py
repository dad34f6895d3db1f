"""The shipped retry rules match what AWS actually reports, and the loader refuses patterns AWS would reject.

Reasons as AWS reports them (shared/AWS-FACTS.md): EC2 Spot reclaimed ``Host EC2 (instance i-…) terminated.``;
Fargate Spot ``Your Spot Task was interrupted.``; a task that never started has the statusReason ``Task failed to
start`` with ``CannotPullContainerError: …`` or ``ResourceInitializationError: …`` as its container reason.
AWS Batch (EvaluateOnExit): the patterns "can contain letters, numbers, periods (.), colons (:), and white spaces
... It can optionally end with an asterisk (*) so that only the start of the string needs to be an exact match";
rules are evaluated in order and the first match decides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from confluence_runtime.errors import ConfigError

from .conftest import CONFIG, PREFIX


def matches(pattern: str | None, text: str) -> bool:
    if pattern is None:
        return True
    return text.startswith(pattern[:-1]) if pattern.endswith("*") else text == pattern


def decide(rules: list[dict[str, Any]], status_reason: str, reason: str, exit_code: str) -> str:
    for rule in rules:
        if (
            matches(rule.get("OnStatusReason"), status_reason)
            and matches(rule.get("OnReason"), reason)
            and matches(rule.get("OnExitCode"), exit_code)
        ):
            return str(rule["Action"])
    return "RETRY"  # no rule matched: Batch retries while attempts remain


@pytest.mark.parametrize(
    ("status_reason", "reason", "exit_code", "action"),
    [
        ("Host EC2 (instance i-0123456789abcdef0) terminated.", "", "", "RETRY"),
        ("Your Spot Task was interrupted.", "", "", "RETRY"),
        (
            "Task failed to start",
            "CannotPullContainerError: pull image manifest has been retried 7 time(s)",
            "",
            "RETRY",
        ),
        ("Task failed to start", "ResourceInitializationError: unable to pull secrets or registry auth", "", "RETRY"),
        ("Essential container in task exited", "", "1", "EXIT"),
        ("Task failed to start", "OutOfMemoryError: Container killed due to memory usage", "", "EXIT"),
    ],
)
def test_shipped_rules_decide_aws_reasons(
    templates: dict[str, Template], status_reason: str, reason: str, exit_code: str, action: str
) -> None:
    definitions = templates["batch"].find_resources("AWS::Batch::JobDefinition")
    input_definition = next(
        d for d in definitions.values() if d["Properties"]["JobDefinitionName"] == f"{PREFIX}-input"
    )
    rules = input_definition["Properties"]["RetryStrategy"]["EvaluateOnExit"]
    assert decide(rules, status_reason, reason, exit_code) == action


def test_loader_rejects_patterns_aws_would_reject(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    shipped = CONFIG.read_text(encoding="utf-8")
    text = shipped
    for old, bad in (
        ('{action: RETRY, on_status_reason: "Host EC2*"}', '{action: RETRY, on_status_reason: "*SpotInterruption*"}'),
        (
            '{action: RETRY, on_status_reason: "Your Spot Task was interrupted*"}',
            '{action: RETRY, on_reason: "CannotPull(Container)*", on_exit_code: "1*2"}',
        ),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, bad)
    path = tmp_path / "confluence.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "SpotInterruption" in text)
    with pytest.raises(ConfigError) as caught:
        build(path)
    spaces = "letters, digits, '.', ':' and spaces, at most 512 characters, optionally ending in one '*'"
    assert [str(p) for p in caught.value.problems][:3] == [
        f"{path}:{line}: defaults.retry_on[0].on_status_reason: '*SpotInterruption*' is not a pattern AWS Batch "
        f"accepts ({spaces})",
        f"{path}:{line + 1}: defaults.retry_on[1].on_reason: 'CannotPull(Container)*' is not a pattern AWS Batch "
        f"accepts ({spaces})",
        f"{path}:{line + 1}: defaults.retry_on[1].on_exit_code: '1*2' is not a pattern AWS Batch accepts (digits, "
        "at most 512 characters, optionally ending in one '*')",
    ]
