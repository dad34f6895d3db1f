"""The house plan holds: the floor plan of ARCHITECTURE.md (which folder may import which), one module talking to
boto3, the CLI on top that nothing imports (not the core, not bench/), no import cycles, and a CDK app that takes from
the runtime only the config, names and errors. Each checker also runs on a small synthetic tree that breaks its rule,
so a rule that stopped checking fails here."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "confluence_runtime"
RUNTIME = sorted(PACKAGE.rglob("*.py"))
CLI = PACKAGE / "cli"
# Where a function-level import is the design: the SDK (loaded on the first client) and the optional emulator.
LATE_IMPORTS = {"aws/api.py": {"boto3", "botocore"}, "venue/sandbox.py": {"batch_emulator"}}
# What the CDK app may take from the runtime.
STACKS_MAY_IMPORT = {"confluence_runtime.config", "confluence_runtime.names", "confluence_runtime.errors"}
# The floor plan, bottom up: each folder of the runtime and the folders it may import besides itself ("" is the
# top level: names, errors, states, config).
FLOOR: dict[str, set[str]] = {
    "": set(),
    "aws": {""},
    "planning": {""},
    "records": {"", "aws", "planning"},
    "views": {"", "aws", "planning", "records"},
    "venue": {"", "aws", "planning", "records"},
    "apply": {"", "aws", "planning", "records", "views", "venue"},
    "supervision": {"", "aws", "planning", "records", "views", "venue", "apply"},
    "cli": {"", "aws", "planning", "records", "views", "venue", "apply", "supervision"},
}
AWS_MODULE = "aws/api.py"  # the only module that imports the AWS SDK or makes a client
SDK = {"boto3", "botocore"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, *, top_level_only: bool = False, root: Path = ROOT) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from . import x`` counts as importing ``package.x``)."""
    tree = ast.parse(path.read_text())
    package = module_name(path, root) if path.name == "__init__.py" else module_name(path, root).rpartition(".")[0]
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


def folder_of(module: str, package: Path) -> str | None:
    """The floor a runtime module lives on ("" for the top level), or None for a name outside the package."""
    parts = module.split(".")
    if parts[0] != package.name:
        return None
    if len(parts) > 1 and (package / parts[1]).is_dir():
        return parts[1]
    return ""


def floor_violations(package: Path) -> list[str]:
    """Every import in the runtime that goes to a folder its own folder may not import."""
    root = package.parent
    found = []
    for path in sorted(package.rglob("*.py")):
        here = folder_of(module_name(path, root), package)
        if here not in FLOOR:
            found.append(f"{path.relative_to(root)}: folder {here!r} is not in the floor plan")
            continue
        for name in sorted(imported(path, root=root)):
            there = folder_of(name, package)
            if there is not None and there != here and there not in FLOOR[here]:
                found.append(f"{path.relative_to(root)} imports {name} ({there or 'top level'})")
    return found


