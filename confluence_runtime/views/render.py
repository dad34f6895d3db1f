"""Renderables for people: rich tables and workflow diagrams built from plain data. Nothing here prints."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .. import names
from ..config import Config
from ..planning.estimate import QUOTA_ON_DEMAND, QUOTA_SPOT, Capacity, Estimate, StageLoad, run_time
from ..planning.plan import Plan, summarize
from ..records.document import round_lines
from ..safetext import clean_line
from ..shellcmd import FORMAT, Arg, command
from ..states import BLOCKED, CANCELLED, FAILED, NOT_SUCCEEDED, SUCCEEDED, VIEW_STATUSES, WAITING
from .status import FailureGroup, RunStatus
from .why import Waiting

STATUS_HEADERS = {
    "SUBMITTED": "SUB",
    "PENDING": "PEND",
    "RUNNABLE": "RNBL",
    "STARTING": "STRT",
    "RUNNING": "RUN",
    "SUCCEEDED": "OK",
    "FAILED": "FAIL",
    "BLOCKED": "BLKD",
    "CANCELLED": "CNCL",
}
STATUS_STYLES = {"RUNNING": "cyan", "SUCCEEDED": "green", "FAILED": "red", "BLOCKED": "yellow", "CANCELLED": "yellow"}


def _node_id(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def mermaid(config: Config) -> str:
    """The workflow as a Mermaid flowchart: one box per stage holding its modules, arrows in stage order."""
    lines = ["flowchart TD"]
    for stage in config.stages:
        sid = _node_id(stage.name)
        lines.append(f'  subgraph {sid}["{stage.name}"]')
        for module in stage.modules:
            size = f"<br/>array {module.array_size}" if module.is_array else ""
            jobs = f" x{module.num_jobs}" if module.num_jobs > 1 else ""
            lines.append(f'    {sid}__{_node_id(module.name)}["{module.name}{jobs}{size}"]')
        lines.append("  end")
    for previous, stage in zip(config.stages, config.stages[1:], strict=False):
        arrow = "-. per index .->" if stage.dependency == "per_index" else "-->"
        lines.append(f"  {_node_id(previous.name)} {arrow} {_node_id(stage.name)}")
    return "\n".join(lines) + "\n"


def dot(config: Config) -> str:
    """The workflow as Graphviz dot, with one cluster per stage."""
    lines = ["digraph confluence {", "  rankdir=TB;", "  node [shape=box];"]
    for stage in config.stages:
        sid = _node_id(stage.name)
        lines.append(f'  subgraph cluster_{sid} {{ label="{stage.name}";')
        for module in stage.modules:
            size = f"\\narray {module.array_size}" if module.is_array else ""
            lines.append(f'    {sid}__{_node_id(module.name)} [label="{module.name}{size}"];')
        lines.append("  }")
    for previous, stage in zip(config.stages, config.stages[1:], strict=False):
        style = ' [style=dashed, label="per index"]' if stage.dependency == "per_index" else ""
        for tail in previous.modules:
            for head in stage.modules:
                source, target = f"{_node_id(previous.name)}__{_node_id(tail.name)}", _node_id(stage.name)
                lines.append(f"  {source} -> {target}__{_node_id(head.name)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def plan_table(plan: Plan) -> Group:
    """What ``confluence-submit plan`` shows: one row per stage and module, then the totals."""
    short = f"{plan.prefix}-"
    kinds = {s.compute for s in plan.submissions if s.kind != names.BARRIER}
    # Where every module runs on the default, one caption line says so instead of a column of the same word.
    by_module = kinds != {names.DEFAULT_COMPUTE}
    rows = summarize(plan)
    work = [r for r in rows if r["kind"] != names.BARRIER]
    # A column of names that only repeat the stage's or the module's is left out and said once in the caption:
    # the shipped workflow's table then fits 80 columns without folding names.
    queues = any(r["job_queue"].removeprefix(short) != r["stage"] for r in work)
    definitions = any(r["job_definition"].removeprefix(short) != r["module"] for r in work)
    said = [
        f"queues are {short}STAGE" if not queues else "",
        f"job definitions {short}MODULE" if not definitions else "",
    ]
    if queues and definitions:
        caption = f"queue and job definition names start with {short}"
    else:
        caption = "; ".join(x for x in said if x)
        if queues or definitions:
            caption += f"; {'queue' if queues else 'job definition'} names start with {short}"
    if not by_module:
        caption += f"; every module runs on {names.DEFAULT_COMPUTE}"
    # A rule under the header, one space between columns: seven columns of names fit 120 columns (a piped plan).
    table = Table(
        title=f"Confluence run {plan.run_id} from {plan.source}",
        caption=caption,
        box=box.SIMPLE_HEAD,
        padding=0,
        show_edge=False,
    )
    columns = ["stage", "module", "jobs", "array", "waits for"] + (["queue"] if queues else [])
    columns += (["compute"] if by_module else []) + (["definition"] if definitions else [])
    # A module's name is what a person copies (logs --module, retry-failed): never cut, whatever the width. The
    # other names fold onto a second line rather than end in "…"; "waits for" is prose and wraps.
    longest = max((len(s.module) for s in plan.submissions), default=6)
    for column in columns:
        if column == "module":
            table.add_column(column, no_wrap=True, min_width=longest)
        elif column == "waits for":
            table.add_column(column, overflow="fold")
        else:
            justify = "right" if column in ("jobs", "array") else "left"
            table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    by_name = plan.by_name()
    previous_stage = None
    previous_queue: tuple[str, str] | None = None
    for row in rows:
        subs = [s for s in plan.submissions if s.stage == row["stage"] and s.module == row["module"]]
        sizes = sorted({s.array_size for s in subs})
        array = "-" if sizes == [0] else (str(sizes[0]) if len(sizes) == 1 else f"{min(sizes)}..{max(sizes)}")
        if any(s.shards > 1 for s in subs):
            array += f" ({subs[0].shards} shards)"
        parents = [by_name[n] for n in row["depends_on"]]
        barriers = sum(1 for p in parents if p.kind == names.BARRIER)
        stages = sorted({p.stage for p in parents if p.kind != names.BARRIER})
        counts = {st: sum(1 for p in parents if p.stage == st and p.kind != names.BARRIER) for st in stages}
        waits = [st if n == 1 else f"{st} ({n} jobs)" for st, n in counts.items()]
        if barriers:
            waits.append(f"{barriers} barrier{'s' if barriers > 1 else ''}")
        text = ", ".join(waits) + (" per index" if row["dependency_type"] == "N_TO_N" else "")
        table.add_row(
            row["stage"] if row["stage"] != previous_stage else "",
            Text(row["module"], style="dim" if row["kind"] == names.BARRIER else ""),
            str(row["jobs"]) + (f" ({row['submissions']} calls)" if row["submissions"] != row["jobs"] else ""),
            array,
            text or "-",
            # A stage's modules share its queue unless their compute kinds differ: show each queue once.
            *(
                [row["job_queue"].removeprefix(short) if (row["stage"], row["job_queue"]) != previous_queue else ""]
                if queues
                else []
            ),
            *([row["compute"] if row["kind"] != names.BARRIER else ""] if by_module else []),
            *([row["job_definition"].removeprefix(short)] if definitions else []),
        )
        previous_stage = row["stage"]
        previous_queue = (row["stage"], row["job_queue"])
    minutes, seconds = divmod(plan.minimum_submit_seconds, 60)
    totals = Text(
        f"{plan.submit_calls} SubmitJob calls ({len(plan.barriers)} barriers), {plan.children} containers; "
        f"at least {int(minutes)} min {seconds:.1f} s at AWS's 50 SubmitJob/s. Plan digest {plan.digest}."
    )
    return Group(table, totals)


def ranges(indices: tuple[int, ...] | list[int], limit: int = 12) -> str:
    """Indices as a short list (``-`` for a plain job), the rest counted."""
    shown = ", ".join(str(i) if i >= 0 else "-" for i in indices[:limit])
    return shown + (f" ... (+{len(indices) - limit})" if len(indices) > limit else "")


STATE_STYLES = {
    "succeeded": "bold green",
    "failed": "bold red",
    "unknown": "bold red",
    "cancelled": "bold yellow",
    "incomplete": "bold yellow",
    "over_budget": "bold red",
    "over_cost": "bold red",
    "running": "bold cyan",
    "submitting": "bold cyan",
}
WIDE = 110  # from this width on, every AWS state gets its own column


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _bar(counts: dict[str, int], width: int) -> Text:
    """Succeeded green, failed red, blocked and cancelled yellow, the rest grey: a stage with failures never looks
    like a green 100 %."""
    total = max(sum(counts.values()), 1)
    ok = counts.get(SUCCEEDED, 0) * width // total
    failed = counts.get(FAILED, 0) * width // total
    if counts.get(FAILED) and not failed:
        failed = 1  # one failed child of 200,000 still shows
    stopped = (counts.get(BLOCKED, 0) + counts.get(CANCELLED, 0)) * width // total
    if (counts.get(BLOCKED) or counts.get(CANCELLED)) and not stopped:
        stopped = 1
    stopped = min(stopped, width - failed)
    ok = min(ok, width - failed - stopped)
    bar = Text()
    bar.append("━" * ok, style="green")
    bar.append("━" * failed, style="red")
    bar.append("━" * stopped, style="yellow")
    bar.append("━" * (width - ok - failed - stopped), style="grey37")
    return bar


def _percent(counts: dict[str, int]) -> Text:
    total = sum(counts.values())
    done = counts.get(SUCCEEDED, 0) + sum(counts.get(s, 0) for s in NOT_SUCCEEDED)
    percent = 100 * done // max(total, 1)
    if any(counts.get(s) for s in NOT_SUCCEEDED):
        return Text(f"{percent}%", style="red")
    return Text(f"{percent}%", style="green" if total and done == total else "dim")


def status_summary(status: RunStatus, now: datetime) -> list[Text]:
    """The lines that always stay on screen: run and state; elapsed, ETA, updated at; children by state."""
    totals = status.totals()
    total = sum(totals.values())
    done = totals[SUCCEEDED] + sum(totals[s] for s in NOT_SUCCEEDED)
    head = Text(f"run {status.run_id}: ")
    head.append(status.state, style=STATE_STYLES.get(status.state, ""))
    head.append(f" (from {status.source})", style="dim")
    if status.submitting:
        missing = f", {len(status.missing)} jobs still to come" if status.missing else ""
        head.append(f": {status.submitting} is submitting it{missing}")
    timing = Text()
    started = status.started_at
    if started is not None:
        end = now if not status.finished or status.stopped_at is None else status.stopped_at
        elapsed = (end - started).total_seconds()
        timing.append(f"elapsed {_hms(elapsed)} · ")
        if status.state == "running":
            # A straight-line estimate from the completion rate so far (stages run one after another, so it is
            # rough early on; it settles as the run goes).
            eta = _hms((total - done) * elapsed / done) if done and elapsed > 0 else "—"
            timing.append(f"ETA in ~{eta} · ")  # a duration: "ETA ~20:37:34" read as a time of day
    timing.append(f"updated {now.strftime('%H:%M:%S')} UTC", style="dim")
    queued = sum(totals[s] for s in WAITING)
    counts = Text(f"{total} children: ")
    counts.append(f"{totals['SUCCEEDED']} succeeded", style="green" if totals["SUCCEEDED"] else "")
    counts.append(", ")
    counts.append(f"{totals['FAILED']} failed", style="red" if totals["FAILED"] else "")
    # Only when there are any: most runs have neither, and the line must fit 80 columns.
    for state, word in ((BLOCKED, "blocked"), (CANCELLED, "cancelled")):
        if totals[state]:
            counts.append(f", {totals[state]} {word}", style="yellow")
    counts.append(f", {totals['RUNNING']} running, {queued} queued")
    outstanding = sum(len(v) for v in status.outstanding.values())
    if outstanding != sum(totals[s] for s in NOT_SUCCEEDED):
        counts.append(f"; {outstanding} failed and not retried", style="red" if outstanding else "")
    return [head, timing, counts]


def status_view(
    status: RunStatus,
    *,
    now: datetime | None = None,
    width: int = 120,
    height: int | None = None,
    logs_command: Callable[[FailureGroup], str] | None = None,
    hint: Sequence[Arg] = (),
    fold: bool = True,
) -> Group:
    """What ``confluence-submit status`` shows, fitted to ``width`` x ``height`` (80x24 and up): the summary, one
    row per stage (and its modules while it matters), then why jobs failed, each with the ``logs`` command that
    explains it. ``hint`` is appended to the commands printed (the endpoint/region/profile options given).
    ``fold=False`` (output to a file or pipe) keeps every failure and command on one line."""
    now = now or datetime.now(UTC)
    wide = width >= WIDE
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False, pad_edge=False)
    table.add_column("stage / module", no_wrap=True, overflow="fold")
    totals = status.totals()
    # Blocked and cancelled get a column once the run has any (most runs have neither: 80 columns stay enough).
    stopped = [s for s in (BLOCKED, CANCELLED) if totals[s]]
    columns = [s for s in VIEW_STATUSES if s not in (BLOCKED, CANCELLED) or s in stopped]
    if wide:
        table.add_column("jobs", justify="right")
        for column in columns:
            table.add_column(STATUS_HEADERS[column], justify="right")
    else:
        table.add_column("queued", justify="right")
        table.add_column("RUN", justify="right")
        table.add_column("OK", justify="right")
        table.add_column("FAIL", justify="right")
        for column in stopped:
            table.add_column(STATUS_HEADERS[column], justify="right")
    table.add_column("progress", no_wrap=True)
    table.add_column("", justify="right")
    bar_width = 12 if wide else 10

    def cells(counts: dict[str, int], jobs: int) -> list[Text]:
        def cell(value: int, style: str) -> Text:
            return Text(str(value), style=style if value else "dim")

        if wide:
            return [Text(str(jobs)), *(cell(counts.get(c, 0), STATUS_STYLES.get(c, "")) for c in columns)]
        queued = sum(counts[c] for c in WAITING)
        return [
            cell(queued, ""),
            cell(counts["RUNNING"], "cyan"),
            cell(counts["SUCCEEDED"], "green"),
            cell(counts["FAILED"], "red"),
            *(cell(counts.get(c, 0), "yellow") for c in stopped),
        ]

    # Rows, then fewer rows until they fit: modules only where something happens, finished stages merged.
    blocks = _failure_lines(status, logs_command, hint, width if fold else 1_000_000)
    failure_lines = [line for block in blocks for line in block]
    rows = _stage_rows(status, modules="all")
    cut_rows = 0
    if height is not None:
        chrome = 3 + 2 + 1  # summary, table header and rule, and the prompt after them
        budget = max(height - chrome - min(len(failure_lines), max(4, height // 3)), 4)
        if len(rows) > budget:
            rows = _stage_rows(status, modules="busy")
        for merge in (("done",), ("done", "failed")):
            if len(rows) > budget:
                rows = _stage_rows(status, modules="busy", merge=merge)
        if len(rows) > budget:
            kept_rows = max(budget - MORE_LINES, 1)  # the "more rows" lines take the place of the rest
            cut_rows = len(rows) - kept_rows
            rows = rows[:kept_rows]
        room = max(height - chrome - len(rows) - (MORE_LINES if cut_rows else 0), 2)
        if len(failure_lines) > room:
            # Whole blocks only (a failure keeps its logs command), then say how many more there are.
            kept: list[Text] = []
            shown = 0
            for block in blocks:
                if len(kept) + len(block) > room - MORE_LINES:
                    break
                kept += block
                shown += 1
            failure_lines = [
                *kept,
                *_more(f"... {len(blocks) - shown} more failures, all of them:", hint, width, "red"),
            ]
    for label, counts, jobs in rows:
        table.add_row(label, *cells(counts, jobs), _bar(counts, bar_width), _percent(counts))
    more = _more(f"... {cut_rows} more rows, all of them:", hint, width, "dim") if cut_rows else []
    summary = [part for line in status_summary(status, now) for part in (_split(line, width) if fold else [line])]
    return Group(*summary, table, *more, *failure_lines)


def watch_changes(previous: RunStatus, current: RunStatus, now: datetime) -> list[Text]:
    """What a piped watch prints at a poll: one line when the state or the counts changed, and each failure not
    seen before (with its log lines); nothing when nothing changed."""
    lines: list[Text] = []
    before, after = status_summary(previous, now), status_summary(current, now)
    if (previous.state, before[2].plain) != (current.state, after[2].plain):
        line = Text(f"{now.strftime('%H:%M:%S')} {current.state}: ", style=STATE_STYLES.get(current.state, ""))
        lines.append(line + after[2])
    seen = {(f.job_name, f.reason) for f in previous.failures}
    new = [f for f in current.failures if (f.job_name, f.reason) not in seen]
    if new:
        fresh = RunStatus(
            run_id=current.run_id,
            source=current.source,
            stages=current.stages,
            modules=current.modules,
            failures=new,
            outstanding={},
            missing=[],
            duplicates=[],
        )
        lines += [line for block in _failure_lines(fresh, None, "", 1_000_000) for line in block]
    return lines


def _split(line: Text, width: int) -> list[Text]:
    """A styled line cut after its last "; " or ", " that fits, the rest indented (never cut off by the screen)."""
    parts: list[Text] = []
    while len(line) > width:
        cut = max(line.plain.rfind("; ", 0, width), line.plain.rfind(", ", 0, width))
        if cut <= 0:
            break
        head, rest = line.divide([cut + 1])
        parts.append(head)
        line = Text("  ") + Text(rest.plain.lstrip(), spans=[])
        line = _restyle(rest, line)
    parts.append(line)
    return parts


def _restyle(source: Text, target: Text) -> Text:
    """``target`` (indented, stripped ``source``) with ``source``'s spans shifted into place."""
    shift = len(target) - len(source.plain.lstrip()) - (len(source.plain) - len(source.plain.lstrip()))
    for span in source.spans:
        target.stylize(span.style, max(span.start + shift, 0), max(span.end + shift, 0))
    return target


