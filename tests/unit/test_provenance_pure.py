"""The pure parts of provenance: image references, items subsets, the crate's images and statuses."""

from __future__ import annotations

import pytest

from confluence_runtime.apply.recover import parse_subset
from confluence_runtime.aws.api import parse_ecr_image
from confluence_runtime.errors import RecordError
from confluence_runtime.records.ledger import JobOutcome
from confluence_runtime.views.rocrate import action_status, container_image

ECR = "123456789012.dkr.ecr.us-west-2.amazonaws.com"


@pytest.mark.parametrize(
    ("image", "parsed"),
    [
        (f"{ECR}/confluence-dev-neobam:1.0.0", ("123456789012", "us-west-2", "confluence-dev-neobam", "1.0.0")),
        (f"{ECR}/team/neobam@sha256:abc", ("123456789012", "us-west-2", "team/neobam", "sha256:abc")),
        (f"{ECR}/neobam", ("123456789012", "us-west-2", "neobam", "latest")),
        ("public.ecr.aws/aws-cli/aws-cli:2.22.35", None),
        ("busybox:latest", None),
        ("ghcr.io/org/image:1", None),
    ],
)
def test_only_private_ecr_images_are_looked_up(image: str, parsed: tuple[str, ...] | None) -> None:
    assert parse_ecr_image(image) == parsed


def test_a_subset_is_lines_or_a_json_array() -> None:
    assert parse_subset("71000001\n\n# the three we fixed\n 71000002 \n3\n", "s.txt") == ["71000001", "71000002", "3"]
    assert parse_subset('[71000001, "71000002", 3]', "s.json") == ["71000001", "71000002", "3"]
    with pytest.raises(RecordError, match=r"s.txt: names no item; expected item values or indices"):
        parse_subset("# nothing\n\n", "s.txt")
    with pytest.raises(RecordError, match=r"s.json: not a JSON array"):
        parse_subset("[1, 2", "s.json")
    with pytest.raises(RecordError, match=r"s.json: expected a JSON array of item values or indices"):
        parse_subset('[{"reach": 1}]', "s.json")


def test_the_crate_names_an_image_by_registry_name_tag_and_digest() -> None:
    ecr = container_image(f"{ECR}/neobam:1.0.0", "sha256:ab12")
    assert (ecr["registry"], ecr["name"], ecr["tag"], ecr["sha256"]) == (ECR, "neobam", "1.0.0", "ab12")
    public = container_image("public.ecr.aws/aws-cli/aws-cli:2.22.35", None)
    assert (public["registry"], public["name"], public["tag"]) == ("public.ecr.aws", "aws-cli/aws-cli", "2.22.35")
    assert "sha256" not in public
    hub = container_image("busybox", None)
    assert (hub["registry"], hub["name"], hub["tag"]) == ("docker.io", "busybox", "latest")


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("SUCCEEDED", "CompletedActionStatus"),
        ("FAILED", "FailedActionStatus"),
        ("RUNNING", "ActiveActionStatus"),
        (None, "PotentialActionStatus"),
    ],
)
def test_a_job_state_is_a_schema_org_action_status(status: str | None, action: str) -> None:
    outcome = JobOutcome("id", "name", status, "2026-01-01T00:00:00+00:00") if status else None
    assert action_status(outcome) == f"http://schema.org/{action}"
