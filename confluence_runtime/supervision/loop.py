"""Supervised runs, the shell: read the ledger and AWS, call the pure core (:mod:`.decisions`), apply what it
decides. One :class:`Supervisor` serves the local loop (``run --supervise local``, ``supervise --run-id``) and the
cloud handler (``lambdas/supervisor``); they differ only in how often :meth:`advance` is called
(every poll interval, or once per Batch Job State Change event) and in where the ledger lives."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from os.path import commonpath
from typing import Any, Protocol

from .. import __version__, names
from ..apply.cancel import stop_jobs
from ..aws.api import Batch, Client, call, client, publish, read_object
from ..errors import AwsError, RecordError
from ..records import document
from ..records.document import Piece, RunSpec, SupervisorState
from ..records.ledger import (
    ChildOutcome,
    JobOutcome,
    Ledger,
    LedgerConflict,
    RunEvent,
    RunHeader,
    child_outcome,
    config_sha256,
    now_iso,
    outcome_from_job,
)
from ..records.record import Row
from ..states import FINAL
from ..views.report import FAILURES_FILE, REPORT_FILE, build_report, confluence_failures, confluence_report
from . import decisions as core
from .decisions import Decision, Observed, observed_from_outcome

log = logging.getLogger("confluence")

LOCAL_LEASE = 120.0  # seconds a local claim holds while its stage is submitted (a live process renews nothing)
CLOUD_LEASE = 900.0  # the supervisor function's timeout: a claim outlives the invocation that made it


class SupervisorAws(Protocol):
    """What the supervisor asks of AWS Batch (and S3 for ``items``)."""

    def submit(self, request: dict[str, Any]) -> str: ...

    def find(self, names: Sequence[str], queues: Sequence[str]) -> dict[str, str]: ...

    def observe(self, jobs: Sequence[tuple[Piece, str]]) -> list[JobOutcome]: ...

    def stop(self, job_ids: Sequence[str], reason: str) -> None: ...

    def item_count(self, url: str) -> int: ...


class BatchAws:
    """:class:`SupervisorAws` on AWS (or the emulator): DescribeJobs in chunks, ListJobs for failed children."""

    def __init__(self, batch: Batch, s3: Client | None = None) -> None:
        self.batch = batch
        self._s3 = s3

    def submit(self, request: dict[str, Any]) -> str:
        return str(self.batch.submit_job(request))

    def find(self, names: Sequence[str], queues: Sequence[str]) -> dict[str, str]:
        """Jobs AWS holds under these names (any status): the oldest id of each name."""
        wanted = set(names)
        found: dict[str, tuple[int, str]] = {}
        prefix = commonpath(list(names)) if names else ""
        for queue in dict.fromkeys(queues):
            for job in self.batch.list_jobs(job_queue=queue, name_prefix=prefix):
                name = job.get("jobName", "")
                if name in wanted:
                    created = int(job.get("createdAt") or 0)
                    if name not in found or created < found[name][0]:
                        found[name] = (created, str(job["jobId"]))
        return {name: job_id for name, (_, job_id) in found.items()}

    def observe(self, jobs: Sequence[tuple[Piece, str]]) -> list[JobOutcome]:
        pieces = {job_id: piece for piece, job_id in jobs}
        described = self.batch.describe_jobs(list(pieces)) if pieces else []
        outcomes = []
        at = now_iso()
        for job in described:
            piece = pieces.get(str(job.get("jobId")))
            if piece is None:
                continue
            outcomes.append(outcome_of(job, piece, self._failed_children(job, piece), observed_at=at))
        return outcomes

    def _failed_children(self, job: Mapping[str, Any], piece: Piece) -> list[ChildOutcome]:
        status = job.get("status")
        summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
        if piece.plain or piece.count < 2:
            if status != "FAILED":
                return []
            return [replace_index(child_outcome(job, 0), piece.global_index(None), None)]
        if status not in FINAL or not int(summary.get("FAILED") or 0):
            return []
        children = []
        for child in self.batch.list_jobs(array_job_id=str(job["jobId"]), status="FAILED"):
            array_index = (child.get("arrayProperties") or {}).get("index")
            if array_index is None:
                array_index = int(str(child.get("jobId", "")).rsplit(":", 1)[-1])
            children.append(
                replace_index(child_outcome(child, 0), piece.global_index(int(array_index)), int(array_index))
            )
        return sorted(children, key=lambda c: c.index)

    def stop(self, job_ids: Sequence[str], reason: str) -> None:
        """Cancel what is queued, terminate what has started (an array parent's children included)."""

        if job_ids:
            stop_jobs(self.batch, list(job_ids), reason)

    def item_count(self, url: str) -> int:
        return len(read_items(self._client(), url))

    def _client(self) -> Client:
        if self._s3 is None:
            self._s3 = client("s3", self.batch.options)
        return self._s3


def read_items(s3: Client, url: str) -> list[Any]:
    """A module's ``items``: a JSON array at ``s3://BUCKET/KEY``."""

    if not url.startswith("s3://") or "/" not in url[5:]:
        raise AwsError(f"{url}: items must be an s3://BUCKET/KEY location")
    bucket, key = url[5:].split("/", 1)
    try:
        body = read_object(s3, bucket, key)
    except Exception as e:
        raise AwsError(f"reading items {url}: {e}") from e
    try:
        items = json.loads(body)
    except ValueError as e:
        raise AwsError(f"items {url} is not JSON: {e}") from e
    if not isinstance(items, list):
        raise AwsError(f"items {url} is not a JSON array (got {type(items).__name__})")
    return items


def replace_index(child: ChildOutcome, index: int, array_index: int | None) -> ChildOutcome:

    return replace(child, index=index, array_index=array_index)


def outcome_of(
    job: Mapping[str, Any], piece: Piece, failed: Iterable[ChildOutcome], *, observed_at: str | None = None
) -> JobOutcome:
    """A ledger outcome of a piece's job: failed children at their global indices, the index map kept."""
    group = ((job.get("container") or {}).get("logConfiguration") or {}).get("options", {}).get("awslogs-group")
    return outcome_from_job(
        job,
        observed_at=observed_at,
        failed=failed,
        index_map=piece.index_map,
        log_group=group or "/aws/batch/job",
    )


# --------------------------------------------------------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def local_token() -> str:
    return f"local:{socket.gethostname()}:{os.getpid()}"


def _dead_local_claim(token: str) -> bool:
    """A claim made by a process of this machine that no longer exists (a killed ``run --supervise local``)."""
    parts = token.split(":")
    if len(parts) != 3 or parts[0] != "local" or parts[1] != socket.gethostname():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


@dataclass
class Supervisor:
    """Advances one run as far as it can go now; the caller decides when to call again."""

    ledger: Ledger
    aws: SupervisorAws
    run_id: str
    token: str
    lease: float = LOCAL_LEASE
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    on_end: Callable[[SupervisorState], None] | None = None
    by: str = "supervisor"
    submitted: list[str] = field(default_factory=list)  # names this supervisor submitted (for its caller)

    # the document -----------------------------------------------------------------------------------------------

    def load(self) -> SupervisorState:
        data = self.ledger.read(self.run_id, names.SUPERVISOR_DOCUMENT)
        if data is None:
            raise RecordError(f"run {self.run_id} is not a supervised run in {self.ledger.location}")
        return SupervisorState.from_dict(data)

    def _change(self, transition: Callable[[SupervisorState], SupervisorState]) -> SupervisorState:
        def mutate(data: Any) -> Any:
            return transition(SupervisorState.from_dict(data)).to_dict()

        return SupervisorState.from_dict(self.ledger.update(self.run_id, names.SUPERVISOR_DOCUMENT, mutate))

    # observing --------------------------------------------------------------------------------------------------

    def observed(self, state: SupervisorState) -> dict[str, Observed]:
        """Every recorded job as last known; the current stage's unfinished jobs are asked of AWS first."""
        outcomes = self.ledger.outcomes(self.run_id)
        # By name, not by scanning: a per_index stage of a global run has hundreds of pieces.
        named = {(s.stage, p.name): p for s in state.stages for p in s.pieces}
        pieces = {job_id: named[s.stage, n] for s in state.stages for n, job_id in s.jobs if (s.stage, n) in named}
        current = state.current()
        ask: list[tuple[Piece, str]] = []
        if current is not None and not state.over:
            for name, job_id in current.jobs:
                known = outcomes.get(job_id)
                if known is None or not known.final:
                    ask.append((named[current.stage, name], job_id))
        if ask:
            outcomes = self.ledger.observe(self.run_id, self.aws.observe(ask))
        return {job_id: observed_from_outcome(o, pieces[job_id]) for job_id, o in outcomes.items() if job_id in pieces}

    def _sizes(self, state: SupervisorState) -> dict[str, int] | None:
        stage = core.stage_sizes_needed(state)
        if stage is None:
            return None
        return {m.name: self.aws.item_count(m.items) for m in stage.modules if m.items is not None}

    def _cancelled(self) -> bool:
        return any(e.kind == "cancelled" for e in self.ledger.events(self.run_id))

    # one step ---------------------------------------------------------------------------------------------------

    def step(self) -> Decision:
        """Read, decide, apply one decision; returns it (``wait`` and ``idle`` change nothing)."""
        state = self.load()
        now = self.clock()
        observed = {} if state.over else self.observed(state)
        current = state.current()
        token = self.token
        if current is not None and current.status == document.CLAIMED and _dead_local_claim(current.claim):
            # The claimant was killed on this machine: its lease need not run out before taking over.
            state = self._change(
                lambda s: core.take_over(
                    s, current.stage, token=token, now=_iso(now), until=self._until(now), force=True
                )
            )
        decision = core.decide(
            state,
            observed,
            now=_iso(now),
            token=token,
            sizes=self._sizes(state),
            cancelled=not state.over and self._cancelled(),
        )
        getattr(self, f"_{decision.action}")(decision, now)
        return decision

    def advance(self, max_steps: int = 10_000, *, hand_off: bool = False) -> Decision:
        """Step until the run waits for AWS or is over and reported; with ``hand_off``, only until one stage is
        submitted (``run --supervise cloud``: the supervisor function takes the rest)."""
        for _ in range(max_steps):
            decision = self.step()
            if decision.action in ("wait", "idle") or (hand_off and decision.action == "submit"):
                return decision
        raise RuntimeError("supervisor made no progress")  # pragma: no cover - every step changes the document

    def _until(self, now: datetime) -> str:
        return _iso(now + timedelta(seconds=self.lease))

    # applying ---------------------------------------------------------------------------------------------------

    def _wait(self, decision: Decision, now: datetime) -> None:
        return None

    def _idle(self, decision: Decision, now: datetime) -> None:
        return None

    def _claim(self, decision: Decision, now: datetime) -> None:
        state = self._change(lambda s: core.claim(s, decision, token=self.token, now=_iso(now), until=self._until(now)))
        stage = state.stage_state(decision.stage)
        if stage.claim == self.token:
            log.info("run %s: stage %s claimed, %d jobs to submit", self.run_id, decision.stage, len(stage.pieces))
            self._note("stage-claimed", f"{decision.stage}: {len(stage.pieces)} jobs, {len(stage.skipped)} left out")

    def _submit(self, decision: Decision, now: datetime) -> None:
        state = self.load()
        if decision.takeover:
            state = self._change(
                lambda s: core.take_over(s, decision.stage, token=self.token, now=_iso(now), until=self._until(now))
            )
            if state.stage_state(decision.stage).claim != self.token:
                return
            # The previous claimant may have submitted jobs it did not live to record: adopt them by name.
            names = [p.name for p in decision.pieces]
            queues = [state.run.module(decision.stage, p.module).job_queue for p in decision.pieces]
            for name, job_id in self.aws.find(names, queues).items():
                piece = next(p for p in decision.pieces if p.name == name)
                state = self._record(state, decision.stage, piece, job_id, adopted=True)
                log.info("run %s: adopted %s (%s), submitted by an earlier supervisor", self.run_id, name, job_id)
            state = self._change(lambda s: core.checked(s, decision.stage, token=self.token))
        stage = state.stage_state(decision.stage)
        sizes = dict(stage.sizes)
        recorded = stage.job_ids
        for piece in decision.pieces:
            if piece.name in recorded:
                continue
            if state.over or state.stage_state(decision.stage).claim != self.token:
                return  # the run ended, or this supervisor was too slow and another one took the stage over
            spec = state.run.module(decision.stage, piece.module)
            request = core.submission(spec, piece, state.run, sizes.get(piece.module, 0)).request({})
            job_id = self.aws.submit(request)
            self.submitted.append(piece.name)
            state = self._record(state, decision.stage, piece, job_id)
            if state.over:
                # The run ended (cancelled, over budget elsewhere) while this stage was being submitted.
                self.aws.stop([job_id], f"Confluence run {self.run_id} is over: {state.reason}")

    def _record(
        self, state: SupervisorState, stage_name: str, piece: Piece, job_id: str, *, adopted: bool = False
    ) -> SupervisorState:
        spec = state.run.module(stage_name, piece.module)
        sizes = dict(state.stage_state(stage_name).sizes)
        sub = core.submission(spec, piece, state.run, sizes.get(piece.module, 0))
        # Only an adopted job (submitted by a supervisor that died) may have its row already; a job id SubmitJob
        # just returned cannot, and reading every row back for each of a stage's hundreds of jobs is quadratic.
        if not adopted or job_id not in {r.job_id for r in self.ledger.jobs(self.run_id)}:
            with self.ledger.recorder(self.run_id) as recorder:
                recorder.append(Row.for_submission(sub, job_id, self.run_id, "supervised"))
        until = self._until(self.clock())
        return self._change(lambda s: core.record_job(s, stage_name, piece.name, job_id, token=self.token, until=until))

    def _finish(self, decision: Decision, now: datetime) -> None:
        self._change(lambda s: core.finish(s, decision, now=_iso(now)))
        failed = sum(len(v) for _, v in decision.failed)
        log.info("run %s: stage %s done (%d children failed)", self.run_id, decision.stage, failed)
        self._note("stage-done", f"{decision.stage}: {failed} children failed")

    def _end(self, decision: Decision, now: datetime) -> None:
        if decision.cancel:
            self.aws.stop(decision.cancel, f"Confluence run {self.run_id} stopped: {decision.reason}")
        state = self._change(lambda s: core.end(s, decision, now=_iso(now)))
        log.info("run %s ended %s: %s", self.run_id, state.state, state.reason)
        self._note(f"supervisor-{state.state}", state.reason)

    def _notify(self, decision: Decision, now: datetime) -> None:
        state = self.load()
        if self.on_end is not None:
            self.on_end(state)
        self._change(core.notified)

    def _note(self, kind: str, detail: str) -> None:
        self.ledger.note(self.run_id, RunEvent(at=now_iso(), kind=kind, detail=detail, by=self.by))


def start(ledger: Ledger, state: SupervisorState, *, by: str = "run --supervise") -> None:
    """Record a supervised run's document (create-if-absent: the same run id cannot be supervised twice)."""

    def mutate(data: Any) -> Any:
        if data is not None:
            raise LedgerConflict(f"run {state.run.run_id} is already supervised in {ledger.location}")
        return state.to_dict()

    ledger.update(state.run.run_id, names.SUPERVISOR_DOCUMENT, mutate)
    ledger.note(state.run.run_id, RunEvent(at=now_iso(), kind="supervised", detail=state.mode, by=by))


def request_cancel(ledger: Ledger, run_id: str, *, detail: str, by: str) -> SupervisorState | None:
    """Record that a supervised run is to be cancelled (the ``cancelled`` event every supervisor of the run reads
    before it decides anything); None when the run is not supervised, the state unchanged when it is already over.

    ``cancel`` calls this before it stops any job: a supervisor that sees a stopped job fail then also sees why,
    instead of counting the job against the failure budget and ending the run over budget."""
    data = ledger.read(run_id, names.SUPERVISOR_DOCUMENT)
    if data is None:
        return None
    state = SupervisorState.from_dict(data)
    if not state.over:
        ledger.note(run_id, RunEvent(at=now_iso(), kind="cancelled", detail=detail, by=by))
    return state


def hand_over(events: Client, prefix: str, run_id: str, change: str, ledger: str) -> None:
    """Tell the venue's supervisor function to look at a run: one event on the default EventBridge bus
    (``names.supervisor_event``), which a rule of stacks/supervisor.py sends to the function.

    An event rather than a Lambda Invoke (InvocationType=Event), because then the hand-over reaches the function
    the way every Batch event does: the same target retry policy (up to 24 hours), dead-letter queue and alarm, so
    a hand-over the function cannot take is alarmed like any lost event; the operator needs events:PutEvents on
    the default bus (scoped by events:source), not a grant on the function; and nothing runs on this machine.
    PutEvents is retried by the retry layer although it is not idempotent: a duplicate event is what EventBridge
    delivers anyway (at least once), and the function's compare-and-swap on the ledger makes it change nothing.
    """
    entry = names.supervisor_event(prefix, run_id, change, ledger)
    answer = call("PutEvents", events.put_events, Entries=[entry])
    if answer.get("FailedEntryCount"):
        refused = (answer.get("Entries") or [{}])[0]
        raise AwsError(
            f"EventBridge did not take the {change} event of run {run_id}: {refused.get('ErrorCode', '?')} "
            f"{refused.get('ErrorMessage', '')}".rstrip()
        )


def run_locally(
    supervisor: Supervisor,
    *,
    poll: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    on_step: Callable[[Decision], None] | None = None,
) -> SupervisorState:
    """The local loop: advance, wait one poll interval, advance again, until the run is over and reported."""
    while True:
        decision = supervisor.advance()
        if on_step is not None:
            on_step(decision)
        if decision.action == "idle":
            return supervisor.load()
        sleep(poll)


# --------------------------------------------------------------------------------------------------------------
# Starting a supervised run, and its end (report and summary)


def begin(
    ledger: Ledger,
    config: Any,
    run_id: str,
    *,
    mode: str,
    region: str,
    endpoint: str | None = None,
    by: str = "run --supervise",
) -> SupervisorState:
    """Record the run (header, then the supervisor's document) before anything is submitted."""

    run = RunSpec.from_config(config, run_id)
    header = RunHeader(
        run_id=run_id,
        plan_digest="supervised",
        config_path=str(config.source),
        config_sha256=config_sha256(config.source),
        prefix=config.prefix,
        region=region,
        started_at=now_iso(),
        tool_version=__version__,
        venue=config.venue,
        endpoint=endpoint,
        stages=tuple(s.name for s in config.stages),
    )
    ledger.begin(header)
    state = SupervisorState.start(run, mode, ledger.location)
    start(ledger, state, by=by)
    return state


@dataclass
class Reporter:
    """The end of a run: Confluence's report files next to the ledger, and the summary on the alerts topic."""

    ledger: Ledger
    s3: Client | None = None  # reads ``items`` for the failures' values
    sns: Client | None = None
    topic_arn: str | None = None
    published: list[str] = field(default_factory=list)

    def __call__(self, state: SupervisorState) -> None:

        run_id = state.run.run_id
        report = build_report(self.ledger.snapshot(run_id))
        items: dict[str, list[Any]] = {}
        for stage in state.run.stages:
            for module in stage.modules:
                failed = any(m.module == module.name and m.failures for m in report.modules)
                if module.items and failed and self.s3 is not None:
                    items[module.name] = read_items(self.s3, module.items)
        self.ledger.update(run_id, REPORT_FILE, lambda _: confluence_report(report))
        failures = confluence_failures(report, items, core.packing(state))
        self.ledger.update(run_id, FAILURES_FILE, lambda _: failures)
        summary = core.summarize(state).paragraph()
        self.published.append(summary)
        if self.sns is not None and self.topic_arn:
            publish(self.sns, self.topic_arn, f"Confluence run {run_id}: {state.state.replace('_', ' ')}", summary)
