"""Reading a suite spec: :func:`load_suite` reads the TOML, applies ``--set`` overrides
(:mod:`ipo_robust.overrides`) and :func:`suite_from_dict` validates everything before any work; a bad
key, path, name or value raises :class:`~ipo_robust.errors.ConfigError` naming the key.

Beyond the spec's own values, every victim is checked as its cells will use it: a saved victim's checkpoint
is loaded, a victim to train has its run built once (:func:`~ipo_robust.training.setup.check_config`, what
``ipo-robust train`` refuses), and every attack is asked whether it can attack each victim's env
(:meth:`~ipo_robust.evals.attacks.Attack.check_env`, the check its run makes): ``best-response`` on a
MuJoCo victim is refused here, not in a cell."""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path

from ipo_robust import host, make_env
from ipo_robust.checkpoint import load_checkpoint
from ipo_robust.config import load_toml
from ipo_robust.errors import ConfigError, IpoRobustError, UnknownNameError
from ipo_robust.evals import robustness
from ipo_robust.evals.suite.spec import (
    DEFAULT_EXECUTOR,
    DEFAULT_GAMES,
    DEFAULT_SWEEP_ENVS,
    SEATS,
    AttackSpec,
    RobustnessSpec,
    Suite,
    VictimSpec,
    canonical_json,
)
from ipo_robust.overrides import set_override
from ipo_robust.training.setup import check_config

SET_USAGE = "KEY=VALUE with a dotted key (e.g. grid.games=50)"

# the keys a spec file may use, per table
_TOP_KEYS = ("suite", "victims", "attacks", "grid", "robustness")
_SUITE_KEYS = ("name", "description", "executor", "executor_options", "out")
_VICTIM_KEYS = ("name", "checkpoint", "train")
_GRID_KEYS = ("budgets", "seeds", "seats", "games")
_ATTACK_KEYS = ("name", "label", "options", *_GRID_KEYS)
_ROBUSTNESS_KEYS = ("label", "victims", "parameter", "values", "opponent", "num_envs", "games", "seeds", "seats")
_OPPONENTS = ("victim", "random")


