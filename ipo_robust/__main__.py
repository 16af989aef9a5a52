from ipo_robust.cli import entry

entry()
