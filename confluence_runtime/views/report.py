"""The run report, built from the ledger alone (pure): Confluence's two JSON files and one self-contained HTML page."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..names import BARRIER, RETRY, generation, items_of_child
from ..records.ledger import ChildOutcome, JobOutcome, RunRecord, parse_iso
from ..records.record import Row
from ..states import BLOCKED, CANCELLED, FAILED, failure_state

PLAIN = -1
BARRIER_KIND = BARRIER
RETRY_KIND = RETRY
REPORT_FILE, FAILURES_FILE, HTML_FILE = "module_data_report.json", "module_data_failures.json", "report.html"


def module_label(module: str) -> str:
    """Confluence's module names: Map labels with ``_`` as spaces, title-cased."""
    return module.replace("_", " ").title()


@dataclass(frozen=True)
class FailedItem:
    """One child (global index) whose latest attempt failed."""

    stage: str
    module: str
    index: int  # global index; for a plain job its job index
    reason: str
    job_name: str
    job_id: str
    exit_code: int | None = None
    log_stream: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    tail: tuple[str, ...] = ()  # the last lines of its log (added by the report command; bounded per view)
    log_group: str | None = None

    @property
    def state(self) -> str:
        """FAILED (its own failure), BLOCKED (never ran: a dependency failed) or CANCELLED (we stopped it)."""
        return failure_state(self.reason)


@dataclass(frozen=True)
class Span:
    """When a stage or module was submitted, first started and last stopped (AWS's timestamps)."""

    submitted: datetime | None = None
    started: datetime | None = None
    stopped: datetime | None = None

    @property
    def running_time(self) -> timedelta:
        if self.started and self.stopped and self.stopped >= self.started:
            return self.stopped - self.started
        return timedelta(0)


@dataclass(frozen=True)
class ChildAttempt:
    """One attempt of a child that ran more than once: which job ran it and how that attempt ended."""

    job_name: str
    result: str  # SUCCEEDED, a failure's reason, or the job's state while it is not final
    started_at: str | None = None
    stopped_at: str | None = None


@dataclass(frozen=True)
class RetriedChild:
    stage: str
    module: str
    index: int
    attempts: tuple[ChildAttempt, ...]


@dataclass(frozen=True)
class ModuleReport:
    stage: str
    module: str
    jobs: int  # SubmitJob calls of the plan for this module (retries not counted)
    total: int  # children
    succeeded: int
    failed: int  # their own failure
    unfinished: int  # active or never observed
    span: Span
    failures: tuple[FailedItem, ...] = ()  # every child whose latest attempt did not succeed (failed, blocked, ...)
    blocked: int = 0  # never ran: a job they depend on failed
    cancelled: int = 0  # stopped by confluence-submit (cancel, a failed submission, the supervisor)
    retried: int = 0  # children that needed more than one attempt (retry-failed generations or AWS's retries)
    attempt_spans: tuple[Span, ...] = ()  # one per generation (the first submission, each retry-failed round)

    @property
    def label(self) -> str:
        return module_label(self.module)

    @property
    def not_succeeded(self) -> int:
        """Confluence's ``Failed``: their report knows only succeeded and failed, so blocked and cancelled children
        (which did not succeed either and are run again by retry-failed) count there."""
        return self.failed + self.blocked + self.cancelled

    @property
    def percentage_failed(self) -> float:
        return self.not_succeeded / self.total * 100 if self.total else 0.0


@dataclass(frozen=True)
class SlowChild:
    stage: str
    module: str
    index: int
    job_name: str
    seconds: float
    status: str


