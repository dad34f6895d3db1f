"""The sandbox: what the CDK app would deploy, provisioned in the local Batch emulator instead of AWS.

Names come from the synthesized templates themselves (``cdk.out``), never from a second list: the job queues,
compute environments, job definitions and SSM parameters of every stack are turned into API calls against the
emulator. The CDK app runs as a subprocess, so the runtime still never imports aws_cdk.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aws import AwsOptions, call, client
from .config import Config
from .errors import ConfluenceError
from .names import compute_environment

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


@dataclass(frozen=True)
class Queue:
    name: str
    priority: int
    compute_environments: tuple[str, ...]


@dataclass(frozen=True)
class JobDefinition:
    name: str
    image: str
    command: tuple[str, ...]
    vcpus: str
    memory: str


@dataclass(frozen=True)
class Resources:
    compute_environments: tuple[str, ...] = ()
    queues: tuple[Queue, ...] = ()
    job_definitions: tuple[JobDefinition, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    stacks: tuple[str, ...] = field(default=())


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


def _resource_names(resources: Mapping[str, Any]) -> dict[str, str]:
    """Logical id -> physical name, for the resources whose name the template sets."""
    name_keys = (
        "JobQueueName", "ComputeEnvironmentName", "JobDefinitionName", "Name", "FunctionName", "RepositoryName"
    )
    names = {}
    for logical, resource in resources.items():
        properties = resource.get("Properties", {})
        for key in name_keys:
            if isinstance(properties.get(key), str):
                names[logical] = properties[key]
                break
    return names


def _last_segment(arn_or_name: Any) -> str:
    """A compute environment's name from its ARN (``…:compute-environment/NAME``) or the name itself."""
    return str(arn_or_name).rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def resources_from_templates(templates: Mapping[str, Mapping[str, Any]]) -> Resources:
    """The Batch queues, compute environments, job definitions and SSM parameters the templates declare."""
    environments: list[str] = []
    queues: list[Queue] = []
    definitions: list[JobDefinition] = []
    parameters: list[tuple[str, str]] = []
    for template in templates.values():
        resources = template.get("Resources", {})
        names = _resource_names(resources)
        for logical, resource in resources.items():
            kind, properties = resource.get("Type"), resource.get("Properties", {})
            if kind == "AWS::Batch::ComputeEnvironment":
                environments.append(names.get(logical, logical))
            elif kind == "AWS::Batch::JobQueue":
                order = sorted(properties.get("ComputeEnvironmentOrder", []), key=lambda o: o.get("Order", 0))
                queues.append(
                    Queue(
                        name=resolve(properties.get("JobQueueName", logical), names),
                        priority=int(properties.get("Priority", 1)),
                        compute_environments=tuple(
                            _last_segment(resolve(o["ComputeEnvironment"], names)) for o in order
                        ),
                    )
                )
            elif kind == "AWS::Batch::JobDefinition":
                container = resolve(properties.get("ContainerProperties", {}), names)
                requirements = {r["Type"]: str(r["Value"]) for r in container.get("ResourceRequirements", [])}
                definitions.append(
                    JobDefinition(
                        name=resolve(properties.get("JobDefinitionName", logical), names),
                        image=str(container.get("Image", "busybox")),
                        command=tuple(str(c) for c in container.get("Command", []) or []),
                        vcpus=requirements.get("VCPU", "0.25"),
                        memory=requirements.get("MEMORY", "512"),
                    )
                )
            elif kind == "AWS::SSM::Parameter":
                value = resolve(properties.get("Value", ""), names)
                parameters.append((str(resolve(properties.get("Name", logical), names)), str(value)))
    return Resources(
        compute_environments=tuple(environments),
        queues=tuple(queues),
        job_definitions=tuple(definitions),
        parameters=tuple(parameters),
        stacks=tuple(templates),
    )


def resources_from_config(config: Config, *, image: str = "public.ecr.aws/docker/library/busybox:latest") -> Resources:
    """The Batch resources a config implies, for tests and benchmarks that skip synthesizing the CDK app."""
    definitions = {m.job_definition: m for m in config.modules}
    environment = compute_environment(config.prefix, spot=False)
    return Resources(
        compute_environments=(environment,),
        queues=tuple(Queue(name, 10, (environment,)) for name in config.job_queues),
        job_definitions=tuple(
            JobDefinition(name, image, ("true",), "0.25", "512")
            for name in [*definitions, config.barrier_job_definition]
        ),
    )


def provision(resources: Resources, options: AwsOptions) -> None:
    """Create the resources in the emulator, the way CloudFormation would have created them on AWS."""
    iam, batch, ssm = client("iam", options), client("batch", options), client("ssm", options)
    # moto, like older AWS accounts, wants a service role on every compute environment.
    try:
        role = iam.get_role(RoleName="sandbox-batch-service")
    except iam.exceptions.NoSuchEntityException:
        role = call("CreateRole", iam.create_role, RoleName="sandbox-batch-service", AssumeRolePolicyDocument="{}")
    environment_arns = {}
    for name in resources.compute_environments or ("sandbox",):
        created = call(
            "CreateComputeEnvironment",
            batch.create_compute_environment,
            computeEnvironmentName=name,
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role["Role"]["Arn"],
        )
        environment_arns[name] = created["computeEnvironmentArn"]
    fallback = next(iter(environment_arns.values()))
    for queue in resources.queues:
        order = [
            {"order": i + 1, "computeEnvironment": environment_arns.get(ce, fallback)}
            for i, ce in enumerate(queue.compute_environments or ("sandbox",))
        ]
        call(
            "CreateJobQueue",
            batch.create_job_queue,
            jobQueueName=queue.name,
            state="ENABLED",
            priority=queue.priority,
            computeEnvironmentOrder=order,
        )
    for definition in resources.job_definitions:
        call(
            "RegisterJobDefinition",
            batch.register_job_definition,
            jobDefinitionName=definition.name,
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties={
                "image": definition.image,
                "command": list(definition.command),
                "resourceRequirements": [
                    {"type": "VCPU", "value": definition.vcpus},
                    {"type": "MEMORY", "value": definition.memory},
                ],
            },
        )
    for name, value in resources.parameters:
        call("PutParameter", ssm.put_parameter, Name=name, Value=value or "-", Type="String", Overwrite=True)


def summary(resources: Resources) -> str:
    return (
        f"{len(resources.stacks)} stacks: {len(resources.compute_environments)} compute environments, "
        f"{len(resources.queues)} job queues, {len(resources.job_definitions)} job definitions, "
        f"{len(resources.parameters)} SSM parameters"
    )



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
            [sys.executable, "-m", "batch_emulator", "--host", "127.0.0.1", "--port", "0"],
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
