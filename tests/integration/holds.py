"""Waiting for a job the emulator holds: a hold keeps the job in its state until released, so waiting for it to be
held is never a race with the emulator's clock, however loaded the machine (the hold is the control API's:
``EmulatorControl.hold``)."""

from __future__ import annotations

import time
from typing import Any


def wait_held(control: Any, hold_id: int, count: int = 1, timeout: float = 60) -> list[str]:
    """The ids of the jobs ``hold_id`` holds, once it holds at least ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        held = next((h["held"] for h in control.holds() if h["hold_id"] == hold_id), [])
        if len(held) >= count:
            return list(held)
        assert time.monotonic() < deadline, f"hold {hold_id} never held {count} job(s)"
        time.sleep(0.05)
