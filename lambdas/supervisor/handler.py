"""The supervisor function: advances supervised runs when their Batch jobs finish. No process has to stay alive.

Triggers (the EventBridge rules of stacks/supervisor.py):

- ``Batch Job State Change`` events of parent jobs of the venue's queues in a terminal state (SUCCEEDED, FAILED).
  Only documented event fields are read: ``detail.jobName`` names the run (``RUN_ID_STAGE_MODULE_J``; a run id
  may hold ``_``, so each candidate is looked up), and the ledger says whether that run is supervised. The job's
  tags are not needed (AWS's documented example event does not carry them);
- the venue's ``Confluence Supervised Run`` events (``run --supervise cloud`` hands a run over with one: this
  function submits its first stage; ``cancel`` sends one so a cancelled run ends at once);
- a ``Scheduled Event`` every few minutes (``names.SWEEP_MINUTES``): the sweep. Every supervised run of the ledger
  that is not over and reported is advanced: its current stage's unfinished jobs are described, a claim whose
  invocation is over is taken over, the next stage is submitted. So an event that was lost, dead-lettered, late,
  or answered "wait" because another invocation held the stage's claim delays a run by one sweep at most.

An event is only a reason to look: the handler reads the run's ledger (S3, compare-and-swap writes), asks AWS
about the current stage's unfinished jobs and applies what the pure core decides (``supervision/decisions.py``).
EventBridge delivers at least once and in no promised order, so a duplicate, late or reordered event finds the
document already moved on and changes nothing.

Every invocation is its own claimant (the request id and a random part: a retried invocation of a crashed one is
a new process, or the same one after an exception, and either way must look AWS up before it submits), and its
claims last until its own deadline (``context.get_remaining_time_in_millis``): a claim never outlives the
invocation that made it, so the next sweep after a crash takes the stage over.

Environment (set by stacks/supervisor.py):
  CONFLUENCE_LEDGER              s3://BUCKET/PREFIX of the venue's run ledger
  CONFLUENCE_ALERTS_TOPIC_ARN    SNS topic for the end-of-run summary
  AWS_ENDPOINT_URL               honoured by boto3 itself (tests point it at a moto server)

Bundled with the runtime package (``confluence_runtime``) and PyYAML by the stack's local bundling.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from confluence_runtime import names
from confluence_runtime.aws.api import AwsOptions, Batch, Client, client
from confluence_runtime.records.ledger import Ledger, open_store
from confluence_runtime.supervision.loop import (
    CLOUD_LEASE,
    BatchAws,
    Reporter,
    Supervisor,
    run_of_job,
    supervised_runs,
)

LOG = logging.getLogger("supervisor")
LOG.setLevel(logging.INFO)


@functools.cache
def _clients() -> tuple[Batch, Client, Client]:
    """Built on first use (not at import) and reused by warm invocations."""
    options = AwsOptions(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    return Batch(options), client("s3", options), client("sns", options)


CLAIM_MARGIN = 2.0  # seconds past the invocation's deadline a claim still holds (clocks of two invocations)


def runs_of(event: Mapping[str, Any], ledger: Ledger) -> list[str] | None:
    """The supervised runs an event asks to look at (the sweep: every one not over and reported), or None when
    the supervisor has nothing to do with the event."""
    detail = event.get("detail") or {}
    source, kind = event.get("source"), event.get("detail-type")
    if source == names.SUPERVISOR_EVENT_SOURCE and kind == names.SUPERVISOR_EVENT:
        # run --supervise cloud handed the run over (or cancel asked to end it): the rule matched this venue.
        return [str(detail["run_id"])] if detail.get("run_id") else None
    if source == names.SCHEDULE_SOURCE and kind == names.SCHEDULED_EVENT:
        return supervised_runs(ledger)
    if source != names.BATCH_EVENT_SOURCE or kind != names.BATCH_EVENT:
        return None
    if (detail.get("arrayProperties") or {}).get("index") is not None:
        return None  # an array child: its parent's own event follows when the whole array is done
    run_id = run_of_job(ledger, str(detail.get("jobName") or ""))
    return [run_id] if run_id is not None else None


def handle(
    event: Mapping[str, Any],
    *,
    ledger: Ledger,
    batch: Batch,
    s3: Client,
    sns: Client,
    topic: str | None,
    token: str,
    lease: float = CLOUD_LEASE,
) -> dict[str, Any]:
    """Advance the runs the event is about; what it did, for the logs and tests."""
    run_ids = runs_of(event, ledger)
    if run_ids is None:
        return {"ignored": True}
    deadline = datetime.now(UTC) + timedelta(seconds=lease)  # when this invocation is over, whatever happens
    done: dict[str, Any] = {"runs": {}, "submitted": []}
    for run_id in run_ids:
        if ledger.read(run_id, names.SUPERVISOR_DOCUMENT) is None:
            LOG.warning("run %s is not in %s; ignored", run_id, ledger.location)
            done["runs"][run_id] = "unknown"
            continue
        supervisor = Supervisor(
            ledger,
            BatchAws(batch, s3),
            run_id,
            token=token,
            lease=lease,
            deadline=deadline,
            on_end=Reporter(ledger, s3=s3, sns=sns, topic_arn=topic),
            by="supervisor function",
        )
        decision = supervisor.advance()
        state = supervisor.load()
        LOG.info("run %s: %s (%s), submitted %s", run_id, state.state, decision.reason, supervisor.submitted)
        done["runs"][run_id] = state.state
        done["submitted"].extend(supervisor.submitted)
        done.update(run_id=run_id, state=state.state, action=decision.action)
    if not done["runs"]:
        return {"ignored": True, "runs": {}}
    return done


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    batch, s3, sns = _clients()
    ledger = Ledger(open_store(os.environ[names.ENV_SUPERVISOR_LEDGER], batch.options))
    token = f"lambda:{getattr(context, 'aws_request_id', 'local')}:{uuid.uuid4().hex[:12]}"
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    lease = remaining() / 1000 + CLAIM_MARGIN if callable(remaining) else CLOUD_LEASE
    return handle(
        event,
        ledger=ledger,
        batch=batch,
        s3=s3,
        sns=sns,
        topic=os.environ.get(names.ENV_ALERTS_TOPIC),
        token=token,
        lease=lease,
    )
