"""Supervised runs at global scale (~210,000 reaches): what the supervisor itself costs, and how it compares.

    .venv/bin/python bench/supervise.py [--reaches N] [--shares 0.001,0.009,0.05,0.2] [--concurrent 50]
    .venv/bin/python bench/supervise.py --emulator [--quick] [--reaches N] [--fail-share 0.001] [--poll 1.0]

Default (cost): the supervisor's own work, measured apart from AWS. The shipped workflow with every reach-level array
resized to the reach count (``offline`` and ``validation`` made ``per_index``, every failure budget widened to 50 %
so failures reach them), a seeded share of every reach-level array's children failing. The supervisor runs as the
cloud function does: a new ``Supervisor`` (empty caches) per event, one event per job reaching a final state, the
ledger in a real store on disk (compare-and-swap files), and AWS Batch answered in-process by a model that accepts
every SubmitJob and finishes jobs when told (so the CPU measured is the supervisor's, not an emulator's: this is a
benchmark of the supervisor, not a test of AWS behaviour). Printed per failing share: SubmitJob calls (and per
``per_index`` stage, against the same stage with no failure), the supervisor's CPU-seconds, bytes written to the
ledger per recorded job, and the longest invocation's CPU-seconds, also scaled to Lambda's CPU share at the
function's 512 MB (Lambda gives a function CPU in proportion to its memory, a full vCPU at 1,769 MB: x 1769/512);
then ``--concurrent`` events of one stage delivered at once (threads, each its own invocation) and the
compare-and-swap conflicts they cause.

``--emulator``: the run on the local Batch emulator, locally supervised and through the function, against the
Step Functions design.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from confluence_runtime.aws.api import AwsOptions, Batch, call, client
from confluence_runtime.config import Config, load_config
from confluence_runtime.names import decode_index_map
from confluence_runtime.planning.estimate import Prices, load_prices, step_functions_transitions, works_from_plan
from confluence_runtime.planning.plan import build_plan
from confluence_runtime.records.document import Piece, SupervisorState, read_state
from confluence_runtime.records.ledger import (
    Blob,
    ChildOutcome,
    JobOutcome,
    Ledger,
    LedgerConflict,
    LocalStore,
    S3Store,
    now_iso,
)
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
    state = read_state(lambda name: ledger.read("bench-cloud", name))  # type: ignore[assignment]
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
        state = read_state(lambda name: ledger.read("bench-cloud", name))  # type: ignore[assignment]
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


# --------------------------------------------------------------------------------------------------------------
# Cost: the supervisor's own work

LAMBDA_FULL_VCPU_MB = 1769  # Lambda: a function gets one full vCPU at 1,769 MB, less in proportion below
FUNCTION_MB = 512  # the supervisor function's memory_size (stacks/supervisor.py)


class CountingStore(LocalStore):
    """The ledger on disk, counting what is written and the compare-and-swap writes that lost a race."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written = 0
        self.conflicts = 0
        self.lock = threading.Lock()

    def create(self, key: str, body: bytes) -> Blob:
        return self._counted(lambda: LocalStore.create(self, key, body), len(body))

    def replace(self, key: str, body: bytes, version: str) -> Blob:
        return self._counted(lambda: LocalStore.replace(self, key, body, version), len(body))

    def _counted(self, write: Callable[[], Blob], size: int) -> Blob:
        try:
            blob = write()
        except LedgerConflict:
            with self.lock:
                self.conflicts += 1
            raise
        with self.lock:
            self.written += size
        return blob


