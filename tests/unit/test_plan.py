"""The planner: exact job graphs, barrier trees at AWS's 20-dependency limit, sharding past 10,000 children."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from confluence_runtime.config import load_config
from confluence_runtime.errors import ConfigError, PlanError
from confluence_runtime.planning.plan import Plan, barrier_count, build_plan, check_run_id, new_run_id, plan_to_dict
from confluence_runtime.planning.shaping import Dependency, shard_sizes

ROOT = Path(__file__).resolve().parents[2]
RUN = "20261125T000000-abcd"


def plan_of(tmp_path: Path, text: str) -> Plan:
    path = tmp_path / "confluence.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return build_plan(load_config(path), RUN)


def short(name: str) -> str:
    return name.removeprefix(f"{RUN}_")


def deps(plan: Plan, name: str) -> list[str]:
    return [short(d.name) for d in plan.by_name()[f"{RUN}_{name}"].depends_on]


def leaves_reached(plan: Plan, name: str) -> list[str]:
    """Every non-barrier job a submission waits for, through any number of barriers (with repeats)."""
    by_name = plan.by_name()
    found: list[str] = []
    stack = list(by_name[name].depends_on)
    while stack:
        parent = by_name[stack.pop().name]
        if parent.kind == "barrier":
            stack.extend(parent.depends_on)
        else:
            found.append(parent.name)
    return found


def test_shipped_workflow_graph() -> None:
    plan = build_plan(load_config(ROOT / "confluence.yaml"), RUN)
    assert plan.submit_calls == 18 and not plan.barriers
    assert deps(plan, "flpe_sad_0") == ["priors_priors_0"]
    assert deps(plan, "postdiagnostics_flpe_postdiagnostics_flpe_0") == [
        "flpe_neobam_0", "flpe_hivdi_0", "flpe_metroman_0", "flpe_momma_0", "flpe_sad_0", "flpe_sic4dvar_0",
    ]  # fmt: skip
    assert [len(w) for w in plan.waves()] == [1, 1, 1, 1, 1, 1, 6, 1, 1, 1, 1, 1, 1]
    request = plan.by_name()[f"{RUN}_flpe_metroman_0"].request({f"{RUN}_priors_priors_0": "job-priors"})
    assert request == {
        "jobName": f"{RUN}_flpe_metroman_0",
        "jobQueue": "confluence-dev-flpe",
        "jobDefinition": "confluence-dev-metroman",
        "arrayProperties": {"size": 22},
        "dependsOn": [{"jobId": "job-priors"}],
        "containerOverrides": {
            "command": ["-i", "-235", "-r", "metrosets.json"],
            "environment": [
                {"name": "CONFLUENCE_RUN_ID", "value": RUN},
                {"name": "CONFLUENCE_STAGE", "value": "flpe"},
                {"name": "CONFLUENCE_MODULE", "value": "metroman"},
                {"name": "CONFLUENCE_JOB_INDEX", "value": "0"},
                {"name": "CONFLUENCE_NUM_JOBS", "value": "1"},
                {"name": "CONFLUENCE_ARRAY_OFFSET", "value": "0"},
                {"name": "CONFLUENCE_ARRAY_SIZE", "value": "22"},
            ],
        },
        "retryStrategy": {
            "attempts": 3,
            "evaluateOnExit": [
                {"action": "RETRY", "onStatusReason": "Host EC2*"},
                {"action": "RETRY", "onStatusReason": "Your Spot Task was interrupted*"},
                {"action": "RETRY", "onStatusReason": "Task failed to start", "onReason": "CannotPullContainerError:*"},
                {
                    "action": "RETRY",
                    "onStatusReason": "Task failed to start",
                    "onReason": "ResourceInitializationError:*",
                },
                {"action": "EXIT", "onReason": "*"},
            ],
        },
        "timeout": {"attemptDurationSeconds": 7200},
        "tags": {
            "confluence:run": RUN,
            "confluence:stage": "flpe",
            "confluence:module": "metroman",
            "confluence:prefix": "confluence-dev",
            "job": f"{RUN}_flpe_metroman_0",
        },
        "propagateTags": True,
    }


def test_plain_job_without_arguments_has_no_command_override(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "stages: {output: {output: {num_jobs: 1, array_size: 1, arguments: []}}}")
    request = plan.submissions[0].request({})
    assert "arrayProperties" not in request and "dependsOn" not in request and "timeout" not in request
    assert "command" not in request["containerOverrides"]
    assert request["retryStrategy"] == {"attempts": 1}


def test_21_parents_need_exactly_one_barrier(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "stages: {a: {m: {num_jobs: 21}}, b: {n: {array_size: 5}}}")
    barriers = plan.barriers
    assert [short(b.name) for b in barriers] == ["b_barrier-0"]
    assert deps(plan, "b_barrier-0") == ["a_m_0", "a_m_1"]
    assert deps(plan, "b_n_0") == [f"a_m_{i}" for i in range(2, 21)] + ["b_barrier-0"]
    barrier = barriers[0]
    assert (barrier.job_definition, barrier.job_queue, barrier.array_size) == (
        "confluence-dev-barrier",
        "confluence-dev-b",
        0,
    )
    assert barrier.request({f"{RUN}_a_m_0": "i0", f"{RUN}_a_m_1": "i1"})["dependsOn"] == [
        {"jobId": "i0"},
        {"jobId": "i1"},
    ]


@pytest.mark.parametrize(("parents", "barriers", "depth"), [(20, 0, 0), (21, 1, 1), (400, 20, 1), (8000, 420, 2)])
def test_barrier_tree_is_minimal_and_complete(tmp_path: Path, parents: int, barriers: int, depth: int) -> None:
    plan = plan_of(tmp_path, f"stages: {{a: {{m: {{num_jobs: {parents}}}}}, b: {{n: {{}}, o: {{array_size: 3}}}}}}")
    assert len(plan.barriers) == barriers == barrier_count(parents)
    assert all(len(s.depends_on) <= 20 for s in plan.submissions)
    parent_names = sorted(s.name for s in plan.submissions if s.stage == "a")
    for dependent in (f"{RUN}_b_n_0", f"{RUN}_b_o_0"):
        # every parent is waited for exactly once, through the barrier tree
        assert sorted(leaves_reached(plan, dependent)) == parent_names
    assert max((b.wave for b in plan.barriers), default=0) == depth


def test_every_barrier_waits_on_at_most_20_and_all_but_one_on_exactly_20(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "stages: {a: {m: {num_jobs: 8000}}, b: {n: {}}}")
    sizes = sorted(len(b.depends_on) for b in plan.barriers)
    assert sizes[1:] == [20] * (len(sizes) - 1)
    assert len(plan.by_name()[f"{RUN}_b_n_0"].depends_on) == 20


def test_sharding_25000_children(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "stages: {input: {input: {array_size: 25000, arguments: [-i, '-235']}}}")
    assert shard_sizes(25000) == [8334, 8333, 8333]
    assert [(short(s.name), s.array_size, s.array_offset) for s in plan.submissions] == [
        ("input_input_0-0", 8334, 0),
        ("input_input_0-1", 8333, 8334),
        ("input_input_0-2", 8333, 16667),
    ]
    env = dict(plan.submissions[2].environment)
    assert (env["CONFLUENCE_ARRAY_OFFSET"], env["CONFLUENCE_ARRAY_SIZE"]) == ("16667", "25000")
    assert plan.children == 25000


@pytest.mark.parametrize(("size", "shards"), [(10000, [10000]), (10001, [5001, 5000]), (20001, [6667, 6667, 6667])])
def test_shards_never_exceed_limit_or_drop_below_two(size: int, shards: list[int]) -> None:
    assert shard_sizes(size) == shards


def test_per_index_pairs_children_and_shards(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
        stages:
          input: {input: {array_size: 25000}}
          prediagnostics:
            dependency: per_index
            prediagnostics: {array_size: 25000}
        """,
    )
    for k in range(3):
        assert plan.by_name()[f"{RUN}_prediagnostics_prediagnostics_0-{k}"].depends_on == (
            Dependency(f"{RUN}_input_input_0-{k}", "N_TO_N"),
        )


