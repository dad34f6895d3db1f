"""The JSON Schema of confluence.yaml (schema/confluence.schema.json): generated from the loader's keys and bounds,
committed as generated, and in agreement with the loader on the bad-input corpus and the shipped files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from confluence_runtime.config import load_config
from confluence_runtime.config_schema import json_schema, schema_text
from confluence_runtime.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "confluence.schema.json"
DATA = ROOT / "tests" / "data" / "bad-inputs"
CORPUS = yaml.safe_load((DATA / "corpus.yaml").read_text(encoding="utf-8"))
SHIPPED = [ROOT / "confluence.yaml"]
# What the loader refuses and a schema of one file cannot say: the whole workflow (a module in two stages, the
# SubmitJob total), the command line (--venue), or a limit that depends on another value.
NOT_EXPRESSIBLE = {
    "module-twice": "a module name may appear in one stage only",
    "submissions-too-many": "the SubmitJob calls of the whole plan",
    "prefix-venue": "{venue} is valid with --venue",
}
# Refused while reading the YAML itself (bytes, bombs, nesting, keys that are not names): no document to validate.
NOT_YAML = {"non-utf8", "utf16", "alias-bomb", "merge-bomb", "deep-nesting", "deep-mappings", "unhashable-key"}


def plan_files() -> list[tuple[str, str]]:
    """(entry, file) of every corpus entry that plans a yaml file (plan runs the loader and nothing else)."""
    return [
        (e["name"], e["args"][2])
        for e in CORPUS
        if e["args"][0] == "plan" and e["args"][1] == "-c" and e["args"][2].endswith(".yaml")
    ]


def schema_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(json_schema())
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def test_the_committed_schema_is_the_generated_one() -> None:
    # Regenerate with: python -m confluence_runtime.config_schema > schema/confluence.schema.json
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()
    jsonschema.Draft7Validator.check_schema(json.loads(schema_text()))


@pytest.mark.parametrize(("name", "file"), plan_files(), ids=[n for n, _ in plan_files()])
def test_schema_and_loader_agree_on_the_corpus(name: str, file: str, tmp_path: Path) -> None:
    if name in NOT_YAML:
        pytest.skip("refused as YAML, before there is a document")
    path = tmp_path / file
    path.write_bytes((DATA / file).read_bytes().replace(b"{tmp}", str(tmp_path).encode()))
    try:
        load_config(path)
        loader_refuses = False
    except ConfigError:
        loader_refuses = True
    errors = schema_errors(yaml.safe_load(path.read_text(encoding="utf-8")))
    if name in NOT_EXPRESSIBLE:
        assert loader_refuses and not errors, NOT_EXPRESSIBLE[name]
    else:
        assert bool(errors) == loader_refuses, errors


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_the_shipped_files_pass_both_and_name_the_schema_for_editors(path: Path) -> None:
    load_config(path)
    assert schema_errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert (path.parent / first.split("$schema=", 1)[1].strip()).resolve() == SCHEMA_FILE


def test_check_jsonschema_with_ecmascript_patterns_agrees(tmp_path: Path) -> None:
    # Editors and CI read the patterns as ECMAScript (check-jsonschema's default regex engine): the same verdicts.
    good = [*SHIPPED, DATA / "good.yaml", DATA / "merge-override-ok.yaml"]
    bad = [DATA / f for n, f in plan_files() if n not in NOT_YAML | set(NOT_EXPRESSIBLE) and n != "merge-override-ok"]
    script = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(script), "--schemafile", str(SCHEMA_FILE), "-o", "json", *map(str, good + bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    failed = {Path(e["filename"]).name for e in json.loads(result.stdout)["errors"]}
    assert failed == {p.name for p in bad}
