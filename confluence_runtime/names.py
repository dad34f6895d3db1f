"""Every name of a run and of a venue, built and parsed in this one module."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .states import FINAL

# --------------------------------------------------------------------------------------------------------------
# Kinds of submission (the record's ``kind`` column)

MODULE = "module"
BARRIER = "barrier"  # also the module name of a barrier in job names and tags
RETRY = "retry"  # anything retry-failed submitted: compact retries, reruns and their barriers

# --------------------------------------------------------------------------------------------------------------
# Tags: every job carries all of IDENTITY_TAGS (see job_tags)

TAG_RUN = "confluence:run"
TAG_STAGE = "confluence:stage"
TAG_MODULE = "confluence:module"
# The venue: the CDK app's submitter policy scopes SubmitJob (aws:RequestTag) and CancelJob/TerminateJob
# (aws:ResourceTag) to it, since Batch job ARNs hold random ids, not venue names.
TAG_PREFIX = "confluence:prefix"
TAG_KIND = "confluence:kind"
TAG_GENERATION = "confluence:retry-generation"
TAG_JOB = "job"
# A job submitted by a supervisor (run --supervise): the venue's supervisor function acts on its events only.
TAG_SUPERVISED = "confluence:supervised"
IDENTITY_TAGS = (TAG_RUN, TAG_STAGE, TAG_MODULE, TAG_PREFIX)

# --------------------------------------------------------------------------------------------------------------
# Container environment of every module job (the module contract in the README)

ENV_RUN_ID = "CONFLUENCE_RUN_ID"
ENV_STAGE = "CONFLUENCE_STAGE"
ENV_MODULE = "CONFLUENCE_MODULE"
ENV_JOB_INDEX = "CONFLUENCE_JOB_INDEX"
ENV_NUM_JOBS = "CONFLUENCE_NUM_JOBS"
ENV_ARRAY_OFFSET = "CONFLUENCE_ARRAY_OFFSET"
ENV_ARRAY_SIZE = "CONFLUENCE_ARRAY_SIZE"
ENV_INDEX_MAP = "CONFLUENCE_INDEX_MAP"  # a compact retry array: child j stands for global index map[j]
ENV_INDEX = "CONFLUENCE_INDEX"  # a compact retry of a single index: a plain job
# Packing (items_per_child > 1): child i of the job handles items START + i * COUNT up to COUNT items, never past
# CONFLUENCE_ARRAY_SIZE (the item count); in a compact retry, child i handles INDEX_MAP[i] * COUNT onwards.
ENV_ITEM_START = "CONFLUENCE_ITEM_START"
ENV_ITEM_COUNT = "CONFLUENCE_ITEM_COUNT"
# The supervisor function's settings (stacks/supervisor.py sets them, lambdas/supervisor reads them).
# s3://BUCKET/PREFIX of the venue's shared run ledger: the supervisor function's, and the CLI's --ledger default.
ENV_SUPERVISOR_LEDGER = "CONFLUENCE_LEDGER"
ENV_ALERTS_TOPIC = "CONFLUENCE_ALERTS_TOPIC_ARN"
# Read by the CLI (click's envvar): where AWS is, for a sandbox or LocalStack.
ENV_ENDPOINT_URL = "CONFLUENCE_ENDPOINT_URL"
ENV_AWS_DEADLINE = "CONFLUENCE_AWS_DEADLINE"  # --deadline: seconds one AWS call may take, retries included
ENV_DEBUG = "CONFLUENCE_DEBUG"  # set to 1: an unexpected error shows its traceback (for a bug report)

# --------------------------------------------------------------------------------------------------------------
# Venue resources

VENUE_PREFIX = "confluence-{venue}"
QUEUE_PER_STAGE = "{prefix}-{stage}"  # queue_mode per_stage (templates: config may override per module)
QUEUE_SHARED = "{prefix}-jobs"  # queue_mode shared
JOB_DEFINITION = "{prefix}-{module}"
RENEW_SCHEDULE_GROUP = "default"
RENEW_PUBLISHED = ("function-name", "schedule-name", "schedule-group", "kms-key-id", "credential-parameters")
# The credential parameters, by role, as the last path element existing module images read.
CREDENTIAL_PARAMETERS = {
    "key": "s3_creds_key",
    "secret": "s3_creds_secret",
    "token": "s3_creds_token",
    "expiration": "s3_creds_expiration",
}
# Environment variables naming those parameters in a module's job definition.
CREDENTIAL_ENV = {
    "key": "S3_CREDS_KEY_PARAMETER",
    "secret": "S3_CREDS_SECRET_PARAMETER",
    "token": "S3_CREDS_TOKEN_PARAMETER",
    "expiration": "S3_CREDS_EXPIRATION_PARAMETER",
}


# --------------------------------------------------------------------------------------------------------------
# Compute: where a module's containers run (``compute:`` in confluence.yaml)

FARGATE_SPOT = "fargate_spot"  # Fargate Spot first, Fargate On-Demand when Spot has no capacity (the default)
FARGATE = "fargate"
EC2_SPOT = "ec2_spot"  # EC2 Spot (SPOT_PRICE_CAPACITY_OPTIMIZED) first, EC2 On-Demand as fallback
EC2 = "ec2"
COMPUTE_KINDS = (FARGATE_SPOT, FARGATE, EC2_SPOT, EC2)
DEFAULT_COMPUTE = FARGATE_SPOT
# A job definition is built for one platform (its platformCapabilities).
PLATFORM_FARGATE = "FARGATE"
PLATFORM_EC2 = "EC2"
# AWS: a job queue holds either EC2/SPOT or FARGATE/FARGATE_SPOT environments, never both, and Batch tries them in
# order; so every compute kind gets queues of its own, named by this suffix after the stage (or shared) queue name.
QUEUE_SUFFIX = {FARGATE_SPOT: "", FARGATE: "-fargate", EC2_SPOT: "-ec2-spot", EC2: "-ec2"}


# A Spot kind's On-Demand kind: where a supervised run moves a child Spot keeps reclaiming.
ON_DEMAND = {FARGATE_SPOT: FARGATE, EC2_SPOT: EC2}


def on_demand_queue(prefix: str, compute: str, queue_compute: Mapping[str, str]) -> str | None:
    """The On-Demand queue a supervised run resubmits a Spot module's child to once Spot kept reclaiming it (None
    for an On-Demand kind): a queue of the On-Demand kind the venue already has (``queue_compute``: the config's
    queue -> compute kind), else for Fargate the efs tool's queue (Fargate On-Demand, in every venue), for EC2
    ``{prefix}-on-demand-ec2``, which the CDK app then creates. Reused rather than one per stage queue: AWS allows
    50 job queues per region, and a venue's share (``confluence:batchQuotaPerRegion`` /
    ``confluence:venuesPerRegion``: 16) holds the shipped workflow's 13 stage queues and the efs tool's, not 13
    more."""
    kind = ON_DEMAND.get(compute)
    if kind is None:
        return None
    existing = next((q for q, c in queue_compute.items() if c == kind), None)
    if existing is not None:
        return existing
    return efs_queue(prefix) if kind == FARGATE else on_demand_ec2_queue(prefix)


def on_demand_ec2_queue(prefix: str) -> str:
    """The EC2 On-Demand queue the CDK app adds for Spot retries when the venue has no EC2 queue of its own."""
    return f"{prefix}-on-demand-ec2"


def with_on_demand_queues(prefix: str, queue_compute: Mapping[str, str]) -> dict[str, str]:
    """Queue name -> compute kind, with the On-Demand queue of each Spot kind in use (:func:`on_demand_queue`) when
    it is a queue of its own (not the efs tool's, which the CDK app makes anyway)."""
    found = dict(queue_compute)
    for compute in dict.fromkeys(queue_compute.values()):
        other = on_demand_queue(prefix, compute, queue_compute)
        if other is not None and other != efs_queue(prefix):
            found.setdefault(other, ON_DEMAND[compute])
    return found


def platform(compute: str) -> str:
    """The job definition platform of a compute kind (``EC2`` or ``FARGATE``)."""
    return PLATFORM_EC2 if compute in (EC2_SPOT, EC2) else PLATFORM_FARGATE


def queue_environments(compute: str, *, fargate_spot: bool = True) -> tuple[tuple[bool, bool], ...]:
    """The compute environments of a compute kind's queues, in the order Batch tries them, as ``(ec2, spot)``
    pairs for :func:`compute_environment`. ``fargate_spot=False`` (``infrastructure.fargate_spot``) leaves
    Fargate Spot out."""
    if compute == FARGATE_SPOT:
        return ((False, True), (False, False)) if fargate_spot else ((False, False),)
    if compute == FARGATE:
        return ((False, False),)
    if compute == EC2_SPOT:
        return ((True, True), (True, False))
    return ((True, False),)


# --------------------------------------------------------------------------------------------------------------
# What modules read and write: secrets, buckets, EFS areas

# The venue's buckets (the Terraform deployment's sos, json and config); a module declares ro or rw on each.
VENUE_BUCKETS = ("sos", "json", "config")
BUCKET_MODES = ("ro", "rw")
# Where the efs tool's job definitions mount the file system root: area A is {EFS_ROOT}/A.
EFS_ROOT = "/mnt/efs"
EFS_ACTIONS = ("ls", "sync")
TAG_TOOL = "confluence:tool"


def secret_name(prefix: str, name: str) -> str:
    """The venue's Secrets Manager secret a module's ``secrets: {ENV: name}`` injects."""
    return f"/{prefix}/{name}"


def efs_queue(prefix: str) -> str:
    """The queue of the efs tool's one-off jobs (Fargate On-Demand, apart from the runs' queues)."""
    return f"{prefix}-efs"


def efs_job_definition(prefix: str, action: str) -> str:
    """``ls`` (a small image with ``ls``) or ``sync`` (the AWS CLI image), the file system mounted at EFS_ROOT."""
    return f"{prefix}-efs-{action}"


def efs_tool(action: str) -> str:
    """The ``confluence:tool`` tag of an efs job."""
    return f"efs-{action}"


def efs_job_name(action: str, stamp: str) -> str:
    return f"{efs_tool(action)}-{stamp}"


def access_point_wiring(root: str) -> str:
    """The SSM parameter (under ``/{prefix}/``) through which the storage stack hands the Batch stack the access
    point of an area or sub-directory (``flpe``, ``flpe/momma``)."""
    return f"storage/access-points/{root}"


def volume_name(root: str) -> str:
    """The ECS volume of a mount (``flpe``, ``flpe-momma``): letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", root.strip("/"))


def area_path(area: str, subdirectory: str = "") -> str:
    """An area (or a sub-directory of one) as a path from the file system root: ``/flpe/momma``."""
    return f"/{area}/{subdirectory}" if subdirectory else f"/{area}"


# A supervised run's state, one JSON document beside the run's ledger files.
SUPERVISOR_DOCUMENT = "supervisor.json"
# The supervisor's immutable objects beside it (a stage's pieces, its failures): supervisor-STAGE-KIND-SHA.json
SUPERVISOR_OBJECT_PREFIX = "supervisor-"


def supervisor_function(prefix: str) -> str:
    return f"{prefix}-supervisor"


def supervisor_parameter(prefix: str, key: str) -> str:
    """What stacks/supervisor.py publishes: ``ledger`` (s3://BUCKET/runs), ``function-name`` for the runtime,
    ``ledger-bucket`` (BUCKET) for the Batch stack's submitter policy."""
    return venue_parameter(prefix, f"supervisor/{key}")


# The event ``run --supervise cloud`` (and ``cancel`` of a cloud run) puts on the default EventBridge bus: the
# venue's supervisor function gets it through a rule of its own (stacks/supervisor.py), like the Batch events.
SUPERVISOR_EVENT_SOURCE = "confluence.supervisor"
SUPERVISOR_EVENT = "Confluence Supervised Run"
RUN_STARTED, RUN_CANCELLED = "started", "cancelled"


def supervisor_event(prefix: str, run_id: str, change: str, ledger: str) -> dict[str, str]:
    """The PutEvents entry telling the venue's supervisor function to look at a run (``change``: RUN_STARTED
    or RUN_CANCELLED; ``ledger``: where the run was recorded)."""
    detail = {"prefix": prefix, "run_id": run_id, "change": change, "ledger": ledger}
    return {
        "Source": SUPERVISOR_EVENT_SOURCE,
        "DetailType": SUPERVISOR_EVENT,
        "Detail": json.dumps(detail, separators=(",", ":")),
    }


BATCH_EVENT_SOURCE, BATCH_EVENT = "aws.batch", "Batch Job State Change"


def batch_event_pattern(queue_arns: Iterable[Any] = (), queue_arn_prefixes: Iterable[Any] = ()) -> dict[str, Any]:
    """The supervisor rule's pattern: parent jobs reaching a terminal state in the venue's queues (``queue_arns``
    exactly, or any queue whose ARN starts with one of ``queue_arn_prefixes``: ``...:job-queue/{prefix}-``).

    Only fields AWS documents for the event decide (the "Batch Job State Change" example of the Batch user guide:
    ``jobQueue``, ``status``, ``arrayProperties``); not the job's tags: the documented example carries
    ``"tags": {"resourceArn": ...}``, and whether real events carry the job's own tags is not settled. Which run a
    job belongs to, and whether it is supervised, the function reads from the job name and the ledger.

    AWS sends a Batch Job State Change for every array child too (``arrayProperties.index``): ~2.1 million per
    global run, each a Lambda invocation the handler would only ignore. EventBridge drops them instead: "exists"
    matches on leaf nodes ("Comparison operators only work on leaf nodes", EventBridge user guide), and
    ``arrayProperties.index`` is one; a parent or a plain job has no index."""
    queues: list[Any] = [*queue_arns, *({"prefix": p} for p in queue_arn_prefixes)]
    return {
        "source": [BATCH_EVENT_SOURCE],
        "detail-type": [BATCH_EVENT],
        "detail": {
            "jobQueue": queues,
            "status": list(FINAL),
            "arrayProperties": {"index": [{"exists": False}]},
        },
    }


def supervisor_rules(prefix: str) -> tuple[str, str, str]:
    """The supervisor's EventBridge rules: Batch events, runs handed over or cancelled, the sweep."""
    function = supervisor_function(prefix)
    return function, f"{function}-runs", f"{function}-sweep"


SCHEDULE_SOURCE, SCHEDULED_EVENT = "aws.events", "Scheduled Event"
SWEEP_MINUTES = 5  # the supervisor's sweep: a lost, late or dead-lettered event delays a run at most this long


def supervisor_event_pattern(prefix: str) -> dict[str, Any]:
    """The rule pattern matching :func:`supervisor_event` of this venue only (one account holds several venues)."""
    return {"source": [SUPERVISOR_EVENT_SOURCE], "detail-type": [SUPERVISOR_EVENT], "detail": {"prefix": [prefix]}}


# The folder of the supervisor's ledger bucket every run's objects live under (``runs/RUN_ID/...``): the submitter
# policy grants exactly that folder.
LEDGER_FOLDER = "runs"


def ledger_location(json_bucket: str) -> str:
    """Where a venue's shared run ledger lives: cloud-supervised runs and ``--ledger`` mirrors."""
    return f"s3://{json_bucket}/{LEDGER_FOLDER}"


def venue_prefix(venue: str) -> str:
    return VENUE_PREFIX.format(venue=venue)


def venue_names(prefix: str) -> str:
    """The IAM wildcard of every queue and job definition name the venue's defaults give (``{prefix}-*``). The '-'
    keeps confluence-dev's names apart from confluence-dev1's; a deployed prefix has exactly one '-'
    (stacks/checks.py), so no venue's prefix is another's followed by '-'."""
    return f"{prefix}-*"


def in_venue_names(prefix: str, name: str) -> bool:
    """Whether ``venue_names(prefix)`` covers ``name`` (queue or job definition names chosen in the yaml may not)."""
    return name.startswith(f"{prefix}-")


def barrier_definition(prefix: str, platform: str = PLATFORM_FARGATE) -> str:
    """The job definition of every fan-in barrier (a minimal job that exits 0), one per platform: a barrier runs
    in the queue of its stage's first module, and a Fargate definition cannot run in an EC2 queue."""
    return f"{prefix}-{BARRIER}" if platform == PLATFORM_FARGATE else f"{prefix}-{BARRIER}-ec2"


def compute_environment(prefix: str, *, spot: bool, ec2: bool = False) -> str:
    kind = "ec2" if ec2 else "fargate"
    return f"{prefix}-{kind}-spot" if spot else f"{prefix}-{kind}"


def consumable_resource(prefix: str, name: str) -> str:
    """The AWS Batch consumable resource of ``infrastructure.consumable_resources.NAME`` (``{prefix}-hydrocron``)."""
    return f"{prefix}-{name}"


def ecr_repository(prefix: str, module: str) -> str:
    """The stack's image repository of a module without its own ``image``."""
    return f"{prefix}-{module}"


def renew_function(prefix: str) -> str:
    return f"{prefix}-renew"


def renew_schedule(prefix: str) -> str:
    return f"{prefix}-renew"


def venue_parameter(prefix: str, name: str) -> str:
    """``/{prefix}/{name}``: an SSM parameter of the venue; the stacks hand each other values through
    ``{stack kind}/...`` ones (stacks/constructs/wiring.py), e.g. ``storage/access-points/input``."""
    return f"/{prefix}/{name}"


def alerts_topic(prefix: str) -> str:
    """The SNS topic every alarm of a venue notifies (stacks/alerts.py)."""
    return f"{prefix}-alerts"


def renew_lock(prefix: str) -> str:
    """The String parameter a renewal holds while it writes the credentials (lambdas/renew/handler.py)."""
    return f"/{prefix}/renew/lock"


def renew_published_path(prefix: str) -> str:
    """Where stacks/renew.py publishes the names of its resources (``{path}{key}`` for key in RENEW_PUBLISHED)."""
    return f"/{prefix}/renew/"


def credential_parameters(prefix: str) -> dict[str, str]:
    """Role (key, secret, token, expiration) -> SSM parameter name, in the order the Lambda writes them."""
    return {role: f"/{prefix}/{name}" for role, name in CREDENTIAL_PARAMETERS.items()}


# PO.DAAC's archive buckets (podaac-ops-cumulus-protected, podaac-swot-ops-cumulus-protected, ...): what the
# temporary credentials modules read are for, and all that `credentials simulate` lets its stored session read.
PODAAC_BUCKETS = "podaac-*"


def simulate_session(prefix: str) -> str:
    """The federated user / role session name of `credentials simulate` (AWS allows 2 to 32 characters)."""
    return f"{prefix}-simulate"[:32]


def earthdata_secret(prefix: str) -> str:
    return f"/{prefix}/earthdata-login"


# --------------------------------------------------------------------------------------------------------------
# Job names


def run_name_prefix(run_id: str) -> str:
    """What every job name of a run starts with (a ListJobs JOB_NAME filter adds the ``*``)."""
    return f"{run_id}_"


def run_id_candidates(job_name: str) -> list[str]:
    """The run ids a job name may belong to, shortest first: a run id may itself hold ``_`` (so may stage and
    module names), so each ``_`` of the name may end it. The ledger says which one is a run."""
    return [job_name[:i] for i, c in enumerate(job_name) if c == "_" and i > 0]


def job_name(run_id: str, stage: str, module: str, index: int, shard: int | None = None) -> str:
    """Job ``index`` of a module; ``shard`` only when a large array is split into several submissions."""
    name = f"{run_id}_{stage}_{module}_{index}"
    return name if shard is None else f"{name}-{shard}"


def module_jobs_glob(run_id: str, stage: str, module: str) -> str:
    """A glob matching every job of a module in a run (each ``num_jobs`` job and each shard)."""
    return f"{run_id}_{stage}_{module}_*"


def barrier_name(run_id: str, stage: str, number: int) -> str:
    return f"{run_id}_{stage}_{BARRIER}-{number}"


def rerun_name(plan_job: str, generation: int) -> str:
    return f"{plan_job}_rerun-{generation}"


def retry_name(run_id: str, stage: str, module: str, index: int, generation: int, chunk: int = 0) -> str:
    base = f"{job_name(run_id, stage, module, index)}_retry-{generation}"
    return base if chunk == 0 else f"{base}-{chunk}"


def retry_barrier_name(run_id: str, stage: str, generation: int, number: int) -> str:
    return f"{run_id}_{stage}_{BARRIER}-retry-{generation}-{number}"


_RETRY_RE = re.compile(r"^(?P<base>.+)_retry-(?P<gen>\d+)(?:-(?P<chunk>\d+))?$")
_RERUN_RE = re.compile(r"^(?P<base>.+)_rerun-(?P<gen>\d+)$")
_RETRY_BARRIER_RE = re.compile(r"^(?P<base>.+)_" + BARRIER + r"-retry-(?P<gen>\d+)-(?P<number>\d+)$")


@dataclass(frozen=True)
class ParsedName:
    """What a job name says about the job: which plan job it stands for, and in which retry generation."""

    name: str
    kind: str  # "plan" (the original plan's), "rerun", "retry" (a compact retry) or "retry-barrier"
    generation: int = 0
    base: str = ""  # plan: the name; rerun: the plan job; retry: the logical job {run}_{stage}_{module}_{i}
    chunk: int = 0

    @property
    def compact_retry(self) -> bool:
        """A compact retry: failed indices of a logical job, told their global indices by the environment."""
        return self.kind == "retry"

    @property
    def retry_barrier(self) -> bool:
        return self.kind == "retry-barrier"

    @property
    def plan_name(self) -> str | None:
        """The plan job this job stands for now; None for compact retries and their barriers (they stand for
        failed indices, not for one plan job)."""
        return self.base if self.kind in ("plan", "rerun") else None


def parse_name(name: str) -> ParsedName:
    match = _RETRY_BARRIER_RE.match(name)
    if match:
        return ParsedName(name, "retry-barrier", int(match["gen"]), match["base"], int(match["number"]))
    match = _RETRY_RE.match(name)
    if match:
        return ParsedName(name, "retry", int(match["gen"]), match["base"], int(match["chunk"] or 0))
    match = _RERUN_RE.match(name)
    if match:
        return ParsedName(name, "rerun", int(match["gen"]), match["base"])
    return ParsedName(name, "plan", 0, name)


def generation(name: str) -> int:
    """0 for a job of the original plan, g for jobs added by the g-th retry-failed."""
    return parse_name(name).generation


def plan_name(name: str) -> str | None:
    """The plan job a job stands for (a rerun stands for its plan job; a compact retry for none)."""
    return parse_name(name).plan_name


# --------------------------------------------------------------------------------------------------------------
# Tags and environment of one submission


RUN_PLACEHOLDERS = ("{run_id}", "{origin_run_id}")


def expand_run(text: str, run_id: str, origin_run_id: str | None = None) -> str:
    """``{run_id}`` and ``{origin_run_id}`` (the run a recovered run came from; a fresh run's own id) in a module's
    arguments and environment values. A plain replace: other braces (JSON payloads) are left alone."""
    return text.replace("{run_id}", run_id).replace("{origin_run_id}", origin_run_id or run_id)


def job_tags(
    prefix: str,
    run_id: str,
    stage: str,
    module: str,
    name: str,
    *,
    extra: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    generation: int | None = None,
) -> dict[str, str]:
    """The tags of one submission: the config's own (``extra``) overridden by every identity tag, then the job
    name, then for retry-failed's jobs the kind and generation. The only place job tags are put together."""
    tags = dict(extra.items() if isinstance(extra, Mapping) else extra)
    tags.update({TAG_RUN: run_id, TAG_STAGE: stage, TAG_MODULE: module, TAG_PREFIX: prefix, TAG_JOB: name})
    if generation is not None:
        tags.update({TAG_KIND: RETRY, TAG_GENERATION: str(generation)})
    return tags


def job_environment(
    run_id: str,
    stage: str,
    module: str,
    *,
    job_index: int,
    num_jobs: int,
    array_offset: int,
    array_size: int,
    items_per_child: int = 1,
    extra: Iterable[tuple[str, str]] = (),
) -> dict[str, str]:
    """The container environment of a module job: the config's own, then the ``CONFLUENCE_*`` contract.

    ``array_offset`` counts children (the first child of this shard); ``array_size`` counts items. A packed job
    (``items_per_child`` > 1) also gets the first item of its child 0 and the items per child.
    """
    environment = {
        **dict(extra),
        ENV_RUN_ID: run_id,
        ENV_STAGE: stage,
        ENV_MODULE: module,
        ENV_JOB_INDEX: str(job_index),
        ENV_NUM_JOBS: str(num_jobs),
        ENV_ARRAY_OFFSET: str(array_offset),
        ENV_ARRAY_SIZE: str(array_size),
    }
    if items_per_child > 1:
        environment[ENV_ITEM_START] = str(array_offset * items_per_child)
        environment[ENV_ITEM_COUNT] = str(items_per_child)
    return environment


def items_of_child(child: int, items_per_child: int, item_count: int) -> range:
    """The items global child ``child`` handles (what a failed child reports, what its retry redoes)."""
    first = child * items_per_child
    return range(first, min(first + items_per_child, item_count))


def items_in_environment(environment: Mapping[str, str], array_index: int) -> range:
    """The items a module's child reads from its environment and ``AWS_BATCH_JOB_ARRAY_INDEX``, as the README's
    module loop does: a compact array's index map (or a single index) names global children; otherwise the
    child's first item follows from the shard's first item (or its offset) and the items per child."""
    count = int(environment.get(ENV_ITEM_COUNT, "1"))
    if environment.get(ENV_INDEX_MAP):
        child = decode_index_map(environment[ENV_INDEX_MAP])[array_index]
        return items_of_child(child, count, int(environment[ENV_ARRAY_SIZE]))
    if environment.get(ENV_INDEX):
        return items_of_child(int(environment[ENV_INDEX]), count, int(environment[ENV_ARRAY_SIZE]))
    first = int(environment.get(ENV_ITEM_START, environment.get(ENV_ARRAY_OFFSET, "0"))) + array_index * count
    return range(first, min(first + count, int(environment[ENV_ARRAY_SIZE])))


def index_token(first: int, last: int) -> str:
    """One run of consecutive indices in an index map: ``7``, ``7,8`` or ``7-9`` (a range from three on, where
    it is no longer than listing them)."""
    if first == last:
        return str(first)
    if last == first + 1:
        return f"{first},{last}"
    return f"{first}-{last}"


def encode_index_map(indices: Iterable[int]) -> str:
    """``CONFLUENCE_INDEX_MAP``: the indices in order, runs of three or more as ``FIRST-LAST``
    (``0-211,213-4097``), so one 8,192-character override holds thousands of survivors, not a thousand."""
    if isinstance(indices, IndexMap):
        return indices.text  # already this encoding: read back from a document, never decoded
    tokens: list[str] = []
    first = last = None
    for index in indices:
        if last is not None and index == last + 1:
            last = index
            continue
        if first is not None and last is not None:
            tokens.append(index_token(first, last))
        first = last = index
    if first is not None and last is not None:
        tokens.append(index_token(first, last))
    return ",".join(tokens)


def decode_index_map(text: str) -> list[int]:
    """The indices of ``CONFLUENCE_INDEX_MAP`` (child ``AWS_BATCH_JOB_ARRAY_INDEX`` works on the one at that
    position): comma-separated numbers and ``FIRST-LAST`` ranges."""
    found: list[int] = []
    for token in text.split(","):
        first, _, last = token.partition("-")
        found.extend(range(int(first), int(last or first) + 1))
    return found


class IndexMap(Sequence[int]):
    """An index map as a document keeps it (:func:`encode_index_map`'s text), decoded only when an index is
    asked for. A supervised invocation reads the claim of its stage, whose pieces hold up to a stage's whole
    reach count in index maps, and needs only their names and counts: decoding every map at every invocation
    made the supervisor's work per recorded job grow with the reaches. Equal to any sequence of the same
    indices (a tuple, a list)."""

    __slots__ = ("_decoded", "_length", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._decoded: list[int] | None = None
        self._length: int | None = None

    def _indices(self) -> list[int]:
        if self._decoded is None:
            self._decoded = decode_index_map(self.text) if self.text else []
        return self._decoded

    def __len__(self) -> int:
        if self._length is None:
            if self._decoded is not None:
                self._length = len(self._decoded)
            else:  # counted from the runs, without building the list
                length = 0
                for token in self.text.split(",") if self.text else ():
                    first, _, last = token.partition("-")
                    length += int(last) - int(first) + 1 if last else 1
                self._length = length
        return self._length

    def __bool__(self) -> bool:
        return bool(self.text)

    def __getitem__(self, index: Any) -> Any:
        return self._indices()[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IndexMap):
            return self.text == other.text
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self._indices() == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._indices()))

    def __repr__(self) -> str:
        return f"IndexMap({self.text!r})"


def index_environment(indices: Sequence[int]) -> dict[str, str]:
    """How a compact retry tells its children their global indices (a single index: a plain job)."""
    if len(indices) == 1:
        return {ENV_INDEX: str(indices[0])}
    return {ENV_INDEX_MAP: encode_index_map(indices)}


def indices_from_environment(environment: Mapping[str, str]) -> list[int] | None:
    """The global indices a compact retry stands for, read back from its environment (None: not a retry)."""
    if environment.get(ENV_INDEX_MAP):
        return decode_index_map(environment[ENV_INDEX_MAP])
    if environment.get(ENV_INDEX):
        return [int(environment[ENV_INDEX])]
    return None