def test_per_index_fan_in_uses_array_barriers(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path, "stages: {a: {m: {array_size: 5, num_jobs: 21}}, b: {dependency: per_index, n: {array_size: 5}}}"
    )
    (barrier,) = plan.barriers
    assert barrier.array_size == 5
    assert {d.type for d in barrier.depends_on} == {"N_TO_N"}
    assert {d.type for d in plan.by_name()[f"{RUN}_b_n_0"].depends_on} == {"N_TO_N"}
    assert len(plan.by_name()[f"{RUN}_b_n_0"].depends_on) == 20


def test_num_jobs_clones_get_their_index(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "stages: {a: {m: {num_jobs: 3}}, b: {n: {num_jobs: 2}}}")
    assert [short(s.name) for s in plan.submissions] == ["a_m_0", "a_m_1", "a_m_2", "b_n_0", "b_n_1"]
    assert dict(plan.submissions[1].environment)["CONFLUENCE_JOB_INDEX"] == "1"
    assert dict(plan.submissions[1].environment)["CONFLUENCE_NUM_JOBS"] == "3"
    assert deps(plan, "b_n_1") == ["a_m_0", "a_m_1", "a_m_2"]


def test_plans_are_deterministic_per_run_and_the_digest_names_the_config_not_the_run(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("stages: {a: {m: {array_size: 3}}, b: {n: {}}}\n")
    config = load_config(path)
    assert build_plan(config, RUN) == build_plan(config, RUN)
    # every `plan` of one file shows one digest (each plans a new run id) ...
    other = build_plan(config, "20261125T000000-ffff")
    assert other.submissions != build_plan(config, RUN).submissions
    assert build_plan(config, RUN).digest == other.digest
    # ... and any change of what would be submitted changes it
    path.write_text("stages: {a: {m: {array_size: 4}}, b: {n: {}}}\n")
    assert build_plan(load_config(path), RUN).digest != other.digest


def test_limits_a_finished_request_shows(tmp_path: Path) -> None:
    long_name = "m" * 105
    with pytest.raises(ConfigError) as caught:
        plan_of(tmp_path, f"stages: {{a: {{{long_name}: {{arguments: '{'x ' * 5000}'}}}}}}")
    messages = [f"{p.path}: {p.message}" for p in caught.value.problems]
    assert messages[0].startswith(
        f"stages.a.{long_name}: job name '{RUN}_a_{long_name}_0' is 130 characters; AWS allows 128"
    )
    assert messages[1].startswith(
        f"stages.a.{long_name}.arguments: container overrides (arguments and environment) are "
    )
    assert messages[1].endswith("characters; AWS allows 8192")
    assert caught.value.problems[0].line == 1


def test_colliding_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="two jobs would be named '20261125T000000-abcd_a_b_c_0'"):
        plan_of(tmp_path, "stages: {a_b: {c: {}}, a: {b_c: {}}}")


def test_run_ids() -> None:
    assert len(new_run_id()) == 20
    check_run_id(RUN)
    with pytest.raises(PlanError, match="run id '-x' is not usable in job names"):
        check_run_id("-x")


def test_plan_json_is_complete() -> None:
    data = plan_to_dict(build_plan(load_config(ROOT / "confluence.yaml"), RUN))
    assert data["submit_calls"] == 18 and data["children"] == 2267
    assert data["submissions"][1]["depends_on"] == [{"name": f"{RUN}_datagen_datagen_0"}]
    assert list(itertools.chain.from_iterable(s["command"] for s in data["submissions"][:1])) == [
        "-i", "-235", "-r", "reaches_of_interest.json", "-c", "continent.json", "-s", "local", "-p", "/mnt/data/input",
    ]  # fmt: skip
