"""The house plan holds: a functional core with no AWS SDK, one module talking to boto3, the CLI on top that
nothing imports, no import cycles, and a CDK app that takes from the runtime only the config, names and errors."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "confluence_runtime"
RUNTIME = sorted(PACKAGE.rglob("*.py"))
CLI = PACKAGE / "cli"
# Where a function-level import is the design: the SDK (loaded on the first client) and the optional emulator.
LATE_IMPORTS = {"aws/api.py": {"boto3", "botocore"}, "venue/sandbox.py": {"batch_emulator"}}
# What the CDK app may take from the runtime.
STACKS_MAY_IMPORT = {"confluence_runtime.config", "confluence_runtime.names", "confluence_runtime.errors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from . import x`` counts as importing ``package.x``)."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def runtime_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in RUNTIME}
    return {name: {m for m in imported(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_cli_loads_without_boto3_the_cdk_or_the_emulator() -> None:
    code = (
        "import sys, json; import confluence_runtime.cli, confluence_runtime.planning.plan;"
        "import confluence_runtime.views.render;"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('boto3', 'botocore', 'aws_cdk', 'moto', 'batch_emulator'))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == []


def test_only_aws_py_imports_boto3_and_nothing_imports_the_cdk() -> None:
    for path in RUNTIME:
        found = {name.split(".")[0] for name in imported(path)}
        if path != PACKAGE / "aws" / "api.py":
            assert not found & {"boto3", "botocore"}, f"{path.name} imports the AWS SDK; go through aws.py"
        assert not found & {"aws_cdk", "stacks", "lambdas", "cdk_nag", "app"}, f"{path.name} imports the CDK app"


def test_imports_are_at_the_top_except_the_sdk_and_the_optional_emulator() -> None:
    for path in RUNTIME:
        late = {name.split(".")[0] for name in imported(path) - imported(path, top_level_only=True)}
        allowed = LATE_IMPORTS.get(path.relative_to(PACKAGE).as_posix(), set())
        assert late <= allowed, f"{path.relative_to(ROOT)} imports {sorted(late - allowed)} inside a function"


def test_nothing_imports_the_cli() -> None:
    outside = [p for p in RUNTIME if CLI not in p.parents] + sorted((ROOT / "stacks").rglob("*.py")) + [ROOT / "app.py"]
    for path in outside:
        assert not any(m.startswith("confluence_runtime.cli") for m in imported(path)), f"{path.name} imports the CLI"
    # Command modules share cli/common.py; none imports the package that assembles them.
    for path in CLI.glob("*.py"):
        if path.name != "__init__.py":
            assert "confluence_runtime.cli" not in imported(path), f"cli/{path.name} imports the cli package"


def test_no_import_cycles_in_the_runtime() -> None:
    graph = runtime_graph()
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_planning_never_reaches_the_aws_module() -> None:
    graph = runtime_graph()
    for module in ("config", "names", "planning.plan", "planning.shaping", "records.record", "errors"):
        name = f"confluence_runtime.{module}"
        reachable, todo = set(), [name]
        while todo:
            for target in graph[todo.pop()]:
                if target not in reachable:
                    reachable.add(target)
                    todo.append(target)
        assert "confluence_runtime.aws.api" not in reachable, f"{module}.py reaches aws.py"


def test_the_cdk_app_takes_only_the_config_names_and_errors_from_the_runtime() -> None:
    for path in [*sorted((ROOT / "stacks").rglob("*.py")), ROOT / "app.py"]:
        runtime = {m for m in imported(path) if m.startswith("confluence_runtime.")}
        # ``from confluence_runtime.config import Config`` also lists ``confluence_runtime.config.Config``.
        other = {m for m in runtime if m not in STACKS_MAY_IMPORT and m.rpartition(".")[0] not in STACKS_MAY_IMPORT}
        assert other == set(), f"{path.relative_to(ROOT)} imports {sorted(other)}"


def test_each_shared_option_is_declared_once() -> None:
    for flag in (
        "--endpoint-url",
        "--region",
        "--profile",
        "--format",
        "--verbose",
        "--log-file",
        "--rate",
        "--workers",
    ):
        declared = [
            f"{path.relative_to(ROOT)}:{node.lineno}"
            for path in RUNTIME
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and node.value == flag
        ]
        assert len(declared) == 1, (flag, declared)


def test_the_cdk_app_checks_the_config_once_per_synthesis() -> None:
    calls = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in [*sorted((ROOT / "stacks").rglob("*.py")), ROOT / "app.py"]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check_config"
    ]
    # app.py, before any stack exists; a stack built on its own trusts its caller to have checked.
    assert len(calls) == 1 and calls[0].startswith("app.py:"), calls


def test_the_floor_plan_names_every_runtime_module_and_only_existing_ones() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    table = text.split("## Floor plan", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    for row in table.splitlines():
        cells = row.split("|")
        if len(cells) > 3 and cells[1].strip().startswith("`"):
            folder = cells[1].strip().split("`")[1].removeprefix("confluence_runtime/")
            named.update(folder + module for module in re.findall(r"`([a-z_]+\.(?:py|yaml))`", cells[2]))
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    modules |= {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.yaml")}
    modules = {m for m in modules if not m.startswith("cli/")}
    assert named - {"cli/common.py"} == modules