@dataclass(frozen=True)
class RunReport:
    run_id: str
    record: RunRecord
    modules: tuple[ModuleReport, ...]
    stages: tuple[tuple[str, Span], ...]
    span: Span
    slowest: tuple[SlowChild, ...] = ()
    retried: tuple[RetriedChild, ...] = ()  # children that ran more than once, each attempt in order
    unobserved: tuple[str, ...] = ()  # job names with no outcome in the ledger
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> int:
        return sum(m.failed for m in self.modules)

    @property
    def blocked(self) -> int:
        return sum(m.blocked for m in self.modules)

    @property
    def cancelled(self) -> int:
        return sum(m.cancelled for m in self.modules)

    @property
    def not_succeeded(self) -> int:
        return sum(m.not_succeeded for m in self.modules)

    @property
    def succeeded(self) -> int:
        return sum(m.succeeded for m in self.modules)

    @property
    def total(self) -> int:
        return sum(m.total for m in self.modules)

    @property
    def retried_children(self) -> int:
        return sum(m.retried for m in self.modules)

    @property
    def unfinished(self) -> int:
        return sum(m.unfinished for m in self.modules)

    @property
    def state(self) -> str:
        if self.record.cancelled:
            return "cancelled"
        if self.record.supervised not in (None, "running") and not self.unfinished:
            # A supervised run ends as its supervisor decided: failures within budget still make a success.
            return str(self.record.supervised)
        if self.unfinished:
            return "running" if not self.unobserved else "incomplete"
        return "failed" if self.not_succeeded else "succeeded"

    @property
    def total_time(self) -> timedelta:
        start = self.span.submitted or self.span.started
        if start and self.span.stopped and self.span.stopped >= start:
            return self.span.stopped - start
        return timedelta(0)


# --------------------------------------------------------------------------------------------------------------
# Building


def _coverage(row: Row, outcome: JobOutcome | None) -> list[int]:
    """The global indices a recorded job stands for (``[PLAIN]`` for a plain job)."""
    # A compact retry, or a supervised stage's compact array (its indices lost upstream left out), stands for the
    # indices of its index map, not for a range.
    if outcome is not None and outcome.index_map:
        return list(outcome.index_map)
    if row.array_size >= 2:
        return list(range(row.array_offset, row.array_offset + row.array_size))
    return [PLAIN]


def _reason(status_reason: str, exit_code: int | None) -> str:
    reason = status_reason or "unknown reason"
    return f"{reason} (exit code {exit_code})" if exit_code is not None else reason


def _failed(row: Row, outcome: JobOutcome | None) -> dict[int, FailedItem]:
    """Global index -> failure, for one recorded job as last observed."""
    if outcome is None:
        return {}
    cover = _coverage(row, outcome)

    def item(index: int, child: ChildOutcome | None) -> FailedItem:
        source = child or ChildOutcome(
            index=index,
            status=outcome.status,
            reason=outcome.status_reason,
            exit_code=outcome.exit_code,
            log_stream=outcome.log_stream,
            started_at=outcome.started_at,
            stopped_at=outcome.stopped_at,
        )
        reason = source.reason or outcome.status_reason
        return FailedItem(
            stage=row.stage,
            module=row.algorithm,
            index=row.job_index if index == PLAIN else index,
            reason=_reason(reason, source.exit_code),
            job_name=row.job_name,
            job_id=row.job_id,
            exit_code=source.exit_code,
            log_stream=source.log_stream,
            started_at=source.started_at,
            stopped_at=source.stopped_at,
            log_group=outcome.log_group,
        )

    if cover == [PLAIN]:
        if outcome.status != "FAILED":
            return {}
        child = outcome.failed[0] if outcome.failed else None
        return {PLAIN: item(PLAIN, child)}
    named = {c.index: c for c in outcome.failed}
    counts = outcome.count_map
    if outcome.status == "FAILED" and counts.get("FAILED", 0) >= len(cover) and len(named) < len(cover):
        # Every child failed (typically "Dependent Job failed"): the ledger keeps a sample of reasons, not one
        # entry per child, so the rest share the first reason seen.
        sample = next(iter(named.values()), None)
        return {i: item(i, named.get(i) or sample) for i in cover}
    return {i: item(i, c) for i, c in named.items() if i in set(cover)}


def _span(outcomes: Sequence[JobOutcome]) -> Span:
    def pick(values: list[datetime | None], fn: Callable[..., datetime]) -> datetime | None:
        present = [v for v in values if v is not None]
        return fn(present) if present else None

    return Span(
        submitted=pick([parse_iso(o.created_at) for o in outcomes], min),
        started=pick([parse_iso(o.started_at) for o in outcomes], min),
        stopped=pick([parse_iso(o.stopped_at) for o in outcomes], max),
    )


Key = tuple[str, str, int]