class ModelBatch:
    """AWS Batch for the supervisor (``SupervisorAws``), answered in-process: every SubmitJob accepted, a job
    final once :meth:`finish` says so, a seeded share of every array's children failed."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.jobs: dict[str, tuple[str, Piece, bool]] = {}  # id -> name, piece, finished
        self.lock = threading.Lock()
        self.submits: dict[str, int] = {}  # stage -> SubmitJob calls
        self.cpu = 0.0  # CPU seconds spent in this model (deciding failures), not in the supervisor

    def fails(self, module: str, index: int) -> bool:
        """Whether a module's child fails: a seeded draw per (module, index), the same in every run."""
        digest = hashlib.blake2b(f"{module}:{index}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") / 2**32 < self.share

    def submit(self, request: dict[str, Any]) -> str:
        tags = request["tags"]
        env = {e["name"]: e["value"] for e in request.get("containerOverrides", {}).get("environment", [])}
        size = int((request.get("arrayProperties") or {}).get("size") or 1)
        if env.get("CONFLUENCE_INDEX_MAP"):
            indices = tuple(decode_index_map(env["CONFLUENCE_INDEX_MAP"]))
            piece = Piece(request["jobName"], tags["confluence:module"], 0, count=size, index_map=indices)
        elif env.get("CONFLUENCE_ARRAY_SIZE") == "0":
            piece = Piece(request["jobName"], tags["confluence:module"], 0, plain=True)
        else:
            offset = int(env.get("CONFLUENCE_INDEX", env.get("CONFLUENCE_ARRAY_OFFSET", "0")))
            piece = Piece(request["jobName"], tags["confluence:module"], 0, offset=offset, count=size)
        with self.lock:
            job_id = f"job-{len(self.jobs)}"
            self.jobs[job_id] = (request["jobName"], piece, False)
            stage = tags["confluence:stage"]
            self.submits[stage] = self.submits.get(stage, 0) + 1
        return job_id

    def find(self, names: Sequence[str], queues: Sequence[str]) -> dict[str, list[str]]:
        wanted = set(names)
        found: dict[str, list[str]] = {}
        for job_id, (name, _, _) in list(self.jobs.items()):
            if name in wanted:
                found.setdefault(name, []).append(job_id)
        return found

    def finish(self, job_id: str) -> None:
        name, piece, _ = self.jobs[job_id]
        self.jobs[job_id] = (name, piece, True)

    def observe(self, jobs: Sequence[tuple[Piece, str]]) -> list[JobOutcome]:
        outcomes = []
        for piece, job_id in jobs:
            name, _, finished = self.jobs[job_id]
            if not finished:
                outcomes.append(JobOutcome(job_id=job_id, job_name=name, status="RUNNING", observed_at=now_iso()))
                continue
            array = piece.count >= 2
            began = time.process_time()
            failed = [i for i in range(piece.count) if self.fails(piece.module, piece.global_index(i))] if array else []
            self.cpu += time.process_time() - began  # the model's, not the supervisor's: taken off the figures
            outcomes.append(
                JobOutcome(
                    job_id=job_id,
                    job_name=name,
                    status="FAILED" if failed else "SUCCEEDED",
                    observed_at=now_iso(),
                    array_size=piece.count if array else 0,
                    counts=(("FAILED", len(failed)), ("SUCCEEDED", piece.count - len(failed))) if array else (),
                    failed=tuple(ChildOutcome(index=piece.global_index(i), status="FAILED") for i in failed),
                    index_map=piece.index_map,
                )
            )
        return outcomes

    def stop(self, job_ids: Sequence[str], reason: str) -> None:
        for job_id in job_ids:
            self.finish(job_id)

    def item_count(self, url: str) -> int:
        raise NotImplementedError(url)


def cost_config(reaches: int, directory: Path) -> Path:
    """The shipped workflow at ``reaches`` reaches, offline and validation per_index, every budget 50 %."""
    path = global_config(reaches, directory, 0.0)
    data = yaml.safe_load(path.read_text())
    data["defaults"]["tolerated_failure"] = "50%"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Cost:
    share: float
    state: str
    submits: dict[str, int]
    cpu: float
    written: int
    recorded: int
    longest: float
    longest_what: str
    invocations: int


def run_cost(config: Any, directory: Path, share: float) -> Cost:
    """The supervisor function's work for one run: an invocation for the hand-over, then one per finished job."""
    store = CountingStore(directory / f"ledger-{share}")
    ledger = Ledger(store)
    run_id = "bench-cost"
    begin(ledger, config, run_id, mode="cloud", region="us-west-2")
    model = ModelBatch(share)
    took: list[tuple[float, str]] = []

    def invoke(why: str) -> None:
        began, model_began = time.process_time(), model.cpu
        Supervisor(ledger, model, run_id, token=f"invocation-{len(took)}", lease=900).advance()  # type: ignore[arg-type]
        took.append((time.process_time() - began - (model.cpu - model_began), why))

    cpu = time.process_time()
    invoke("the hand-over")
    for _ in range(100_000):
        state = read_state(lambda name: ledger.read(run_id, name))
        assert state is not None
        if state.over and state.notified:
            break
        current = state.current()
        pending = [i for _, i in (current.jobs if current else ()) if not model.jobs[i][2]]
        if not pending:
            invoke("a sweep")
            continue
        for job_id in pending:
            model.finish(job_id)
            invoke(f"the event of {model.jobs[job_id][0]}")
    cpu = time.process_time() - cpu - model.cpu
    recorded = sum(len(s.jobs) for s in state.stages)
    longest, what = max(took)
    return Cost(share, state.state, model.submits, cpu, store.written, recorded, longest, what, len(took))


