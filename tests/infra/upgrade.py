"""What CloudFormation would do with a stack update, read from two synthesized templates: replacements, stranded
exports and unresolvable SSM reads. Pure functions over template dicts (no AWS, no CDK), used by test_upgrade.py.

Replacement semantics (CloudFormation User Guide, "Update behaviors of stack resources"): a change to a property
whose update behaviour is "Replacement" makes CloudFormation create a new resource, point dependants at it, then
delete the old one; a changed logical id is a delete plus a create. "If you update a resource that has a custom
name and the update requires replacement, CloudFormation fails the update". The properties that force replacement
are each resource type's ``createOnlyProperties`` in its registry schema, read here from cfn-lint's copy of the
schemas, so no list is maintained by hand. A replacement propagates: a resource whose create-only property refers
(Ref / GetAtt, or an SSM parameter published with that value) to a replaced resource is replaced too.

A resource deleted by its stack while another stack still uses it through a value published in SSM: the producer
deploys first (the consumer depends on it), so between the two updates, and for good if the consumer's update
rolls back, the consumer's deployed resources name a deleted resource. CloudFormation deletes a removed resource
in the cleanup phase of its own stack's update; it cannot order that after another stack's update.

Exports (User Guide, "Exporting stack output values"): "You can't modify or remove an output value that is
referenced by another stack." The producer deploys first, so every export the deployed consumer imports must
survive the producer's update unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

Templates = Mapping[str, Mapping[str, Any]]  # stack name -> template

REGION = "us-west-2"
# Resources whose replacement loses data or running work even when CloudFormation could carry it out: what an
# ordinary yaml edit must never replace.
STATEFUL = frozenset(
    {
        "AWS::Batch::ComputeEnvironment",
        "AWS::Batch::JobQueue",
        "AWS::EC2::Subnet",
        "AWS::EC2::VPC",
        "AWS::EFS::AccessPoint",
        "AWS::EFS::FileSystem",
        "AWS::EFS::MountTarget",
        "AWS::ECR::Repository",
        "AWS::KMS::Key",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
    }
)


@dataclass(frozen=True, order=True)
class Finding:
    stack: str
    logical_id: str
    what: str

    def __str__(self) -> str:
        return f"{self.stack}/{self.logical_id}: {self.what}"


@cache
def create_only(type_: str) -> tuple[tuple[str, ...], ...]:
    """The create-only property paths of a resource type, e.g. (("JobQueueName",), ("ComputeResources", "Type"))."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, type_).schema
    return tuple(tuple(p.split("/")[2:]) for p in schema.get("createOnlyProperties", []))


def _get(properties: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = properties
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _refs(value: Any) -> Iterator[str]:
    """Logical ids (resources and template parameters) a value refers to."""
    if isinstance(value, Mapping):
        if set(value) == {"Ref"}:
            yield str(value["Ref"])
        elif set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            yield str(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])
        else:
            for v in value.values():
                yield from _refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _refs(v)


def _ssm_reads(template: Mapping[str, Any]) -> dict[str, str]:
    """Template parameter id -> the SSM parameter name CloudFormation resolves it from at deploy time."""
    return {
        pid: str(p.get("Default"))
        for pid, p in template.get("Parameters", {}).items()
        if str(p.get("Type", "")).startswith("AWS::SSM::Parameter::Value<")
    }


def _published(templates: Templates) -> dict[str, tuple[str, tuple[str, ...]]]:
    """SSM parameter name -> (stack, logical ids its value refers to) of the AWS::SSM::Parameter writing it."""
    found = {}
    for stack, template in templates.items():
        for resource in template.get("Resources", {}).values():
            properties = resource.get("Properties", {})
            if resource.get("Type") == "AWS::SSM::Parameter" and isinstance(properties.get("Name"), str):
                found[properties["Name"]] = (stack, tuple(_refs(properties.get("Value"))))
    return found


def _name_of(resource: Mapping[str, Any]) -> str | None:
    """The literal custom name of a resource: its create-only ``...Name`` property (JobQueueName, Name, ...)."""
    properties = resource.get("Properties", {})
    for path in create_only(resource["Type"]):
        if len(path) == 1 and path[0].endswith("Name") and isinstance(properties.get(path[0]), str):
            return str(properties[path[0]])
    return None


def replaced(before: Templates, after: Templates) -> dict[tuple[str, str], str]:
    """(stack, logical id) -> why CloudFormation replaces that resource when ``before`` is updated to ``after``."""
    out: dict[tuple[str, str], str] = {}
    for stack, new in after.items():
        old_resources = before.get(stack, {}).get("Resources", {})
        for lid, resource in new.get("Resources", {}).items():
            old = old_resources.get(lid)
            if old is not None and old["Type"] != resource["Type"]:
                out[(stack, lid)] = f"type {old['Type']} -> {resource['Type']}"
    published_after = _published(after)
    changed = True
    while changed:  # until no replacement implies another
        changed = False
        for stack, new in after.items():
            old_resources = before.get(stack, {}).get("Resources", {})
            reads = _ssm_reads(new)
            for lid, resource in new.get("Resources", {}).items():
                old = old_resources.get(lid)
                if old is None or (stack, lid) in out:
                    continue
                reason = _create_only_change(stack, old, resource, out, reads, published_after)
                if reason:
                    out[(stack, lid)] = reason
                    changed = True
    return out


