"""pytest fixtures: one emulator subprocess per session (per xdist worker), reset before each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .control import EmulatorControl
from .server import EmulatorProcess, start_emulator

REGION = "us-west-2"


@pytest.fixture(scope="session")
def batch_server() -> Iterator[EmulatorProcess]:
    """A moto server with the Batch emulator on a free 127.0.0.1 port (``.url``, ``.port``)."""
    with start_emulator() as emulator:
        yield emulator


@pytest.fixture
def batch_control(batch_server: EmulatorProcess) -> EmulatorControl:
    """Control client; every moto service and every emulator setting is reset before the test."""
    control = EmulatorControl(batch_server.url)
    control.reset()
    return control


@pytest.fixture
def batch_client(batch_server: EmulatorProcess, batch_control: EmulatorControl) -> Any:
    """boto3 Batch client on the emulator (dummy credentials, us-west-2)."""
    import boto3

    return boto3.client(
        "batch",
        region_name=REGION,
        endpoint_url=batch_server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto dummy credentials
    )
