"""Publishes a name the runtime needs twice: as a stack output and as an SSM parameter under ``/{prefix}/``.

A runtime reads them all with one ``ssm.get_parameters_by_path(Path=f"/{prefix}/", Recursive=True)``; people read
the outputs after ``cdk deploy``. The parameter names are listed in stacks/batch.py and stacks/storage.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ssm as ssm
from constructs import Construct


class Discovery(Construct):
    """One place per stack that turns (name, value) pairs into an output and an SSM parameter."""

    def __init__(self, scope: Construct, id: str, *, prefix: str) -> None:
        super().__init__(scope, id)
        self.prefix = prefix
        self.parameters: dict[str, ssm.StringParameter | ssm.StringListParameter] = {}

    def publish(self, name: str, value: str, *, description: str) -> ssm.StringParameter:
        """``name`` is relative to ``/{prefix}/``, e.g. ``batch/barrier-job-definition``."""
        parameter_name = f"/{self.prefix}/{name}"
        parameter = ssm.StringParameter(
            self, _id(name), parameter_name=parameter_name, string_value=value, description=description
        )
        self.parameters[parameter_name] = parameter
        cdk.CfnOutput(self, f"{_id(name)}Output", value=value, description=f"{description} (SSM {parameter_name})")
        return parameter

    def output(self, id: str, value: str, *, description: str) -> cdk.CfnOutput:
        """An output only, for names another construct already publishes in SSM."""
        return cdk.CfnOutput(self, id, value=value, description=description)

    def publish_list(self, name: str, values: Sequence[str], *, description: str) -> ssm.StringListParameter:
        """A comma-separated StringList (names here never contain commas: Batch and ECR forbid them)."""
        parameter_name = f"/{self.prefix}/{name}"
        parameter = ssm.StringListParameter(
            self, _id(name), parameter_name=parameter_name, string_list_value=list(values), description=description
        )
        self.parameters[parameter_name] = parameter
        cdk.CfnOutput(
            self,
            f"{_id(name)}Output",
            value=cdk.Fn.join(",", list(values)),
            description=f"{description} (SSM {parameter_name})",
        )
        return parameter


def _id(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)
