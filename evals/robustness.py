"""Robustness sweeps: a victim's performance over a grid of dynamics or of superpower force (RARL-style).

``sweep(victim, parameter, values, games, seed)`` plays ``games`` games at every grid value and returns
one row per value. The victim's seat (``seat``: the index into ``victim.agents``, 0 for agent 1 and 1 for
agent 2; suite specs and tables number the seats 1 and 2, as configs number agents) is measured; its
opponent is the victim pair's other agent (``opponent="victim"``) or a uniformly random policy
(``opponent="random"``). Messages name the agents 1 and 2. Parameters:

- ``"mass"``: the masses and inertias of the victim's bodies (``env.body_ids[seat]``) times the value;
- ``"friction"``: the friction coefficients of every geom times the value;
- ``"gear"``: the gears of the victim's actuators (``env.actuator_ids[seat]``) times the value;
  default grid for these three ``np.linspace(0.5, 1.5, 11)`` (endpoints included, as in Pinto et al.
  2017, "Robust Adversarial Reinforcement Learning"). The scales are exact and the same in every
  episode and copy (:func:`apply_dynamics_scale`); 1.0 is the unperturbed env.
- ``"force"``: the superpower amount alpha in [0, 1] held by the opponent, with the env's own
  perturbation (the force of the opponent's perturbation action is clipped to ``alpha * f_max``). Only
  for envs built with the opponent as a possible holder (``holder=1 - seat`` or ``"both"``); default grid
  ``np.linspace(0, 1, 11)``.

Performance: ``return`` = the victim seat's mean episode return (undiscounted; a sumo env's dense
shaping is switched off, so it is the win / loss reward); for zero-sum games
(r1 = -r2 in every game) also win / tie / loss rates with Wilson 95 % intervals. Every grid value is
played with the same env seed and action generator seed (common random numbers), so differences between
values come from the parameter, not from the draws. ``summarize(df)``: worst case, mean and the area
under the curve (trapezoid over the parameter range divided by its width, i.e. the average over the
range).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks import PolicyActor, RandomActor, Victim, game_env, play_games
from ipo_robust.evals.metrics import Outcomes

DYNAMICS = ("mass", "friction", "gear")
PARAMETERS = (*DYNAMICS, "force")


def default_values(parameter: str) -> np.ndarray:
    """The default grid: 0.5 .. 1.5 in 11 steps for dynamics scales, 0 .. 1 in 11 steps for force."""
    _check_parameter(parameter)
    return np.linspace(0.0, 1.0, 11) if parameter == "force" else np.linspace(0.5, 1.5, 11)


def _check_parameter(parameter) -> None:
    if parameter not in PARAMETERS:
        raise ConfigError(f"sweep parameter must be one of {', '.join(PARAMETERS)}, got {parameter!r}")


def apply_dynamics_scale(env, seat: int, parameter: str, scale: float) -> None:
    """Scale the dynamics of MuJoCo ``env`` in place by exactly ``scale`` (module docstring), for every
    copy and for the nominal model (so a perturbation that restores the nominal values keeps the scale).
    Scales compose: a second call multiplies the values the first one left (use a fresh env per grid
    point, as :func:`sweep` does). Call before ``env.reset``."""
    # mujoco is optional (its plugin may fail to load): only dynamics sweeps need it, so it loads here
    import mujoco

    from ipo_robust.envs.mujoco.perturbations import scale_dynamics

    if parameter not in DYNAMICS:
        raise ConfigError(f"apply_dynamics_scale: parameter must be one of {', '.join(DYNAMICS)}, got {parameter!r}")
    if not hasattr(env, "models") or not hasattr(env, "body_ids"):
        raise ConfigError(f"a {parameter} sweep needs a MuJoCo env (ipo_robust.envs.mujoco); got "
                          f"{type(env).__name__}")
    scale = float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise ConfigError(f"a {parameter} scale must be a finite number >= 0, got {scale!r}")
    bodies, actuators = env.body_ids[seat], env.actuator_ids[seat]
    if parameter == "mass" and bodies.size == 0:
        raise ConfigError(f"agent {seat + 1} has no bodies in {type(env).__name__}: there is no mass to scale")
    if parameter == "gear" and actuators.size == 0:
        raise ConfigError(f"agent {seat + 1} has no actuators in {type(env).__name__}: there is no gear to scale")
    factors = {"mass": 1.0, "friction": 1.0, "gear": 1.0, parameter: scale}
    nominal = _copy(env.model)  # the values to scale, before anything is changed
    datas = {id(m): d for m, d in zip(env.models, env.datas, strict=True)}
    seen: set[int] = set()
    for model in (env.model, *env.models):
        if id(model) in seen:
            continue
        seen.add(id(model))
        data = datas.get(id(model)) or mujoco.MjData(model)
        scale_dynamics(model, nominal, data, bodies, actuators, **factors)


def _copy(model):
    import copy

    return copy.copy(model)


def sweep(victim: Victim, parameter: str, values=None, games: int = 100, seed: int = 0, seat: int = 0,
          opponent: str = "victim", num_envs: int = 16):
    """Performance of the victim's ``seat`` at each value of ``parameter`` (module docstring); a
    ``pandas.DataFrame`` with one row per value, ordered as ``values`` (default: :func:`default_values`).

    Columns: parameter, value, seat, opponent, games, return, return_std, opponent_return, and for
    zero-sum games wins, ties, losses, win_rate, win_low, win_high, tie_rate, ..., loss_high (NaN
    otherwise).
    """
    import pandas as pd

    if not isinstance(victim, Victim):
        raise ConfigError(f"sweep needs an ipo_robust.evals.attacks.Victim, got {type(victim).__name__}")
    _check_parameter(parameter)
    if seat not in (0, 1) or isinstance(seat, bool):
        raise ConfigError(f"sweep: seat must be 0 or 1 (the index of the victim's agent to measure: 0 for agent 1, "
                          f"1 for agent 2), got {seat!r}")
    if opponent not in ("victim", "random"):
        raise ConfigError(f"sweep: opponent must be 'victim' (the pair's other agent) or 'random', got {opponent!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigError(f"sweep: num_envs must be an integer >= 1, got {num_envs!r}")
    grid = default_values(parameter) if values is None else np.asarray(values, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.isfinite(grid).all():
        raise ConfigError(f"sweep: values must be a non-empty list of finite numbers, got {values!r}")
    if parameter == "force" and ((grid < 0).any() or (grid > 1).any()):
        raise ConfigError(f"sweep: force values are superpower amounts alpha in [0, 1], got {grid.tolist()}")
    if parameter in DYNAMICS and (grid < 0).any():
        raise ConfigError(f"sweep: {parameter} values are scale factors >= 0, got {grid.tolist()}")

    rows = []
    for value in grid.tolist():
        env = game_env(victim, num_envs, seed)
        try:
            if parameter == "force":
                holders = getattr(env, "power_slots", ())
                if 1 - seat not in holders:
                    raise ConfigError(f"a force sweep needs an env in which agent {2 - seat} (the opponent of the "
                                      f"measured agent {seat + 1}) may hold the superpower; {victim.env_name!r} was "
                                      f"built with {_holders(victim.env_options.get('holder'))}. Train the victim "
                                      f"with agent {2 - seat} as a holder (schedule.holder = {2 - seat}, or an "
                                      "ipo-rarl schedule) and a perturbation such as 'learned-location'.")
                env.set_superpower(1 - seat, value)
            else:
                apply_dynamics_scale(env, seat, parameter, value)
            generator = torch.Generator().manual_seed(seed)
            own = PolicyActor(victim.agents[seat], env.action_spaces[seat], generator)
            other_space = env.action_spaces[1 - seat]
            other = (PolicyActor(victim.agents[1 - seat], other_space, generator) if opponent == "victim"
                     else RandomActor(other_space, np.random.default_rng(seed)))
            actors = (own, other) if seat == 0 else (other, own)
            R1, R2 = play_games(env, actors, games, seed)
        finally:
            env.close()
        mine, theirs = (R1, R2) if seat == 0 else (R2, R1)
        row = {"parameter": parameter, "value": float(value), "seat": seat, "opponent": opponent, "games": int(games),
               "return": float(mine.mean()), "return_std": float(mine.std()), "opponent_return": float(theirs.mean())}
        outcomes = Outcomes.from_returns(mine, theirs)
        zero_sum = bool(np.allclose(R1 + R2, 0.0, atol=1e-9))
        rates = outcomes.rates()
        row.update(wins=outcomes.wins if zero_sum else math.nan, ties=outcomes.ties if zero_sum else math.nan,
                   losses=outcomes.losses if zero_sum else math.nan)
        row.update({k: (v if zero_sum else math.nan) for k, v in rates.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _holders(holder) -> str:
    """The env option ``holder`` (0, 1, 'both' or None, as the env counts) in the agents' numbering 1 and 2."""
    if holder is None:
        return "no agent that may hold the superpower"
    if holder == "both":
        return "both agents as possible holders"
    return f"agent {int(holder) + 1} as the only possible holder"


