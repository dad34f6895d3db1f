"""stacks/checks.py locates its problems through the lines the loader recorded, without reading the file again."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from confluence_runtime import config
from confluence_runtime.attempts import Size, fargate_sizes
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


def test_fargate_sizes_are_one_table_read_by_the_synth_checks_and_the_out_of_memory_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.FARGATE_MEMORY is the only table: a size added there (as AWS once added 8 and 16 vCPUs) is accepted by
    ``cdk synth`` and offered to an out-of-memory retry alike, and its allowed memories are quoted from it."""
    monkeypatch.setitem(config.FARGATE_MEMORY, 32, tuple(range(65536, 245761, 16384)))
    path = tmp_path / "confluence.yaml"
    path.write_text(
        textwrap.dedent(
            """
            stages:
              one:
                m: {vcpus: 32, memory: 81920, image_tag: "1.0.0"}
                n: {vcpus: 32, memory: 70000, image_tag: "1.0.0"}
            """
        ).lstrip()
    )
    with pytest.raises(ConfigError) as caught:
        check_config(load_config(path), compute_environments=2, quota=50, venues=3)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4: stages.one.n.memory: 70000 MiB is not a valid Fargate size for 32 vCPU "
        "(allowed 65536–245760 in 16384 steps)",  # noqa: RUF001 - the en dash of the message
    ]
    assert Size(32.0, 81920) in fargate_sizes()
