"""AWS Batch for one venue, generated from confluence.yaml: compute environments, queues, job definitions.

Names are exactly what confluence-submit submits to (``Config.job_queues``, ``Module.job_definition``,
``Config.barrier_job_definition``), so a module added to confluence.yaml gets its job definition, ECR repository,
log group and roles on the next deploy without code changes.

SSM parameters (each also a stack output) a runtime reads with
``ssm.get_parameters_by_path(Path=f"/{prefix}/", Recursive=True)``:

- ``/{prefix}/batch/job-queues``                      StringList: every job queue name, in first-use order
- ``/{prefix}/batch/job-definitions/{module}``        String: the job definition name of each module
- ``/{prefix}/batch/barrier-job-definition``          String: the barrier job definition name
- ``/{prefix}/iam/submitter-policy-arn``              String: the ``{prefix}-submitter`` managed policy ARN

Modules with ``compute: ec2_spot`` or ``ec2`` run in managed EC2 compute environments (Spot with
SPOT_PRICE_CAPACITY_OPTIMIZED, On-Demand as fallback or alone) through queues of their own, with EC2 job
definitions; ``secrets`` become Secrets Manager secrets ``/{prefix}/{name}`` (created empty) that ECS injects through
the execution role; ``buckets`` grant exactly the declared access. The efs tool (``confluence-submit efs``) has its
queue ``{prefix}-efs`` and two job definitions with every area mounted under ``/mnt/efs``.

The renew construct (stacks/renew.py) publishes ``/{prefix}/renew/*`` itself (function-name, schedule-name,
schedule-group, kms-key-id, secret-name, credential-parameters); this stack repeats the schedule name as an output.
"""

from __future__ import annotations

import re
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

from confluence_runtime import names
from confluence_runtime.config import Config, Module
from confluence_runtime.names import TAG_PREFIX
from stacks.checks import compute_environments, ec2_size, ecr_repository_name, fargate_size
from stacks.constructs import items_grant
from stacks.constructs.batch_alarms import batch_alarms
from stacks.constructs.discovery import Discovery
from stacks.constructs.fargate_job import EfsMount, FargateJob
from stacks.constructs.retention import retention
from stacks.constructs.submit_grant import nag_findings, submit_statement
from stacks.protocols import AlertsSource, NetworkLike, RenewLike, RenewSource, StorageLike, SupervisorSource
from stacks.storage import POSIX_GID, POSIX_UID, access_point_id

DISABLE_RENEW_MODULE = "disable_renew"
PUBLIC_ECR = "public.ecr.aws/"
BARRIER_IMAGE = f"{PUBLIC_ECR}docker/library/busybox:1.37"
# The efs tool: ls on busybox, aws s3 sync on the AWS CLI image (pinned like every image of the venue).
EFS_IMAGES = {"ls": BARRIER_IMAGE, "sync": f"{PUBLIC_ECR}aws-cli/aws-cli:2.22.35"}
QUEUE_PRIORITY = 10
# The root device of the ECS-optimized Amazon Linux AMIs Batch launches.
ROOT_DEVICE = "/dev/xvda"
# Why a job can sit in RUNNABLE forever; AWS cancels it after runnable_timeout only if its reason matches one.
_BLOCKED_REASONS = (
    batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
    batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
    batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
)