def summarize(df) -> dict:
    """Worst case, mean and normalised area under the curve of a :func:`sweep` table.

    For ``return`` (and ``win_rate`` when present and finite): ``worst_<m>`` (the minimum),
    ``worst_value_<m>`` (the parameter value where it occurs), ``mean_<m>`` (mean over the grid
    points) and ``auc_<m>`` = trapezoid of m over the sorted parameter values divided by
    (max - min) (the curve's average over the range; m itself for a single-point grid).
    """
    if len(df) == 0:
        raise ConfigError("summarize: the sweep table is empty")
    table = df.sort_values("value")
    x = table["value"].to_numpy(dtype=np.float64)
    out: dict = {"parameter": str(table["parameter"].iloc[0]), "points": int(len(table)),
                 "low": float(x.min()), "high": float(x.max())}
    for metric in ("return", "win_rate"):
        if metric not in table:
            continue
        y = table[metric].to_numpy(dtype=np.float64)
        if not np.isfinite(y).all():
            continue
        worst = int(np.argmin(y))
        width = float(x.max() - x.min())
        auc = float(np.trapezoid(y, x) / width) if width > 0 else float(y.mean())
        out.update({f"worst_{metric}": float(y[worst]), f"worst_value_{metric}": float(x[worst]),
                    f"mean_{metric}": float(y.mean()), f"auc_{metric}": auc})
    return out
