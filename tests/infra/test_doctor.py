"""`confluence-submit doctor` on the sandbox (what the synthesized templates declare, provisioned in the emulator):
every check passes once the operator's part of a deploy is done, and each check fails, named, when its cause is
injected. The judgments the sandbox cannot reach (quotas, events without tags) are checked as pure functions."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from batch_emulator.control import EmulatorControl
from confluence_runtime.venue.doctor import judge_event, judge_quota, judge_subscribers
from confluence_runtime.venue.sandbox import read_templates, resources_from_templates
from tests.integration.holds import wait_held

from .test_sandbox import SANDBOX_KEYS, confluence

PREFIX = "confluence-dev"


def lines(output: str) -> dict[str, str]:
    """Each check's line by its name: ``{"events": "ok   events: ..."}``."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"^(ok  |FAIL|skip) ([^:]+): ", line)
        if match:
            found[match[2]] = line
    return found


def test_doctor_passes_on_the_sandbox_and_names_each_injected_cause(cli_synth: Any, tmp_path: Path) -> None:
    started = confluence(
        "sandbox", "--keep", "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path), "--job-seconds",
        "0.05",
    )  # fmt: skip
    pid = int(re.search(r"stop it with: kill (\d+)", started.stderr)[1])  # type: ignore[index]
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        url = started.stdout.strip().splitlines()[-1].removeprefix("--endpoint-url ")

        def aws(service: str) -> Any:
            return boto3.client(
                service, endpoint_url=url, region_name="us-west-2", aws_access_key_id="sandbox",
                aws_secret_access_key="sandbox",
            )  # fmt: skip

        # GIVEN the supervisor's rules of the templates, wired as the sandbox's supervised rehearsals wire them: to
        # the queue its stand-in for the function reads (moto cannot invoke a Lambda function from a rule)
        resources = resources_from_templates(read_templates(cli_synth.outdir))
        events, sqs = aws("events"), aws("sqs")
        function = f"{PREFIX}-supervisor"
        url_ = sqs.create_queue(QueueName=f"{function}-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url_, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for rule in resources.rules:
            if function in rule.functions:
                events.put_rule(Name=rule.name, EventPattern=json.dumps(rule.pattern))
                events.put_targets(Rule=rule.name, Targets=[{"Id": "function", "Arn": arn}])
        # AND the operator's part of a deploy: each secret filled, a subscriber to the alerts confirmed
        secrets, sns = aws("secretsmanager"), aws("sns")
        for name in resources.secrets:
            secrets.put_secret_value(SecretId=name, SecretString="filled")
        topic = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(f"{PREFIX}-alerts"))
        subscription = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.org")["SubscriptionArn"]

        def doctor() -> Any:
            return confluence("doctor", "--endpoint-url", url, "--timeout", "20", aws=SANDBOX_KEYS)

        # WHEN the doctor checks the venue
        healthy = doctor()

        # THEN every check passes (Service Quotas is not emulated: said, not failed), one line each, exit 0
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        found = lines(healthy.stdout)
        assert not [line for line in found.values() if line.startswith("FAIL")]
        assert (
            found["stacks"].startswith("ok   stacks: ")
            and " SSM parameters under /confluence-dev/ from " in (found["stacks"])
        )
        # (the Batch stack's iam/submitter-policy-arn, said to whoever reads the doctor's answer)
        assert found["stacks"].endswith(
            "; whoever submits runs needs the policy arn:aws:iam::123456789012:policy/confluence-dev-submitter"
        )
        queues = sorted({m for m in found if m.startswith("canary ")})
        assert len(queues) == 14 - 1  # every module queue (the efs queue runs no module)
        assert found["canary confluence-dev-input (fargate_spot)"].startswith(
            "ok   canary confluence-dev-input (fargate_spot): canary doctor-"
        )
        assert "-queue-input SUCCEEDED in " in found["canary confluence-dev-input (fargate_spot)"]
        assert "is in /aws/batch/job, where logs looks" in found["logs confluence-dev-input (fargate_spot)"]
        assert "-module-neobam SUCCEEDED in " in found["module neobam"]
        assert found["secrets input"] == "ok   secrets input: 1 secrets hold a value: /confluence-dev/hydrocron-api-key"
        assert found["events"] == (
            "ok   events: the canary's Batch event matched the supervisor's rule, with the job's tags; recorded "
            "/confluence-dev/supervisor/event-tags = present"
        )
        assert found["quota Fargate On-Demand"].startswith("skip quota Fargate On-Demand: Service Quotas does not")
        assert found["alerts"] == (
            "ok   alerts: topic confluence-dev-alerts has 1 confirmed subscribers (email:ops@example.org)"
        )
        assert found["ledger"].endswith("a conditional write is accepted, and refused when the object exists")
        assert healthy.stdout.strip().splitlines()[-1] == "venue confluence-dev: every check passed"
        ssm = aws("ssm")
        recorded = ssm.get_parameter(Name="/confluence-dev/supervisor/event-tags")["Parameter"]["Value"]
        assert recorded == "present"

        # WHEN a cause of each check is injected
        control = EmulatorControl(url)
        ssm.delete_parameter(Name="/confluence-dev/batch/job-queues")
        # (and the venue deployed from a yaml that names neobam's job definition otherwise: checked once the
        # parameters are all there again, below)
        control.fail("doctor-*-queue-flpe", exit_code=7)
        control.fail("doctor-*-module-neobam", reason="CannotPullContainerError: pull image manifest has been retried")
        secrets.delete_secret(SecretId="/confluence-dev/hydrocron-api-key", ForceDeleteWithoutRecovery=True)
        sns.unsubscribe(SubscriptionArn=subscription)
        control.events(tags=False)  # the emulator's Batch events without the job's tags
        bucket = ssm.get_parameter(Name="/confluence-dev/supervisor/ledger-bucket")["Parameter"]["Value"]
        s3 = aws("s3")
        for listed in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=listed["Key"])
        s3.delete_bucket(Bucket=bucket)
        sick = doctor()

        # THEN each fails, named, saying what it found; the rest still pass; exit 1
        assert sick.returncode == 1, sick.stdout + sick.stderr
        found = lines(sick.stdout)
        assert found["stacks"] == (
            "FAIL stacks: missing SSM parameters: /confluence-dev/batch/job-queues (is every stack deployed?)"
        )
        flpe = found["canary confluence-dev-flpe (fargate_spot)"]
        assert flpe.startswith("FAIL canary confluence-dev-flpe (fargate_spot): canary doctor-")
        assert "-queue-flpe FAILED: Essential container in task exited" in flpe
        assert found["logs confluence-dev-flpe (fargate_spot)"].startswith("FAIL ")
        assert found["canary confluence-dev-input (fargate_spot)"].startswith("ok   ")
        assert "-module-neobam FAILED: " in found["module neobam"] and found["module neobam"].startswith("FAIL")
        assert found["secrets input"] == (
            "FAIL secrets input: /confluence-dev/hydrocron-api-key does not exist (is every stack deployed?)"
        )
        assert found["secrets priors"].startswith("ok   ")
        assert found["events"] == (
            "FAIL events: the canary's Batch event carried no job tags: the supervisor's rule, which matches on them, "
            "would see no event of this venue; recorded "
            "/confluence-dev/supervisor/event-tags = absent"
        )
        assert ssm.get_parameter(Name="/confluence-dev/supervisor/event-tags")["Parameter"]["Value"] == "absent"
        assert found["alerts"] == "FAIL alerts: topic confluence-dev-alerts has no confirmed subscriber"
        assert found["ledger"].startswith(f"FAIL ledger: s3://{bucket}/runs/doctor-")
        assert "a conditional write was refused" in found["ledger"]
        failed = sorted(name for name, line in found.items() if line.startswith("FAIL"))
        assert failed == sorted(
            [
                "stacks",
                "canary confluence-dev-flpe (fargate_spot)",
                "logs confluence-dev-flpe (fargate_spot)",
                "module neobam",
                "secrets input",
                "events",
                "alerts",
                "ledger",
            ]
        )
        assert sick.stdout.strip().splitlines()[-1].startswith("venue confluence-dev: 8 checks failed: stacks, ")

        # AND a venue deployed from another yaml (a module's job definition published under another name, or not
        # at all: the Batch stack's batch/job-definitions/*) fails the stacks check, naming the parameters
        ssm.put_parameter(Name="/confluence-dev/batch/job-queues", Value="restored", Type="StringList")
        ssm.put_parameter(
            Name="/confluence-dev/batch/job-definitions/neobam", Value="confluence-dev-neobam2", Overwrite=True
        )
        ssm.delete_parameter(Name="/confluence-dev/batch/job-definitions/sad")
        # AND a secret that exists with no value (as the stack creates it) is named with the command that fills it
        secrets.create_secret(Name="/confluence-dev/hydrocron-api-key")
        # AND a canary whose log stream is gone by the time it succeeded (deleted from moto's CloudWatch Logs while
        # the emulator holds the canary RUNNING: the stream exists from RUNNING on) fails the logs check by name
        logs = aws("logs")
        with control.held("RUNNING", name_glob="doctor-*-queue-input") as hold:
            running = ThreadPoolExecutor(1).submit(doctor)
            [held] = wait_held(control, hold)
            [job] = aws("batch").describe_jobs(jobs=[held])["jobs"]
            stream = job["container"]["logStreamName"]
            logs.delete_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
        broken = lines(running.result(timeout=300).stdout)
        assert broken["stacks"] == (
            "FAIL stacks: missing SSM parameters: /confluence-dev/batch/job-definitions/sad (is every stack "
            "deployed?); the venue was deployed from another confluence.yaml: "
            "/confluence-dev/batch/job-definitions/neobam is confluence-dev-neobam2, not confluence-dev-neobam "
            "(cdk deploy this one)"
        )
        assert broken["secrets input"] == (
            "FAIL secrets input: no value in /confluence-dev/hydrocron-api-key; put one (VALUE replaced):"
        )
        # (the command on the next line, whole, for pasting; it fills the secret it names)
        said = running.result().stdout.splitlines()
        fill = said[said.index(broken["secrets input"]) + 1]
        assert fill == (
            "     aws secretsmanager put-secret-value --secret-id /confluence-dev/hydrocron-api-key --secret-string "
            f"VALUE --endpoint-url {url}"
        )
        argv = shlex.split(fill)
        assert argv[:3] == ["aws", "secretsmanager", "put-secret-value"]
        put = {argv[i].removeprefix("--"): argv[i + 1] for i in range(3, len(argv), 2)}
        secrets.put_secret_value(SecretId=put["secret-id"], SecretString="pasted")
        assert secrets.get_secret_value(SecretId="/confluence-dev/hydrocron-api-key")["SecretString"] == "pasted"
        assert broken["canary confluence-dev-input (fargate_spot)"].startswith("ok   ")
        # (AWS says "The specified log stream does not exist."; moto words a missing stream as a missing group)
        assert broken["logs confluence-dev-input (fargate_spot)"].startswith(
            f"FAIL logs confluence-dev-input (fargate_spot): stream {stream} not in /aws/batch/job, where logs looks: "
            "ResourceNotFoundException: The specified log "
        )
        assert broken["logs confluence-dev-priors (fargate_spot)"].startswith("ok   ")

        # AND no event at all, and a disabled supervisor rule, are each named as such
        control.events(enabled=False)
        assert lines(doctor().stdout)["events"] == "FAIL events: no Batch event of the canary reached EventBridge"
        control.events(enabled=True)
        events.disable_rule(Name=f"{PREFIX}-supervisor")
        disabled = lines(doctor().stdout)
        assert disabled["events"] == (
            "FAIL events: the supervisor's rule confluence-dev-supervisor is DISABLED; recorded "
            "/confluence-dev/supervisor/event-tags = present"
        )
    finally:
        os.kill(pid, signal.SIGTERM)


