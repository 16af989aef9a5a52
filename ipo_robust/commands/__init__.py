"""Subcommands of the ``ipo-robust`` command line, one module each (added to the parser by ``ipo_robust.cli``,
which imports them; they never import it: what they share is in ``ipo_robust.commands.common``)."""
