"""Training configs as text: reading a TOML file, ``--set`` overrides, and writing a resolved config back."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path

from ipo_robust.config.sections import TrainConfig
from ipo_robust.errors import ConfigError
from ipo_robust.overrides import apply_overrides as apply_override_items

SET_USAGE = "SECTION.KEY=VALUE (e.g. schedule.alpha1=0.3)"
"""What a well-formed ``--set`` item of a training config looks like."""


def load_toml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text") from None


def apply_overrides(raw: dict, items: Iterable[str]) -> dict:
    """``["schedule.alpha1=0.3", "optimizer.options.lr=0.1"]`` -> a copy of ``raw`` with those keys set.

    Values follow :func:`ipo_robust.overrides.parse_value` (a TOML literal, else JSON, else the text:
    ``none`` stays the string "none", ``null`` is None); nothing is evaluated. A bad item raises one
    line naming it.
    """
    return apply_override_items(raw, items, SET_USAGE, min_depth=2)



# -------------------------------------------------------------------------------------- printing
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def to_toml(config) -> str:
    """A resolved config (dict or :class:`TrainConfig`) as TOML text (tables of scalars, lists and inline
    tables), loadable again."""
    if isinstance(config, TrainConfig):
        config = config.as_dict()
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)
