"""The peer suite: moto's own ``tests/test_batch`` (from the sdist of the pinned moto version) in server mode
against the Batch emulator. ``make peer`` runs it; ``make test`` too.

    python tests/peer/run.py [pytest args...]

Downloads the sdist once into ``.cache/peer/`` (``pip download moto==VERSION --no-binary :all: --no-deps``),
extracts ``tests/__init__.py``, ``tests/conftest.py``, ``tests/markers.py`` and ``tests/test_batch/``, starts one
emulator and runs pytest there with ``TEST_SERVER_MODE=true``. The tests run serially: moto's server-mode tests
reset the whole server before each test. ``skips.py`` lists the tests left out and why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WANTED = ("tests/__init__.py", "tests/conftest.py", "tests/markers.py", "tests/test_batch/")


def moto_tests(cache: Path) -> Path:
    """Directory holding moto's ``tests`` package for the installed moto version (downloaded once)."""
    moto_version = version("moto")
    target = cache / f"moto-{moto_version}"
    if (target / "tests" / "test_batch").is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"moto-{moto_version}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"moto=={moto_version}",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--disable-pip-version-check",
                "--quiet",
                "-d",
                str(cache),
            ],
            check=True,
        )
    prefix = f"moto-{moto_version}/"
    with tarfile.open(sdist) as archive:
        members = [
            m for m in archive.getmembers() if m.name.startswith(prefix) and m.name[len(prefix) :].startswith(WANTED)
        ]
        archive.extractall(cache, members=members, filter="data")
    # Its own ini file, so pytest does not pick up this project's pyproject settings from a parent directory.
    (target / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    network: tests that use the network\n    requires_docker: tests that run containers\n"
    )
    return target


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from batch_emulator import start_emulator

    tests = moto_tests(ROOT / ".cache" / "peer")
    with start_emulator() as emulator:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "TEST_SERVER_MODE": "true",
            "TEST_SERVER_MODE_ENDPOINT": emulator.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_batch",
            "-p",
            "skips",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-q",
            "-rs",
            "--rootdir",
            str(tests),
            *argv,
        ]
        print(f"peer suite: moto {version('moto')} tests/test_batch against the emulator at {emulator.url}", flush=True)
        return subprocess.run(command, cwd=tests, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
