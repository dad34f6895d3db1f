"""The house plan holds: a functional core with no AWS SDK, one module talking to boto3, the CLI on top."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "confluence_runtime"


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" if node.level and not node.module else base for alias in node.names)
    return names


def test_planning_loads_without_boto3_or_the_cdk() -> None:
    code = (
        "import sys, json; import confluence_runtime.plan, confluence_runtime.config, confluence_runtime.render;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'aws_cdk'))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == []


def test_only_aws_py_imports_boto3_and_nothing_imports_the_cdk() -> None:
    for path in PACKAGE.glob("*.py"):
        found = {name.split(".")[0] for name in imports(path)}
        if path.name != "aws.py":
            assert not found & {"boto3", "botocore"}, f"{path.name} imports the AWS SDK; go through aws.py"
        assert not found & {"aws_cdk", "stacks", "lambdas", "cdk_nag"}, f"{path.name} imports the CDK app"


def test_the_core_never_imports_the_cli() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.name.startswith("cli"):
            continue
        assert not any(name.lstrip(".").startswith("cli") for name in imports(path)), f"{path.name} imports the CLI"
