"""The supervisor function: advances supervised runs when their Batch jobs finish. No process has to stay alive.

Triggers: the EventBridge rules of stacks/supervisor.py, ``Batch Job State Change`` events of the venue's queues in
a terminal state (SUCCEEDED, FAILED), and the venue's ``Confluence Supervised Run`` events (``run --supervise
cloud`` hands a run over with one: this function submits its first stage; ``cancel`` sends one so a cancelled run
ends at once even when none of its jobs was running). An event is only a reason to look: the handler reads the
run's ledger (S3, compare-and-swap writes), asks AWS about the current stage's unfinished jobs and applies what the
pure core decides (``supervision/decisions.py``). EventBridge delivers at least once and in no promised
order, so a duplicate, late or reordered event finds the document already moved on and changes nothing; a crashed
invocation is retried by EventBridge (then lands in the dead-letter queue, which raises the alarm).

Events of jobs without the ``confluence:supervised`` tag (unsupervised runs, barriers of other tools) and of array
children (AWS sends those too) are ignored.

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
from collections.abc import Mapping
from typing import Any

from confluence_runtime import names
from confluence_runtime.aws.api import AwsOptions, Batch, Client, client
from confluence_runtime.records.ledger import Ledger, open_store
from confluence_runtime.supervision.loop import CLOUD_LEASE, BatchAws, Reporter, Supervisor

LOG = logging.getLogger("supervisor")
LOG.setLevel(logging.INFO)


@functools.cache
def _clients() -> tuple[Batch, Client, Client]:
    """Built on first use (not at import) and reused by warm invocations."""
    options = AwsOptions(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    return Batch(options), client("s3", options), client("sns", options)


def run_of(event: Mapping[str, Any]) -> str | None:
    """The supervised run an event is about, or None when the supervisor has nothing to do with it."""
    detail = event.get("detail") or {}
    if event.get("source") == names.SUPERVISOR_EVENT_SOURCE and event.get("detail-type") == names.SUPERVISOR_EVENT:
        # run --supervise cloud handed the run over (or cancel asked to end it): the rule matched this venue.
        return str(detail["run_id"]) if detail.get("run_id") else None
    if event.get("source") != "aws.batch" or event.get("detail-type") != "Batch Job State Change":
        return None
    tags = detail.get("tags") or {}
    if tags.get(names.TAG_SUPERVISED) != "true" or not tags.get(names.TAG_RUN):
        return None
    if (detail.get("arrayProperties") or {}).get("index") is not None:
        return None  # an array child: its parent's own event follows when the whole array is done
    return str(tags[names.TAG_RUN])


def handle(
    event: Mapping[str, Any], *, ledger: Ledger, batch: Batch, s3: Client, sns: Client, topic: str | None, token: str
) -> dict[str, Any]:
    """Advance the run the event is about; what it did, for the logs and tests."""
    run_id = run_of(event)
    if run_id is None:
        return {"ignored": True}
    if ledger.read(run_id, names.SUPERVISOR_DOCUMENT) is None:
        LOG.warning("run %s is not in %s; ignored", run_id, ledger.location)
        return {"ignored": True, "run_id": run_id}
    supervisor = Supervisor(
        ledger,
        BatchAws(batch, s3),
        run_id,
        token=token,
        lease=CLOUD_LEASE,
        on_end=Reporter(ledger, s3=s3, sns=sns, topic_arn=topic),
        by="supervisor function",
    )
    decision = supervisor.advance()
    state = supervisor.load()
    LOG.info("run %s: %s (%s), submitted %s", run_id, state.state, decision.reason, supervisor.submitted)
    return {"run_id": run_id, "state": state.state, "submitted": supervisor.submitted, "action": decision.action}


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    batch, s3, sns = _clients()
    ledger = Ledger(open_store(os.environ[names.ENV_SUPERVISOR_LEDGER], batch.options))
    token = f"lambda:{getattr(context, 'aws_request_id', 'local')}"
    return handle(
        event, ledger=ledger, batch=batch, s3=s3, sns=sns, topic=os.environ.get(names.ENV_ALERTS_TOPIC), token=token
    )
