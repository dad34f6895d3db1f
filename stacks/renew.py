"""The credential-renew Lambda, its disabled 50-minute schedule, its secret, key, alarms and published names.

PO.DAAC's temporary S3 credentials last one hour; a run lasts many hours. ``confluence-submit run --renew``
invokes the function once and enables the schedule; the ``disable_renew`` Batch job switches it off after input.

After deploying, the operator stores the Earthdata Login (a file keeps the password out of shell history)::

    secret=$(aws ssm get-parameter --name /confluence-dev1/renew/secret-name --query Parameter.Value --output text)
    aws secretsmanager put-secret-value --secret-id "$secret" \\
        --secret-string file://earthdata-login.json     # {"username": "...", "password": "..."}
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from confluence_runtime import names
from confluence_runtime.names import CREDENTIAL_ENV
from stacks.constructs.alarms import function_alarms
from stacks.constructs.function_parts import dead_letter_queue, function_log_group
from stacks.constructs.retention import RETENTION_DAYS
from stacks.constructs.wiring import read

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambdas" / "renew"
DEFAULT_ENDPOINT = "https://archive.podaac.earthdata.nasa.gov/s3credentials"
SCHEDULE_GROUP = names.RENEW_SCHEDULE_GROUP
# Credentials last 60 minutes; 50 leaves ten for retries. (cron(0/50 ...) would fire at :00 and :50 only.)
RATE_MINUTES = 50
PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}\Z")
UNSET_USERNAME = "SET-ME"  # the handler recognises this placeholder and asks for the real login


class Renew(Construct):
    """Keeps PO.DAAC's temporary S3 credentials fresh in four SSM SecureStrings under ``/{prefix}/``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        log_retention_days: int = 30,
        endpoint: str | None = None,
        alarm_topic: sns.ITopic | None = None,
        retain: bool = False,
    ) -> None:
        super().__init__(scope, id)
        _validate(prefix, log_retention_days, endpoint)
        self.prefix = prefix
        # A retained venue (ops) keeps its key and login when the stack goes; a dev venue leaves nothing behind.
        self.removal_policy = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.endpoint = endpoint or DEFAULT_ENDPOINT
        self.function_name = names.renew_function(prefix)
        self.schedule_name = names.renew_schedule(prefix)
        self.schedule_group = SCHEDULE_GROUP
        self.parameter_prefix = f"/{prefix}/"  # the Lambda appends its own copy of the parameter names
        self.parameter_names = names.credential_parameters(prefix)
        self.lock_parameter = names.renew_lock(prefix)

        self.key = self._key()
        self.secret = self._secret()
        self.log_group = function_log_group(self, self.function_name, log_retention_days)
        self.role = self._function_role()
        self.dead_letter_queue = dead_letter_queue(self, "ScheduleDeadLetters", self.function_name)
        self.function: lambda_.IFunction = self._function()
        self.scheduler_role = self._scheduler_role()
        self.schedule = self._schedule()
        self.alarm, self.dead_letter_alarm = function_alarms(
            self,
            function=self.function,
            function_name=self.function_name,
            dead_letter_queue=self.dead_letter_queue,
            errors_description="The renew Lambda failed: modules will lose PO.DAAC access when the credentials expire",
            dead_letters_description="A renewal was never delivered or failed for good (scheduler dead letters and "
            "the function's asynchronous failures; see the queue)",
            errors_period=Duration.hours(1),
            topic=alarm_topic,
        ).all
        self._function_permissions()
        self._publish_names()
        self._nag_suppressions()

    # --- interface for the rest of the app -------------------------------------------------------------------

    @property
    def credential_environment(self) -> dict[str, str]:
        """Environment variables telling a module which parameters hold its S3 credentials."""
        return {CREDENTIAL_ENV[k]: name for k, name in self.parameter_names.items()}

    def grant_read_credentials(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read exactly the four parameters and decrypt them (only through SSM)."""
        return _grant_read_credentials(grantee, self, self.parameter_names, self.key)

    def grant_invoke_disable(self, grantee: iam.IGrantable) -> iam.Grant:
        """Invoke the function (the disable_renew job sends {"action": "disable"})."""
        return _grant_invoke(grantee, self.function)

    def references(self, scope: Construct) -> RenewReference:
        """This construct as another stack sees it: the same interface, ARNs read from SSM at deploy time."""
        return RenewReference(scope, "Renew", source=self)

    # --- resources --------------------------------------------------------------------------------------------

    def _key(self) -> kms.Key:
        return kms.Key(
            self,
            "Key",
            alias=f"alias/{self.function_name}",
            description=f"Encrypts the temporary S3 credentials of {self.prefix} in SSM",
            enable_key_rotation=True,
            removal_policy=self.removal_policy,
        )

    def _secret(self) -> secretsmanager.Secret:
        # CloudFormation cannot hold the real password; a placeholder makes the function fail with instructions
        # until the operator runs put-secret-value.
        return secretsmanager.Secret(
            self,
            "EarthdataLogin",
            # No fixed name: a deleted secret keeps its name for a recovery window of 7-30 days, so a fixed name
            # would make `cdk destroy` then `cdk deploy` of a venue fail; the name is published in SSM instead.
            removal_policy=self.removal_policy,
            description='Earthdata Login for PO.DAAC s3credentials: JSON {"username", "password"}, set by the operator',
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": UNSET_USERNAME}),
                generate_string_key="password",
                exclude_punctuation=True,
            ),
        )

    def _function_role(self) -> iam.Role:
        # Our own role instead of the default one, which would carry the AWS managed AWSLambdaBasicExecutionRole.
        return iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.function_name}: read the Earthdata secret, write the S3 credential parameters",
        )

    def _function(self) -> lambda_.Function:
        return lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description="Refresh PO.DAAC temporary S3 credentials into SSM SecureStrings",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="handler.handler",
            # Standard library plus the runtime's boto3: the directory deploys as it is, no bundling.
            code=lambda_.Code.from_asset(str(LAMBDA_DIR), exclude=["__pycache__", "*.pyc", "README*"]),
            # Worst case: 4 HTTP steps x 4 attempts x 10 s timeout plus backoff stays under 3 minutes.
            timeout=Duration.minutes(3),
            memory_size=256,
            # No reserved concurrency: Lambda keeps 100 unreserved executions per account, so a new account with a
            # low quota rejects any reservation. Overlapping renewals are kept apart by a lock parameter instead.
            role=self.role,
            log_group=self.log_group,
            # Asynchronous (scheduled) invocations: Lambda's own retries; a renew older than one period is moot.
            # What still fails lands in the dead-letter queue, whose alarm reaches people.
            retry_attempts=2,
            max_event_age=Duration.minutes(RATE_MINUTES - 5),
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
            # X-Ray: where a slow renewal spends its time (Earthdata login, the credential endpoint, SSM).
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "RENEW_SECRET_ID": self.secret.secret_arn,
                "RENEW_KMS_KEY_ID": self.key.key_arn,
                "RENEW_PARAMETER_PREFIX": self.parameter_prefix,
                "RENEW_SCHEDULE_NAME": self.schedule_name,
                "RENEW_SCHEDULE_GROUP": self.schedule_group,
                "RENEW_ENDPOINT": self.endpoint,
                "RENEW_LOCK_PARAMETER": self.lock_parameter,
                # Longer than the function's timeout: a lock older than that was left by a renewal that died.
                "RENEW_LOCK_SECONDS": "240",
            },
        )

    def _scheduler_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "SchedulerRole",
            # Confused-deputy guard: only schedules of this account may use the role.
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description=f"EventBridge Scheduler invoking {self.function_name}",
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn])
        )
        return role

    def _schedule(self) -> scheduler.CfnSchedule:
        # L1 on purpose: the L2 target grants invoke on "<arn>:*" through its own grant; this keeps IAM exact.
        return scheduler.CfnSchedule(
            self,
            "Schedule",
            name=self.schedule_name,
            group_name=self.schedule_group,
            description=f"Refresh PO.DAAC S3 credentials for {self.prefix} (enabled by confluence-submit run --renew)",
            schedule_expression=f"rate({RATE_MINUTES} minutes)",
            # Created off: credentials are only needed while a run reads PO.DAAC data.
            state="DISABLED",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.function.function_arn,
                role_arn=self.scheduler_role.role_arn,
                input=json.dumps({"action": "renew"}),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=3, maximum_event_age_in_seconds=(RATE_MINUTES - 5) * 60
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=self.dead_letter_queue.queue_arn),
            ),
        )

    def _function_permissions(self) -> None:
        stack = Stack.of(self)
        self.log_group.grant_write(self.role)
        self.secret.grant_read(self.role)
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["ssm:PutParameter"], resources=self._parameter_arns())
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter"],
                resources=_parameter_arns(self, {"lock": self.lock_parameter}),
            )
        )
        # SSM encrypts standard SecureStrings with kms:Encrypt on the caller's behalf.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Encrypt"],
                resources=[self.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": self._ssm_service()}},
            )
        )
        # A built ARN, not schedule.attr_arn: the function depends on its role's policy, and the schedule on the
        # function, so referencing the schedule here would be a cycle.
        schedule_arn = stack.format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{self.schedule_group}/{self.schedule_name}",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["scheduler:GetSchedule", "scheduler:UpdateSchedule"], resources=[schedule_arn])
        )
        # update_schedule re-sends the target, whose role must be passable to the scheduler.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.scheduler_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            )
        )

    def _publish_names(self) -> None:
        """String parameters the runtime reads, so submitter and stack can never disagree on a name."""
        values = {
            "function-name": self.function.function_name,
            # For the Batch stack (stacks/constructs/wiring.py): enabling the schedule passes this role again.
            "scheduler-role-arn": self.scheduler_role.role_arn,
            "schedule-name": self.schedule_name,
            "schedule-group": self.schedule_group,
            "kms-key-id": self.key.key_arn,
            "secret-name": self.secret.secret_name,
            "credential-parameters": json.dumps(self.parameter_names),
        }
        assert set(names.RENEW_PUBLISHED) <= set(values), "the runtime reads names.RENEW_PUBLISHED"
        for key, value in values.items():
            ssm.StringParameter(
                self,
                f"Published-{key}",
                parameter_name=f"{names.renew_published_path(self.prefix)}{key}",
                string_value=value,
                description=f"renew: {key} (read by confluence-submit)",
            )

    def _nag_suppressions(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.secret,
            [
                {
                    "id": "AwsSolutions-SMG4",
                    "reason": "An Earthdata Login password is changed at urs.earthdata.nasa.gov by its owner; "
                    "Secrets Manager has no rotation function that could change it there.",
                }
            ],
        )
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="X-Ray PutTraceSegments/PutTelemetryRecords (tracing: Active) have no resource-level "
                    "permissions; AWS requires '*'.",
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.dead_letter_queue,
            [
                {
                    "id": "AwsSolutions-SQS3",
                    "reason": "This queue is itself the dead-letter queue of the renew schedule.",
                }
            ],
        )

    # --- helpers ----------------------------------------------------------------------------------------------

    def _parameter_arns(self) -> list[str]:
        return _parameter_arns(self, self.parameter_names)

    def _ssm_service(self) -> str:
        return _ssm_service(self)


class RenewReference(Construct):
    """The renew construct of another stack, for the Batch stack: names are literals, ARNs come from SSM.

    The function's ARN is built from its fixed name; the key and the scheduler role are read from
    ``/{prefix}/renew/kms-key-id`` and ``/{prefix}/renew/scheduler-role-arn`` when the Batch stack deploys, so no
    export ties the stacks together (see stacks/constructs/wiring.py).
    """

    def __init__(self, scope: Construct, id: str, *, source: Renew) -> None:
        super().__init__(scope, id)
        self.prefix = source.prefix
        self.schedule_name = source.schedule_name
        self.schedule_group = source.schedule_group
        self.parameter_names = dict(source.parameter_names)
        stack = Stack.of(self)
        function_arn = stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=source.function_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.function: lambda_.IFunction = lambda_.Function.from_function_attributes(
            self, "Function", function_arn=function_arn, same_environment=True
        )
        self.key: kms.IKey = kms.Key.from_key_arn(
            self, "Key", read(self, source, prefix=self.prefix, name="renew/kms-key-id")
        )
        self.scheduler_role: iam.IRole = iam.Role.from_role_arn(
            self,
            "SchedulerRole",
            read(self, source, prefix=self.prefix, name="renew/scheduler-role-arn"),
            mutable=False,
        )

    @property
    def credential_environment(self) -> dict[str, str]:
        return {CREDENTIAL_ENV[k]: name for k, name in self.parameter_names.items()}

    def grant_read_credentials(self, grantee: iam.IGrantable) -> iam.Grant:
        return _grant_read_credentials(grantee, self, self.parameter_names, self.key)

    def grant_invoke_disable(self, grantee: iam.IGrantable) -> iam.Grant:
        return _grant_invoke(grantee, self.function)


def _grant_read_credentials(
    grantee: iam.IGrantable, scope: Construct, parameter_names: dict[str, str], key: kms.IKey
) -> iam.Grant:
    grant = iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["ssm:GetParameter", "ssm:GetParameters"],
        resource_arns=_parameter_arns(scope, parameter_names),
    )
    grant.combine(
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["kms:Decrypt"],
            resource_arns=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": _ssm_service(scope)}},
        )
    )
    return grant


def _grant_invoke(grantee: iam.IGrantable, function: lambda_.IFunction) -> iam.Grant:
    # Not function.grant_invoke: it adds "<arn>:*" (every version), a wildcard nothing here needs.
    return iam.Grant.add_to_principal(
        grantee=grantee, actions=["lambda:InvokeFunction"], resource_arns=[function.function_arn]
    )


def _parameter_arns(scope: Construct, parameter_names: dict[str, str]) -> list[str]:
    stack = Stack.of(scope)
    return [
        stack.format_arn(
            service="ssm",
            resource="parameter",
            resource_name=name.lstrip("/"),
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        for name in parameter_names.values()
    ]


def _ssm_service(scope: Construct) -> str:
    return f"ssm.{Stack.of(scope).region}.amazonaws.com"


def _validate(prefix: str, log_retention_days: int, endpoint: str | None) -> None:
    if not PREFIX_RE.match(prefix):
        raise ValueError(
            f"Renew: prefix {prefix!r} must be 1-41 lower-case letters, digits or '-', starting with a letter or "
            "digit (it names the function, schedule, queue and parameters)"
        )
    if log_retention_days not in RETENTION_DAYS:
        raise ValueError(
            f"Renew: log_retention_days {log_retention_days} is not a CloudWatch Logs retention "
            f"(allowed: {', '.join(map(str, RETENTION_DAYS))})"
        )
    if endpoint is not None and not endpoint.startswith("https://"):
        raise ValueError(f"Renew: endpoint {endpoint!r} must be an https:// URL (the Earthdata password is sent to it)")
