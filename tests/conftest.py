"""Session-wide fixtures: one local AWS Batch emulator (a moto server) per test session, and dummy AWS credentials
so nothing in the suite can reach a real account."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["batch_emulator.pytest_plugin"]
# Every test of these folders synthesizes the CDK app, runs cfn-lint or the sandbox: `slow` (make test-fast skips).
SLOW_FOLDERS = {"infra"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.path)).parent.name in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _dummy_aws_credentials() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    yield
    patch.undo()