Row = tuple[Text, dict[str, int], int]


def _stage_rows(status: RunStatus, *, modules: str, merge: tuple[str, ...] = ()) -> list[Row]:
    """Stage rows with their module rows: ``modules="all"``, or ``"busy"`` (only modules with children running or
    failed). ``merge`` ("done", "failed") folds runs of consecutive stages that ended that way (every child
    succeeded, or every child failed) into one row named after the first: "datagen +5 done", "moi +3 failed"."""
    rows: list[Row] = []
    merged: list[str] = []
    merged_kind = ""
    merged_counts: dict[str, int] = {}
    merged_jobs = 0

    def flush() -> None:
        nonlocal merged_counts, merged_jobs, merged_kind
        if merged:
            label = merged[0] if len(merged) == 1 else f"{merged[0]} +{len(merged) - 1} {merged_kind}"
            rows.append((Text(label, style="bold"), dict(merged_counts), merged_jobs))
        merged.clear()
        merged_counts, merged_jobs, merged_kind = {}, 0, ""

    def busy(counts: dict[str, int]) -> bool:
        return any(counts.get(s) for s in ("RUNNABLE", "STARTING", "RUNNING", FAILED, BLOCKED, CANCELLED))

    for stage in status.stages:
        totals = status.totals(stage)
        stage_modules = [m for m in status.modules if m.stage == stage]
        jobs = sum(m.jobs for m in stage_modules)
        children = sum(totals.values())
        kind = "done" if children and totals["SUCCEEDED"] == children else ""
        kind = "failed" if children and sum(totals[s] for s in NOT_SUCCEEDED) == children else kind
        if kind and kind in merge:
            if merged_kind != kind:
                flush()
            merged.append(stage)
            merged_kind = kind
            for key, value in totals.items():
                merged_counts[key] = merged_counts.get(key, 0) + value
            merged_jobs += jobs
            continue
        flush()
        rows.append((Text(stage, style="bold"), totals, jobs))
        if len(stage_modules) > 1 or (stage_modules and stage_modules[0].module != stage):
            shown = [m for m in stage_modules if modules == "all" or busy(m.counts)]
            rows.extend((Text(f"  {m.module}"), m.counts, m.jobs) for m in shown)
    flush()
    return rows


