"""The optional egress allowlist (infrastructure.egress_allowlist): Route 53 Resolver DNS Firewall on the venue's
VPC lets the listed domains and AWS's own resolve and answers NXDOMAIN for every other name; the jobs' security
group then lets out HTTPS, HTTP and NFS only, so no other DNS server can be asked. Template assertions on the
session's extended assembly (which sets the allowlist) and on the shipped synthesis (which does not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk.cx_api as cxapi
import pytest
from aws_cdk.assertions import Template

from .conftest import EXTENDED_PREFIX
from .test_synth import CFN_LINT_IGNORED

ALLOWED = ["soto.podaac.earthdatacloud.nasa.gov", "*.earthdata.nasa.gov", "urs.earthdata.nasa.gov"]


@pytest.fixture(scope="module")
def network(extended_assembly: cxapi.CloudAssembly) -> dict[str, Any]:
    return extended_assembly.get_stack_by_name(f"{EXTENDED_PREFIX}-network").template


def of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == type_}


def test_the_listed_domains_and_awss_own_resolve_and_nothing_else(network: dict[str, Any]) -> None:
    lists = {r["Properties"]["Name"]: (lid, r["Properties"]["Domains"]) for lid, r in of_type(
        network, "AWS::Route53Resolver::FirewallDomainList"
    ).items()}  # fmt: skip
    assert {name: domains for name, (_, domains) in lists.items()} == {
        f"{EXTENDED_PREFIX}-egress-allowed": ["amazonaws.com", "*.amazonaws.com", *ALLOWED],
        f"{EXTENDED_PREFIX}-egress-everything": ["*"],
    }
    allowed, everything = (
        lists[f"{EXTENDED_PREFIX}-egress-allowed"][0],
        lists[f"{EXTENDED_PREFIX}-egress-everything"][0],
    )
    ((group_id, group),) = of_type(network, "AWS::Route53Resolver::FirewallRuleGroup").items()
    assert group["Properties"]["FirewallRules"] == [
        {"Action": "ALLOW", "FirewallDomainListId": {"Fn::GetAtt": [allowed, "Id"]}, "Priority": 100},
        {
            "Action": "BLOCK",
            "BlockResponse": "NXDOMAIN",
            "FirewallDomainListId": {"Fn::GetAtt": [everything, "Id"]},
            "Priority": 200,
        },
    ]
    (vpc,) = of_type(network, "AWS::EC2::VPC")
    (association,) = of_type(network, "AWS::Route53Resolver::FirewallRuleGroupAssociation").values()
    assert {k: v for k, v in association["Properties"].items() if k != "Tags"} == {
        "FirewallRuleGroupId": {"Fn::GetAtt": [group_id, "Id"]},
        "VpcId": {"Ref": vpc},
        "Priority": 1000,
        "MutationProtection": "DISABLED",
        "Name": f"{EXTENDED_PREFIX}-egress",
    }


def test_the_jobs_may_leave_by_https_http_and_nfs_only(network: dict[str, Any]) -> None:
    """Security groups never filter DNS to the VPC's resolver (where the firewall is); port 53 elsewhere is shut."""
    (vpc,) = of_type(network, "AWS::EC2::VPC")
    group = next(
        r for r in of_type(network, "AWS::EC2::SecurityGroup").values()
        if r["Properties"]["GroupDescription"] == "Confluence Batch jobs: outbound only"
    )  # fmt: skip
    rules = [
        (e["IpProtocol"], e["FromPort"], e["ToPort"], e.get("CidrIp"))
        for e in group["Properties"]["SecurityGroupEgress"]
    ]
    assert rules == [
        ("tcp", 443, 443, "0.0.0.0/0"),
        ("tcp", 80, 80, "0.0.0.0/0"),
        ("tcp", 2049, 2049, {"Fn::GetAtt": [vpc, "CidrBlock"]}),
    ]


def test_without_an_allowlist_nothing_is_filtered(templates: dict[str, Template]) -> None:
    network = templates["network"].to_json()
    assert not [r for r in network["Resources"].values() if r["Type"].startswith("AWS::Route53Resolver::")]
    group = next(
        r for r in of_type(network, "AWS::EC2::SecurityGroup").values()
        if r["Properties"]["GroupDescription"] == "Confluence Batch jobs: outbound only"
    )  # fmt: skip
    assert group["Properties"]["SecurityGroupEgress"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "Allow all outbound traffic by default", "IpProtocol": "-1"}
    ]


def test_cfn_lint_accepts_the_firewall(extended_assembly: cxapi.CloudAssembly) -> None:
    stack = extended_assembly.get_stack_by_name(f"{EXTENDED_PREFIX}-network")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", *CFN_LINT_IGNORED, "--",
         str(Path(extended_assembly.directory) / stack.template_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
