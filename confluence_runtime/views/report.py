"""The run report, built from the ledger alone (pure): Confluence's two JSON files and one self-contained HTML page."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..names import BARRIER, RETRY, generation, items_of_child
from ..records.ledger import ChildOutcome, JobOutcome, RunRecord, parse_iso
from ..records.record import Row

PLAIN = -1
BARRIER_KIND = BARRIER
RETRY_KIND = RETRY
REPORT_FILE, FAILURES_FILE, HTML_FILE = "module_data_report.json", "module_data_failures.json", "report.html"
DEPENDENCY_FAILED = "Dependent Job failed"  # AWS's statusReason for a job whose dependency failed


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
class ModuleReport:
    stage: str
    module: str
    jobs: int  # SubmitJob calls of the plan for this module (retries not counted)
    total: int  # children
    succeeded: int
    failed: int
    unfinished: int  # active or never observed
    span: Span
    failures: tuple[FailedItem, ...] = ()

    @property
    def label(self) -> str:
        return module_label(self.module)

    @property
    def percentage_failed(self) -> float:
        return self.failed / self.total * 100 if self.total else 0.0


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
    unobserved: tuple[str, ...] = ()  # job names with no outcome in the ledger
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> int:
        return sum(m.failed for m in self.modules)

    @property
    def total(self) -> int:
        return sum(m.total for m in self.modules)

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
        return "failed" if self.failed else "succeeded"

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
        failures.update(_failed(row, outcome))

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
        module_outcomes = [
            outcomes[r.job_id] for r in rows if (r.stage, r.algorithm) == (stage, module) and r.job_id in outcomes
        ]
        modules.append(
            ModuleReport(
                stage=stage,
                module=module,
                jobs=jobs.get((stage, module), 0),
                total=count,
                succeeded=succeeded,
                failed=len(items),
                unfinished=unfinished,
                span=_span(module_outcomes),
                failures=tuple(items),
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
        unobserved=tuple(r.job_name for r in record.rows if r.job_id not in outcomes),
    )


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
                "Failed": m.failed,
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
.state.running,.state.incomplete{background:#9a6700} .state.over_budget{background:#cf222e}
table{border-collapse:collapse;margin:6px 0} th,td{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:left}
th{background:#f6f8fa;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
td.fail{color:#cf222e;font-weight:600} code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;
padding:1px 4px;border-radius:4px}
#modules td{white-space:nowrap} #failures td.fail{min-width:16em} #failures code{word-break:break-all}
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


def _timeline(report: RunReport, width: int = 760) -> str:
    """An SVG Gantt chart: per stage and module, queued (submitted -> started) and running (started -> stopped)."""
    rows: list[tuple[str, Span, bool, bool]] = []  # label, span, is_stage, failed
    by_stage: dict[str, list[ModuleReport]] = {}
    for m in report.modules:
        by_stage.setdefault(m.stage, []).append(m)
    for stage, span in report.stages:
        modules = by_stage.get(stage, [])
        rows.append((stage, span, True, any(m.failed for m in modules)))
        if len(modules) > 1 or (modules and modules[0].module != stage):
            rows.extend((f"  {m.module}", m.span, False, bool(m.failed)) for m in modules)
    times = [t for _, s, _, _ in rows for t in (s.submitted, s.started, s.stopped) if t is not None]
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
    for i, (label, span, is_stage, failed) in enumerate(rows):
        y = i * row_h + 4
        weight = ' font-weight="600"' if is_stage else ""
        parts.append(f'<text x="4" y="{y + 13}"{weight} xml:space="preserve">{html.escape(label)}</text>')
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
    axis_y = height - 8
    parts.append(f'<text x="{label_w}" y="{axis_y}" fill="#57606a">{_fmt(start)}</text>')
    parts.append(
        f'<text x="{label_w + width}" y="{axis_y}" text-anchor="end" fill="#57606a">'
        f"+{_human(end - start)} ({_fmt(end)})</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


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
        f'<p class="muted">{report.total} children: {report.total - report.failed - report.unfinished} succeeded, '
        f"{report.failed} failed, {report.unfinished} not finished; run time {_human(report.total_time)}. "
        f"Generated {_fmt(generated_at)} from the run ledger.</p>",
    ]
    out.append("<h2>Timeline</h2>")
    out.append(
        '<p class="legend muted"><span style="background:#d0d7de"></span>queued (submitted → first start)'
        '<span style="background:#2f81f7"></span>running (first start → last stop)'
        '<span style="background:#cf222e"></span>with failures</p>'
    )
    out.append(_timeline(report))

    out.append("<h2>Stages and modules</h2>")
    out.append(
        '<table id="modules"><tr><th>stage</th><th>module</th><th>jobs</th><th>children</th><th>succeeded</th>'
        "<th>failed</th><th>% failed</th><th>not finished</th><th>submitted (UTC)</th><th>started</th><th>stopped</th>"
        "<th>execution time</th></tr>"
    )
    for m in report.modules:
        fail_class = ' class="n fail"' if m.failed else ' class="n"'
        out.append(
            f'<tr><td>{e(m.stage)}</td><td>{e(m.module)}</td><td class="n">{m.jobs}</td>'
            f'<td class="n">{m.total}</td><td class="n">{m.succeeded}</td><td{fail_class}>{m.failed}</td>'
            f'<td class="n">{m.percentage_failed:.2f}</td><td class="n">{m.unfinished}</td>'
            f"<td>{_short(m.span.submitted)}</td><td>{_short(m.span.started)}</td><td>{_short(m.span.stopped)}</td>"
            f"<td>{_human(m.span.running_time)}</td></tr>"
        )
    out.append("</table>")

    # A child's own failure explains; "Dependent Job failed" only follows from one: own failures first.
    failures = sorted(
        (f for m in report.modules for f in m.failures), key=lambda f: f.reason.startswith(DEPENDENCY_FAILED)
    )
    out.append(f"<h2>Failed children ({len(failures)})</h2>")
    if not failures:
        out.append('<p id="no-failures">No child failed.</p>')
    else:
        out.append(
            '<table id="failures"><tr><th>stage</th><th>module</th><th>index</th><th>reason</th>'
            "<th>job</th><th>logs</th></tr>"
        )
        for f in failures[:max_failures]:
            # A child failed by its dependency never ran: it has no log to read.
            dependent = f.reason.startswith(DEPENDENCY_FAILED)
            command = logs_command(f) if logs_command and not dependent else ""
            out.append(
                f'<tr><td>{e(f.stage)}</td><td>{e(f.module)}</td><td class="n">{f.index}</td>'
                f'<td class="fail">{e(f.reason)}</td><td><code>{e(f.job_name)}</code></td>'
                + (f"<td><code>{e(command)}</code></td></tr>" if command else '<td class="muted">never ran</td></tr>')
            )
        out.append("</table>")
        if len(failures) > max_failures:
            out.append(f'<p class="muted">and {len(failures) - max_failures} more: see module_data_failures.json.</p>')

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