MORE_LINES = 3  # what _more takes at 80 columns: its words, and a status command of up to two lines


def _more(said: str, hint: Sequence[Arg], width: int, style: str) -> list[Text]:
    """``said`` on a line of its own, then the command that shows everything (its own lines, so they paste)."""
    return [
        *_fold(said, width, style),
        *_fold(command("status", *hint, FORMAT, "json"), width, style, command=True),
    ]


def _fold(text: str, width: int, style: str, *, command: bool = False) -> list[Text]:
    """Lines of at most ``width``: prose wraps under a two-space indent; a command wraps with a trailing `` \\``
    so that copying its lines into a shell still runs it."""
    if not command:
        # Names (queues, jobs, paths) hold hyphens: never broken there, nor inside a word longer than the line.
        wrapped = textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)
        return [Text(line, style=style) for line in wrapped or [""]]
    words, lines, current = text.split(" "), [], "  "
    for word in words:
        if current.strip() and len(current) + 1 + len(word) > width - 2:
            lines.append(current + " \\")
            current = "    " + word
        else:
            current = f"{current} {word}" if current.strip() else current + word
    lines.append(current)
    return [Text(line, style=style) for line in lines]


# Where a command starts in a line that also holds prose ("fix: ...; for more at once: confluence-submit ...").
COMMAND_START = re.compile(r"(?:^|(?<=\s))(?:confluence-submit|aws) ")


