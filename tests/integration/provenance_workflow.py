"""The workflow the provenance tests run: six reaches in an S3 items list (a versioned bucket), read by ``input``
and by ``fit`` (two reaches per child: a packed module), ``sad`` with one child per reach, and a plain ``output``.
Every job definition names an image in the emulator's private ECR, so the run record can name its digest.
The fixtures ``pv_workflow`` (set up) and ``pv1`` (and its run pv1, finished) are in conftest.py."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3

from batch_emulator.images import digest_of, manifest
from confluence_runtime.aws.api import AwsOptions
from confluence_runtime.config import load_config
from confluence_runtime.venue.sandbox import provision, resources_from_config

REGION = "us-west-2"
ACCOUNT = "123456789012"  # moto's account
BUCKET = "pv-json"
REACHES = [f"7100000{i}1" for i in range(6)]
CONFIG = """\
log_file: {tmp}/confluence.log
submission_file: {tmp}/submission.csv
prefix: pv
stages:
  input:
    input: {{items: "s3://{{prefix}}-json/reaches.json"}}
  flpe:
    fit: {{items: "s3://{{prefix}}-json/reaches.json", items_per_child: 2}}
    sad: {{array_size: 6}}
  output:
    output: {{}}
"""
TAG = "1.0.0"


def aws(service: str, url: str) -> Any:
    return boto3.client(
        service, region_name=REGION, endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def image_of(definition: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{definition}:{TAG}"


def first_digest(definition: str) -> str:
    """The digest the sandbox's provisioning gives ``definition``'s image (a manifest standing for its name)."""
    return digest_of(manifest(definition, TAG))


def set_up(tmp_path: Path, url: str, text: str = CONFIG) -> tuple[Path, str]:
    """Write the config, provision its queues and definitions (images in ECR) and put the items list in a
    versioned bucket; returns the config's path and the items list's version id."""
    path = tmp_path / "confluence.yaml"
    path.write_text(text.format(tmp=tmp_path))
    resources = resources_from_config(load_config(path))
    definitions = tuple(replace(d, image=image_of(d.name)) for d in resources.job_definitions)
    provision(replace(resources, job_definitions=definitions), AwsOptions(endpoint_url=url, region=REGION))
    s3 = aws("s3", url)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object(Bucket=BUCKET, Key="reaches.json", Body=items_body())
    return path, str(put["VersionId"])


def items_body() -> bytes:
    return json.dumps(REACHES).encode()


@dataclass(frozen=True)
class Workflow:
    """The workflow as ``set_up`` left it: its yaml and the items list's version id."""

    path: Path
    version: str


def wait_run(batch_client: Any, tmp_path: Path, run_id: str, timeout: float = 30) -> None:
    """Until every job of the run the CSV records is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (tmp_path / "submission.csv").open() as f:
            ids = [r["job_id"] for r in csv.DictReader(f) if r["run_id"] == run_id]
        jobs = batch_client.describe_jobs(jobs=ids)["jobs"] if ids else []
        if jobs and all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs):
            return
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")
