"""The VPC the Batch jobs run in: private subnets over two AZs, NAT gateway or VPC endpoints, flow logs."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from stacks.constructs.retention import retention

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


class NetworkStack(cdk.Stack):
    """``vpc``, ``compute_subnets`` (where jobs and EFS mount targets live) and ``compute_security_group``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        nat_gateway: bool,
        max_azs: int = 2,
        log_retention_days: int = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.nat_gateway = nat_gateway
        self.vpc = self._vpc(max_azs)
        self.compute_subnets = ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if nat_gateway else ec2.SubnetType.PRIVATE_ISOLATED
        )
        self._flow_logs(log_retention_days)
        self._gateway_endpoints()
        if not nat_gateway:
            self._interface_endpoints()
        self.compute_security_group = self._compute_security_group()

    def _vpc(self, max_azs: int) -> ec2.Vpc:
        if self.nat_gateway:
            subnets = [
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="compute", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=18),
            ]
        else:
            subnets = [
                ec2.SubnetConfiguration(name="compute", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=18)
            ]
        return ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.0.0.0/16"),
            max_azs=max_azs,
            nat_gateways=1 if self.nat_gateway else 0,
            subnet_configuration=subnets,
        )

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

    def _interface_endpoints(self) -> None:
        for name, service in _INTERFACE_ENDPOINTS.items():
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
        return ec2.SecurityGroup(
            self,
            "ComputeSecurityGroup",
            vpc=self.vpc,
            description="Confluence Batch jobs: outbound only",
            allow_all_outbound=True,
        )
