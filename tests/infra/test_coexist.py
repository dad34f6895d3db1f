"""Names that coexist: a venue beside an older deployment (a prefix with {venue}), a dev venue that can be destroyed
and deployed again (nothing named is retained), and ops that keeps its data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from .conftest import CONFIG


def by_type(template: Template, type_: str) -> list[dict[str, Any]]:
    return list(template.find_resources(type_).values())


def test_a_prefix_with_venue_names_everything_beside_the_old_deployment(
    build: Callable[..., cdk.App], tmp_path: Path
) -> None:
    # The team's Terraform venues own confluence-dev1-input, ... and the confluence-dev1-<module> repositories.
    path = tmp_path / "confluence.yaml"
    path.write_text(
        CONFIG.read_text(encoding="utf-8").replace("prefix: confluence-dev ", "prefix: confluence2-{venue} "),
        encoding="utf-8",
    )
    app = build(path, venue="dev1")
    stacks = {c.node.id: c for c in app.node.children if isinstance(c, cdk.Stack)}
    assert sorted(stacks) == sorted(
        f"confluence2-dev1-{kind}" for kind in ("alerts", "network", "storage", "renew", "batch", "supervisor")
    )
    batch = stacks["confluence2-dev1-batch"]
    assert "confluence2-dev1-input" in batch.job_queues  # type: ignore[attr-defined]
    repositories = batch.repositories.values()  # type: ignore[attr-defined]
    assert {r.node.default_child.repository_name for r in repositories} >= {
        "confluence2-dev1-neobam",
        "confluence2-dev1-input",
    }


def test_a_dev_venue_leaves_nothing_named_behind(templates: dict[str, Template]) -> None:
    repositories = by_type(templates["batch"], "AWS::ECR::Repository")
    assert repositories
    for repository in repositories:
        assert (repository["DeletionPolicy"], repository["Properties"]["EmptyOnDelete"]) == ("Delete", True)
    (secret,) = by_type(templates["renew"], "AWS::SecretsManager::Secret")
    assert "Name" not in secret["Properties"]
    assert secret["DeletionPolicy"] == "Delete"
    for key in by_type(templates["renew"], "AWS::KMS::Key"):
        assert key["DeletionPolicy"] == "Delete"
    (file_system,) = by_type(templates["storage"], "AWS::EFS::FileSystem")
    assert file_system["DeletionPolicy"] == "Delete"


def test_ops_keeps_its_data(build: Callable[..., cdk.App]) -> None:
    assembly = build(venue="ops").synth()
    template = {s.stack_name.rsplit("-", 1)[-1]: s.template for s in assembly.stacks}
    retained = {
        (kind, resource["Type"]): resource.get("DeletionPolicy")
        for kind in ("batch", "renew", "storage")
        for resource in template[kind]["Resources"].values()
        if resource["Type"]
        in ("AWS::ECR::Repository", "AWS::SecretsManager::Secret", "AWS::KMS::Key", "AWS::EFS::FileSystem")
    }
    assert retained == {
        ("batch", "AWS::ECR::Repository"): "Retain",
        ("batch", "AWS::SecretsManager::Secret"): "Retain",  # the modules' secrets (test_module_resources.py)
        ("renew", "AWS::SecretsManager::Secret"): "Retain",
        ("renew", "AWS::KMS::Key"): "Retain",
        ("storage", "AWS::EFS::FileSystem"): "Retain",
    }
