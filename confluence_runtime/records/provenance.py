"""The run record: what ran, kept in the ledger beside the run's header (``RUN_ID/provenance.json``).

A job definition names an image *tag*, and an ``items`` list is an S3 object anyone may overwrite: neither says,
after the fact, what a run used. The record says it, written before the first SubmitJob and completed as the run
goes:

- the yaml as submitted (its text, not only its hash), the tool's version and the git commit of the yaml's
  repository (and whether the file differed from that commit), the account, region, venue, prefix and endpoint;
- every job definition the run names, as the ARN with the revision AWS runs (SubmitJob with a bare name runs the
  latest ACTIVE revision), its image and that image's ``sha256:`` digest (ECR DescribeImages: a mutable tag may
  name another image tomorrow, the digest never does);
- each ``items`` list's S3 version id (a versioned bucket), ETag and SHA-256, and how many items it held; the
  values themselves go to ``RUN_ID/items.json`` so ``lineage`` can turn a reach id into an index later;
- each module's resolved array size, items per child and a fingerprint of its stage (a recovered run refuses an
  origin whose earlier stages the yaml has since changed);
- per job, the job definition revision it was submitted under (added once the jobs are accepted);
- links between runs: ``origin_run_id``/``from_stage``/``subset`` for a run recovered from a stage, and
  ``recovered_by`` on the origin.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..aws.api import AwsOptions, Batch, image_digest, s3_object
from ..config import Config, Module
from ..errors import AwsError
from ..planning.plan import Plan
from ..planning.shaping import module_to_dict
from .ledger import Ledger, RunHeader, now_iso

PROVENANCE = "provenance.json"
ITEMS = "items.json"


@dataclass(frozen=True)
class DefinitionRecord:
    """One job definition as the run used it."""

    name: str
    arn: str  # with the revision: arn:aws:batch:REGION:ACCOUNT:job-definition/NAME:REVISION
    revision: int
    image: str
    digest: str | None  # sha256:...; None when it could not be resolved (digest_source says why)
    digest_source: str


@dataclass(frozen=True)
class ItemsRecord:
    """One module's ``items`` list as it was read for the run."""

    module: str  # stage.module
    url: str
    count: int
    sha256: str
    etag: str
    version_id: str | None  # None: the bucket is not versioned (only the ETag and hash identify the content)


@dataclass(frozen=True)
class ModuleRecord:
    """What a later command needs of a module without the yaml: its definition, size, packing and stage."""

    stage: str
    module: str
    job_definition: str
    array_size: int  # items (after reading an items list); 0 = a plain job
    items_per_child: int
    stage_fingerprint: str  # SHA-256 of the stage's modules as submitted (array sizes from items lists left out)

    @property
    def key(self) -> str:
        return f"{self.stage}.{self.module}"


@dataclass(frozen=True)
class Provenance:
    run_id: str
    recorded_at: str
    tool_version: str
    config_path: str
    config_sha256: str
    config_text: str
    git_commit: str | None  # the commit of the yaml's repository; None outside a git work tree
    git_dirty: bool | None  # True: the yaml differed from that commit when the run started
    account: str | None
    region: str
    venue: str | None
    prefix: str
    endpoint: str | None
    stages: tuple[str, ...] = ()
    modules: tuple[ModuleRecord, ...] = ()
    definitions: tuple[DefinitionRecord, ...] = ()
    items: tuple[ItemsRecord, ...] = ()
    jobs: tuple[tuple[str, str], ...] = ()  # job id -> job definition ARN with revision
    origin_run_id: str | None = None
    from_stage: str | None = None
    subset: tuple[int, ...] = ()  # item indices of the origin a recovered run redoes; empty: all of them
    recovered_by: tuple[str, ...] = ()  # runs recovered from this one

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["jobs"] = dict(self.jobs)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        return cls(
            **{
                **values,
                "stages": tuple(data.get("stages") or ()),
                "modules": tuple(_record(ModuleRecord, m) for m in data.get("modules") or ()),
                "definitions": tuple(_record(DefinitionRecord, d) for d in data.get("definitions") or ()),
                "items": tuple(_record(ItemsRecord, i) for i in data.get("items") or ()),
                "jobs": tuple((str(k), str(v)) for k, v in dict(data.get("jobs") or {}).items()),
                "subset": tuple(int(i) for i in data.get("subset") or ()),
                "recovered_by": tuple(str(r) for r in data.get("recovered_by") or ()),
            }
        )

    def definition(self, name_or_arn: str) -> DefinitionRecord | None:
        for d in self.definitions:
            if name_or_arn in (d.name, d.arn):
                return d
        return None

    def module(self, stage: str, module: str) -> ModuleRecord | None:
        return next((m for m in self.modules if (m.stage, m.module) == (stage, module)), None)

    @property
    def job_map(self) -> dict[str, str]:
        return dict(self.jobs)


