"""Typed, validated hyperparameters: one dataclass per optimizer (or env, attack, ...).

A field may carry a check in its metadata; construction through :meth:`Hyperparameters.build`
refuses unknown names (with a did-you-mean) and values out of range, naming the field, the value and
what is allowed. The owner (``optimizer 'ipo-vpg'``) is added by the host, which knows the registered
name (:func:`ipo_robust.host.create`).

This module is the one home of value checks: a check takes a value and returns None when it is
allowed, else what is allowed (``"an integer > 0"``). The plugins' hyperparameter classes and the
training config (:mod:`ipo_robust.config`) use these same functions; :func:`invalid_fields` runs the
checks of any dataclass whose fields carry them.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from collections.abc import Callable, Iterator

from ipo_robust.errors import ConfigError

Check = Callable[[object], str | None]  # returns what is allowed when the value is not


def positive(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return None if ok else "a finite number > 0"


def non_negative(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return None if ok else "a finite number >= 0"


def unit_interval(value) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    return None if ok else "a number in [0, 1]"


def unit_interval_open(value) -> str | None:
    """[0, 1): a decay rate whose bias correction 1 - beta^k must not vanish."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value < 1.0
    return None if ok else "a number in [0, 1)"


def boolean(value) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def integer(value) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"


def non_empty_string(value) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty string"


def table(value) -> str | None:
    return None if isinstance(value, dict) else "a table (e.g. { key = value })"


def hidden_sizes(value) -> str | None:
    ok = isinstance(value, tuple | list) and all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                                                 for h in value)
    return None if ok else "a list of positive ints (hidden layer widths, e.g. [64, 64]; [] for none)"


def non_negative_int(value) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "an integer >= 0"


def non_negative_int_or_none(value) -> str | None:
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
    return None if ok else "an integer >= 0, or None"


def positive_int_or_none(value) -> str | None:
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    return None if ok else "an integer > 0, or None"


def positive_int(value) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "an integer > 0"


def positive_or_none(value) -> str | None:
    return None if value is None else positive(value)


def one_of(*choices) -> Check:
    """Exactly one of ``choices``; a bool matches only a bool (``1`` is not ``true``, nor ``true`` ``1``)."""

    def check(value) -> str | None:
        ok = any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices)
        return None if ok else "one of " + ", ".join(repr(c) for c in choices)

    return check


def hyperparameter(default, check: Check | None = None, doc: str = ""):
    """A dataclass field with a validity check and a docstring (shown by ``--help`` listings).

    ``default``: ``dataclasses.MISSING`` makes the field required; a list, dict or set default is
    copied for every instance.
    """
    metadata = {"check": check, "doc": doc}
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def invalid_fields(instance) -> Iterator[tuple[str, object, str]]:
    """``(field name, value, what is allowed)`` for each field of a dataclass instance whose value its
    check refuses, in field order."""
    for field in dataclasses.fields(instance):
        check = field.metadata.get("check")
        value = getattr(instance, field.name)
        allowed = check(value) if check else None
        if allowed is not None:
            yield field.name, value, allowed


@dataclasses.dataclass
class Hyperparameters:
    """Base class: subclasses are dataclasses whose fields use :func:`hyperparameter`."""

    def __post_init__(self):
        invalid = next(invalid_fields(self), None)
        if invalid is not None:
            name, value, allowed = invalid
            raise ConfigError(f"{name} must be {allowed}, got {value!r}")

    @classmethod
    def build(cls, **values):
        names = [field.name for field in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown hyperparameter {key!r}{hint} Known: {', '.join(names)}.")
        return cls(**values)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
