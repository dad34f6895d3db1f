"""A JSON Schema of confluence.yaml, generated from the loader's own keys, bounds and patterns (config.py).

Published as ``schema/confluence.schema.json`` for editors (the shipped confluence.yaml names it in a
``# yaml-language-server: $schema=...`` comment) and CI linters; tests/unit/test_config_schema.py checks that the
committed file is this function's output and that schema and loader agree on the bad-input corpus and the shipped
files. The loader stays the authority: what needs the whole file (a module in two stages, per_index sizes, secrets'
full names) or the command line (``--venue``) is checked there only.

Regenerate with ``python -m confluence_runtime.config_schema > schema/confluence.schema.json``.

Patterns end in ``(?![\\s\\S])`` rather than ``$``: in Python's ``re`` (the ``jsonschema`` library) ``$`` also
matches before a trailing newline, which the loader refuses; the lookahead means "end of text" in ECMAScript
(editors, check-jsonschema) and Python alike.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from . import config as c
from .names import BARRIER, BUCKET_MODES, COMPUTE_KINDS, CREDENTIAL_ENV, VENUE_BUCKETS

END = r"(?![\s\S])"
CONTROL = r"\x00-\x1f\x7f-\x9f"
NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"


def _anchored(body: str) -> str:
    return f"^(?:{body}){END}"


def _any_case(text: str) -> str:
    """``AWS_BATCH`` as ``[Aa][Ww][Ss]_...``: the loader compares these prefixes case-insensitively."""
    return "".join(f"[{ch.upper()}{ch.lower()}]" if ch.isalpha() else ch for ch in text)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """A key set to nothing (``memory:``) is as if absent: the loader uses the default. Said as narrowly as the
    schema allows, so that a validator's message names the real expectation, not "any of the given schemas"."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    if "anyOf" in schema and "type" not in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": [*kinds, "null"]}


def _integer(minimum: int, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


BUDGET = {
    "description": 'Failed children a supervised run tolerates: a count (3) or a share ("5%", at most 100%).',
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": _anchored(r"\s*(?:\d+|\d+(?:\.\d+)?\s*%)\s*")},
    ],
}
TEXT = {"type": "string", "minLength": 1}
# A queue or job definition name, with the placeholders the loader expands (nothing else: no {prefix.x}).
_PLACEHOLDER = r"\{(?:prefix|stage|module)\}"
TEMPLATE = {"type": "string", "pattern": _anchored(f"(?:[A-Za-z0-9]|{_PLACEHOLDER})(?:[A-Za-z0-9_-]|{_PLACEHOLDER})*")}
EXIT_CONDITION = r"[A-Za-z0-9.: \t]*\*?"


