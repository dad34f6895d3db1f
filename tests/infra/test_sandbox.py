"""The sandbox provisions exactly what the synthesized templates declare, and a whole run completes in it."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from confluence_runtime.config import Config
from confluence_runtime.venue.sandbox import read_templates, resources_from_templates

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(Path(sys.executable).with_name("confluence-submit"))
SANDBOX_KEYS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}
SANDBOX_S3_KEYS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


def confluence(
    *args: str, cwd: Path = ROOT, aws: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """The console script as an operator runs it: no AWS_* variables from this machine, only ``aws`` ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [SCRIPT, *args], cwd=cwd, env={**env, **(aws or {})}, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def test_names_come_from_the_templates(cli_synth: Any, config: Config) -> None:
    assert cli_synth.returncode == 0, cli_synth.stderr[-2000:]
    resources = resources_from_templates(read_templates(cli_synth.outdir))
    assert [q.name for q in resources.queues] == [*config.job_queues, "confluence-dev-efs"]
    assert {q.compute_environments for q in resources.queues[:-1]} == {
        ("confluence-dev-fargate-spot", "confluence-dev-fargate")  # Spot first, on-demand after
    }
    assert resources.queues[-1].compute_environments == ("confluence-dev-fargate",)
    assert sorted(d.name for d in resources.job_definitions) == sorted(
        [m.job_definition for m in config.modules]
        + [config.barrier_job_definition, "confluence-dev-efs-ls", "confluence-dev-efs-sync"]
    )
    assert {d.platform for d in resources.job_definitions} == {"FARGATE"}
    # the modules' secrets (test_module_resources.py), and the renew stack's Earthdata login
    assert {"/confluence-dev/hydrocron-api-key", "/confluence-dev/lpdaac-login"} <= set(resources.secrets)
    assert len(resources.secrets) == 3
    images = {d.name: d.image for d in resources.job_definitions}
    assert images["confluence-dev-input"] == "123456789012.dkr.ecr.us-west-2.amazonaws.com/confluence-dev-input:1.0.0"
    assert images["confluence-dev-disable_renew"].startswith("public.ecr.aws/aws-cli/aws-cli:")
    parameters = dict(resources.parameters)
    assert parameters["/confluence-dev/batch/job-queues"] == ",".join(config.job_queues)
    # What the stacks deploy, so the pre-flight fit check, the quota warning and the waiting explanations have
    # something to judge: managed environments with max_vcpus, and the queues' time limit actions
    assert [(e.name, e.kind, e.max_vcpus) for e in resources.environments] == [
        ("confluence-dev-fargate-spot", "FARGATE_SPOT", 256),
        ("confluence-dev-fargate", "FARGATE", 256),
    ]
    assert {q.time_limits for q in resources.queues} == {
        (
            ("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", 3600, "CANCEL"),
            ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", 3600, "CANCEL"),
            ("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", 3600, "CANCEL"),
        )
    }
    sizes = {d.name: (d.vcpus, d.memory) for d in resources.job_definitions}
    assert sizes["confluence-dev-output"] == ("16", "65536")
    assert parameters["/confluence-dev/renew/function-name"] == "confluence-dev-renew"


