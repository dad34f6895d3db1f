"""Shared setup for emulator tests: one queue and job definition per test, and polling helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

QUEUE = "emu-queue"
JOB_DEF = "emu-def"


@dataclass(frozen=True)
class BatchEnv:
    queue: str
    definition: str
    definition_arn: str


@pytest.fixture
def batch_env(batch_client: Any, batch_server: Any) -> BatchEnv:
    iam = boto3.client(
        "iam",
        region_name="us-west-2",
        endpoint_url=batch_server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch_client.create_compute_environment(
        computeEnvironmentName="emu-ce",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role,
    )["computeEnvironmentArn"]
    batch_client.create_job_queue(
        jobQueueName=QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
    )
    arn = batch_client.register_job_definition(
        jobDefinitionName=JOB_DEF,
        type="container",
        containerProperties={
            "image": "busybox",
            "vcpus": 1,
            "memory": 128,
            "command": ["run"],
            "environment": [{"name": "FROM_DEF", "value": "1"}],
        },
    )["jobDefinitionArn"]
    return BatchEnv(QUEUE, JOB_DEF, arn)


def describe(client: Any, job_id: str) -> dict[str, Any]:
    jobs = client.describe_jobs(jobs=[job_id])["jobs"]
    assert len(jobs) == 1, job_id
    return jobs[0]


def wait_until(
    client: Any,
    job_id: str,
    check: Callable[[dict[str, Any]], bool],
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Poll describe_jobs until ``check`` holds; fail with the last description otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        job = describe(client, job_id)
        if check(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on {job_id}: {job['status']} {job.get('statusReason')}")
        time.sleep(0.02)


def wait_status(client: Any, job_id: str, *statuses: str, timeout: float = 5.0) -> dict[str, Any]:
    return wait_until(client, job_id, lambda job: job["status"] in statuses, timeout)


def submit(client: Any, env: BatchEnv, name: str, **kwargs: Any) -> str:
    return client.submit_job(jobName=name, jobQueue=env.queue, jobDefinition=env.definition, **kwargs)["jobId"]


@pytest.fixture
def aws(batch_server: Any, batch_control: Any) -> Callable[[str], Any]:
    """``aws("sqs")``: a boto3 client of another moto service in the same emulator server."""

    def make(service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-west-2",
            endpoint_url=batch_server.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make


class Venue:
    """Managed compute environments, queues and job definitions on the emulator's moto (VPC, subnet, security
    group and roles made once per test), for capacity tests."""

    def __init__(self, batch: Any, aws: Callable[[str], Any]) -> None:
        self.batch = batch
        ec2, iam = aws("ec2"), aws("iam")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        self.group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
        self.role = iam.create_role(RoleName="venue-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        profile = iam.create_instance_profile(InstanceProfileName="batch-instance")["InstanceProfile"]
        self.instance_profile = profile["Arn"]

    def environment(
        self,
        name: str,
        kind: str = "FARGATE",
        max_vcpus: int = 4,
        state: str = "ENABLED",
        instance_types: tuple[str, ...] = ("m5.large",),
    ) -> str:
        resources: dict[str, Any] = {
            "type": kind,
            "maxvCpus": max_vcpus,
            "subnets": [self.subnet],
            "securityGroupIds": [self.group],
        }
        if "FARGATE" not in kind:
            resources.update(minvCpus=0, instanceTypes=list(instance_types), instanceRole=self.instance_profile)
        return str(
            self.batch.create_compute_environment(
                computeEnvironmentName=name,
                type="MANAGED",
                state=state,
                computeResources=resources,
                serviceRole=self.role,
            )["computeEnvironmentArn"]
        )

    def queue(self, name: str, *environments: str, **kwargs: Any) -> str:
        order = [{"order": i + 1, "computeEnvironment": env} for i, env in enumerate(environments)]
        return str(
            self.batch.create_job_queue(
                jobQueueName=name, state="ENABLED", priority=1, computeEnvironmentOrder=order, **kwargs
            )["jobQueueArn"]
        )

    def definition(self, name: str, vcpus: float = 1, memory: int = 2048, **kwargs: Any) -> str:
        return str(
            self.batch.register_job_definition(
                jobDefinitionName=name,
                type="container",
                platformCapabilities=["FARGATE"],
                containerProperties={
                    "image": "busybox",
                    "command": ["run"],
                    "resourceRequirements": [
                        {"type": "VCPU", "value": f"{vcpus:g}"},
                        {"type": "MEMORY", "value": str(memory)},
                    ],
                },
                **kwargs,
            )["jobDefinitionArn"]
        )

    def submit(self, name: str, queue: str, definition: str, **kwargs: Any) -> str:
        return str(self.batch.submit_job(jobName=name, jobQueue=queue, jobDefinition=definition, **kwargs)["jobId"])


@pytest.fixture
def venue(batch_client: Any, aws: Callable[[str], Any]) -> Venue:
    return Venue(batch_client, aws)


def statuses(client: Any, job_ids: list[str]) -> list[str]:
    return [j["status"] for j in client.describe_jobs(jobs=job_ids)["jobs"]]


def stays(client: Any, job_id: str, status: str, seconds: float = 0.3, polls: int = 5) -> dict[str, Any]:
    """Polls over ``seconds``: every answer is ``status``; returns the last description."""
    job: dict[str, Any] = {}
    for _ in range(polls):
        time.sleep(seconds / polls)
        job = describe(client, job_id)
        assert job["status"] == status, (job["status"], job.get("statusReason"))
    return job
