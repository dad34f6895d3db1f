"""Session-wide fixtures: one local AWS Batch emulator (a moto server) per test session."""

pytest_plugins = ["batch_emulator.pytest_plugin"]
