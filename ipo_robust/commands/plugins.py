"""``ipo-robust plugins [--json]``: every plugin, its distribution and version, what it registers, its status."""

from __future__ import annotations

import json

from ipo_robust import host
from ipo_robust.commands.common import format_table


def add_plugins_command(commands) -> None:
    plugins = commands.add_parser("plugins", help="list installed plugins and what they register")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(run=run_plugins)


def run_plugins(args) -> int:
    records = host.get_host().plugins
    if args.json:
        print(json.dumps([record.as_dict() for record in records], indent=2))
        return 0
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERS", "STATUS")]
    for record in records:
        status = record.status if record.status == "ok" else f"{record.status}: {record.reason}"
        registers = ", ".join(f"{kind}:{name}" for kind, name in record.registers) or "-"
        rows.append((record.name, record.distribution or "-", record.version or "-", registers, status))
    print(format_table(rows))
    return 0