def _record(cls: Any, data: Mapping[str, Any]) -> Any:
    known = set(cls.__dataclass_fields__)
    return cls(**{k: v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------------------------------------------
# Pure parts


def stage_fingerprint(modules: Sequence[Module]) -> str:
    """A stage's modules as submitted; a size read from an items list is left out (it is the run's data, and a
    recovered run takes it from its origin)."""
    data = []
    for module in modules:
        entry = module_to_dict(module)
        if module.items:
            entry["array_size"] = None
        data.append(entry)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def module_records(config: Config) -> tuple[ModuleRecord, ...]:
    records: list[ModuleRecord] = []
    for stage in config.stages:
        fingerprint = stage_fingerprint(stage.modules)
        records.extend(
            ModuleRecord(m.stage, m.name, m.job_definition, m.array_size, m.items_per_child, fingerprint)
            for m in stage.modules
        )
    return tuple(records)


def latest_revisions(described: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The ACTIVE revision SubmitJob runs for each bare name: the highest ("the latest active revision is used")."""
    latest: dict[str, Mapping[str, Any]] = {}
    for d in described:
        name = str(d["jobDefinitionName"])
        if name not in latest or int(d["revision"]) > int(latest[name]["revision"]):
            latest[name] = d
    return latest


def definition_image(definition: Mapping[str, Any]) -> str:
    container = definition.get("containerProperties") or {}
    if container.get("image"):
        return str(container["image"])
    for c in (definition.get("ecsProperties") or {}).get("taskProperties", [{}])[0].get("containers", []):
        return str(c.get("image", ""))
    return ""


def job_definitions_of(plan: Plan, provenance: Provenance, job_ids: Mapping[str, str]) -> dict[str, str]:
    """Job id -> the definition ARN (with revision) each accepted submission ran under."""
    by_name = {s.name: s.job_definition for s in plan.submissions}
    found = {}
    for name, job_id in job_ids.items():
        definition = provenance.definition(by_name.get(name, ""))
        if definition is not None:
            found[job_id] = definition.arn
    return found


# --------------------------------------------------------------------------------------------------------------
# Collecting it (asks git, Batch, ECR and S3)


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """The HEAD commit of the repository holding ``path`` and whether ``path`` differs from it; (None, None)
    outside a git work tree or without git."""
    folder = path.resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", path.name],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head.stdout.strip() or None, bool(status.stdout.strip()) if status.returncode == 0 else None


def collect_definitions(batch: Batch, options: AwsOptions | None, names: Sequence[str]) -> list[DefinitionRecord]:
    described = latest_revisions(batch.describe_job_definitions(sorted(set(names)))) if names else {}
    digests: dict[str, tuple[str | None, str]] = {}
    records = []
    for name in sorted(described):
        d = described[name]
        image = definition_image(d)
        if image not in digests:
            digests[image] = image_digest(options, image) if image else (None, "the definition names no image")
        digest, source = digests[image]
        records.append(DefinitionRecord(name, str(d["jobDefinitionArn"]), int(d["revision"]), image, digest, source))
    return records


# (stage, module) -> the module's items list as read once for a run: its record and its values.
ItemsLists = Mapping[tuple[str, str], tuple[ItemsRecord, list[Any]]]


def items_location(url: str) -> str:
    """``url`` when it is an ``s3://BUCKET/KEY`` location (an items list's only form), else the error naming it."""
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise AwsError(f"{url}: items must be an s3://BUCKET/KEY location")
    return url


def items_from_body(url: str, body: bytes) -> list[Any]:
    """An items list's values: the object at ``url`` must be a JSON array (the one check every reader makes)."""
    try:
        values = json.loads(body)
    except ValueError as e:
        raise AwsError(f"items {url} is not JSON: {e}") from e
    if not isinstance(values, list):
        raise AwsError(f"items {url} is not a JSON array (got {type(values).__name__})")
    return values


def read_items_list(options: AwsOptions | None, module: Module) -> tuple[ItemsRecord, list[Any]]:
    """A module's ``items``: a JSON array at ``s3://BUCKET/KEY``, with its version, ETag and SHA-256."""
    url = items_location(module.items or "")
    try:
        body, version, etag = s3_object(options, url)
    except Exception as e:
        raise AwsError(f"reading items {url}: {e}") from e
    values = items_from_body(url, body)
    digest = hashlib.sha256(body).hexdigest()
    record = ItemsRecord(f"{module.stage}.{module.name}", url, len(values), digest, etag, version)
    return record, values


def read_items_lists(
    options: AwsOptions | None, config: Config
) -> dict[tuple[str, str], tuple[ItemsRecord, list[Any]]]:
    """Every ``items`` list of the config, each read once: an unsupervised run sizes its arrays from these and
    records these (``record_run``'s ``items_read``), so what it records is what it submitted."""
    return {(m.stage, m.name): read_items_list(options, m) for m in config.modules if m.items}


def collect(
    config: Config,
    plan: Plan,
    header: RunHeader,
    batch: Batch,
    options: AwsOptions | None,
    *,
    items_values: dict[str, list[Any]] | None = None,
    items_from: Provenance | None = None,
    items_read: ItemsLists | None = None,
) -> Provenance:
    """The run record of a run about to be submitted (everything but its jobs). ``items_values`` receives each
    items list's values (stage.module -> values). ``items_from``: a recovered run's origin, whose items lists
    (as read for it) the run uses instead of reading them again. ``items_read``: the lists as the caller already
    read them (``read_items_lists``), not read again."""
    path = Path(config.source)
    text = path.read_text() if path.is_file() else ""
    commit, dirty = git_state(path) if path.is_file() else (None, None)
    definitions = collect_definitions(batch, options, [s.job_definition for s in plan.submissions])
    keys = {f"{m.stage}.{m.name}" for m in config.modules}
    items = []
    for module in config.modules if items_from is None else ():
        if module.items:
            read = (items_read or {}).get((module.stage, module.name))
            record, values = read if read is not None else read_items_list(options, module)
            items.append(record)
            if items_values is not None:
                items_values[record.module] = values
    return Provenance(
        run_id=plan.run_id,
        recorded_at=now_iso(),
        tool_version=__version__,
        config_path=str(path),
        config_sha256=header.config_sha256,
        config_text=text,
        git_commit=commit,
        git_dirty=dirty,
        account=header.account,
        region=header.region,
        venue=header.venue,
        prefix=plan.prefix,
        endpoint=header.endpoint,
        stages=tuple(plan.stages),
        modules=_sized(module_records(config), items),
        definitions=tuple(definitions),
        items=tuple(items) if items_from is None else tuple(i for i in items_from.items if i.module in keys),
    )


def _sized(modules: tuple[ModuleRecord, ...], items: Sequence[ItemsRecord]) -> tuple[ModuleRecord, ...]:
    """A supervised run's items modules are sized when their stage starts: record the length read now."""
    counts = {i.module: i.count for i in items}
    return tuple(
        replace(m, array_size=counts[m.key]) if m.key in counts and m.array_size < 2 <= counts[m.key] else m
        for m in modules
    )


# --------------------------------------------------------------------------------------------------------------
# In the ledger


def write(ledger: Ledger, provenance: Provenance, items_values: Mapping[str, list[Any]] | None = None) -> None:
    """Write the record (keeping jobs and links a concurrent writer already added) and the items' values."""
    if items_values:
        ledger.update(provenance.run_id, ITEMS, lambda old: {**(old or {}), **items_values})

    def mutate(old: Any) -> Any:
        if old is None:
            return provenance.to_dict()
        current = Provenance.from_dict(old)
        merged = replace(
            provenance,
            jobs=tuple({**current.job_map, **provenance.job_map}.items()),
            recovered_by=tuple(dict.fromkeys([*current.recovered_by, *provenance.recovered_by])),
        )
        return merged.to_dict()

    ledger.update(provenance.run_id, PROVENANCE, mutate)


def record_run(
    ledger: Ledger,
    config: Config,
    plan: Plan,
    header: RunHeader,
    batch: Batch,
    options: AwsOptions | None,
    *,
    origin_run_id: str | None = None,
    from_stage: str | None = None,
    subset: Sequence[int] = (),
    modules_from: Config | None = None,
    items_read: ItemsLists | None = None,
) -> Provenance:
    """Collect and write the record of a run about to be submitted (``start_run``'s ``provenance``); a run
    recovered from another is linked to it both ways. ``modules_from``: the config its modules are recorded from
    (a supervised recovery hands its supervisor a config with sizes fixed; the record keeps the yaml's);
    ``items_read``: the items lists the run was sized from (``read_items_lists``)."""
    values: dict[str, list[Any]] = {}
    origin = read(ledger, origin_run_id) if origin_run_id is not None else None
    record = collect(
        config, plan, header, batch, options, items_values=values, items_from=origin, items_read=items_read
    )
    if origin is not None:
        kept = read_items(ledger, origin.run_id)
        values = {i.module: kept[i.module] for i in record.items if i.module in kept}
    record = replace(record, origin_run_id=origin_run_id, from_stage=from_stage, subset=tuple(subset))
    if modules_from is not None:
        record = replace(record, modules=module_records(modules_from))
    write(ledger, record, values)
    if origin_run_id is not None:
        note_recovered_by(ledger, origin_run_id, plan.run_id)
    return record


def read(ledger: Ledger, run_id: str) -> Provenance | None:
    data = ledger.read(run_id, PROVENANCE)
    return Provenance.from_dict(data) if isinstance(data, Mapping) else None


def links(ledger: Ledger, run_id: str) -> dict[str, Any]:
    """How a run is linked to others (``status``, ``runs`` and ``report`` show it); {} for a run with no link."""
    record = read(ledger, run_id)
    if record is None or not (record.origin_run_id or record.recovered_by):
        return {}
    found: dict[str, Any] = {}
    if record.origin_run_id:
        found.update(origin_run_id=record.origin_run_id, from_stage=record.from_stage, subset=len(record.subset))
    if record.recovered_by:
        found["recovered_by"] = list(record.recovered_by)
    return found


def link_text(found: Mapping[str, Any]) -> str | None:
    """One line saying how a run is linked, or None."""
    parts = []
    if found.get("origin_run_id"):
        subset = f" on {found['subset']} items" if found.get("subset") else ""
        parts.append(f"recovered from run {found['origin_run_id']} at stage {found['from_stage']}{subset}")
    if found.get("recovered_by"):
        parts.append(f"recovered by run {', '.join(found['recovered_by'])}")
    return "; ".join(parts) or None


def read_items(ledger: Ledger, run_id: str) -> dict[str, list[Any]]:
    data = ledger.read(run_id, ITEMS)
    return {str(k): list(v) for k, v in data.items()} if isinstance(data, Mapping) else {}


def _mutate_record(ledger: Ledger, run_id: str, change: Callable[[Provenance], Provenance]) -> None:
    def mutate(old: Any) -> Any:
        return change(Provenance.from_dict(old)).to_dict() if old is not None else old

    if ledger.read(run_id, PROVENANCE) is not None:
        ledger.update(run_id, PROVENANCE, mutate)


def note_jobs(ledger: Ledger, run_id: str, jobs: Mapping[str, str]) -> None:
    """Add job id -> definition ARN pairs as the jobs are accepted."""
    if jobs:
        _mutate_record(ledger, run_id, lambda p: replace(p, jobs=tuple({**p.job_map, **jobs}.items())))


def note_recovered_by(ledger: Ledger, origin: str, run_id: str) -> None:
    _mutate_record(ledger, origin, lambda p: replace(p, recovered_by=tuple(dict.fromkeys([*p.recovered_by, run_id]))))


__all__ = [
    "ITEMS",
    "PROVENANCE",
    "DefinitionRecord",
    "ItemsRecord",
    "ModuleRecord",
    "Provenance",
    "collect",
    "git_state",
    "job_definitions_of",
    "link_text",
    "links",
    "module_records",
    "note_jobs",
    "note_recovered_by",
    "read",
    "read_items",
    "record_run",
    "stage_fingerprint",
    "write",
]
