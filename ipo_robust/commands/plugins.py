"""``ipo-robust plugins [--json]``: every plugin, its distribution and version, what it registers, its status."""

from __future__ import annotations

import json
import shutil
import textwrap

from ipo_robust import host


def add_plugins_command(commands) -> None:
    plugins = commands.add_parser("plugins", help="list installed plugins and what they register")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(run=run_plugins)


def run_plugins(args) -> int:
    records = host.get_host().plugins
    if args.json:
        print(json.dumps([record.as_dict() for record in records], indent=2))
        return 0
    rows = []
    for record in records:
        status = record.status if record.status == "ok" else f"{record.status}: {record.reason}"
        registers = [f"{kind}:{name}" for kind, name in record.registers] or ["-"]
        rows.append((record.name, record.distribution or "-", record.version or "-", registers, status))
    print(_plugins_table(rows, shutil.get_terminal_size(fallback=(100, 24)).columns))
    return 0


def _plugins_table(rows, width: int) -> str:
    """The plugins as a table no wider than ``width`` where it can be: the REGISTERS items wrap onto
    continuation lines indented under their column, never broken (an item longer than the column stands
    alone); a status too long for its column goes on lines of its own below its row, under REGISTERS."""
    header = ("PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERS", "STATUS")
    fixed = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(3)]
    indent = sum(fixed) + 2 * len(fixed)
    natural = max([len(header[3])] + [len(", ".join(row[3])) for row in rows])
    status_width = max([len(header[4])] + [len(row[4]) for row in rows])
    longest_item = max([len(header[3])] + [len(item) for row in rows for item in row[3]])
    if indent + longest_item + 2 + status_width > width:  # long statuses (failures) move below their row
        status_width = max([len(header[4])] + [len(row[4]) for row in rows if len(row[4]) <= len("disabled")])
    registers_width = max(min(natural, width - indent - 2 - status_width), 1)

    def line(cells, registers, status):
        return ("".join(cell.ljust(w + 2) for cell, w in zip(cells, fixed, strict=True))
                + registers.ljust(registers_width + 2) + status).rstrip()

    lines = [line(header[:3], header[3], header[4])]
    for *cells, items, status in rows:
        chunks, current = [], ""
        for i, item in enumerate(items):
            piece = item + ("," if i < len(items) - 1 else "")
            if current and len(current) + 1 + len(piece) > registers_width:
                chunks.append(current)
                current = piece
            else:
                current = f"{current} {piece}" if current else piece
        chunks.append(current)
        below = status if len(status) > status_width else ""
        lines.append(line(cells, chunks[0], "" if below else status))
        lines.extend(line(("",) * 3, chunk, "") for chunk in chunks[1:])
        if below:
            wrapped = textwrap.wrap(below, max(width - indent, 1), break_long_words=False, break_on_hyphens=False)
            lines.extend(" " * indent + part for part in wrapped)
    return "\n".join(lines)
