"""Supervised run at global scale (~210,000 reaches) on the local Batch emulator: API calls and stage-to-stage delay.

    .venv/bin/python bench/supervise.py [--quick] [--reaches N] [--fail-share 0.001] [--poll 1.0]

The shipped workflow with every reach-level array resized to the reach count is run twice under supervision, with a
seeded share of postdiagnostics_moi's children failing (under a 1 % budget, so the run goes on and later per_index
stages leave those reaches out):

- local: ``run --supervise local``'s loop (one look at AWS per poll interval);
- cloud: the supervisor function's work (``Supervisor.advance``, as lambdas/supervisor/handler.py calls it), invoked
  for the hand-over event of ``run --supervise cloud`` and then once per job reaching SUCCEEDED or FAILED (the
  events the EventBridge rule sends; here a watcher stands in for EventBridge and invokes it in-process once per
  finished job, with the ledger in the emulator's S3 as the function has it in S3).

Each run starts on a freshly reset emulator (a global run leaves 2.1 million children behind). Printed, as a table:
the supervisor's own SubmitJob, DescribeJobs and ListJobs calls and its invocations (local: polls; cloud: the
hand-over event's, then one per job's terminal event, including those that arrive once the run is over; the
deployed rule, ``names.batch_event_pattern``, lets no array child's event through) next to the Step Functions
design (one Map iteration and one Batch job per reach and module: the state transitions ``plan --estimate`` counts,
``estimate.step_functions_transitions`` over the same plan's items, and one SubmitJob call per item) and what
each costs; and the delay from a
stage's last child stopping to the next stage's first job being created (AWS's own timestamps), against a baseline
measured in the same run: the poll interval for the local loop (it looks up to one interval late), the local
loop's own median for the cloud (one event: here the watcher looks every 0.05 s). The handler invocations run one at
a time here, in this process; on AWS they run side by side. A benchmark, not a test: it prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from confluence_runtime.aws.api import AwsOptions, Batch, call, client
from confluence_runtime.config import Config, load_config
from confluence_runtime.planning.estimate import Prices, load_prices, step_functions_transitions, works_from_plan
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.document import SupervisorState
from confluence_runtime.records.ledger import Ledger, LocalStore, S3Store
from confluence_runtime.supervision.loop import BatchAws, Supervisor, begin, run_locally
from confluence_runtime.venue.sandbox import provision, resources_from_config

ROOT = Path(__file__).resolve().parents[1]
DEV_REACHES = 214
GLOBAL_REACHES = 210_000
SUPERVISOR_MEMORY_GB = 0.5  # the supervisor function's memory_size (stacks/supervisor.py), for its Lambda cost
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


@dataclass
class Measured:
    """One supervised run as the table shows it."""

    label: str
    state: SupervisorState
    calls: dict[str, int]
    invocations: int  # local: polls (each a look at AWS); cloud: handler invocations (one per event)
    elapsed: float
    delays: list[float]
    baseline: float  # what one stage-to-stage delay is compared with (poll interval; the local median)
    baseline_label: str
    per_stage: list[tuple[str, int]] = field(default_factory=list)  # stage -> SubmitJob calls
    took: list[float] = field(default_factory=list)  # each invocation's seconds (cloud)
    late: int = 0  # invocations after the run was over (cloud)

    @property
    def children(self) -> int:
        return sum(p.count for s in self.state.stages for p in s.pieces)

    @property
    def failed(self) -> int:
        return sum(len(v) for s in self.state.stages for _, v in s.failed)

    @property
    def skipped(self) -> int:
        return sum(len(s.skipped) for s in self.state.stages)


def fresh_emulator(control: object, options: AwsOptions, config: object) -> None:
    """A reset emulator with the workflow's queues and job definitions and the benchmark's timing."""
    control.reset()  # type: ignore[attr-defined]
    control.set_durations(default=1.0, queue=0.2)  # type: ignore[attr-defined]
    provision(resources_from_config(config), options)  # type: ignore[arg-type]


def run_local(config: object, directory: Path, options: AwsOptions, poll: float) -> Measured:
    """The loop of ``run --supervise local``."""
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
    state = run_locally(supervisor, poll=poll, on_step=counted)
    elapsed = time.perf_counter() - start
    waits = delays(state, Batch(options))
    return Measured(
        f"local (poll {poll:g} s)",
        state,
        dict(batch.calls),
        polls,
        elapsed,
        waits,
        poll,
        f"poll interval ({poll:g} s)",
        [(s.stage, len(s.jobs)) for s in state.stages],
    )


def run_cloud(config: object, options: AwsOptions) -> Measured:
    """The supervisor function's work: ``run --supervise cloud`` hands over, then one invocation per event."""
    s3 = client("s3", options)
    call(
        "CreateBucket",
        s3.create_bucket,
        Bucket="bench-ledger",
        CreateBucketConfiguration={"LocationConstraint": "us-west-2"},
    )
    ledger = Ledger(S3Store("bench-ledger", "runs", s3))
    begin(ledger, config, "bench-cloud", mode="cloud", region="us-west-2")
    batch = Batch(options)
    took: list[float] = []  # every invocation's duration

    def invoke() -> None:
        began = time.perf_counter()
        token = f"event-{len(took) + 1}"
        Supervisor(ledger, BatchAws(batch), "bench-cloud", token=token, lease=900).advance()
        took.append(time.perf_counter() - began)

    start = time.perf_counter()
    invoke()  # run --supervise cloud submits nothing: its hand-over event's invocation submits the first stage
    events: set[str] = set()
    late = 0  # invocations for events that arrived once the run was over (AWS delivers them all the same)
    ended: float | None = None
    state = SupervisorState.from_dict(ledger.read("bench-cloud", "supervisor.json"))
    watcher = Batch(options)  # stands in for EventBridge: not counted as the supervisor's calls
    while True:
        ids = [i for s in state.stages for _, i in s.jobs]
        finished = [
            j["jobId"]
            for j in watcher.describe_jobs(ids)
            if j["status"] in ("SUCCEEDED", "FAILED") and j["jobId"] not in events
        ]
        for job_id in finished:
            events.add(job_id)
            invoke()
            late += ended is not None
        state = SupervisorState.from_dict(ledger.read("bench-cloud", "supervisor.json"))
        if state.over and state.notified:
            # Invocations run one at a time here (Lambda runs them side by side), so one that finds a stage done
            # moves the run on before the events of that stage's other jobs are handled: those come late.
            ended = ended or time.perf_counter()
            if events >= set(ids) or time.perf_counter() - ended > 120:
                break
        time.sleep(0.05)
    waits = delays(state, Batch(options))
    return Measured(
        "cloud (an invocation per event)",
        state,
        dict(batch.calls),
        len(took),
        (ended or start) - start,
        waits,
        0.0,
        "",
        [(s.stage, len(s.jobs)) for s in state.stages],
        took,
        late,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def table(runs: list[Measured], reaches: int, prices: Prices, config: Config) -> list[str]:
    """The comparison as text lines: one column per supervised run, then the Step Functions design (the one
    comparison ``plan --estimate`` makes: transitions per item of the same plan)."""
    works = works_from_plan(build_plan(config, "bench-sfn"), config)
    items = sum(w.items for w in works if w.module != "barrier")
    transitions = step_functions_transitions(items, prices)
    sfn_dollars = transitions * prices.step_functions_per_transition
    scaled = f" ({items:,} items of {reaches:,} reaches)"

    def calls(m: Measured) -> int:
        return sum(m.calls.values()) + m.invocations

    def cost(m: Measured) -> str:
        if m.label.startswith("local"):
            return "$0 (a process that stays up)"
        durations = sum(m.took) * SUPERVISOR_MEMORY_GB * prices.lambda_gb_second
        return f"${m.invocations * prices.lambda_per_request + durations:.5f} (Lambda, measured durations)"

    def invocations(m: Measured) -> str:
        if m.label.startswith("local"):
            return f"{m.invocations:,} polls"
        return f"{m.invocations:,}: the hand-over, one per job ({m.late:,} after the end)"

    def seconds(m: Measured) -> str:
        return f"{median(m.took):.2f} / {max(m.took):.2f}" if m.took else "-"

    rows: list[tuple[str, Callable[[Measured], str], str]] = [
        ("outcome", lambda m: f"{m.state.state} in {m.elapsed:,.0f} s", "-"),
        ("children (Batch jobs for SFN)", lambda m: f"{m.children:,}", "as many"),
        ("failed / left out downstream", lambda m: f"{m.failed:,} / {m.skipped:,}", "- / none left out"),
        ("SubmitJob calls", lambda m: f"{m.calls.get('SubmitJob', 0):,}", f"{items:,}"),
        ("DescribeJobs calls", lambda m: f"{m.calls.get('DescribeJobs', 0):,}", "(inside .sync tasks)"),
        ("ListJobs calls", lambda m: f"{m.calls.get('ListJobs', 0):,}", "-"),
        ("supervisor invocations", invocations, f"~{transitions:,} state transitions"),
        ("invocation seconds, median / max", seconds, "-"),
        (
            "calls + invocations",
            lambda m: f"{calls(m):,} = 1/{2 * transitions / max(calls(m), 1):,.0f} of SFN",
            f"~{2 * transitions:,}",
        ),
        ("orchestration cost per run", cost, f"${sfn_dollars:,.2f} of state transitions"),
        ("stage-to-stage delay, median", lambda m: delay(m, statistics.median), "-"),
        ("stage-to-stage delay, max", lambda m: delay(m, max), "-"),
    ]
    heads = ["", *(m.label for m in runs), f"Step Functions design{scaled}"]
    body = [[name, *(cell(m) for m in runs), sfn] for name, cell, sfn in rows]
    widths = [max(len(row[i]) for row in [heads, *body]) for i in range(len(heads))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [heads, *body]]


def delay(m: Measured, pick: Callable[[list[float]], float]) -> str:
    if not m.delays:
        return "-"
    seconds = pick(m.delays)
    return f"{seconds:.2f} s = {seconds / m.baseline:.1f} x {m.baseline_label}" if m.baseline else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="21,000 reaches")
    parser.add_argument("--reaches", type=int, help="reach count (default 210,000; 21,000 with --quick)")
    parser.add_argument("--fail-share", type=float, default=0.001, help="share of input children that fail")
    parser.add_argument("--poll", type=float, default=1.0, help="local supervisor's poll interval (s)")
    args = parser.parse_args()
    reaches = args.reaches or (21_000 if args.quick else GLOBAL_REACHES)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from batch_emulator.control import EmulatorControl
    from batch_emulator.server import start_emulator

    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, start_emulator() as emulator:
        directory = Path(tmp)
        control = EmulatorControl(emulator.url, timeout=120)
        options = AwsOptions(endpoint_url=emulator.url, region="us-west-2")
        config = load_config(global_config(reaches, directory, args.fail_share))
        print(
            f"workflow: {reaches:,} reaches, {len(config.stages)} stages, {len(config.modules)} modules; "
            f"{args.fail_share:.2%} of {FAILING}'s children fail (budget 1 %), {' and '.join(PER_INDEX)} per_index; "
            "emulator: 1 s per attempt, 0.2 s in each of SUBMITTED, RUNNABLE, STARTING",
            flush=True,
        )
        runs = []
        fresh_emulator(control, options, config)
        control.fail(f"bench-local_{FAILING}_*", share=args.fail_share, seed=1)
        runs.append(run_local(config, directory, options, args.poll))
        print(f"{runs[-1].label}: {runs[-1].state.state} in {runs[-1].elapsed:.0f} s", flush=True)
        fresh_emulator(control, options, config)
        control.fail(f"bench-cloud_{FAILING}_*", share=args.fail_share, seed=1)
        runs.append(run_cloud(config, options))
        if runs[0].delays:  # the cloud's delay (one event) against the local loop's (up to one poll interval)
            runs[1].baseline = statistics.median(runs[0].delays)
            runs[1].baseline_label = f"the local median ({runs[1].baseline:.2f} s)"
        print(f"{runs[-1].label}: {runs[-1].state.state} in {runs[-1].elapsed:.0f} s", flush=True)
    print()
    for line in table(runs, reaches, load_prices("us-west-2"), config):
        print(line)
    for m in runs:
        print(f"{m.label}: SubmitJob per stage: " + ", ".join(f"{s} {n}" for s, n in m.per_stage))
    print(
        f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores; "
        f"{time.perf_counter() - began:,.0f} s in all"
    )


if __name__ == "__main__":
    main()
