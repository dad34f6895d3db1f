"""The GitHub deploy stack joins the app only when asked for with -c github=OWNER/REPO."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_cdk.assertions import Template


def test_github_stack_only_on_request(build: Callable[..., Any], app: Any) -> None:
    assert "confluence-github" not in [s.stack_name for s in app.node.children if hasattr(s, "stack_name")]
    with_github = build(github="SWOT-Confluence/confluence-aws")
    stacks = {s.stack_name: s for s in with_github.node.children if hasattr(s, "stack_name")}
    template = Template.from_stack(stacks["confluence-github"])
    template.has_resource_properties("AWS::IAM::Role", {"RoleName": "confluence-github-deploy-dev1"})
    template.has_resource_properties("AWS::IAM::Role", {"RoleName": "confluence-github-deploy-ops"})
    template.resource_count_is("AWS::IAM::OIDCProvider", 1)
