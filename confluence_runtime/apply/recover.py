"""Recover from a stage (pure): ``run --from-stage STAGE --origin-run-id R [--items-subset FILE]``.

A new run submits STAGE and every later stage with the origin run's resolved array sizes (its items lists as they
were read then, not as they are now), for all of the origin's items or a subset (item values or indices, one per
line or a JSON array). It is refused (exit 2, with the reason) when:

- the origin has no run record (it predates them), or STAGE is not a stage of the yaml;
- the yaml changed a stage before STAGE (its modules as submitted differ from the origin's), or the stages before
  it (names, order);
- a stage before STAGE of the origin did not finish (a job still active, a failure no retry-failed round redid,
  a job never submitted);
- the subset names an item the origin did not have (a value in none of its items lists, an index beyond every
  module's size).

Indices in the subset are the origin's item indices. A module packed N items to a child runs the children those
items fall in; scattered children go as index maps (``CONFLUENCE_INDEX_MAP``, as retry-failed's do), so the module
contract is unchanged. A subset run waits stage by stage (per_index pairing needs equal arrays).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..config import Config
from ..errors import RecordError
from ..planning.plan import Plan, build_plan
from ..records.provenance import Provenance, stage_fingerprint
from ..states import ACTIVE
from ..views.status import RunStatus


@dataclass(frozen=True)
class Recovery:
    """What a recovered run redoes: from which stage of which run, on which items (empty: all of them)."""

    origin_run_id: str
    from_stage: str
    subset: tuple[int, ...] = ()

    def link(self) -> dict[str, Any]:
        """``record_run``'s keywords."""
        return {"origin_run_id": self.origin_run_id, "from_stage": self.from_stage, "subset": self.subset}


def _refuse(message: str, hint: str | None = None) -> RecordError:
    error = RecordError(message)
    error.hint = hint
    return error


def later_config(config: Config, origin: Provenance, from_stage: str) -> Config:
    """``config`` from ``from_stage`` on, sized as the origin was; refused when the yaml changed before it."""
    stages = [s.name for s in config.stages]
    if from_stage not in stages:
        raise _refuse(f"--from-stage {from_stage}: {config.source} has no such stage (stages: {', '.join(stages)})")
    at = stages.index(from_stage)
    # A recovered origin ran only its own stages (the ones before ran in its origin, and were checked then).
    first = (
        stages.index(origin.stages[0])
        if origin.origin_run_id and origin.stages[:1] and origin.stages[0] in stages
        else 0
    )
    if at < first:
        raise _refuse(
            f"--from-stage {from_stage}: run {origin.run_id} started at stage {origin.stages[0]} (recovered from run "
            f"{origin.origin_run_id}); recover from run {origin.origin_run_id} to redo {from_stage}"
        )
    if tuple(origin.stages[: at - first]) != tuple(stages[first:at]):
        raise _refuse(
            f"--from-stage {from_stage}: the stages before it were {', '.join(origin.stages[: at - first]) or 'none'}"
            f" in run {origin.run_id} and are {', '.join(stages[first:at]) or 'none'} in {config.source} now"
        )
    recorded = {m.stage: m.stage_fingerprint for m in origin.modules}
    changed = [s.name for s in config.stages[first:at] if recorded.get(s.name) != stage_fingerprint(s.modules)]
    if changed:
        raise _refuse(
            f"--from-stage {from_stage}: {config.source} changed stage {', '.join(changed)} since run "
            f"{origin.run_id}, whose outputs the new run would read",
            "recover only from a yaml whose earlier stages are as the origin ran them (runs show shows its yaml)",
        )
    sizes = {(m.stage, m.module): m.array_size for m in origin.modules}
    later = []
    for stage in config.stages[at:]:
        modules = tuple(
            replace(m, array_size=sizes[(m.stage, m.name)]) if m.items and (m.stage, m.name) in sizes else m
            for m in stage.modules
        )
        later.append(replace(stage, modules=modules))
    return replace(config, stages=tuple(later))