def _create_only_change(
    stack: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    replaced_so_far: Mapping[tuple[str, str], str],
    reads: Mapping[str, str],
    published: Mapping[str, tuple[str, tuple[str, ...]]],
) -> str | None:
    for path in create_only(new["Type"]):
        before, after = _get(old.get("Properties", {}), path), _get(new.get("Properties", {}), path)
        prop = ".".join(path)
        if json.dumps(before, sort_keys=True) != json.dumps(after, sort_keys=True):
            return f"{prop} changes: {json.dumps(before)} -> {json.dumps(after)}"
        for ref in _refs(after):
            if (stack, ref) in replaced_so_far:
                return f"{prop} refers to {ref}, which is replaced"
            # A value read from SSM at deploy time is another stack's resource: replaced there, changed here.
            producer, value_refs = published.get(reads.get(ref, ""), ("", ()))
            if any((producer, r) in replaced_so_far for r in value_refs):
                return f"{prop} reads {reads[ref]} from SSM, which names a replaced resource"
    return None


def check(before: Templates, after: Templates) -> list[Finding]:
    """Every way the update ``before`` -> ``after`` would fail or destroy state, as sorted findings."""
    findings = []
    for (stack, lid), reason in replaced(before, after).items():
        resource = after[stack]["Resources"][lid]
        old_name, new_name = _name_of(before[stack]["Resources"][lid]), _name_of(resource)
        if resource["Type"] in STATEFUL:
            findings.append(Finding(stack, lid, f"{resource['Type']} replaced ({reason})"))
        elif new_name is not None and new_name == old_name:
            findings.append(
                Finding(stack, lid, f"{resource['Type']} {new_name!r} replaced under its own name ({reason})")
            )
    findings += _moved(before, after)
    findings += _deleted_while_read(before, after)
    findings += _stranded_exports(before, after)
    findings += _unresolved_reads(after)
    return sorted(set(findings))


def _moved(before: Templates, after: Templates) -> list[Finding]:
    """A resource under a new logical id is created before the old one is deleted: same name -> the create
    fails; a stateful resource -> its data or jobs go with the old one."""
    findings = []
    for stack, new in after.items():
        old_resources = before.get(stack, {}).get("Resources", {})
        new_resources = new.get("Resources", {})
        gone = {lid: r for lid, r in old_resources.items() if lid not in new_resources}
        added = {lid: r for lid, r in new_resources.items() if lid not in old_resources}
        for old_lid, old in gone.items():
            name = _name_of(old)
            for new_lid, resource in added.items():
                if resource["Type"] != old["Type"]:
                    continue
                if name is not None and _name_of(resource) == name:
                    findings.append(
                        Finding(stack, new_lid, f"{old['Type']} {name!r} moves from logical id {old_lid}: replaced")
                    )
                elif name is None and old["Type"] in STATEFUL:
                    findings.append(
                        Finding(stack, new_lid, f"{old['Type']} {old_lid} deleted while a new one is created")
                    )
    return findings


def _deleted_while_read(before: Templates, after: Templates) -> list[Finding]:
    """A resource removed from its stack whose id or name another stack of ``before`` (deployed, and updated only
    after it) reads from SSM at deploy time. A retained resource (DeletionPolicy Retain) is not deleted."""
    findings = []
    published = _published(before)
    for consumer, template in before.items():
        for name in _ssm_reads(template).values():
            producer, refs = published.get(name, ("", ()))
            if not producer or producer == consumer:
                continue
            new_resources = after.get(producer, {}).get("Resources", {})
            for lid in refs:
                old = before[producer]["Resources"].get(lid)
                if old is None or lid in new_resources or old.get("DeletionPolicy") == "Retain":
                    continue
                findings.append(
                    Finding(producer, lid, f"{old['Type']} deleted while {consumer} still uses it through {name}")
                )
    return findings


def _exports(templates: Templates) -> dict[str, tuple[str, Any]]:
    out = {}
    for stack, template in templates.items():
        for output in template.get("Outputs", {}).values():
            if "Export" in output:
                out[json.dumps(output["Export"]["Name"])] = (stack, output["Value"])
    return out


def _imports(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        if set(value) == {"Fn::ImportValue"}:
            yield json.dumps(value["Fn::ImportValue"])
        else:
            for v in value.values():
                yield from _imports(v)
    elif isinstance(value, list):
        for v in value:
            yield from _imports(v)


def _stranded_exports(before: Templates, after: Templates) -> list[Finding]:
    old_exports, new_exports = _exports(before), _exports(after)
    findings = []
    for stack, template in before.items():
        for name in set(_imports(template.get("Resources", {}))) | set(_imports(template.get("Outputs", {}))):
            producer, value = old_exports.get(name, ("?", None))
            if name not in new_exports:
                findings.append(Finding(producer, name, f"export removed while {stack} imports it"))
            elif json.dumps(new_exports[name][1], sort_keys=True) != json.dumps(value, sort_keys=True):
                findings.append(Finding(producer, name, f"export changed while {stack} imports it"))
    return findings


def _unresolved_reads(after: Templates) -> list[Finding]:
    """A template parameter read from an SSM parameter no stack of the venue publishes fails the deploy."""
    published = _published(after)
    return [
        Finding(stack, pid, f"reads {name} from SSM, which no stack publishes")
        for stack, template in after.items()
        for pid, name in _ssm_reads(template).items()
        if name not in published and not name.startswith("/cdk-bootstrap/")
    ]
