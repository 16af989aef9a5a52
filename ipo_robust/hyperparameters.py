"""Typed, validated hyperparameters: one dataclass per optimizer (or env, attack, ...).

A field may carry a check in its metadata; construction through :meth:`Hyperparameters.build`
refuses unknown names (with a did-you-mean) and values out of range, naming the owner, the field,
the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable

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


def boolean(value) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def hidden_sizes(value) -> str | None:
    ok = isinstance(value, tuple | list) and all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                                                 for h in value)
    return None if ok else "a tuple of positive ints (hidden layer widths; () for none)"


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
    def check(value) -> str | None:
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def hyperparameter(default, check: Check | None = None, doc: str = ""):
    """A dataclass field with a validity check and a docstring (shown by ``--help`` listings)."""
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


@dataclasses.dataclass
class Hyperparameters:
    """Base class: subclasses are dataclasses whose fields use :func:`hyperparameter`."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check = field.metadata.get("check")
            value = getattr(self, field.name)
            allowed = check(value) if check else None
            if allowed is not None:
                raise ConfigError(f"{self.owner()}: {field.name} must be {allowed}, got {value!r}")

    @classmethod
    def owner(cls) -> str:
        return getattr(cls, "OWNER", cls.__name__)

    @classmethod
    def build(cls, **values):
        names = [field.name for field in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{cls.owner()}: unknown hyperparameter {key!r}{hint} Known: {', '.join(names)}."
                )
        return cls(**values)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
