"""Subcommands of the ``ipo-robust`` command line, one module each (registered in ``ipo_robust.cli``)."""
