"""A module's ``items`` list, once read: its length becomes the module's array size, within the loader's bounds.

The loader checks the list's location (confluence.yaml names it); only reading it says how long it is. An empty
list would run one plain job with nothing to do, and a list over the bound would submit hundreds of shards: both are
a configuration problem, refused (exit 2) with the file, line and key of ``items`` before anything is submitted.
"""

from __future__ import annotations

from .config import MAX_CHILDREN, Config
from .errors import ConfigError, Problem

EXPECTED = f"a JSON array of 1 to {MAX_CHILDREN:,} items"


def check_item_counts(config: Config) -> None:
    """Raise ConfigError naming every ``items`` module whose list (its length now the array size) is empty or
    longer than the bound."""
    problems = []
    for module in config.modules:
        if module.items is None:
            continue
        count = module.array_size
        if 1 <= count <= MAX_CHILDREN:
            continue
        held = "an empty list" if count == 0 else f"{count:,} items"
        problems.append(
            Problem(
                config.source,
                config.line("stages", module.stage, module.name, "items") or module.line,
                f"{module.key}.items",
                f"{module.items} holds {held}; expected {EXPECTED}",
            )
        )
    if problems:
        raise ConfigError(problems)