def waiting_view(waits: Sequence[Waiting], width: int, *, fold: bool) -> Text:
    """``Waiting:`` and each wait's lines. At a terminal (``fold``) folded to ``width`` as the failures are: prose
    at words under a two-space indent, a command with `` \\`` continuations, so its lines still paste as one
    command; piped, one line each."""
    lines = [Text("Waiting:", style="yellow")]
    for wait in waits:
        for line in (clean_line(said) for said in wait.lines()):
            found = COMMAND_START.search(line)
            if not fold:
                lines.append(Text(line, style="yellow"))
            elif found is None:
                lines.extend(_fold(line, width, "yellow"))
            else:
                lines.extend(_fold(line[: found.start()].rstrip(), width, "yellow"))
                lines.extend(_fold(line[found.start() :], width, "yellow", command=True))
    return Text("\n").join(lines)


def _failure_lines(
    status: RunStatus, logs_command: Callable[[FailureGroup], str] | None, hint: Sequence[Arg], width: int
) -> list[list[Text]]:
    """Blocks of lines (a failure and the command that explains it stay together), folded to ``width``."""
    blocks: list[list[Text]] = []
    own = [f for f in status.failures if f.state == FAILED]
    blocked = [f for f in status.failures if f.state == BLOCKED]
    cancelled = [f for f in status.failures if f.state == CANCELLED]
    if status.unknown:
        text = (
            f"unknown: {len(status.unknown)} recorded jobs are not known to this endpoint and have no outcome in "
            f"the ledger (e.g. {status.unknown[0]})"
        )
        blocks.append(_fold(text, width, "bold red"))
    if status.from_ledger:
        text = f"from the ledger: {len(status.from_ledger)} jobs AWS no longer describes (as last observed)"
        blocks.append(_fold(text, width, "yellow"))
    for f in own:
        where = f" indices {ranges(f.indices)}" if f.indices else ""
        if f.items_per_child > 1 and f.indices:  # packed: each failed child stands for its items
            spans = [f"{r.start}-{r.stop - 1}" if len(r) > 1 else str(r.start) for r in f.items]
            more = f" ... (+{len(spans) - 12})" if len(spans) > 12 else ""
            where += f" (items {', '.join(spans[:12])}{more})"
        # The reason is anyone's text (TerminateJob's reason, a container's): one clean line.
        block = _fold(f"failed: {f.stage}/{f.module} {f.count} x {clean_line(f.reason)}{where}", width, "red")
        # The last lines of one failed child's log (a container's words: cleaned, one line each, never folded
        # into the command below).
        block += [Text(f"  | {clean_line(line)}"[: max(width, 20)], style="dim") for line in f.tail]
        if logs_command is not None:
            block += _fold(logs_command(f), width, "dim", command=True)
        blocks.append(block)
    # Children that never ran have no log: one line for all of them, no command to paste.
    if blocked:
        count = sum(f.count for f in blocked)
        where = ", ".join(dict.fromkeys(f"{f.stage}/{f.module}" for f in blocked))
        text = (
            f"blocked: {count} children of {len(blocked)} jobs never ran: a job they depend on failed"
            + (" (above)" if own else "")
            + f"; in {where}"
        )
        blocks.append(_fold(text, width, "yellow"))
    if cancelled:
        count = sum(f.count for f in cancelled)
        reasons = ", ".join(dict.fromkeys(clean_line(f.reason) for f in cancelled))
        blocks.append(_fold(f"cancelled: {count} children of {len(cancelled)} jobs: {reasons}", width, "yellow"))
    if status.missing:
        text = f"not submitted: {len(status.missing)} jobs of the plan: {command('resume', *hint)}"
        blocks.append(_fold(text, width, ""))
    supervised = status.supervised
    if supervised is not None and status.reclaims:
        text = f"Spot reclaims: {status.reclaims} (sent again by the supervisor, not failures)"
        blocks.append(_fold(text, width, ""))
    if supervised is not None:
        pending = [s.stage for s in supervised.stages if s.status == "pending"]
        if supervised.over:
            ended = f"supervised ({supervised.mode}): ended {supervised.state.replace('_', ' ')}"
            text = f"{ended}: {clean_line(supervised.reason)}" if supervised.reason else ended
            if pending:
                text += f"; never submitted: {', '.join(pending)}"
            blocks.append(_fold(text, width, "green" if supervised.state == "succeeded" else "red"))
        elif pending:
            # Its supervisor submits each stage when the one before is done; a stopped one is continued by hand.
            text = (
                f"supervised ({supervised.mode}): not submitted yet: {', '.join(pending)}; if its supervisor was "
                f"stopped: {command('supervise', *hint)}"
            )
            blocks.append(_fold(text, width, ""))
        for line in round_lines(supervised):
            blocks.append(_fold(clean_line(line), width, ""))
    for name, ids in status.duplicates:
        blocks.append(_fold(f"duplicate: {name} also submitted as {', '.join(ids)}", width, "yellow"))
    return blocks


