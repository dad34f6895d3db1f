"""Supervised runs, the shell: read the ledger and AWS, call the pure core (:mod:`.decisions`), apply what it
decides. One :class:`Supervisor` serves the local loop (``run --supervise local``, ``supervise --run-id``) and the
cloud handler (``lambdas/supervisor``); they differ only in how often :meth:`advance` is called
(every poll interval, or once per Batch Job State Change event) and in where the ledger lives."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .. import __version__, attempts, names
from ..apply.cancel import stop_jobs
from ..apply.submit import LOST_REPLY_ATTEMPTS
from ..aws.api import Batch, Client, call, client, describe_error, publish, read_object
from ..aws.pacing import AmbiguousFailure
from ..errors import AwsError, RecordError
from ..planning.estimate import Attempt, Prices, attempt_cost, load_prices
from ..records import document
from ..records.document import Piece, RunSpec, StageState, SupervisorState
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
from ..records.provenance import items_from_body, items_location
from ..records.record import Row
from ..states import FINAL
from ..views.cost import attempts_of, job_size
from ..views.report import FAILURES_FILE, REPORT_FILE, build_report, confluence_failures, confluence_report
from . import decisions as core
from .decisions import Decision, Observed, observed_from_outcome

log = logging.getLogger("confluence")

LOCAL_LEASE = 120.0  # seconds a local claim holds while its stage is submitted (a live process renews nothing)
SUPERVISED_DIGEST = "supervised"  # the plan digest a supervised run's header carries (its stages are planned later)
CLOUD_LEASE = 900.0  # the supervisor function's timeout: a claim outlives the invocation that made it


class SupervisorAws(Protocol):
    """What the supervisor asks of AWS Batch (and S3 for ``items``)."""

    def submit(self, request: dict[str, Any]) -> str: ...

    def find(self, names: Sequence[str], queues: Sequence[str]) -> dict[str, list[str]]: ...

    def observe(self, jobs: Sequence[tuple[Piece, str]]) -> list[JobOutcome]: ...

    def stop(self, job_ids: Sequence[str], reason: str) -> None: ...

    def item_count(self, url: str) -> int: ...

    def measure(self, job_id: str, compute: str) -> float | None: ...


class BatchAws:
    """:class:`SupervisorAws` on AWS (or the emulator): DescribeJobs in chunks, ListJobs for failed children."""

    def __init__(self, batch: Batch, s3: Client | None = None) -> None:
        self.batch = batch
        self._s3 = s3
        self._described: dict[str, Mapping[str, Any]] = {}  # the last DescribeJobs answer of each final job
        self._prices: Prices | None = None

    def submit(self, request: dict[str, Any]) -> str:
        return str(self.batch.submit_job(request))

    def find(self, names: Sequence[str], queues: Sequence[str]) -> dict[str, list[str]]:
        """Jobs AWS holds under these names (any status), each name's ids oldest first: the runtime's one lookup
        (:meth:`~confluence_runtime.aws.api.Batch.jobs_named`) under the names' common prefix (the run's
        ``RUN_ID_`` for a stage's pieces), so one paged ListJobs per queue answers for a whole stage."""
        if not names:
            return {}
        found: dict[str, list[str]] = {}
        for job in self.batch.jobs_named(shared_prefix(names), queues, names):
            found.setdefault(str(job["jobName"]), []).append(str(job["jobId"]))
        return found

    def observe(self, jobs: Sequence[tuple[Piece, str]]) -> list[JobOutcome]:
        pieces = {job_id: piece for piece, job_id in jobs}
        described = self.batch.describe_jobs(list(pieces)) if pieces else []
        outcomes = []
        at = now_iso()
        for job in described:
            piece = pieces.get(str(job.get("jobId")))
            if piece is None:
                continue
            if job.get("status") in FINAL:
                self._described[str(job["jobId"])] = job
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
        listed = list(self.batch.list_jobs(array_job_id=str(job["jobId"]), status="FAILED"))
        # ListJobs keeps only a child's last reason; its reclaimed attempts (which decide when a child moves to
        # On-Demand) are in DescribeJobs' ``attempts``: asked for the few children a reclaim ended.
        reclaimed = [str(c["jobId"]) for c in listed if attempts.classify_child(_reason(c)) == attempts.RECLAIMED]
        described = {str(c["jobId"]): c for c in self.batch.describe_jobs(reclaimed)} if reclaimed else {}
        for child in (described.get(str(c["jobId"]), c) for c in listed):
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

    def measure(self, job_id: str, compute: str) -> float | None:
        """What a final job this object observed cost On-Demand, from AWS's timestamps (``views/cost.py``'s
        attempts, ``estimate.attempt_cost``'s prices): a plain job's attempts from its description, an array's
        children from ListJobs (one summary per child: its last attempt). Asked once per job, when it is final,
        and only for runs with a cost cap; None when the job was not observed or cannot be priced."""
        job = self._described.pop(job_id, None)
        if job is None:
            return None
        if self._prices is None:
            self._prices = load_prices(self.batch.options.resolved_region)
        size = int((job.get("arrayProperties") or {}).get("size") or 0)
        if size:
            vcpus, memory = job_size(job)
            attempts = [
                Attempt("", "", vcpus, memory, (child["stoppedAt"] - child["startedAt"]) / 1000, compute)
                for status in ("SUCCEEDED", "FAILED")
                for child in self.batch.list_jobs(array_job_id=job_id, status=status)
                if child.get("startedAt") and child.get("stoppedAt") and child["stoppedAt"] >= child["startedAt"]
            ]
        else:
            attempts = attempts_of(job, "", "", compute)
        costs = [attempt_cost(self._prices, a) for a in attempts]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    def _client(self) -> Client:
        if self._s3 is None:
            self._s3 = client("s3", self.batch.options)
        return self._s3


