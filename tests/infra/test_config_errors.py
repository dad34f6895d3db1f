"""A configuration AWS would reject fails the build with a message naming the yaml file, line and key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
import pytest

from confluence_runtime.errors import ConfigError

from .conftest import CONFIG

SHIPPED = CONFIG.read_text(encoding="utf-8")


def write(tmp_path: Path, old: str, new: str) -> Path:
    assert SHIPPED.count(old) == 1, old
    path = tmp_path / "confluence.yaml"
    path.write_text(SHIPPED.replace(old, new), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def problems(build: Callable[..., cdk.App], path: Path, **context: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build(path, **context)
    return [str(p) for p in caught.value.problems]


def test_memory_outside_the_fargate_range_for_its_vcpus(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    path = write(tmp_path, "      vcpus: 16\n      memory: 65536", "      vcpus: 16\n      memory: 70000")
    line = line_of(path, "memory: 70000")
    assert problems(build, path) == [
        f"{path}:{line}: stages.output.output.memory: 70000 MiB is not a valid Fargate size for 16 vCPU "
        "(allowed 32768–122880 in 8192 steps)"  # noqa: RUF001 - the en dash is part of the message
    ]


def test_vcpus_fargate_does_not_offer(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    path = write(tmp_path, "      vcpus: 4\n      memory: 16384", "      vcpus: 3\n      memory: 16384")
    line = line_of(path, "vcpus: 3")
    assert problems(build, path) == [
        f"{path}:{line}: stages.priors.priors.vcpus: 3 vCPU is not a valid Fargate size "
        "(allowed 0.25, 0.5, 1, 2, 4, 8, 16)"
    ]


def test_quarter_vcpu_has_three_sizes_only(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "      vcpus: 0.25\n      memory: 512\n      mounts",
        "      vcpus: 0.25\n      memory: 1536\n      mounts",
    )
    line = line_of(path, "memory: 1536")
    assert problems(build, path) == [
        f"{path}:{line}: stages.flpe.hivdi.memory: 1536 MiB is not a valid Fargate size for 0.25 vCPU "
        "(allowed 512, 1024, 2048)"
    ]


def test_unknown_venue(build: Callable[..., cdk.App]) -> None:
    assert problems(build, CONFIG, venue="prod") == [
        f"{CONFIG}: venue: unknown venue 'prod'; expected one of: dev, dev1, dev2, ops"
    ]


def test_module_name_that_makes_an_invalid_repository_name(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    path = write(tmp_path, "    hivdi:\n", "    HiVDI:\n")
    line = line_of(path, "HiVDI:")
    assert problems(build, path) == [
        f"{path}:{line}: stages.flpe.HiVDI: module name 'HiVDI' makes the ECR repository name "
        "'confluence-dev-HiVDI', which AWS rejects (lowercase letters and digits, one '.', '_' or '-' between them); "
        "rename the module or set image"
    ]


def test_module_name_that_is_no_batch_name_at_all(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    path = write(tmp_path, "    hivdi:\n", "    hi.vdi:\n")
    line = line_of(path, "hi.vdi:")
    found = problems(build, path)
    assert found[0] == (
        f"{path}:{line}: stages.flpe.hi.vdi: module name 'hi.vdi' is not a valid AWS Batch name (at most 128 "
        "characters: a letter or digit, then letters, digits, '-' or '_')"
    )


def test_more_queues_than_the_venue_budget(build: Callable[..., cdk.App]) -> None:
    assert problems(build, CONFIG, **{"confluence:venuesPerRegion": 4}) == [
        f"{CONFIG}: queue_mode: 14 job queues exceed this venue's budget of 12 (AWS allows 50 per region, shared by "
        "4 venues: context confluence:batchQuotaPerRegion / confluence:venuesPerRegion); set queue_mode: shared "
        "for one queue per venue, or share job_queue names between stages"
    ]


def test_runnable_timeout_outside_what_batch_accepts(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    path = write(tmp_path, "\nstages:\n", "\ninfrastructure:\n  runnable_timeout: 60\n\nstages:\n")
    line = line_of(path, "runnable_timeout: 60")
    assert problems(build, path) == [
        f"{path}:{line}: infrastructure.runnable_timeout: 60 s is outside what AWS Batch accepts for a job state "
        "time limit (600..86400 s)"
    ]


def test_log_retention_cloudwatch_does_not_offer(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    path = write(tmp_path, "\nstages:\n", "\ninfrastructure:\n  log_retention_days: 45\n\nstages:\n")
    line = line_of(path, "log_retention_days: 45")
    assert problems(build, path) == [
        f"{path}:{line}: infrastructure.log_retention_days: 45 is not a CloudWatch Logs retention (allowed: 1, 3, 5, "
        "7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)"
    ]


def test_every_problem_is_reported_at_once(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    text = SHIPPED.replace("      vcpus: 16\n      memory: 65536", "      vcpus: 16\n      memory: 70000")
    path = tmp_path / "confluence.yaml"
    path.write_text(text.replace("    hivdi:\n", "    HiVDI:\n"), encoding="utf-8")
    assert [p.split(": ")[1] for p in problems(build, path)] == ["stages.flpe.HiVDI", "stages.output.output.memory"]


def test_ec2_modules_reserve_whole_vcpus_within_the_environments(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    # GIVEN two modules moved to EC2: one with a Fargate-only size, one larger than the EC2 environments may run
    path = write(tmp_path, "      vcpus: 0.25\n      memory: 512\n      mounts",
                 "      vcpus: 0.25\n      memory: 512\n      compute: ec2_spot\n      mounts")  # fmt: skip
    text = path.read_text().replace("      vcpus: 16\n      memory: 65536", "      vcpus: 96\n      memory: 70000\n"
                                    "      compute: ec2")  # fmt: skip
    path.write_text("infrastructure: {ec2_max_vcpus: 64}\n" + text)
    # THEN the Fargate table no longer applies (70000 MiB is fine on EC2), but whole vCPUs and the maximum do
    assert problems(build, path) == [
        f"{path}:{line_of(path, 'compute: ec2_spot') - 2}: stages.flpe.hivdi.vcpus: 0.25 vCPU: a job on EC2 reserves whole "
        "vCPUs (1 or more)",
        f"{path}:{line_of(path, 'vcpus: 96')}: stages.output.output.vcpus: 96 vCPU is more than the EC2 compute "
        "environments may ever run (infrastructure.ec2_max_vcpus: 64); the job would wait forever",
    ]


def test_quota_counts_ec2_queues_and_compute_environments(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    # Each EC2 kind adds its own queues (a queue holds one platform) and compute environments (Spot and On-Demand);
    # the efs tool's queue counts too, and the EC2 On-Demand queue a supervised run's Spot retries go to
    path = write(tmp_path, "      vcpus: 0.25\n      memory: 512\n      mounts",
                 "      vcpus: 1\n      memory: 512\n      compute: ec2_spot\n      mounts")  # fmt: skip
    assert problems(build, path, **{"confluence:batchQuotaPerRegion": 9, "confluence:venuesPerRegion": 3}) == [
        f"{path}: queue_mode: 16 job queues exceed this venue's budget of 3 (AWS allows 9 per region, shared by "
        "3 venues: context confluence:batchQuotaPerRegion / confluence:venuesPerRegion); set queue_mode: shared "
        "for one queue per venue, or share job_queue names between stages",
        f"{path}: infrastructure: 4 compute environments exceed this venue's budget of 3 (AWS allows 9 per region, "
        "shared by 3 venues)",
    ]


def test_the_same_module_in_two_stages_is_a_problem_not_a_traceback(
    build: Callable[..., cdk.App], tmp_path: Path
) -> None:
    # One name is one job definition, image repository and log group: a second stage using it used to kill synth
    # with a construct-id clash.
    path = write(tmp_path, "  priors:\n    priors:\n", "  priors:\n    hivdi: {}\n    priors:\n")
    line = line_of(path, "hivdi:")  # the first hivdi is now the one in priors
    second = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text == "    hivdi:")
    assert problems(build, path) == [
        f"{path}:{second}: stages.flpe.hivdi: module 'hivdi' is also in stage 'priors'; a module name may appear in "
        "one stage only (it names the job definition, image repository and log group)"
    ]
    assert line < second


@pytest.mark.parametrize(("prefix", "expanded"), [("my-confluence-{venue}", "my-confluence-dev"), ("c{venue}", "cdev")])
def test_a_deployed_prefix_has_exactly_one_hyphen(
    build: Callable[..., cdk.App], tmp_path: Path, prefix: str, expanded: str
) -> None:
    """The submitter and supervisor may submit to {prefix}-* (stacks/constructs/submit_grant.py): a venue
    my-confluence-dev would otherwise share my-confluence-* with a venue my-confluence, and cdev-x-* would be
    cdev's."""
    path = write(tmp_path, "prefix: confluence-dev ", f"prefix: {prefix} ")
    line = line_of(path, f"prefix: {prefix}")
    assert problems(build, path) == [
        f"{path}:{line}: prefix: {expanded!r} has {expanded.count('-')} '-'; a deployed prefix has exactly one "
        "(NAME-VENUE, for example confluence2-{venue}), so that no venue's names {prefix}-* take in another venue's"
    ]


