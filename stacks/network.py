"""The VPC the Batch jobs run in: private subnets over two AZs, NAT gateway or VPC endpoints, flow logs.

The subnet layout never depends on ``nat_gateway``: a subnet's CIDR block is create-only, so a layout that moved
with the switch would replace the subnets that EFS mount targets and compute environments live in. The public
/24s exist either way, as subnets with a NAT gateway and as reserved address space without one, so the compute
/18s keep their CIDR blocks and logical ids; only their routes change.

Other stacks read the VPC, compute subnets and security group from SSM parameters (stacks/constructs/wiring.py):
``/{prefix}/network/vpc-id``, ``/{prefix}/network/compute-subnets/{1,2}``, ``/{prefix}/network/compute-security-group``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53resolver as resolver
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from stacks.constructs.retention import retention
from stacks.constructs.wiring import publish, read, unavailable
from stacks.protocols import NetworkRefs

# Always resolvable when an egress allowlist is set: AWS's endpoints (public images come through the venue's ECR
# pull-through cache then, stacks/batch.py, so public.ecr.aws is not needed either).
AWS_DOMAINS = ("amazonaws.com", "*.amazonaws.com")
# DNS Firewall: rules run in priority order within the group; associations take 100..9900.
ALLOW_PRIORITY, BLOCK_PRIORITY, ASSOCIATION_PRIORITY = 100, 200, 1000
NFS_PORT = 2049
PUBLIC_SUBNETS = "public"
COMPUTE_SUBNETS = "compute"
MAX_AZS = 2

# Interface endpoints a job needs when there is no NAT gateway: pull images (ECR api + dkr; layers come from S3
# through the gateway endpoint), write logs, read SSM/Secrets Manager parameters, get STS credentials, and let
# disable_renew invoke the renew Lambda.
_INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Lambda": ec2.InterfaceVpcEndpointAwsService.LAMBDA_,
}
# And for EC2 modules (compute: ec2_spot | ec2): the ECS agent on Batch's container instances registers with ECS,
# polls for tasks and reports metrics through these three ("Amazon ECS interface VPC endpoints (AWS PrivateLink)":
# ecs-agent, ecs-telemetry and ecs for container instances without internet access). Images and logs go through
# the ones above, layers through the S3 gateway endpoint. Only when a module runs on EC2: each costs by the hour.
_EC2_INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "Ecs": ec2.InterfaceVpcEndpointAwsService.ECS,
    "EcsAgent": ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
    "EcsTelemetry": ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
}


class NetworkStack(cdk.Stack):
    """``vpc``, ``compute_subnets`` (where jobs and EFS mount targets live) and ``compute_security_group``.

    Other stacks get them through :meth:`references` (SSM parameters), never as exports.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        nat_gateway: bool,
        ec2_instances: bool = False,
        log_retention_days: int = 30,
        egress_allowlist: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        """``egress_allowlist``: the domains (beyond AWS's own) the jobs may resolve; empty: no limit."""
        super().__init__(scope, id, **kwargs)
        self.prefix = prefix
        self.nat_gateway = nat_gateway
        self.egress_allowlist = tuple(egress_allowlist)
        self.vpc = self._vpc()
        self.compute_subnets = ec2.SubnetSelection(subnet_group_name=COMPUTE_SUBNETS)
        self._flow_logs(log_retention_days)
        self._gateway_endpoints()
        if not nat_gateway:
            self._interface_endpoints(_INTERFACE_ENDPOINTS)
            if ec2_instances:
                self._interface_endpoints(_EC2_INTERFACE_ENDPOINTS)
        self.compute_security_group = self._compute_security_group()
        self.dns_firewall = self._dns_firewall() if self.egress_allowlist else None
        self._publish()

    def _vpc(self) -> ec2.Vpc:
        # The same two groups, in the same order and sizes, with or without NAT (see the module docstring).
        subnets = [
            ec2.SubnetConfiguration(
                name=PUBLIC_SUBNETS, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24, reserved=not self.nat_gateway
            ),
            ec2.SubnetConfiguration(
                name=COMPUTE_SUBNETS,
                subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if self.nat_gateway else ec2.SubnetType.PRIVATE_ISOLATED,
                cidr_mask=18,
            ),
        ]
        return ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.0.0.0/16"),
            max_azs=MAX_AZS,
            nat_gateways=1 if self.nat_gateway else 0,
            subnet_configuration=subnets,
            # The default security group allows all traffic between its members; nothing here uses it, so it is
            # stripped of every rule (CDK does it with a small custom resource).
            restrict_default_security_group=True,
        )

    def _publish(self) -> None:
        subnets = self.vpc.select_subnets(subnet_group_name=COMPUTE_SUBNETS).subnets
        values = {
            "network/vpc-id": self.vpc.vpc_id,
            "network/compute-security-group": self.compute_security_group.security_group_id,
            **{f"network/compute-subnets/{i}": s.subnet_id for i, s in enumerate(subnets, start=1)},
        }
        for name, value in values.items():
            publish(self, f"Wiring-{name}", prefix=self.prefix, name=name, value=value, description=f"{name} (wiring)")

    def references(self, scope: Construct, *, vpc_id: bool = True) -> NetworkRefs:
        """The VPC, compute subnets and security group as another stack sees them (read from SSM at deploy).

        ``vpc_id=False`` for a stack that uses the VPC only as the container of the subnets (Batch compute
        environments): its id is then not read at all, rather than read into an unused template parameter.
        """

        def value(name: str) -> str:
            return read(scope, self, prefix=self.prefix, name=name)

        azs = [cdk.Fn.select(i, cdk.Fn.get_azs()) for i in range(MAX_AZS)]
        subnets = [
            ec2.Subnet.from_subnet_attributes(
                scope, f"ComputeSubnet{i}", subnet_id=value(f"network/compute-subnets/{i}"), availability_zone=az
            )
            for i, az in enumerate(azs, start=1)
        ]
        for subnet in subnets:
            # Routes are the network stack's business; a consumer only places resources in the subnets.
            cdk.Annotations.of(subnet).acknowledge_warning(
                "@aws-cdk/aws-ec2:noSubnetRouteTableId", "consumers of the compute subnets never read their routes"
            )
        vpc = ec2.Vpc.from_vpc_attributes(
            scope,
            "Vpc",
            vpc_id=value("network/vpc-id") if vpc_id else unavailable("the VPC id"),
            availability_zones=azs,
        )
        security_group = ec2.SecurityGroup.from_security_group_id(
            scope, "ComputeSecurityGroup", value("network/compute-security-group"), allow_all_outbound=True
        )
        return NetworkRefs(vpc=vpc, subnets=ec2.SubnetSelection(subnets=subnets), security_group=security_group)

    def _flow_logs(self, retention_days: int) -> None:
        log_group = logs.LogGroup(
            self,
            "FlowLogGroup",
            retention=retention(retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

    def _gateway_endpoints(self) -> None:
        # Free, and it keeps S3 traffic (ECR image layers, PO.DAAC data in-region) off the NAT gateway.
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)

    def _interface_endpoints(self, endpoints: dict[str, ec2.InterfaceVpcEndpointAwsService]) -> None:
        # Construct ids are the names above: adding or removing the EC2 ones never renames another endpoint.
        for name, service in endpoints.items():
            endpoint = self.vpc.add_interface_endpoint(
                name, service=service, subnets=self.compute_subnets, private_dns_enabled=True
            )
            for connection in endpoint.connections.security_groups:
                NagSuppressions.add_resource_suppressions(
                    connection,
                    [
                        NagPackSuppression(
                            id="AwsSolutions-EC23",
                            reason="The endpoint accepts HTTPS from the VPC CIDR only; the rule cannot read the "
                            "CIDR because CDK passes it as a token (Fn::GetAtt Vpc.CidrBlock).",
                        )
                    ],
                )

    def _compute_security_group(self) -> ec2.SecurityGroup:
        # Jobs only call out (ECR, S3, logs, PO.DAAC); nothing calls in. EFS adds its own ingress from this group.
        group = ec2.SecurityGroup(
            self,
            "ComputeSecurityGroup",
            vpc=self.vpc,
            description="Confluence Batch jobs: outbound only",
            allow_all_outbound=not self.egress_allowlist,
        )
        if self.egress_allowlist:
            # With an allowlist, DNS (which security groups never filter for the VPC's resolver) goes through the
            # firewall; these rules close the way around it through another DNS server (port 53 outside).
            for port, what in ((443, "HTTPS"), (80, "HTTP")):
                group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(port), f"{what} to allowed names")
            group.add_egress_rule(ec2.Peer.ipv4(self.vpc.vpc_cidr_block), ec2.Port.tcp(NFS_PORT), "NFS to EFS")
        return group

    def _dns_firewall(self) -> resolver.CfnFirewallRuleGroupAssociation:
        """Route 53 Resolver DNS Firewall on the VPC: the allowlist's domains and AWS's own (``amazonaws.com``:
        ECR, S3, logs, STS, Secrets Manager, SSM, ECS, EFS) resolve; every other name answers NXDOMAIN. It limits
        names, not addresses: a connection to an IP literal is not stopped (docs/deploying-security.md)."""
        allowed = resolver.CfnFirewallDomainList(
            self, "EgressAllowedDomains", name=f"{self.prefix}-egress-allowed", domains=list(self.allowed_domains)
        )
        everything = resolver.CfnFirewallDomainList(
            self, "EgressEveryOtherDomain", name=f"{self.prefix}-egress-everything", domains=["*"]
        )
        rules = resolver.CfnFirewallRuleGroup(
            self,
            "EgressRuleGroup",
            name=f"{self.prefix}-egress",
            firewall_rules=[
                resolver.CfnFirewallRuleGroup.FirewallRuleProperty(
                    action="ALLOW", firewall_domain_list_id=allowed.attr_id, priority=ALLOW_PRIORITY
                ),
                resolver.CfnFirewallRuleGroup.FirewallRuleProperty(
                    action="BLOCK",
                    block_response="NXDOMAIN",
                    firewall_domain_list_id=everything.attr_id,
                    priority=BLOCK_PRIORITY,
                ),
            ],
        )
        return resolver.CfnFirewallRuleGroupAssociation(
            self,
            "EgressRuleGroupAssociation",
            name=f"{self.prefix}-egress",
            firewall_rule_group_id=rules.attr_id,
            vpc_id=self.vpc.vpc_id,
            priority=ASSOCIATION_PRIORITY,
            mutation_protection="DISABLED",
        )

    @property
    def allowed_domains(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*AWS_DOMAINS, *self.egress_allowlist]))