def _duration(seconds: float) -> str:
    """``2 h 05 min``, ``3 min 20 s``, ``12.5 s``: launch times and makespans at a glance."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds), 3600)
        return f"{hours} h {rest // 60:02d} min"
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    return f"{seconds:.1f} s"


def scale_view(loads: list[StageLoad], capacity: Capacity) -> Group:
    """Per stage: containers to launch, the least launch time at Fargate's rate, and what bounds concurrency."""
    table = Table(title="Containers and the limits they meet")
    timed = any(load.min_seconds is not None for load in loads)  # only with durations (plan --estimate)
    columns = [("stage", "left"), ("containers", "right"), ("launch at least", "right"), ("vCPUs at once", "right")]
    columns += [("bounded by", "left")] + ([("stage at least", "right")] if timed else [])
    longest = max((len(load.stage) for load in loads), default=5)
    for column, justify in columns:
        if column == "stage":  # a stage's name is what a person types (--stage): never cut, at any width
            table.add_column(column, no_wrap=True, min_width=longest)
        else:
            table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for load in loads:
        cells = [
            load.stage,
            f"{load.containers:,}",
            _duration(load.launch_seconds),
            f"{min(load.vcpus_wanted, load.vcpus_usable):g} of {load.vcpus_wanted:g}",
            f"{load.bound}: {load.at_once:,} containers at once" if load.bound else "-",
        ]
        if timed:
            at_least = "?"
            if load.min_seconds is not None:
                at_least = f"{_duration(load.min_seconds)} ({load.min_bound})" if load.min_bound else "-"
            cells.append(at_least)
        table.add_row(*cells)
    containers = sum(load.containers for load in loads)
    launch = sum(load.launch_seconds for load in loads)
    where = ", ".join(f"{label} {vcpus:g} vCPUs ({why})" for label, vcpus, why in capacity.environments())
    if any(load.ec2_containers for load in loads):
        ec2 = capacity.environment(ec2=True, spot=False)
        where += f"; EC2 {ec2.vcpus:g} vCPUs per environment ({ec2.limit})"
    lines = [
        f"{containers:,} containers; launching them takes at least {_duration(launch)} at Fargate's "
        f"{capacity.launch_rate:g} tasks/s (burst {capacity.launch_burst}) per account and purchase option "
        "(On-Demand and Spot counted apart), stages one after another.",
        f"Compute: {where}.",
    ]
    total = run_time(loads)
    if total.seconds is not None and total.slowest is not None:
        held = ", ".join(f"{bound} in {count} stage{'s' if count > 1 else ''}" for bound, count in total.bounds)
        slowest = total.slowest
        lines.insert(
            0,
            f"Minimum run time: {_duration(total.seconds)} (each stage at least the largest of its launching, its "
            f"vCPU-time over the usable vCPUs and its longest child; bound by {held}). Longest stage: "
            f"{slowest.stage}, {_duration(slowest.min_seconds or 0.0)}: {slowest.min_bound_detail}.",
        )
    if capacity.quota_on_demand is None and capacity.quota_spot is None:
        lines.append(
            "Fargate vCPU quotas not read (plan makes no AWS call; run checks them): a new account has 6 vCPUs "
            f"({QUOTA_ON_DEMAND} On-Demand, {QUOTA_SPOT} Spot)."
        )
    return Group(table, Text("\n".join(lines)))


