"""Day two: ordinary confluence.yaml edits on a deployed venue must update it, never fail or destroy state.

Each edit of the matrix is synthesized in-process (one app per variant, without cdk-nag) and compared with the
shipped file in both directions (the edit and its undo) by tests/infra/upgrade.py, which applies CloudFormation's
update rules: no stateful or custom-named resource replaced, no export removed or changed while imported, no SSM
value read that no stack publishes. A deliberately position-keyed queue shows the comparison fails when it should,
and ``cdk diff`` (offline, the pinned CLI against a template file) agrees with it on both.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import app as cdk_app
from stacks.batch import BatchStack

from .conftest import CONFIG, ROOT
from .upgrade import Templates, check

Edit = Callable[[dict[str, Any]], None]


def _insert_after(mapping: dict[str, Any], anchor: str, key: str, value: Any) -> dict[str, Any]:
    items = list(mapping.items())
    index = [k for k, _ in items].index(anchor) + 1
    return dict([*items[:index], (key, value), *items[index:]])


def insert_stage(doc: dict[str, Any]) -> None:
    doc["stages"] = _insert_after(
        doc["stages"],
        "input",
        "sword_check",
        {
            "sword_check": {
                "num_jobs": 1,
                "array_size": 214,
                "arguments": ["-i", "-235"],
                "mounts": {"input": "/mnt/in"},
            }
        },
    )


def remove_stage(doc: dict[str, Any]) -> None:
    del doc["stages"]["priors"]


def reorder_stages(doc: dict[str, Any]) -> None:
    stages = doc["stages"]
    order = list(stages)
    i, j = order.index("offline"), order.index("validation")
    order[i], order[j] = order[j], order[i]
    doc["stages"] = {name: stages[name] for name in order}


def add_module(doc: dict[str, Any]) -> None:
    flpe = doc["stages"]["flpe"]
    doc["stages"]["flpe"] = _insert_after(flpe, "hivdi", "geobam", copy.deepcopy(flpe["neobam"]))


def remove_module(doc: dict[str, Any]) -> None:
    del doc["stages"]["flpe"]["metroman"]


def remove_last_mount_of_an_area(doc: dict[str, Any]) -> None:
    # output is the only module that mounts the output area, and it is the last stage
    del doc["stages"]["output"]


def add_subdirectory_mount(doc: dict[str, Any]) -> None:
    # Its undo removes the last mount of the sub-directory flpe/neobam: its access point goes.
    doc["stages"]["flpe"]["neobam"]["mounts"]["flpe/neobam"] = "/mnt/data/neobam"


def add_an_area(doc: dict[str, Any]) -> None:
    # An area the Terraform deployment did not have; the undo removes its last (only) mount.
    doc["stages"]["moi"]["moi"]["mounts"]["coastalq"] = "/mnt/data/coastalq"


def add_mount(doc: dict[str, Any]) -> None:
    doc["stages"]["moi"]["moi"]["mounts"]["logs"] = "/mnt/data/logs"


def add_ec2_spot_module(doc: dict[str, Any]) -> None:
    # A module on EC2 Spot brings EC2 compute environments, a queue, an EC2 barrier, a secret and a sub-directory
    # access point: all new, nothing of the deployed venue replaced.
    flpe = doc["stages"]["flpe"]
    module = {**copy.deepcopy(flpe["neobam"]), "compute": "ec2_spot", "vcpus": 2, "memory": 4096}
    module["secrets"] = {"GEOBAM_TOKEN": "geobam-token"}
    module["mounts"] = {**module["mounts"], "flpe/geobam": "/mnt/data/output"}
    doc["stages"]["flpe"] = _insert_after(flpe, "hivdi", "geobam", module)


def add_ec2_spot_module_without_nat(doc: dict[str, Any]) -> None:
    # Without a NAT gateway an EC2 module also brings the ECS agent's three interface endpoints.
    doc.setdefault("infrastructure", {})["nat_gateway"] = False
    add_ec2_spot_module(doc)


def resize_module(doc: dict[str, Any]) -> None:
    doc["stages"]["priors"]["priors"].update(vcpus=8, memory=32768, timeout=14400)


def no_s3_credentials(doc: dict[str, Any]) -> None:
    for stage in doc["stages"].values():
        for module in stage.values():
            if isinstance(module, dict):
                module.pop("s3_credentials", None)


def infrastructure(**settings: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        doc.setdefault("infrastructure", {}).update(settings)

    edit.__name__ = "infrastructure_" + "_".join(f"{k}_{v}" for k, v in settings.items())
    return edit


def no_buckets(doc: dict[str, Any]) -> None:
    # The venue's buckets exist by default; switching them off needs the modules' bucket grants gone too.
    doc.setdefault("infrastructure", {})["buckets"] = False
    for stage in doc["stages"].values():
        for module in stage.values():
            if isinstance(module, dict):
                module.pop("buckets", None)


def shared_queue(doc: dict[str, Any]) -> None:
    doc["queue_mode"] = "shared"


# Every switch of `infrastructure` away from its default; the reverse direction turns it back on (buckets: the
# case that stranded exports), so each pair is checked both ways.
EDITS: tuple[Edit, ...] = (
    insert_stage,
    remove_stage,
    reorder_stages,
    add_module,
    add_ec2_spot_module,
    add_ec2_spot_module_without_nat,
    remove_module,
    remove_last_mount_of_an_area,
    add_subdirectory_mount,
    add_an_area,
    add_mount,
    resize_module,
    no_s3_credentials,
    shared_queue,
    infrastructure(nat_gateway=False),
    infrastructure(fargate_spot=False),
    no_buckets,
    infrastructure(max_vcpus=64, log_retention_days=90, runnable_timeout=7200),
    infrastructure(egress_allowlist=["urs.earthdata.nasa.gov"]),
)


# Edits of the app rather than of the yaml: variant name -> extra context.
CONTEXT_EDITS: dict[str, dict[str, str]] = {
    # Compute environments' tags are create-only under fixed names: an app-wide tag must skip them.
    "add_a_tag_to_the_app": {"tags": '{"cost-center": "swot-confluence"}'},
}


def synthesize(doc: dict[str, Any], directory: Path, context: dict[str, str] | None = None) -> Templates:
    """One in-process app for one variant; its cloud assembly stays in ``directory`` for cdk diff."""
    directory.mkdir(parents=True)
    path = directory / "confluence.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    app = cdk_app.build_app(
        {"venue": "dev", "config": str(path), **(context or {})}, outdir=str(directory / "cdk.out"), nag=False
    )
    assembly = app.synth()
    return {stack.stack_name: stack.template for stack in assembly.stacks}


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upgrade")


@pytest.fixture(scope="module")
def base(shipped: dict[str, Any], workdir: Path) -> Templates:
    return synthesize(shipped, workdir / "base")


@pytest.fixture(scope="module")
def variants(shipped: dict[str, Any], workdir: Path) -> dict[str, Templates]:
    built = {}
    for edit in EDITS:
        doc = copy.deepcopy(shipped)
        edit(doc)
        built[edit.__name__] = synthesize(doc, workdir / edit.__name__)
    for name, context in CONTEXT_EDITS.items():
        built[name] = synthesize(copy.deepcopy(shipped), workdir / name, context)
    return built


def test_every_edit_and_its_undo_updates_in_place(base: Templates, variants: dict[str, Templates]) -> None:
    problems = {
        f"{direction} {name}": [str(f) for f in findings]
        for name, variant in variants.items()
        for direction, findings in (("apply", check(base, variant)), ("undo", check(variant, base)))
        if findings
    }
    assert problems == {}


def test_the_matrix_does_change_what_it_claims(base: Templates, variants: dict[str, Templates]) -> None:
    """Guards the matrix itself: each edit reaches the templates (a no-op edit would pass vacuously)."""
    batch = "confluence-dev-batch"
    queues = {
        name: sorted(
            r["Properties"]["JobQueueName"]
            for r in t[batch]["Resources"].values()
            if r["Type"] == "AWS::Batch::JobQueue"
        )
        for name, t in {"base": base, **variants}.items()
    }
    assert len(queues["insert_stage"]) == len(queues["base"]) + 1
    assert len(queues["remove_stage"]) == len(queues["base"]) - 1
    assert queues["shared_queue"] == ["confluence-dev-efs", "confluence-dev-jobs"]  # and the efs tool's
    for name, variant in variants.items():
        assert json.dumps(variant, sort_keys=True) != json.dumps(base, sort_keys=True), name


def _access_point_paths(templates: Templates, stack: str) -> list[str]:
    return sorted(
        r["Properties"]["RootDirectory"]["Path"]
        for r in templates[stack]["Resources"].values()
        if r["Type"] == "AWS::EFS::AccessPoint"
    )


@pytest.mark.parametrize(("edit", "path"), [("add_subdirectory_mount", "/flpe/neobam"), ("add_an_area", "/coastalq")])
def test_removing_the_last_mount_deletes_its_access_point_after_the_job_definitions(
    base: Templates, variants: dict[str, Templates], edit: str, path: str
) -> None:
    """The access point lives in the Batch stack beside the definitions that mount it: removing the last mount
    deletes it in that stack's cleanup phase, never before them (from the storage stack, deployed first)."""
    mounted = variants[edit]
    assert path in _access_point_paths(mounted, "confluence-dev-batch")
    assert path not in _access_point_paths(mounted, "confluence-dev-storage")
    assert path not in _access_point_paths(base, "confluence-dev-batch")
    assert check(mounted, base) == []


