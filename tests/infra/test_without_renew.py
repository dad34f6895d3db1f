"""The Batch stack stands on its own: without the renew construct, disable_renew may still call {prefix}-renew."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import aws_cdk as cdk
from aws_cdk.assertions import Template

from app import cdk_json_context
from confluence_runtime.config import Config
from stacks.batch import BatchStack
from stacks.network import NetworkStack
from stacks.storage import StorageStack

from .conftest import PREFIX, ROOT


def test_disable_renew_invokes_the_function_by_name_when_renew_is_not_wired(config: Config) -> None:
    app = cdk.App(context=cdk_json_context())  # cdk.json's feature flags, as the real app has them
    network = NetworkStack(app, "network", prefix=PREFIX, nat_gateway=True)
    storage = StorageStack(app, "storage", prefix=PREFIX, network=network, buckets=config.infrastructure.buckets)
    BatchStack(app, "batch", config=config, network=network, storage=storage)
    batch = Template.from_json(app.synth().get_stack_by_name("batch").template)
    policies = json.dumps(batch.find_resources("AWS::IAM::Policy"))
    assert policies.count("lambda:InvokeFunction") == 1
    assert f":function:{PREFIX}-renew" in policies
    submitter = json.dumps(batch.find_resources("AWS::IAM::ManagedPolicy"))
    assert "scheduler:" not in submitter
    # the renew construct publishes /{prefix}/renew/*; without it nothing claims those names
    assert "/renew/" not in json.dumps(batch.find_resources("AWS::SSM::Parameter"))


def test_app_exits_2_with_the_problems_when_the_yaml_is_wrong() -> None:
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"venue": "prod"})}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2
    assert result.stderr.endswith(
        "error: 1 problem in confluence.yaml:\n"
        "  - confluence.yaml: venue: unknown venue 'prod'; expected one of: dev, dev1, dev2, ops\n"
    )