def build_report(
    record: RunRecord, *, run_id: str | None = None, module_order: Sequence[tuple[str, str]] = ()
) -> RunReport:
    """The report of one run from its ledger snapshot: counts, failures (superseded ones dropped), timeline.
    ``module_order`` (stage, module) pairs, e.g. the plan's: modules in that order (else the record's)."""
    header = record.header
    rows = [r for r in record.rows if r.kind != BARRIER_KIND]
    outcomes = record.outcomes
    stage_order = list(header.stages) if header else []
    wanted = {pair: i for i, pair in enumerate(dict.fromkeys(module_order))}
    modules_seen: list[tuple[str, str]] = []
    for row in rows:
        if row.stage not in stage_order:
            stage_order.append(row.stage)
        if (row.stage, row.algorithm) not in modules_seen:
            modules_seen.append((row.stage, row.algorithm))
    stage_index = {stage: i for i, stage in enumerate(stage_order)}
    ordered = sorted(modules_seen, key=lambda m: (stage_index[m[0]], wanted.get(m, len(wanted)), modules_seen.index(m)))

    # Per logical job (stage, module, job index): the children it stands for, the latest failures, the job that
    # covers each index last (later retry generations replace earlier ones).
    total: dict[Key, set[int]] = {}
    bad: dict[Key, dict[int, FailedItem]] = {}
    latest: dict[Key, dict[int, Row]] = {}
    jobs: dict[tuple[str, str], int] = {}
    tries: dict[Key, dict[int, list[ChildAttempt]]] = {}  # every attempt of every child, generation by generation
    aws_retried: dict[Key, set[int]] = {}  # children AWS ran more than once within one job (retry strategy)
    for row in sorted(rows, key=lambda r: generation(r.job_name)):
        key = (row.stage, row.algorithm, row.job_index)
        outcome = outcomes.get(row.job_id)
        cover = _coverage(row, outcome)
        if row.kind != RETRY_KIND:
            total.setdefault(key, set()).update(cover)
            jobs[(row.stage, row.algorithm)] = jobs.get((row.stage, row.algorithm), 0) + 1
        failures = bad.setdefault(key, {})
        for index in cover:
            failures.pop(index, None)
            latest.setdefault(key, {})[index] = row
        now_failed = _failed(row, outcome)
        failures.update(now_failed)
        for index in cover:
            tries.setdefault(key, {}).setdefault(index, []).append(_attempt(row, outcome, now_failed.get(index)))
        if outcome is not None:
            aws_retried.setdefault(key, set()).update(c.index for c in outcome.failed if (c.attempts or 1) > 1)

    modules = []
    for stage, module in ordered:
        keys = sorted(k for k in total if k[:2] == (stage, module))
        # Job by job (num_jobs > 1 repeats indices per job), each in index order.
        items = [f for k in keys for f in sorted(bad.get(k, {}).values(), key=lambda f: f.index)]
        count = sum(len(total[k]) for k in keys)
        succeeded = unfinished = 0
        for k in keys:
            for index in total[k] - set(bad.get(k, {})):
                outcome = outcomes.get(latest[k][index].job_id)
                if outcome is not None and outcome.final:
                    succeeded += 1
                else:
                    unfinished += 1
        module_rows = [r for r in rows if (r.stage, r.algorithm) == (stage, module)]
        module_outcomes = [outcomes[r.job_id] for r in module_rows if r.job_id in outcomes]
        generations = sorted({generation(r.job_name) for r in module_rows})
        attempt_spans = tuple(
            _span([outcomes[r.job_id] for r in module_rows if generation(r.job_name) == g and r.job_id in outcomes])
            for g in generations
        )
        retried = sum(
            1
            for k in keys
            for index in total[k]
            if len(tries.get(k, {}).get(index, ())) > 1 or index in aws_retried.get(k, set())
        )
        modules.append(
            ModuleReport(
                stage=stage,
                module=module,
                jobs=jobs.get((stage, module), 0),
                total=count,
                succeeded=succeeded,
                failed=sum(1 for f in items if f.state == FAILED),
                unfinished=unfinished,
                span=_span(module_outcomes),
                failures=tuple(items),
                blocked=sum(1 for f in items if f.state == BLOCKED),
                cancelled=sum(1 for f in items if f.state == CANCELLED),
                retried=retried,
                attempt_spans=attempt_spans,
            )
        )
    stages = tuple(
        (stage, _span([outcomes[r.job_id] for r in record.rows if r.stage == stage and r.job_id in outcomes]))
        for stage in stage_order
        if any(r.stage == stage for r in record.rows)
    )
    run_span = _span(list(outcomes.values()))
    if header is not None:
        run_span = Span(parse_iso(header.started_at), run_span.started, run_span.stopped)
    return RunReport(
        run_id=run_id or (header.run_id if header else (rows[0].run_id if rows else "")),
        record=record,
        modules=tuple(modules),
        stages=stages,
        span=run_span,
        slowest=_slowest(rows, outcomes),
        retried=tuple(
            RetriedChild(k[0], k[1], k[2] if index == PLAIN else index, tuple(attempts))
            for (stage, module) in ordered
            for k in sorted(k for k in tries if k[:2] == (stage, module))
            for index, attempts in sorted(tries[k].items())
            if len(attempts) > 1
        ),
        unobserved=tuple(r.job_name for r in record.rows if r.job_id not in outcomes),
    )