def load_suite(path: str | os.PathLike, overrides: Sequence[str] = (), executor: str | None = None) -> Suite:
    """Read, override (``["grid.games=50", ...]``) and validate a suite spec; nothing runs yet.

    :param executor: an executor name that replaces ``suite.executor`` (its options are kept only when
        the spec names the same executor).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read suite spec {str(path)!r}: {error.strerror or error}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"suite spec {str(path)!r} is not valid TOML: {error}") from None
    for item in overrides:
        apply_override(raw, item)
    if executor is not None:
        section = raw.setdefault("suite", {})
        if isinstance(section, dict):
            if section.get("executor", DEFAULT_EXECUTOR) != executor:
                section.pop("executor_options", None)
            section["executor"] = executor
    return suite_from_dict(raw, base=path.resolve().parent, spec_path=path, default_name=path.stem)


def apply_override(raw: dict, item: str) -> None:
    """``"grid.games=50"`` sets ``raw["grid"]["games"] = 50`` in place; in a list of tables a segment is
    an index (``attacks.0.options.lr=0.1``) or an entry's label/name (``attacks.ppo-adversary.options.lr``).
    The value is read by the one rule of :func:`ipo_robust.overrides.parse_value`."""
    set_override(raw, item, SET_USAGE)


def suite_from_dict(raw: dict, base: str | os.PathLike = ".", spec_path: str | os.PathLike | None = None,
                    default_name: str = "suite") -> Suite:
    """Validate a parsed spec. Relative paths are taken from ``base`` (the spec file's folder)."""
    base = Path(base).resolve()
    where = f"suite spec {str(spec_path)!r}: " if spec_path is not None else "suite spec: "

    def fail(message: str):
        raise ConfigError(where + message)

    _check_keys(raw, _TOP_KEYS, "", fail)
    section = _table(raw.get("suite", {}), "suite", fail)
    _check_keys(section, _SUITE_KEYS, "suite.", fail)
    name = _string(section.get("name", default_name), "suite.name", fail)
    description = _string(section.get("description", ""), "suite.description", fail, allow_empty=True)
    executor = _string(section.get("executor", DEFAULT_EXECUTOR), "suite.executor", fail)
    try:
        host.resolve("executor", executor)
    except UnknownNameError as error:
        fail(f"suite.executor: {error}")
    executor_options = _table(section.get("executor_options", {}), "suite.executor_options", fail)
    out = Path(_string(section.get("out", f"results/{name}"), "suite.out", fail))
    out = out if out.is_absolute() else base / out

    grid = _table(raw.get("grid", {}), "grid", fail)
    _check_keys(grid, _GRID_KEYS, "grid.", fail)
    defaults = {
        "budgets": _positive_ints(grid["budgets"], "grid.budgets", fail) if "budgets" in grid else None,
        "seeds": _seeds(grid.get("seeds", [0]), "grid.seeds", fail),
        "seats": _seats(grid.get("seats", list(SEATS)), "grid.seats", fail),
        "games": _positive_int(grid.get("games", DEFAULT_GAMES), "grid.games", fail),
    }

    victims = []
    victim_envs = []  # (key, env name, env options) per victim: the env its cells attack
    for i, entry in enumerate(_tables(raw.get("victims", []), "victims", fail)):
        key = f"victims[{i}]"
        _check_keys(entry, _VICTIM_KEYS, key + ".", fail)
        if "name" not in entry:
            fail(f"{key}.name is missing: every victim needs a name")
        vname = _label(entry["name"], f"{key}.name", fail)
        key = f"victims[{i}] ({vname!r})"
        if any(v.name == vname for v in victims):
            fail(f"{key}.name: two victims are named {vname!r}")
        if ("checkpoint" in entry) == ("train" in entry):
            fail(f"{key}: give exactly one of 'checkpoint' (a saved victim) or 'train' (a train config)")
        if "checkpoint" in entry:
            victim, env_name, env_options = _checkpoint_victim(vname, entry["checkpoint"], base, f"{key}.checkpoint",
                                                               fail)
        else:
            victim, env_name, env_options = _train_victim(vname, entry["train"], base, out, f"{key}.train", fail)
        victims.append(victim)
        victim_envs.append((key, env_name, env_options))

    attacks, checks = [], []  # checks: (key, attack object) per attack, asked about every victim's env below
    for i, entry in enumerate(_tables(raw.get("attacks", []), "attacks", fail)):
        key = f"attacks[{i}]"
        _check_keys(entry, _ATTACK_KEYS, key + ".", fail)
        if "name" not in entry:
            fail(f"{key}.name is missing: name an attack plugin (ipo-robust plugins lists them)")
        aname = _string(entry["name"], f"{key}.name", fail)
        try:
            factory = host.resolve("attack", aname)
        except UnknownNameError as error:
            fail(f"{key}.name: {error}")
        label = _label(entry.get("label", aname), f"{key}.label", fail)
        key = f"attacks[{i}] ({label!r})"
        if any(a.label == label for a in attacks):
            fail(f"{key}: two attacks are labelled {label!r}; give one a distinct 'label'")
        options = _table(entry.get("options", {}), f"{key}.options", fail)
        _check_json(options, f"{key}.options", fail)
        try:
            attack = factory(**options)  # bad options fail here, before any work
        except IpoRobustError as error:
            fail(f"{key}.options: {error}")
        except TypeError as error:
            fail(f"{key}.options: attack {aname!r} does not accept these options ({error})")
        budgets = _field(entry, "budgets", key, _positive_ints, defaults["budgets"], fail)
        if budgets is None:
            fail(f"grid.budgets is missing (needed by {key}): give a list of positive integers")
        attacks.append(AttackSpec(
            name=aname, label=label, options=options, budgets=budgets,
            seeds=_field(entry, "seeds", key, _seeds, defaults["seeds"], fail),
            seats=_field(entry, "seats", key, _seats, defaults["seats"], fail),
            games=_field(entry, "games", key, _positive_int, defaults["games"], fail),
        ))
        checks.append((key, attack))
    _check_attacks_fit_victims(checks, victim_envs, fail)

    sweeps = []
    for i, entry in enumerate(_tables(raw.get("robustness", []), "robustness", fail)):
        key = f"robustness[{i}]"
        _check_keys(entry, _ROBUSTNESS_KEYS, key + ".", fail)
        if "parameter" not in entry:
            fail(f"{key}.parameter is missing: name the parameter to sweep (mass, friction, gear or force)")
        parameter = _string(entry["parameter"], f"{key}.parameter", fail)
        if parameter not in robustness.PARAMETERS:
            fail(f"{key}.parameter: {UnknownNameError('sweep parameter', parameter, list(robustness.PARAMETERS))}")
        label = _label(entry.get("label", parameter), f"{key}.label", fail)
        key = f"robustness[{i}] ({label!r})"
        if any(s.label == label for s in sweeps):
            fail(f"{key}: two sweeps are labelled {label!r}; give one a distinct 'label'")
        if "values" in entry:
            values = entry["values"]
            if not isinstance(values, list) or not values:
                fail(f"{key}.values must be a non-empty list of numbers, got {_show(values)}")
            for j, value in enumerate(values):
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    fail(f"{key}.values[{j}] must be a finite number, got {_show(value)}")
                low, high = (0.0, 1.0) if parameter == "force" else (0.0, math.inf)
                if not low <= value <= high:
                    fail(f"{key}.values[{j}] must be in [{low:g}, {high:g}] for a {parameter} sweep, got {value!r}")
        else:
            values = [float(v) for v in robustness.default_values(parameter)]
        opponent = _string(entry.get("opponent", "victim"), f"{key}.opponent", fail)
        if opponent not in _OPPONENTS:
            fail(f"{key}.opponent must be 'victim' (the pair's other agent) or 'random', got {opponent!r}")
        names = entry.get("victims", [v.name for v in victims])
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            fail(f"{key}.victims must be a non-empty list of victim names, got {_show(names)}")
        for n in names:
            if not any(v.name == n for v in victims):
                fail(f"{key}.victims: {UnknownNameError('victim', n, [v.name for v in victims])}")
        sweeps.append(RobustnessSpec(
            label=label, victims=tuple(names), parameter=parameter, values=tuple(values), opponent=opponent,
            num_envs=_positive_int(entry.get("num_envs", DEFAULT_SWEEP_ENVS), f"{key}.num_envs", fail),
            games=_field(entry, "games", key, _positive_int, defaults["games"], fail),
            seeds=_field(entry, "seeds", key, _seeds, defaults["seeds"], fail),
            seats=_field(entry, "seats", key, _seats, (SEATS[0],), fail),
        ))

    if not victims:
        fail("no [[victims]]: give at least one victim (name and checkpoint or train)")
    if not attacks and not sweeps:
        fail("nothing to run: give at least one [[attacks]] (or [[robustness]]) entry")
    return Suite(name=name, spec_path=Path(spec_path) if spec_path is not None else None, out=out,
                 executor=executor, executor_options=executor_options, victims=tuple(victims),
                 attacks=tuple(attacks), robustness=tuple(sweeps), description=description, raw=raw)


def _check_attacks_fit_victims(checks: list, victim_envs: list, fail) -> None:
    """Ask every attack (``(key, attack)``) whether it can attack every victim's env (``(key, env name, env
    options)``, built here with one copy, as :meth:`~ipo_robust.evals.attacks.Victim.make_env` builds it):
    :meth:`~ipo_robust.evals.attacks.Attack.check_env`, the check the attack's run makes. A plugin's attack
    without ``check_env`` is taken to attack any env (its run says otherwise)."""
    if not any(hasattr(attack, "check_env") for _, attack in checks):
        return
    for victim_key, env_name, env_options in victim_envs:
        try:
            env = make_env(env_name, num_envs=1, seed=0, **env_options)
        except (IpoRobustError, TypeError, ValueError) as error:
            fail(f"{victim_key}: its env {env_name!r} cannot be built: {error}")
        try:
            for key, attack in checks:
                check_env = getattr(attack, "check_env", None)  # an attack without one attacks any env
                if check_env is None:
                    continue
                try:
                    check_env(env, env_name)
                except IpoRobustError as error:
                    fail(f"{key} cannot attack {victim_key}: {error}")
        finally:
            env.close()


def _field(entry: dict, field: str, key: str, parse, default, fail):
    """The entry's own value for `field`, parsed and checked, or the grid-wide default."""
    return parse(entry[field], f"{key}.{field}", fail) if field in entry else default


def _checkpoint_victim(name: str, value, base: Path, key: str, fail) -> tuple[VictimSpec, str, dict]:
    text = _string(value, key, fail)
    path = Path(text) if Path(text).is_absolute() else base / text
    if not path.exists():
        fail(f"{key}: no checkpoint at {str(path)!r} (the path does not exist)")
    try:
        checkpoint = load_checkpoint(path)
        checkpoint.load_agents()
    except IpoRobustError as error:
        fail(f"{key}: {error}")
    env = checkpoint.meta.get("env") or {}
    if "name" not in env:
        fail(f"{key}: checkpoint {str(checkpoint.path)!r} records no environment to attack in")
    spec = VictimSpec(name=name, checkpoint=checkpoint.path, identity=str(checkpoint.meta.get("sha256", "")))
    return spec, env["name"], dict(env.get("options", {}))


def _train_victim(name: str, value, base: Path, out: Path, key: str, fail) -> tuple[VictimSpec, str, dict]:
    text = _string(value, key, fail)
    path = Path(text) if Path(text).is_absolute() else base / text
    if not path.is_file():
        fail(f"{key}: no train config at {str(path)!r} (the file does not exist)")
    try:
        setup = check_config(load_toml(path))  # what `ipo-robust train` refuses before its first update
    except IpoRobustError as error:
        fail(f"{key}: {error}")
    setup.env.close()
    config = setup.config.as_dict()
    # what the victim is: the resolved config, less the keys that do not change the trained agents
    run = {k: v for k, v in config.get("run", {}).items() if k not in ("out", "checkpoint_every", "keep")}
    identity = "train:" + hashlib.sha256(canonical_json({**config, "run": run}).encode("utf-8")).hexdigest()
    run_dir = out / "victims" / f"{name}-{identity[6:18]}"  # another config trains into another folder
    spec = VictimSpec(name=name, checkpoint=run_dir, train=path.resolve(), identity=identity)
    return spec, setup.config.env.name, dict(setup.env_options)


# -- small validators: each failure names the key and the value --------------------------------
def _check_keys(table: dict, known: Sequence[str], prefix: str, fail) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {prefix + close[0]!r}?" if close else f"; known: {', '.join(known)}"
            fail(f"unknown key {prefix + str(key)!r}{hint}")


def _table(value, key: str, fail) -> dict:
    if not isinstance(value, dict):
        fail(f"{key} must be a table, got {_show(value)}")
    return value


def _tables(value, key: str, fail) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        fail(f"{key} must be an array of tables ([[{key}]] entries), got {_show(value)}")
    return value


def _string(value, key: str, fail, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        fail(f"{key} must be a non-empty string, got {_show(value)}")
    return value


def _label(value, key: str, fail) -> str:
    text = _string(value, key, fail)
    if "/" in text or "\\" in text or text.startswith(".") or text != text.strip():
        fail(f"{key} {text!r} must not contain slashes, start with a dot or have surrounding spaces")
    return text


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value, key: str, fail) -> int:
    if not _is_int(value) or value < 1:
        fail(f"{key} must be a positive integer, got {_show(value)}")
    return value


def _int_list(value, key: str, fail) -> list:
    if not isinstance(value, list) or not value:
        fail(f"{key} must be a non-empty list of integers, got {_show(value)}")
    if len(set(map(repr, value))) != len(value):
        fail(f"{key} lists a value twice: {_show(value)}")
    return value


def _positive_ints(value, key: str, fail) -> tuple[int, ...]:
    for i, item in enumerate(_int_list(value, key, fail)):
        _positive_int(item, f"{key}[{i}]", fail)
    return tuple(value)


def _seeds(value, key: str, fail) -> tuple[int, ...]:
    for i, item in enumerate(_int_list(value, key, fail)):
        if not _is_int(item) or item < 0:
            fail(f"{key}[{i}] must be an integer >= 0, got {_show(item)}")
    return tuple(value)


def _seats(value, key: str, fail) -> tuple[int, ...]:
    """The victim's seats, numbered 1 and 2 as configs number agents; 0 is refused (not read as agent 1)."""
    for i, item in enumerate(_int_list(value, key, fail)):
        if not _is_int(item) or item not in SEATS:
            hint = ("; seats count from 1, as agents do (what was seat 0 is seat 1, seat 1 is seat 2)"
                    if _is_int(item) and item == 0 else "")
            fail(f"{key}[{i}] must be 1 or 2 (the victim's seat: agent 1 or agent 2, counted as configs count "
                 f"them), got {_show(item)}{hint}")
    return tuple(value)


def _check_json(value, key: str, fail) -> None:
    try:
        canonical_json(value)
    except (TypeError, ValueError):
        fail(f"{key} must hold only numbers, strings, booleans, lists and tables (no dates, no nan)")


def _show(value) -> str:
    return f"{value!r} ({type(value).__name__})" if not isinstance(value, str) else repr(value)