def _reason(child: Mapping[str, Any]) -> str:
    """A ListJobs summary's reason as the ledger keeps it (``ChildOutcome.reason``)."""
    return child_outcome(child, 0).reason


def _first_write(value: Any) -> Callable[[Any], Any]:
    """A ledger update that writes ``value`` once: an object already there (a retried write) is kept as it is."""
    return lambda old: old if old is not None else value


def shared_prefix(texts: Sequence[str]) -> str:
    """The longest string every one of ``texts`` starts with, compared character by character. Not
    ``os.path.commonpath``: it compares path components, so two job names share the prefix ``""``, and ListJobs sent
    with no filter (and no status) lists only RUNNING jobs."""
    first, last = min(texts), max(texts)
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))
    return first[:size]


def read_items(s3: Client, url: str) -> list[Any]:
    """A module's ``items``: a JSON array at ``s3://BUCKET/KEY``."""
    bucket, key = items_location(url)[5:].split("/", 1)
    try:
        body = read_object(s3, bucket, key)
    except Exception as e:
        raise AwsError(f"reading items {url}: {e}") from e
    return items_from_body(url, body)


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


def summary_observed(data: Mapping[str, Any]) -> Observed:
    """A final job as the decision needs it, from its outcome object's summary."""
    failed = data["failed"]
    indices = frozenset(int(i) for i in failed) if isinstance(failed, list) else names.IndexMap(failed)
    oom = data.get("oom") or []
    return Observed(
        str(data["status"]),
        indices,
        int(data["failed_count"]),
        tuple((int(i), int(n)) for i, n in data.get("reclaimed") or ()),
        frozenset(int(i) for i in oom),
    )


def outcome_key(job_id: str) -> str:
    """A supervised job's final summary, an object of its own (written once, when the job is final): its status,
    its failed children's global indices as ranges and AWS's count of them: what every later decision reads."""
    return f"{names.SUPERVISOR_OBJECT_PREFIX}outcome-{job_id}.json"


def detail_key(job_id: str) -> str:
    """A supervised job's final outcome in full (every failed child's record), written once before its summary
    and read once, when the run's outcomes are kept: a decision never parses the children's records."""
    return f"{names.SUPERVISOR_OBJECT_PREFIX}outcome-{job_id}-detail.json"


