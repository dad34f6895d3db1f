"""A run as a Workflow Run RO-Crate (pure): ``ro-crate-metadata.json`` beside the report files.

It follows the Provenance Run Crate profile (w3id.org/ro/wfrun/provenance/0.5, which includes the Workflow and
Process Run Crate profiles and Workflow RO-Crate 1.0):

- the root dataset's ``mainEntity`` is the workflow, ``confluence.yaml`` (the text the run submitted, copied into
  the crate), typed File, SoftwareSourceCode, ComputationalWorkflow and HowTo; its ``hasPart`` are the tools and
  its ``step`` the HowToSteps, one per module, in stage order (``position``);
- each module is a tool (SoftwareApplication) whose ``softwareVersion`` is its image's ``sha256:`` digest, and each
  tool run names a ``containerImage`` (ContainerImage: registry, name, tag, sha256);
- the run is a CreateAction (``instrument``: the workflow; ``object``: the items lists, by S3 URL with their version
  id and SHA-256; ``result``: the report files), mentioned by the root dataset;
- each job (array parent, plain job, retry) is a CreateAction of its module's tool with start, end and
  ``actionStatus``, orchestrated by a ControlAction per job, all under one OrganizeAction of confluence-submit.

Readers: the ``rocrate`` Python library (``ROCrate(path)``), WorkflowHub (uploads of Workflow RO-Crates),
``runcrate`` (conversion to and from the profiles), and any JSON-LD tool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import names
from ..aws.api import parse_ecr_image
from ..records.ledger import JobOutcome, RunHeader
from ..records.provenance import Provenance
from ..records.record import Row
from ..states import FAILED, SUCCEEDED

METADATA_FILE = "ro-crate-metadata.json"
WORKFLOW_FILE = "confluence.yaml"
CONTEXT = ["https://w3id.org/ro/crate/1.1/context", "https://w3id.org/ro/terms/workflow-run/context"]
PROFILES = (
    "https://w3id.org/ro/wfrun/process/0.5",
    "https://w3id.org/ro/wfrun/workflow/0.5",
    "https://w3id.org/ro/wfrun/provenance/0.5",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
)
DOCKER_IMAGE = "https://w3id.org/ro/terms/workflow-run#DockerImage"
LANGUAGE_ID = "#confluence-yaml"


def _ref(identifier: str) -> dict[str, str]:
    return {"@id": identifier}


def action_status(outcome: JobOutcome | None) -> str:
    """schema.org's ActionStatusType of a job as last observed."""
    if outcome is None:
        return "http://schema.org/PotentialActionStatus"
    if outcome.status == SUCCEEDED:
        return "http://schema.org/CompletedActionStatus"
    if outcome.status == FAILED:
        return "http://schema.org/FailedActionStatus"
    return "http://schema.org/ActiveActionStatus"


def container_image(image: str, digest: str | None) -> dict[str, Any]:
    """A ContainerImage entity: registry, repository name, tag and the digest without its ``sha256:``."""
    parsed = parse_ecr_image(image)
    if parsed is not None:
        registry = image.split("/", 1)[0]
        repository, tag = parsed[2], parsed[3]
    else:
        first, _, rest = image.partition("/")
        registry = first if rest and ("." in first or ":" in first) else "docker.io"
        path = rest if registry == first else image
        repository, _, tag = path.partition("@")[0].rpartition(":") if ":" in path else (path, "", "latest")
    entity: dict[str, Any] = {
        "@id": f"#image-{image}",
        "@type": "ContainerImage",
        "additionalType": _ref(DOCKER_IMAGE),
        "registry": registry,
        "name": repository,
        "tag": tag,
    }
    if digest:
        entity["sha256"] = digest.removeprefix("sha256:")
    return entity


