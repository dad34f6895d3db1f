"""The venue's supervisor function: supervised runs (``run --supervise cloud``) advance with no process alive.

An EventBridge rule sends the ``Batch Job State Change`` events of the venue's queues in a terminal state
(SUCCEEDED, FAILED), another the venue's ``Confluence Supervised Run`` events (a run handed over by
``run --supervise cloud``, or cancelled), and a third, on a schedule, the sweep (every supervised run not over is
advanced, whatever events were lost) to a Lambda function that bundles the runtime package
(lambdas/supervisor/handler.py). The run ledger lives in S3 and is written with conditional requests
(``IfNoneMatch``/``IfMatch``), so the at-least-once, unordered events never submit anything twice. Events that
cannot be handled are retried by EventBridge and Lambda, then kept in a dead-letter queue; errors and dead letters
raise alarms on the venue's alerts topic, where the supervisor also publishes each run's one-paragraph summary.

Published for the runtime: ``/{prefix}/supervisor/ledger`` (``s3://BUCKET/runs``) and
``/{prefix}/supervisor/function-name``; for the Batch stack's submitter policy (read at its deploy, no export):
``/{prefix}/supervisor/ledger-bucket``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

from confluence_runtime import names
from confluence_runtime.config import Config
from stacks.constructs import items_grant, wiring
from stacks.constructs.alarms import function_alarms
from stacks.constructs.function_parts import dead_letter_queue, function_log_group
from stacks.constructs.submit_grant import nag_findings, submit_statement

ROOT = Path(__file__).resolve().parent.parent
LEDGER_PREFIX = names.LEDGER_FOLDER
LEDGER_BUCKET_KEY = "ledger-bucket"
LEDGER_HISTORY_DAYS = 90  # names.supervisor_parameter(prefix, LEDGER_BUCKET_KEY)
# A claim of a stage outlives the invocation that made it (supervisor.CLOUD_LEASE): the same 15 minutes.
TIMEOUT = Duration.minutes(15)
# EventBridge's own maximum: a supervisor that was down for a day still gets every event.
EVENT_RETRIES, EVENT_AGE = 185, Duration.hours(24)


@jsii.implements(cdk.ILocalBundling)
class _RuntimeBundle:
    """The function's code: the handler, the runtime package (without its CLI) and PyYAML, copied locally (no
    Docker): the runtime is pure Python and the Lambda runtime brings boto3."""

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        import yaml

        out = Path(output_dir)
        shutil.copy(ROOT / "lambdas" / "supervisor" / "handler.py", out / "handler.py")
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "cli", "*.so")
        shutil.copytree(ROOT / "confluence_runtime", out / "confluence_runtime", ignore=ignore)
        shutil.copytree(Path(yaml.__file__).parent, out / "yaml", ignore=ignore)
        return True


class SupervisorStack(cdk.Stack):
    """The supervisor function, its trigger, ledger, dead letters and alarms for one venue."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        alerts: Any = None,
        log_retention_days: int = 30,
        **kwargs: Any,
    ) -> None:
        """``alerts``: the venue's alerts stack (stacks/alerts.py; its topic read from SSM at deploy time, no
        export); without it this stack makes a topic of its own (apps without the alerts stack)."""
        super().__init__(scope, id, **kwargs)
        self.config = config
        self.prefix = config.prefix
        self.function_name = names.supervisor_function(self.prefix)
        # Its own bucket whatever infrastructure.buckets says: turning the venue's buckets on or off must never
        # move or strand the ledger of runs in flight.
        self.ledger_bucket = self._ledger_bucket()
        self.alerts_topic: sns.ITopic = alerts.references(self) if alerts is not None else self._own_topic()
        self.ledger = f"s3://{self.ledger_bucket.bucket_name}/{LEDGER_PREFIX}"
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetters", self.function_name)
        self.log_group = function_log_group(self, self.function_name, log_retention_days)
        self.role = self._role()
        self.function = self._function()
        self.rule = self._rule()
        self.run_rule = self._run_rule()
        self.sweep_rule = self._sweep_rule()
        self.alarms = self._alarms()
        self._publish()
        self._nag_suppressions()

    def ledger_bucket_name(self, scope: Construct) -> str:
        """The ledger bucket's name for another stack of the venue (the Batch stack's submitter policy), read from
        the parameter this stack publishes when that stack deploys: no export, so the two stay independent."""
        return wiring.read(scope, self, prefix=self.prefix, name=f"supervisor/{LEDGER_BUCKET_KEY}")

    # --- resources --------------------------------------------------------------------------------------------

    def _ledger_bucket(self) -> s3.Bucket:
        return s3.Bucket(
            self,
            "Ledger",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            # The ledger is rewritten at every recorded job: each earlier state stays readable (a run's history)
            # for LEDGER_HISTORY_DAYS, then goes; the current state of every run is kept for good.
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-ledger-states",
                    noncurrent_version_expiration=Duration.days(LEDGER_HISTORY_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )

    def _own_topic(self) -> sns.Topic:
        return sns.Topic(self, "Alerts", topic_name=f"{self.function_name}-alerts", enforce_ssl=True)

    def _batch_arn(self, resource: str, name: str) -> str:
        return self.format_arn(
            service="batch", resource=resource, resource_name=name, arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME
        )

    @property
    def _definitions(self) -> list[str]:
        return list(dict.fromkeys(m.job_definition for m in self.config.modules))

    @property
    def queue_arns(self) -> list[str]:
        return [self._batch_arn("job-queue", name) for name in self.config.venue_queue_compute]

    @property
    def exact_queue_arns(self) -> list[str]:
        """The ARNs of the venue's queues the rule's ARN prefix (``job-queue/{prefix}-``) does not cover."""
        venue = self.config.venue_queue_compute
        return [self._batch_arn("job-queue", n) for n in venue if not n.startswith(f"{self.prefix}-")]

    def _role(self) -> iam.Role:
        role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.function_name}: submit, watch and stop this venue's supervised jobs; keep the ledger",
        )
        tag = names.TAG_PREFIX
        for statement in (
            # The submitter's statement (stacks/constructs/submit_grant.py). The supervisor submits module jobs only
            # (supervise.submission: no dependsOn, so no barrier); {prefix}-* also covers the barrier definitions.
            submit_statement(self, self.prefix, queues=self.config.venue_queue_compute, definitions=self._definitions),
            iam.PolicyStatement(
                sid="ReadBatchState", actions=["batch:DescribeJobs", "batch:ListJobs"], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="StopThisVenuesJobs",
                actions=["batch:CancelJob", "batch:TerminateJob"],
                resources=[self._batch_arn("job", "*")],
                conditions={"StringEquals": {f"aws:ResourceTag/{tag}": self.prefix}},
            ),
        ):
            role.add_to_principal_policy(statement)
        resources = self.config.infrastructure.consumable_resources
        if resources:
            # SubmitJob names the venue's consumable resources in consumableResourcePropertiesOverride.
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="SubmitWithConsumableResources",
                    actions=["batch:SubmitJob"],
                    resources=[
                        self._batch_arn("consumable-resource", names.consumable_resource(self.prefix, r.name))
                        for r in resources
                    ],
                )
            )
        self.ledger_bucket.grant_read_write(role, f"{LEDGER_PREFIX}/*")
        self.ledger_bucket.grant_read(role)  # ListObjectsV2 of the ledger's runs
        items = items_grant.items_statement(self.config)
        if items is not None:
            # Exactly the modules' items lists (their sizes and failure values): stacks/constructs/items_grant.py.
            role.add_to_principal_policy(items)
        self.alerts_topic.grant_publish(role)
        # The venue's topic is encrypted with its own key: publishing needs the key, and only through SNS.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EncryptForTheAlertsTopic",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"kms:ViaService": f"sns.{self.region}.amazonaws.com"}},
            )
        )
        self.dead_letter_queue.grant_send_messages(role)
        return role

    def _function(self) -> lambda_.Function:
        function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description="Advance supervised Confluence runs on Batch Job State Change events",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(ROOT / "lambdas" / "supervisor"),
                asset_hash_type=cdk.AssetHashType.OUTPUT,  # the bundle, runtime package included, names the asset
                bundling=cdk.BundlingOptions(image=lambda_.Runtime.PYTHON_3_14.bundling_image, local=_RuntimeBundle()),
            ),
            timeout=TIMEOUT,
            memory_size=512,
            role=self.role,
            log_group=self.log_group,
            # Asynchronous invocations (EventBridge): Lambda retries twice, then the on-failure destination keeps the
            # event with the error (requestPayload, responsePayload) in the dead-letter queue, whose alarm
            # ({function}-undelivered) reaches the alerts topic; `supervise --run-id ID` continues the run.
            retry_attempts=2,
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
            # X-Ray: where a slow advance spends its time (S3 ledger, Batch, SNS).
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                names.ENV_SUPERVISOR_LEDGER: self.ledger,
                names.ENV_ALERTS_TOPIC: self.alerts_topic.topic_arn,
            },
        )
        return function

    def _rule(self) -> events.Rule:
        return self._function_rule(
            "BatchJobStateChange",
            names.supervisor_rules(self.prefix)[0],
            f"Terminal states of {self.prefix}'s Batch jobs, to the supervisor function",
            names.batch_event_pattern(self.exact_queue_arns, [self._batch_arn("job-queue", f"{self.prefix}-")]),
        )

    def _run_rule(self) -> events.Rule:
        """``run --supervise cloud`` hands a run over with one event (and ``cancel`` asks for its end with another):
        a rule of its own, so the Batch rule's pattern stays exactly the Batch events, and the same target settings,
        so a hand-over is retried, kept in the dead-letter queue and alarmed like any Batch event."""
        return self._function_rule(
            "SupervisedRunEvents",
            names.supervisor_rules(self.prefix)[1],
            f"Supervised runs handed over (run --supervise cloud) or cancelled in {self.prefix}",
            names.supervisor_event_pattern(self.prefix),
        )

    def _sweep_rule(self) -> events.Rule:
        """The sweep: every few minutes the function advances every supervised run not over, so a lost, late or
        dead-lettered event, or one answered "wait" while another invocation held the stage, delays a run by one
        interval at most. The same function and target settings as the events."""
        rule = events.Rule(
            self,
            "Sweep",
            rule_name=names.supervisor_rules(self.prefix)[2],
            description=f"Every {names.SWEEP_MINUTES} minutes: advance {self.prefix}'s supervised runs",
            schedule=events.Schedule.rate(Duration.minutes(names.SWEEP_MINUTES)),
        )
        # A missed sweep is replaced by the next one: no retries for hours, no dead letters to alarm on.
        rule.add_target(targets.LambdaFunction(self.function, retry_attempts=0, max_event_age=Duration.minutes(5)))
        return rule

    def _function_rule(self, construct_id: str, name: str, description: str, pattern: dict[str, Any]) -> events.Rule:
        """A rule sending ``pattern``'s events to the function: EventBridge's retries, then the dead-letter queue.
        ``construct_id`` is the rule's logical id (under this stack, as before): never derived from a position."""
        rule = events.Rule(
            self,
            construct_id,
            rule_name=name,
            description=description,
            event_pattern=events.EventPattern(
                source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]
            ),
        )
        rule.add_target(
            targets.LambdaFunction(
                self.function,
                retry_attempts=EVENT_RETRIES,
                max_event_age=EVENT_AGE,
                dead_letter_queue=self.dead_letter_queue,
            )
        )
        return rule

    def _alarms(self) -> list[cloudwatch.Alarm]:
        return list(
            function_alarms(
                self,
                function=self.function,
                function_name=self.function_name,
                dead_letter_queue=self.dead_letter_queue,
                errors_description="The supervisor function failed: a supervised run may not advance (it is retried)",
                dead_letters_description="Batch events the supervisor could not handle are in its dead-letter "
                "queue; continue the run with: confluence-submit supervise --run-id ID --ledger " + self.ledger,
                errors_period=Duration.minutes(5),
                topic=self.alerts_topic,
            ).all
        )

    def _publish(self) -> None:
        # ledger-bucket: the Batch stack reads it at deploy time for the submitter policy (no export, whose value
        # could never change while imported).
        published = (
            ("ledger", self.ledger),
            ("function-name", self.function_name),
            (LEDGER_BUCKET_KEY, self.ledger_bucket.bucket_name),
        )
        for key, value in published:
            ssm.StringParameter(
                self,
                f"Published-{key}",
                parameter_name=names.supervisor_parameter(self.prefix, key),
                string_value=value,
                description=f"Confluence supervisor: {key}",
            )

    def _nag_suppressions(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.dead_letter_queue,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3", reason="This queue is itself the supervisor's dead-letter queue."
                )
            ],
        )
        part = "(?:<AWS::[A-Za-z]+>|[^:<>]+)"

        def arn(resource: str) -> RegexAppliesTo:
            return RegexAppliesTo(regex=f"/^Resource::arn:{part}:batch:{part}:{part}:{resource}$/")

        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Batch DescribeJobs/ListJobs and X-Ray PutTraceSegments/PutTelemetryRecords have no "
                    "resource-level permissions; AWS requires '*'. The alerts topic's key is used only through SNS "
                    "(kms:ViaService).",
                    applies_to=["Resource::*"],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Job ids are random: Cancel/Terminate are scoped by the venue's job tag "
                    "(aws:ResourceTag confluence:prefix) instead of by ARN.",
                    applies_to=[arn("job/\\*")],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="This venue's queues and job definitions ({prefix}-*: every revision, submitted with or "
                    "without one; a deployed prefix has one '-', so no other venue's names match).",
                    applies_to=nag_findings(self.prefix, definitions=self._definitions),
                ),
                *(
                    [
                        NagPackSuppression(
                            id="AwsSolutions-IAM5",
                            reason="The modules' items lists, one ARN per bucket (their keys' common beginning) to "
                            "keep the policy in size.",
                            applies_to=items_grant.nag_findings(self.config),
                        )
                    ]
                    if items_grant.nag_findings(self.config)
                    else []
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The ledger keeps one folder of objects per run under runs/ of its own bucket; the grant "
                    "is that prefix (Bucket.grant_read_write).",
                    applies_to=[
                        "Action::s3:GetObject*",
                        "Action::s3:GetBucket*",
                        "Action::s3:List*",
                        "Action::s3:DeleteObject*",
                        "Action::s3:Abort*",
                        RegexAppliesTo(regex="/^Resource::.*\\/(runs\\/)?\\*$/"),
                    ],
                ),
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.ledger_bucket,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1",
                    reason="Only the supervisor function and confluence-submit write the ledger; versioning "
                    "keeps every state of a run's documents.",
                )
            ],
        )
        if isinstance(self.alerts_topic, sns.Topic):
            NagSuppressions.add_resource_suppressions(
                self.alerts_topic,
                [
                    NagPackSuppression(
                        id="AwsSolutions-SNS2",
                        reason="Alarm notifications and run summaries hold no secrets; CloudWatch alarms cannot "
                        "publish to a topic encrypted with the AWS managed key.",
                    )
                ],
            )