def write_documents(ledger: Ledger, run_id: str, state: SupervisorState, written: dict[str, Any]) -> dict[str, Any]:
    """Write the state's new immutable objects (before the document that names them: a reader never finds a name
    without its object) and return the document to compare-and-swap. ``written`` remembers what is there."""
    data, objects = state.to_documents()
    for key, value in objects.items():
        if key not in written:
            ledger.update(run_id, key, _first_write(value))
            written[key] = value
    return data


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
    # When this supervisor is gone for sure (a Lambda invocation's deadline): its claims never last longer.
    deadline: datetime | None = None
    _objects: dict[str, Any] = field(default_factory=dict)  # the document's immutable objects read or written
    # run --max-cost: each module's compute kind, to price its final jobs (empty: the run has no cap)
    _priced: dict[str, str] = field(default_factory=dict)
    _parsed: dict[str, Any] = field(default_factory=dict)  # the same, as pieces and indices

    # the document -----------------------------------------------------------------------------------------------

    def load(self, *, full: bool = True) -> SupervisorState:
        """The run's state; ``full=False``: what a decision needs (done stages' objects left unread)."""
        data = self.ledger.read(self.run_id, names.SUPERVISOR_DOCUMENT)
        if data is None:
            raise RecordError(f"run {self.run_id} is not a supervised run in {self.ledger.location}")
        return self._state(data, full=full)

    def _state(self, data: Any, *, full: bool = False) -> SupervisorState:
        return SupervisorState.from_documents(data, self._object, self._parsed, decide_only=not full)

    def _object(self, key: str) -> Any:
        """One of the document's immutable objects: read once, then kept (its name is its content's hash)."""
        if key not in self._objects:
            self._objects[key] = self.ledger.read(self.run_id, key)
        return self._objects[key]

    def _change(self, transition: Callable[[SupervisorState], SupervisorState]) -> SupervisorState:
        def mutate(data: Any) -> Any:
            return write_documents(self.ledger, self.run_id, transition(self._state(data)), self._objects)

        return self._state(self.ledger.update(self.run_id, names.SUPERVISOR_DOCUMENT, mutate))

    # observing --------------------------------------------------------------------------------------------------

    def observed(self, state: SupervisorState) -> dict[str, Observed]:
        """The jobs the decision needs, as last known: those of done stages are final (their failures are in the
        stage's done object); each job of the current stage from its final outcome, kept as an object of its own
        once final, or else asked of AWS. So an invocation reads what its stage holds, never the whole run's
        outcomes, and a job's outcome is written once (linear in the run's jobs and failures)."""
        found: dict[str, Observed] = {}
        current = state.current()
        for stage in state.stages:
            if stage.status == document.DONE:
                found.update((job_id, Observed("SUCCEEDED")) for _, job_id in stage.jobs)
        if current is None:
            return found
        found.update(self._stage_observed(current))
        return found

    def _stage_observed(self, stage: StageState) -> dict[str, Observed]:
        """The stage's recorded jobs as the decision needs them: final ones from their objects' summaries (no
        child-by-child parsing), the rest asked of AWS (and kept as objects once final)."""
        named = {p.name: p for p in stage.pieces}
        found: dict[str, Observed] = {}
        ask: list[tuple[Piece, str]] = []
        for name, job_id in stage.jobs:
            data = self._object(outcome_key(job_id))
            if data is not None:
                found[job_id] = summary_observed(data)
            else:
                ask.append((named[name], job_id))
        for outcome, piece in self._ask(ask):
            found[outcome.job_id] = observed_from_outcome(outcome, piece)
        return found

    def _ask(self, ask: list[tuple[Piece, str]]) -> list[tuple[JobOutcome, Piece]]:
        """Outcomes of these jobs from AWS; each final one kept as an object of its own, with the summary the
        decision reads (status, failed global indices as ranges, AWS's failed count)."""
        pieces = {job_id: piece for piece, job_id in ask}
        got = []
        for outcome in self.aws.observe(ask) if ask else []:
            piece = pieces.get(outcome.job_id)
            if piece is None:
                continue
            got.append((outcome, piece))
            if outcome.final:
                seen = observed_from_outcome(outcome, piece)
                failed = sorted(seen.failed)
                detail = outcome.to_dict()
                self.ledger.update(self.run_id, detail_key(outcome.job_id), _first_write(detail))
                self._objects[detail_key(outcome.job_id)] = detail
                value: dict[str, Any] = {
                    "status": seen.status,
                    # ranges; a plain job's failure (index PLAIN, -1) as a list
                    "failed": failed if failed and failed[0] < 0 else names.encode_index_map(failed),
                    "failed_count": seen.failed_count,
                }
                if seen.reclaimed or seen.oom:  # what a retry round sends again (decisions.retries)
                    value.update(reclaimed=[list(r) for r in seen.reclaimed], oom=sorted(seen.oom))
                if piece.module in self._priced:
                    value["cost_usd"] = self.aws.measure(outcome.job_id, self._priced[piece.module])
                key = outcome_key(outcome.job_id)
                self.ledger.update(self.run_id, key, _first_write(value))
                self._objects[key] = value
        return got

    def _keep_outcomes(self, state: SupervisorState) -> None:
        """Every job's outcome into the run's outcomes (what ``status`` and the report read): once, when the run is
        over (one write of them all, not one per job)."""
        kept: dict[str, tuple[str, str]] = {}
        inline: list[JobOutcome] = []
        for stage in state.stages:
            named = {p.name: p for p in stage.pieces}
            ask = []
            for name, job_id in stage.jobs:
                summary = self._object(outcome_key(job_id))
                if summary is None:
                    ask.append((named[name], job_id))
                elif "outcome" in summary:  # a run recorded by an earlier version: the outcome in the summary
                    inline.append(JobOutcome.from_dict(summary["outcome"]))
                else:  # by reference: each failed child's record stays in one place, its job's detail object
                    kept[job_id] = (str(summary["status"]), detail_key(job_id))
            for outcome, _ in self._ask(ask):
                if outcome.final:
                    kept[outcome.job_id] = (outcome.status, detail_key(outcome.job_id))
                else:
                    inline.append(outcome)
        if inline:
            self.ledger.observe(self.run_id, inline)
        self.ledger.keep_final(self.run_id, kept)

    def _spent(self, state: SupervisorState) -> float | None:
        """run --max-cost: the run's measured spending, summed from the cost kept in each final job's outcome
        object (measured once, when the job was first seen final; objects are read once and cached). None
        without a cap."""
        if state.max_cost is None or state.over:
            return None
        total = 0.0
        for stage in state.stages:
            for _, job_id in stage.jobs:
                data = self._object(outcome_key(job_id))
                if isinstance(data, Mapping):
                    total += float(data.get("cost_usd") or 0.0)
        return total

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
        state = self.load(full=False)
        now = self.clock()
        if state.max_cost is not None:  # the jobs seen final below are priced once, into their outcome objects
            self._priced = {m.name: m.compute for stage in state.run.stages for m in stage.modules}
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
            spent=self._spent(state),
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
        until = now + timedelta(seconds=self.lease)
        return _iso(min(until, self.deadline) if self.deadline is not None else until)

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
        state = self.load(full=False)
        if decision.takeover:
            state = self._change(
                lambda s: core.take_over(s, decision.stage, token=self.token, now=_iso(now), until=self._until(now))
            )
            if state.stage_state(decision.stage).claim != self.token:
                return
            # The claim is the stage's write-ahead record: every piece was fixed before any SubmitJob, so the last
            # claimant may have submitted any of them without living to record it. Adopt what AWS holds by name.
            found = self.aws.find([p.name for p in decision.pieces], self._queues(state, decision.stage))
            for piece in decision.pieces:
                if found.get(piece.name):
                    job_id = found[piece.name][0]
                    state = self._record(state, decision.stage, piece, job_id, adopted=True)
                    log.info(
                        "run %s: adopted %s (%s), submitted by an earlier supervisor", self.run_id, piece.name, job_id
                    )
            # What the lookup did not list may still be on its way into ListJobs: looked up again once submitted.
            unseen = [p.name for p in decision.pieces if not found.get(p.name)]
            state = self._change(
                lambda s: core.checked(core.doubted(s, decision.stage, unseen), decision.stage, token=self.token)
            )
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
            job_id = self._send(decision.stage, piece, request)
            self.submitted.append(piece.name)
            state = self._record(state, decision.stage, piece, job_id)
            if state.over:
                # The run ended (cancelled, over budget elsewhere) while this stage was being submitted.
                self.aws.stop([job_id], f"Confluence run {self.run_id} is over: {state.reason}")
        self._reconcile(decision.stage)

    def _send(self, stage_name: str, piece: Piece, request: dict[str, Any]) -> str:
        """SubmitJob once; a lost reply (the job may exist) is resolved by the one lookup by name before the
        piece is sent again, as ``run`` does (apply/submit.py), and the name is noted for the reconciliation."""
        for attempt in range(1, LOST_REPLY_ATTEMPTS + 1):
            try:
                return self.aws.submit(request)
            except AmbiguousFailure as e:
                self._change(lambda s: core.doubted(s, stage_name, [piece.name]))
                found = self.aws.find([piece.name], [str(request["jobQueue"])]).get(piece.name)
                if found:
                    log.warning("%s: %s; AWS holds it as %s", piece.name, e.detail, found[0])
                    return found[0]
                if attempt == LOST_REPLY_ATTEMPTS:
                    raise
                log.warning("%s: %s; not listed by name, submitting it again", piece.name, e.detail)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _queues(self, state: SupervisorState, stage_name: str) -> list[str]:
        """Where the stage's jobs may be: its modules' queues and those its retry rounds chose (On-Demand)."""
        pieces = state.stage_state(stage_name).pieces
        modules = [m.job_queue for m in state.run.stage(stage_name).modules]
        return list(dict.fromkeys([*modules, *(p.queue for p in pieces if p.queue)]))

    def _write_rows(self, state: SupervisorState, stage_names: Sequence[str]) -> None:
        """The submission CSV's rows of a stage's recorded jobs that it lacks, in one write. The document records
        each job id as SubmitJob returns it (the write-ahead that makes a job never submitted twice); the CSV,
        which ``status`` and a person read, follows once per stage, whoever submitted (a killed supervisor's
        successor writes the rows it left): in a shared ledger the CSV is one object, rewritten whole for each
        write, so a row per job would make recording quadratic in the stage's jobs."""
        stages = [state.stage_state(name) for name in stage_names]
        if not any(stage.jobs for stage in stages):
            return
        have = {r.job_id for r in self.ledger.jobs(self.run_id)}
        rows = []
        for stage in stages:
            named = {p.name: p for p in stage.pieces}
            sizes = dict(stage.sizes)
            for name, job_id in stage.jobs:
                if job_id in have or name not in named:
                    continue
                piece = named[name]
                spec = state.run.module(stage.stage, piece.module)
                sub = core.submission(spec, piece, state.run, sizes.get(piece.module, 0))
                rows.append(Row.for_submission(sub, job_id, self.run_id, "supervised"))
        if rows:
            with self.ledger.recorder(self.run_id) as recorder:
                recorder.extend(rows)

    def _reconcile(self, stage_name: str) -> None:
        """Once a stage is submitted: its rows into the submission CSV; then stop any job AWS holds under a
        doubtful name besides the recorded one (a lookup made right after a lost reply may not have listed the
        job yet, so it was sent again)."""
        state = self.load(full=False)
        stage = state.stage_state(stage_name)
        if stage.status in (document.SUBMITTED, document.DONE):
            self._write_rows(state, [stage_name])
        if not stage.doubt or stage.status not in (document.SUBMITTED, document.DONE):
            return
        jobs = stage.job_ids
        found = self.aws.find(list(stage.doubt), self._queues(state, stage_name))
        extra = sorted(i for name, ids in found.items() for i in ids if name in jobs and i != jobs[name])
        if extra:
            log.warning("run %s: stopping %d duplicate jobs: %s", self.run_id, len(extra), ", ".join(extra))
            self.aws.stop(
                extra, f"Confluence run {self.run_id}: duplicate of a recorded job (a SubmitJob reply was lost)"
            )
            self._note("duplicates-stopped", f"{stage_name}: " + ", ".join(extra))

    def _record(
        self, state: SupervisorState, stage_name: str, piece: Piece, job_id: str, *, adopted: bool = False
    ) -> SupervisorState:
        # The submission CSV's row follows once the stage is submitted (_write_rows), for every job at once.
        until = self._until(self.clock())
        return self._change(lambda s: core.record_job(s, stage_name, piece.name, job_id, token=self.token, until=until))

    def _retry(self, decision: Decision, now: datetime) -> None:
        """A retry round, written ahead like a claim; the next step submits its pieces (lookup before resubmit)."""
        until = self._until(now)
        state = self._change(lambda s: core.retry(s, decision, token=self.token, now=_iso(now), until=until))
        if state.stage_state(decision.stage).claim == self.token:
            log.info("run %s: stage %s sends again %s", self.run_id, decision.stage, decision.reason)
            self._note("stage-retry", f"{decision.stage}: {len(decision.pieces)} jobs, {decision.reason}")

    def _finish(self, decision: Decision, now: datetime) -> None:
        self._reconcile(decision.stage)
        self._change(lambda s: core.finish(s, decision, now=_iso(now)))
        failed = sum(len(v) for _, v in decision.failed)
        log.info("run %s: stage %s done (%d children failed)", self.run_id, decision.stage, failed)
        self._note("stage-done", f"{decision.stage}: {failed} children failed")

    def _end(self, decision: Decision, now: datetime) -> None:
        if decision.stage:
            self._reconcile(decision.stage)
        if decision.cancel:
            self.aws.stop(decision.cancel, f"Confluence run {self.run_id} stopped: {decision.reason}")
        state = self._change(lambda s: core.end(s, decision, now=_iso(now)))
        log.info("run %s ended %s: %s", self.run_id, state.state, state.reason)
        self._note(f"supervisor-{state.state}", state.reason)

    def _notify(self, decision: Decision, now: datetime) -> None:
        state = self.load()
        # rows of a stage the run ended in the middle of (cancelled while it was being submitted)
        self._write_rows(state, [s.stage for s in state.stages])
        self._keep_outcomes(state)
        if self.on_end is not None:
            self.on_end(state)
        self._change(core.notified)

    def _note(self, kind: str, detail: str) -> None:
        self.ledger.note(self.run_id, RunEvent(at=now_iso(), kind=kind, detail=detail, by=self.by))


