"""confluence.yaml -> frozen, validated dataclasses.

This is the one schema both halves read: the runtime plans submissions from it and the CDK app provisions queues
and job definitions from it. It imports neither boto3 nor aws_cdk, so either side can load it cheaply.

Every problem in a file is collected and reported at once, each with the file, the line, the key path
(``stages.flpe.metroman.array_size``) and what was expected.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import shlex
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, Problem
from .names import (
    BARRIER,
    BUCKET_MODES,
    COMPUTE_KINDS,
    CREDENTIAL_ENV,
    DEFAULT_COMPUTE,
    JOB_DEFINITION,
    PLATFORM_FARGATE,
    QUEUE_PER_STAGE,
    QUEUE_SHARED,
    QUEUE_SUFFIX,
    VENUE_BUCKETS,
    area_path,
    barrier_definition,
    earthdata_secret,
    platform,
    secret_name,
    venue_prefix,
    with_on_demand_queues,
)

# AWS Batch: array size 2..10,000; retry attempts 1..10 with at most 5 evaluateOnExit rules;
# attemptDurationSeconds >= 60.
MAX_ARRAY_SIZE = 10_000
MAX_RETRY_ATTEMPTS = 10
MAX_EXIT_RULES = 5
MIN_TIMEOUT_SECONDS = 60
# Counts are bounded by what AWS can take, so a typo (an extra zero, 2**63) is an error naming its key rather
# than a plan that exhausts memory or takes hours: AWS Batch holds at most 1,000,000 jobs in SUBMITTED state, and
# accepts 50 SubmitJob calls per second per account (20,000 calls take almost 7 minutes).
MAX_CHILDREN = 1_000_000  # array_size (split into shards of 10,000)
MAX_NUM_JOBS = 10_000
MAX_SUBMISSIONS = 20_000  # SubmitJob calls of the whole plan, before barriers
MAX_INT32 = 2**31 - 1  # AWS's Integer fields (attemptDurationSeconds, memory)
# Tags (AWS tagging rules): keys 1..128 characters, values up to 256, and the aws: prefix is AWS's own.
MAX_TAG_KEY, MAX_TAG_VALUE, RESERVED_TAG_PREFIX = 128, 256, "aws:"
# "Environment variables cannot start with AWS_BATCH; this naming convention is reserved for variables that AWS
# Batch sets."
RESERVED_ENV_PREFIX = "AWS_BATCH"
CONFLUENCE_ENV_PREFIX = "CONFLUENCE_"  # what each job learns of its run (names.ENV_RUN_ID ...): never overridden
MAX_EXIT_PATTERN = 512  # evaluateOnExit: "The string can be between 1 and 512 characters in length."
# The loader's bounds: a workflow file is a few kilobytes; these stop a YAML bomb (aliases or merge keys that
# expand exponentially, or thousands of nested brackets) before it takes memory or the stack.
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 40
MAX_NODES = 100_000  # scalars, lists and mappings once every alias and merge key is expanded

VENUES = ("dev", "dev1", "dev2", "ops")
DEFAULT_PREFIX = "confluence-dev"
DEPENDENCY_MODES = ("stage", "per_index")
QUEUE_MODES = ("per_stage", "shared")
# The areas of the Terraform deployment. A venue's areas are the ones its confluence.yaml mounts (Config.areas).
EFS_AREAS = ("input", "flpe", "moi", "diagnostics", "offline", "validation", "output", "logs")
# An area is a directory at the file system root, reached through an EFS access point whose path (at most 100
# characters) is the area or a sub-directory of it.
# Always matched with fullmatch (as every pattern here): "$" also matches before a trailing newline.
AREA_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SUBDIRECTORY_RE = re.compile(r"[A-Za-z0-9_.-]+")
# A container path: absolute, printable, no ':' (the only suffix is :ro; Docker's ":rw" or options are not ours).
MOUNT_TARGET_RE = re.compile(r"/[^:\x00-\x1f\x7f-\x9f]*")
MAX_ACCESS_POINT_PATH = 100
# Environment variable names as the container sees them; AWS Batch reserves names starting with AWS_BATCH.
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_ENV_PREFIXES = ("AWS_BATCH", "CONFLUENCE_")
# Secrets Manager: "The secret name can contain ASCII letters, numbers, and the following characters: /_+=.@-",
# at most 512 characters; and "do not end your secret name with a hyphen followed by six characters" (its ARN
# gets a hyphen and six random characters, so such a name makes partial-ARN matches ambiguous).
SECRET_NAME_RE = re.compile(r"[A-Za-z0-9_+=.@-][A-Za-z0-9/_+=.@-]*")
SECRET_SUFFIX_RE = re.compile(r"-[^/]{6}\Z")
MAX_SECRET_NAME = 512
# EC2 instance families (m6i) or types (m6i.xlarge), or Batch's "optimal".
INSTANCE_CLASS_RE = re.compile(r"optimal|[a-z][a-z0-9-]*[0-9][a-z0-9-]*(\.[a-z0-9]+)?")
EXIT_ACTIONS = ("RETRY", "EXIT")

# Names end up inside job, queue and job definition names: AWS allows letters, digits, '-' and '_',
# starting with a letter or digit.
# Always matched with fullmatch: "$" also matches before a trailing newline, which AWS refuses.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# A stage key with a string value is a setting, not a module.
STAGE_SETTINGS = ("dependency", "tolerated_failure")
BUDGET_EXPECTED = 'a count of children (3) or a percentage ("5%")'
# AWS Batch consumable resources (CreateConsumableResource): REPLENISHABLE units come back when a job ends,
# NON_REPLENISHABLE ones are used up; "The maximum number of consumable resources per account is 50k".
CONSUMABLE_TYPES = {"replenishable": "REPLENISHABLE", "non_replenishable": "NON_REPLENISHABLE"}
CONSUMABLE_EXPECTED = "a mapping NAME -> {type: replenishable or non_replenishable, total: a whole number >= 0}"
# Fargate's task sizes: memory (MiB) per vCPU count (0.25 vCPU jumps 1024 -> 2048, so every allowed value is listed).
# https://docs.aws.amazon.com/batch/latest/APIReference/API_ResourceRequirement.html
# The one table: stacks/checks.py checks a module's size against it at synth, and a memory raised for an
# out-of-memory retry (attempts.py) must stay on it.
FARGATE_MEMORY: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4097, 1024)),
    1: tuple(range(2048, 8193, 1024)),
    2: tuple(range(4096, 16385, 1024)),
    4: tuple(range(8192, 30721, 1024)),
    8: tuple(range(16384, 61441, 4096)),
    16: tuple(range(32768, 122881, 8192)),
}
MAX_FARGATE_MEMORY = max(max(memories) for memories in FARGATE_MEMORY.values())  # 122,880 MiB
OOM_EXPECTED = 'a factor such as "2x" (1.1x to 8x) or a memory in MiB'
DEFAULT_SPOT_RECLAIMS = 2  # reclaims of one child before a supervised run moves it to On-Demand


@dataclass(frozen=True)
class ExitRule:
    """One ``evaluateOnExit`` rule of a retry strategy (AWS matches the patterns with a trailing ``*``)."""

    action: str
    on_exit_code: str | None = None
    on_status_reason: str | None = None
    on_reason: str | None = None

    def to_aws(self) -> dict[str, str]:
        rule = {"action": self.action}
        for key, value in (
            ("onExitCode", self.on_exit_code),
            ("onStatusReason", self.on_status_reason),
            ("onReason", self.on_reason),
        ):
            if value is not None:
                rule[key] = value
        return rule


@dataclass(frozen=True)
class Budget:
    """How many children of a module may fail while a supervised run goes on: a count (``3``) or a share
    (``"5%"``). The default, 0, is today's behaviour: one failure stops the run."""

    count: int | None = 0
    percent: Fraction | None = None

    def limit(self, total: int) -> int:
        """The most failures allowed out of ``total`` children (a share is rounded down: 5 % of 210 is 10)."""
        if self.percent is not None:
            return int(self.percent * total / 100)
        return int(self.count or 0)

    def allows(self, failed: int, total: int) -> bool:
        return failed <= self.limit(total)

    @property
    def text(self) -> str:
        if self.percent is not None:
            value = self.percent
            return f"{value.numerator if value.denominator == 1 else float(value):g}%"
        return str(self.count or 0)

    def __str__(self) -> str:
        return self.text