@pytest.mark.parametrize(
    ("key", "name"), [("job_queue", "confluence-ops-input"), ("job_definition", "confluence-ops-input")]
)
def test_another_deploy_venues_queue_or_definition_is_refused(
    build: Callable[..., cdk.App], tmp_path: Path, key: str, name: str
) -> None:
    """dev1 given ops' names would grant dev1's submitter and supervisor SubmitJob on them (ops' job roles, buckets,
    secrets, EFS), and deploying would register a revision of ops' definition."""
    old = '      arguments: [-i, "-235", -r, reaches.json, -c, unconstrained, -d, /mnt/data/input]\n'
    path = write(tmp_path, old, f"{old}      {key}: {name}\n")
    line = line_of(path, f"{key}: {name}")
    assert problems(build, path, venue="dev1") == [
        f"{path}:{line}: stages.input.input.{key}: {name!r} is one of venue ops's names (confluence-ops-*), not this "
        "venue's; expected a name of confluence-dev1 (confluence-dev1-*) or of no venue"
    ]
    # The venue's own names, and names of no venue, are fine: ops itself synthesizes the same file.
    assert build(path, venue="ops") is not None


def test_a_module_that_needs_the_internet_without_a_nat_gateway_is_refused(
    build: Callable[..., cdk.App], tmp_path: Path
) -> None:
    old = "      secrets: {HYDROCRON_API_KEY: hydrocron-api-key}   # the raised Hydrocron quota global runs need\n"
    path = write(tmp_path, old, f"{old}      internet: true\n")
    path.write_text("infrastructure: {nat_gateway: false}\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    line = line_of(path, "internet: true")
    assert problems(build, path) == [
        f"{path}:{line}: stages.input.input.internet: true needs infrastructure.nat_gateway: true (without a NAT "
        "gateway the jobs reach AWS services through VPC endpoints only); set nat_gateway: true, or internet: false "
        "if the module needs no host outside AWS"
    ]
    # With the NAT gateway (the default) the same module synthesizes.
    assert build(write(tmp_path, old, f"{old}      internet: true\n")) is not None


def test_ec2_spot_over_fewer_than_six_instance_families_is_refused(
    build: Callable[..., cdk.App], tmp_path: Path
) -> None:
    old = "      memory: 61440\n"
    path = write(tmp_path, old, f"{old}      compute: ec2_spot\n")
    path.write_text(
        "infrastructure:\n  ec2_instance_classes: [m6i, c6i.2xlarge, c6i, r6i]\n" + path.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    assert problems(build, path) == [
        f"{path}:2: infrastructure.ec2_instance_classes: 3 instance families (m6i, c6i, r6i) for EC2 Spot; expected "
        "at least 6 (for example m6i, m6a, m5, c6i, c6a, c5, r6i, r6a, r5), so that Spot finds capacity when one pool "
        "is reclaimed"
    ]


def test_an_egress_allowlist_of_something_other_than_domains_is_refused(
    build: Callable[..., cdk.App], tmp_path: Path
) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(
        "infrastructure:\n  egress_allowlist: [podaac.earthdata.nasa.gov, 'https://x.org/', '*']\n" + SHIPPED,
        encoding="utf-8",
    )
    assert problems(build, path) == [
        f"{path}:2: infrastructure.egress_allowlist: expected a list of domain names (podaac.earthdata.nasa.gov, "
        "*.earthdata.nasa.gov), got a list (not a domain name: 'https://x.org/', '*')"
    ]
