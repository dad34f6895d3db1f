"""Fixtures for the CDK app: ONE synthesis of the shipped confluence.yaml per test session, shared by every test.

* ``cli_synth``: ``cdk synth`` through the real CDK CLI (node_modules/.bin/cdk) into a temporary cloud assembly, as
  on a fresh machine: an empty HOME (no ~/.aws) and no AWS_* or CDK_DEFAULT_* variables (the suite's dummy
  credentials and region are removed for it). Under pytest-xdist the workers share it (a file lock, and the run id
  in the directory name), so it runs once.
* ``templates``: ``Template`` objects read from that assembly, keyed by stack kind (network, storage, batch, renew).
* ``app`` / ``config``: the same app built in-process (not synthesized) for construct-level checks.
* ``build``: builds an app from another yaml, for tests of bad or extended configurations.
* ``extended_assembly``: the one other yaml synthesized for the session (test_extend.py, the submitter's items
  grant, test_egress.py): venue dev1, an extra stage and module with an items list, no NAT gateway, buckets, one
  shared queue, an egress allowlist.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[2]

# app.py and stacks/ are not an installed package: pytest's `pythonpath = ["."]` puts the checkout first.
import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

import app as cdk_app  # noqa: E402
from confluence_runtime.config import Config, load_config  # noqa: E402

CONFIG = ROOT / "confluence.yaml"
VENUE = "dev"
PREFIX = "confluence-dev"
STACK_KINDS = ("alerts", "network", "storage", "renew", "batch", "supervisor")


@dataclass(frozen=True)
class CliSynth:
    returncode: int
    stdout: str
    stderr: str
    outdir: Path
    home: Path
    # The names of the variables the CLI ran with (what the fresh-machine test checks).
    variables: tuple[str, ...]

    def template_path(self, kind: str) -> Path:
        return self.outdir / f"{PREFIX}-{kind}.template.json"


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return tmp_path_factory.getbasetemp()
    # Every worker of one run sees the same parent directory and run id.
    return tmp_path_factory.getbasetemp().parent / f"infra-{os.environ['PYTEST_XDIST_TESTRUNUID']}"


@pytest.fixture(scope="session")
def cli_synth(tmp_path_factory: pytest.TempPathFactory) -> CliSynth:
    shared = _shared_dir(tmp_path_factory)
    shared.mkdir(parents=True, exist_ok=True)
    outdir, result_file, home = shared / "cdk.out", shared / "cli-synth.json", shared / "empty-home"
    with open(shared / "cli-synth.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result_file.exists():
            home.mkdir(exist_ok=True)
            # A fresh machine: no AWS configuration at all (the CLI then passes its fallback region, us-east-1).
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_DEFAULT_"))}
            env.update(
                HOME=str(home),
                # cdk.json runs "python3 app.py": the venv's python must come first on PATH.
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            )
            proc = subprocess.run(
                [
                    str(ROOT / "node_modules" / ".bin" / "cdk"),
                    "synth",
                    "-q",
                    "--no-notices",
                    "-o",
                    str(outdir),
                    "-c",
                    f"venue={VENUE}",
                    "-c",
                    f"config={CONFIG}",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            result_file.write_text(
                json.dumps(
                    {
                        "returncode": proc.returncode,
                        "stdout": proc.stdout,
                        "stderr": proc.stderr,
                        "variables": sorted(env),
                    }
                )
            )
        result = json.loads(result_file.read_text())
    return CliSynth(outdir=outdir, home=home, **{**result, "variables": tuple(result["variables"])})


@pytest.fixture(scope="session")
def templates(cli_synth: CliSynth) -> dict[str, Template]:
    assert cli_synth.returncode == 0, cli_synth.stderr[-4000:]
    return {kind: Template.from_json(json.loads(cli_synth.template_path(kind).read_text())) for kind in STACK_KINDS}


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(CONFIG, venue=VENUE)


@pytest.fixture(scope="session")
def build() -> Callable[..., cdk.App]:
    def build(config: Path | str = CONFIG, venue: str = VENUE, *, nag: bool = False, **context: Any) -> cdk.App:
        return cdk_app.build_app({"venue": venue, "config": str(config), **context}, nag=nag)

    return build


@pytest.fixture(scope="session")
def app(build: Callable[..., cdk.App]) -> cdk.App:
    return build(nag=True)


EXTENDED_PREFIX = "confluence-dev1"
# The extended yaml's module reads its items list from the venue's json bucket ({prefix} expanded by the loader).
EXTENDED_ITEMS = f"s3://{EXTENDED_PREFIX}-json/lists/reaches.json"
EXTENDED_MODULE = """
  sword_check:
    sword_check:
      num_jobs: 1
      array_size: 214
      items: "s3://{prefix}-json/lists/reaches.json"
      arguments: [-i, "-235"]
      vcpus: 2
      memory: 8192
      timeout: 600
      buckets: {sos: ro}
      mounts: {input: "/mnt/data/input:ro", validation: /mnt/data/validation}
"""
EXTENDED_INFRASTRUCTURE = """
queue_mode: shared
infrastructure:
  nat_gateway: false
  buckets: true
  fargate_spot: false
  max_vcpus: 64
  log_retention_days: 90
  egress_allowlist: [soto.podaac.earthdatacloud.nasa.gov, "*.earthdata.nasa.gov", urs.earthdata.nasa.gov]
"""


@pytest.fixture(scope="session")
def extended_assembly(build: Callable[..., cdk.App], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The extended yaml's cloud assembly (cx_api.CloudAssembly), with cdk-nag: endpoints, buckets, an items list
    and their suppressions exist only in this variant. Session-wide, so it is synthesized once."""
    path = tmp_path_factory.mktemp("extended") / "confluence.yaml"
    path.write_text(EXTENDED_INFRASTRUCTURE + CONFIG.read_text(encoding="utf-8") + EXTENDED_MODULE, encoding="utf-8")
    app = build(path, venue="dev1", nag=True)
    stacks = {c.node.id: c for c in app.node.children if isinstance(c, cdk.Stack)}
    assert sorted(stacks) == sorted(f"{EXTENDED_PREFIX}-{k}" for k in STACK_KINDS)
    return app.synth()
