"""Built-in attacks on frozen agents (see :mod:`ipo_robust.evals.attacks`)."""

from __future__ import annotations

from ipo_robust.hookspecs import hookimpl


@hookimpl
def register_attacks(register):
    from ipo_robust.evals import attacks

    for name, factory in attacks.ATTACKS.items():
        register(name, factory)
