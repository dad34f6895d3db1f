"""Where a supervised run moves a child Spot keeps reclaiming (names.on_demand_queue, used by the supervisor and by
the CDK app): a queue of the On-Demand kind the venue already has; for Fargate the efs tool's queue (Fargate
On-Demand only) when the venue has no other, so the shipped workflow's 14 queues stay 14, within the venue's share
of AWS's 50 job queues per region; for EC2 Spot a ``{prefix}-on-demand-ec2`` queue the CDK app adds."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from aws_cdk.assertions import Template

from confluence_runtime import names
from confluence_runtime.config import Config, load_config

from .conftest import CONFIG, PREFIX
from .test_upgrade import add_ec2_spot_module, synthesize
from .upgrade import check


def queues(template: Template) -> dict[str, list[str]]:
    """Queue name -> the names of its compute environments, in Batch's order."""
    environments = {
        logical: r["Properties"]["ComputeEnvironmentName"]
        for logical, r in template.find_resources("AWS::Batch::ComputeEnvironment").items()
    }
    found = {}
    for queue in template.find_resources("AWS::Batch::JobQueue").values():
        order = sorted(queue["Properties"]["ComputeEnvironmentOrder"], key=lambda o: o["Order"])
        found[queue["Properties"]["JobQueueName"]] = [
            environments[o["ComputeEnvironment"]["Fn::GetAtt"][0]] for o in order
        ]
    return found


def test_the_shipped_venue_retries_on_the_efs_tools_fargate_on_demand_queue(
    templates: dict[str, Template], config: Config
) -> None:
    target = names.on_demand_queue(PREFIX, names.FARGATE_SPOT, config.queue_compute)
    assert target == f"{PREFIX}-efs"
    shipped = queues(templates["batch"])
    assert len(shipped) == 14 and config.venue_queue_compute == config.queue_compute
    assert shipped[target] == [f"{PREFIX}-fargate"]


def test_an_ec2_spot_module_adds_an_ec2_on_demand_queue_and_replaces_nothing(tmp_path: Path) -> None:
    # GIVEN the shipped file and the same file with a module on EC2 Spot
    doc = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    changed = copy.deepcopy(doc)
    add_ec2_spot_module(changed)
    before, after = synthesize(doc, tmp_path / "base"), synthesize(changed, tmp_path / "ec2")
    # THEN the supervisor and the CDK app name the same new queue, on the EC2 On-Demand environment only
    config = load_config(tmp_path / "ec2" / "confluence.yaml")
    target = names.on_demand_queue(PREFIX, names.EC2_SPOT, config.queue_compute)
    assert target == f"{PREFIX}-on-demand-ec2"
    found = queues(Template.from_json(after[f"{PREFIX}-batch"]))
    assert len(found) == 16  # the venue's whole share: 13 stage queues, EC2 Spot, its On-Demand queue, efs
    assert found[target] == [f"{PREFIX}-ec2"]
    # AND the edit only adds: nothing of the deployed venue is replaced, no export stranded
    assert check(before, after) == []