def parse_budget(value: Any) -> Budget:
    """``3`` (a count >= 0) or ``"5%"`` / ``"2.5%"`` (0 to 100); ValueError or TypeError otherwise."""
    if isinstance(value, bool):
        raise TypeError("")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("")
        return Budget(count=value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            number = text[:-1].strip()
            if not re.fullmatch(r"\d+(\.\d+)?", number):
                raise ValueError("")
            share = Fraction(number)
            if share > 100:
                raise ValueError("")
            return Budget(count=None, percent=share)
        if text.isdigit():
            return Budget(count=int(text))
    raise TypeError("")


# S3, bucket naming rules: "Bucket names must be between 3 (min) and 63 (max) characters long", "can consist only
# of lowercase letters, numbers, periods (.), and hyphens (-)", "must begin and end with a letter or number", "must
# not contain two adjacent periods", "must not be formatted as an IP address".
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
IP_ADDRESS_RE = re.compile(r"\d+\.\d+\.\d+\.\d+")
# "The name for a key is a sequence of Unicode characters whose UTF-8 encoding is at most 1,024 bytes long."
MAX_S3_KEY_BYTES = 1024
PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}")
ITEMS_EXPECTED = "an s3://BUCKET/KEY of a JSON array"


def _items(value: Any, prefix: str) -> str:
    """``s3://BUCKET/KEY`` with ``{prefix}`` expanded: checked now, not when the stage starts hours later."""
    if not isinstance(value, str):
        raise TypeError("")
    unknown = [p for p in PLACEHOLDER_RE.findall(value) if p != "{prefix}"]
    if unknown:
        raise ValueError(f"unknown placeholder {unknown[0]} in {value!r}; use {{prefix}} (the venue's prefix)")
    value = value.replace("{prefix}", prefix)
    bucket, _, key = value.removeprefix("s3://").partition("/")
    control = any(not c.isprintable() for c in value)
    if not value.startswith("s3://") or not bucket or not key or key.endswith("/") or control:
        raise ValueError("")
    if not BUCKET_RE.fullmatch(bucket) or ".." in bucket or IP_ADDRESS_RE.fullmatch(bucket):
        raise ValueError(
            f"bucket {bucket!r} of {value!r} is not a valid S3 bucket name (3 to 63 lowercase letters, digits, '.' "
            "and '-', starting and ending with a letter or digit)"
        )
    if len(key.encode()) > MAX_S3_KEY_BYTES:
        raise ValueError(f"the key of {value[:60]!r}... is over {MAX_S3_KEY_BYTES} bytes, the most S3 allows")
    return value


@dataclass(frozen=True)
class Mount:
    """An EFS workflow area mounted into a module's container."""

    area: str
    path: str
    read_only: bool = False
    subdirectory: str = ""  # a sub-directory of the area mounted instead of the whole area ("momma")

    @property
    def root(self) -> str:
        """The mounted directory from the file system root: ``/flpe`` or ``/flpe/momma``."""
        return area_path(self.area, self.subdirectory)