def test_an_access_point_deleted_by_the_storage_stack_while_batch_mounts_it_is_a_hazard() -> None:
    """The old layout (the storage stack owned every access point and published its id in SSM): the comparison
    names the deletion, and a retained access point would be no hazard."""
    name = "/confluence-dev/storage/access-points/flpe/neobam"
    point = {"Type": "AWS::EFS::AccessPoint", "Properties": {"FileSystemId": "fs-1"}}
    published = {"Type": "AWS::SSM::Parameter", "Properties": {"Name": name, "Value": {"Ref": "NeobamPoint"}}}
    storage_before = {"Resources": {"NeobamPoint": point, "Published": published}}
    batch_before = {
        "Parameters": {"Point": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": name}},
        "Resources": {"Definition": {"Type": "AWS::Batch::JobDefinition", "Properties": {"X": {"Ref": "Point"}}}},
    }
    before = {"storage": storage_before, "batch": batch_before}
    after = {
        "storage": {"Resources": {}},
        "batch": {"Resources": {"Definition": {"Type": "AWS::Batch::JobDefinition"}}},
    }
    assert [str(f) for f in check(before, after)] == [
        f"storage/NeobamPoint: AWS::EFS::AccessPoint deleted while batch still uses it through {name}"
    ]
    retained = {
        **storage_before,
        "Resources": {**storage_before["Resources"], "NeobamPoint": {**point, "DeletionPolicy": "Retain"}},
    }
    assert check({**before, "storage": retained}, after) == []


def test_an_app_wide_tag_reaches_every_taggable_resource_but_the_compute_environments(
    base: Templates, variants: dict[str, Templates]
) -> None:
    tagged = variants["add_a_tag_to_the_app"]
    batch = tagged["confluence-dev-batch"]["Resources"]

    def tags(resource: dict[str, Any]) -> Any:
        return resource.get("Properties", {}).get("Tags")

    environments = [r for r in batch.values() if r["Type"] == "AWS::Batch::ComputeEnvironment"]
    assert environments and all(tags(r) == {"project": "confluence", "venue": "dev"} for r in environments)
    queues = [r for r in batch.values() if r["Type"] == "AWS::Batch::JobQueue"]
    assert queues and all(tags(r)["cost-center"] == "swot-confluence" for r in queues)
    buckets = [r for r in tagged["confluence-dev-storage"]["Resources"].values() if r["Type"] == "AWS::S3::Bucket"]
    assert buckets and all({"Key": "cost-center", "Value": "swot-confluence"} in tags(r) for r in buckets)
    assert check(base, tagged) == [] and check(tagged, base) == []


def _service(name: Any) -> str:
    """``com.amazonaws.REGION.ecr.api`` (or its Fn::Join on AWS::Region) -> ``ecr.api``."""
    if isinstance(name, dict):
        return str(name["Fn::Join"][1][-1]).lstrip(".")
    return str(name).split(".", 3)[3]


def _services(templates: Templates) -> list[str]:
    resources = templates["confluence-dev-network"]["Resources"].values()
    return sorted(_service(r["Properties"]["ServiceName"]) for r in resources if r["Type"] == "AWS::EC2::VPCEndpoint")


def test_an_ec2_module_without_nat_adds_the_ecs_endpoints_and_replaces_nothing(variants: dict[str, Templates]) -> None:
    """Adding the first EC2 module to a venue without NAT gateway (and removing the last) only adds (removes) the
    ecs, ecs-agent and ecs-telemetry interface endpoints and the EC2 resources: nothing deployed is replaced."""
    without_nat, with_ec2 = variants["infrastructure_nat_gateway_False"], variants["add_ec2_spot_module_without_nat"]
    assert check(without_nat, with_ec2) == []
    assert check(with_ec2, without_nat) == []
    fargate_only = _services(without_nat)
    assert "ecs" not in fargate_only and "ecs-agent" not in fargate_only
    assert _services(with_ec2) == sorted([*fargate_only, "ecs", "ecs-agent", "ecs-telemetry"])
    assert set(fargate_only) >= {"ecr.api", "ecr.dkr", "logs", "s3"}  # images, their layers (S3), logs
    # ... and with a NAT gateway none of them: the instances reach ECS through it.
    assert _services(variants["add_ec2_spot_module"]) == ["s3"]


def test_no_stack_exports_or_imports_anything(base: Templates, variants: dict[str, Templates]) -> None:
    """Stacks hand values over through SSM parameters (stacks/constructs/wiring.py), so no edit can strand one."""
    for name, templates in {"base": base, **variants}.items():
        for stack, template in templates.items():
            text = json.dumps(template)
            assert "Fn::ImportValue" not in text, (name, stack)
            assert not [o for o in template.get("Outputs", {}).values() if "Export" in o], (name, stack)


# -- the comparison fails when it should -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def position_keyed(
    shipped: dict[str, Any], workdir: Path, monkeypatch_module: pytest.MonkeyPatch
) -> tuple[Templates, Templates]:
    """The old bug on purpose: queue construct ids from their position (JobQueue0, JobQueue1, ...)."""
    monkeypatch_module.setattr(
        BatchStack, "_queue_id", lambda self, name: f"JobQueue{list(self.config.job_queues).index(name)}"
    )
    before = synthesize(shipped, workdir / "positional-base")
    doc = copy.deepcopy(shipped)
    insert_stage(doc)
    return before, synthesize(doc, workdir / "positional-insert")


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_a_position_keyed_queue_fails_the_comparison(position_keyed: tuple[Templates, Templates]) -> None:
    before, after = position_keyed
    findings = check(before, after)
    # every queue after the inserted stage (input is the 3rd) keeps its logical id under the next stage's name
    replaced_queues = [f for f in findings if "AWS::Batch::JobQueue replaced (JobQueueName changes" in f.what]
    assert len(replaced_queues) == 10, findings  # JobQueue3 .. JobQueue12; JobQueue13 is new
    assert all(f.stack == "confluence-dev-batch" for f in replaced_queues)
    assert any('"confluence-dev-disable_renew" -> "confluence-dev-sword_check"' in f.what for f in replaced_queues)


