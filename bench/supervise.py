"""Supervised run at global scale (~210,000 reaches) on the local Batch emulator: API calls and stage-to-stage delay.

    .venv/bin/python bench/supervise.py [--quick] [--reaches N] [--fail-share 0.001] [--poll 1.0]

The shipped workflow with every reach-level array resized to the reach count is run twice under supervision, with a
seeded share of postdiagnostics_moi's children failing (under a 1 % budget, so the run goes on and later per_index
stages leave those reaches out):

- local: ``run --supervise local``'s loop (one look at AWS per poll interval);
- cloud: the supervisor function's handler, invoked once per parent job reaching SUCCEEDED or FAILED (the events
  the EventBridge rule sends; the emulator's events are replaced by one invocation per finished job).

Printed: SubmitJob, DescribeJobs and ListJobs calls, supervisor invocations, next to the Step Functions design (one
Batch job per reach and module: about 2.5 million state transitions and as many SubmitJob calls); and the delay
from a stage's last child stopping to the next stage's first submission (local: up to one poll interval; cloud: one
event). A benchmark, not a test: it prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from confluence_runtime.aws import AwsOptions, Batch, client
from confluence_runtime.config import load_config
from confluence_runtime.ledger import Ledger, LocalStore, S3Store
from confluence_runtime.sandbox import provision, resources_from_config
from confluence_runtime.supervise import SupervisorState
from confluence_runtime.supervisor import BatchAws, Supervisor, begin, run_locally

ROOT = Path(__file__).resolve().parents[1]
DEV_REACHES = 214
# The Step Functions design (one Map iteration and one Batch job per reach and module): ~12 reach-level modules
# x 210,000 reaches, each iteration a few state transitions (Submit, wait, Succeed/Catch) -> ~2.5 million.
SFN_TRANSITIONS = 2_500_000
SFN_PRICE_PER_1000 = 0.025
FAILING = "postdiagnostics_moi"  # its failed reaches are left out of the per_index stages after it
PER_INDEX = ("offline", "validation")


def global_config(reaches: int, directory: Path, fail_share: float) -> Path:
    """The shipped confluence.yaml at ``reaches`` reaches, with a 1 % failure budget everywhere."""
    data = yaml.safe_load((ROOT / "confluence.yaml").read_text())
    data["defaults"] = {**(data.get("defaults") or {}), "tolerated_failure": "1%"}
    for stage in data["stages"].values():
        for module in stage.values():
            if isinstance(module, dict) and module.get("array_size") == DEV_REACHES:
                module["array_size"] = reaches
    # offline and validation work reach by reach on what the previous stage produced: a reach lost before them is
    # left out of them (the shipped file chains every stage whole, the original tool's behaviour).
    for name in PER_INDEX:
        data["stages"][name]["dependency"] = "per_index"
    data["log_file"] = str(directory / "confluence.log")
    data["submission_file"] = str(directory / "submission.csv")
    path = directory / "confluence-global.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def delays(state: SupervisorState, batch: Batch) -> list[float]:
    """Seconds from each stage's last stop to the next stage's first job creation (AWS's own timestamps)."""
    found = []
    previous_stop: float | None = None
    for stage in state.stages:
        ids = [job_id for _, job_id in stage.jobs]
        if not ids:
            continue
        jobs = batch.describe_jobs(ids)
        created = min(int(j["createdAt"]) for j in jobs) / 1000
        if previous_stop is not None:
            found.append(created - previous_stop)
        previous_stop = max(int(j.get("stoppedAt") or j["createdAt"]) for j in jobs) / 1000
    return found


def report(label: str, state: SupervisorState, batch: Batch, invocations: int, elapsed: float) -> None:
    calls = batch.calls
    submits = calls.get("SubmitJob", 0)
    children = sum(p.count for s in state.stages for p in s.pieces)
    skipped = sum(len(s.skipped) for s in state.stages)
    failed = sum(len(v) for s in state.stages for _, v in s.failed)
    waits = delays(state, Batch(batch.options))
    print(
        f"{label}: ended {state.state} in {elapsed:.1f} s; {submits} SubmitJob for {children:,} children "
        f"({failed:,} failed, {skipped:,} left out downstream), {calls.get('DescribeJobs', 0)} DescribeJobs, "
        f"{calls.get('ListJobs', 0)} ListJobs, {invocations} supervisor invocations"
    )
    if waits:
        print(
            f"{label}: stage-to-stage delay median {statistics.median(waits):.2f} s, max {max(waits):.2f} s "
            f"over {len(waits)} stage boundaries"
        )
    dollars = SFN_TRANSITIONS / 1000 * SFN_PRICE_PER_1000
    print(
        f"{label}: vs Step Functions ~{SFN_TRANSITIONS:,} state transitions (${dollars:,.0f} per run) and as many "
        f"SubmitJob: {SFN_TRANSITIONS / max(submits, 1):,.0f}x fewer SubmitJob calls"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="21,000 reaches")
    parser.add_argument("--reaches", type=int, help="reach count (default 210,000; 21,000 with --quick)")
    parser.add_argument("--fail-share", type=float, default=0.001, help="share of input children that fail")
    parser.add_argument("--poll", type=float, default=1.0, help="local supervisor's poll interval (s)")
    args = parser.parse_args()
    reaches = args.reaches or (21_000 if args.quick else 210_000)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from batch_emulator.control import EmulatorControl
    from batch_emulator.server import start_emulator

    with tempfile.TemporaryDirectory() as tmp, start_emulator() as emulator:
        directory = Path(tmp)
        control = EmulatorControl(emulator.url)
        control.reset()
        control.set_durations(default=1.0, queue=0.2)
        options = AwsOptions(endpoint_url=emulator.url, region="us-west-2")
        config = load_config(global_config(reaches, directory, args.fail_share))
        provision(resources_from_config(config), options)
        print(
            f"workflow: {reaches:,} reaches, {len(config.stages)} stages, {len(config.modules)} modules; "
            f"{args.fail_share:.2%} of {FAILING}'s children fail (budget 1 %), {' and '.join(PER_INDEX)} per_index"
        )

        # Local: the loop of run --supervise local.
        control.fail(f"bench-local_{FAILING}_*", share=args.fail_share, seed=1)
        ledger = Ledger(LocalStore(directory / "ledger"))
        begin(ledger, config, "bench-local", mode="local", region="us-west-2")
        batch = Batch(options)
        owner = "bench-local"  # the supervisor's identity in its claims
        supervisor = Supervisor(ledger, BatchAws(batch), "bench-local", token=owner)
        polls = 0

        def counted(decision: object) -> None:
            nonlocal polls
            polls += 1

        start = time.perf_counter()
        state = run_locally(supervisor, poll=args.poll, on_step=counted)
        report(f"local (poll {args.poll:g} s)", state, batch, polls, time.perf_counter() - start)

        # Cloud: the handler's work, once per finished parent job (each a Batch Job State Change event).
        control.fail(f"bench-cloud_{FAILING}_*", share=args.fail_share, seed=1)
        s3 = client("s3", options)
        s3.create_bucket(Bucket="bench-ledger", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        ledger = Ledger(S3Store("bench-ledger", "runs", s3))
        begin(ledger, config, "bench-cloud", mode="cloud", region="us-west-2")
        batch = Batch(options)
        owner = "run --supervise cloud"
        Supervisor(ledger, BatchAws(batch), "bench-cloud", token=owner).advance(hand_off=True)
        events: set[str] = set()
        invocations = 0
        start = time.perf_counter()
        state = SupervisorState.from_dict(ledger.read("bench-cloud", "supervisor.json"))
        watcher = Batch(options)  # stands in for EventBridge: not counted as the supervisor's calls
        while not (state.over and state.notified):
            finished = [
                j["jobId"]
                for j in watcher.describe_jobs([i for s in state.stages for _, i in s.jobs])
                if j["status"] in ("SUCCEEDED", "FAILED") and j["jobId"] not in events
            ]
            for job_id in finished:
                events.add(job_id)
                invocations += 1
                Supervisor(ledger, BatchAws(batch), "bench-cloud", token=f"event-{invocations}", lease=900).advance()
            time.sleep(0.05)
            state = SupervisorState.from_dict(ledger.read("bench-cloud", "supervisor.json"))
        report("cloud (one invocation per event)", state, batch, invocations, time.perf_counter() - start)
        print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