def _settings() -> dict[str, dict[str, Any]]:
    """The keys a module may inherit from ``defaults`` (config._settings), each as the loader converts it."""
    retry_rule = {
        "type": "object",
        "additionalProperties": False,
        "required": ["action"],
        "anyOf": [{"required": [key]} for key in ("on_exit_code", "on_status_reason", "on_reason")],
        "properties": {
            "action": {"type": "string", "pattern": _anchored("|".join(_any_case(a) for a in c.EXIT_ACTIONS))},
            "on_exit_code": {
                "type": ["string", "integer"],
                "minimum": 0,
                "pattern": _anchored(r"[0-9]*\*?"),
                "minLength": 1,
                "maxLength": c.MAX_EXIT_PATTERN,
            },
            **{
                key: {
                    "type": "string",
                    "pattern": _anchored(EXIT_CONDITION),
                    "minLength": 1,
                    "maxLength": c.MAX_EXIT_PATTERN,
                }
                for key in ("on_status_reason", "on_reason")
            },
        },
    }
    reserved_env = "|".join(_any_case(p) for p in (c.RESERVED_ENV_PREFIX, c.CONFLUENCE_ENV_PREFIX))
    secret_reserved = "|".join([*c.RESERVED_ENV_PREFIXES, *(f"{v}{END}" for v in CREDENTIAL_ENV.values())])
    mount_point = rf"/[^:{CONTROL}]*(?::ro)?"
    subdirectory = rf"/(?!\.\.?(?:/|{END}))[A-Za-z0-9_.-]+"
    return {
        "job_queue": {**TEMPLATE, "description": "Queue name; {prefix}, {stage} and {module} are expanded."},
        "job_definition": {**TEMPLATE, "description": "Job definition name; {prefix}, {stage}, {module} expanded."},
        "vcpus": {"type": "number", "exclusiveMinimum": 0, "maximum": c.MAX_INT32, "description": "vCPUs."},
        "memory": {**_integer(1, c.MAX_INT32), "description": "Memory in MiB."},
        "timeout": {**_integer(c.MIN_TIMEOUT_SECONDS, c.MAX_INT32), "description": "Seconds per attempt."},
        "retries": {**_integer(1, c.MAX_RETRY_ATTEMPTS), "description": "Attempts per job (AWS: 1 to 10)."},
        "retry_on": {
            "description": "evaluateOnExit rules (needs retries >= 2).",
            "type": "array",
            "maxItems": c.MAX_EXIT_RULES,
            "items": retry_rule,
        },
        "environment": {
            "description": "Environment variables (AWS_BATCH* and CONFLUENCE_* are reserved).",
            "type": "object",
            "propertyNames": {"minLength": 1, "pattern": f"^(?!{reserved_env})"},
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "tags": {
            "description": "Tags on the module's jobs (keys 1 to 128 characters, values up to 256, no aws: prefix).",
            "type": "object",
            "propertyNames": {
                "minLength": 1,
                "maxLength": c.MAX_TAG_KEY,
                "pattern": f"^(?!{_any_case(c.RESERVED_TAG_PREFIX)})",
            },
            "additionalProperties": {"type": ["string", "number", "boolean"], "maxLength": c.MAX_TAG_VALUE},
        },
        "image": {**TEXT, "description": "Image URI (default: the stack's repository {prefix}-{module})."},
        "image_tag": {**TEXT, "description": "Tag or sha256: digest in the module's repository."},
        "mounts": {
            "description": "AREA[/SUB/DIR] -> absolute path in the container, read-only with :ro.",
            "type": "object",
            "propertyNames": {
                "maxLength": c.MAX_ACCESS_POINT_PATH - 1,
                "pattern": _anchored(f"{c.AREA_RE.pattern}(?:{subdirectory})*"),
            },
            "additionalProperties": {
                "type": "string",
                "pattern": _anchored(mount_point),
                "not": {"pattern": _anchored("/+(?::ro)?")},
            },
        },
        "s3_credentials": {"type": "boolean", "description": "Inject the PO.DAAC S3 credentials."},
        "internet": {"type": "boolean", "description": "The module reaches hosts outside AWS (needs the NAT gateway)."},
        "expected_duration": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": c.MAX_INT32,
            "description": "Seconds one item takes (plan --estimate).",
        },
        "compute": {"enum": list(COMPUTE_KINDS), "description": "Where the module runs."},
        "secrets": {
            "description": "ENV_NAME -> the venue's secret /{prefix}/NAME.",
            "type": "object",
            "propertyNames": {"pattern": _anchored(f"(?!{secret_reserved}){c.ENV_NAME_RE.pattern}")},
            "additionalProperties": {
                "type": "string",
                "pattern": _anchored(c.SECRET_NAME_RE.pattern),
                "not": {"pattern": f"-[^/]{{6}}{END}"},
            },
        },
        "buckets": {
            "description": "Venue buckets the module may read (ro) or write (rw).",
            "type": "object",
            "propertyNames": {"enum": list(VENUE_BUCKETS)},
            "additionalProperties": {"enum": list(BUCKET_MODES)},
        },
        "tolerated_failure": BUDGET,
        "consumes": {
            "description": "Consumable resource (infrastructure.consumable_resources) -> units each job holds.",
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "integer", "minimum": 1},
        },
        "requests_per_item": {
            "type": "number",
            "minimum": 0,
            "maximum": c.MAX_INT32,
            "description": "Requests to an outside API per item (plan: expected requests against the budget).",
        },
        "spot_reclaims_before_on_demand": {
            **_integer(1, c.MAX_RETRY_ATTEMPTS),
            "description": "Spot reclaims of one child before a supervised run moves it to On-Demand.",
        },
        "oom_retry_memory": {
            "description": 'Memory of one retry after an out-of-memory kill: a factor ("2x") or MiB.',
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": c.MAX_FARGATE_MEMORY},
                {"type": "string", "pattern": _anchored(r"\s*(?:[xX]\d+(?:\.\d+)?|\d+(?:\.\d+)?[xX]|\d+)\s*")},
            ],
        },
    }


def _module_only() -> dict[str, dict[str, Any]]:
    """The keys only a module sets (config._module)."""
    bucket = rf"{c.BUCKET_RE.pattern}|[a-z0-9.-]*\{{prefix\}}[a-z0-9.-]*"
    return {
        "num_jobs": {**_integer(1, c.MAX_NUM_JOBS), "description": "Jobs of the module (each an array)."},
        "array_size": {
            **_integer(0, c.MAX_CHILDREN),
            "description": "Items (children of an array; 0 or 1 = a plain job; over 10,000 = shards).",
        },
        "arguments": {
            "description": "Container arguments: a list, or one string split like a shell.",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["string", "number"]}}],
        },
        "items_per_child": {**_integer(1), "description": "Consecutive items each child handles."},
        "items": {
            "description": "s3://BUCKET/KEY of a JSON array, its length the array size ({prefix} expanded).",
            "type": "string",
            "pattern": _anchored(rf"s3://(?:{bucket})/[^{CONTROL}]*[^/{CONTROL}]"),
            "not": {"pattern": r"\{(?!prefix\})[^{}]*\}|^s3://[^/]*\.\.|^s3://\d+\.\d+\.\d+\.\d+/"},
        },
    }


