"""Synth-time checks of confluence.yaml against what AWS will accept, reported like the config loader does.

The loader (confluence_runtime.config) already checks what the runtime needs; these are the rules only the
infrastructure cares about: Fargate CPU/memory pairs, names that become ECR repositories, and the per-region
AWS Batch quotas that every venue of an account shares. Each problem names the yaml key and its line (the loader
recorded it: ``Config.line``), so a bad file fails ``cdk synth`` with a message pointing at the line to fix.
app.py runs these checks once per synthesis, before any stack exists.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from confluence_runtime import names
from confluence_runtime.config import FARGATE_MEMORY, Config, Module
from confluence_runtime.errors import ConfigError, Problem
from stacks.constructs.retention import RETENTION_DAYS

DEFAULT_VCPUS = 0.25
EC2_DEFAULT_VCPUS = 1.0
EC2_DEFAULT_MEMORY = 2048
# jobStateTimeLimitActions.maxTimeSeconds
RUNNABLE_TIMEOUT_RANGE = (600, 86400)

# ECR: lowercase components separated by one '.', '_' or '-' (also what CDK's Repository validates), 2..256.
ECR_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")


@dataclass(frozen=True)
class Size:
    vcpus: float
    memory: int


def _vcpu_text(vcpus: float) -> str:
    return f"{vcpus:g}"


def allowed_memory(vcpus: float) -> tuple[int, ...]:
    """Fargate's memories for ``vcpus`` (the runtime's table, config.FARGATE_MEMORY: one table for both halves)."""
    return FARGATE_MEMORY[vcpus]


def _allowed_text(vcpus: float) -> str:
    """``2048-8192 in 1024 steps`` (with an en dash), or the list when the steps differ (0.25 vCPU: 512, 1024, 2048)."""
    memories = allowed_memory(vcpus)
    steps = {b - a for a, b in itertools.pairwise(memories)}
    if len(steps) != 1:
        return ", ".join(str(m) for m in memories)
    return f"{memories[0]}–{memories[-1]} in {steps.pop()} steps"  # noqa: RUF001 - the en dash of the message


def fargate_size(module: Module) -> Size:
    """The module's size with defaults filled in: 0.25 vCPU, and the smallest memory Fargate allows for it."""
    vcpus = module.vcpus if module.vcpus is not None else DEFAULT_VCPUS
    memory = module.memory
    if memory is None and vcpus in FARGATE_MEMORY:
        memory = allowed_memory(vcpus)[0]
    return Size(vcpus=vcpus, memory=memory or 0)


def ecr_repository_name(prefix: str, module: Module) -> str:
    return names.ecr_repository(prefix, module.name)


def _module_line(config: Config, module: Module, key: str) -> int | None:
    """The line setting ``key`` for the module: its own, else the defaults', else the module's own line."""
    return config.line("stages", module.stage, module.name, key) or config.line("defaults", key) or module.line


def ec2_size(module: Module) -> Size:
    """An EC2 module's size with defaults filled in: 1 vCPU (EC2 reserves whole vCPUs) and 2048 MiB."""
    vcpus = module.vcpus if module.vcpus is not None else EC2_DEFAULT_VCPUS
    return Size(vcpus=vcpus, memory=module.memory if module.memory is not None else EC2_DEFAULT_MEMORY)


def _ec2_size_problems(config: Config, module: Module) -> list[Problem]:
    size = ec2_size(module)
    largest = config.infrastructure.ec2_max_vcpus
    if size.vcpus != int(size.vcpus):
        message = f"{_vcpu_text(size.vcpus)} vCPU: a job on EC2 reserves whole vCPUs (1 or more)"
    elif size.vcpus > largest:
        message = (
            f"{_vcpu_text(size.vcpus)} vCPU is more than the EC2 compute environments may ever run "
            f"(infrastructure.ec2_max_vcpus: {largest}); the job would wait forever"
        )
    else:
        return []
    return [Problem(config.source, _module_line(config, module, "vcpus"), f"{module.key}.vcpus", message)]


def _size_problems(config: Config, module: Module) -> list[Problem]:
    if module.platform == names.PLATFORM_EC2:
        return _ec2_size_problems(config, module)
    size = fargate_size(module)
    if size.vcpus not in FARGATE_MEMORY:
        allowed = ", ".join(_vcpu_text(v) for v in FARGATE_MEMORY)
        return [
            Problem(
                config.source,
                _module_line(config, module, "vcpus"),
                f"{module.key}.vcpus",
                f"{_vcpu_text(size.vcpus)} vCPU is not a valid Fargate size (allowed {allowed})",
            )
        ]
    if size.memory in allowed_memory(size.vcpus):
        return []
    allowed = _allowed_text(size.vcpus)
    return [
        Problem(
            config.source,
            _module_line(config, module, "memory"),
            f"{module.key}.memory",
            f"{size.memory} MiB is not a valid Fargate size for {_vcpu_text(size.vcpus)} vCPU (allowed {allowed})",
        )
    ]


