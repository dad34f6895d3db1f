"""Scale and cost benchmark: what packing does to the global plan, and an estimate checked against a run.

    .venv/bin/python bench/scale.py [--reaches N] [--item-seconds S]

1. The global plan (210,000 reaches, every reach-level module at 210,000 items) with ``items_per_child`` 1, 10 and
   100: SubmitJob calls, containers, the least launch time at Fargate's 20 tasks/s, the cost from the shipped price
   table (``--item-seconds`` per reach and module is an assumption: pass your own), each as a ratio to packing 1,
   beside what a per-item Step Functions Map would add.
2. A sandbox run (the local Batch emulator, children held RUNNING for set times): its estimate from
   ``expected_duration`` against the estimate from the durations the run measured (``--durations-from``).
3. A scaled global run on the emulator's capacity model: the shipped workflow at ``--scaled-reaches`` reaches, every
   child running ``--scaled-seconds`` per item, compute environments of ``--scaled-max-vcpus`` each (managed, as the
   stacks deploy them); ``plan``'s minimum run time (``estimate.run_time``: launching, vCPU-time over the usable
   vCPUs, the longest child, per stage) against the emulated run time, first job created to last job stopped.
   The goal: within 20 %.

A benchmark, not a test: it prints.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from submit import DEV_REACHES, scaled_config  # beside this file: python puts bench/ first on sys.path

from confluence_runtime.apply.submit import submit_plan
from confluence_runtime.aws.api import AwsOptions, Batch
from confluence_runtime.config import load_config
from confluence_runtime.planning.estimate import (
    Capacity,
    estimate_cost,
    load_prices,
    run_time,
    stage_loads,
    works_from_plan,
)
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.ledger import ChildOutcome, open_ledger, outcome_from_job
from confluence_runtime.records.record import Recorder
from confluence_runtime.venue.sandbox import provision, resources_from_config
from confluence_runtime.views.runs import measured_seconds

REGION = "us-east-1"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h"


def packed_config(reaches: int, per_child: int, item_seconds: float, directory: Path) -> Path:
    path = scaled_config(reaches, directory)
    data = yaml.safe_load(path.read_text())
    for stage in data["stages"].values():
        for module in stage.values():
            if isinstance(module, dict):
                module["expected_duration"] = item_seconds
                if module.get("array_size") == reaches and per_child > 1:
                    module["items_per_child"] = per_child
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def global_plan(reaches: int, item_seconds: float, directory: Path) -> None:
    prices = load_prices(REGION)
    print(
        f"global plan, {reaches:,} reaches, {item_seconds:g} s per reach and module (an assumption), "
        f"prices {prices.region} of {prices.date}:"
    )
    baseline: tuple[float, float] | None = None
    for per_child in (1, 10, 100):
        config = load_config(packed_config(reaches, per_child, item_seconds, directory))
        plan = build_plan(config, f"bench-pack{per_child}")
        works = works_from_plan(plan, config)
        capacity = Capacity.of(config, prices, quota_on_demand=None, quota_spot=None)
        loads = stage_loads(works, capacity, prices)
        launch = sum(load.launch_seconds for load in loads)
        total = run_time(loads)
        estimate = estimate_cost(works, prices, spot_share=0.0)
        baseline = baseline or (launch, estimate.on_demand)
        print(
            f"  items_per_child {per_child:>3}: {plan.submit_calls} SubmitJob calls, {plan.children:,} containers; "
            f"launching at least {hours(launch)} ({launch / baseline[0]:.3f}x); On-Demand ${estimate.on_demand:,.0f} "
            f"({estimate.on_demand / baseline[1]:.2f}x), {sum(m.billed_hours for m in estimate.modules):,.0f} "
            f"billed container-hours; minimum run time {hours(total.seconds or 0)} (stages bound by "
            + ", ".join(f"{bound} {count}" for bound, count in total.bounds)
            + ")"
        )
        if per_child == 1:
            print(
                f"    the same run as a per-item Step Functions Map adds {estimate.step_functions_transitions:,} "
                f"transitions = ${estimate.step_functions:,.0f} to this compute"
            )


def sandbox_run(directory: Path) -> None:
    from batch_emulator.control import EmulatorControl
    from batch_emulator.server import start_emulator

    text = f"""
log_file: {directory}/sandbox.log
submission_file: {directory}/sandbox.csv
prefix: bench
stages:
  prep:
    prep: {{expected_duration: 2}}
  fit:
    fit: {{array_size: 60, items_per_child: 5, expected_duration: 0.4}}
