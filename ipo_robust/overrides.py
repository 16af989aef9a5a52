"""``--set KEY=VALUE`` overrides: the one parser behind every command that takes them.

An item is ``DOTTED.KEY=VALUE``. The key (surrounding spaces dropped) is split at its dots into a path
of table keys; everything after the first ``=`` is the value, read by one rule (:func:`parse_value`),
the rule of the TOML files the items override (``k=v`` means what ``k = v`` means there):

1. a TOML literal: integers (``3``, ``-1``, ``1_000``), floats (``3e-4``, ``inf``, ``nan``), booleans
   (``true``, ``false``), quoted strings (``"a b"``, ``'a b'``), arrays (``[64, 64]``) and inline tables
   (``{ lr = 0.1 }``);
2. else JSON, for what TOML has not: ``null`` is None, and objects may be written ``{"lr": 0.1}``;
3. else the text itself, as a string (``ppo-adversary``, ``runs/x``, ``2024-01-01``: TOML dates and
   times stay strings).

``none`` is the string ``"none"`` (rule 3), as a bare word is in TOML, which has no null: it is how
the project's schemas name "no critic", "no opponent model", "no reference attacker", "no holder".
Write ``null`` where a hyperparameter takes None (``cgd.depth=null``: full CGD). Nothing is evaluated.

:func:`parse_overrides` turns items into nested dicts::

    parse_overrides(["cgd.depth=2", "cgd.rtol=1e-8", "simga.lr1=0.1"])
    # {"cgd": {"depth": 2, "rtol": 1e-08}, "simga": {"lr1": 0.1}}

:func:`apply_overrides` sets items into a copy of an existing tree, where a key segment that meets a
list (an array of tables) is an index (``attacks.0.options.lr``) or the ``label`` or ``name`` of one
entry (``attacks.ppo-adversary.options.lr``). A later item wins over an earlier one. A bad item raises
:class:`~ipo_robust.errors.ConfigError` (or :class:`~ipo_robust.errors.UnknownNameError`): one line
that names the item.
"""

from __future__ import annotations

import copy
import datetime
import json
import tomllib
from collections.abc import Iterable

from ipo_robust.errors import ConfigError, UnknownNameError

DEFAULT_USAGE = "KEY=VALUE with a dotted key (e.g. section.key=1)"
"""What a well-formed item looks like, for the error message of a malformed one."""


def parse_value(raw: str):
    """The value of ``KEY=VALUE`` by the module's one rule: a TOML literal, else JSON, else the string."""
    try:
        document = tomllib.loads(f"value = {raw}")
    except tomllib.TOMLDecodeError:
        pass
    else:  # one key, and not a date or time: anything else (``1\nx = 2``, ``2024-01-01``) stays text
        if set(document) == {"value"} and not isinstance(document["value"], datetime.date | datetime.time):
            return document["value"]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def split_item(item: str, usage: str = DEFAULT_USAGE, min_depth: int = 1,
               max_depth: int | None = None) -> tuple[list[str], object]:
    """``"a.b.c=1"`` -> ``(["a", "b", "c"], 1)``; a key of fewer than ``min_depth`` or more than
    ``max_depth`` segments, an empty segment or a missing ``=`` raises ``--set expects USAGE, got ITEM``."""
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts) or len(parts) < min_depth or (max_depth is not None and len(parts) > max_depth):
        raise ConfigError(f"--set expects {usage}, got {item!r}")
    return parts, parse_value(raw)


def set_override(tree: dict, item: str, usage: str = DEFAULT_USAGE, min_depth: int = 1,
                 max_depth: int | None = None) -> None:
    """Set one item into ``tree`` in place (missing tables are created; lists are entered by index,
    label or name, as the module docstring says)."""
    parts, value = split_item(item, usage, min_depth, max_depth)
    node = tree
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            index = _list_index(node, part, ".".join(parts[:depth + 1]))
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {item!r}: {'.'.join(parts[:depth])} is a value, not a table")


def apply_overrides(tree: dict, items: Iterable[str], usage: str = DEFAULT_USAGE, min_depth: int = 1,
                    max_depth: int | None = None) -> dict:
    """A deep copy of ``tree`` with every item set, in order (``tree`` itself is not changed)."""
    out = copy.deepcopy(tree)
    for item in items:
        set_override(out, item, usage, min_depth, max_depth)
    return out


def parse_overrides(items: Iterable[str], usage: str = DEFAULT_USAGE, min_depth: int = 1,
                    max_depth: int | None = None) -> dict:
    """Items as nested dicts: ``["a.b=1", "a.c=x"]`` -> ``{"a": {"b": 1, "c": "x"}}``."""
    return apply_overrides({}, items, usage, min_depth, max_depth)


def _list_index(entries: list, part: str, where: str) -> int:
    """The entry of a list that ``part`` names: its index, or the one entry whose label or name it is."""
    if part.isdigit():
        if int(part) >= len(entries):
            raise ConfigError(f"--set {where}: there are only {len(entries)} entries")
        return int(part)
    matches = [i for i, entry in enumerate(entries)
               if isinstance(entry, dict) and part in (entry.get("label"), entry.get("name"))]
    if len(matches) != 1:
        known = [str(e.get("label", e.get("name"))) for e in entries if isinstance(e, dict)]
        if matches:
            raise ConfigError(f"--set {where}: {part!r} names {len(matches)} entries; use an index")
        raise UnknownNameError(f"entry of {where.rsplit('.', 1)[0]}", part, known)
    return matches[0]