def sdk_violations(package: Path) -> list[str]:
    """Every import of the AWS SDK and every ``.client(`` / ``.resource(`` call outside the AWS module."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).as_posix() == AWS_MODULE:
            continue
        where = path.relative_to(package.parent)
        sdk = {name.split(".")[0] for name in imported(path, root=package.parent)} & SDK
        found.extend(f"{where} imports {name}" for name in sorted(sdk))
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("client", "resource")
            ):
                found.append(f"{where}:{node.lineno} makes an AWS client ({ast.unparse(node.func)})")
    return found


def cli_importers(paths: list[Path], root: Path) -> list[str]:
    """Every one of ``paths`` that imports the CLI."""
    return [
        str(path.relative_to(root))
        for path in paths
        if any(
            m == "confluence_runtime.cli" or m.startswith("confluence_runtime.cli.") for m in imported(path, root=root)
        )
    ]


def outside_the_cli(root: Path) -> list[Path]:
    package = root / "confluence_runtime"
    core = [p for p in package.rglob("*.py") if package / "cli" not in p.parents]
    others = [p for folder in ("bench", "stacks", "lambdas") for p in (root / folder).rglob("*.py")]
    return sorted(core + others + ([root / "app.py"] if (root / "app.py").exists() else []))


def runtime_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in RUNTIME}
    return {name: {m for m in imported(path) if m in modules and m != name} for name, path in modules.items()}


def test_every_folder_imports_only_the_floors_below_it() -> None:
    assert floor_violations(PACKAGE) == []


def test_only_the_aws_module_imports_boto3_or_makes_a_client() -> None:
    assert sdk_violations(PACKAGE) == []


def test_nothing_imports_the_cli_neither_the_core_nor_bench() -> None:
    assert cli_importers(outside_the_cli(ROOT), ROOT) == []
    # Command modules share cli/common.py; none imports the package that assembles them.
    for path in CLI.glob("*.py"):
        if path.name != "__init__.py":
            assert "confluence_runtime.cli" not in imported(path), f"cli/{path.name} imports the cli package"


# --------------------------------------------------------------------------------------------------------------
# The checkers fail when their rule is broken: a synthetic tree for each


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for folder in {p.parent for p in root.rglob("*.py")}:
        (folder / "__init__.py").touch()
    return root / "confluence_runtime"


def test_the_floor_check_fails_when_a_lower_floor_imports_a_higher_one(tmp_path: Path) -> None:
    package = tree(
        tmp_path,
        {
            "confluence_runtime/names.py": "from .views import status\n",
            "confluence_runtime/planning/plan.py": "from ..views.status import RunStatus\nfrom .. import names\n",
            "confluence_runtime/views/status.py": "from ..planning.plan import Plan\nfrom ..records import ledger\n",
            "confluence_runtime/records/ledger.py": "from confluence_runtime.supervision.loop import Supervisor\n",
            "confluence_runtime/supervision/loop.py": "from ..views.status import RunStatus\n",
            "confluence_runtime/attic/old.py": "",
        },
    )
    assert floor_violations(package) == [
        "confluence_runtime/attic/__init__.py: folder 'attic' is not in the floor plan",
        "confluence_runtime/attic/old.py: folder 'attic' is not in the floor plan",
        "confluence_runtime/names.py imports confluence_runtime.views (views)",
        "confluence_runtime/names.py imports confluence_runtime.views.status (views)",
        "confluence_runtime/planning/plan.py imports confluence_runtime.views.status (views)",
        "confluence_runtime/planning/plan.py imports confluence_runtime.views.status.RunStatus (views)",
        "confluence_runtime/records/ledger.py imports confluence_runtime.supervision.loop (supervision)",
        "confluence_runtime/records/ledger.py imports confluence_runtime.supervision.loop.Supervisor (supervision)",
    ]


def test_the_sdk_check_fails_on_boto3_or_a_client_outside_the_aws_module(tmp_path: Path) -> None:
    package = tree(
        tmp_path,
        {
            "confluence_runtime/aws/api.py": "import boto3\n\ndef client(s):\n    return boto3.client(s)\n",
            "confluence_runtime/views/logs.py": """\
                from botocore.exceptions import ClientError

                def read(session):
                    return session.client("logs").get_log_events()
                """,
            "confluence_runtime/venue/renew.py": "from ..aws import api\n\nssm = api.client('ssm')\n",
        },
    )
    assert sdk_violations(package) == [
        "confluence_runtime/venue/renew.py:3 makes an AWS client (api.client)",
        "confluence_runtime/views/logs.py imports botocore",
        "confluence_runtime/views/logs.py:4 makes an AWS client (session.client)",
    ]


def test_the_cli_check_fails_when_the_core_or_bench_imports_the_cli(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "confluence_runtime/cli/plan.py": "def measured(): ...\n",
            "confluence_runtime/views/runs.py": "from ..cli import plan\n",
            "confluence_runtime/views/report.py": "from .runs import measured\n",
            "bench/scale.py": "from confluence_runtime.cli.plan import measured\n",
        },
    )
    assert cli_importers(outside_the_cli(tmp_path), tmp_path) == ["bench/scale.py", "confluence_runtime/views/runs.py"]


def test_the_cli_loads_without_boto3_the_cdk_or_the_emulator() -> None:
    code = (
        "import sys, json; import confluence_runtime.cli, confluence_runtime.planning.plan;"
        "import confluence_runtime.views.render;"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('boto3', 'botocore', 'aws_cdk', 'moto', 'batch_emulator'))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == []


def test_nothing_in_the_runtime_imports_the_cdk_app() -> None:
    for path in RUNTIME:
        found = {name.split(".")[0] for name in imported(path)}
        assert not found & {"aws_cdk", "stacks", "lambdas", "cdk_nag", "app"}, f"{path.name} imports the CDK app"


def test_imports_are_at_the_top_except_the_sdk_and_the_optional_emulator() -> None:
    for path in RUNTIME:
        late = {name.split(".")[0] for name in imported(path) - imported(path, top_level_only=True)}
        allowed = LATE_IMPORTS.get(path.relative_to(PACKAGE).as_posix(), set())
        assert late <= allowed, f"{path.relative_to(ROOT)} imports {sorted(late - allowed)} inside a function"


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


def test_test_files_outside_packages_have_names_of_their_own() -> None:
    # pytest imports a test file of a folder without __init__.py by its bare name: two such files of one name
    # (tests/unit/test_x.py, tests/integration/test_x.py) fail collection when one worker imports both.
    tests = Path(__file__).resolve().parents[1]
    loose = [p for p in tests.rglob("test_*.py") if not (p.parent / "__init__.py").exists()]
    names = [p.name for p in loose]
    assert sorted({n for n in names if names.count(n) > 1}) == []
