"""App-wide tags never break a deploy: resources whose Tags are create-only (their CloudFormation registry schema,
read from cfn-lint's copy) are skipped, and a bad -c tags is refused with what is expected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

import app as cdk_app
from confluence_runtime.errors import ConfigError

from .upgrade import create_only


def test_every_resource_type_with_create_only_tags_is_skipped_by_app_wide_tags(templates: dict[str, Template]) -> None:
    types = {r["Type"] for t in templates.values() for r in t.to_json()["Resources"].values()}
    create_only_tags = sorted(t for t in types if ("Tags",) in create_only(t))
    assert create_only_tags == ["AWS::Batch::ComputeEnvironment"]
    assert set(create_only_tags) <= set(cdk_app.CREATE_ONLY_TAGS)


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("not json", "context: tags: expected a JSON object of tag keys to string values"),
        ('{"cost-center": 7}', "context: tags: expected a JSON object of tag keys to string values"),
        ('{"aws:owner": "x"}', "context: tags: 'aws:owner': tag keys are 1-128 letters"),
    ],
)
def test_a_bad_tags_context_is_refused(build: Callable[..., cdk.App], tags: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(tags=tags)
    (problem,) = caught.value.problems
    assert str(problem).startswith(message)


def test_cdk_json_tags_apply_like_the_context(build: Callable[..., Any]) -> None:
    app = build(**{"confluence:tags": {"team": "swot"}})
    stack = next(s for s in app.node.children if isinstance(s, cdk.Stack) and s.stack_name.endswith("-alerts"))
    Template.from_stack(stack).has_resource_properties(
        "AWS::SNS::Topic", {"Tags": Match.array_with([{"Key": "team", "Value": "swot"}])}
    )
