"""Renderables for people: rich tables and workflow diagrams built from plain data. Nothing here prints."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .config import Config
from .plan import Plan, summarize


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
    table = Table(
        title=f"Confluence run {plan.run_id} from {plan.source}",
        caption=f"queue and job definition names start with {short}",
    )
    for column, justify in (
        ("stage", "left"),
        ("module", "left"),
        ("jobs", "right"),
        ("array", "right"),
        ("waits for", "left"),
        ("queue", "left"),
        ("definition", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    by_name = plan.by_name()
    previous_stage = None
    for row in summarize(plan):
        subs = [s for s in plan.submissions if s.stage == row["stage"] and s.module == row["module"]]
        sizes = sorted({s.array_size for s in subs})
        array = "-" if sizes == [0] else (str(sizes[0]) if len(sizes) == 1 else f"{min(sizes)}..{max(sizes)}")
        if any(s.shards > 1 for s in subs):
            array += f" ({subs[0].shards} shards)"
        parents = [by_name[n] for n in row["depends_on"]]
        barriers = sum(1 for p in parents if p.kind == "barrier")
        stages = sorted({p.stage for p in parents if p.kind != "barrier"})
        counts = {st: sum(1 for p in parents if p.stage == st and p.kind != "barrier") for st in stages}
        waits = [st if n == 1 else f"{st} ({n} jobs)" for st, n in counts.items()]
        if barriers:
            waits.append(f"{barriers} barrier{'s' if barriers > 1 else ''}")
        text = ", ".join(waits) + (" per index" if row["dependency_type"] == "N_TO_N" else "")
        table.add_row(
            row["stage"] if row["stage"] != previous_stage else "",
            Text(row["module"], style="dim" if row["kind"] == "barrier" else ""),
            str(row["jobs"]) + (f" ({row['submissions']} calls)" if row["submissions"] != row["jobs"] else ""),
            array,
            text or "-",
            row["job_queue"].removeprefix(short) if row["stage"] != previous_stage else "",
            row["job_definition"].removeprefix(short),
        )
        previous_stage = row["stage"]
    minutes, seconds = divmod(plan.minimum_submit_seconds, 60)
    totals = Text(
        f"{plan.submit_calls} SubmitJob calls ({len(plan.barriers)} barriers), {plan.children} containers; "
        f"at least {int(minutes)} min {seconds:.1f} s at AWS's 50 SubmitJob/s. Plan digest {plan.digest}."
    )
    return Group(table, totals)
