"""What IAM makes of the templates' policies: whether a request matches a statement, and a document's size."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

ACCOUNT = "123456789012"


def _resolved(arn: dict[str, Any]) -> str:
    return "".join(ACCOUNT if part == {"Ref": "AWS::AccountId"} else part for part in arn["Fn::Join"][1])


def allowed_by(statement: dict[str, Any], request: dict[str, Any]) -> bool:
    """Whether a SubmitJob request's queue and job definition both match the statement's resources, IAM's way
    ('*' any characters, '?' one). A definition named without a revision is checked in both forms AWS's user guide
    gives for it: ``job-definition/NAME`` ("Restrict job submission by resource tags": a submission without a
    revision does not match ``*:*``) and ``job-definition/NAME:REV`` ("Restrict to job definition prefix": "the
    request ARN includes the revision")."""
    patterns = [_resolved(r) for r in statement["Resource"]]
    prefix = f"arn:aws:batch:us-west-2:{ACCOUNT}:"
    definition = request["jobDefinition"]
    arns = [f"{prefix}job-queue/{request['jobQueue']}"]
    arns += [
        f"{prefix}job-definition/{d}"
        for d in ([definition, f"{definition}:7"] if ":" not in definition else [definition])
    ]
    return all(any(fnmatch.fnmatchcase(arn, p) for p in patterns) for arn in arns)


# -- size, as IAM counts it ---------------------------------------------------------------------------------------
# "IAM and AWS STS quotas": a managed policy holds at most 6,144 characters; a role's inline policies together at
# most 10,240; "IAM doesn't count white space when calculating the size of a policy against these quotas". The
# size is that of the document CloudFormation hands IAM, every token resolved: the longest partition, region and
# account, ARNs of the stack's resources from their names (CloudFormation's generated names at their full length),
# and UNKNOWN characters for a value read from SSM at deploy time (ids, bucket names, role and topic ARNs).
MANAGED_POLICY_LIMIT = 6144
ROLE_INLINE_LIMIT = 10240
PARTITION, REGION, URL_SUFFIX = "aws-us-gov", "ap-southeast-5", "amazonaws.com.cn"
UNKNOWN = 128
_PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": URL_SUFFIX,
    "AWS::StackName": "x" * 128,
}
# type -> (ARN after arn:P:, name property, longest generated name, what Ref returns: "name" or "arn")
_TYPES: dict[str, tuple[str, str, int, str]] = {
    "AWS::IAM::Role": ("iam::{a}:role/{n}", "RoleName", 64, "name"),
    "AWS::IAM::ManagedPolicy": ("iam::{a}:policy/{n}", "ManagedPolicyName", 128, "arn"),
    "AWS::S3::Bucket": ("s3:::{n}", "BucketName", 63, "name"),
    "AWS::SQS::Queue": ("sqs:{r}:{a}:{n}", "QueueName", 80, "url"),
    "AWS::SNS::Topic": ("sns:{r}:{a}:{n}", "TopicName", 256, "arn"),
    "AWS::Lambda::Function": ("lambda:{r}:{a}:function:{n}", "FunctionName", 64, "name"),
    "AWS::Logs::LogGroup": ("logs:{r}:{a}:log-group:{n}:*", "LogGroupName", 512, "name"),
    "AWS::ECR::Repository": ("ecr:{r}:{a}:repository/{n}", "RepositoryName", 256, "name"),
    "AWS::KMS::Key": ("kms:{r}:{a}:key/{n}", "", 36, "id"),
    "AWS::SecretsManager::Secret": ("secretsmanager:{r}:{a}:secret:{n}-XXXXXX", "Name", 512, "arn"),
    "AWS::Batch::JobQueue": ("batch:{r}:{a}:job-queue/{n}", "JobQueueName", 128, "arn"),
    "AWS::Batch::JobDefinition": ("batch:{r}:{a}:job-definition/{n}:99999", "JobDefinitionName", 128, "arn"),
    "AWS::SSM::Parameter": ("ssm:{r}:{a}:parameter{n}", "Name", 2048, "name"),
    "AWS::EFS::FileSystem": ("elasticfilesystem:{r}:{a}:file-system/{n}", "", 21, "id"),
    "AWS::EFS::AccessPoint": ("elasticfilesystem:{r}:{a}:access-point/{n}", "", 22, "id"),
    "AWS::Scheduler::Schedule": ("scheduler:{r}:{a}:schedule/default/{n}", "Name", 64, "arn"),
    "AWS::Scheduler::ScheduleGroup": ("scheduler:{r}:{a}:schedule-group/{n}", "Name", 64, "arn"),
}


def _name(stack: str, logical_id: str, resource: dict[str, Any], template: dict[str, Any]) -> str:
    _, prop, longest, _ = _TYPES[resource["Type"]]
    given = resource.get("Properties", {}).get(prop) if prop else None
    if given is not None:
        return str(resolve(given, stack, template))
    return f"{stack}-{logical_id}-XXXXXXXXXXXXX"[:longest]


def _arn(stack: str, logical_id: str, template: dict[str, Any]) -> str:
    resource = template["Resources"][logical_id]
    kind = _TYPES[resource["Type"]][0]
    name = _name(stack, logical_id, resource, template)
    return f"arn:{PARTITION}:" + kind.format(r=REGION, a=ACCOUNT, n=name)