def parse_subset(text: str, source: str) -> list[str]:
    """Item values or indices: a JSON array, or one per line (blank lines and ``#`` comments skipped)."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            values = json.loads(stripped)
        except ValueError as e:
            raise _refuse(f"{source}: not a JSON array ({e}); expected item values or indices") from e
        if not isinstance(values, list) or any(isinstance(v, (list, dict)) for v in values):
            raise _refuse(f"{source}: expected a JSON array of item values or indices")
        tokens = [str(v) for v in values]
    else:
        tokens = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not tokens:
        raise _refuse(f"{source}: names no item; expected item values or indices, one per line or a JSON array")
    return tokens


def subset_indices(
    tokens: Sequence[str], origin: Provenance, items: Mapping[str, Sequence[Any]], later: Config, source: str
) -> tuple[int, ...]:
    """The origin's item indices the tokens name; refused when one names an item the origin did not have."""
    lists = [[str(v) for v in values] for values in items.values()]
    size = max((m.array_size for m in later.modules if m.is_array), default=0)
    found: list[int] = []
    unknown: list[str] = []
    for token in tokens:
        index = next((values.index(token) for values in lists if token in values), None)
        if index is None and token.isdigit() and int(token) < size:
            index = int(token)
        if index is None:
            unknown.append(token)
        else:
            found.append(index)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        where = f"its items lists ({', '.join(i.url for i in origin.items)})" if origin.items else "its items lists"
        raise _refuse(
            f"{source}: run {origin.run_id} had no item {shown}: not in {where} and not an index below {size}"
        )
    return tuple(sorted(set(found)))


def subset_children(later: Config, subset: Sequence[int]) -> dict[tuple[str, str], list[int]]:
    """Per array module, the global children holding the subset's items (packing applied)."""
    chosen: dict[tuple[str, str], list[int]] = {}
    for module in later.modules:
        if module.is_array:
            kids = sorted({i // module.items_per_child for i in subset if i < module.array_size})
            chosen[(module.stage, module.name)] = kids
    return chosen


def recovery_plan(config: Config, run_id: str, origin: Provenance, recovery: Recovery) -> Plan:
    """The recovered run's plan: ``recovery.from_stage`` on, sized as the origin, on the subset if any."""
    later = later_config(config, origin, recovery.from_stage)
    if not recovery.subset:
        return build_plan(later, run_id, origin_run_id=recovery.origin_run_id)
    children = subset_children(later, recovery.subset)
    empty = [f"{stage}.{module}" for (stage, module), kids in children.items() if not kids]
    # A module none of whose items are in the subset is left out; the stages wait on each other whole.
    stages = []
    for stage in later.stages:
        modules = tuple(m for m in stage.modules if f"{m.stage}.{m.name}" not in empty)
        if modules:
            stages.append(replace(stage, modules=modules, dependency="stage"))
    return build_plan(
        replace(later, stages=tuple(stages)), run_id, children=children, origin_run_id=recovery.origin_run_id
    )


def supervised_config(later: Config, origin_run_id: str) -> Config:
    """``later`` for a supervisor: the origin's sizes fixed (its items lists are not read again when a stage
    starts) and ``{origin_run_id}`` expanded (the supervisor knows only the new run's id)."""

    def fixed(module: Any) -> Any:
        return replace(
            module,
            items=None,
            arguments=tuple(a.replace("{origin_run_id}", origin_run_id) for a in module.arguments),
            environment=tuple((k, v.replace("{origin_run_id}", origin_run_id)) for k, v in module.environment),
        )

    return replace(later, stages=tuple(replace(s, modules=tuple(fixed(m) for m in s.modules)) for s in later.stages))


def unfinished_before(status: RunStatus, stages: Sequence[str], from_stage: str, plan: Plan | None) -> list[str]:
    """Why the origin's stages before ``from_stage`` are not finished (empty: they are); ``plan``: the origin's,
    naming the stage of each job it lacks."""
    earlier = set(stages[: list(stages).index(from_stage)]) if from_stage in stages else set()
    reasons = []
    for module in status.modules:
        if module.stage not in earlier:
            continue
        active = sum(module.counts.get(s, 0) for s in ACTIVE)
        if active:
            reasons.append(f"{module.stage}.{module.module} has {active} children still active")
    for (stage, name, index), failed in sorted(status.outstanding.items()):
        if stage in earlier and failed:
            shown = ", ".join(str(i) for i in sorted(failed)[:5])
            reasons.append(f"{stage}.{name}[{index}] has {len(failed)} failed children ({shown}) no retry redid")
    planned = plan.by_name() if plan is not None else {}
    missing = [name for name in status.missing if name in planned and planned[name].stage in earlier]
    if missing:
        reasons.append(f"{len(missing)} jobs of the earlier stages were never submitted ({', '.join(missing[:3])})")
    return reasons
