"""Every input gets a clear answer: the bad-input corpus (tests/data/bad-inputs/corpus.yaml) through the commands.

Each entry names a command line, the exit code and the exact first line of what the user reads; none may show a
traceback. The files are copied into a fresh folder first, with ``{tmp}`` and ``{data}`` replaced by it, beside an
empty folder ``adir`` and a plain file ``afile`` (the directory and not-a-directory cases).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner

from confluence_runtime import config as config_module
from confluence_runtime.cli import main
from confluence_runtime.config import MAX_DOCUMENT_BYTES, load_config

DATA = Path(__file__).resolve().parents[1] / "data" / "bad-inputs"
CORPUS = yaml.safe_load((DATA / "corpus.yaml").read_text(encoding="utf-8"))


def workdir(tmp_path: Path) -> Path:
    for path in DATA.iterdir():
        if path.name != "corpus.yaml":
            body = (
                path.read_bytes().replace(b"{tmp}", str(tmp_path).encode()).replace(b"{data}", str(tmp_path).encode())
            )
            (tmp_path / path.name).write_bytes(body)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("a file, not a folder\n")
    return tmp_path


def invoke(tmp_path: Path, args: list[str], monkeypatch: pytest.MonkeyPatch, endpoint: str | None = None) -> Any:
    monkeypatch.chdir(workdir(tmp_path))
    return CliRunner().invoke(main, with_endpoint(args, endpoint), catch_exceptions=True)


def with_endpoint(args: list[str], endpoint: str | None = None) -> list[str]:
    # No AWS call may happen: every entry is refused before the first one (an unreachable endpoint proves it),
    # except the S3 reads of entries that put items lists on the local emulator.
    return args if args[0] == "plan" else [*args, "--endpoint-url", endpoint or "http://127.0.0.1:9"]


def put_items(request: pytest.FixtureRequest, lists: dict[str, int]) -> str:
    """Each ``BUCKET/KEY: N`` as a JSON array of N items on the emulator's S3; its endpoint."""
    server = request.getfixturevalue("batch_server")
    request.getfixturevalue("batch_control")  # a clean emulator
    s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-west-2")
    for location, count in lists.items():
        bucket, key = location.split("/", 1)
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(list(range(count))).encode())
    return str(server.url)


def first_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    error = next((i for i, line in enumerate(lines) if line.lower().startswith("error:")), None)
    if error is None:
        return ""
    # A config error lists its problems on the following lines: the first problem is the message that matters.
    if lines[error].endswith(":") and error + 1 < len(lines):
        return lines[error + 1].strip()
    return lines[error]


@pytest.mark.parametrize("entry", CORPUS, ids=[e["name"] for e in CORPUS])
def test_each_bad_input_gets_one_clear_message_and_an_exit_code(
    entry: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    endpoint = put_items(request, entry["s3_items"]) if "s3_items" in entry else None
    result = invoke(tmp_path, entry["args"], monkeypatch, endpoint)
    output = result.output.replace(str(tmp_path) + os.sep, "")
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == entry["exit"], output
    if entry["exit"]:
        assert first_error(output) == entry["message"]


def test_the_corpus_covers_every_class_of_the_issue() -> None:
    names = {e["name"] for e in CORPUS}
    # non-UTF-8, unhashable key, {prefix.x}, deep nesting, log_file/submission_file a directory or unwritable,
    # binary and UTF-16 CSV, the original 4-column CSV, bombs, counts, newline names, tags, AWS_BATCH, patterns,
    # timeout, barrier, a module in two stages, and the merge override that must be accepted.
    assert {
        "non-utf8", "unhashable-key", "placeholder-attribute", "deep-nesting", "log-file-directory",
        "submission-file-directory", "log-file-under-a-file", "submissions-binary", "submissions-utf16",
        "submissions-original", "merge-bomb", "alias-bomb", "array-size-huge", "num-jobs-2-63", "num-jobs-million",
        "name-newline", "tag-key-long", "tag-value-long", "tag-aws", "env-aws-batch", "exit-pattern-long",
        "timeout-huge", "timeout-1e30", "module-barrier", "module-twice", "merge-override-ok",
        "mount-area-newline", "mount-subdirectory-newline", "secret-variable-newline", "secret-name-newline",
        "items-newline", "items-placeholder", "items-bucket", "items-empty", "items-too-many", "mount-root",
        "mount-rw", "env-confluence", "prefix-venue", "unknown-key",
    } <= names  # fmt: skip


def test_a_yaml_merge_override_is_accepted_with_the_written_value_winning(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "defaults: &d {timeout: 600}\n"
        "stages:\n"
        "  a:\n"
        "    m: &base {array_size: 3, arguments: [-i, '-235'], retries: 2}\n"
        "    n: {<<: [*base], array_size: 5}\n"
    )
    modules = {m.name: m for m in load_config(path).modules}
    assert (modules["n"].array_size, modules["n"].arguments, modules["n"].retries) == (5, ("-i", "-235"), 2)
    assert modules["m"].array_size == 3


def test_a_key_written_twice_is_still_a_duplicate_next_to_a_merge(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("stages:\n  a:\n    m: &base {array_size: 3}\n    n: {<<: *base, array_size: 5, array_size: 6}\n")
    with pytest.raises(config_module.ConfigError, match=r"c.yaml:4: stages.a.n.array_size: duplicate key"):
        load_config(path)


def test_a_document_over_a_mebibyte_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_DOCUMENT_BYTES + "\nstages: {a: {m: {}}}\n")
    with pytest.raises(
        config_module.ConfigError, match=r"is 1,048,\d{3} bytes; a workflow file may be at most 1,048,576"
    ):
        load_config(path)


def test_an_unexpected_error_is_one_line_naming_it_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(sys.modules["confluence_runtime.cli.plan"], "build_plan", broken)
    result = invoke(tmp_path, ["plan", "-c", "good.yaml"], monkeypatch)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.splitlines() == [
        "error: unexpected RuntimeError: something nobody foresaw",
        "hint: this is a bug in confluence-submit; CONFLUENCE_DEBUG=1 shows where it happened",
    ]


@pytest.mark.parametrize("name", ["merge-bomb", "non-utf8", "submissions-utf16"])
def test_the_console_script_prints_the_same_message_and_no_traceback(name: str, tmp_path: Path) -> None:
    entry = next(e for e in CORPUS if e["name"] == name)
    workdir(tmp_path)
    script = Path(sys.executable).with_name("confluence-submit")
    result = subprocess.run(
        [str(script), *with_endpoint(entry["args"])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == entry["exit"]
    assert "Traceback" not in result.stderr + result.stdout
    assert first_error(result.stderr.replace(str(tmp_path) + os.sep, "")) == entry["message"]