def test_quotas_below_max_vcpus_fail_and_events_without_tags_are_named() -> None:
    # A new account's Fargate quota (6 vCPUs) cannot hold the default max_vcpus
    assert judge_quota("quota Fargate Spot", 6.0, 256).found == "quota 6 vCPUs < max_vcpus 256: ask for an increase"
    assert judge_quota("quota Fargate Spot", 6.0, 256).ok is False
    assert judge_quota("quota Fargate Spot", 4000.0, 256).ok is True
    assert judge_quota("q", "AccessDeniedException: not allowed", 256).found.startswith("quota not readable")
    # Batch events without the job's tags: the supervisor's rule (which matches on them) would see nothing
    rule = {"State": "ENABLED"}
    target = ["arn:aws:lambda:us-west-2:123456789012:function:confluence-dev-supervisor"]
    event = {"detail": {"jobId": "j", "status": "SUCCEEDED"}}
    check = judge_event(rule, target, "confluence-dev-supervisor", event)
    assert (check.ok, check.found.split(":")[0]) == (False, "the canary's Batch event carried no job tags")
    assert judge_event(rule, [], "confluence-dev-supervisor", event).found.endswith(
        "does not target the function confluence-dev-supervisor"
    )
    # Subscriptions waiting for confirmation are not subscribers yet
    pending = [{"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "a@example.org"}]
    assert judge_subscribers("t", pending).found == "topic t has no confirmed subscriber (1 waiting for confirmation)"
