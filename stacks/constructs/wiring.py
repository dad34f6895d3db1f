"""Values one stack of a venue hands to another, through SSM parameters read at deploy time, never exports.

A CloudFormation export cannot change or disappear while another stack imports it ("You can't modify or remove an
output value that is referenced by another stack"), and CDK exports exactly what a consumer happens to reference,
so an ordinary confluence.yaml edit (removing the last module that mounts an area, turning buckets off) would make
the producer's update fail. Instead a producer always publishes the same fixed set of values as String parameters
under ``/{prefix}/``, whatever the yaml says, and a consumer declares a template parameter of type
``AWS::SSM::Parameter::Value<String>`` that CloudFormation resolves when the consumer deploys. Nothing couples the
two stacks but the parameter name and the deploy order (``add_dependency``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from confluence_runtime.names import venue_parameter

V = TypeVar("V")


def publish(scope: Construct, id: str, *, prefix: str, name: str, value: str, description: str) -> ssm.StringParameter:
    """A String parameter another stack of the venue reads at deploy time (see :func:`read`)."""
    return ssm.StringParameter(
        scope, id, parameter_name=venue_parameter(prefix, name), string_value=value, description=description
    )


def read(consumer: Construct, producer: Construct, *, prefix: str, name: str) -> str:
    """The value ``producer`` published under ``name``, as a token resolved when ``consumer``'s stack deploys.

    Within one stack the parameter would not exist yet at deploy time, so that case is refused: pass the construct.
    """
    consumer_stack, producer_stack = cdk.Stack.of(consumer), cdk.Stack.of(producer)
    if consumer_stack is producer_stack:
        raise ValueError(f"{name}: read from another stack only (here both are {consumer_stack.stack_name})")
    # The producer must have written the parameter before the consumer's template parameter is resolved.
    consumer_stack.add_stack_dependency(producer_stack, "reads its published values from SSM at deploy time")
    return ssm.StringParameter.value_for_string_parameter(consumer_stack, venue_parameter(prefix, name))


class LazyMap(Mapping[str, V]):
    """A mapping whose values are made on first access: a consumer reads (declares a template parameter for) only
    what it uses, since an unused template parameter is itself a finding (cfn-lint W2001)."""

    def __init__(self, keys: tuple[str, ...], make: Callable[[str], V]) -> None:
        self._keys, self._make = keys, make
        self._made: dict[str, V] = {}

    def __getitem__(self, key: str) -> V:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._made:
            self._made[key] = self._make(key)
        return self._made[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@jsii.implements(cdk.IStableStringProducer)
class _Unavailable:
    def __init__(self, what: str) -> None:
        self.what = what

    def produce(self) -> str:
        raise ValueError(f"{self.what} is not handed to this stack; read it with stacks.constructs.wiring.read")


def unavailable(what: str) -> str:
    """A string that fails the synthesis if anything ever puts it into a template (e.g. a VPC id that a stack
    needs only as the container of its subnets)."""
    return cdk.Lazy.string(_Unavailable(what))