class BatchStack(cdk.Stack):
    """``compute_environments`` (name -> environment, Spot first), ``job_queues`` (name -> queue), ``jobs``
    (module -> FargateJob),
    ``barrier``, ``repositories`` (module -> ECR repository) and ``submitter_policy``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        network: NetworkLike,
        storage: StorageLike,
        renew: RenewSource | None = None,
        supervisor: SupervisorSource | None = None,
        alerts: AlertsSource | None = None,
        batch_quota_per_region: int = 50,
        venues_per_region: int = 3,
        image_tag: str | None = None,
        retain: bool = False,
        **kwargs: Any,
    ) -> None:
        # ``config`` has passed stacks.checks.check_config: app.py runs it once, before any stack exists.
        super().__init__(scope, id, **kwargs)
        self.config = config
        self.prefix = config.prefix
        self.image_tag = image_tag  # -c imageTag: one release for every module of this deploy
        self.retain = retain  # ops keeps its images when the stack goes; a dev venue can be destroyed and redeployed
        # Everything from the other stacks is read from SSM at deploy time (stacks/constructs/wiring.py): no export
        # of theirs can be stranded by a yaml edit that stops this stack from using it.
        net, stored = network.references(self, vpc_id=False), storage.references(self)
        self.renew: RenewLike | None = renew.references(self) if renew is not None else None
        # run --supervise cloud, cancel and --ledger read and write the supervisor's ledger bucket (from SSM too).
        self._ledger_bucket = supervisor.ledger_bucket_name(self) if supervisor is not None else None
        # run --supervise local --alerts-topic and supervise --alerts-topic publish the summary on the venue's topic.
        topic = alerts.references(self) if alerts is not None else None
        self._alerts_topic = topic.topic_arn if topic is not None else None
        self._vpc, self._subnets, self._security_group = net.vpc, net.subnets, net.security_group
        self._file_system, self._area_access_points = stored.file_system, stored.access_points
        # Access points of areas the storage stack does not keep for good (sub-directories, areas only this yaml
        # names): created here, beside the job definitions that mount them (_access_point).
        self.module_access_points: dict[str, efs.AccessPoint] = {}
        self._buckets = dict(stored.buckets)

        self._ec2_launch_template: ec2.LaunchTemplate | None = None
        self.consumable_resources = self._consumable_resources()
        self.compute_environments = self._compute_environments()
        self.job_queues = self._job_queues()
        self.efs_queue = self._queue(names.efs_queue(self.prefix), names.FARGATE, construct_id="EfsToolQueue")
        self.repositories: dict[str, ecr.Repository] = {}
        self.secrets: dict[str, secretsmanager.ISecret] = {}
        self.public_image_cache = self._public_image_cache()
        self.jobs = {module.name: self._module_job(module) for module in config.modules}
        self.barrier = self._barrier_job()
        self.barriers = {names.PLATFORM_FARGATE: self.barrier}
        if any(m.platform == names.PLATFORM_EC2 for m in config.modules):
            self.barriers[names.PLATFORM_EC2] = self._barrier_job(ec2=True)
        self.efs_jobs = {action: self._efs_job(action) for action in names.EFS_ACTIONS}
        self.submitter_policy = self._submitter_policy()
        # Failed and blocked jobs of every run (supervised or not) reach the alerts topic: batch_alarms.py.
        self.alarms = batch_alarms(
            self,
            prefix=self.prefix,
            queue_arns=[q.job_queue_arn for q in (*self.job_queues.values(), self.efs_queue)],
            topic=topic,
        )
        self._publish()

    # -- consumable resources -----------------------------------------------------------------------------------

    def _consumable_resources(self) -> dict[str, batch.ConsumableResource]:
        """``infrastructure.consumable_resources``: limits outside the compute environments that jobs hold while
        they run (REPLENISHABLE: an API's concurrency) or use up (NON_REPLENISHABLE: a monthly request quota).
        A job waits in RUNNABLE until its units are free; ``confluence-submit resources set`` changes a total
        during a run (UpdateConsumableResource). Changing a resource's type replaces it, and its fixed name makes
        that deployment fail: rename the resource in the yaml to change its type."""
        return {
            resource.name: batch.ConsumableResource(
                self,
                f"ConsumableResource-{resource.name}",
                consumable_resource_name=names.consumable_resource(self.prefix, resource.name),
                resource_type=batch.ConsumableResourceType(resource.type),
                total_quantity=resource.total,
            )
            for resource in self.config.infrastructure.consumable_resources
        }

    # -- compute ------------------------------------------------------------------------------------------------

    # Every resource built in a loop takes its construct id (hence its logical id) from a name, never from a
    # position: inserting a stage must not rename the queues after it, since a new logical id makes CloudFormation
    # create a second queue of the same name (which fails) and delete the old one, terminating its jobs.

    def _compute_environments(self) -> dict[str, batch.IComputeEnvironment]:
        """Compute environment name -> environment (stacks.checks.compute_environments: Fargate, then EC2 ones)."""
        environments: dict[str, batch.IComputeEnvironment] = {}
        for ec2_kind, spot in compute_environments(self.config):
            name = names.compute_environment(self.prefix, spot=spot, ec2=ec2_kind)
            if ec2_kind:
                environments[name] = self._ec2_environment(name, spot=spot)
                continue
            environments[name] = batch.FargateComputeEnvironment(
                self,
                "FargateSpot" if spot else "Fargate",
                compute_environment_name=name,
                vpc=self._vpc,
                vpc_subnets=self._subnets,
                security_groups=[self._security_group],
                spot=spot,
                maxv_cpus=self.config.infrastructure.max_vcpus,
            )
        return environments

    def _ec2_environment(self, name: str, *, spot: bool) -> batch.ManagedEc2EcsComputeEnvironment:
        infrastructure = self.config.infrastructure
        classes = infrastructure.ec2_instance_classes
        environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            f"ComputeEnvironment-{name.removeprefix(f'{self.prefix}-')}",
            compute_environment_name=name,
            vpc=self._vpc,
            vpc_subnets=self._subnets,
            security_groups=[self._security_group],
            spot=spot,
            # Spot: capacity from the deepest pools at the lowest price, so reclaims are rare (AWS's recommendation).
            allocation_strategy=batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
            if spot
            else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
            minv_cpus=0,
            maxv_cpus=infrastructure.ec2_max_vcpus,
            launch_template=self._launch_template(),
        )
        # Batch takes families (m6i) as well as types (m6i.xlarge); CDK's InstanceType accepts types only and its
        # InstanceClass enum only the families it knows, so the yaml's list is written as it is.
        cfn = environment.node.default_child
        assert isinstance(cfn, batch.CfnComputeEnvironment)
        cfn.add_property_override("ComputeResources.InstanceTypes", list(classes))
        NagSuppressions.add_resource_suppressions(
            environment,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="The ECS agent on Batch's instances needs AmazonEC2ContainerServiceforEC2Role, the "
                    "instance role AWS Batch documents for managed EC2 compute environments.",
                    applies_to=[
                        RegexAppliesTo(
                            regex="/^Policy::arn:(<AWS::Partition>|aws[a-z-]*):iam::aws:policy/service-role/"
                            "AmazonEC2ContainerServiceforEC2Role$/"
                        )
                    ],
                )
            ],
            apply_to_children=True,
        )
        return environment

    def _launch_template(self) -> ec2.LaunchTemplate:
        """The instances' root volume (images and scratch space: 30 GiB by default, too little for large images),
        encrypted, and IMDSv2 only; one template for the Spot and On-Demand environments. No fixed name, so changing
        it never collides with itself."""
        if self._ec2_launch_template is None:
            self._ec2_launch_template = ec2.LaunchTemplate(
                self,
                "Ec2LaunchTemplate",
                block_devices=[
                    ec2.BlockDevice(
                        device_name=ROOT_DEVICE,
                        volume=ec2.BlockDeviceVolume.ebs(
                            self.config.infrastructure.ec2_root_volume_gib,
                            volume_type=ec2.EbsDeviceVolumeType.GP3,
                            encrypted=True,
                            delete_on_termination=True,
                        ),
                    )
                ],
                require_imdsv2=True,
            )
        return self._ec2_launch_template

    def _queue_id(self, name: str) -> str:
        """The construct id of the queue ``name``: its name without the venue prefix (the stack name has it)."""
        return f"JobQueue-{name.removeprefix(f'{self.prefix}-')}"

    def _job_queues(self) -> dict[str, batch.JobQueue]:
        return {name: self._queue(name, compute) for name, compute in self.config.venue_queue_compute.items()}

    def _queue(self, name: str, compute: str, *, construct_id: str | None = None) -> batch.JobQueue:
        """A queue serves one compute kind: its environments in the order Batch tries them (Spot first, so
        On-Demand only takes what Spot cannot), never EC2 and Fargate together."""
        timeout = cdk.Duration.seconds(self.config.infrastructure.runnable_timeout)
        order = names.queue_environments(compute, fargate_spot=self.config.infrastructure.fargate_spot)
        environments = [
            self.compute_environments[names.compute_environment(self.prefix, ec2=ec2_kind, spot=spot)]
            for ec2_kind, spot in order
        ]
        return batch.JobQueue(
            self,
            construct_id or self._queue_id(name),
            job_queue_name=name,
            priority=QUEUE_PRIORITY,
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=ce, order=position)
                for position, ce in enumerate(environments, start=1)
            ],
            job_state_time_limit_actions=[
                batch.JobStateTimeLimitAction(
                    max_time=timeout,
                    reason=reason,
                    action=batch.JobStateTimeLimitActionsAction.CANCEL,
                    state=batch.JobStateTimeLimitActionsState.RUNNABLE,
                )
                for reason in _BLOCKED_REASONS
            ],
        )

    # -- job definitions ----------------------------------------------------------------------------------------

    def _module_job(self, module: Module) -> FargateJob:
        on_ec2 = module.platform == names.PLATFORM_EC2
        size = ec2_size(module) if on_ec2 else fargate_size(module)
        environment = dict(module.environment)
        if module.s3_credentials and self.renew is not None:
            environment.update(self.renew.credential_environment)
        job = FargateJob(
            self,
            f"Module-{module.name}",
            job_definition_name=module.job_definition,
            image=self._image(module),
            vcpus=int(size.vcpus) if on_ec2 else size.vcpus,
            memory_mib=size.memory,
            log_group_name=f"/aws/batch/{self.prefix}/{module.name}",
            log_retention=retention(self.config.infrastructure.log_retention_days),
            file_system=self._file_system,
            mounts=[
                EfsMount(
                    name=names.volume_name(m.root),
                    path=m.path,
                    access_point=self._access_point(m.root.lstrip("/")),
                    read_only=m.read_only,
                )
                for m in module.mounts
            ],
            environment=environment,
            timeout_seconds=module.timeout,
            retries=module.retries,
            retry_on=module.retry_on,
            tags=dict(module.tags),
            ec2=on_ec2,
            secrets={env: self._secret(name) for env, name in module.secrets},
        )
        assert job.job_role is not None
        self._grant_module(module, job.job_role)
        if module.consumes:
            # No L2 for a job definition's consumable resources in aws-cdk-lib 2.275: the L1 property.
            cfn = job.job_definition.node.default_child
            assert isinstance(cfn, batch.CfnJobDefinition)
            cfn.add_property_override(
                "ConsumableResourceProperties",
                {
                    "ConsumableResourceList": [
                        {
                            "ConsumableResource": self.consumable_resources[name].consumable_resource_arn,
                            "Quantity": quantity,
                        }
                        for name, quantity in module.consumes
                    ]
                },
            )
        if module.image is not None:
            self._grant_public_image_cache(job, module.image)
        self._suppress_execution_role(job)
        return job

    def _access_point(self, root: str) -> efs.IAccessPoint:
        """The access point of ``root`` (``flpe`` or ``flpe/momma``).

        The areas of the Terraform deployment are the storage stack's, published whether mounted or not, so no yaml
        edit removes them. Any other (a sub-directory, an area only this yaml names) is created in this stack: when
        the last mount of it goes, CloudFormation deletes it in this stack's cleanup phase, after the job
        definitions that no longer name it are in place, and never on a rollback. Were it the storage stack's, that
        stack (deployed first) would delete it while the deployed job definitions still mount it, and a rollback
        of this stack would restore definitions naming a deleted access point. (DeleteAccessPoint: "Clients
        connected to the access point at the time of deletion will continue to function"; jobs that start later
        would not mount.)"""
        if root in self._area_access_points:
            return self._area_access_points[root]
        if root not in self.module_access_points:
            self.module_access_points[root] = efs.AccessPoint(
                self,
                access_point_id(root),
                file_system=self._file_system,
                path=f"/{root}",
                create_acl=efs.Acl(owner_uid=POSIX_UID, owner_gid=POSIX_GID, permissions="0755"),
                posix_user=efs.PosixUser(uid=POSIX_UID, gid=POSIX_GID),
            )
        return self.module_access_points[root]

    def _public_image_cache(self) -> ecr.CfnPullThroughCacheRule | None:
        infrastructure = self.config.infrastructure
        if infrastructure.nat_gateway and not infrastructure.egress_allowlist:
            return None
        # Without a NAT gateway nothing reaches public.ecr.aws (no VPC endpoint serves it), and with an egress
        # allowlist only AWS's own names resolve: ECR pulls those images through a cache in this account instead.
        return ecr.CfnPullThroughCacheRule(
            self,
            "PublicEcrCache",
            ecr_repository_prefix=f"{self.prefix}-public",
            upstream_registry_url=PUBLIC_ECR.rstrip("/"),
        )

    def _registry_image(self, uri: str) -> ecs.ContainerImage:
        if self.public_image_cache is None or not uri.startswith(PUBLIC_ECR):
            return ecs.ContainerImage.from_registry(uri)
        registry = f"{self.account}.dkr.ecr.{self.region}.{self.url_suffix}"
        return ecs.ContainerImage.from_registry(f"{registry}/{self.prefix}-public/{uri[len(PUBLIC_ECR) :]}")

    def _grant_public_image_cache(self, job: FargateJob, uri: str) -> None:
        if self.public_image_cache is None or not uri.startswith(PUBLIC_ECR):
            return
        role = job.execution_role
        assert role is not None
        role.add_to_principal_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        # The first pull of an image creates its cache repository and imports it (BatchImportUpstreamImage).
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchImportUpstreamImage",
                    "ecr:CreateRepository",
                ],
                resources=[self.format_arn(service="ecr", resource="repository", resource_name=self._cache_repos)],
            )
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Pull-through cache repositories are created on first pull under this venue's prefix; "
                    "their names are not known before.",
                    applies_to=[_arn_finding("ecr", f"repository/{self._cache_repos}")],
                )
            ],
            apply_to_children=True,
        )

    @property
    def _cache_repos(self) -> str:
        return f"{self.prefix}-public/*"

    def _image(self, module: Module) -> ecs.ContainerImage:
        if module.image is not None:
            return self._registry_image(module.image)
        repository = ecr.Repository(
            self,
            f"Repository-{module.name}",
            repository_name=ecr_repository_name(self.prefix, module),
            image_scan_on_push=True,
            # A pushed tag never changes: a job definition names exactly one image, so a push during a run cannot
            # mix versions (the release flow is in the README).
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            # A retained repository keeps its fixed name taken: only ops keeps them (README: destroying a venue).
            removal_policy=cdk.RemovalPolicy.RETAIN if self.retain else cdk.RemovalPolicy.DESTROY,
            empty_on_delete=not self.retain,
            lifecycle_rules=[ecr.LifecycleRule(description="Keep the last 20 images", max_image_count=20)],
        )
        self.repositories[module.name] = repository
        tag = self.image_tag or module.image_tag
        if tag is None:  # stacks.checks.check_config reports it with the yaml line; this guards direct use
            raise ValueError(f"{module.key}: no image_tag (set it in confluence.yaml or pass image_tag)")
        return ecs.ContainerImage.from_ecr_repository(repository, tag)

    def _grant_buckets(self, grants: dict[str, str], role: iam.IRole) -> None:
        """Exactly the declared access (``ro``: read, ``rw``: read and write) on the venue's buckets."""
        for name, mode in grants.items():
            bucket = self._buckets[name]
            if mode == "rw":
                bucket.grant_read_write(role)
            else:
                bucket.grant_read(role)
        if not grants:
            return
        writes = "rw" in grants.values()
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The objects of the venue buckets this module declares (buckets: in confluence.yaml): "
                    "Bucket.grant_read (GetObject*/GetBucket*/List*) or grant_read_write (plus PutObject*, "
                    "DeleteObject*, Abort*) on the bucket and its objects.",
                    applies_to=[
                        "Action::s3:GetObject*",
                        "Action::s3:GetBucket*",
                        "Action::s3:List*",
                        *(["Action::s3:DeleteObject*", "Action::s3:Abort*"] if writes else []),
                        # The bucket ARN built from its name, read from SSM (/{prefix}/storage/buckets/*); the
                        # partition is a literal when the stack has a region.
                        RegexAppliesTo(
                            regex="/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):s3:::<SsmParameterValue[A-Za-z0-9]+>"
                            "\\/\\*$/"
                        ),
                    ],
                )
            ],
            apply_to_children=True,
        )

    def _secret(self, name: str) -> secretsmanager.ISecret:
        """The venue's secret ``/{prefix}/{name}``, created once however many modules read it."""
        full = names.secret_name(self.prefix, name)
        if full not in self.secrets:
            # Empty: CloudFormation cannot hold the value (an API key, a login); the operator puts it with
            # put-secret-value, as for the Earthdata login. When the stack or a yaml edit drops it, a dev venue deletes
            # it, value and all (CloudFormation deletes a secret at once, with no recovery window); a retained venue
            # (ops) keeps it.
            secret = secretsmanager.CfnSecret(
                self, f"Secret-{name}", name=full, description=f"{full}: set by the operator (put-secret-value)"
            )
            secret.apply_removal_policy(cdk.RemovalPolicy.RETAIN if self.retain else cdk.RemovalPolicy.DESTROY)
            NagSuppressions.add_resource_suppressions(
                secret,
                [
                    NagPackSuppression(
                        id="AwsSolutions-SMG4",
                        reason="A key or login issued by a third party (Hydrocron, LP DAAC) is changed at its issuer; "
                        "Secrets Manager has no rotation function that could change it there.",
                    )
                ],
            )
            self.secrets[full] = secretsmanager.Secret.from_secret_complete_arn(self, f"SecretRef-{name}", secret.ref)
        return self.secrets[full]

    def _grant_module(self, module: Module, role: iam.IRole) -> None:
        self._grant_buckets(dict(module.buckets), role)
        if self.renew is not None:
            if module.s3_credentials:
                self.renew.grant_read_credentials(role)
            if module.name == DISABLE_RENEW_MODULE:
                self.renew.grant_invoke_disable(role)
        elif module.name == DISABLE_RENEW_MODULE:
            # Until the renew construct is wired in, allow exactly the function the module's arguments name.
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[
                        self.format_arn(
                            service="lambda",
                            resource="function",
                            resource_name=names.renew_function(self.prefix),
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                )
            )

    def _barrier_job(self, *, ec2: bool = False) -> FargateJob:
        """The barrier of Fargate queues, or (``ec2``) of EC2 queues: a definition runs on one platform only."""
        definition = names.barrier_definition(self.prefix, names.PLATFORM_EC2 if ec2 else names.PLATFORM_FARGATE)
        job = FargateJob(
            self,
            "BarrierEc2" if ec2 else "Barrier",
            job_definition_name=definition,
            image=self._registry_image(BARRIER_IMAGE),
            vcpus=1 if ec2 else 0.25,
            memory_mib=512,
            command=["true"],
            # /aws/batch/{prefix}/barrier and .../barrier-ec2, like the definitions
            log_group_name=f"/aws/batch/{self.prefix}/{definition.removeprefix(f'{self.prefix}-')}",
            log_retention=retention(self.config.infrastructure.log_retention_days),
            timeout_seconds=300,
            retries=3,
            with_job_role=False,
            ec2=ec2,
        )
        self._grant_public_image_cache(job, BARRIER_IMAGE)
        self._suppress_execution_role(job)
        return job

    def _efs_job(self, action: str) -> FargateJob:
        """``efs ls`` (every area read-only) or ``efs sync`` (every area writable, the venue buckets read-write),
        each area at /mnt/efs/AREA."""
        read_only = action == "ls"
        areas = list(
            dict.fromkeys(
                [*self._area_access_points, *(r.strip("/") for r in self.config.mount_roots if r.count("/") == 1)]
            )
        )
        job = FargateJob(
            self,
            f"Efs-{action}",
            job_definition_name=names.efs_job_definition(self.prefix, action),
            image=self._registry_image(EFS_IMAGES[action]),
            vcpus=0.25 if read_only else 1,
            memory_mib=512 if read_only else 2048,
            log_group_name=f"/aws/batch/{self.prefix}/{names.efs_tool(action)}",
            log_retention=retention(self.config.infrastructure.log_retention_days),
            file_system=self._file_system,
            mounts=[
                EfsMount(
                    name=names.volume_name(area),
                    path=f"{names.EFS_ROOT}/{area}",
                    access_point=self._access_point(area),
                    read_only=read_only,
                )
                for area in areas
            ],
            timeout_seconds=600 if read_only else 12 * 3600,
        )
        assert job.job_role is not None
        if not read_only:
            self._grant_buckets(dict.fromkeys(self._buckets, "rw"), job.job_role)
        self._grant_public_image_cache(job, EFS_IMAGES[action])
        self._suppress_execution_role(job)
        return job

    def _suppress_execution_role(self, job: FargateJob) -> None:
        if not isinstance(job.execution_role, iam.Role):
            return
        NagSuppressions.add_resource_suppressions(
            job.execution_role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="ecr:GetAuthorizationToken has no resource-level permissions; AWS requires '*'.",
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )

    # -- access for people and CI -------------------------------------------------------------------------------

    def _parameter_arn(self, name: str) -> str:
        return self.format_arn(
            service="ssm",
            resource="parameter",
            resource_name=name.lstrip("/"),
            arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
        )

    def _submitter_policy(self) -> iam.ManagedPolicy:
        job_definitions = list(
            dict.fromkeys(
                [m.job_definition for m in self.config.modules]
                + [names.barrier_definition(self.prefix, platform) for platform in self.barriers]
                + [names.efs_job_definition(self.prefix, action) for action in self.efs_jobs]
            )
        )
        statements = [
            # Both forms of every definition, bounded in size, no other venue's: stacks/constructs/submit_grant.py.
            submit_statement(
                self,
                self.prefix,
                queues=[*self.job_queues, names.efs_queue(self.prefix)],
                definitions=job_definitions,
            ),
            # confluence-submit efs prints what its job wrote.
            iam.PolicyStatement(
                sid="ReadEfsToolOutput",
                actions=["logs:GetLogEvents"],
                resources=[job.log_group.log_group_arn for job in self.efs_jobs.values()],
            ),
            iam.PolicyStatement(
                sid="ReadBatchState",
                actions=[
                    "batch:DescribeJobs",
                    "batch:DescribeJobQueues",
                    "batch:DescribeJobDefinitions",
                    "batch:DescribeComputeEnvironments",
                    "batch:ListJobs",
                ],
                resources=["*"],
            ),
            # The run record names each module's image by digest (a tag may move): ECR DescribeImages on the
            # venue's own repositories ({prefix}-{module}, and the {prefix}-public/* pull-through cache).
            iam.PolicyStatement(
                sid="ReadImageDigests",
                actions=["ecr:DescribeImages"],
                resources=[self.format_arn(service="ecr", resource="repository", resource_name=f"{self.prefix}-*")],
            ),
            # Job ids are random, so jobs are scoped by the venue tag confluence-submit puts on every job.
            iam.PolicyStatement(
                sid="ControlThisVenuesJobs",
                actions=["batch:CancelJob", "batch:TerminateJob"],
                resources=[self._batch_arn("job", "*")],
                conditions={"StringEquals": {f"aws:ResourceTag/{TAG_PREFIX}": self.prefix}},
            ),
            # And should another policy of the same person allow tagging jobs, this one still refuses it on any
            # job not already tagged with this venue (StringNotEquals is true when the job has no such tag).
            # It never applies to SubmitJob, whose TagResource is evaluated against the job definition.
            iam.PolicyStatement(
                sid="NoTaggingOtherJobs",
                effect=iam.Effect.DENY,
                actions=["batch:TagResource"],
                resources=[self._batch_arn("job", "*")],
                conditions={"StringNotEquals": {f"aws:ResourceTag/{TAG_PREFIX}": self.prefix}},
            ),
            iam.PolicyStatement(
                sid="ReadVenueParameters",
                actions=["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                resources=[
                    self.format_arn(service="ssm", resource="parameter", resource_name=self.prefix),
                    self.format_arn(service="ssm", resource="parameter", resource_name=f"{self.prefix}/*"),
                ],
            ),
        ]
        if self.renew is not None:
            credentials = names.credential_parameters(self.prefix)
            statements += [
                iam.PolicyStatement(
                    sid="ControlRenew",
                    actions=["lambda:InvokeFunction"],
                    resources=[self.renew.function.function_arn],
                ),
                iam.PolicyStatement(
                    sid="EnableRenewSchedule",
                    actions=["scheduler:GetSchedule", "scheduler:UpdateSchedule"],
                    resources=[
                        self.format_arn(
                            service="scheduler",
                            resource="schedule",
                            resource_name=f"{self.renew.schedule_group}/{self.renew.schedule_name}",
                        )
                    ],
                ),
                iam.PolicyStatement(
                    sid="PassRenewSchedulerRole",
                    actions=["iam:PassRole"],
                    resources=[self.renew.scheduler_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
                ),
                # status and `renew status` read the expiration; nobody running confluence-submit may read the
                # PO.DAAC key, secret or token. SSM decrypts a SecureString with the encryption context
                # PARAMETER_ARN = the parameter's ARN, so Decrypt is allowed for the expiration's ARN alone.
                iam.PolicyStatement(
                    sid="ReadCredentialExpiration",
                    actions=["kms:Decrypt"],
                    resources=[self.renew.key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"ssm.{self.region}.amazonaws.com",
                            "kms:EncryptionContext:PARAMETER_ARN": self._parameter_arn(credentials["expiration"]),
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="NoCredentialValues",
                    effect=iam.Effect.DENY,
                    actions=["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory"],
                    resources=[self._parameter_arn(credentials[role]) for role in ("key", "secret", "token")],
                ),
            ]
        if self.consumable_resources:
            # confluence-submit resources: use and total of each, and a total set during a run; SubmitJob names
            # them in consumableResourcePropertiesOverride (the yaml's consumes, per run).
            statements.append(
                iam.PolicyStatement(
                    sid="ConsumableResources",
                    actions=[
                        "batch:DescribeConsumableResource",
                        "batch:ListJobsByConsumableResource",
                        "batch:UpdateConsumableResource",
                        "batch:SubmitJob",
                    ],
                    resources=[r.consumable_resource_arn for r in self.consumable_resources.values()],
                )
            )
        if self._ledger_bucket is not None:
            statements += self._supervised_run_statements(self._ledger_bucket)
        items = items_grant.items_statement(self.config)
        if items is not None:
            # run sizes arrays from the modules' items lists, a local supervisor when their stage starts, report
            # and the reporter name failed items by value: exactly the lists (stacks/constructs/items_grant.py).
            statements.append(items)
        if self._alerts_topic is not None:
            statements += self._run_summary_statements(self._alerts_topic)
        policy = iam.ManagedPolicy(
            self,
            "SubmitterPolicy",
            managed_policy_name=f"{self.prefix}-submitter",
            description=f"Run confluence-submit against {self.prefix}",
            statements=statements,
        )
        NagSuppressions.add_resource_suppressions(
            policy,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Batch Describe*/List* have no resource-level permissions; AWS requires '*'. The "
                    "alerts topic's key is used only through SNS, for that topic (kms:ViaService, encryption context).",
                    applies_to=["Resource::*"],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Job ids are random: CancelJob/TerminateJob are scoped by the venue's job tag "
                    "(aws:ResourceTag confluence:prefix) instead of by ARN.",
                    applies_to=[_arn_finding("batch", "job/*")],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="This venue's queues and job definitions ({prefix}-*: every revision, submitted with or "
                    "without one; a deployed prefix has one '-', so no other venue's names match).",
                    applies_to=nag_findings(self.prefix, definitions=job_definitions),
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The digests of this venue's images: DescribeImages on its own repositories ({prefix}-*).",
                    applies_to=[_arn_finding("ecr", f"repository/{self.prefix}-*")],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The runtime discovers this venue's names under /{prefix}/ (and only there).",
                    applies_to=[_arn_finding("ssm", f"parameter/{self.prefix}/*")],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The run ledger keeps one folder of objects per run under runs/ of the supervisor's "
                    "ledger bucket (its name read from SSM): the grant is that folder.",
                    applies_to=[
                        RegexAppliesTo(
                            # partition is a literal when the stack has a region.
                            regex="/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):s3:::<SsmParameterValue[A-Za-z0-9]+>"
                            f"\\/{names.LEDGER_FOLDER}\\/\\*$/"
                        )
                    ],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The log streams of the efs tool's two log groups (one stream per job attempt).",
                    applies_to=[
                        RegexAppliesTo(regex="/^Resource::<Efs(ls|sync)LogGroup[0-9A-F]{8}\\.Arn>$/"),
                    ],
                ),
                *_items_suppressions(self.config),
            ],
        )
        return policy

    def _supervised_run_statements(self, ledger_bucket: str) -> list[iam.PolicyStatement]:
        """What ``run --supervise cloud``, ``cancel`` of a cloud run and ``--ledger s3://...`` (``supervise
        --status/--cancel``, ``status``, ``report``) need beyond the rest of this policy: one event on the default
        bus, and the run ledger (``runs/`` of the supervisor's bucket; ledger.S3Store: GetObject, PutObject with
        IfNoneMatch/IfMatch, ListObjectsV2 of ``runs/``). Conditional writes need s3:PutObject and nothing more
        (the s3:if-match/s3:if-none-match keys only let a policy demand them). The bucket is SSE-S3: no KMS grant.
        The ledger's SSM parameter is read through ReadVenueParameters (``/{prefix}/*``)."""
        folder = f"{names.LEDGER_FOLDER}/"
        bucket_arn = f"arn:{cdk.Aws.PARTITION}:s3:::{ledger_bucket}"
        return [
            # EventBridge user guide, "Using IAM policy conditions": events:source is "the literal string for the
            # source field of the event", events:detail-type "the literal string for the detail-type field of the
            # event" (the keys PutEvents is authorized with). The detail's prefix has no condition key: another
            # venue's event could be put, but only that venue's rule matches it (names.supervisor_event_pattern), so
            # it reaches only that venue's function, which reads only that venue's ledger.
            iam.PolicyStatement(
                sid="HandOverSupervisedRuns",
                actions=["events:PutEvents"],
                resources=[self.format_arn(service="events", resource="event-bus", resource_name="default")],
                conditions={
                    "StringEquals": {
                        "events:source": names.SUPERVISOR_EVENT_SOURCE,
                        "events:detail-type": names.SUPERVISOR_EVENT,
                    }
                },
            ),
            # run --supervise cloud first asks whether the venue's supervisor can take the run (GetFunction, and
            # DescribeRule of the Batch-events and hand-over rules), so a hand-over never goes to nobody.
            iam.PolicyStatement(
                sid="CheckSupervisor",
                actions=["lambda:GetFunction", "events:DescribeRule"],
                resources=[
                    self.format_arn(
                        service="lambda",
                        resource="function",
                        resource_name=names.supervisor_function(self.prefix),
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    ),
                    *(
                        self.format_arn(service="events", resource="rule", resource_name=rule)
                        for rule in names.supervisor_rules(self.prefix)[:2]
                    ),
                ],
            ),
            iam.PolicyStatement(
                sid="KeepSupervisedRunsLedger",
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[f"{bucket_arn}/{folder}*"],
            ),
            # ListObjectsV2 (runs, status --ledger) only of runs/ (s3:prefix is the request's Prefix).
            iam.PolicyStatement(
                sid="ListSupervisedRuns",
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": f"{folder}*"}},
            ),
        ]

    def _run_summary_statements(self, topic_arn: str) -> list[iam.PolicyStatement]:
        """``run --supervise local --alerts-topic ARN`` and ``supervise --alerts-topic ARN`` publish the run's
        summary: on the venue's alerts topic only (its ARN read from SSM at deploy time, no export). The topic is
        encrypted with its own key; SNS's encryption-at-rest guide: "make sure that any publishers have the
        kms:GenerateDataKey* and kms:Decrypt permissions for the AWS KMS key". SNS uses that key with the encryption
        context ``aws:sns:topicArn`` (the condition key AWS's key policies for SNS publishers name), so the key
        (whose ARN this stack is not handed) is granted through SNS and for this topic alone."""
        return [
            iam.PolicyStatement(sid="PublishRunSummaries", actions=["sns:Publish"], resources=[topic_arn]),
            iam.PolicyStatement(
                sid="EncryptRunSummaries",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"sns.{self.region}.amazonaws.com",
                        "kms:EncryptionContext:aws:sns:topicArn": topic_arn,
                    }
                },
            ),
        ]

    def _batch_arn(self, resource: str, name: str) -> str:
        return self.format_arn(
            service="batch", resource=resource, resource_name=name, arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME
        )

    # -- discovery ----------------------------------------------------------------------------------------------

    def _publish(self) -> None:
        discovery = Discovery(self, "Discovery", prefix=self.prefix)
        discovery.publish_list(
            "batch/job-queues", list(self.job_queues), description="Confluence job queues, in first-use order"
        )
        for module in self.config.modules:
            discovery.publish(
                f"batch/job-definitions/{module.name}",
                module.job_definition,
                description=f"Job definition of module {module.name}",
            )
        discovery.publish(
            "batch/barrier-job-definition",
            self.config.barrier_job_definition,
            description="Job definition of the stage barrier",
        )
        discovery.publish(
            "iam/submitter-policy-arn",
            self.submitter_policy.managed_policy_arn,
            description="Managed policy to attach to whoever runs confluence-submit",
        )
        if self.renew is not None:
            # The renew construct publishes /{prefix}/renew/* in SSM itself. Only the schedule name is repeated as an
            # output: an output of the function name would re-export an import (cfn-lint W6001).
            discovery.output(
                "RenewScheduleName", self.renew.schedule_name, description="The renew schedule (created disabled)"
            )


def _items_suppressions(config: Config) -> list[NagPackSuppression]:
    """The items lists granted per bucket (only when the exact ARNs would not fit: stacks/constructs/items_grant.py)."""
    findings = items_grant.nag_findings(config)
    reason = "The modules' items lists, one ARN per bucket (their keys' common beginning) to keep the policy in size."
    return [NagPackSuppression(id="AwsSolutions-IAM5", reason=reason, applies_to=findings)] if findings else []


def _arn_finding(service: str, resource: str) -> RegexAppliesTo:
    """How cdk-nag prints a wildcard ARN built by format_arn: partition, region and account are either literals or
    tokens it renders as ``<AWS::Region>`` (which contain colons themselves)."""
    part = "(?:<AWS::[A-Za-z]+>|[^:<>]+)"
    return RegexAppliesTo(regex=f"/^Resource::arn:{part}:{service}:{part}:{part}:{re.escape(resource)}$/")