def _attempt(row: Row, outcome: JobOutcome | None, failure: FailedItem | None) -> ChildAttempt:
    """How ``row``'s job ran one child: its failure, SUCCEEDED once the job is final, or the job's state."""
    if failure is not None:
        return ChildAttempt(row.job_name, failure.reason, failure.started_at, failure.stopped_at)
    if outcome is None:
        return ChildAttempt(row.job_name, "not observed")
    result = "SUCCEEDED" if outcome.final else outcome.status
    return ChildAttempt(row.job_name, result, outcome.started_at, outcome.stopped_at)


REPORT_LOG_TAILS = 20  # failed children whose last log lines the report shows (one GetLogEvents each)


def with_tails(
    report: RunReport, read_tail: Callable[[FailedItem], Sequence[str]], limit: int = REPORT_LOG_TAILS
) -> RunReport:
    """The report with the last log lines of its first ``limit`` own failures that ran (a log stream recorded)."""
    wanted = [f for m in report.modules for f in m.failures if f.state == FAILED and f.log_stream][:limit]
    tails = {(f.job_id, f.index): tuple(read_tail(f)) for f in wanted}
    modules = tuple(
        replace(m, failures=tuple(replace(f, tail=tails.get((f.job_id, f.index), f.tail)) for f in m.failures))
        for m in report.modules
    )
    return replace(report, modules=modules)


def _slowest(rows: Sequence[Row], outcomes: Mapping[str, JobOutcome], limit: int = 10) -> tuple[SlowChild, ...]:
    found: list[SlowChild] = []
    for row in rows:
        outcome = outcomes.get(row.job_id)
        if outcome is None:
            continue
        children = list(outcome.slowest)
        if row.array_size < 2:
            children.append(
                ChildOutcome(
                    index=row.job_index,
                    status=outcome.status,
                    started_at=outcome.started_at,
                    stopped_at=outcome.stopped_at,
                )
            )
        for child in children:
            if child.seconds is not None:
                found.append(
                    SlowChild(row.stage, row.algorithm, child.index, row.job_name, child.seconds, child.status)
                )
    found.sort(key=lambda c: (-c.seconds, c.job_name, c.index))
    return tuple(found[:limit])


# --------------------------------------------------------------------------------------------------------------
# Confluence's JSON


def confluence_report(report: RunReport, temporal_range: str | None = None) -> dict[str, Any]:
    """``module_data_report.json``: key order and value types as Confluence's report module writes them."""
    return {
        "name": report.run_id,
        "temporal_range": temporal_range,
        "modules": [
            {
                "Module": m.label,
                "Total Jobs": m.total,
                "Succeeded": m.succeeded,
                "Failed": m.not_succeeded,
                "Percentage Failed": float(m.percentage_failed),
                "Execution Time": str(m.span.running_time),
            }
            for m in report.modules
        ],
        "total_time": str(report.total_time),
    }