"""
    path = directory / "sandbox.yaml"
    path.write_text(text)
    config = load_config(path)
    run_id = "bench-sandbox"
    plan = build_plan(config, run_id)
    with start_emulator() as emulator:
        control = EmulatorControl(emulator.url)
        control.reset()
        # What the run really takes: each child a little longer than expected_duration says.
        control.set_durations(queue=0.2, by_name={f"{run_id}_prep_*": 2.5, f"{run_id}_fit_*": 3.0})
        options = AwsOptions(endpoint_url=emulator.url, region="us-west-2")
        provision(resources_from_config(config), options)
        batch = Batch(options)
        ledger = open_ledger(config.submission_file)
        with Recorder(Path(config.submission_file)) as recorder:
            outcome = submit_plan(plan, batch, recorder)
        assert outcome.ok, outcome.failure
        ids = list(outcome.job_ids.values())
        deadline = time.monotonic() + 120
        while any(j["status"] not in ("SUCCEEDED", "FAILED") for j in batch.describe_jobs(ids)):
            if time.monotonic() > deadline:
                raise SystemExit("the sandbox run did not finish in 120 s")
            time.sleep(0.5)
        observed = []
        for job in batch.describe_jobs(ids):
            size = (job.get("arrayProperties") or {}).get("size", 0)
            children = batch.describe_jobs([f"{job['jobId']}:{i}" for i in range(size)]) if size else []
            slowest = [
                ChildOutcome(
                    index=c["arrayProperties"]["index"],
                    status=c["status"],
                    started_at=datetime.fromtimestamp(c["startedAt"] / 1000, UTC).isoformat(),
                    stopped_at=datetime.fromtimestamp(c["stoppedAt"] / 1000, UTC).isoformat(),
                )
                for c in children
            ]
            observed.append(outcome_from_job(job, slowest=slowest))
        ledger.observe(run_id, observed)
    prices = load_prices(REGION)
    expected = estimate_cost(works_from_plan(plan, config), prices)
    measured = estimate_cost(works_from_plan(plan, config, measured_seconds(config, run_id)), prices)
    work_expected = sum(m.items * (m.item_seconds or 0) for m in expected.modules)
    work_measured = sum(m.items * (m.item_seconds or 0) for m in measured.modules)
    print(
        f"sandbox run ({plan.children} containers): estimate from expected_duration ${expected.on_demand:.4f}, "
        f"from the run's measured durations ${measured.on_demand:.4f} "
        f"({measured.on_demand / expected.on_demand:.2f}x; the one-minute minimum dominates short children); "
        f"container-seconds of work {work_expected:g} expected vs {work_measured:g} measured "
        f"({work_measured / work_expected:.2f}x)"
    )


def scaled_run(directory: Path, reaches: int, item_seconds: float, max_vcpus: int) -> None:
    from batch_emulator.control import EmulatorControl
    from batch_emulator.server import start_emulator

    path = scaled_config(reaches, directory)
    data = yaml.safe_load(path.read_text())
    data["infrastructure"] = {"max_vcpus": max_vcpus}
    data["prefix"] = "scaled"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(path)
    run_id = "bench-scaled"
    plan = build_plan(config, run_id)
    # The emulator launches without Fargate's rate (it has none): predict with the same, on its own clock.
    capacity = Capacity(max_vcpus=max_vcpus, spot=True, launch_rate=1e9)
    seconds = {m.key.removeprefix("stages."): item_seconds for m in config.modules}
    loads = stage_loads(works_from_plan(plan, config, seconds), capacity)
    predicted = run_time(loads)
    with start_emulator() as emulator:
        control = EmulatorControl(emulator.url, timeout=60)
        control.reset()
        control.set_durations(default=item_seconds, queue=0.0)
        options = AwsOptions(endpoint_url=emulator.url, region="us-west-2")
        provision(resources_from_config(config), options)
        batch = Batch(options)
        with Recorder(directory / "scaled.csv") as recorder:
            outcome = submit_plan(plan, batch, recorder)
        assert outcome.ok, outcome.failure
        ids = list(outcome.job_ids.values())
        deadline = time.monotonic() + 1800
        while any(j["status"] not in ("SUCCEEDED", "FAILED") for j in batch.describe_jobs(ids)):
            if time.monotonic() > deadline:
                raise SystemExit("the scaled run did not finish in 30 min")
            time.sleep(1.0)
        jobs = batch.describe_jobs(ids)
    first = min(j["createdAt"] for j in jobs)
    last = max(j.get("stoppedAt") or 0 for j in jobs)
    emulated = (last - first) / 1000
    assert predicted.seconds is not None
    ratio = emulated / predicted.seconds
    held = ", ".join(f"{bound} {count}" for bound, count in predicted.bounds)
    print(
        f"scaled run: {reaches:,} reaches, {plan.children:,} containers, {item_seconds:g} s per item, max_vcpus "
        f"{max_vcpus} (Spot and On-Demand): predicted {predicted.seconds:,.1f} s (stages bound by {held}), emulated "
        f"{emulated:,.1f} s: {ratio:.2f}x ({'within' if abs(ratio - 1) <= 0.2 else 'outside'} the 20 % goal)"
    )
    for load in loads:
        print(f"    {load.stage:<22} {load.min_seconds or 0:>8.1f} s  {load.min_bound}: {load.min_bound_detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reaches", type=int, default=210_000)
    parser.add_argument("--item-seconds", type=float, default=30.0, help="assumed seconds per reach and module")
    parser.add_argument("--no-sandbox", action="store_true", help="skip the sandbox run")
    parser.add_argument("--scaled-reaches", type=int, default=2_140, help="the scaled run's reaches (0: skip it)")
    parser.add_argument("--scaled-seconds", type=float, default=0.5, help="the scaled run's seconds per item")
    parser.add_argument("--scaled-max-vcpus", type=int, default=64, help="each compute environment's max_vcpus")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with tempfile.TemporaryDirectory() as tmp:
        global_plan(args.reaches, args.item_seconds, Path(tmp))
        if not args.no_sandbox:
            sandbox_run(Path(tmp))
        if args.scaled_reaches:
            scaled_run(Path(tmp), args.scaled_reaches, args.scaled_seconds, args.scaled_max_vcpus)
    assert DEV_REACHES  # the development set's size: scaled_config resizes its arrays


if __name__ == "__main__":
    main()