def concurrent_events(config: Any, directory: Path, events: int) -> tuple[int, int, float]:
    """``events`` invocations at once for one run whose stage just ended (threads, each its own supervisor, as
    Lambda runs concurrent deliveries side by side): how many compare-and-swap writes lost a race; and the
    submissions made (the next stage's, exactly once whoever wins)."""
    store = CountingStore(directory / "ledger-concurrent")
    ledger = Ledger(store)
    run_id = "bench-concurrent"
    begin(ledger, config, run_id, mode="cloud", region="us-west-2")
    model = ModelBatch(0.0)
    first = "first-invocation"  # the supervisor's identity in its claims
    Supervisor(ledger, model, run_id, token=first, lease=900).advance()  # type: ignore[arg-type]
    for job_id in list(model.jobs):
        model.finish(job_id)
    before = dict(model.submits)
    barrier = threading.Barrier(events)

    def invoke(k: int) -> None:
        barrier.wait()
        Supervisor(ledger, model, run_id, token=f"concurrent-{k}", lease=900).advance()  # type: ignore[arg-type]

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=events) as pool:
        list(pool.map(invoke, range(events)))
    submitted = sum(model.submits.values()) - sum(before.values())
    return store.conflicts, submitted, time.perf_counter() - began


def cost_main(reaches: int, shares: list[float], concurrent: int) -> None:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config = load_config(cost_config(reaches, directory))
        print(
            f"workflow: {reaches:,} reaches, {len(config.stages)} stages, {len(config.modules)} modules; "
            f"{', '.join(PER_INDEX)} per_index; budgets 50 %; one invocation per finished job (cloud)",
            flush=True,
        )
        results = [run_cost(config, directory, share) for share in [0.0, *shares]]
        base = results[0]
        scale = LAMBDA_FULL_VCPU_MB / FUNCTION_MB
        print()
        print(
            f"{'failing':>8} {'state':>10} {'SubmitJob':>9} {'per_index (0 %)':>22} {'CPU s':>8} "
            f"{'x 0.1 %':>7} {'bytes/job':>10} {'longest CPU s':>13} {'at 512 MB':>9}"
        )
        reference = next((r for r in results if r.share == 0.001), results[1] if len(results) > 1 else base)
        for r in results:
            per_index = ", ".join(f"{s} {r.submits.get(s, 0)} ({base.submits.get(s, 0)})" for s in PER_INDEX)
            print(
                f"{r.share:>8.1%} {r.state:>10} {sum(r.submits.values()):>9,} {per_index:>22} {r.cpu:>8.1f} "
                f"{r.cpu / reference.cpu:>7.2f} {r.written / max(r.recorded, 1):>10,.0f} {r.longest:>13.2f} "
                f"{r.longest * scale:>9.1f}"
            )
        for r in results:
            print(f"{r.share:.1%}: longest invocation: {r.longest_what}; {r.invocations:,} invocations")
        conflicts, submitted, seconds = concurrent_events(config, directory, concurrent)
        print(
            f"{concurrent} events at once for a stage that just ended: {conflicts:,} compare-and-swap conflicts, "
            f"{submitted} SubmitJob (the next stage's jobs, once), {seconds:.1f} s"
        )
    print(
        f"CPU seconds of this process (time.process_time); 'at 512 MB' = x {scale:.2f} (Lambda's CPU share at "
        f"{FUNCTION_MB} MB of {LAMBDA_FULL_VCPU_MB} MB for a vCPU); at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
        f"{os.cpu_count()} cores; {time.perf_counter() - began:,.0f} s in all"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="21,000 reaches")
    parser.add_argument("--reaches", type=int, help="reach count (default 210,000; 21,000 with --quick)")
    parser.add_argument("--fail-share", type=float, default=0.001, help="share of input children that fail")
    parser.add_argument("--poll", type=float, default=1.0, help="local supervisor's poll interval (s)")
    parser.add_argument("--emulator", action="store_true", help="the run on the emulator, against Step Functions")
    parser.add_argument("--shares", default="0.001,0.009,0.05,0.2", help="failing shares (cost)")
    parser.add_argument("--concurrent", type=int, default=50, help="events delivered at once (cost)")
    args = parser.parse_args()
    reaches = args.reaches or (21_000 if args.quick else GLOBAL_REACHES)
    if not args.emulator:
        cost_main(reaches, [float(x) for x in args.shares.split(",")], args.concurrent)
        return
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