@dataclass(frozen=True)
class Module:
    """One algorithm of a stage: what to submit and what the job definition must provide."""

    stage: str
    name: str
    num_jobs: int
    array_size: int
    arguments: tuple[str, ...]
    job_queue: str
    job_definition: str
    line: int | None = None
    vcpus: float | None = None
    memory: int | None = None
    timeout: int | None = None
    retries: int | None = None
    retry_on: tuple[ExitRule, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    image: str | None = None
    image_tag: str | None = None  # of the stack's repository {prefix}-{module} (CDK only; the runtime ignores it)
    mounts: tuple[Mount, ...] = ()
    s3_credentials: bool = False
    # Packing: each child handles this many consecutive items (array_size counts items), so the array has
    # ceil(array_size / items_per_child) children. expected_duration: seconds one item takes (plan --estimate).
    items_per_child: int = 1
    expected_duration: float | None = None
    compute: str = DEFAULT_COMPUTE
    secrets: tuple[tuple[str, str], ...] = ()  # (environment variable, secret name without the venue's prefix)
    buckets: tuple[tuple[str, str], ...] = ()  # (venue bucket, "ro" or "rw")
    # s3://BUCKET/KEY of a JSON array: the module's work list. Its length is the array size when the module's
    # stage is submitted (read by ``run`` before planning, or by the supervisor when the stage starts).
    items: str | None = None
    tolerated_failure: Budget = field(default_factory=Budget)  # supervised runs: module > stage > defaults
    internet: bool = False  # the module reaches hosts outside AWS (needs the NAT gateway; CDK only)
    # Consumable resources each job of the module holds (replenishable) or uses up (non-replenishable):
    # (resource name in infrastructure.consumable_resources, quantity).
    consumes: tuple[tuple[str, int], ...] = ()
    # Requests to an outside API (Hydrocron) per item: plan shows a run's expected requests against the budget.
    requests_per_item: float | None = None
    # Supervised runs: a child reclaimed this many times (Spot) is resubmitted to the On-Demand queue.
    spot_reclaims_before_on_demand: int = DEFAULT_SPOT_RECLAIMS
    # Supervised runs: a child killed for memory is retried once with more (a factor "2x" or MiB); None = never.
    oom_retry_memory: OomMemory | None = None

    @property
    def platform(self) -> str:
        return platform(self.compute)

    @property
    def is_array(self) -> bool:
        return self.array_size >= 2

    @property
    def children(self) -> int:
        """Containers per job: array children after packing (a plain job, or an array packed into one child: 1)."""
        return math.ceil(self.array_size / self.items_per_child) if self.is_array else 1

    @property
    def key(self) -> str:
        return f"stages.{self.stage}.{self.name}"


@dataclass(frozen=True)
class OomMemory:
    """How much memory an out-of-memory retry asks for: ``factor`` times the last attempt's, or ``mib``."""

    factor: float | None = None
    mib: int | None = None

    @property
    def text(self) -> str:
        return f"{self.factor:g}x" if self.factor is not None else str(self.mib)

    def __str__(self) -> str:
        return self.text


def parse_oom_memory(value: Any) -> OomMemory:
    """``"2x"`` / ``"x2"`` / ``1.5x`` (a factor from 1.1 to 8) or a whole number of MiB; ValueError/TypeError."""
    if isinstance(value, bool):
        raise TypeError("")
    if isinstance(value, int):
        if not 1 <= value <= MAX_FARGATE_MEMORY:
            raise ValueError(
                f"expected {OOM_EXPECTED}, got {value} (at most {MAX_FARGATE_MEMORY:,} MiB, Fargate's most)"
            )
        return OomMemory(mib=value)
    if isinstance(value, str):
        text = value.strip().lower()
        match = re.fullmatch(r"x?(\d+(?:\.\d+)?)x?", text)
        if match and ("x" in text) and text.count("x") == 1:
            factor = float(match[1])
            if not 1.1 <= factor <= 8:
                raise ValueError(f"expected {OOM_EXPECTED}, got {value!r} (a factor from 1.1 to 8)")
            return OomMemory(factor=factor)
        if text.isdigit():
            return parse_oom_memory(int(text))
    raise TypeError("")


@dataclass(frozen=True)
class ConsumableResource:
    """A consumable resource of the venue (``infrastructure.consumable_resources``): ``type`` is AWS's
    REPLENISHABLE or NON_REPLENISHABLE."""

    name: str
    type: str
    total: int

    @property
    def replenishable(self) -> bool:
        return self.type == "REPLENISHABLE"


@dataclass(frozen=True)
class Stage:
    name: str
    modules: tuple[Module, ...]
    dependency: str = "stage"
    line: int | None = None


@dataclass(frozen=True)
class Infrastructure:
    """Settings only the CDK app reads; the runtime ignores them."""

    nat_gateway: bool = True
    max_vcpus: int = 256
    fargate_spot: bool = True
    log_retention_days: int = 30
    runnable_timeout: int = 3600
    buckets: bool = True  # the venue's sos, json and config buckets, as in the Terraform deployment
    # Managed EC2 compute environments (only when a module has compute: ec2_spot or ec2). Spot: at least six
    # families, so that a reclaim in one pool finds capacity in another (stacks/checks.py refuses fewer).
    ec2_instance_classes: tuple[str, ...] = ("m6i", "m6a", "m5", "c6i", "c6a", "c5", "r6i", "r6a", "r5")
    ec2_max_vcpus: int = 256
    ec2_root_volume_gib: int = 100  # the EC2 instances' root volume (images and the jobs' scratch space)
    # Domains the containers may resolve (Route 53 Resolver DNS Firewall; stacks/network.py); empty: no limit.
    egress_allowlist: tuple[str, ...] = ()
    # Limits outside the compute environments that jobs share (an API's concurrency, a monthly request quota).
    consumable_resources: tuple[ConsumableResource, ...] = ()

    def consumable(self, name: str) -> ConsumableResource | None:
        return next((r for r in self.consumable_resources if r.name == name), None)


@dataclass(frozen=True)
class Config:
    source: str
    prefix: str
    log_file: str
    submission_file: str
    stages: tuple[Stage, ...]
    queue_mode: str = "per_stage"
    infrastructure: Infrastructure = field(default_factory=Infrastructure)
    venue: str | None = None
    ledger: str | None = None  # s3://BUCKET/PREFIX: a shared copy of the run ledger (see records/ledger.py)
    # Key path (``stages.flpe.neobam.memory``) -> its line in the file, for every key the loader read: later
    # checks (stacks/checks.py) locate their problems without parsing the file again.
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def modules(self) -> tuple[Module, ...]:
        return tuple(m for s in self.stages for m in s.modules)

    @property
    def barrier_job_definition(self) -> str:
        return barrier_definition(self.prefix)

    def line(self, *keys: str) -> int | None:
        """The line of a key path in the file (``config.line("stages", "flpe", "neobam", "memory")``), or None
        when the file does not set that key."""
        return self.lines.get(".".join(keys))

    @property
    def job_queues(self) -> tuple[str, ...]:
        """Distinct queue names in first-use order: what the stack must create."""
        return tuple(dict.fromkeys(m.job_queue for m in self.modules))

    @property
    def queue_compute(self) -> dict[str, str]:
        """Queue name -> the compute kind of its modules (the loader lets a queue serve one kind only)."""
        return {m.job_queue: m.compute for m in self.modules}

    @property
    def venue_queue_compute(self) -> dict[str, str]:
        """:attr:`queue_compute` and the On-Demand queue of each Spot kind in use (``names.on_demand_queue``), where
        a supervised run sends a child Spot keeps reclaiming: every queue the venue holds for its modules."""
        return with_on_demand_queues(self.prefix, self.queue_compute)

    @property
    def compute_kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.compute for m in self.modules))

    def barrier_definition_for(self, compute: str) -> str:
        """The barrier definition that can run in a queue of this compute kind."""
        return barrier_definition(self.prefix, platform(compute))

    @property
    def barrier_job_definitions(self) -> tuple[str, ...]:
        """Every barrier definition the venue needs: Fargate always, EC2 when a module runs on EC2."""
        platforms = dict.fromkeys([PLATFORM_FARGATE, *(m.platform for m in self.modules)])
        return tuple(barrier_definition(self.prefix, p) for p in platforms)

    @property
    def areas(self) -> tuple[str, ...]:
        """The EFS areas the workflow mounts, in first-use order: what the storage stack creates."""
        return tuple(dict.fromkeys(mount.area for m in self.modules for mount in m.mounts))

    @property
    def venue_areas(self) -> tuple[str, ...]:
        """Every area the venue's file system has an access point for: the Terraform deployment's (kept whether
        mounted today or not) and the ones this file mounts besides (``coastalq``)."""
        return tuple(dict.fromkeys([*EFS_AREAS, *self.areas]))

    @property
    def mount_roots(self) -> tuple[str, ...]:
        """Every distinct mounted directory (``/flpe``, ``/flpe/momma``): one EFS access point each."""
        return tuple(dict.fromkeys(mount.root for m in self.modules for mount in m.mounts))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Full names (``/{prefix}/{name}``) of the secrets the modules read, in first-use order."""
        return tuple(dict.fromkeys(secret_name(self.prefix, name) for m in self.modules for _, name in m.secrets))

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


# --------------------------------------------------------------------------------------------------------------
# YAML loading with line numbers and duplicate-key detection


class LocatedMap(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key and the keys written twice."""

    line: int
    lines: dict[Any, int]
    duplicates: list[tuple[Any, int, int]]


class _Loader(yaml.SafeLoader):
    """SafeLoader with bounds: nesting depth while composing, and the size of the document once expanded."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            size = _expanded_size(node, {})
            if size > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"expands to {size:,} values or more with its aliases and merge keys (<<); at most {MAX_NODES:,}",
                    node.start_mark,
                )
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes the document holds once every alias is expanded (an alias is the node it names, so each
    node is sized once; the count stops growing past the bound so a bomb costs no more than the bound)."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a node reached again while being sized (a recursive alias) counts once
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes)
        if total > MAX_NODES:
            break
    sizes[id(node)] = total
    return total


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LocatedMap:
    # A merge key (``n: {<<: *base, array_size: 5}``) puts the merged pairs first: a merged value is replaced
    # by a later merged or written one (the YAML merge rules), and only a key written twice is a duplicate.
    written = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)
    result = LocatedMap()
    result.line = node.start_mark.line + 1
    result.lines = {}
    result.duplicates = []
    merged: set[Any] = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a name, got {_describe(key)}", key_node.start_mark
            ) from None
        if key in result.lines and key not in merged:
            result.duplicates.append((key, line, result.lines[key]))
            continue
        if id(key_node) in written:
            merged.discard(key)
        else:
            merged.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with line-aware mappings; syntax errors become a ConfigError naming the line."""
    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise ConfigError(
                [Problem(name, None, "", f"is {size:,} bytes; a workflow file may be at most {MAX_DOCUMENT_BYTES:,}")]
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(name, None, "", "file not found")]) from None
    except OSError as e:
        raise ConfigError([Problem(name, None, "", f"cannot read: {e.strerror}")]) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        message = f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); save it as UTF-8"
        raise ConfigError([Problem(name, line, "", message)]) from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark.line + 1 if e.problem_mark else None
        raise ConfigError([Problem(name, mark, "", f"invalid YAML: {e.problem}")]) from e
    except yaml.YAMLError as e:
        raise ConfigError([Problem(name, None, "", f"invalid YAML: {e}")]) from e
    except RecursionError:  # pragma: no cover - MAX_DEPTH stops nesting long before Python's stack ends
        raise ConfigError([Problem(name, None, "", f"nested too deeply (at most {MAX_DEPTH} levels)")]) from None


