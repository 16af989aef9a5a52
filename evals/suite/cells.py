"""The cell store: every finished cell is one JSON file, ``out/cells/<id>.json``, written atomically the
moment the cell finishes, so a killed suite resumes where it stopped. A saved record counts only for
the cell whose key it holds (a changed spec recomputes)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable

from ipo_robust.atomic import atomic_write_text
from ipo_robust.evals.suite.spec import Cell, Suite


def save_cell(path: str | os.PathLike, record: dict) -> None:
    """Write one cell's record atomically (a reader sees the whole file or none)."""
    atomic_write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")  # row columns keep their order


def read_cell(suite: Suite, cell: Cell) -> dict | None:
    """The saved record of a finished cell, or None (missing, unreadable, or for another spec)."""
    path = suite.cell_path(cell)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("key") != cell.key or not isinstance(record.get("rows"), list):
        return None
    return record


def pending_cells(suite: Suite, cells: Iterable[Cell] | None = None) -> list[Cell]:
    """The cells without a saved result."""
    return [cell for cell in (suite.cells() if cells is None else cells) if read_cell(suite, cell) is None]


def json_scalar(value):
    """JSON-safe scalars (numpy and torch scalars to Python; nan/inf as strings JSON can hold)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            value = str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def from_json_scalar(value):
    """The inverse of :func:`json_scalar` for what it wrote as ``{"float": "nan"}``."""
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value

