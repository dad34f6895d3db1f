"""``confluence-submit resources`` at a terminal's width: names and figures are never cut short (an 80-column
terminal gets each resource on two lines instead of a table with ellipses), and a budget partly used up is said as
such (AWS: NON_REPLENISHABLE units consumed are taken "from both the total and available quantities"), not as a
total someone set."""

from __future__ import annotations

import io

from rich.console import Console

from confluence_runtime.cli.resources import resources_view
from confluence_runtime.views.why import ResourceUse

USES = [
    ResourceUse("hydrocron", "confluence-dev-hydrocron", "REPLENISHABLE", 5, 5, 0, 5, 0),
    ResourceUse("hydrocron_month", "confluence-dev-hydrocron_month", "NON_REPLENISHABLE", 15_000_000, 14_985_020, 0,
                14_985_020, 0),
]  # fmt: skip


def shown(width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    for line in resources_view(USES, console):
        console.print(line, soft_wrap=False)
    return [line.rstrip() for line in console.file.getvalue().splitlines() if line.strip()]  # type: ignore[attr-defined]


def test_at_80_columns_each_resource_is_two_lines_with_every_figure_whole() -> None:
    assert shown(80) == [
        "hydrocron: replenishable",
        "  0 of 5 in use, 0 jobs waiting; the yaml says 5",
        "hydrocron_month: non_replenishable",
        "  0 of 14,985,020 in use, 0 jobs waiting; the yaml says 15,000,000",
        "AWS names: confluence-dev-NAME",
        "hydrocron_month: 14,980 of the yaml's 15,000,000 used up by jobs",
        "(non-replenishable units never come back)",
    ]


def test_at_120_columns_a_table_by_the_names_resources_set_takes() -> None:
    lines = shown(120)
    assert lines[0].split() == ["resource", "type", "in", "use", "total", "available", "jobs", "waiting", "in", "the",
                                "yaml"]  # fmt: skip
    assert lines[2].split() == ["hydrocron", "replenishable", "0", "5", "5", "0", "5"]
    assert lines[3].split() == ["hydrocron_month", "non_replenishable", "0", "14,985,020", "14,985,020", "0",
                                "15,000,000"]  # fmt: skip
    assert not any("…" in line for line in lines)
    assert lines[-1] == (
        "hydrocron_month: 14,980 of the yaml's 15,000,000 used up by jobs (non-replenishable units never come back)"
    )