# -- cdk diff agrees ------------------------------------------------------------------------------------------


def cdk_diff(assembly: Path, stack: str, template: dict[str, Any], tmp_path: Path) -> str:
    """`cdk diff` of a synthesized assembly against a template file: offline, no credentials, no synthesis."""
    old = tmp_path / f"{stack}.before.json"
    old.write_text(json.dumps(template), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "CDK_DEFAULT_ACCOUNT"}
    env.update(CDK_DISABLE_CLI_TELEMETRY="true", JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "cdk"), "diff", "--no-notices", "--app", str(assembly),
         "--template", str(old), "--exclusively", stack],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "Resources" in output or "There were no differences" in output, output[-3000:]
    return output


def test_cdk_diff_shows_no_replacement_where_the_comparison_finds_none(
    base: Templates, variants: dict[str, Templates], workdir: Path, tmp_path: Path
) -> None:
    stack = "confluence-dev-batch"
    output = cdk_diff(workdir / "insert_stage" / "cdk.out", stack, base[stack], tmp_path)
    assert "[+] AWS::Batch::JobQueue" in output
    assert "replace" not in output.lower(), output


def test_cdk_diff_shows_the_replacements_of_a_position_keyed_queue(
    position_keyed: tuple[Templates, Templates], workdir: Path, tmp_path: Path
) -> None:
    before, _ = position_keyed
    stack = "confluence-dev-batch"
    output = cdk_diff(workdir / "positional-insert" / "cdk.out", stack, before[stack], tmp_path)
    replaced = [line for line in output.splitlines() if "AWS::Batch::JobQueue" in line and "replace" in line]
    assert len(replaced) == 10, output
