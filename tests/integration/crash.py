"""Run ``confluence-submit`` and SIGKILL it at a chosen instant (a test seam; nothing here ships).

    python tests/integration/crash.py POINT N -- ARGS...

POINT is ``begin`` (right after the run header is written, before any SubmitJob), ``submitted`` (right after the
N-th SubmitJob answered, before its row is written: the instant a job exists that no record names) or ``recorded``
(right after the N-th row is written), ``written`` (right after the N-th compare-and-swap write of any ledger
document: the supervisor's document, outcomes, events, rows) or ``after-ms`` (N milliseconds after the command
starts: a kill at a random instant). SIGKILL, so nothing gets to clean up, as with a lost machine.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(owner: Any, name: str, n: int) -> None:
    original = getattr(owner, name)
    lock = threading.Lock()
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        with lock:
            calls[0] += 1
            if calls[0] == n:
                _kill()
        return result

    setattr(owner, name, wrapper)


def main() -> None:
    point, n, rest = sys.argv[1], int(sys.argv[2]), sys.argv[sys.argv.index("--") + 1 :]
    from confluence_runtime.aws import api as aws
    from confluence_runtime.records import ledger, record

    if point == "begin":
        _after(ledger.Ledger, "begin", 1)
    elif point == "submitted":
        _after(aws.Batch, "submit_job", n)
    elif point == "recorded":
        _after(record.Recorder, "append", n)
    elif point == "written":
        _after(ledger, "_cas", n)
    elif point == "after-ms":
        timer = threading.Timer(n / 1000, _kill)
        timer.daemon = True
        timer.start()
    else:
        raise SystemExit(f"unknown kill point {point}")
    from confluence_runtime.cli import main as cli

    sys.argv = ["confluence-submit", *rest]
    cli()


if __name__ == "__main__":
    main()
