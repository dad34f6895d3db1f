"""``{run_id}`` and ``{origin_run_id}`` in a module's arguments and environment values: each run writes under its
own path, and the plan's digest stays the file's (the run id is left out of it)."""

from __future__ import annotations

from pathlib import Path

from yaml_files import problems, write

from confluence_runtime.apply.recover import Recovery, recovery_plan
from confluence_runtime.config import load_config
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.provenance import Provenance, module_records

CONFIG = """
prefix: t
stages:
  flpe:
    fit:
      array_size: 4
      arguments: [-o, "/mnt/data/flpe/{run_id}", -p, '{"from": "{origin_run_id}", "keep": "{braces}"}']
      environment: {OUT: "s3://t-out/{run_id}/fit", FROM: "{origin_run_id}"}
  output:
    output:
      arguments: [-i, "/mnt/data/flpe/{origin_run_id}"]
"""


def test_run_id_expands_in_arguments_and_environment_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONFIG))
    plan = build_plan(config, "r1")
    fit = plan.by_name()["r1_flpe_fit_0"]
    assert fit.command == ("-o", "/mnt/data/flpe/r1", "-p", '{"from": "r1", "keep": "{braces}"}')
    env = dict(fit.environment)
    assert (env["OUT"], env["FROM"], env["CONFLUENCE_RUN_ID"]) == ("s3://t-out/r1/fit", "r1", "r1")
    # AND two runs of one file still share one plan digest
    assert build_plan(config, "r2-other").digest == plan.digest


def test_origin_run_id_is_the_origin_in_a_recovered_run(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONFIG))
    origin = Provenance(
        run_id="r1", recorded_at="", tool_version="", config_path="", config_sha256="", config_text="",
        git_commit=None, git_dirty=None, account=None, region="us-west-2", venue=None, prefix="t", endpoint=None,
        stages=("flpe", "output"), modules=module_records(config),
    )  # fmt: skip
    plan = recovery_plan(config, "r2", origin, Recovery("r1", "output"))
    [output] = plan.submissions
    assert output.command == ("-i", "/mnt/data/flpe/r1")


def test_run_id_in_a_mount_sub_directory_is_refused_with_the_way_to_do_it(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        stages:
          flpe:
            fit: {array_size: 2, mounts: {"flpe/{run_id}": /mnt/data/flpe}}
        """,
    )
    assert found == [
        "3: stages.flpe.fit.mounts.flpe/{run_id}: sub-directory '{run_id}': a mount is fixed when the venue is "
        "deployed (SubmitJob cannot change it per run), so {run_id} cannot be expanded there; mount the area and "
        "put {run_id} in the arguments or an environment value instead (e.g. -o /mnt/data/flpe/{run_id})"
    ]
