"""The sandbox: what the CDK app would deploy, provisioned in the local Batch emulator instead of AWS."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..aws.api import AwsOptions, Batch, call, client, parse_ecr_image, service_error_code
from ..config import Budget, Config
from ..errors import AwsError, ConfluenceError
from ..names import (
    EFS_ACTIONS,
    FARGATE,
    PLATFORM_EC2,
    PLATFORM_FARGATE,
    alerts_topic,
    barrier_definition,
    compute_environment,
    consumable_resource,
    credential_parameters,
    efs_job_definition,
    efs_queue,
    module_jobs_glob,
    queue_environments,
    supervisor_event_pattern,
    supervisor_function,
    supervisor_parameter,
)
from ..planning.estimate import module_size
from ..records.ledger import Ledger, open_store

# The emulator accepts any credentials; these make sure real ones are never sent to it.
SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}

# What CloudFormation would substitute for pseudo parameters in a deployed stack.
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-west-2",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
    "AWS::StackName": "sandbox",
}


class SandboxError(ConfluenceError):
    """The sandbox could not synthesize or provision the app."""


class FailSpecError(ConfluenceError):
    """A ``sandbox --fail`` value that names no module of the configuration."""

    exit_code = 2


@dataclass(frozen=True)
class Queue:
    name: str
    priority: int
    compute_environments: tuple[str, ...]
    # jobStateTimeLimitActions as (reason, maxTimeSeconds, action): what AWS does with a job blocked in RUNNABLE.
    time_limits: tuple[tuple[str, int, str], ...] = ()


@dataclass(frozen=True)
class ComputeEnvironment:
    """A compute environment as the stacks declare it: ``kind`` FARGATE, FARGATE_SPOT, SPOT or EC2 (managed, at
    most ``max_vcpus`` running), or None (unmanaged: its instances are its owner's, the emulator places anything)."""

    name: str
    kind: str | None = None
    max_vcpus: int | None = None
    instance_types: tuple[str, ...] = ()
    state: str = "ENABLED"


@dataclass(frozen=True)
class Consumable:
    """A consumable resource of the venue (``type`` REPLENISHABLE or NON_REPLENISHABLE)."""

    name: str
    type: str
    total: int


@dataclass(frozen=True)
class JobDefinition:
    name: str
    image: str
    command: tuple[str, ...]
    vcpus: str
    memory: str
    platform: str = PLATFORM_FARGATE
    consumables: tuple[tuple[str, int], ...] = ()  # (consumable resource name, quantity) each job holds


@dataclass(frozen=True)
class Function:
    name: str
    runtime: str
    handler: str


@dataclass(frozen=True)
class Schedule:
    name: str
    group: str
    expression: str
    state: str
    function: str  # the target function's name
    input: str | None = None


@dataclass(frozen=True)
class Rule:
    """An EventBridge rule of the stacks and the functions it invokes."""

    name: str
    pattern: Mapping[str, Any]
    functions: tuple[str, ...]


@dataclass(frozen=True)
class Resources:
    compute_environments: tuple[str, ...] = ()
    queues: tuple[Queue, ...] = ()
    job_definitions: tuple[JobDefinition, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    stacks: tuple[str, ...] = field(default=())
    functions: tuple[Function, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    secrets: tuple[str, ...] = ()  # created empty, as the stacks do: the operator fills them
    buckets: tuple[str, ...] = ()  # the stacks' buckets (the run ledger's, the venue's json, ...)
    topics: tuple[str, ...] = ()  # SNS topics (the venue's alerts)
    rules: tuple[Rule, ...] = ()  # EventBridge rules that invoke functions (the supervisor's)
    environments: tuple[ComputeEnvironment, ...] = ()  # the compute_environments, as declared
    consumable_resources: tuple[Consumable, ...] = ()


@dataclass(frozen=True)
class FailSpec:
    """``STAGE.MODULE`` (every job of the module fails) or ``STAGE.MODULE[3,17]`` (those array children)."""

    stage: str
    module: str
    indices: tuple[int, ...] | None

    def __str__(self) -> str:
        where = f"[{','.join(map(str, self.indices))}]" if self.indices is not None else ""
        return f"{self.stage}.{self.module}{where}"


_FAIL_SPEC = re.compile(r"^(?P<stage>[^.\[\]]+)\.(?P<module>[^.\[\]]+)(?:\[(?P<indices>[\d,\s]*)\])?$")


def parse_fail_spec(text: str, config: Config) -> FailSpec:
    """Check a ``--fail`` value against the configuration: the module exists, indices fit its array."""
    match = _FAIL_SPEC.match(text.strip())
    if match is None:
        raise FailSpecError(f"--fail {text!r}: expected STAGE.MODULE or STAGE.MODULE[3,17]")
    stage, name = match["stage"], match["module"]
    module = next((m for m in config.modules if m.stage == stage and m.name == name), None)
    if module is None:
        known = ", ".join(f"{m.stage}.{m.name}" for m in config.modules)
        raise FailSpecError(f"--fail {text!r}: no module {stage}.{name} in {config.source}; modules: {known}")
    if match["indices"] is None:
        return FailSpec(stage, name, None)
    indices = tuple(sorted({int(i) for i in match["indices"].split(",") if i.strip()}))
    if not module.is_array:
        raise FailSpecError(f"--fail {text!r}: {stage}.{name} is a plain job (no array children); drop the [...]")
    outside = [i for i in indices if i >= module.array_size]
    if not indices or outside:
        raise FailSpecError(
            f"--fail {text!r}: indices must be 0..{module.array_size - 1} (array_size {module.array_size})"
        )
    return FailSpec(stage, name, indices)


def with_budget(config: Config, budget: Budget) -> Config:
    """The config with every module's failure budget set to ``budget`` (sandbox --tolerated-failure: one budget
    for the rehearsal, whatever the file says at its three levels)."""
    stages = tuple(
        replace(stage, modules=tuple(replace(m, tolerated_failure=budget) for m in stage.modules))
        for stage in config.stages
    )
    return replace(config, stages=stages)


def inject_failures(url: str, run_id: str, specs: tuple[FailSpec, ...]) -> None:
    """Make the emulator fail those jobs of this run (exit code 1, a last log line naming the rehearsal)."""
    from batch_emulator.control import EmulatorControl

    control = EmulatorControl(url)
    for spec in specs:
        control.fail(
            module_jobs_glob(run_id, spec.stage, spec.module),
            indices=spec.indices,
            log=[f"confluence sandbox: failure rehearsed by --fail {spec}"],
        )


def find_project(start: Path) -> Path:
    """The checkout holding app.py and cdk.json, searched upwards from ``start``."""
    for folder in (start, *start.parents):
        if (folder / "app.py").is_file() and (folder / "cdk.json").is_file():
            return folder
    raise SandboxError(
        f"no CDK app (app.py and cdk.json) in {start} or above: run the sandbox from the repository checkout, "
        "or pass --template-dir with an existing cdk.out"
    )


def synthesize(project: Path, config_path: Path, venue: str | None, outdir: Path) -> Path:
    """Synthesize the CDK app into ``outdir`` with the same context the CLI would pass (``-c venue=… -c config=…``)."""
    context: dict[str, str] = {"config": str(config_path.resolve())}
    if venue:
        context["venue"] = venue
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps(context),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-20:]
        raise SandboxError("synthesizing the CDK app failed:\n" + "\n".join(detail))
    return outdir


def read_templates(outdir: Path) -> dict[str, dict[str, Any]]:
    """Every stack template of a cloud assembly, by stack name, in the manifest's order."""
    manifest_path = outdir / "manifest.json"
    if not manifest_path.is_file():
        raise SandboxError(f"{outdir} is not a cloud assembly (no manifest.json); synthesize first")
    manifest = json.loads(manifest_path.read_text())
    templates = {}
    for name, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") == "aws:cloudformation:stack":
            template_file = artifact["properties"]["templateFile"]
            templates[name] = json.loads((outdir / template_file).read_text())
    return templates


def resolve(value: Any, names: Mapping[str, str]) -> Any:
    """Resolve the CloudFormation intrinsics CDK emits in names, images and parameter values."""
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return PSEUDO[arg] if arg in PSEUDO else names.get(arg, arg)
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(str(resolve(p, names)) for p in resolve(parts, names))
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            name = names.get(logical, logical)
            if str(attribute).endswith("Arn"):  # ARNs are split for their account and region parts
                return f"arn:aws:sandbox:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:{name}"
            return name
        if key == "Fn::Select":
            index, items = arg
            resolved = resolve(items, names)
            # A GetAtt stood in for an ARN by a bare name has fewer parts: keep the last one.
            return resolved[int(index)] if int(index) < len(resolved) else resolved[-1]
        if key == "Fn::Split":
            separator, text = arg
            return str(resolve(text, names)).split(separator)
        if key == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            for pseudo, replacement in PSEUDO.items():
                text = text.replace("${" + pseudo + "}", str(replacement))
            return text
        if key == "Fn::ImportValue":
            return str(resolve(arg, names))
    return {k: resolve(v, names) for k, v in value.items()}


def _resource_names(resources: Mapping[str, Any], stack: str = "sandbox") -> dict[str, str]:
    """Logical id -> physical name, for the resources whose name the template sets; a bucket without one gets a
    name the way CloudFormation makes one (stack and logical id, lower case), so the parameters that name it work."""
    name_keys = (
        "JobQueueName", "ComputeEnvironmentName", "JobDefinitionName", "Name", "FunctionName", "RepositoryName",
        "TopicName", "BucketName", "ConsumableResourceName",
    )  # fmt: skip
    names = {}
    for logical, resource in resources.items():
        properties = resource.get("Properties", {})
        for key in name_keys:
            if isinstance(properties.get(key), str):
                names[logical] = properties[key]
                break
        if resource.get("Type") == "AWS::SNS::Topic" and logical in names:
            # Ref of a topic is its ARN (what the alerts parameter publishes), in moto's account and region
            names[logical] = f"arn:aws:sns:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:{names[logical]}"
        elif resource.get("Type") == "AWS::IAM::ManagedPolicy" and isinstance(properties.get("ManagedPolicyName"), str):
            # Ref of a managed policy is its ARN (what iam/submitter-policy-arn publishes); IAM ARNs have no region
            names[logical] = f"arn:aws:iam::{PSEUDO['AWS::AccountId']}:policy/{properties['ManagedPolicyName']}"
        elif logical not in names and resource.get("Type") == "AWS::S3::Bucket":
            names[logical] = re.sub(r"[^a-z0-9-]", "-", f"{stack}-{logical}".lower())[:63].strip("-")
    return names


def _last_segment(arn_or_name: Any) -> str:
    """A compute environment's name from its ARN (``…:compute-environment/NAME``) or the name itself."""
    return str(arn_or_name).rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def resources_from_templates(templates: Mapping[str, Mapping[str, Any]]) -> Resources:
    """The Batch queues, compute environments, job definitions and SSM parameters the templates declare."""
    environments: list[str] = []
    specs: list[ComputeEnvironment] = []
    consumables: list[Consumable] = []
    queues: list[Queue] = []
    definitions: list[JobDefinition] = []
    parameters: list[tuple[str, str]] = []
    functions: list[Function] = []
    schedules: list[Schedule] = []
    secrets: list[str] = []
    buckets: list[str] = []
    topics: list[str] = []
    rules: list[Rule] = []
    for stack, template in templates.items():
        resources = template.get("Resources", {})
        names = _resource_names(resources, stack)
        for logical, resource in resources.items():
            kind, properties = resource.get("Type"), resource.get("Properties", {})
            if kind == "AWS::Batch::ComputeEnvironment":
                environments.append(names.get(logical, logical))
                compute = properties.get("ComputeResources") or {}
                managed = str(properties.get("Type", "MANAGED")).upper() == "MANAGED"
                specs.append(
                    ComputeEnvironment(
                        name=names.get(logical, logical),
                        kind=str(compute.get("Type", "EC2")).upper() if managed else None,
                        max_vcpus=int(compute.get("MaxvCpus", 0)) if managed else None,
                        instance_types=tuple(str(t) for t in compute.get("InstanceTypes") or ()),
                        state=str(properties.get("State", "ENABLED")),
                    )
                )
            elif kind == "AWS::Batch::ConsumableResource":
                consumables.append(
                    Consumable(
                        name=names.get(logical, logical),
                        type=str(properties.get("ResourceType", "REPLENISHABLE")),
                        total=int(properties.get("TotalQuantity", 0)),
                    )
                )
            elif kind == "AWS::Batch::JobQueue":
                order = sorted(properties.get("ComputeEnvironmentOrder", []), key=lambda o: o.get("Order", 0))
                queues.append(
                    Queue(
                        name=resolve(properties.get("JobQueueName", logical), names),
                        priority=int(properties.get("Priority", 1)),
                        compute_environments=tuple(
                            _last_segment(resolve(o["ComputeEnvironment"], names)) for o in order
                        ),
                        time_limits=tuple(
                            (str(a["Reason"]), int(a["MaxTimeSeconds"]), str(a.get("Action", "CANCEL")))
                            for a in properties.get("JobStateTimeLimitActions") or ()
                        ),
                    )
                )
            elif kind == "AWS::Batch::JobDefinition":
                container = resolve(properties.get("ContainerProperties", {}), names)
                requirements = {r["Type"]: str(r["Value"]) for r in container.get("ResourceRequirements", [])}
                listed = (properties.get("ConsumableResourceProperties") or {}).get("ConsumableResourceList") or []
                definitions.append(
                    JobDefinition(
                        name=resolve(properties.get("JobDefinitionName", logical), names),
                        image=str(container.get("Image", "busybox")),
                        command=tuple(str(c) for c in container.get("Command", []) or []),
                        vcpus=requirements.get("VCPU", "0.25"),
                        memory=requirements.get("MEMORY", "512"),
                        platform=(properties.get("PlatformCapabilities") or [PLATFORM_EC2])[0],
                        consumables=tuple(
                            (_last_segment(resolve(c["ConsumableResource"], names)), int(c["Quantity"])) for c in listed
                        ),
                    )
                )
            elif kind == "AWS::S3::Bucket":
                buckets.append(names[logical])
            elif kind == "AWS::Events::Rule" and properties.get("EventPattern"):
                targets = tuple(_last_segment(resolve(t.get("Arn", ""), names)) for t in properties.get("Targets", []))
                rules.append(Rule(str(resolve(properties.get("Name", logical), names)),
                                  resolve(properties["EventPattern"], names), targets))  # fmt: skip
            elif kind == "AWS::SNS::Topic":
                topics.append(str(resolve(properties.get("TopicName", logical), names)))
            elif kind == "AWS::SecretsManager::Secret":
                secrets.append(str(resolve(properties.get("Name", logical), names)))
            elif kind == "AWS::SSM::Parameter":
                value = resolve(properties.get("Value", ""), names)
                parameters.append((str(resolve(properties.get("Name", logical), names)), str(value)))
            elif kind == "AWS::Lambda::Function" and "FunctionName" in properties:
                functions.append(
                    Function(
                        name=str(resolve(properties["FunctionName"], names)),
                        runtime=str(properties.get("Runtime", "python3.13")),
                        handler=str(properties.get("Handler", "handler.handler")),
                    )
                )
            elif kind == "AWS::Scheduler::Schedule":
                target = properties.get("Target", {})
                schedules.append(
                    Schedule(
                        name=str(resolve(properties.get("Name", logical), names)),
                        group=str(resolve(properties.get("GroupName", "default"), names)),
                        expression=str(properties.get("ScheduleExpression", "")),
                        state=str(properties.get("State", "ENABLED")),
                        function=_last_segment(resolve(target.get("Arn", ""), names)),
                        input=target.get("Input"),
                    )
                )
    return Resources(
        compute_environments=tuple(environments),
        queues=tuple(queues),
        job_definitions=tuple(definitions),
        parameters=tuple(parameters),
        stacks=tuple(templates),
        functions=tuple(functions),
        schedules=tuple(schedules),
        secrets=tuple(secrets),
        buckets=tuple(buckets),
        topics=tuple(topics),
        rules=tuple(rules),
        environments=tuple(specs),
        consumable_resources=tuple(consumables),
    )


# What the stacks' queues do with a job blocked in RUNNABLE (stacks/batch.py): cancel it after runnable_timeout.
BLOCKED_REASONS = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
)
ENVIRONMENT_KINDS = {
    (False, True): "FARGATE_SPOT",
    (False, False): "FARGATE",
    (True, True): "SPOT",
    (True, False): "EC2",
}


def resources_from_config(config: Config, *, image: str = "public.ecr.aws/docker/library/busybox:latest") -> Resources:
    """The Batch resources a config implies, for tests and benchmarks that skip synthesizing the CDK app."""
    fargate_spot = config.infrastructure.fargate_spot

    def environments(compute: str) -> tuple[str, ...]:
        return tuple(
            compute_environment(config.prefix, ec2=ec2, spot=spot)
            for ec2, spot in queue_environments(compute, fargate_spot=fargate_spot)
        )

    infrastructure = config.infrastructure
    limits = tuple((reason, infrastructure.runnable_timeout, "CANCEL") for reason in BLOCKED_REASONS)
    queues = [Queue(name, 10, environments(compute), limits) for name, compute in config.venue_queue_compute.items()]
    queues.append(Queue(efs_queue(config.prefix), 10, environments(FARGATE), limits))
    specs = {}
    for compute in dict.fromkeys([FARGATE, *config.compute_kinds]):
        for ec2, spot in queue_environments(compute, fargate_spot=fargate_spot):
            specs[compute_environment(config.prefix, ec2=ec2, spot=spot)] = ComputeEnvironment(
                compute_environment(config.prefix, ec2=ec2, spot=spot),
                ENVIRONMENT_KINDS[(ec2, spot)],
                infrastructure.ec2_max_vcpus if ec2 else infrastructure.max_vcpus,
                infrastructure.ec2_instance_classes if ec2 else (),
            )
    consumes = {m.job_definition: m.consumes for m in config.modules}
    platforms = {m.job_definition: m.platform for m in config.modules}
    for platform in dict.fromkeys([PLATFORM_FARGATE, *platforms.values()]):
        platforms[barrier_definition(config.prefix, platform)] = platform
    platforms.update({efs_job_definition(config.prefix, action): PLATFORM_FARGATE for action in EFS_ACTIONS})
    # Each module's definition has the module's size, as the stacks give it (barriers and the efs tool the least).
    sizes = {m.job_definition: module_size(m) for m in config.modules}

    def size(name: str, platform: str) -> tuple[str, str]:
        vcpus, memory = sizes.get(name, (1.0 if platform == PLATFORM_EC2 else 0.25, 512))
        return f"{vcpus:g}", str(memory)

    return Resources(
        compute_environments=tuple(dict.fromkeys(ce for q in queues for ce in q.compute_environments)),
        queues=tuple(queues),
        job_definitions=tuple(
            JobDefinition(
                name,
                image,
                ("true",),
                *size(name, platform),
                platform,
                tuple((consumable_resource(config.prefix, r), q) for r, q in consumes.get(name, ())),
            )
            for name, platform in platforms.items()
        ),
        secrets=config.secrets,
        environments=tuple(specs.values()),
        consumable_resources=tuple(
            Consumable(consumable_resource(config.prefix, r.name), r.type, r.total)
            for r in infrastructure.consumable_resources
        ),
    )


# The sandbox rehearses an established account unless asked otherwise (sandbox --vcpu-quota 6): a new
# account's 6 vCPUs would keep the shipped workflow's 8- and 16-vCPU modules waiting for ever.
SANDBOX_FARGATE_QUOTA = 4000.0


def provision(resources: Resources, options: AwsOptions, *, fargate_quota: float | None = None) -> None:
    """Create the resources in the emulator, the way CloudFormation would have created them on AWS: managed
    compute environments with the stacks' max_vcpus (in a VPC made for them), queues with their time limit
    actions, consumable resources, job definitions; and the account's Fargate vCPU quota (``fargate_quota``,
    default an established account's)."""
    iam, batch, ssm = client("iam", options), client("batch", options), client("ssm", options)
    # moto, like older AWS accounts, wants a service role on every compute environment.
    try:
        role = call("GetRole", iam.get_role, RoleName="sandbox-batch-service")
    except AwsError as e:
        if service_error_code(e) != "NoSuchEntity":
            raise
        role = call("CreateRole", iam.create_role, RoleName="sandbox-batch-service", AssumeRolePolicyDocument="{}")
    specs = {e.name: e for e in resources.environments}
    network = _network(options, iam) if any(e.kind for e in specs.values()) else None
    environment_arns = {}
    for name in resources.compute_environments or ("sandbox",):
        spec = specs.get(name, ComputeEnvironment(name))
        arguments: dict[str, Any] = {"type": "UNMANAGED"}
        if spec.kind is not None and network is not None:
            compute: dict[str, Any] = {
                "type": spec.kind,
                "maxvCpus": spec.max_vcpus or 0,
                "subnets": [network["subnet"]],
                "securityGroupIds": [network["group"]],
            }
            if "FARGATE" not in spec.kind:
                types = [t for t in spec.instance_types if "." in t] or ["m6i.xlarge"]  # families: a size of each
                compute.update(minvCpus=0, instanceTypes=types, instanceRole=network["profile"])
            arguments = {"type": "MANAGED", "computeResources": compute}
        created = call(
            "CreateComputeEnvironment",
            batch.create_compute_environment,
            computeEnvironmentName=name,
            state=spec.state,
            serviceRole=role["Role"]["Arn"],
            **arguments,
        )
        environment_arns[name] = created["computeEnvironmentArn"]
    fallback = next(iter(environment_arns.values()))
    for queue in resources.queues:
        order = [
            {"order": i + 1, "computeEnvironment": environment_arns.get(ce, fallback)}
            for i, ce in enumerate(queue.compute_environments or ("sandbox",))
        ]
        extra: dict[str, Any] = {}
        if queue.time_limits:
            extra["jobStateTimeLimitActions"] = [
                {"reason": reason, "state": "RUNNABLE", "maxTimeSeconds": seconds, "action": action}
                for reason, seconds, action in queue.time_limits
            ]
        call(
            "CreateJobQueue",
            batch.create_job_queue,
            jobQueueName=queue.name,
            state="ENABLED",
            priority=queue.priority,
            computeEnvironmentOrder=order,
            **extra,
        )
    for resource in resources.consumable_resources:
        call(
            "CreateConsumableResource",
            batch.create_consumable_resource,
            consumableResourceName=resource.name,
            resourceType=resource.type,
            totalQuantity=resource.total,
        )
    for definition in resources.job_definitions:
        extra = {}
        if definition.consumables:
            extra["consumableResourceProperties"] = {
                "consumableResourceList": [
                    {"consumableResource": name, "quantity": quantity} for name, quantity in definition.consumables
                ]
            }
        call(
            "RegisterJobDefinition",
            batch.register_job_definition,
            jobDefinitionName=definition.name,
            type="container",
            platformCapabilities=[definition.platform],
            containerProperties={
                "image": definition.image,
                "command": list(definition.command),
                "resourceRequirements": [
                    {"type": "VCPU", "value": definition.vcpus},
                    {"type": "MEMORY", "value": definition.memory},
                ],
            },
            **extra,
        )
    if any(e.kind in ("FARGATE", "FARGATE_SPOT") for e in specs.values()) and options.endpoint_url:
        from batch_emulator.control import EmulatorControl

        quota = SANDBOX_FARGATE_QUOTA if fargate_quota is None else fargate_quota
        EmulatorControl(options.endpoint_url).quota(fargate=quota, fargate_spot=quota)
    _provision_images(resources, options)
    for name, value in resources.parameters:
        call("PutParameter", ssm.put_parameter, Name=name, Value=value or "-", Type="String", Overwrite=True)
    if resources.secrets:
        secretsmanager = client("secretsmanager", options)
        existing = {s["Name"] for s in call("ListSecrets", secretsmanager.list_secrets).get("SecretList", [])}
        for name in resources.secrets:
            if name not in existing:  # created without a value, like the stacks' secrets
                call("CreateSecret", secretsmanager.create_secret, Name=name, Description="filled by the operator")
    s3 = client("s3", options)
    for bucket in resources.buckets:
        location = {"LocationConstraint": PSEUDO["AWS::Region"]}
        call("CreateBucket", s3.create_bucket, Bucket=bucket, CreateBucketConfiguration=location)
    sns = client("sns", options)
    for topic in resources.topics:
        call("CreateTopic", sns.create_topic, Name=topic)  # idempotent, as AWS's
    _provision_functions(resources, options, role["Role"]["Arn"])


def _network(options: AwsOptions, iam: Any) -> dict[str, str]:
    """What managed compute environments need in moto: a subnet and security group (the network stack's stand-ins)
    and, for EC2, an instance profile."""
    ec2 = client("ec2", options)
    vpc = call("CreateVpc", ec2.create_vpc, CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = call("CreateSubnet", ec2.create_subnet, VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = call(
        "CreateSecurityGroup", ec2.create_security_group, GroupName="sandbox-compute", Description="sandbox", VpcId=vpc
    )["GroupId"]
    try:
        profile = call("GetInstanceProfile", iam.get_instance_profile, InstanceProfileName="sandbox-batch-instance")[
            "InstanceProfile"
        ]
    except AwsError as e:
        if service_error_code(e) != "NoSuchEntity":
            raise
        profile = call(
            "CreateInstanceProfile", iam.create_instance_profile, InstanceProfileName="sandbox-batch-instance"
        )["InstanceProfile"]
    return {"subnet": subnet, "group": group, "profile": profile["Arn"]}


def _provision_images(resources: Resources, options: AwsOptions) -> None:
    """Each private ECR image a job definition names, pushed to the emulator's ECR with a stable digest (the
    manifest stands for the image's name: run records then name a digest, as on AWS)."""
    from batch_emulator.images import digest_of, manifest

    images = sorted({d.image for d in resources.job_definitions if parse_ecr_image(d.image)})
    if not images:
        return
    ecr = client("ecr", options)
    for image in images:
        parsed = parse_ecr_image(image)
        assert parsed is not None
        _, _, repository, tag = parsed
        if tag.startswith("sha256:"):
            continue
        try:
            call("CreateRepository", ecr.create_repository, repositoryName=repository)
        except AwsError as e:
            if "RepositoryAlreadyExists" not in str(e):
                raise
        text = manifest(repository, tag)
        try:
            call("PutImage", ecr.put_image, repositoryName=repository, imageManifest=text, imageTag=tag,
                 imageDigest=digest_of(text))  # fmt: skip
        except AwsError as e:
            if "ImageAlreadyExists" not in str(e):
                raise


def _provision_functions(resources: Resources, options: AwsOptions, role_arn: str) -> None:
    """The renew Lambda (code that only answers: the emulator stubs its reply) and its schedule, as deployed."""
    if not resources.functions:
        return
    lam, scheduler = client("lambda", options), client("scheduler", options)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    arns = {}
    for function in resources.functions:
        created = call(
            "CreateFunction",
            lam.create_function,
            FunctionName=function.name,
            Runtime=function.runtime,
            Role=role_arn,
            Handler=function.handler,
            Code={"ZipFile": code.getvalue()},
        )
        arns[function.name] = created["FunctionArn"]
    groups = {"default"}
    for schedule in resources.schedules:
        if schedule.group not in groups:
            call("CreateScheduleGroup", scheduler.create_schedule_group, Name=schedule.group)
            groups.add(schedule.group)
        target = {"Arn": arns.get(schedule.function, schedule.function), "RoleArn": role_arn}
        if schedule.input:
            target["Input"] = schedule.input
        call(
            "CreateSchedule",
            scheduler.create_schedule,
            Name=schedule.name,
            GroupName=schedule.group,
            ScheduleExpression=schedule.expression,
            State=schedule.state,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=target,
        )


def stub_renew(url: str, options: AwsOptions, prefix: str, function_name: str, *, hours: float = 1.0) -> str:
    """The renew Lambda's stand-in: write the four credential parameters as the function would (sandbox values,
    expiring in ``hours``) and make every Invoke answer what the function answers. Returns the expiration."""
    from batch_emulator.control import EmulatorControl

    expiration = str((datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0))
    values = {"key": "SANDBOXACCESSKEY", "secret": "sandbox-secret", "token": "sandbox-token", "expiration": expiration}
    ssm = client("ssm", options)
    names = credential_parameters(prefix)
    for role, name in names.items():  # expiration last, as the function writes them
        call("PutParameter", ssm.put_parameter, Name=name, Value=values[role], Type="SecureString", Overwrite=True)
    EmulatorControl(url).stub_lambda(function_name, {"expiration": expiration, "parameters": list(names.values())})
    return expiration


def summary(resources: Resources) -> str:
    managed = [e for e in resources.environments if e.kind]
    capacity = ""
    if managed:
        capacity = " (" + ", ".join(f"{e.name} {e.kind} max {e.max_vcpus} vCPUs" for e in managed) + ")"
    text = (
        f"{len(resources.stacks)} stacks: {len(resources.compute_environments)} compute environments{capacity}, "
        f"{len(resources.queues)} job queues, {len(resources.job_definitions)} job definitions, "
        f"{len(resources.parameters)} SSM parameters"
        + (f", {len(resources.secrets)} secrets" if resources.secrets else "")
    )
    if resources.consumable_resources:
        listed = ", ".join(f"{r.name} {r.total} ({r.type.lower()})" for r in resources.consumable_resources)
        text += f", consumable resources {listed}"
    if resources.buckets:
        text += f", {len(resources.buckets)} buckets"
    if resources.functions:
        text += f", {len(resources.functions)} Lambda functions, {len(resources.schedules)} schedules"
    return text


class FunctionStandIn:
    """The venue's supervisor function, run in this process: moto cannot run a Lambda function here (it would need
    Docker), so the stacks' rules that invoke it are created with an SQS queue as their target instead, and each
    event the queue receives is handed to the function's own handler, as Lambda would (at least once, in no order).

    Lives as long as the sandbox command; with ``--keep --supervise cloud`` a detached process
    (:func:`start_function_detached`) takes over and lives as long as the kept emulator (``patient``: an error
    while the emulator still answers is waited out; the process ends once the emulator is gone)."""

    def __init__(
        self, resources: Resources, options: AwsOptions, prefix: str, project: Path, *, patient: bool = False
    ) -> None:
        self.options, self.prefix, self.patient = options, prefix, patient
        self.function = supervisor_function(prefix)
        self.rules = [r for r in resources.rules if self.function in r.functions]
        self.handler = _load_handler(project / "lambdas" / "supervisor" / "handler.py")
        self.invocations = 0
        self.last_event = time.monotonic()  # when the function was last invoked (a rehearsal that hears nothing stops)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue = ""

    def __enter__(self) -> FunctionStandIn:
        if not any(r.pattern == supervisor_event_pattern(self.prefix) for r in self.rules):
            raise SandboxError(
                f"the templates hold no rule sending the hand-over event to {self.function}: synthesize the app "
                "again (leave out --template-dir)"
            )
        sqs, events = client("sqs", self.options), client("events", self.options)
        self._queue = call("CreateQueue", sqs.create_queue, QueueName=f"{self.function}-events")["QueueUrl"]
        arn = call("GetQueueAttributes", sqs.get_queue_attributes, QueueUrl=self._queue,
                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # fmt: skip
        for rule in self.rules:
            call("PutRule", events.put_rule, Name=rule.name, EventPattern=json.dumps(rule.pattern))
            call("PutTargets", events.put_targets, Rule=rule.name, Targets=[{"Id": "function", "Arn": arn}])
        ssm = client("ssm", self.options)
        ledger = call("GetParameter", ssm.get_parameter, Name=supervisor_parameter(self.prefix, "ledger"))
        self.ledger = str(ledger["Parameter"]["Value"])
        self.topic = f"arn:aws:sns:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:{alerts_topic(self.prefix)}"
        self._thread = threading.Thread(target=self._serve, name="supervisor-function", daemon=True)
        self._thread.start()
        return self

    def silent_for(self) -> float:
        """Seconds since the function was last invoked."""
        return time.monotonic() - self.last_event

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _serve(self) -> None:
        # A short deadline: when the emulator shuts down, the poll should end, not retry for a minute.
        sqs = client("sqs", replace(self.options, deadline=2.0))
        # Kept (patient): an emulator that went away must not hold the process for a minute of retries.
        options = replace(self.options, deadline=10.0) if self.patient else self.options
        s3, sns = client("s3", options), client("sns", options)
        batch = Batch(options)
        ledger = Ledger(open_store(self.ledger, options))
        while not self._stop.is_set():
            try:
                answer = call(
                    "ReceiveMessage",
                    sqs.receive_message,
                    QueueUrl=self._queue,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                )
            except Exception:  # the emulator is shutting down (or, when patient, only slow to answer)
                if self.patient and emulator_alive(str(self.options.endpoint_url)):
                    time.sleep(1.0)
                    continue
                return
            for message in answer.get("Messages", []):
                self.invocations += 1
                self.last_event = time.monotonic()
                try:
                    self.handler.handle(
                        json.loads(message["Body"]), ledger=ledger, batch=batch, s3=s3, sns=sns, topic=self.topic,
                        token=f"sandbox-function:{self.invocations}",
                    )  # fmt: skip
                except Exception as e:  # Lambda would retry the event, then dead-letter it: say so and go on
                    print(f"supervisor function stand-in: {type(e).__name__}: {e}", file=sys.stderr)
                call("DeleteMessage", sqs.delete_message, QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])

    def wait(self) -> None:
        """Until the function stops serving (the emulator is gone)."""
        if self._thread is not None:
            self._thread.join()


def emulator_alive(url: str) -> bool:
    """The emulator at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/_emulator/health", timeout=2) as response:  # noqa: S310 - the sandbox's
            return bool(response.status == 200)
    except OSError:
        return False


def keep_supervising(url: str, templates: Path, prefix: str, project: Path) -> None:
    """``sandbox --keep --supervise cloud``'s background process: the venue's supervisor function on the kept
    emulator's rules' events (runs handed over later, their Batch events), for as long as the emulator runs."""
    resources = resources_from_templates(read_templates(templates))
    with FunctionStandIn(resources, AwsOptions(endpoint_url=url), prefix, project, patient=True) as function:
        print(f"{function.function} supervises runs on {url} (ledger {function.ledger})", flush=True)
        function.wait()
    print(f"the emulator at {url} is gone: {function.function} stops", flush=True)


def start_function_detached(workdir: Path, url: str, templates: Path, prefix: str, project: Path) -> int:
    """Start :func:`keep_supervising` in its own session, so it outlives this process; its pid."""
    log_path = workdir / "supervisor-function.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "confluence_runtime.venue.sandbox", "keep-supervising", url, str(templates),
             prefix, str(project)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **SANDBOX_CREDENTIALS, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    return process.pid


def _load_handler(path: Path) -> Any:
    """The function's handler module from the checkout (lambdas/ is bundled into the function, not installed)."""
    if not path.is_file():
        raise SandboxError(f"{path} not found: run the sandbox from the repository checkout")
    spec = importlib.util.spec_from_file_location("sandbox_supervisor_handler", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# The emulator (batch_emulator, on moto) is the optional [sandbox] extra: the functions below import it when a
# sandbox starts, so the rest of the runtime and the CLI load without it.


@contextlib.contextmanager
def local_emulator() -> Iterator[str]:
    """An emulator subprocess for the duration of the block; its URL."""
    from batch_emulator.server import start_emulator

    with start_emulator() as emulator:
        yield emulator.url


def set_job_seconds(url: str, seconds: float) -> None:
    """How long each job 'runs' in the emulator (and a short queue wait)."""
    from batch_emulator.control import EmulatorControl

    EmulatorControl(url).set_durations(default=seconds, queue=0.02)


def start_detached(workdir: Path) -> tuple[str, int]:
    """Start the emulator in its own session so it outlives this process (``sandbox --keep``); (url, pid)."""
    from batch_emulator.server import READY_LINE, _wait_healthy

    log_path = workdir / "emulator.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "batch_emulator", "serve", "--host", "127.0.0.1", "--port", "0"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if READY_LINE in line:
                url = f"http://127.0.0.1:{int(line.rsplit(':', 1)[1])}"
                _wait_healthy(url, 30)
                return url, process.pid
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise SandboxError(f"the emulator did not start; see {log_path}")


if __name__ == "__main__" and sys.argv[1:2] == ["keep-supervising"] and len(sys.argv) == 6:
    keep_supervising(sys.argv[2], Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
