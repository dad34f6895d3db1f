"""A faithful local AWS Batch: moto's server with job states, dependencies, arrays, retries and injected failures.

Importing this package does not import moto; the server process installs the emulator (``backend.install``).
"""

from .control import EmulatorControl
from .server import EmulatorProcess, start_emulator

__all__ = ["EmulatorControl", "EmulatorProcess", "start_emulator"]