def run_of_job(ledger: Ledger, job_name: str) -> str | None:
    """The supervised run a job of this name belongs to, from the name and the ledger alone (no tag): the first
    candidate run id (:func:`names.run_id_candidates`) whose document names a stage the rest of the name starts
    with."""
    for run_id in names.run_id_candidates(job_name):
        data = ledger.read(run_id, names.SUPERVISOR_DOCUMENT)
        if not isinstance(data, Mapping):
            continue
        rest = job_name[len(run_id) + 1 :]
        if any(rest.startswith(f"{stage.get('stage')}_") for stage in data.get("stages", [])):
            return run_id
    return None


def supervised_runs(ledger: Ledger) -> list[str]:
    """Every supervised run of the ledger that is not over and reported: what the sweep advances."""
    found = []
    for run_id in ledger.store.list_dirs():
        data = ledger.read(run_id, names.SUPERVISOR_DOCUMENT)
        if isinstance(data, Mapping) and not (data.get("state", "running") != "running" and data.get("notified")):
            found.append(run_id)
    return found


def start(ledger: Ledger, state: SupervisorState, *, by: str = "run --supervise") -> None:
    """Record a supervised run's document (create-if-absent: the same run id cannot be supervised twice)."""

    def mutate(data: Any) -> Any:
        if data is not None:
            raise LedgerConflict(f"run {state.run.run_id} is already supervised in {ledger.location}")
        return write_documents(ledger, state.run.run_id, state, {})

    ledger.update(state.run.run_id, names.SUPERVISOR_DOCUMENT, mutate)
    ledger.note(state.run.run_id, RunEvent(at=now_iso(), kind="supervised", detail=state.mode, by=by))


