"""stacks/checks.py locates its problems through the lines the loader recorded, without reading the file again."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from confluence_runtime.config import load_config
from confluence_runtime.errors import ConfigError
from stacks.checks import check_config


def test_a_size_inherited_from_defaults_is_reported_at_the_defaults_line(tmp_path: Path) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(
        textwrap.dedent(
            """
            defaults:
              vcpus: 3
            stages:
              one:
                m: {image_tag: "1.0.0"}
              two:
                n: {vcpus: 1, memory: 1000, image_tag: "1.0.0"}
            """
        ).lstrip()
    )
    config = load_config(path)
    path.unlink()  # the checks must not need the file any more
    with pytest.raises(ConfigError) as caught:
        check_config(config, compute_environments=2, quota=50, venues=3)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:2: stages.one.m.vcpus: 3 vCPU is not a valid Fargate size (allowed 0.25, 0.5, 1, 2, 4, 8, 16)",
        f"{path}:7: stages.two.n.memory: 1000 MiB is not a valid Fargate size for 1 vCPU "
        "(allowed 2048–8192 in 1024 steps)",  # noqa: RUF001 - the en dash of the message
    ]
