"""What a Batch job does outside Batch: state change events into moto's EventBridge, log lines into moto's
CloudWatch Logs. Runs inside the server process (imports moto).

AWS facts modelled here:
- Events: ``source: aws.batch``, ``detail-type: Batch Job State Change``, ``detail`` shaped like the DescribeJobs
  job, for every state change after submission (none for SUBMITTED), array children included. "Delivery is at
  least once": duplicates and reordering can be injected (``EventSettings``).
- Logs: each attempt that reaches RUNNING writes the stream ``PREFIX/default/TASK_ID`` in the job definition's
  awslogs group (default ``/aws/batch/job``, prefix the job definition name). The lines are handed to moto's
  Logs backend when the next CloudWatch Logs request arrives (``flush_logs``, called by the server before any
  Logs call): a client sees exactly what it would, and a 10,000-child array that nobody reads logs of does not
  pay for 10,000 streams on the job clock.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .injection import Failure
from .states import BatchJob, Clock, Leaf

LOG = logging.getLogger(__name__)
SOURCE = "aws.batch"
DETAIL_TYPE = "Batch Job State Change"
BLOCKED_DETAIL_TYPE = "Batch Job Queue Blocked"
DEFAULT_LOG_GROUP = "/aws/batch/job"
MAX_HOLD_SECONDS = 0.3  # a reorder window never holds an event longer than this

Render = Callable[[BatchJob, Leaf | None], dict[str, Any]]


@dataclass(frozen=True)
class EventSettings:
    """Injected delivery faults: a seeded ``duplicates`` share of events is delivered twice; with
    ``reorder_window`` N > 1, events are released in a seeded random order, N at a time."""

    duplicates: float = 0.0
    reorder_window: int = 1
    seed: int = 0
    enabled: bool = True
    drop: float = 0.0  # seeded share of events never delivered
    # AWS's documented example event carries ``"tags": {"resourceArn": ...}``, not the job's own tags; whether real
    # events carry user tags is not documented. False: events carry no job tags, so a consumer cannot rely on them.
    tags: bool = True

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> EventSettings:
        drop = float(body.get("drop") or 0.0)
        if not 0.0 <= drop <= 1.0:
            raise ValueError(f"drop must be a share between 0 and 1, got {drop}")
        return cls(
            duplicates=float(body.get("duplicates") or 0.0),
            reorder_window=max(1, int(body.get("reorder_window") or 1)),
            seed=int(body.get("seed") or 0),
            enabled=bool(body.get("enabled", True)),
            drop=drop,
            tags=bool(body.get("tags", True)),
        )


def log_location(definition: Any) -> tuple[str, str]:
    """(group, stream prefix) from the job definition's awslogs options, AWS's defaults otherwise."""
    props = definition.container_properties or {}
    config = props.get("logConfiguration") or {}
    options = config.get("options") or {} if config.get("logDriver", "awslogs") == "awslogs" else {}
    return options.get("awslogs-group") or DEFAULT_LOG_GROUP, options.get("awslogs-stream-prefix") or definition.name


def command_of(job: BatchJob) -> list[str]:
    overrides = job.request.get("containerOverrides") or {}
    return list(overrides.get("command") or (job.definition.container_properties or {}).get("command") or [])


class MotoObserver:
    """Collects events and log lines under the engine lock; ``deliver`` hands them to moto afterwards."""

    def __init__(self, clock: Clock, render: Render) -> None:
        self.clock = clock
        self.render = render
        self.settings = EventSettings()
        self.counts = {"events_published": 0, "events_duplicated": 0, "events_dropped": 0, "log_streams": 0}
        self._lock = threading.Lock()
        self._deliver_lock = threading.Lock()
        self._pending: list[tuple[str, str, dict[str, Any]]] = []  # events: (account, region, entry)
        # Log records, rendered into lines only when a Logs request comes (most never are: a global run's
        # millions of attempts would otherwise hold their formatted lines): (leaf, group, stream, epoch ms,
        # attempt, failure, started).
        self._logs: list[tuple[Leaf, str, str, int, int, Failure | None, bool]] = []
        # Whether EventBridge has rules, per (account, region), looked up once per engine step (cleared by
        # ``deliver``) rather than for each of the step's state changes.
        self._rules: dict[tuple[str, str], bool] = {}
        self._held: list[tuple[str, str, dict[str, Any]]] = []
        self._held_since = 0.0
        self._rng = random.Random(0)

    def configure(self, settings: EventSettings) -> None:
        with self._deliver_lock:
            self.settings = settings
            self._rng = random.Random(settings.seed)

    def reset(self) -> None:
        with self._deliver_lock, self._lock:
            self.settings = EventSettings()
            self._rng = random.Random(0)
            self._pending.clear()
            self._logs.clear()
            self._rules.clear()
            self._held.clear()
            self.counts = dict.fromkeys(self.counts, 0)

    # -- called under the engine lock --------------------------------------------------------------------------
    def changed(self, job: BatchJob, leaf: Leaf | None, at: float, detail_type: str = DETAIL_TYPE) -> None:
        if not self.settings.enabled:
            return
        where = (job.account_id, job.region)
        rules = self._rules.get(where)
        if rules is None:
            rules = self._rules[where] = _has_rules(*where)
        if not rules:
            return  # with no rule on the bus nothing could observe the event: skip rendering it
        unit = leaf if job.is_array else None
        detail = self.render(job, unit)
        if not self.settings.tags:
            detail.pop("tags", None)
        resources = [detail["jobArn"]]
        if detail_type == BLOCKED_DETAIL_TYPE:
            resources.append(job.queue_arn)  # AWS's example: the job's ARN, then the queue's
        entry = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": SOURCE,
            "account": job.account_id,
            # moto's convention: epoch seconds here, written as ISO 8601 ("2026-11-26T01:10:49Z") by the target
            "time": self.clock.epoch_ms(at) / 1000,
            "region": job.region,
            "resources": resources,
            "detail": json.loads(json.dumps(detail)),  # a snapshot: the job keeps changing
        }
        with self._lock:
            self._pending.append((job.account_id, job.region, entry))

    def blocked(self, job: BatchJob, leaf: Leaf | None, at: float) -> None:
        """AWS: "Anytime that AWS Batch detects a job in the RUNNABLE state and thus blocking a queue, an event is
        created" -- detail-type "Batch Job Queue Blocked", the detail shaped like the job, with its reason."""
        self.changed(job, leaf, at, BLOCKED_DETAIL_TYPE)

    def attempt_started(self, leaf: Leaf, at: float) -> None:
        job = leaf.job
        group, prefix = log_location(job.definition)
        leaf.log_group = group
        leaf.stream_name = f"{prefix}/default/{leaf.task_id}"
        self._log(leaf, at, None, started=True)

    def attempt_ended(self, leaf: Leaf, at: float, failure: Failure | None, terminated: bool) -> None:
        if terminated:
            return  # the container was killed: it wrote nothing more
        if failure is not None and not failure.log and failure.exit_code is None:
            return  # the host failed (Spot reclaim, timeout): the container wrote no last words
        self._log(leaf, at, failure, started=False)

    def _log(self, leaf: Leaf, at: float, failure: Failure | None, *, started: bool) -> None:
        record = (
            leaf,
            leaf.log_group or DEFAULT_LOG_GROUP,
            leaf.stream_name or "",
            self.clock.epoch_ms(at),
            len(leaf.attempts) + 1,
            failure,
            started,
        )
        with self._lock:
            self._logs.append(record)

    @staticmethod
    def _lines(leaf: Leaf, attempt: int, failure: Failure | None, started: bool) -> list[str]:
        job = leaf.job
        if started:
            return [
                f"batch emulator: job {job.name} ({leaf.job_id}) attempt {attempt} started",
                f"command: {' '.join(command_of(job))}",
            ]
        if failure is None:
            return ["batch emulator: exit code 0"]
        if failure.log:
            return list(failure.log)
        return [f"batch emulator: exit code {failure.exit_code}"]

    # -- called with no engine lock held -----------------------------------------------------------------------
    def deliver(self) -> None:
        self._rules.clear()  # the engine step is over: the next one looks at the rules again
        with self._deliver_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            for account, region, entry in pending:
                self._enqueue_event(account, region, entry)
            self._release_held(force=False)

    def flush_logs(self) -> None:
        with self._deliver_lock:
            with self._lock:
                logs, self._logs = self._logs, []
            for leaf, group, stream, ms, attempt, failure, started in logs:
                try:
                    events = [
                        {"timestamp": ms, "message": line} for line in self._lines(leaf, attempt, failure, started)
                    ]
                    self._write_log(leaf.job.account_id, leaf.job.region, group, stream, events, started)
                except Exception:  # a side effect must never break the server
                    LOG.exception("batch emulator: could not write log stream %s", stream)

    def _write_log(
        self, account: str, region: str, group: str, stream: str, events: list[dict[str, Any]], new_stream: bool
    ) -> None:
        from moto.logs.models import logs_backends

        logs = logs_backends[account][region]
        if group not in logs.groups:
            logs.create_log_group(group, tags={})
        if new_stream:
            logs.ensure_log_stream(group, stream)
            self.counts["log_streams"] += 1
        logs.put_log_events(group, stream, events)

    def _enqueue_event(self, account: str, region: str, entry: dict[str, Any]) -> None:
        if self.settings.drop > 0 and self._rng.random() < self.settings.drop:
            self.counts["events_dropped"] += 1
            return
        copies = 1
        if self.settings.duplicates > 0 and self._rng.random() < self.settings.duplicates:
            copies = 2
            self.counts["events_duplicated"] += 1
        if not self._held:
            self._held_since = time.monotonic()
        self._held.extend((account, region, entry) for _ in range(copies))
        self._release_held(force=False)

    def _release_held(self, *, force: bool) -> None:
        window = self.settings.reorder_window
        while self._held and (
            len(self._held) >= window or force or time.monotonic() - self._held_since > MAX_HOLD_SECONDS
        ):
            batch, self._held = self._held[:window], self._held[window:]
            self._held_since = time.monotonic()
            if window > 1:
                self._rng.shuffle(batch)
            for account, region, entry in batch:
                try:
                    _publish(account, region, entry)
                    self.counts["events_published"] += 1
                except Exception:  # a side effect must never stop the job clock
                    LOG.exception("batch emulator: could not publish an event")


def _has_rules(account: str, region: str) -> bool:
    from moto.events.models import events_backends

    if account not in events_backends or region not in events_backends[account]:
        return False
    bus = events_backends[account][region].event_buses.get("default")
    return bool(bus is not None and bus.rules)


def _publish(account: str, region: str, event: dict[str, Any]) -> None:
    """Match the event against the default bus's rules and send it to their targets.

    Not through moto's ``put_events``: its default input template drops ``account`` and writes ``time`` as a
    number, so an SQS target would not receive what AWS sends. Targets with an InputTransformer still get
    moto's transformation.
    """
    from moto.core.utils import unix_time
    from moto.events.models import events_backends

    bus = events_backends[account][region].event_buses["default"]
    for rule in list(bus.rules.values()):
        if getattr(rule, "state", "ENABLED") != "ENABLED":
            continue
        transform = any("InputTransformer" in target for target in rule.targets)
        message = copy.deepcopy(event)
        if transform:
            message["ingestion-time"] = unix_time()
        rule.send_to_targets(message, transform_input=transform)
