"""What a run really cost: each attempt of each job and array child as AWS describes it (started, stopped, the
job's vCPUs and memory), priced by ``planning/estimate.measured_cost`` beside the estimate from the same plan.

``collect_attempts`` asks AWS (DescribeJobs of every child, 100 per call); the rest is pure: the attempts from job
descriptions, and the cost section of the report (``cost.json``, the HTML section, the console lines).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ..attempts import classify_attempt
from ..aws.api import Batch
from ..config import Config
from ..names import BARRIER, DEFAULT_COMPUTE
from ..planning.estimate import DEFAULT_MEMORY, DEFAULT_VCPUS, Attempt, MeasuredCost
from ..records.record import Row

COST_FILE = "cost.json"


def job_size(job: Mapping[str, Any]) -> tuple[float, int]:
    """The vCPUs and memory a job ran with (its own resourceRequirements: a retry's larger memory counts)."""
    container = job.get("container") or {}
    found = {r.get("type"): r.get("value") for r in container.get("resourceRequirements") or []}
    vcpus = float(found.get("VCPU") or container.get("vcpus") or DEFAULT_VCPUS)
    memory = int(float(found.get("MEMORY") or container.get("memory") or DEFAULT_MEMORY))
    return vcpus, memory


def attempts_of(job: Mapping[str, Any], stage: str, module: str, compute: str) -> list[Attempt]:
    """The attempts of one plain job or array child that ran (an attempt never started costs nothing)."""
    vcpus, memory = job_size(job)
    found = []
    for attempt in job.get("attempts") or []:
        started, stopped = attempt.get("startedAt"), attempt.get("stoppedAt")
        if not started or not stopped or stopped < started:
            continue
        seconds = (stopped - started) / 1000
        found.append(Attempt(stage, module, vcpus, memory, seconds, compute, classify_attempt(attempt)))
    return found


def collect_attempts(
    batch: Batch, rows: Sequence[Row], jobs: Mapping[str, Mapping[str, Any]], config: Config | None
) -> tuple[list[Attempt], int]:
    """Every attempt of the run's jobs AWS still describes; and how many jobs it no longer does."""
    compute = {(m.stage, m.name): m.compute for m in (config.modules if config else ())}
    first: dict[str, str] = {}
    for (stage, _), kind in compute.items():
        first.setdefault(stage, kind)
    attempts: list[Attempt] = []
    forgotten = 0
    for row in rows:
        job = jobs.get(row.job_id)
        if not job:
            forgotten += 1
            continue
        module: str = BARRIER if row.kind == BARRIER else row.algorithm
        kind = compute.get((row.stage, row.algorithm), first.get(row.stage, DEFAULT_COMPUTE))
        size = int((job.get("arrayProperties") or {}).get("size") or 0)
        if not size:
            attempts += attempts_of(job, row.stage, module, kind)
            continue
        children = batch.describe_jobs(f"{row.job_id}:{i}" for i in range(size))
        forgotten += size - len(children)
        for child in children:
            attempts += attempts_of(child, row.stage, module, kind)
    return attempts, forgotten


def _usd(value: float | None) -> str:
    return f"${value:,.2f}" if value is not None else "?"


def cost_lines(cost: MeasuredCost) -> list[str]:
    """The console's summary: measured, beside the estimate when the config has durations."""
    lines = [
        f"cost: {_usd(cost.with_spot)} measured with {cost.spot_share:.0%} of Spot-capable attempts on Spot "
        f"(On-Demand {_usd(cost.on_demand)}), from AWS's timestamps of {sum(m.attempts for m in cost.modules):,} "
        f"attempts and {cost.prices.source} of {cost.prices.date}"
    ]
    if cost.estimate_with_spot is not None:
        lines.append(f"      estimate before the run (expected_duration): {_usd(cost.estimate_with_spot)}")
    reclaimed = sum(m.reclaimed for m in cost.modules)
    if reclaimed:
        lines.append(f"      {reclaimed:,} attempts ended by a Spot reclaim (retried; counted apart from failures)")
    return lines


def cost_html(cost: MeasuredCost) -> str:
    """The report page's section: per module, measured against the estimate."""
    e = html.escape
    out = [
        "<h2>What it cost</h2>",
        f"<p class=\"muted\">Measured from AWS's started/stopped times of every attempt x the job's vCPUs and memory x "
        f"{e(cost.prices.source)} ({e(cost.prices.region)}, {e(cost.prices.date)}); Fargate bills at least a minute. "
        f"{cost.spot_share:.0%} of Spot-capable attempts counted on Spot, reclaimed attempts always.</p>",
        '<table id="cost"><tr><th>stage</th><th>module</th><th>attempts</th><th>reclaimed</th><th>billed hours</th>'
        "<th>On-Demand USD</th><th>with Spot USD</th><th>estimate USD</th></tr>",
    ]

    def money(value: float | None) -> str:
        return f"{value:,.2f}" if value is not None else "?"

    for m in cost.modules:
        out.append(
            f'<tr><td>{e(m.stage)}</td><td>{e(m.module)}</td><td class="n">{m.attempts}</td>'
            f'<td class="n">{m.reclaimed}</td><td class="n">{m.billed_hours:,.2f}</td>'
            f'<td class="n">{money(m.on_demand)}</td><td class="n">{money(m.with_spot)}</td>'
            f'<td class="n">{money(m.estimate_with_spot)}</td></tr>'
        )
    out.append(
        f'<tr><th colspan="5">run</th><td class="n">{money(cost.on_demand)}</td>'
        f'<td class="n">{money(cost.with_spot)}</td><td class="n">{money(cost.estimate_with_spot)}</td></tr>'
    )
    out.append("</table>")
    return "\n".join(out)


def with_section(page: str, section: str, before: str = "<h2>Run</h2>") -> str:
    """The report page with ``section`` added before its Run facts."""
    return page.replace(before, section + "\n" + before, 1) if before in page else page
