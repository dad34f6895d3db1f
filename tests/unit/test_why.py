"""Why a job waits, the pure judgement (views/why.explain): each cause from what AWS says, with its fix."""

from __future__ import annotations

from confluence_runtime.views.why import Environment, Facts, Resource, explain

SPOT = Environment("v-fargate-spot", True, "FARGATE_SPOT", 256)
ON_DEMAND = Environment("v-fargate", True, "FARGATE", 256)
BLOCKED = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - All compute environments have a maxVcpu setting that is "
    "smaller than the job requirements."
)


def why(reason: str = "", **facts: object) -> tuple[str, str, str, str | None]:
    base = {"vcpus": 1.0, "memory": 2048, "environments": (SPOT, ON_DEMAND)}
    return explain("input", "input", reason, Facts(**{**base, **facts}), config_key="stages.input.input")  # type: ignore[arg-type]


def test_aws_s_blocked_reason_comes_first_with_the_time_limit() -> None:
    small = (Environment("v-fargate", True, "FARGATE", 4),)
    cause, detail, fix, limit = why(
        BLOCKED,
        vcpus=8.0,
        environments=small,
        time_limits=(("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", 3600, "CANCEL"),),
    )
    assert (cause, detail) == ("never fits", f"it needs 8 vCPUs, the compute environments allow at most 4 ({BLOCKED})")
    assert fix.startswith("lower stages.input.input.vcpus/memory to fit, or raise infrastructure.max_vcpus")
    assert limit == (
        "the queue's time limit action will CANCEL it after 1.0 h in RUNNABLE (infrastructure.runnable_timeout, for "
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE)"
    )


def test_a_disabled_queue_and_disabled_environments() -> None:
    assert why(queue_enabled=False)[0] == "queue disabled"
    off = (Environment("v-fargate-spot", False, "FARGATE_SPOT", 256), Environment("v-fargate", False, "FARGATE", 256))
    cause, detail, fix, _ = why(environments=off)
    assert cause == "compute environments disabled"
    assert detail == (
        "every compute environment of the queue is DISABLED (v-fargate-spot, v-fargate): AWS places no job in them"
    )
    assert "aws batch update-compute-environment --compute-environment v-fargate --state ENABLED" in fix


def test_an_exhausted_consumable_resource() -> None:
    cause, detail, fix, _ = why(consumes=(("hydrocron", 1),), resources={"hydrocron": Resource("hydrocron", 3, 3, 0)})
    assert (cause, detail) == (
        "consumable resource",
        "each child needs 1 of consumable resource hydrocron: 3 of 3 in use, none left",
    )
    assert fix.endswith("confluence-submit resources set hydrocron 4")
    # the command names the yaml and the venue's endpoint it was asked about, so it works pasted as it is
    _, _, fix, _ = why(
        consumes=(("hydrocron", 1),),
        resources={"hydrocron": Resource("hydrocron", 3, 3, 0)},
        command_args=("-c", "my flow.yaml", "--endpoint-url", "http://127.0.0.1:5000"),
    )
    assert fix.endswith(
        "confluence-submit resources set hydrocron 4 -c 'my flow.yaml' --endpoint-url http://127.0.0.1:5000"
    )


def test_full_environments_then_the_quota() -> None:
    # 512 vCPUs held of 512: the environments are full
    assert why(running_vcpus=512.0)[0] == "compute environments full"
    # 12 held of 512 with quotas of 6 + 6: the quota bounds it, and says which
    cause, detail, fix, _ = why(running_vcpus=12.0, quotas={"L-3032A538": 6.0, "L-36FBB829": 6.0})
    assert cause == "Fargate vCPU quota"
    assert detail.startswith("the run holds 12 vCPUs on Fargate; the account's quotas allow 12 (")
    assert "--quota-code L-36FBB829 --desired-value 512" in fix
    # quotas not readable: still named, with what could not be read
    cause, detail, _, _ = why(running_vcpus=12.0, quotas={"L-3032A538": "AccessDenied"})
    assert cause == "Fargate vCPU quota" and "not readable: L-36FBB829 (not read), L-3032A538 (AccessDenied)" in detail
    # room everywhere: it is only its turn
    assert why(running_vcpus=2.0, quotas={"L-3032A538": 600.0, "L-36FBB829": 600.0})[0] == "waiting its turn"


def test_at_an_80_column_terminal_a_wait_folds_at_words_and_its_command_still_pastes() -> None:
    from confluence_runtime.views.render import waiting_view
    from confluence_runtime.views.why import Waiting

    wait = Waiting(
        "input", "input", "r_input_input_0", "confluence-dev-input", 208, 240.0, "consumable resource",
        "each child needs 1 of consumable resource hydrocron: 6 of 6 in use, none left",
        "it starts as others give units back; for more at once: confluence-submit resources set hydrocron 7 -c "
        "/tmp/ops/confluence.yaml --endpoint-url http://127.0.0.1:37913",
        position=1,
    )  # fmt: skip
    folded = waiting_view([wait], 80, fold=True).plain.splitlines()
    assert folded == [
        "Waiting:",
        "input.input: 208 waiting in RUNNABLE for 4 min, position 1 in",
        "  confluence-dev-input -- consumable resource: each child needs 1 of consumable",
        "  resource hydrocron: 6 of 6 in use, none left",
        "  fix: it starts as others give units back; for more at once:",
        "  confluence-submit resources set hydrocron 7 -c /tmp/ops/confluence.yaml \\",
        "    --endpoint-url http://127.0.0.1:37913",
    ]
    # the command's lines, pasted into a shell, are the command (a trailing backslash continues it)
    start = next(i for i, line in enumerate(folded) if line.strip().startswith("confluence-submit"))
    joined = " ".join(line.strip().removesuffix("\\").strip() for line in folded[start:])
    assert joined == wait.fix.split(": ", 1)[1]
    # piped, one line each, as before
    assert waiting_view([wait], 80, fold=False).plain.splitlines()[1:] == wait.lines()
