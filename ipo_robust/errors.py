"""Errors that speak to the user.

Anything raised as an :class:`IpoRobustError` is a problem with what the user asked for (a bad name,
a bad value, a missing file). The command line prints its message as one line and exits 2; the
Python API lets it propagate.
"""

from __future__ import annotations

import difflib


class IpoRobustError(Exception):
    """Base class of user-facing errors: the message says what was wrong, the value, and the fix."""


class UnknownNameError(IpoRobustError, LookupError):
    """A name (of a plugin object, a game, a key) that is not known."""

    def __init__(self, what: str, name: str, known: list[str] | tuple[str, ...]):
        self.what, self.name, self.known = what, name, sorted(known)
        message = f"unknown {what} {name!r}"
        close = difflib.get_close_matches(str(name), self.known, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
        else:
            message += "."
        message += f" Known: {', '.join(self.known) if self.known else '(none)'}."
        super().__init__(message)

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return self.args[0]


class ConfigError(IpoRobustError, ValueError):
    """A configuration value or command-line option that is out of range or of the wrong type."""
