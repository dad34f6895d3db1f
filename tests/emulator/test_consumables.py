"""Consumable resources, GetJobQueueSnapshot and fair-share order, each test quoting the AWS documentation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import BatchEnv, Venue, describe, stays, submit, wait_status, wait_until


def _needing(batch_client: Any, name: str, resource: str, quantity: int = 1) -> str:
    return str(
        batch_client.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={"image": "busybox", "vcpus": 1, "memory": 128, "command": ["run"]},
            consumableResourceProperties={
                "consumableResourceList": [{"consumableResource": resource, "quantity": quantity}]
            },
        )["jobDefinitionArn"]
    )


def test_ten_jobs_on_a_three_unit_replenishable_resource_never_run_more_than_three_and_raising_it_to_five_lets_five(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # AWS (Specify the resources needed to run a job): "If a consumable resource for the job is not available when
    # the job reaches the head of the queue, the job will wait in RUNNABLE state until all the required resources
    # become available or the job state time limit is reached"; "Resources are locked once the job moves to
    # STARTING and are then unlocked when the job moves to SUCCEEDED or FAILED."
    batch_client.create_consumable_resource(
        consumableResourceName="api-slots", totalQuantity=3, resourceType="REPLENISHABLE"
    )
    definition = _needing(batch_client, "slotted", "api-slots")
    batch_control.set_durations(default=0.3)
    jobs = [
        batch_client.submit_job(jobName=f"call-{i}", jobQueue=batch_env.queue, jobDefinition=definition)["jobId"]
        for i in range(10)
    ]
    most, raised = 0, False
    deadline = time.monotonic() + 15
    while True:
        now = [j["status"] for j in batch_client.describe_jobs(jobs=jobs)["jobs"]]
        running = sum(s in ("STARTING", "RUNNING") for s in now)
        if not raised:
            assert running <= 3, now
            most = max(most, running)
            if now.count("SUCCEEDED") >= 3:  # mid-run
                batch_client.update_consumable_resource(consumableResource="api-slots", operation="SET", quantity=5)
                raised = True
                most = 0
        else:
            assert running <= 5, now
            most = max(most, running)
            if most == 5:
                break
        assert time.monotonic() < deadline, now
        time.sleep(0.02)
    described = batch_client.describe_consumable_resource(consumableResource="api-slots")
    assert (described["totalQuantity"], described["resourceType"]) == (5, "REPLENISHABLE")
    for job_id in jobs:
        wait_status(batch_client, job_id, "SUCCEEDED", timeout=10)
    done = batch_client.describe_consumable_resource(consumableResource="api-slots")
    assert (done["inUseQuantity"], done["availableQuantity"]) == (0, 5)


def test_non_replenishable_units_are_used_up_and_jobs_wait_while_units_are_short(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # AWS (Check how many resources are in-use and available): "If the resource is NON_REPLENISHABLE, the number of
    # consumed resources is subtracted from both the total and available quantities and won't be added back
    # whether the job moves to the SUCCEEDED or FAILED state."
    batch_client.create_consumable_resource(
        consumableResourceName="budget", totalQuantity=2, resourceType="NON_REPLENISHABLE"
    )
    definition = _needing(batch_client, "spender", "budget")
    with batch_control.held("RUNNING", name_glob="spend-0"):
        first = batch_client.submit_job(jobName="spend-0", jobQueue=batch_env.queue, jobDefinition=definition)
        wait_status(batch_client, first["jobId"], "RUNNING")
        running = batch_client.describe_consumable_resource(consumableResource="budget")
        assert (running["totalQuantity"], running["inUseQuantity"], running["availableQuantity"]) == (1, 0, 1)
    jobs = [first["jobId"]] + [
        batch_client.submit_job(jobName=f"spend-{i}", jobQueue=batch_env.queue, jobDefinition=definition)["jobId"]
        for i in range(1, 3)
    ]
    wait_status(batch_client, jobs[0], "SUCCEEDED")
    wait_status(batch_client, jobs[1], "SUCCEEDED")
    stays(batch_client, jobs[2], "RUNNABLE")
    spent = batch_client.describe_consumable_resource(consumableResource="budget")
    assert (spent["totalQuantity"], spent["inUseQuantity"], spent["availableQuantity"]) == (0, 0, 0)
    batch_client.update_consumable_resource(consumableResource="budget", operation="ADD", quantity=1)
    assert wait_status(batch_client, jobs[2], "SUCCEEDED")["status"] == "SUCCEEDED"
    listed = batch_client.list_jobs_by_consumable_resource(consumableResource="budget")["jobs"]
    assert sorted((j["jobName"], j["jobStatus"], j["quantity"]) for j in listed) == [
        ("spend-0", "SUCCEEDED", 1),
        ("spend-1", "SUCCEEDED", 1),
        ("spend-2", "SUCCEEDED", 1),
    ]


def test_consumable_resource_operations_and_a_submit_override(
    batch_client: Any, batch_env: BatchEnv, batch_control: Any
) -> None:
    # AWS SubmitJob consumableResourcePropertiesOverride: "this only overrides the quantity of each resource needed
    # by an instance of the job, not the total available".
    created = batch_client.create_consumable_resource(
        consumableResourceName="licences", totalQuantity=4, resourceType="REPLENISHABLE", tags={"team": "hydro"}
    )
    assert created["consumableResourceArn"] == ("arn:aws:batch:us-west-2:123456789012:consumable-resource/licences")
    with pytest.raises(ClientError, match="Consumable resource licences already exists"):
        batch_client.create_consumable_resource(consumableResourceName="licences", totalQuantity=1)
    definition = _needing(batch_client, "licensed", "licences")
    assert batch_client.describe_job_definitions(jobDefinitionName="licensed")["jobDefinitions"][0][
        "consumableResourceProperties"
    ] == {"consumableResourceList": [{"consumableResource": "licences", "quantity": 1}]}
    batch_control.hold("RUNNING", name_glob="*")
    job_id = batch_client.submit_job(
        jobName="four",
        jobQueue=batch_env.queue,
        jobDefinition=definition,
        consumableResourcePropertiesOverride={
            "consumableResourceList": [{"consumableResource": "licences", "quantity": 4}]
        },
    )["jobId"]
    job = wait_status(batch_client, job_id, "RUNNING")
    assert job["consumableResourceProperties"]["consumableResourceList"] == [
        {"consumableResource": "licences", "quantity": 4}
    ]
    held = batch_client.describe_consumable_resource(consumableResource="licences")
    assert (held["inUseQuantity"], held["availableQuantity"], held["tags"]) == (4, 0, {"team": "hydro"})
    with pytest.raises(ClientError, match="REMOVE 5 would leave consumable resource licences with -1 units"):
        batch_client.update_consumable_resource(consumableResource="licences", operation="REMOVE", quantity=5)
    with pytest.raises(ClientError, match="Consumable resource licences is required by 1 unfinished job"):
        batch_client.delete_consumable_resource(consumableResource="licences")
    listed = batch_client.list_consumable_resources()["consumableResources"]
    assert listed == [
        {
            "consumableResourceArn": created["consumableResourceArn"],
            "consumableResourceName": "licences",
            "totalQuantity": 4,
            "inUseQuantity": 4,
            "resourceType": "REPLENISHABLE",
        }
    ]
    batch_control.release()
    wait_status(batch_client, job_id, "SUCCEEDED")
    batch_client.delete_consumable_resource(consumableResource="licences")
    assert batch_client.list_consumable_resources()["consumableResources"] == []
    with pytest.raises(ClientError, match="Consumable resource nope does not exist"):
        submit(
            batch_client,
            batch_env,
            "unknown-resource",
            consumableResourcePropertiesOverride={
                "consumableResourceList": [{"consumableResource": "nope", "quantity": 1}]
            },
        )


def test_queue_snapshot_lists_the_front_of_the_queue_in_dispatch_order(
    batch_client: Any, batch_control: Any, venue: Venue
) -> None:
    # AWS GetJobQueueSnapshot: "Provides a list of the first 100 RUNNABLE jobs associated to a single job queue."
    batch_control.hold("RUNNING", name_glob="*")
    queue = venue.queue("q", venue.environment("two", max_vcpus=2))
    definition = venue.definition("one", vcpus=1)
    jobs = [venue.submit(f"j{i}", queue, definition) for i in range(5)]
    wait_status(batch_client, jobs[1], "RUNNING")
    wait_status(batch_client, jobs[4], "RUNNABLE")
    time.sleep(0.1)
    snapshot = batch_client.get_job_queue_snapshot(jobQueue="q")
    front = snapshot["frontOfQueue"]["jobs"]
    assert [j["jobArn"].rsplit("/", 1)[1] for j in front] == jobs[2:]
    assert all(isinstance(j["earliestTimeAtPosition"], int) for j in front)
    assert snapshot["queueUtilization"]["totalCapacityUsage"] == [{"capacityUnit": "VCPU", "quantity": 2.0}]
    with pytest.raises(ClientError, match="Job queue missing does not exist"):
        batch_client.get_job_queue_snapshot(jobQueue="missing")


def test_a_fair_share_queue_runs_the_share_using_least_first_and_reports_use_per_share(
    batch_client: Any, batch_control: Any, venue: Venue
) -> None:
    # AWS (Fair-share scheduling): jobs are dispatched by share so that each share identifier gets its part of the
    # capacity; GetJobQueueSnapshot reports "fairshareUtilization" per share identifier.
    policy = batch_client.create_scheduling_policy(
        name="fair", fairsharePolicy={"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 1}]}
    )["arn"]
    batch_control.hold("RUNNING", name_glob="*")
    queue = venue.queue("fair", venue.environment("two", max_vcpus=2), schedulingPolicyArn=policy)
    definition = venue.definition("one", vcpus=1)
    first_a = [venue.submit(f"a{i}", queue, definition, shareIdentifier="a") for i in range(3)]
    wait_status(batch_client, first_a[1], "RUNNING")
    late_b = venue.submit("b0", queue, definition, shareIdentifier="b")
    wait_status(batch_client, late_b, "RUNNABLE")
    time.sleep(0.1)
    snapshot = batch_client.get_job_queue_snapshot(jobQueue="fair")
    # share b uses nothing, share a two vCPUs: b's job is at the front although it came last
    assert [j["jobArn"].rsplit("/", 1)[1] for j in snapshot["frontOfQueue"]["jobs"]] == [late_b, first_a[2]]
    assert snapshot["queueUtilization"]["fairshareUtilization"] == {
        "activeShareCount": 1,
        "topCapacityUtilization": [
            {"shareIdentifier": "a", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 2.0}]}
        ],
    }
    batch_client.terminate_job(jobId=first_a[0], reason="make room")
    wait_status(batch_client, late_b, "RUNNING")
    assert describe(batch_client, first_a[2])["status"] == "RUNNABLE"
    wait_until(batch_client, first_a[2], lambda j: j["status"] == "RUNNABLE")