def resolve(value: Any, stack: str, template: dict[str, Any]) -> Any:
    """``value`` with every CloudFormation intrinsic function replaced by the longest string it can deploy as."""
    if isinstance(value, list):
        return [resolve(v, stack, template) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
        return {k: resolve(v, stack, template) for k, v in value.items()}
    ((function, argument),) = value.items()
    if function == "Ref":
        if argument in _PSEUDO:
            return _PSEUDO[argument]
        if argument in template.get("Parameters", {}):
            return "x" * UNKNOWN
        resource = template["Resources"][argument]
        returns = _TYPES[resource["Type"]][3]
        if returns == "arn":
            return _arn(stack, argument, template)
        if returns == "url":
            return f"https://sqs.{REGION}.{URL_SUFFIX}/{ACCOUNT}/" + _name(stack, argument, resource, template)
        return _name(stack, argument, resource, template)
    if function == "Fn::GetAtt":
        logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        if attribute.endswith("Arn"):
            return _arn(stack, logical_id, template)
        return "x" * UNKNOWN  # an id (security group, ...) or a URL
    if function == "Fn::Join":
        separator, parts = argument
        return separator.join(str(resolve(p, stack, template)) for p in parts)
    if function == "Fn::ImportValue":
        return "x" * UNKNOWN
    if function == "Fn::Select":
        index, items = argument
        return resolve(items, stack, template)[int(index)]
    if function == "Fn::Split":
        separator, text = argument
        return str(resolve(text, stack, template)).split(separator)
    raise AssertionError(f"no size known for {function}")


def size(document: dict[str, Any], stack: str, template: dict[str, Any]) -> int:
    """The characters IAM counts in a policy document of ``template``: white space left out."""
    text = json.dumps(resolve(document, stack, template), separators=(",", ":"))
    return sum(not c.isspace() for c in text)


def policy_sizes(stack: str, template: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(managed policy logical id -> size, role logical id -> size of its inline policies together)."""
    managed: dict[str, int] = {}
    inline: dict[str, int] = {}
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            managed[logical_id] = size(props["PolicyDocument"], stack, template)
        elif resource["Type"] == "AWS::IAM::Policy":
            for role in props.get("Roles", []):
                key = role["Ref"] if isinstance(role, dict) and "Ref" in role else json.dumps(role)
                inline[key] = inline.get(key, 0) + size(props["PolicyDocument"], stack, template)
        elif resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                inline[logical_id] = inline.get(logical_id, 0) + size(policy["PolicyDocument"], stack, template)
    return managed, inline


# -- whether IAM allows a request --------------------------------------------------------------------------------
# The emulator and moto evaluate no IAM, so the requests the runtime sends are checked here against the documents
# the templates hold: an explicit Deny wins, then any Allow ("Policy evaluation logic"); within a statement every
# condition operator must hold, and a key the request does not carry fails it. Only what the submitter policy uses
# is modelled; anything else fails the test rather than being guessed.
REGION_IN_TESTS = "us-west-2"


def _value(value: Any, refs: dict[str, str]) -> str:
    pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION_IN_TESTS, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": ""}
    if isinstance(value, str):
        return value
    if "Ref" in value:
        name = value["Ref"]
        if name in pseudo:
            return pseudo[name]
        assert name in refs, f"no value given for {name}"
        return refs[name]
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_value(p, refs) for p in parts)
    raise AssertionError(f"cannot evaluate {value}")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(operator: str, key: str, wanted: Any, context: dict[str, str]) -> bool:
    if key not in context:
        return operator.startswith("StringNot")  # IAM: a missing key makes StringNot* true, the others false
    got = context[key]
    if operator == "StringEquals":
        return got in _listed(wanted)
    if operator == "StringNotEquals":
        return got not in _listed(wanted)
    if operator == "StringLike":
        return any(fnmatch.fnmatchcase(got, w) for w in _listed(wanted))
    raise AssertionError(f"condition operator {operator} is not modelled")


def _matches(
    statement: dict[str, Any], action: str, resource: str, context: dict[str, str], refs: dict[str, str]
) -> bool:
    if not any(fnmatch.fnmatchcase(action, a) for a in _listed(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(resource, _value(r, refs)) for r in _listed(statement["Resource"])):
        return False
    # A condition's value may be a token too (the region in kms:ViaService, an ARN read from SSM).
    return all(
        _condition_holds(operator, key, [_value(w, refs) for w in _listed(wanted)], context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, wanted in keys.items()
    )


def allows(
    document: dict[str, Any], action: str, resource: str, context: dict[str, str], refs: dict[str, str]
) -> str | None:
    """The Sid of the statement that allows ``action`` on ``resource`` with ``context`` (the condition keys of the
    request), or None when nothing allows it or a Deny matches; ``refs``: the values of the template's parameters."""
    statements = document["Statement"]
    if any(s["Effect"] == "Deny" and _matches(s, action, resource, context, refs) for s in statements):
        return None
    allowing = [s for s in statements if s["Effect"] == "Allow" and _matches(s, action, resource, context, refs)]
    return str(allowing[0].get("Sid", "?")) if allowing else None
