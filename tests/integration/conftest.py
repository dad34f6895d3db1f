"""Integration fixtures: the Batch emulator (a moto server subprocess) provisioned with a config's queues and
job definitions, and a way to run the real ``confluence-submit`` console script against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from provenance_workflow import Workflow, set_up, wait_run

from confluence_runtime.aws.api import AwsOptions
from confluence_runtime.config import Config, load_config
from confluence_runtime.venue.sandbox import provision as provision_resources
from confluence_runtime.venue.sandbox import resources_from_config

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-west-2"


def provision(endpoint_url: str, config: Config, *, skip_queues: tuple[str, ...] = ()) -> None:
    """Create what the CDK app deploys for ``config`` (minus ``skip_queues``) with the sandbox's provisioner."""
    resources = resources_from_config(config)
    resources = replace(resources, queues=tuple(q for q in resources.queues if q.name not in skip_queues))
    provision_resources(resources, AwsOptions(endpoint_url=endpoint_url, region=REGION))


@dataclass
class Cli:
    """Runs the installed console script, the way an operator would."""

    endpoint_url: str
    cwd: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            COLUMNS="120",
        )
        return env

    def __call__(self, *args: str, timeout: float = 120, endpoint: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["--endpoint-url", self.endpoint_url] if endpoint else []
        command = [str(Path(sys.executable).with_name("confluence-submit")), *args, *extra]
        return subprocess.run(
            command, cwd=self.cwd, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        command = [str(Path(sys.executable).with_name("confluence-submit")), *args, "--endpoint-url", self.endpoint_url]
        return subprocess.Popen(
            command, cwd=self.cwd, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


@pytest.fixture
def cli(batch_server: Any, batch_control: Any, tmp_path: Path) -> Cli:
    return Cli(endpoint_url=batch_server.url, cwd=tmp_path)


@pytest.fixture
def provisioned(batch_client: Any) -> Callable[..., Config]:
    """``provisioned(path_or_text)`` loads a config (a path, or YAML text) and creates its queues and definitions."""
    counter = iter(range(1_000))

    def make(source: Path | str, *, skip_queues: tuple[str, ...] = (), tmp: Path | None = None) -> Config:
        path = Path(source) if isinstance(source, Path) else None
        if path is None:
            assert tmp is not None, "pass tmp= for YAML text"
            path = tmp / f"confluence-{next(counter)}.yaml"
            path.write_text(str(source))
        config = load_config(path)
        provision(batch_client.meta.endpoint_url, config, skip_queues=skip_queues)
        return config

    return make


@pytest.fixture
def pv_workflow(batch_server: Any, batch_control: Any, tmp_path: Path) -> Workflow:
    """The provenance tests' workflow (provenance_workflow.py) set up in the emulator, its jobs taking 0.05 s."""
    path, version = set_up(tmp_path, batch_server.url)
    batch_control.set_durations(default=0.05, queue=0.01)
    return Workflow(path, version)


@pytest.fixture
def pv1(pv_workflow: Workflow, cli: Cli, batch_client: Any, tmp_path: Path) -> Workflow:
    """``pv_workflow`` and its run pv1, finished."""
    result = cli("run", "-c", str(pv_workflow.path), "--run-id", "pv1")
    assert result.returncode == 0, result.stderr
    wait_run(batch_client, tmp_path, "pv1")
    return pv_workflow