def confluence_failures(
    report: RunReport,
    items: Mapping[str, Sequence[Any]] | None = None,
    packing: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """``module_data_failures.json``: ``{module: [{"Index": i, "Value": item}]}``, only modules with failures.

    ``packing``: module -> (items per child, item count) of packed arrays. Confluence reads this file item by item
    (a reach each), so a failed child of a packed module is listed as every item it stood for."""
    items = items or {}
    packing = packing or {}
    result: dict[str, Any] = {}
    for m in report.modules:
        if not m.failures:
            continue
        values = items.get(m.module) or ()
        indices: list[int] = [f.index for f in m.failures]
        if m.module in packing:
            per_child, count = packing[m.module]
            indices = [i for f in m.failures for i in items_of_child(f.index, per_child, count)]
        result[m.label] = [{"Index": i, "Value": values[i] if 0 <= i < len(values) else i} for i in indices]
    return result


# --------------------------------------------------------------------------------------------------------------
# HTML: one page, no external resource (it is mailed, attached and opened offline)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.state{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.state.succeeded{background:#1a7f37} .state.failed{background:#cf222e} .state.cancelled{background:#6e7781}
.state.running,.state.incomplete{background:#9a6700} .state.over_budget,.state.over_cost{background:#cf222e}
table{border-collapse:collapse;margin:6px 0} th,td{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:left}
th{background:#f6f8fa;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
td.fail{color:#cf222e;font-weight:600} code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;
padding:1px 4px;border-radius:4px}
#modules td.name{overflow-wrap:anywhere} #modules td.n,#modules td.when{white-space:nowrap}
td.stopped{color:#9a6700;font-weight:600} #failures td.fail{min-width:16em} #failures code{word-break:break-all}
#retried code{word-break:break-all}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}
dt{color:#57606a} dd{margin:0} .legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;
vertical-align:middle} .muted{color:#57606a}
"""

_BAR_QUEUED, _BAR_RUN, _BAR_FAIL = "#d0d7de", "#2f81f7", "#cf222e"


def _fmt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _human(value: timedelta) -> str:
    """A duration for people: whole seconds, or milliseconds under a minute (a sandbox run takes seconds)."""
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.3f} s"
    return str(timedelta(seconds=round(seconds)))


def _short(value: datetime | None) -> str:
    return value.strftime("%m-%d %H:%M:%S") if value else "—"


def _bars(label: str, span: Span, y: int, x: Callable[[datetime], float], failed: bool) -> list[str]:
    """One attempt's bars: queued (submitted -> started), then running (started -> stopped)."""
    parts = []
    if span.submitted and (span.started or span.stopped):
        q_end = span.started or span.stopped
        assert q_end is not None
        parts.append(
            f'<rect x="{x(span.submitted):.1f}" y="{y + 3}" width="{max(x(q_end) - x(span.submitted), 1):.1f}" '
            f'height="10" fill="{_BAR_QUEUED}"><title>queued</title></rect>'
        )
    if span.started and span.stopped:
        colour = _BAR_FAIL if failed else _BAR_RUN
        parts.append(
            f'<rect class="{"bar-failed" if failed else "bar-run"}" x="{x(span.started):.1f}" y="{y}" '
            f'width="{max(x(span.stopped) - x(span.started), 2):.1f}" height="16" rx="2" fill="{colour}">'
            f"<title>{html.escape(label.strip())}: {_human(span.running_time)}</title></rect>"
        )
    return parts


def _timeline(report: RunReport, width: int = 760) -> str:
    """An SVG Gantt chart: per stage and module, queued (submitted -> started) and running (started -> stopped)."""
    # label, spans (one per retry generation: a bar never spans the gap between two attempts), is_stage, failed
    rows: list[tuple[str, tuple[Span, ...], bool, bool]] = []
    by_stage: dict[str, list[ModuleReport]] = {}
    for m in report.modules:
        by_stage.setdefault(m.stage, []).append(m)
    for stage, span in report.stages:
        modules = by_stage.get(stage, [])
        own = len(modules) == 1 and modules[0].module == stage
        spans = modules[0].attempt_spans if own and modules[0].attempt_spans else (span,)
        rows.append((stage, spans, True, any(m.not_succeeded for m in modules)))
        if not own:
            rows.extend((f"  {m.module}", m.attempt_spans or (m.span,), False, bool(m.not_succeeded)) for m in modules)
    times = [t for _, spans, _, _ in rows for s in spans for t in (s.submitted, s.started, s.stopped) if t is not None]
    if not times:
        return '<p class="muted">No timestamps recorded yet.</p>'
    start, end = min(times), max(times)
    scale = width / max((end - start).total_seconds(), 0.001)
    label_w, row_h = 200, 20
    height = row_h * len(rows) + 30

    def x(t: datetime) -> float:
        return label_w + (t - start).total_seconds() * scale

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 20}" height="{height}" '
        f'role="img" aria-label="timeline" font-size="12" font-family="system-ui,sans-serif">'
    ]
    for i, (label, spans, is_stage, failed) in enumerate(rows):
        y = i * row_h + 4
        weight = ' font-weight="600"' if is_stage else ""
        parts.append(f'<text x="4" y="{y + 13}"{weight} xml:space="preserve">{html.escape(label)}</text>')
        for span in spans:
            parts.extend(_bars(label, span, y, x, failed))
    axis_y = height - 8
    parts.append(f'<text x="{label_w}" y="{axis_y}" fill="#57606a">{_fmt(start)}</text>')
    parts.append(
        f'<text x="{label_w + width}" y="{axis_y}" text-anchor="end" fill="#57606a">'
        f"+{_human(end - start)} ({_fmt(end)})</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def count_line(report: RunReport) -> str:
    """``N children: a succeeded, b failed, c blocked, d cancelled, e not finished; f needed a retry``."""
    parts = [f"{report.total} children: {report.succeeded} succeeded", f"{report.failed} failed"]
    parts += [f"{n} {word}" for n, word in ((report.blocked, "blocked"), (report.cancelled, "cancelled")) if n]
    parts.append(f"{report.unfinished} not finished")
    retried = f"; {report.retried_children} needed a retry" if report.retried_children else ""
    return ", ".join(parts) + retried


def render_html(
    report: RunReport,
    *,
    logs_command: Callable[[FailedItem], str] | None = None,
    generated_at: datetime | None = None,
    max_failures: int = 200,
) -> str:
    """The report page. ``logs_command(item)`` gives the ``confluence-submit logs ...`` line shown per failure."""
    e = html.escape
    header = report.record.header
    state = report.state
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Confluence run {e(report.run_id)}: {state}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>Confluence run {e(report.run_id)} <span class="state {state}" id="state">{state}</span></h1>',
        f'<p class="muted" id="counts">{count_line(report)}; run time {_human(report.total_time)}. '
        f"Generated {_fmt(generated_at)} from the run ledger.</p>",
    ]
    out.append("<h2>Timeline</h2>")
    out.append(
        '<p class="legend muted"><span style="background:#d0d7de"></span>queued (submitted → first start)'
        '<span style="background:#2f81f7"></span>running (first start → last stop; one bar per retry round)'
        '<span style="background:#cf222e"></span>with children that did not succeed</p>'
    )
    out.append(_timeline(report))

    # Fits 1280 px: names wrap inside their cells, times are one "started → stopped" cell.
    out.append("<h2>Stages and modules</h2>")
    out.append(
        '<table id="modules"><tr><th>stage</th><th>module</th><th>jobs</th><th>children</th><th>succeeded</th>'
        "<th>failed</th><th>blocked</th><th>cancelled</th><th>retried</th><th>not finished</th>"
        "<th>started → stopped (UTC)</th><th>execution time</th></tr>"
    )
    for m in report.modules:

        def number(value: int, css: str = "") -> str:
            return f'<td class="n{css if value else ""}">{value}</td>'

        out.append(
            f'<tr><td class="name">{e(m.stage)}</td><td class="name">{e(m.module)}</td>{number(m.jobs)}'
            f"{number(m.total)}{number(m.succeeded)}{number(m.failed, ' fail')}{number(m.blocked, ' stopped')}"
            f"{number(m.cancelled, ' stopped')}{number(m.retried)}{number(m.unfinished)}"
            f'<td class="when">{_short(m.span.started)} → {_short(m.span.stopped)}</td>'
            f"<td>{_human(m.span.running_time)}</td></tr>"
        )
    out.append("</table>")

    every = [f for m in report.modules for f in m.failures]
    failures = [f for f in every if f.state == FAILED]
    out.append(f"<h2>Failed children ({len(failures)})</h2>")
    if not failures:
        out.append('<p id="no-failures">No child failed.</p>')
    else:
        out.append(
            '<table id="failures"><tr><th>stage</th><th>module</th><th>index</th><th>reason</th>'
            "<th>job</th><th>logs</th></tr>"
        )
        for f in failures[:max_failures]:
            command = logs_command(f) if logs_command else ""
            tail = "".join(f"<br><code>{e(line)}</code>" for line in f.tail)
            out.append(
                f'<tr><td>{e(f.stage)}</td><td>{e(f.module)}</td><td class="n">{f.index}</td>'
                f'<td class="fail">{e(f.reason)}{tail}</td><td><code>{e(f.job_name)}</code></td>'
                f"<td><code>{e(command)}</code></td></tr>"
            )
        out.append("</table>")
        if len(failures) > max_failures:
            out.append(f'<p class="muted">and {len(failures) - max_failures} more: see module_data_failures.json.</p>')
    # Children that never ran, or that were stopped, have no log: counted per module with the reason, not listed.
    for state, title, element, why in (
        (BLOCKED, "Blocked children", "blocked", "never ran: a job they depend on failed"),
        (CANCELLED, "Cancelled children", "cancelled", "stopped by confluence-submit"),
    ):
        stopped = [f for f in every if f.state == state]
        if not stopped:
            continue
        out.append(f"<h2>{title} ({len(stopped)})</h2>")
        out.append(f'<p class="muted">{why}; retry-failed runs them again.</p>')
        out.append(f'<table id="{element}"><tr><th>stage</th><th>module</th><th>children</th><th>reason</th></tr>')
        groups: dict[tuple[str, str, str], int] = {}
        for f in stopped:
            groups[(f.stage, f.module, f.reason)] = groups.get((f.stage, f.module, f.reason), 0) + 1
        for (stage, module, reason), count in groups.items():
            out.append(
                f'<tr><td>{e(stage)}</td><td>{e(module)}</td><td class="n">{count}</td><td>{e(reason)}</td></tr>'
            )
        out.append("</table>")

    out.append(f"<h2>Children that needed a retry ({report.retried_children})</h2>")
    if not report.retried:
        out.append('<p class="muted" id="no-retries">Every child ran once.</p>')
    else:
        out.append(
            '<table id="retried"><tr><th>stage</th><th>module</th><th>index</th><th>attempt</th><th>result</th>'
            "<th>job</th><th>started → stopped</th></tr>"
        )
        for child in report.retried[:max_failures]:
            for number_, attempt in enumerate(child.attempts, 1):
                css = "" if attempt.result == "SUCCEEDED" else ' class="fail"'
                began, ended = parse_iso(attempt.started_at), parse_iso(attempt.stopped_at)
                out.append(
                    f'<tr><td>{e(child.stage)}</td><td>{e(child.module)}</td><td class="n">{child.index}</td>'
                    f'<td class="n">{number_} of {len(child.attempts)}</td><td{css}>{e(attempt.result)}</td>'
                    f'<td><code>{e(attempt.job_name)}</code></td><td class="when">{_short(began)} → '
                    f"{_short(ended)}</td></tr>"
                )
        out.append("</table>")
        if len(report.retried) > max_failures:
            out.append(f'<p class="muted">and {len(report.retried) - max_failures} more children.</p>')

    out.append("<h2>Slowest children</h2>")
    if report.slowest:
        out.append(
            '<table id="slowest"><tr><th>stage</th><th>module</th><th>index</th><th>run time</th><th>state</th>'
            "<th>job</th></tr>"
        )
        for c in report.slowest:
            out.append(
                f'<tr><td>{e(c.stage)}</td><td>{e(c.module)}</td><td class="n">{c.index}</td>'
                f'<td class="n">{timedelta(seconds=round(c.seconds))}</td><td>{e(c.status)}</td>'
                f"<td><code>{e(c.job_name)}</code></td></tr>"
            )
        out.append("</table>")
    else:
        out.append('<p class="muted">No child timings recorded yet.</p>')

    out.append("<h2>Run</h2><dl>")
    facts: list[tuple[str, str]] = [("run id", report.run_id)]
    if header is not None:
        facts += [
            ("started", header.started_at),
            ("config", f"{header.config_path} (sha256 {header.config_sha256[:12]})"),
            ("plan digest", header.plan_digest),
            ("venue / prefix", f"{header.venue or '—'} / {header.prefix}"),
            ("account", header.account or "unknown"),
            ("region", header.region),
            ("endpoint", header.endpoint or "AWS"),
            ("tool version", header.tool_version),
            ("submission file", header.submission_file),
        ]
    for event in report.record.events:
        facts.append((event.kind, f"{event.at} {event.detail}".strip()))
    if report.unobserved:
        facts.append(("not observed", f"{len(report.unobserved)} jobs have no outcome in the ledger yet"))
    out.extend(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)
    out.append("</dl></body></html>")
    return "\n".join(out) + "\n"