# --------------------------------------------------------------------------------------------------------------
# Validation


class _Checker:
    """Walks the parsed YAML, collecting problems instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}

    def add(self, line: int | None, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, line, path, message))

    def mapping(self, value: Any, line: int | None, path: str, allowed: tuple[str, ...] | None) -> LocatedMap | None:
        if not isinstance(value, dict):
            self.add(line, path, f"expected a mapping, got {_describe(value)}")
            return None
        if not isinstance(value, LocatedMap):  # pragma: no cover - every mapping comes from our loader
            value = LocatedMap(value)
            value.line, value.lines, value.duplicates = line or 0, {}, []
        for key, key_line in value.lines.items():
            self.lines[_join(path, key)] = key_line
        for key, dup_line, first in value.duplicates:
            self.add(dup_line, _join(path, key), f"duplicate key (first defined on line {first})")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                    meant = f" did you mean {close[0]}?" if close else ""
                    self.add(
                        value.lines.get(key),
                        _join(path, key),
                        f"unknown key;{meant} expected one of: {', '.join(allowed)}",
                    )
        return value

    def get(
        self,
        node: LocatedMap,
        key: str,
        path: str,
        convert: Callable[[Any], Any],
        expected: str,
        default: Any = None,
    ) -> Any:
        if key not in node or node[key] is None:
            return default
        value = node[key]
        try:
            return convert(value)
        except ValueError as e:
            # A converter that says what is wrong (a limit AWS sets) is clearer than the general expectation.
            message = str(e) or f"expected {expected}, got {_describe(value)}"
            self.add(node.lines.get(key), _join(path, key), message)
            return default
        except TypeError:
            self.add(node.lines.get(key), _join(path, key), f"expected {expected}, got {_describe(value)}")
            return default


def _join(path: str, key: Any) -> str:
    text = str(key)
    if not text.isprintable():
        text = repr(text)  # a name with a newline or tab must show it, not break the message's line
    return f"{path}.{text}" if path else text


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r} ({type(value).__name__})"


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("")
        if minimum is not None and value < minimum:
            raise ValueError("")
        if maximum is not None and value > maximum:
            raise ValueError("")
        return value

    return convert


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_INT32:
        raise TypeError("")
    if not math.isfinite(float(value)):
        raise TypeError("")
    return float(value)


def _requests(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_INT32:
        raise TypeError("")
    if not math.isfinite(float(value)):
        raise TypeError("")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("")
    return value


def _s3_location(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("s3://") or len(value.rstrip("/")) <= len("s3://"):
        raise ValueError("")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in options:
            raise ValueError("")
        return value

    return convert


def _arguments(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(shlex.split(value))
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return tuple(str(v) for v in value)
    raise TypeError("")


def _string_map(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise TypeError("")
    pairs = []
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, (dict, list)) or v is None:
            raise TypeError("")
        pairs.append((k, str(v).lower() if isinstance(v, bool) else str(v)))
    return tuple(pairs)


def _tags(value: Any) -> tuple[tuple[str, str], ...]:
    pairs = _string_map(value)
    for k, v in pairs:
        if not 1 <= len(k) <= MAX_TAG_KEY:
            raise ValueError(f"tag key {k[:40]!r}... is {len(k)} characters; AWS allows 1 to {MAX_TAG_KEY}")
        if len(v) > MAX_TAG_VALUE:
            raise ValueError(f"the value of tag {k!r} is {len(v)} characters; AWS allows {MAX_TAG_VALUE}")
        if k.lower().startswith(RESERVED_TAG_PREFIX):
            raise ValueError(f"tag key {k!r}: the {RESERVED_TAG_PREFIX} prefix is reserved for AWS")
    return pairs


def _environment(value: Any) -> tuple[tuple[str, str], ...]:
    pairs = _string_map(value)
    for k, _ in pairs:
        if not k:
            raise ValueError("an environment variable needs a name")
        if k.upper().startswith(RESERVED_ENV_PREFIX):
            raise ValueError(f"{k!r}: names starting with {RESERVED_ENV_PREFIX} are reserved for AWS Batch")
        if k.upper().startswith(CONFLUENCE_ENV_PREFIX):
            raise ValueError(
                f"{k!r}: names starting with {CONFLUENCE_ENV_PREFIX} are set by confluence-submit for each job (its "
                "run, stage, module and index); use another name"
            )
    return pairs


_MODULE_KEYS = (
    "num_jobs",
    "array_size",
    "arguments",
    "job_queue",
    "job_definition",
    "vcpus",
    "memory",
    "timeout",
    "retries",
    "retry_on",
    "environment",
    "tags",
    "image",
    "image_tag",
    "mounts",
    "s3_credentials",
    "items_per_child",
    "expected_duration",
    "compute",
    "secrets",
    "buckets",
    "items",
    "tolerated_failure",
    "internet",
    "consumes",
    "requests_per_item",
    "spot_reclaims_before_on_demand",
    "oom_retry_memory",
)
_DEFAULT_KEYS = tuple(
    k for k in _MODULE_KEYS if k not in ("num_jobs", "array_size", "arguments", "items_per_child", "items")
)
_TOP_KEYS = (
    "log_file",
    "submission_file",
    "ledger",
    "prefix",
    "queue_mode",
    "defaults",
    "stages",
    "infrastructure",
)
_INFRA_KEYS = tuple(Infrastructure.__dataclass_fields__)


def _template(value: str, **names: str) -> str:
    """Expand ``{prefix}``, ``{stage}`` and ``{module}`` in queue and job definition names (nothing else: no
    attribute, index, conversion or format spec, which str.format would evaluate)."""
    fields = []
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(value) if f is not None]
    except ValueError as e:
        raise ValueError(f"{e}; use {{prefix}}, {{stage}} or {{module}}") from e
    for field_name, spec, conversion in fields:
        if field_name not in names or spec or conversion:
            shown = "{" + field_name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"unknown placeholder {shown}; use {{prefix}}, {{stage}} or {{module}}")
    return value.format(**names)


def _check_name(checker: _Checker, line: int | None, path: str, name: str, what: str) -> None:
    if len(name) > 128 or not NAME_RE.fullmatch(name):
        checker.add(
            line,
            path,
            f"{what} {name!r} is not a valid AWS Batch name (at most 128 characters: a letter or digit, "
            "then letters, digits, '-' or '_')",
        )


# evaluateOnExit (AWS Batch API, EvaluateOnExit): onStatusReason and onReason "can contain letters, numbers,
# periods (.), colons (:), and white spaces (including spaces or tabs)"; onExitCode "can contain only numbers";
# each "can optionally end with an asterisk (*)"; at most 512 characters.
MAX_PATTERN_LENGTH = 512
_EXIT_PATTERNS = {
    "on_status_reason": (re.compile(r"^[A-Za-z0-9.: \t]*\*?\Z"), "letters, digits, '.', ':' and spaces"),
    "on_reason": (re.compile(r"^[A-Za-z0-9.: \t]*\*?\Z"), "letters, digits, '.', ':' and spaces"),
    "on_exit_code": (re.compile(r"^[0-9]*\*?\Z"), "digits"),
}


def _retry_rules(checker: _Checker, node: LocatedMap, path: str) -> tuple[ExitRule, ...]:
    if "retry_on" not in node or node["retry_on"] is None:
        return ()
    value, line, rpath = node["retry_on"], node.lines.get("retry_on"), _join(path, "retry_on")
    if not isinstance(value, list):
        checker.add(line, rpath, f"expected a list of rules, got {_describe(value)}")
        return ()
    if len(value) > MAX_EXIT_RULES:
        checker.add(line, rpath, f"AWS Batch allows at most {MAX_EXIT_RULES} evaluate-on-exit rules, got {len(value)}")
    rules = []
    for i, item in enumerate(value):
        ipath = f"{rpath}[{i}]"
        rule = checker.mapping(item, line, ipath, ("action", "on_exit_code", "on_status_reason", "on_reason"))
        if rule is None:
            continue
        action = checker.get(rule, "action", ipath, lambda v: _choice(EXIT_ACTIONS)(str(v).upper()), "RETRY or EXIT")
        if action is None and "action" not in rule:
            checker.add(rule.line, _join(ipath, "action"), "missing; expected RETRY or EXIT")
        conditions = {
            k: checker.get(rule, k, ipath, _exit_pattern, f"a pattern of 1 to {MAX_EXIT_PATTERN} characters")
            for k in rule
            if k.startswith("on_")
        }
        if not conditions:
            checker.add(rule.line, ipath, "needs one of on_exit_code, on_status_reason, on_reason")
        for key, pattern in conditions.items():
            allowed, what = _EXIT_PATTERNS[key]
            if pattern is not None and not (len(pattern) <= MAX_PATTERN_LENGTH and allowed.match(pattern)):
                checker.add(
                    rule.lines.get(key, rule.line),
                    _join(ipath, key),
                    f"{pattern!r} is not a pattern AWS Batch accepts ({what}, at most {MAX_PATTERN_LENGTH} characters, "
                    "optionally ending in one '*')",
                )
        if action:
            rules.append(ExitRule(action=action, **conditions))
    return tuple(rules)


def _exit_pattern(value: Any) -> str:
    if isinstance(value, (dict, list, bool)):
        raise TypeError("")
    text = str(value)
    if not 1 <= len(text) <= MAX_EXIT_PATTERN:
        raise ValueError(f"a pattern of {len(text)} characters; AWS allows 1 to {MAX_EXIT_PATTERN}")
    return text


def _mounts(checker: _Checker, node: LocatedMap, path: str) -> tuple[Mount, ...]:
    """``{AREA[/SUB/DIR]: /container/path[:ro]}``: an area (any name; the venue gets the ones its yaml mounts), or a
    sub-directory of one, mounted at an absolute path, read-only with ``:ro``."""
    if "mounts" not in node or node["mounts"] is None:
        return ()
    mounts_node = checker.mapping(node["mounts"], node.lines.get("mounts"), _join(path, "mounts"), None)
    if mounts_node is None:
        return ()
    mounts = []
    targets: dict[str, str] = {}
    for source, target in mounts_node.items():
        mpath, line = _join(_join(path, "mounts"), source), mounts_node.lines.get(source)
        area, _, subdirectory = str(source).partition("/")
        parts = subdirectory.split("/") if subdirectory else []
        if not AREA_RE.fullmatch(area):
            checker.add(
                line,
                mpath,
                f"area {area!r} is not a usable area name (lowercase letters, digits, '-' or '_', at most 64, "
                "starting with a letter or digit)",
            )
            continue
        if any(placeholder in subdirectory for placeholder in ("{run_id}", "{origin_run_id}")):
            # SubmitJob's containerOverrides cannot change volumes: the EFS access point of a mount is fixed when
            # the job definition is registered (cdk deploy), so a per-run directory must come from the arguments.
            checker.add(
                line,
                mpath,
                f"sub-directory {subdirectory!r}: a mount is fixed when the venue is deployed (SubmitJob cannot "
                "change it per run), so {run_id} cannot be expanded there; mount the area and put {run_id} in "
                f"the arguments or an environment value instead (e.g. -o {str(target).removesuffix(':ro')}/{{run_id}})",
            )
            continue
        if any(p in ("", ".", "..") or not SUBDIRECTORY_RE.fullmatch(p) for p in parts):
            checker.add(
                line,
                mpath,
                f"sub-directory {subdirectory!r} of area {area!r} must be names of letters, digits, '.', '-' or '_' "
                "separated by single '/' (no '.' or '..')",
            )
            continue
        if len(area_path(area, subdirectory)) > MAX_ACCESS_POINT_PATH:
            checker.add(
                line, mpath, f"{area_path(area, subdirectory)} is longer than EFS allows ({MAX_ACCESS_POINT_PATH})"
            )
            continue
        read_only = False
        if isinstance(target, str) and target.endswith(":ro"):
            target, read_only = target[:-3], True
        if not isinstance(target, str) or not MOUNT_TARGET_RE.fullmatch(target):
            checker.add(
                line,
                mpath,
                "expected an absolute path in the container, optionally ending in :ro (read-only), got "
                + _describe(mounts_node[source]),
            )
            continue
        if target.rstrip("/") == "":
            checker.add(
                line, mpath, "expected a directory in the container such as /mnt/data, not / (it would hide the image)"
            )
            continue
        if target in targets:
            checker.add(line, mpath, f"{target} is already the mount point of {targets[target]}")
            continue
        targets[target] = str(source)
        mounts.append(Mount(area=area, path=target, read_only=read_only, subdirectory="/".join(parts)))
    return tuple(mounts)


def _secrets(checker: _Checker, node: LocatedMap, path: str) -> tuple[tuple[str, str], ...]:
    """``{ENV_NAME: name}``: the venue's secret ``/{prefix}/{name}`` injected as the variable ENV_NAME."""
    spath = _join(path, "secrets")
    secrets_node = checker.mapping(node["secrets"], node.lines.get("secrets"), spath, None)
    if secrets_node is None:
        return ()
    pairs = []
    for env, name in secrets_node.items():
        key, line = _join(spath, env), secrets_node.lines.get(env)
        if not isinstance(env, str) or not ENV_NAME_RE.fullmatch(env):
            checker.add(line, key, "is not an environment variable name (letters, digits and '_', not first a digit)")
            continue
        if env.startswith(RESERVED_ENV_PREFIXES) or env in CREDENTIAL_ENV.values():
            checker.add(line, key, f"{env} is reserved (AWS_BATCH*, CONFLUENCE_* and the S3_CREDS_* variables)")
            continue
        if not isinstance(name, str) or not name:
            checker.add(line, key, f"expected a secret name, got {_describe(name)}")
            continue
        if not SECRET_NAME_RE.fullmatch(name):
            checker.add(
                line,
                key,
                f"secret name {name!r} is not one Secrets Manager accepts (ASCII letters, digits and /_+=.@-, "
                "not starting with '/': the venue's /{prefix}/ comes first)",
            )
            continue
        if SECRET_SUFFIX_RE.search(name):
            checker.add(
                line,
                key,
                f"secret name {name!r} ends with a hyphen and six characters, which Secrets Manager advises "
                "against (its ARNs end that way); rename it",
            )
            continue
        pairs.append((env, name))
    return tuple(pairs)