def request_cancel(ledger: Ledger, run_id: str, *, detail: str, by: str) -> SupervisorState | None:
    """Record that a supervised run is to be cancelled (the ``cancelled`` event every supervisor of the run reads
    before it decides anything); None when the run is not supervised, the state unchanged when it is already over.

    ``cancel`` calls this before it stops any job: a supervisor that sees a stopped job fail then also sees why,
    instead of counting the job against the failure budget and ending the run over budget."""
    state = document.read_state(lambda name: ledger.read(run_id, name))
    if state is None:
        return None
    if not state.over:
        ledger.note(run_id, RunEvent(at=now_iso(), kind="cancelled", detail=detail, by=by))
    return state


def supervisor_problems(functions: Client, events: Client, prefix: str) -> list[str]:
    """Why the venue's supervisor function could not take a run handed over (empty: it can): the function and
    the two rules that feed it events (Batch events, hand-overs) must exist and be enabled. Asked before a run is
    recorded, so a hand-over never goes to a bus nobody listens to."""
    function = names.supervisor_function(prefix)
    problems = []
    try:
        call("GetFunction", functions.get_function, FunctionName=function)
    except AwsError as e:
        problems.append(f"the supervisor function {function} is not deployed ({describe_error(e)})")
    for rule in names.supervisor_rules(prefix)[:2]:
        try:
            state = call("DescribeRule", events.describe_rule, Name=rule).get("State")
        except AwsError as e:
            problems.append(f"the EventBridge rule {rule} is not deployed ({describe_error(e)})")
            continue
        if state != "ENABLED":
            problems.append(f"the EventBridge rule {rule} is {str(state).lower()}, not enabled")
    return problems


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
    max_cost: float | None = None,
) -> SupervisorState:
    """Record the run (header, then the supervisor's document) before anything is submitted; ``max_cost``: the
    USD of measured spending after which its supervisor stops it (run --max-cost)."""

    run = RunSpec.from_config(config, run_id)
    header = RunHeader(
        run_id=run_id,
        plan_digest=SUPERVISED_DIGEST,
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
    state = SupervisorState.start(run, mode, ledger.location, max_cost=max_cost)
    start(ledger, state, by=by)
    return state


def recover(ledger: Ledger, run_id: str, load: Callable[[str], Any]) -> SupervisorState | None:
    """The document of a supervised run killed between its header and its document (nothing was submitted: the
    document comes before any SubmitJob), rebuilt from the config file the header names; None when the ledger
    holds no such run. ``load`` reads a config file (the CLI's loader: errors name the file and key).

    The file must still be the one the run started from (its SHA-256 is in the header): a changed file would
    make a different run under the same id."""
    header = ledger.header(run_id)
    if header is None or header.plan_digest != SUPERVISED_DIGEST:
        return None
    existing = document.read_state(lambda name: ledger.read(run_id, name))
    if existing is not None:
        return existing
    try:
        digest = config_sha256(header.config_path)
    except OSError as e:
        raise RecordError(f"run {run_id} was started from {header.config_path}, which cannot be read: {e}") from e
    if digest != header.config_sha256:
        raise RecordError(
            f"run {run_id} was started from {header.config_path}, which has changed since (SHA-256 "
            f"{header.config_sha256[:12]}..., now {digest[:12]}...); nothing of it was submitted: start a new run"
        )
    config = load(header.config_path)
    state = SupervisorState.start(RunSpec.from_config(config, run_id), "local", ledger.location)

    def mutate(data: Any) -> Any:
        return data if data is not None else write_documents(ledger, run_id, state, {})

    ledger.update(run_id, names.SUPERVISOR_DOCUMENT, mutate)
    ledger.note(run_id, RunEvent(at=now_iso(), kind="supervised", detail="local (recovered)", by="supervise"))
    return document.read_state(lambda name: ledger.read(run_id, name))


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


# --------------------------------------------------------------------------------------------------------------
# Redrive


class NotRedrivable(RecordError):
    """A redrive of a run still running, or of one with nothing to retry (exit 2)."""


def redrive_run(supervisor: Supervisor, *, by: str) -> SupervisorState:
    """Re-open an ended supervised run for a new round (:func:`.decisions.redrive`): the failed children of the
    stage it stopped in (or of its first stage with tolerated failures) are named in the document, with when and
    by whom, before anything is submitted; the caller then supervises the run (locally, or hands it over to the
    venue's function), which submits the round and goes on with the later stages."""
    state = supervisor.load()
    refusal = core.redrive_refusal(state)
    if refusal is not None:
        raise NotRedrivable(refusal)
    target = core.redrive_stage(state)
    assert target is not None  # redrive_refusal says so
    # Every job of the stage is final (the run ended); their failed children are read as the decision reads them.
    observed = supervisor._stage_observed(target)
    if not core.failures_by_job(target, observed)[2]:
        raise NotRedrivable(
            f"run {state.run.run_id}: jobs of stage {target.stage} are still being stopped; redrive it once they end"
        )
    number = state.round + 1
    at = now_iso()
    changed = supervisor._change(lambda s: core.redrive(s, observed, at=at, by=by, round_number=number))
    if changed.round != number or changed.redrives[-1].at != at:
        raise NotRedrivable(f"run {state.run.run_id} was redriven by someone else meanwhile; look at it again")
    retried = sum(len(v) for _, v in changed.redrives[-1].retried)
    supervisor._note("redriven", f"round {number}: {target.stage}: {retried} children retried")
    return changed
