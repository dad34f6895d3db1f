"""How long the CDK app takes to synthesize, next to a minimal one-bucket app (prints figures; not a test).

    python bench/synth.py [--runs N] [--no-cli]

In-process: ``build_app()`` + ``synth()`` of the whole app (cdk-nag included) vs. the same for a one-bucket app, in
a fresh interpreter each (jsii start-up is part of what a user waits for). CLI: ``cdk synth -q`` of both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CDK = ROOT / "node_modules" / ".bin" / "cdk"

WHOLE_APP = """
import sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
import app
app.build_app(outdir={outdir!r}).synth()
print(time.perf_counter() - start)
"""
MINIMAL_APP = """
import time
start = time.perf_counter()
import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
app = cdk.App(outdir={outdir!r})
s3.Bucket(cdk.Stack(app, "Minimal"), "Bucket")
app.synth()
print(time.perf_counter() - start)
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CDK_DEFAULT_ACCOUNT", None)
    return env


def in_process(source: str) -> float:
    """Wall time of one fresh interpreter running ``source`` (its own figure excludes interpreter start-up)."""
    with tempfile.TemporaryDirectory() as outdir:
        code = textwrap.dedent(source.format(root=str(ROOT), outdir=outdir))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), check=True, capture_output=True)
        return time.perf_counter() - start


def through_cli(app_dir: Path) -> float:
    with tempfile.TemporaryDirectory() as outdir:
        start = time.perf_counter()
        result = subprocess.run(
            [str(CDK), "synth", "-q", "--no-notices", "-o", outdir],
            cwd=app_dir,
            env=_env(),
            capture_output=True,
            text=True,
        )
        if result.returncode:
            sys.exit(f"cdk synth failed in {app_dir}:\n{result.stderr[-3000:]}")
        return time.perf_counter() - start


def minimal_cli_project(directory: Path) -> Path:
    # The CLI chooses the output directory itself (CDK_OUTDIR): the app must not set one.
    (directory / "app.py").write_text(
        "import aws_cdk as cdk\nfrom aws_cdk import aws_s3 as s3\n\n"
        'app = cdk.App()\ns3.Bucket(cdk.Stack(app, "Minimal"), "Bucket")\napp.synth()\n'
    )
    (directory / "cdk.json").write_text('{"app": "python3 app.py"}\n')
    return directory


def report(name: str, whole: list[float], minimal: list[float]) -> None:
    w, m = statistics.median(whole), statistics.median(minimal)
    print(
        f"{name:<12} whole app {w:6.2f} s   one-bucket app {m:6.2f} s   ratio {w / m:4.1f}x   (median of {len(whole)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-cli", action="store_true", help="skip the CDK CLI figures")
    args = parser.parse_args()

    report(
        "in-process",
        [in_process(WHOLE_APP) for _ in range(args.runs)],
        [in_process(MINIMAL_APP) for _ in range(args.runs)],
    )
    if not args.no_cli:
        with tempfile.TemporaryDirectory() as tmp:
            minimal = minimal_cli_project(Path(tmp))
            report(
                "CDK CLI",
                [through_cli(ROOT) for _ in range(args.runs)],
                [through_cli(minimal) for _ in range(args.runs)],
            )


if __name__ == "__main__":
    main()
