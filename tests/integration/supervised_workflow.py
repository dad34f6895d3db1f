"""The workflow the supervised-run tests run, locally and handed to the cloud: ``input`` sized by an ``items`` list
in the emulator's S3 (budget 2 children), a ``per_index`` stage of two modules (budget 25 %, i.e. 3 of 12 each),
and a plain ``output`` job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

REGION = "us-west-2"
BUCKET = "confluence-dev-json"
ITEMS = [{"reach_id": 71_000_000 + i} for i in range(12)]
QUEUES = ("confluence-dev-input", "confluence-dev-flpe", "confluence-dev-output")
CONFIG = """
prefix: confluence-dev
log_file: out/confluence.log
submission_file: out/submission.csv
stages:
  input:
    tolerated_failure: 2
    input: {items: "s3://{prefix}-json/reaches.json", arguments: [-i, "-235"]}
  flpe:
    dependency: per_index
    tolerated_failure: "25%"
    neobam: {array_size: 12}
    sad: {array_size: 12}
  output:
    output: {}
"""


def aws(service: str, url: str) -> Any:
    """A client of the emulator's moto server."""
    return boto3.client(
        service, region_name=REGION, endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def set_up(tmp_path: Path, provisioned: Any, url: str) -> Path:
    """Provision the queues, write ``tmp_path/confluence.yaml`` and put the items list in S3; the file's path."""
    provisioned(CONFIG, tmp=tmp_path)
    path = tmp_path / "confluence.yaml"
    path.write_text(CONFIG)
    s3 = aws("s3", url)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="reaches.json", Body=json.dumps(ITEMS).encode())
    return path
