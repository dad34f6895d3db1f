"""A confluence.yaml written from a test's text, and the problems the loader finds in it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from confluence_runtime.config import load_config
from confluence_runtime.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    """``tmp_path/confluence.yaml`` holding ``text`` (dedented)."""
    path = tmp_path / "confluence.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """The loader's problems with ``text``, each without the file's path (``LINE: KEY: MESSAGE``)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]
