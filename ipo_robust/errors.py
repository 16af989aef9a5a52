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
        super().__init__(f"unknown {what} {name!r}{did_you_mean(name, self.known)}")

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return self.args[0]


class DisabledPluginError(UnknownNameError):
    """A name only a disabled plugin provides; an :class:`UnknownNameError`, so callers that add context keep it.

    :param disabled_by: how the plugin was switched off, e.g. ``--disable-plugin ppo``.
    """

    def __init__(self, what: str, name: str, plugin: str, disabled_by: str):
        self.what, self.name, self.plugin, self.disabled_by = what, name, plugin, disabled_by
        IpoRobustError.__init__(
            self, f"{what} {name!r} is provided by plugin {plugin!r}, which is disabled ({disabled_by})")


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean 'x'? Known: a, x."`` (or ``". Known: ..."``): the tail of an unknown-name message."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    suggestion = f"; did you mean {close[0]!r}?" if close else "."
    return f"{suggestion} Known: {', '.join(known) if known else '(none)'}."


class ConfigError(IpoRobustError, ValueError):
    """A configuration value or command-line option that is out of range or of the wrong type."""