def test_a_whole_run_completes_in_the_sandbox(cli_synth: Any, tmp_path: Path) -> None:
    result = confluence(
        "sandbox", "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path), "--job-seconds", "0.05"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "provisioned from the templates: 6 stacks: 2 compute environments (confluence-dev-fargate-spot FARGATE_SPOT "
        "max 256 vCPUs, confluence-dev-fargate FARGATE max 256 vCPUs), 14 job queues, 21 job definitions"
    ) in result.stderr
    assert " SSM parameters, 3 secrets, " in result.stderr
    assert "jobs run no containers" in result.stderr
    assert "2267 children: 2267 succeeded, 0 failed, 0 running, 0 queued" in result.stdout
    with (tmp_path / "submission.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18
    assert [r["stage"] for r in rows][-1] == "output"
    # AND its run record names each module's image by the digest the sandbox's ECR gave it
    shown = confluence("runs", "show", rows[0]["run_id"], "-s", str(tmp_path / "submission.csv"), "--output", "json")
    assert shown.returncode == 0, shown.stderr
    definitions = {d["name"]: d for d in json.loads(shown.stdout)["definitions"]}
    neobam = definitions["confluence-dev-neobam"]
    assert neobam["image"].endswith(".dkr.ecr.us-west-2.amazonaws.com/confluence-dev-neobam:1.0.0"), neobam
    assert neobam["digest"].startswith("sha256:") and neobam["digest_source"] == "ECR DescribeImages"
    ecr = [d for d in definitions.values() if ".dkr.ecr." in d["image"]]
    assert len(ecr) >= 15 and all(d["digest"] for d in ecr)


def test_keep_leaves_the_emulator_for_other_commands(cli_synth: Any, tmp_path: Path) -> None:
    result = confluence(
        "sandbox", "--keep", "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path), "--job-seconds",
        "0.05",
    )  # fmt: skip
    pid = int(re.search(r"stop it with: kill (\d+)", result.stderr)[1])  # type: ignore[index]
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        url = result.stdout.strip().splitlines()[-1].removeprefix("--endpoint-url ")
        assert url.startswith("http://127.0.0.1:")
        # WHEN the user points another command at it, as the printed hint says
        status = confluence(
            "status", "-s", str(tmp_path / "submission.csv"), "--endpoint-url", url, "--format", "json",
            aws=SANDBOX_KEYS,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert '"state": "succeeded"' in status.stdout
        # AND the efs tool runs there: a one-off job in the efs queue, its output printed when it ends
        listing = confluence("efs", "ls", "input/sword", "--endpoint-url", url, aws=SANDBOX_KEYS)
        assert listing.returncode == 0, listing.stderr
        assert "ls input/sword: job efs-ls-" in listing.stderr
        assert "in queue confluence-dev-efs (definition confluence-dev-efs-ls)" in listing.stderr
        assert "SUCCEEDED" in listing.stderr
    finally:
        os.kill(pid, signal.SIGTERM)


def test_sandbox_rehearses_failures_and_the_renew_schedule(cli_synth: Any, tmp_path: Path) -> None:
    result = confluence(
        "sandbox", "--keep", "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path), "--job-seconds",
        "0.05", "--fail", "input.input[3,17]",
    )  # fmt: skip
    pid = int(re.search(r"stop it with: kill (\d+)", result.stderr)[1])  # type: ignore[index]
    try:
        # THEN the run fails exactly where asked, and everything that waited for input fails by dependency
        assert result.returncode == 1, result.stderr[-3000:]
        assert "rehearsing failures: input.input[3,17]" in result.stderr
        assert "failed: input/input 2 x Essential container in task exited (exit code 1) indices 3, 17" in (
            result.stdout
        )
        assert "2267 children: 220 succeeded, 2 failed, 2045 blocked, 0 running, 0 queued" in result.stdout
        logs_command = re.search(r"confluence-submit (logs .* --index 3)\n", result.stdout)[1]  # type: ignore[index]
        assert "2 Lambda functions, 1 schedules" in result.stderr  # renew and the supervisor
        url = result.stdout.strip().splitlines()[-1].removeprefix("--endpoint-url ")

        def submit(*args: str) -> subprocess.CompletedProcess[str]:
            return confluence(*args, "--endpoint-url", url, cwd=tmp_path, aws=SANDBOX_KEYS)

        # AND the failed child's log stream ends with the rehearsed failure, read back by `logs`
        logs = submit(*logs_command.split())
        assert logs.returncode == 0, logs.stderr
        assert "confluence sandbox: failure rehearsed by --fail input.input[3,17]" in logs.stdout
        config = str(ROOT / "confluence.yaml")
        # AND the renew function and its schedule are there to rehearse against
        status = submit("renew", "status", "-c", config)
        assert status.returncode == 0, status.stderr
        assert "schedule default/confluence-dev-renew: DISABLED (rate(50 minutes))" in status.stdout
        now = submit("renew", "now", "-c", config)
        assert now.returncode == 0, now.stderr
        assert now.stdout.startswith("confluence-dev-renew: credentials renewed, expire ")
        enabled = submit("renew", "enable", "-c", config)
        assert enabled.stdout == "schedule default/confluence-dev-renew: ENABLED (rate(50 minutes)), was DISABLED\n"
        disabled = submit("renew", "disable", "-c", config)
        assert disabled.stdout == "schedule default/confluence-dev-renew: DISABLED (rate(50 minutes)), was ENABLED\n"
        run = submit("run", "-c", config, "-s", "renew-run.csv", "--renew")
        assert run.returncode == 0, run.stderr
        assert "renew: confluence-dev-renew wrote fresh credentials" in run.stderr
        assert "schedule ENABLED" in run.stderr
    finally:
        os.kill(pid, signal.SIGTERM)


def test_sandbox_refuses_a_failure_it_cannot_place(tmp_path: Path) -> None:
    result = confluence("sandbox", "--workdir", str(tmp_path), "--template-dir", str(tmp_path), "--fail",
                        "output.output[1]")  # fmt: skip
    assert result.returncode == 2
    assert "--fail 'output.output[1]': output.output is a plain job (no array children); drop the [...]" in (
        result.stderr
    )


def supervised_variant(tmp_path: Path) -> Path:
    """The shipped workflow with offline and validation working reach by reach on what the stage before produced
    (``per_index``): the same stages and modules, so the shipped templates serve it."""
    data = yaml.safe_load((ROOT / "confluence.yaml").read_text())
    for stage in ("offline", "validation"):
        data["stages"][stage]["dependency"] = "per_index"
    data["log_file"], data["submission_file"] = str(tmp_path / "confluence.log"), str(tmp_path / "submission.csv")
    path = tmp_path / "supervised.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("mode", ["local", "cloud"])
def test_a_supervised_rehearsal_skips_lost_reaches_downstream_and_reports_them(
    cli_synth: Any, tmp_path: Path, mode: str
) -> None:
    # GIVEN reaches 3 and 17 failing in postdiagnostics_moi, within a budget of 2 failed children per module
    config = supervised_variant(tmp_path)

    # WHEN the operator rehearses the run supervised here, or handed to the venue's supervisor function
    result = confluence(
        "sandbox", "-c", str(config), "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path),
        "--job-seconds", "0.05", "--supervise", mode, "--tolerated-failure", "2", "--fail",
        "postdiagnostics_moi.postdiagnostics_moi[3,17]", "--keep",
    )  # fmt: skip
    pid = int(re.search(r"stop it with: kill (\d+)", result.stderr)[1])  # type: ignore[index]
    try:
        # THEN either way the run goes on and succeeds; offline and validation leave reaches 3 and 17 out
        assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
        assert f"[4/4] confluence-submit run --supervise {mode}" in result.stderr
        assert "stage postdiagnostics_moi: done, 2 children failed\n" in result.stdout
        assert "stage offline: done, 0 children failed, 2 left out (lost upstream)\n" in result.stdout
        assert "stage validation: done, 0 children failed, 2 left out (lost upstream)\n" in result.stdout
        assert "13 of 13 stages completed; 2263 children submitted, 2 failed, 4 left out" in result.stdout
        run_id = re.search(r"\(run (\S+)\)", result.stderr)[1]  # type: ignore[index]
        if mode == "local":
            jobs = (tmp_path / "submission.csv").read_text()
            failures = (tmp_path / "submission.ledger" / run_id / "module_data_failures.json").read_text()
        else:
            # the function ran on the rules' events: the run and its report are in the venue's ledger bucket
            assert "      confluence-dev-supervisor runs in this process (moto runs no Lambda code)" in result.stderr
            url = result.stdout.strip().splitlines()[-1].removeprefix("--endpoint-url ")
            bucket, prefix = re.search(r"ledger s3://([^/]+)/(\S+)", result.stderr).groups()  # type: ignore[union-attr]
            s3 = boto3.client("s3", endpoint_url=url, region_name="us-west-2", **SANDBOX_S3_KEYS)

            def read(name: str) -> str:
                return s3.get_object(Bucket=bucket, Key=f"{prefix}/{run_id}/{name}")["Body"].read().decode()

            jobs, failures = read("jobs.csv"), read("module_data_failures.json")
            assert f"report: s3://{bucket}/{prefix}/{run_id}/module_data_report.json" in result.stdout
        sizes = {r["job_name"].removeprefix(f"{run_id}_"): int(r["array_size"] or 0)
                 for r in csv.DictReader(io.StringIO(jobs))}  # fmt: skip
        assert sizes["offline_offline_0"] == sizes["validation_validation_0"] == 212
        # AND the Confluence-format report names exactly the failed reaches (no items list: the value is the index)
        assert json.loads(failures) == {"Postdiagnostics Moi": [{"Index": 3, "Value": 3}, {"Index": 17, "Value": 17}]}
        # AND the status command the sandbox prints finds the run wherever it was recorded, pasted from anywhere
        shown = next(line.strip() for line in result.stderr.splitlines() if "confluence-submit status " in line)
        # (naming the yaml: status --why and the run's plan read it, and ./confluence.yaml is another workflow)
        assert f" -c {config} " in shown
        status = confluence(*shown.split()[1:], cwd=tmp_path, aws=SANDBOX_KEYS)
        assert status.returncode == 0, status.stderr
        assert f"run {run_id}: succeeded" in status.stdout
        assert f"supervised ({mode}): ended succeeded" in " ".join(status.stdout.split())
    finally:
        os.kill(pid, signal.SIGTERM)


def test_the_failure_budget_option_needs_a_supervised_rehearsal(tmp_path: Path) -> None:
    result = confluence("sandbox", "--workdir", str(tmp_path), "--template-dir", str(tmp_path),
                        "--tolerated-failure", "2")  # fmt: skip
    assert result.returncode == 2
    assert "--tolerated-failure applies to supervised runs: add --supervise local or cloud" in result.stderr
    bad = confluence("sandbox", "--workdir", str(tmp_path), "--template-dir", str(tmp_path), "--supervise", "local",
                     "--tolerated-failure", "lots")  # fmt: skip
    assert bad.returncode == 2
    assert """'lots': expected a count of children (3) or a percentage ("5%")""" in bad.stderr


def test_a_new_account_s_quota_cannot_hold_the_largest_modules(cli_synth: Any, tmp_path: Path) -> None:
    result = confluence(
        "sandbox", "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path), "--vcpu-quota", "6"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    text = " ".join(result.stderr.split())
    assert (
        "6 vCPUs per purchase option cannot hold combine_data.combine_data (8 vCPUs), output.output (16 vCPUs): they "
        "would wait in RUNNABLE for ever"
    ) in text
    assert "rehearse with at least 16" in text


def test_a_rehearsed_quota_shows_children_waiting_for_capacity(cli_synth: Any, tmp_path: Path) -> None:
    # GIVEN quotas of 16 vCPUs per purchase option: 214 children of 0.5 vCPU run 64 at a time
    result = confluence(
        "sandbox", "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path), "--job-seconds", "0.6",
        "--vcpu-quota", "16", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the account's Fargate vCPU quotas are 16 On-Demand and 16 Spot" in result.stderr
    # THEN status shows the children waiting and why, and the run completes
    text = " ".join(result.stdout.split())
    assert "Waiting:" in text
    assert re.search(r"\w+\.\w+: \d+ waiting in RUNNABLE for \d+ s .*-- Fargate vCPU quota: the run holds", text)
    assert "2267 children: 2267 succeeded, 0 failed" in text


def test_a_kept_cloud_sandbox_keeps_supervising_runs_handed_over_later_until_the_emulator_ends(
    cli_synth: Any, tmp_path: Path
) -> None:
    # GIVEN a rehearsal handed to the venue's supervisor function, kept
    config = supervised_variant(tmp_path)
    result = confluence(
        "sandbox", "-c", str(config), "--template-dir", str(cli_synth.outdir), "--workdir", str(tmp_path),
        "--job-seconds", "0.05", "--supervise", "cloud", "--keep",
    )  # fmt: skip
    pid = int(re.search(r"stop it with: kill (\d+)", result.stderr)[1])  # type: ignore[index]
    function = re.search(r"confluence-dev-supervisor keeps supervising runs handed to it \(pid (\d+)", result.stderr)
    try:
        assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
        assert function is not None, result.stderr[-3000:]
        url = result.stdout.strip().splitlines()[-1].removeprefix("--endpoint-url ")
        # WHEN, after the command ended, a second run is handed over with the command it printed
        handed = next(line.strip() for line in result.stderr.splitlines() if "--supervise cloud --endpoint-url" in line)
        second = confluence(*handed.split()[1:], cwd=tmp_path, aws=SANDBOX_KEYS)
        assert second.returncode == 0, second.stderr
        run_id = re.search(r"run (\S+): supervised \(cloud\)", second.stderr)[1]  # type: ignore[index]
        # THEN the kept function supervises it to its end and writes its report
        bucket, prefix = re.search(r"ledger s3://([^/]+)/(\S+)", second.stderr).groups()  # type: ignore[union-attr]
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-west-2", **SANDBOX_S3_KEYS)
        deadline = time.monotonic() + 180
        state: dict[str, Any] = {}
        while not (state.get("state") == "succeeded" and state.get("notified")):
            assert time.monotonic() < deadline, f"run {run_id} was not supervised to its end: {state.get('state')}"
            time.sleep(0.5)
            with contextlib.suppress(s3.exceptions.NoSuchKey):
                body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{run_id}/supervisor.json")["Body"].read()
                state = json.loads(body)
        s3.head_object(Bucket=bucket, Key=f"{prefix}/{run_id}/module_data_report.json")
    finally:
        os.kill(pid, signal.SIGTERM)
    # AND the function's process ends with the emulator
    assert function is not None
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{function[1]}") and "zombie" not in _process_state(int(function[1])):
        assert time.monotonic() < deadline, "the supervisor function outlived the emulator"
        time.sleep(0.5)


def _process_state(pid: int) -> str:
    """A process's state as /proc says it ("zombie" once it ended and waits to be reaped); "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return ""
