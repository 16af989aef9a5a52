"""The schema of a suite: its constants, the validated specs of victims, attacks and sweeps, the
:class:`Cell` (one unit of work, identified by the hash of its canonical JSON) and the :class:`Suite`
that expands into cells. Reading and validating a spec file is :mod:`.validation`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ipo_robust.errors import IpoRobustError

#: the version of a cell's key; format 2 numbers seats 1 and 2 (format 1 counted them from 0), so a cell saved
#: in format 1 matches no cell of format 2 and is computed again rather than read with the other numbering
CELL_FORMAT = 2
DEFAULT_EXECUTOR = "local"
DEFAULT_GAMES = 100
#: the victim's seats, numbered as configs number agents: seat 1 is agent 1, seat 2 is agent 2 (the attacker
#: plays the other one). The Python attack API takes the 0-based index into ``victim.agents``: seat - 1.
SEATS = (1, 2)

DEFAULT_SWEEP_ENVS = 16


class SuiteError(IpoRobustError):
    """Some cells of a suite raised; the finished ones are saved and a re-run retries the others."""


# ------------------------------------------------------------------------------------------ the spec
@dataclass(frozen=True)
class VictimSpec:
    """A victim: a checkpoint, or a train config whose checkpoint the suite produces first."""

    name: str
    checkpoint: Path | None = None  # absolute; for a train victim, where its checkpoint will be
    train: Path | None = None       # absolute path of the train config (TOML)
    identity: str = ""              # what the victim is: the checkpoint's sha256 or the config's hash


@dataclass(frozen=True)
class AttackSpec:
    name: str
    label: str
    options: dict
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    seats: tuple[int, ...]  # the victim's seats, 1 and/or 2 (:data:`SEATS`)
    games: int


@dataclass(frozen=True)
class RobustnessSpec:
    label: str
    victims: tuple[str, ...]
    parameter: str
    values: tuple
    opponent: str
    num_envs: int
    games: int
    seeds: tuple[int, ...]
    seats: tuple[int, ...]  # the measured seats, 1 and/or 2 (:data:`SEATS`)


@dataclass(frozen=True)
class Cell:
    """One unit of work. ``key`` is its canonical description (what its id hashes)."""

    index: int
    kind: str  # "attack" | "robustness"
    victim: str
    key: dict = field(compare=False)

    @property
    def id(self) -> str:
        return cell_id(self.key)

    def describe(self) -> str:
        key = self.key
        if self.kind == "attack":
            return (f"victim={key['victim']} attack={key['label']} budget={key['budget']} seed={key['seed']} "
                    f"seat={key['seat']}")
        return f"victim={key['victim']} sweep={key['label']} seed={key['seed']} seat={key['seat']}"


def cell_id(key: dict) -> str:
    """A stable id: the first 16 hex digits of the SHA-256 of the key's canonical JSON."""
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()[:16]


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


@dataclass
class Suite:
    """A validated suite spec, ready to expand and run."""

    name: str
    spec_path: Path | None
    out: Path
    executor: str
    executor_options: dict
    victims: tuple[VictimSpec, ...]
    attacks: tuple[AttackSpec, ...]
    robustness: tuple[RobustnessSpec, ...]
    description: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    def victim(self, name: str) -> VictimSpec:
        return next(v for v in self.victims if v.name == name)

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order: attack cells (victim, attack, budget, seed, seat), then sweeps."""
        cells: list[Cell] = []
        for victim in self.victims:
            for attack in self.attacks:
                for budget in attack.budgets:
                    for seed in attack.seeds:
                        for seat in attack.seats:
                            key = {"format": CELL_FORMAT, "kind": "attack", "victim": victim.name,
                                   "victim_identity": victim.identity, "attack": attack.name,
                                   "label": attack.label, "options": attack.options, "budget": budget,
                                   "games": attack.games, "seed": seed, "seat": seat}
                            cells.append(Cell(len(cells), "attack", victim.name, key))
        for sweep in self.robustness:
            for name in sweep.victims:
                victim = self.victim(name)
                for seed in sweep.seeds:
                    for seat in sweep.seats:
                        key = {"format": CELL_FORMAT, "kind": "robustness", "victim": victim.name,
                               "victim_identity": victim.identity, "label": sweep.label,
                               "parameter": sweep.parameter, "values": list(sweep.values),
                               "opponent": sweep.opponent, "num_envs": sweep.num_envs, "games": sweep.games,
                               "seed": seed, "seat": seat}
                        cells.append(Cell(len(cells), "robustness", victim.name, key))
        return cells

    @property
    def cells_dir(self) -> Path:
        return self.out / "cells"

    def cell_path(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.id}.json"