def _name_problems(config: Config, module: Module) -> list[Problem]:
    if module.image is not None:
        return []
    repository = ecr_repository_name(config.prefix, module)
    if ECR_NAME_RE.match(repository) and len(repository) <= 256:
        return []
    return [
        Problem(
            config.source,
            module.line,
            module.key,
            f"module name {module.name!r} makes the ECR repository name {repository!r}, which AWS rejects "
            "(lowercase letters and digits, one '.', '_' or '-' between them); rename the module or set image",
        )
    ]


# ECR: a tag is 1-128 letters, digits, '_', '.', '-' (not starting with '.' or '-'); a digest is sha256:<64 hex>.
IMAGE_TAG_RE = re.compile(r"^(?:sha256:[0-9a-f]{64}|[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def _image_problems(config: Config, module: Module, image_tag: str | None) -> list[Problem]:
    if module.image is not None:
        return []
    tag = image_tag or module.image_tag
    repository = ecr_repository_name(config.prefix, module)
    line = config.line("stages", module.stage, module.name, "image_tag") or config.line("defaults", "image_tag")
    if tag is None:
        return [
            Problem(
                config.source,
                module.line,
                f"{module.key}.image_tag",
                f"missing: job definitions run an explicit tag or digest of {repository}"
                " (set image_tag in defaults or the module, or -c imageTag=TAG)",
            )
        ]
    if IMAGE_TAG_RE.match(tag):
        return []
    where = "context imageTag" if image_tag else f"{module.key}.image_tag"
    return [
        Problem(
            config.source,
            None if image_tag else line or module.line,
            where,
            f"{tag!r} is neither an ECR image tag (letters, digits, '_', '.', '-', at most 128) nor a sha256: digest",
        )
    ]


def _quota_problems(config: Config, *, compute_environments: int, quota: int, venues: int) -> list[Problem]:
    budget = quota // venues
    problems = []
    queues = len(config.venue_queue_compute) + 1  # On-Demand twins included, and the efs tool's queue
    if queues > budget:
        problems.append(
            Problem(
                config.source,
                config.line("queue_mode"),
                "queue_mode",
                f"{queues} job queues exceed this venue's budget of {budget} (AWS allows {quota} per region, "
                f"shared by {venues} venues: context confluence:batchQuotaPerRegion / confluence:venuesPerRegion); "
                "set queue_mode: shared for one queue per venue, or share job_queue names between stages",
            )
        )
    if compute_environments > budget:
        problems.append(
            Problem(
                config.source,
                None,
                "infrastructure",
                f"{compute_environments} compute environments exceed this venue's budget of {budget} "
                f"(AWS allows {quota} per region, shared by {venues} venues)",
            )
        )
    return problems


def _infrastructure_problems(config: Config) -> list[Problem]:
    problems = []
    timeout = config.infrastructure.runnable_timeout
    low, high = RUNNABLE_TIMEOUT_RANGE
    if not low <= timeout <= high:
        problems.append(
            Problem(
                config.source,
                config.line("infrastructure", "runnable_timeout"),
                "infrastructure.runnable_timeout",
                f"{timeout} s is outside what AWS Batch accepts for a job state time limit ({low}..{high} s)",
            )
        )
    days = config.infrastructure.log_retention_days
    if days not in RETENTION_DAYS:
        problems.append(
            Problem(
                config.source,
                config.line("infrastructure", "log_retention_days"),
                "infrastructure.log_retention_days",
                f"{days} is not a CloudWatch Logs retention (allowed: {', '.join(map(str, RETENTION_DAYS))})",
            )
        )
    return problems


# EC2 Spot: AWS advises flexibility across many instance types; fewer pools mean more reclaims and waits.
MIN_SPOT_FAMILIES = 6


def _network_problems(config: Config) -> list[Problem]:
    """A module that declares ``internet: true`` reaches hosts outside AWS: only a NAT gateway gets it there (the
    VPC endpoints reach AWS services alone), so without one it would fail at run time, not at deploy."""
    if config.infrastructure.nat_gateway:
        return []
    return [
        Problem(
            config.source,
            _module_line(config, module, "internet"),
            f"{module.key}.internet",
            "true needs infrastructure.nat_gateway: true (without a NAT gateway the jobs reach AWS services "
            "through VPC endpoints only); set nat_gateway: true, or internet: false if the module needs no "
            "host outside AWS",
        )
        for module in config.modules
        if module.internet
    ]


def _spot_problems(config: Config) -> list[Problem]:
    classes = config.infrastructure.ec2_instance_classes
    if not any(m.compute == names.EC2_SPOT for m in config.modules) or "optimal" in classes:
        return []
    families = list(dict.fromkeys(c.split(".", 1)[0] for c in classes))
    if len(families) >= MIN_SPOT_FAMILIES:
        return []
    return [
        Problem(
            config.source,
            config.line("infrastructure", "ec2_instance_classes"),
            "infrastructure.ec2_instance_classes",
            f"{len(families)} instance families ({', '.join(families)}) for EC2 Spot; expected at least "
            f"{MIN_SPOT_FAMILIES} (for example m6i, m6a, m5, c6i, c6a, c5, r6i, r6a, r5), so that Spot finds "
            "capacity when one pool is reclaimed",
        )
    ]


def _prefix_problems(config: Config) -> list[Problem]:
    """The submitter and supervisor may submit to every queue and definition named ``{prefix}-*``
    (stacks/constructs/submit_grant.py): that must never take in another venue's names, as it would if one venue's
    prefix were another's followed by '-' (confluence-dev, confluence-dev-x). With exactly one '-' in every deployed
    prefix, a longer prefix starting with ``{prefix}-`` would have two."""
    if config.prefix.count("-") == 1:
        return []
    return [
        Problem(
            config.source,
            config.line("prefix"),
            "prefix",
            f"{config.prefix!r} has {config.prefix.count('-')} '-'; a deployed prefix has exactly one (NAME-VENUE, "
            "for example confluence2-{venue}), so that no venue's names {prefix}-* take in another venue's",
        )
    ]


def _reserved_problems(config: Config) -> list[Problem]:
    """Names the stack gives its own resources (the efs tool's queue and definitions, the barriers)."""
    problems = []
    taken = {names.efs_queue(config.prefix): "the efs tool's queue"}
    taken[names.on_demand_ec2_queue(config.prefix)] = "the venue's EC2 On-Demand queue for Spot retries"
    taken.update({names.efs_job_definition(config.prefix, a): "an efs tool job definition" for a in names.EFS_ACTIONS})
    taken.update(
        {
            names.barrier_definition(config.prefix, p): "a barrier job definition"
            for p in (names.PLATFORM_FARGATE, names.PLATFORM_EC2)
        }
    )
    for module in config.modules:
        for key, name in (("job_queue", module.job_queue), ("job_definition", module.job_definition)):
            if name in taken:
                problems.append(
                    Problem(
                        config.source,
                        _module_line(config, module, key),
                        f"{module.key}.{key}",
                        f"{name!r} is {taken[name]}; rename the stage, module or {key}",
                    )
                )
    return problems


def other_venue_problems(config: Config, other_prefixes: Mapping[str, str]) -> list[Problem]:
    """A ``job_queue`` or ``job_definition`` inside another deploy venue's names (``{its prefix}-*``): this venue's
    submitter and supervisor would be granted SubmitJob on that venue's queue or definition (with its job roles,
    buckets, secrets and mounts), and a deploy would register a revision of its definition. ``other_prefixes``:
    venue -> prefix of every other deploy venue. Pure, so ``plan`` can refuse the same file the same way."""
    problems = []
    for module in config.modules:
        for key, name in (("job_queue", module.job_queue), ("job_definition", module.job_definition)):
            for venue, prefix in other_prefixes.items():
                if prefix != config.prefix and names.in_venue_names(prefix, name):
                    problems.append(
                        Problem(
                            config.source,
                            _module_line(config, module, key),
                            f"{module.key}.{key}",
                            f"{name!r} is one of venue {venue}'s names ({names.venue_names(prefix)}), not this "
                            f"venue's; expected a name of {config.prefix} ({names.venue_names(config.prefix)}) or "
                            "of no venue",
                        )
                    )
    return problems


def compute_environments(config: Config) -> tuple[tuple[bool, bool], ...]:
    """Every compute environment of the venue as ``(ec2, spot)``: Fargate On-Demand always (barriers and the efs
    tool run there), Fargate Spot unless switched off, and the EC2 ones the modules' compute kinds need."""
    fargate_spot = config.infrastructure.fargate_spot
    kinds = [(False, True)] if fargate_spot else []
    kinds.append((False, False))
    for compute in config.compute_kinds:
        kinds += names.queue_environments(compute, fargate_spot=fargate_spot)
    return tuple(dict.fromkeys(kinds))


def compute_environment_count(config: Config) -> int:
    return len(compute_environments(config))


def check_config(
    config: Config,
    *,
    compute_environments: int,
    quota: int,
    venues: int,
    image_tag: str | None = None,
    other_prefixes: Mapping[str, str] | None = None,
) -> None:
    """Raise ConfigError listing every way this configuration would fail to deploy (``image_tag``: -c imageTag;
    ``other_prefixes``: the other deploy venues' prefixes, whose names this venue must not use)."""
    problems: list[Problem] = []
    problems += other_venue_problems(config, other_prefixes or {})
    for module in config.modules:
        problems += _size_problems(config, module)
        problems += _name_problems(config, module)
        problems += _image_problems(config, module, image_tag)
    problems += _infrastructure_problems(config)
    problems += _network_problems(config)
    problems += _spot_problems(config)
    problems += _prefix_problems(config)
    problems += _reserved_problems(config)
    problems += _quota_problems(config, compute_environments=compute_environments, quota=quota, venues=venues)
    if problems:
        raise ConfigError(problems)
