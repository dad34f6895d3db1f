"""``tolerated_failure`` and ``items`` in confluence.yaml: inheritance, and problems with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from yaml_files import write

from confluence_runtime.config import Budget, load_config
from confluence_runtime.errors import ConfigError
from confluence_runtime.records.document import RunSpec


def test_budgets_inherit_module_over_stage_over_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            prefix: confluence-dev
            defaults:
              tolerated_failure: 2
            stages:
              input:
                input: {items: "s3://{prefix}-json/reaches.json"}
              flpe:
                dependency: per_index
                tolerated_failure: "5%"
                neobam: {array_size: 12}
                sad: {array_size: 12, tolerated_failure: "2.5%"}
              output:
                output: {}
            """,
        )
    )
    budgets = {m.name: str(m.tolerated_failure) for m in config.modules}
    assert budgets == {"input": "2", "neobam": "5%", "sad": "2.5%", "output": "2"}
    assert config.modules[0].items == "s3://confluence-dev-json/reaches.json"
    assert config.modules[1].tolerated_failure.limit(210) == 10
    assert Budget().limit(1000) == 0  # no key anywhere: today's behaviour, one failure stops the run
    run = RunSpec.from_config(config, "20261126T010000-abcd")
    assert [(m.name, m.items, str(m.tolerated_failure)) for s in run.stages for m in s.modules] == [
        ("input", "s3://confluence-dev-json/reaches.json", "2"),
        ("neobam", None, "5%"),
        ("sad", None, "2.5%"),
        ("output", None, "2"),
    ]


def test_bad_budgets_and_items_are_reported_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        defaults:
          tolerated_failure: "five"
        stages:
          input:
            tolerated_failure: -1
            input: {items: "reaches.json", array_size: 4}
          flpe:
            neobam: {array_size: 4, tolerated_failure: "120%", items: "s3://bucket/"}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    expected = 'a count of children (3) or a percentage ("5%")'
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:2: defaults.tolerated_failure: expected {expected}, got 'five' (str)",
        f"{path}:5: stages.input.tolerated_failure: expected {expected}, got -1 (int)",
        f"{path}:6: stages.input.input.items: expected an s3://BUCKET/KEY of a JSON array, got 'reaches.json' (str)",
        f"{path}:8: stages.flpe.neobam.items: expected an s3://BUCKET/KEY of a JSON array, got 's3://bucket/' (str)",
        f"{path}:8: stages.flpe.neobam.tolerated_failure: expected {expected}, got '120%' (str)",
    ]


def test_supervision_keeps_packing_and_per_index_stages_with_items_must_pack_alike(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "stages:\n  input:\n    input: {array_size: 100, items_per_child: 10}\n"))
    assert RunSpec.from_config(config, "20261126T010000-abcd").module("input", "input").items_per_child == 10
    # Sizes read from items lists are only known when the stage starts, but the packing is known now.
    path = write(
        tmp_path,
        """
        stages:
          input:
            input: {items: "s3://lists/reaches.json", items_per_child: 4}
          flpe:
            dependency: per_index
            neobam: {items: "s3://lists/reaches.json", items_per_child: 5}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:6: stages.flpe.neobam.items_per_child: per_index pairs child i with child i, so every array of "
        "stages input and flpe must pack alike: stages.flpe.neobam has 5 item(s) per child, stages.input.input 4"
    ]