def _buckets(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise TypeError("")
    pairs = []
    for bucket, mode in value.items():
        if bucket not in VENUE_BUCKETS or mode not in BUCKET_MODES:
            # The whole message: the checker shows a converter's own message instead of the general expectation.
            raise ValueError(
                f"expected a mapping of venue buckets ({', '.join(VENUE_BUCKETS)}) to {' or '.join(BUCKET_MODES)}, "
                f"got a mapping ({bucket}: {mode})"
            )
        pairs.append((bucket, mode))
    return tuple(pairs)


def _settings(checker: _Checker, node: LocatedMap, path: str) -> dict[str, Any]:
    """The keys a module may inherit from ``defaults``; only those present are returned."""
    got: dict[str, Any] = {}
    specs: dict[str, tuple[Callable[[Any], Any], str]] = {
        "job_queue": (_str, "a queue name"),
        "job_definition": (_str, "a job definition name"),
        "vcpus": (_number, "a positive number of vCPUs"),
        "memory": (_int(1, MAX_INT32), "a positive whole number of MiB"),
        "timeout": (
            _int(MIN_TIMEOUT_SECONDS, MAX_INT32),
            f"a whole number of seconds from {MIN_TIMEOUT_SECONDS} to {MAX_INT32:,}",
        ),
        "retries": (_int(1, MAX_RETRY_ATTEMPTS), f"a whole number of attempts from 1 to {MAX_RETRY_ATTEMPTS}"),
        "environment": (_environment, "a mapping of names to strings"),
        "tags": (_tags, "a mapping of names to strings"),
        "image": (_str, "an image URI"),
        "image_tag": (_str, "an image tag or a sha256: digest"),
        "s3_credentials": (_bool, "true or false"),
        "expected_duration": (_number, "a positive number of seconds per item"),
        "compute": (_choice(COMPUTE_KINDS), " or ".join(COMPUTE_KINDS)),
        "buckets": (
            _buckets,
            f"a mapping of venue buckets ({', '.join(VENUE_BUCKETS)}) to {' or '.join(BUCKET_MODES)}",
        ),
        "tolerated_failure": (parse_budget, BUDGET_EXPECTED),
        "internet": (_bool, "true or false"),
        "consumes": (_consumes, "a mapping of consumable resource names to whole numbers >= 1"),
        "requests_per_item": (_requests, "a number >= 0 of requests per item"),
        "spot_reclaims_before_on_demand": (
            _int(1, MAX_RETRY_ATTEMPTS),
            f"a whole number from 1 to {MAX_RETRY_ATTEMPTS}",
        ),
        "oom_retry_memory": (parse_oom_memory, OOM_EXPECTED),
    }
    for key, (convert, expected) in specs.items():
        if key in node and node[key] is not None:
            value = checker.get(node, key, path, convert, expected)
            if value is not None:
                got[key] = value
    if "retry_on" in node:
        got["retry_on"] = _retry_rules(checker, node, path)
    if "mounts" in node:
        got["mounts"] = _mounts(checker, node, path)
    if node.get("secrets") is not None:
        got["secrets"] = _secrets(checker, node, path)
    return got


def parse_config(data: Any, source: str, *, venue: str | None = None) -> Config:
    """Validate parsed YAML (from :func:`read_yaml`) into a :class:`Config`, or raise ConfigError."""
    checker = _Checker(source)
    root = checker.mapping(data, 1, "", _TOP_KEYS)
    if root is None:
        raise ConfigError(checker.problems)

    if venue is not None and venue not in VENUES:
        checker.add(None, "venue", f"unknown venue {venue!r}; expected one of: {', '.join(VENUES)}")
    prefix = checker.get(root, "prefix", "", _str, "a name prefix", DEFAULT_PREFIX)
    # "{venue}" in the yaml's prefix (e.g. confluence2-{venue}) names a venue beside another deployment whose
    # names are taken; without it a venue is confluence-{venue}.
    if venue is not None:
        prefix = prefix.replace("{venue}", venue) if "{venue}" in prefix else venue_prefix(venue)
        _check_name(checker, root.lines.get("prefix"), "prefix", prefix, "prefix")
    elif "{venue}" in prefix:
        checker.add(
            root.lines.get("prefix"),
            "prefix",
            f"{prefix!r} names {{venue}}: pass --venue ({', '.join(VENUES)}) to say which venue's names to use",
        )
        prefix = prefix.replace("{venue}", "venue")  # one problem, not one more per derived queue name
    else:
        _check_name(checker, root.lines.get("prefix"), "prefix", prefix, "prefix")
    log_file = checker.get(root, "log_file", "", _str, "a file path", "confluence.log")
    submission_file = checker.get(root, "submission_file", "", _str, "a file path", "submission.csv")
    queue_mode = checker.get(root, "queue_mode", "", _choice(QUEUE_MODES), " or ".join(QUEUE_MODES), "per_stage")
    ledger = checker.get(root, "ledger", "", _s3_location, "an s3://BUCKET/PREFIX location", None)

    defaults: dict[str, Any] = {}
    if root.get("defaults") is not None:
        node = checker.mapping(root["defaults"], root.lines.get("defaults"), "defaults", _DEFAULT_KEYS)
        if node is not None:
            defaults = _settings(checker, node, "defaults")

    infrastructure = Infrastructure()
    if root.get("infrastructure") is not None:
        node = checker.mapping(root["infrastructure"], root.lines.get("infrastructure"), "infrastructure", _INFRA_KEYS)
        if node is not None:
            values = {}
            for name, f in Infrastructure.__dataclass_fields__.items():
                default = f.default
                if name == "ec2_instance_classes":
                    values[name] = checker.get(node, name, "infrastructure", _instance_classes, _CLASSES, default)
                    continue
                if name == "egress_allowlist":
                    values[name] = checker.get(node, name, "infrastructure", _domains, _DOMAINS, default)
                    continue
                if name == "consumable_resources":
                    values[name] = _consumable_resources(checker, node)
                    continue
                convert: Callable[[Any], Any] = _bool if isinstance(default, bool) else _int(1)
                expected = "true or false" if isinstance(default, bool) else "a positive whole number"
                values[name] = checker.get(node, name, "infrastructure", convert, expected, default)
            infrastructure = Infrastructure(**values)

    stages: list[Stage] = []
    if "stages" not in root:
        checker.add(
            root.line, "stages", "missing; expected an ordered mapping of stage name -> module name -> settings"
        )
    else:
        stages_node = checker.mapping(root["stages"], root.lines.get("stages"), "stages", None)
        if stages_node is not None and not stages_node:
            checker.add(root.lines.get("stages"), "stages", "is empty; expected at least one stage")
        for stage_name, stage_value in (stages_node or {}).items():
            stage = _stage(checker, stages_node, stage_name, stage_value, prefix, queue_mode, defaults)  # type: ignore[arg-type]
            if stage is not None:
                stages.append(stage)

    _check_dependencies(checker, stages)
    _check_resources(checker, stages, infrastructure, prefix)
    _check_consumes(checker, stages, infrastructure)
    _check_unique_modules(checker, stages)
    _check_submissions(checker, root, stages)
    if checker.problems:
        raise ConfigError(checker.problems)
    return Config(
        source=source,
        prefix=prefix,
        log_file=log_file,
        submission_file=submission_file,
        stages=tuple(stages),
        queue_mode=queue_mode,
        infrastructure=infrastructure,
        venue=venue,
        ledger=ledger,
        lines=checker.lines,
    )


def _stage(
    checker: _Checker,
    stages_node: LocatedMap,
    name: Any,
    value: Any,
    prefix: str,
    queue_mode: str,
    defaults: Mapping[str, Any],
) -> Stage | None:
    path = _join("stages", name)
    line = stages_node.lines.get(name)
    if not isinstance(name, str):
        checker.add(line, path, f"stage names must be strings, got {_describe(name)}")
        return None
    _check_name(checker, line, path, name, "stage name")
    node = checker.mapping(value, line, path, None)
    if node is None:
        return None
    dependency = checker.get(
        node, "dependency", path, _choice(DEPENDENCY_MODES), " or ".join(DEPENDENCY_MODES), "stage"
    )
    if node.get("tolerated_failure") is not None:
        budget = checker.get(node, "tolerated_failure", path, parse_budget, BUDGET_EXPECTED)
        if budget is not None:
            defaults = {**defaults, "tolerated_failure": budget}
    modules = []
    for module_name, module_value in node.items():
        if module_name in STAGE_SETTINGS:
            continue
        module = _module(checker, node, name, module_name, module_value, prefix, queue_mode, defaults)
        if module is not None:
            modules.append(module)
    if not any(k not in STAGE_SETTINGS for k in node):
        checker.add(line, path, "has no modules; expected at least one module name -> settings")
    return Stage(name=name, modules=tuple(modules), dependency=dependency, line=line)


def _module(
    checker: _Checker,
    stage_node: LocatedMap,
    stage: str,
    name: Any,
    value: Any,
    prefix: str,
    queue_mode: str,
    defaults: Mapping[str, Any],
) -> Module | None:
    path = _join(_join("stages", stage), name)
    line = stage_node.lines.get(name)
    if not isinstance(name, str):
        checker.add(line, path, f"module names must be strings, got {_describe(name)}")
        return None
    _check_name(checker, line, path, name, "module name")
    if value is None:
        value = LocatedMap()
        value.line, value.lines, value.duplicates = line or 0, {}, []
    node = checker.mapping(value, line, path, _MODULE_KEYS)
    if node is None:
        return None
    if name == BARRIER:
        checker.add(line, path, f"the module name {BARRIER!r} is reserved for the fan-in barrier jobs")
    num_jobs = checker.get(
        node, "num_jobs", path, _int(1, MAX_NUM_JOBS), f"a whole number from 1 to {MAX_NUM_JOBS:,}", 1
    )
    array_size = checker.get(
        node,
        "array_size",
        path,
        _int(0, MAX_CHILDREN),
        f"a whole number from 0 to {MAX_CHILDREN:,} (0 or 1 = a plain job)",
        0,
    )
    items_per_child = checker.get(node, "items_per_child", path, _int(1), "a whole number >= 1", 1)
    if items_per_child > 1 and array_size < 2 and "items" not in node:
        checker.add(
            node.lines.get("items_per_child"),
            _join(path, "items_per_child"),
            f"packs the items of an array; array_size is {array_size} (a plain job): set array_size to the item count",
        )
    arguments = checker.get(node, "arguments", path, _arguments, "a list of strings or one string", ())
    items = checker.get(node, "items", path, lambda v: _items(v, prefix), ITEMS_EXPECTED)
    # Only {prefix} is expanded in arguments (plain replace: JSON payloads keep their braces).
    arguments = tuple(a.replace("{prefix}", prefix) for a in arguments)
    settings = {**defaults, **_settings(checker, node, path)}

    placeholders = {"prefix": prefix, "stage": stage, "module": name}
    default_queue = QUEUE_PER_STAGE if queue_mode == "per_stage" else QUEUE_SHARED
    default_queue += QUEUE_SUFFIX[settings.get("compute", DEFAULT_COMPUTE)]
    resolved: dict[str, Any] = {}
    for key, default in (("job_queue", default_queue), ("job_definition", JOB_DEFINITION)):
        key_line = node.lines.get(key, line)
        try:
            resolved[key] = _template(settings.pop(key, default), **placeholders)
        except ValueError as e:
            checker.add(key_line, _join(path, key), str(e))
            resolved[key] = default.format(**placeholders)
        # A derived name is only worth a problem of its own when the stage and module names are valid.
        if (NAME_RE.fullmatch(name) and NAME_RE.fullmatch(stage)) or key in node:
            _check_name(checker, key_line, _join(path, key), resolved[key], key.replace("_", " "))
    if settings.get("retry_on") and "retries" not in settings:
        checker.add(node.lines.get("retry_on", line), _join(path, "retry_on"), "needs retries >= 2 to have any effect")
    return Module(
        stage=stage,
        name=name,
        num_jobs=num_jobs,
        array_size=array_size,
        arguments=arguments,
        line=line,
        items_per_child=items_per_child,
        items=items,
        **resolved,
        **settings,
    )


def _check_dependencies(checker: _Checker, stages: list[Stage]) -> None:
    """``per_index`` pairs child i with child i (AWS N_TO_N), so every array involved must be the same size."""
    for previous, stage in itertools.pairwise(stages):
        if stage.dependency != "per_index":
            continue
        # A size read from items is only known when the stage starts: the supervisor checks it then.
        sizes = {f"{m.stage}.{m.name}": m.array_size for m in (*previous.modules, *stage.modules) if m.items is None}
        if sizes and (len(set(sizes.values())) != 1 or min(sizes.values(), default=0) < 2):
            listed = ", ".join(f"{k}={v}" for k, v in sizes.items())
            checker.add(
                stage.line,
                f"stages.{stage.name}.dependency",
                f"per_index needs array jobs of one size in this stage and the previous one; got array_size {listed}",
            )
            continue
        # N_TO_N pairs child i with child i (and a supervised run leaves out lost children by index): both sides
        # must cut their items into the same children, also when the sizes come from items lists.
        reference, *others = (*previous.modules, *stage.modules)
        for module in others:
            if module.items_per_child != reference.items_per_child:
                checker.add(
                    checker.lines.get(f"{module.key}.items_per_child", module.line),
                    f"{module.key}.items_per_child",
                    f"per_index pairs child i with child i, so every array of stages {previous.name} and "
                    f"{stage.name} must pack alike: {module.key} has {module.items_per_child} item(s) per child, "
                    f"{reference.key} {reference.items_per_child}",
                )
    if stages and stages[0].dependency == "per_index":
        checker.add(stages[0].line, f"stages.{stages[0].name}.dependency", "the first stage has no stage to follow")


_CLASSES = 'a list of EC2 instance families (m6i), types (m6i.xlarge) or "optimal"'


_DOMAINS = "a list of domain names (podaac.earthdata.nasa.gov, *.earthdata.nasa.gov)"
# Route 53 Resolver DNS Firewall domain lists: labels of letters, digits and '-', optionally after '*.'.
_DOMAIN_RE = re.compile(r"(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?")


def _domains(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise TypeError("")
    bad = [v for v in value if len(v) > 255 or not _DOMAIN_RE.fullmatch(v)]
    if bad:
        raise ValueError(f"expected {_DOMAINS}, got a list (not a domain name: {', '.join(map(repr, bad))})")
    return tuple(dict.fromkeys(v.lower() for v in value))


def _consumable_resources(checker: _Checker, node: LocatedMap) -> tuple[ConsumableResource, ...]:
    path = "infrastructure.consumable_resources"
    if node.get("consumable_resources") is None:
        return ()
    found = checker.mapping(node["consumable_resources"], node.lines.get("consumable_resources"), path, None)
    resources = []
    for name, value in (found or {}).items():
        rpath, line = _join(path, name), found.lines.get(name)  # type: ignore[union-attr]
        if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > 64:
            checker.add(line, rpath, "is not a resource name (letters, digits, '-' or '_', at most 64, first a letter)")
            continue
        spec = checker.mapping(value, line, rpath, ("type", "total"))
        if spec is None:
            continue
        kind = checker.get(spec, "type", rpath, _choice(tuple(CONSUMABLE_TYPES)), " or ".join(CONSUMABLE_TYPES))
        total = checker.get(spec, "total", rpath, _int(0), "a whole number >= 0 (units)")
        for key, got in (("type", kind), ("total", total)):
            if got is None and spec.get(key) is None:
                checker.add(spec.line, _join(rpath, key), f"missing; expected {CONSUMABLE_EXPECTED}")
        if kind is not None and total is not None:
            resources.append(ConsumableResource(name=name, type=CONSUMABLE_TYPES[kind], total=total))
    return tuple(resources)


def _consumes(value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, dict) or not value:
        raise TypeError("")
    pairs = []
    for name, quantity in value.items():
        if not isinstance(name, str) or isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise TypeError("")
        pairs.append((name, quantity))
    return tuple(pairs)


def _check_consumes(checker: _Checker, stages: list[Stage], infrastructure: Infrastructure) -> None:
    """A module consumes only the venue's resources, and never more of a replenishable one than exists (its jobs
    would wait in RUNNABLE until the queue's time limit cancels them)."""
    declared = {r.name: r for r in infrastructure.consumable_resources}
    for module in (m for s in stages for m in s.modules):
        line = checker.lines.get(f"{module.key}.consumes", module.line)
        for name, quantity in module.consumes:
            resource = declared.get(name)
            if resource is None:
                known = ", ".join(declared) or "none declared"
                checker.add(
                    line,
                    f"{module.key}.consumes.{name}",
                    f"no consumable resource {name!r} in infrastructure.consumable_resources ({known})",
                )
            elif quantity > resource.total:
                checker.add(
                    line,
                    f"{module.key}.consumes.{name}",
                    f"{quantity} units of {name}, which has {resource.total} in all: no job could ever start",
                )


def _instance_classes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise TypeError("")
    bad = [v for v in value if not INSTANCE_CLASS_RE.fullmatch(v)]
    if bad:
        raise ValueError(f"expected {_CLASSES}, got a list (not an instance class: {', '.join(bad)})")
    return tuple(value)


def _check_resources(checker: _Checker, stages: list[Stage], infrastructure: Infrastructure, prefix: str) -> None:
    """What only the whole file shows: a queue or job definition serving two platforms, buckets the venue does not
    have, secrets whose full name is too long or taken, areas mounted but written by no module."""
    modules = [m for s in stages for m in s.modules]
    lines = checker.lines

    def line_of(module: Module, *keys: str) -> int | None:
        return lines.get(".".join(["stages", module.stage, module.name, *keys])) or module.line

    first_on: dict[tuple[str, str], Module] = {}
    for module in modules:
        for kind, name, what in (
            ("queue", module.job_queue, module.compute),
            ("definition", module.job_definition, module.platform),
        ):
            other = first_on.setdefault((kind, name), module)
            other_what = other.compute if kind == "queue" else other.platform
            if other_what != what:
                reason = (
                    "a queue holds EC2 or Fargate compute environments, never both, in one order"
                    if kind == "queue"
                    else "a job definition is built for one platform"
                )
                checker.add(
                    line_of(module, "compute"),
                    f"{module.key}.compute",
                    f"{module.compute} ({module.platform}) shares job {kind} {name!r} with {other.key} "
                    f"({other.compute}, {other.platform}); {reason}: set a job_{kind} of its own",
                )
    for module in modules:
        if module.buckets and not infrastructure.buckets:
            checker.add(
                line_of(module, "buckets"),
                f"{module.key}.buckets",
                "the venue has no buckets (infrastructure.buckets is false)",
            )
        for env, name in module.secrets:
            full = secret_name(prefix, name)
            key = f"{module.key}.secrets.{env}"
            if full == earthdata_secret(prefix):
                checker.add(
                    line_of(module, "secrets"),
                    key,
                    f"{full} is the renew stack's Earthdata login; use "
                    "s3_credentials: true for PO.DAAC credentials, or another name",
                )
            elif len(full) > MAX_SECRET_NAME:
                checker.add(
                    line_of(module, "secrets"),
                    key,
                    f"{full} is {len(full)} characters; Secrets Manager allows {MAX_SECRET_NAME}",
                )
            if env in dict(module.environment):
                checker.add(line_of(module, "secrets"), key, f"{env} is also set in environment; pick one")
    written = {mount.area for m in modules for mount in m.mounts if not mount.read_only}
    reported: set[str] = set()
    for module in modules:
        for mount in module.mounts:
            if mount.area in written or mount.area in reported:
                continue
            reported.add(mount.area)
            source = mount.root.lstrip("/")
            checker.add(
                lines.get(f"{module.key}.mounts.{source}") or line_of(module, "mounts"),
                f"{module.key}.mounts.{source}",
                f"area {mount.area!r} is mounted read-only and no module writes it (mount it without :ro in the "
                "module that fills it)",
            )


def _check_unique_modules(checker: _Checker, stages: list[Stage]) -> None:
    """A module's name also names its job definition, image repository and log group: one per workflow."""
    first: dict[str, str] = {}
    for stage in stages:
        for module in stage.modules:
            if module.name in first:
                checker.add(
                    module.line,
                    module.key,
                    f"module {module.name!r} is also in stage {first[module.name]!r}; a module name may appear in "
                    "one stage only (it names the job definition, image repository and log group)",
                )
            else:
                first[module.name] = stage.name


def _check_submissions(checker: _Checker, root: LocatedMap, stages: list[Stage]) -> None:
    """Bound the plan's SubmitJob calls before planning them (an array over 10,000 is several calls)."""
    calls = sum(m.num_jobs * max(1, -(-m.array_size // MAX_ARRAY_SIZE)) for s in stages for m in s.modules)
    if calls > MAX_SUBMISSIONS:
        checker.add(
            root.lines.get("stages"),
            "stages",
            f"the workflow needs {calls:,} SubmitJob calls (num_jobs x arrays of up to {MAX_ARRAY_SIZE:,}); at most "
            f"{MAX_SUBMISSIONS:,} (AWS accepts 50 per second)",
        )


def load_config(path: str | Path, *, venue: str | None = None) -> Config:
    """Read and validate ``confluence.yaml``; raise ConfigError listing every problem found."""
    return parse_config(read_yaml(path), str(path), venue=venue)