def build_crate(
    record: Provenance,
    header: RunHeader | None,
    rows: Sequence[Row],
    outcomes: Mapping[str, JobOutcome],
    outputs: Sequence[str],
    *,
    state: str,
    ended_at: str | None,
) -> dict[str, Any]:
    """The crate's JSON-LD document. ``outputs``: report files in the crate's folder; ``state``: the run's state
    as the report says it."""
    run_id = record.run_id
    run_action = f"#run-{run_id}"
    organize = f"#organize-{run_id}"
    engine = f"#confluence-submit-{record.tool_version}"
    graph: list[dict[str, Any]] = []
    tools, steps, step_entities, tool_entities, images = [], [], [], [], {}
    for position, recorded in enumerate(record.modules):
        tool_id, step_id = f"#module-{recorded.key}", f"#step-{recorded.key}"
        definition = record.definition(recorded.job_definition)
        tool: dict[str, Any] = {"@id": tool_id, "@type": "SoftwareApplication", "name": recorded.key}
        if definition is not None:
            tool["softwareVersion"] = definition.digest or definition.image
            tool["identifier"] = definition.arn
            image = container_image(definition.image, definition.digest)
            images[recorded.key] = image
            tool["softwareRequirements"] = _ref(image["@id"])
        tools.append(_ref(tool_id))
        steps.append(_ref(step_id))
        tool_entities.append(tool)
        step_entities.append(
            {
                "@id": step_id,
                "@type": "HowToStep",
                "name": recorded.key,
                "position": position,
                "workExample": _ref(tool_id),
            }
        )
    inputs: dict[str, dict[str, Any]] = {}  # one File per list, however many modules read it
    parameters = []
    for items in record.items:
        parameter = f"#param-{items.module}-items"
        parameters.append(
            {"@id": parameter, "@type": "FormalParameter", "additionalType": "File", "name": f"{items.module}.items"}
        )
        entity: dict[str, Any] = inputs.setdefault(
            items.url,
            {
                "@id": items.url,
                "@type": "File",
                "name": items.url.rsplit("/", 1)[-1],
                "sha256": items.sha256,
                "exampleOfWork": [],
                "description": f"{items.count} items; ETag {items.etag}",
            },
        )
        entity["exampleOfWork"].append(_ref(parameter))
        if items.version_id:
            entity["version"] = items.version_id
    output_parameters = [
        {"@id": f"#param-{name}", "@type": "FormalParameter", "additionalType": "File", "name": name}
        for name in outputs
    ]
    output_files = [
        {"@id": name, "@type": "File", "name": name, "exampleOfWork": _ref(f"#param-{name}")} for name in outputs
    ]
    job_actions: list[dict[str, Any]] = []
    control_actions: list[dict[str, Any]] = []
    by_module = {(m.stage, m.module): m for m in record.modules}
    arns = record.job_map
    for row in rows:
        module = by_module.get((row.stage, row.algorithm))
        if module is None or row.kind == names.BARRIER or names.parse_name(row.job_name).retry_barrier:
            continue
        outcome = outcomes.get(row.job_id)
        action: dict[str, Any] = {
            "@id": f"#job-{row.job_id}",
            "@type": "CreateAction",
            "name": row.job_name,
            "identifier": row.job_id,
            "instrument": _ref(f"#module-{module.key}"),
            "actionStatus": _ref(action_status(outcome)),
            "description": f"AWS Batch job {row.job_id}"
            + (f", array of {row.array_size} from child {row.array_offset}" if row.array_size >= 2 else ""),
        }
        if module.key in images:
            action["containerImage"] = _ref(images[module.key]["@id"])
        if outcome is not None:
            if outcome.started_at:
                action["startTime"] = outcome.started_at
            if outcome.stopped_at:
                action["endTime"] = outcome.stopped_at
            if outcome.status_reason and outcome.status != SUCCEEDED:
                action["error"] = outcome.status_reason
        if row.job_id in arns:
            action["additionalType"] = arns[row.job_id]
        job_actions.append(action)
        control_actions.append(
            {
                "@id": f"#control-{row.job_id}",
                "@type": "ControlAction",
                "name": f"orchestrate {module.key}",
                "instrument": _ref(f"#step-{module.key}"),
                "object": _ref(action["@id"]),
            }
        )
    started = header.started_at if header is not None else record.recorded_at
    run: dict[str, Any] = {
        "@id": run_action,
        "@type": "CreateAction",
        "name": f"Confluence run {run_id}",
        "instrument": _ref(WORKFLOW_FILE),
        "startTime": started,
        "object": [_ref(url) for url in inputs],
        "result": [_ref(name) for name in outputs],
        "actionStatus": _ref(
            "http://schema.org/CompletedActionStatus"
            if state == "succeeded"
            else "http://schema.org/FailedActionStatus"
            if state in ("failed", "cancelled")
            else "http://schema.org/ActiveActionStatus"
        ),
    }
    if ended_at:
        run["endTime"] = ended_at
    if record.origin_run_id:
        run["description"] = f"recovered from run {record.origin_run_id} at stage {record.from_stage}"
    root = {
        "@id": "./",
        "@type": "Dataset",
        "name": f"Confluence run {run_id}",
        "description": f"Run {run_id} of the Confluence workflow on AWS Batch ({record.prefix}, {record.region})",
        "datePublished": ended_at or started,
        "conformsTo": [_ref(p) for p in PROFILES],
        "mainEntity": _ref(WORKFLOW_FILE),
        "mentions": [_ref(run_action)],
        "hasPart": [_ref(WORKFLOW_FILE), *(_ref(name) for name in outputs), *(_ref(url) for url in inputs)],
    }
    workflow = {
        "@id": WORKFLOW_FILE,
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
        "name": WORKFLOW_FILE,
        "programmingLanguage": _ref(LANGUAGE_ID),
        "hasPart": tools,
        "step": steps,
        "input": [_ref(p["@id"]) for p in parameters],
        "output": [_ref(p["@id"]) for p in output_parameters],
        "sha256": record.config_sha256,
    }
    if record.git_commit:
        workflow["version"] = record.git_commit
    graph = [
        {
            "@id": METADATA_FILE,
            "@type": "CreativeWork",
            "about": _ref("./"),
            "conformsTo": [
                _ref("https://w3id.org/ro/crate/1.1"),
                _ref("https://w3id.org/workflowhub/workflow-ro-crate/1.0"),
            ],
        },
        root,
        workflow,
        {
            "@id": LANGUAGE_ID,
            "@type": "ComputerLanguage",
            "name": "Confluence workflow (confluence.yaml)",
            "alternateName": "confluence.yaml",
        },
        *tool_entities,
        *step_entities,
        *images.values(),
        *parameters,
        *output_parameters,
        *inputs.values(),
        *output_files,
        {"@id": engine, "@type": "SoftwareApplication", "name": f"confluence-submit {record.tool_version}"},
        {
            "@id": organize,
            "@type": "OrganizeAction",
            "name": f"Run of confluence-submit {record.tool_version}",
            "instrument": _ref(engine),
            "object": [_ref(c["@id"]) for c in control_actions],
            "result": _ref(run_action),
            "startTime": started,
        },
        run,
        *job_actions,
        *control_actions,
    ]
    # One entity per id: images shared by modules appear once.
    unique: dict[str, dict[str, Any]] = {}
    for entity in graph:
        unique.setdefault(entity["@id"], entity)
    return {"@context": CONTEXT, "@graph": list(unique.values())}
