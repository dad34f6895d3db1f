"""The renew Lambda deploys without confluence_runtime, so it keeps its own copy of the names it shares with the
runtime and the stack; here the copies are held equal."""

from __future__ import annotations

from typing import Any

from confluence_runtime import names


def test_the_lambda_writes_the_parameters_the_runtime_and_the_stack_name(handler_module: Any) -> None:
    assert tuple(names.CREDENTIAL_PARAMETERS.values()) == handler_module.PARAMETER_NAMES
    settings = handler_module.Settings.from_env(
        {"RENEW_SECRET_ID": "s", "RENEW_KMS_KEY_ID": "k", "RENEW_PARAMETER_PREFIX": "/confluence-dev1/"}
    )
    # Written in the order the runtime reads them back: key, secret, token, expiration (expiration last).
    assert settings.parameter_names == tuple(names.credential_parameters("confluence-dev1").values())


def test_the_lambda_defaults_to_the_schedule_group_the_stack_deploys(handler_module: Any) -> None:
    settings = handler_module.Settings.from_env({"RENEW_SECRET_ID": "s", "RENEW_KMS_KEY_ID": "k"})
    assert settings.schedule_group == handler_module.DEFAULT_SCHEDULE_GROUP == names.RENEW_SCHEDULE_GROUP


def test_the_lambda_and_the_runtime_copy_the_same_schedule_fields(handler_module: Any) -> None:
    # Both rewrite the schedule with UpdateSchedule from what GetSchedule returned; a field one of them forgot
    # would be reset by the other's update.
    from confluence_runtime.venue.renew import SCHEDULE_FIELDS

    assert handler_module.SCHEDULE_FIELDS == SCHEDULE_FIELDS