def estimate_view(estimate: Estimate) -> Group:
    """``plan --estimate``: per module, children x duration x size x price, then the totals. A module without a
    duration is said to be unpriced, never priced at $0.00; with none priced there is no table of question marks,
    only what to set."""
    prices = estimate.prices
    how = (
        "Set expected_duration (seconds per item) on those modules, or pass --durations-from RUN_ID (a finished run "
        "of this workflow)."
    )
    step_functions = (
        f"The same run as a per-item Step Functions Map: {estimate.step_functions_transitions:,} state transitions "
        f"= ${estimate.step_functions:,.2f} on top of one container per item."
    )
    priced = [m for m in estimate.modules if m.on_demand is not None and m.module != names.BARRIER]
    no_ec2_price = [f"{m.stage}.{m.module}" for m in estimate.modules if m.on_demand is None and m.item_seconds]
    if estimate.unknown and not priced:
        containers = sum(m.containers for m in estimate.modules)
        text = (
            f"Cannot price this run: no module has a duration ({len(estimate.unknown)} modules, {containers:,} "
            f"containers). {how.replace('on those modules', 'on the modules')}\n{step_functions}"
        )
        return Group(Text(text))
    table = Table(title=f"Estimated cost in {prices.region} (prices of {prices.date} from {prices.source})")
    for column, justify in (
        ("stage", "left"),
        ("module", "left"),
        ("containers", "right"),
        ("items", "right"),
        ("s per item", "right"),
        ("billed hours", "right"),
        ("On-Demand USD", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for m in estimate.modules:
        unpriced = m.on_demand is None
        table.add_row(
            m.stage,
            Text(m.module, style="dim" if m.module == names.BARRIER else ""),
            f"{m.containers:,}",
            f"{m.items:,}",
            f"{m.item_seconds:g}" if m.item_seconds is not None else Text("no duration", style="yellow"),
            f"{m.billed_hours:,.1f}" if not unpriced else "-",
            f"{m.on_demand:,.2f}"
            if not unpriced
            else Text("no EC2 price" if m.item_seconds else "not priced", style="yellow"),
        )
    partial = "at least " if estimate.unknown else ""
    ec2 = any(names.platform(m.compute) == names.PLATFORM_EC2 for m in estimate.modules)
    lines = [
        f"{'On-Demand (Fargate and EC2)' if ec2 else 'Fargate On-Demand'}: {partial}${estimate.on_demand:,.2f}; "
        f"with {estimate.spot_share:.0%} on Spot (Fargate Spot up to {prices.fargate_spot_discount:.0%} less): "
        f"{partial}${estimate.with_spot:,.2f}. Each Fargate container is billed at least "
        f"{prices.minimum_billed_seconds:g} s, plus {prices.billed_startup_seconds:g} s of start-up.",
        step_functions,
    ]
    if ec2 and not no_ec2_price:
        lines.append(
            f"EC2 modules at ${prices.ec2_vcpu_hour or 0:g} per vCPU-hour of an m6i-like instance (4 GiB per vCPU), "
            "start-up included, no minimum."
        )
    if no_ec2_price:
        lines.append(
            f"Cannot price EC2 modules (no ec2_vcpu_hour in {prices.source} for {prices.region}), so not in the "
            f"totals: {', '.join(no_ec2_price)}."
        )
    no_duration = [key for key in estimate.unknown if key not in no_ec2_price]
    if no_duration:
        lines.append(f"Not priced (no duration), so not in the totals: {', '.join(no_duration)}. {how}")
    return Group(table, Text("\n".join(lines)))