def _infrastructure() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for f in fields(c.Infrastructure):
        if isinstance(f.default, bool):
            properties[f.name] = _nullable({"type": "boolean"})
        elif isinstance(f.default, int):
            properties[f.name] = _nullable(_integer(1))
        elif f.name == "egress_allowlist":
            domain = {"type": "string", "maxLength": 255, "pattern": _anchored(c._DOMAIN_RE.pattern)}
            properties[f.name] = _nullable({"type": "array", "items": domain})
        elif f.name == "consumable_resources":
            resource = {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "total"],
                "properties": {
                    "type": {"enum": list(c.CONSUMABLE_TYPES)},
                    "total": {"type": "integer", "minimum": 0},
                },
            }
            properties[f.name] = _nullable(
                {
                    "description": "Consumable resources of the venue (AWS Batch), by name.",
                    "type": "object",
                    "propertyNames": {"maxLength": 64, "pattern": _anchored(NAME)},
                    "additionalProperties": resource,
                }
            )
        else:  # ec2_instance_classes
            classes = {"type": "string", "pattern": _anchored(c.INSTANCE_CLASS_RE.pattern)}
            properties[f.name] = _nullable({"type": "array", "minItems": 1, "items": classes})
    return {"type": "object", "additionalProperties": False, "properties": properties}


def json_schema() -> dict[str, Any]:
    """The schema of confluence.yaml (JSON Schema draft-07, the draft editors' YAML servers read)."""
    settings, module_only = _settings(), _module_only()
    module_keys = {**module_only, **settings}
    missing = set(c._MODULE_KEYS) ^ set(module_keys)
    if missing:  # a key the loader reads and the schema does not describe (or the reverse)
        raise AssertionError(f"schema and loader disagree on the module keys {sorted(missing)}")
    module = {
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {key: _nullable(module_keys[key]) for key in c._MODULE_KEYS},
    }
    defaults = {
        "type": "object",
        "additionalProperties": False,
        "properties": {key: _nullable(settings[key]) for key in c._DEFAULT_KEYS},
    }
    name = {"maxLength": 128, "pattern": _anchored(NAME)}
    stage = {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {**name, "not": {"const": BARRIER}},
        "properties": {
            "dependency": _nullable({"enum": list(c.DEPENDENCY_MODES)}),
            "tolerated_failure": _nullable(BUDGET),
        },
        "additionalProperties": {"$ref": "#/definitions/module"},
    }
    top = {
        "log_file": _nullable({**TEXT, "description": "Log file (default confluence.log)."}),
        "submission_file": _nullable({**TEXT, "description": "Submission CSV (default submission.csv)."}),
        "ledger": _nullable(
            {"type": "string", "pattern": r"^s3://[\s\S]*[^/]", "description": "Shared run ledger s3://BUCKET/PREFIX."}
        ),
        "prefix": _nullable(
            {
                "type": "string",
                "maxLength": 128,
                "pattern": _anchored(r"(?:[A-Za-z0-9]|\{venue\})(?:[A-Za-z0-9_-]|\{venue\})*"),
                "description": "Name prefix; {venue} takes --venue (confluence2-{venue}).",
            }
        ),
        "queue_mode": _nullable({"enum": list(c.QUEUE_MODES)}),
        "defaults": _nullable({"$ref": "#/definitions/defaults"}),
        "stages": {
            "description": "Ordered stage name -> module name -> settings.",
            "type": "object",
            "minProperties": 1,
            "propertyNames": name,
            "additionalProperties": {"$ref": "#/definitions/stage"},
        },
        "infrastructure": _nullable({"$ref": "#/definitions/infrastructure"}),
    }
    if set(top) != set(c._TOP_KEYS):
        raise AssertionError(f"schema and loader disagree on the top-level keys {sorted(set(top) ^ set(c._TOP_KEYS))}")
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "confluence.yaml",
        "description": "The Confluence workflow: stages of modules run on AWS Batch (confluence-submit, the CDK app).",
        "type": "object",
        "additionalProperties": False,
        "required": ["stages"],
        "properties": {key: top[key] for key in c._TOP_KEYS},
        "definitions": {
            "module": module,
            "defaults": defaults,
            "stage": stage,
            "infrastructure": _infrastructure(),
        },
    }


def schema_text() -> str:
    """The committed file's exact text."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=True) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
