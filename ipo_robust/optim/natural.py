"""Natural CGD: the local game with KL (Fisher) regularisation, seed sec. 4.2, eqs. (19)-(20).

- :func:`natural_cgd_step`: the Fisher-metric local game, seed eq. (19), with the common lambda that puts
  the pair's joint quadratic KL on the budget (sec. 4.2, after eq. (20)); per-player scaling as an option.
- :func:`natural_cgd_solve`: eq. (19) at given lambdas (the trust-region line search re-solves with it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from ipo_robust.optim.krylov import ConvergenceWarning, gmres
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.update import Step, _check_game, _check_positive, _check_solver, _Counter

NATURAL_CGD_SOLVERS = ("auto", "gmres", "dense")
KL_SPLITS = ("joint", "per-player")


@dataclass
class _Solution:
    """Eq. (19) solved at one (lam1, lam2): the pair, its quadratic KL per player, the solve's record."""

    lam1: float
    lam2: float
    d1: torch.Tensor
    d2: torch.Tensor
    kl1: float
    kl2: float
    iterations: int
    residual: float
    converged: bool

    @property
    def kl_model(self) -> float:
        """The joint quadratic KL 1/2 (d1' F1' d1 + d2' F2' d2) of the pair (seed, after eq. (20))."""
        return self.kl1 + self.kl2


class _Eq19:
    """The block system of seed eq. (19) on one local game, solvable at any (lam1, lam2):

        [[lam1 F1', -D12], [-D21, lam2 F2']] [d1; d2] = [g1; g2],      F_i' = F_i + damping I.

    Counts the game's operator applications. "dense" materialises F1', F2', D12, D21 once and solves
    each lambda with torch.linalg.solve; "gmres" solves the stacked system matrix-free.
    """

    def __init__(self, game: LocalGame, damping: float, solver: str, rtol: float, max_iter: int | None,
                 restart: int | None):
        self.counter = _Counter()
        self.D12, self.D21 = self.counter.wrap(game.D12), self.counter.wrap(game.D21)
        self.F1, self.F2 = self.counter.wrap(game.F1), self.counter.wrap(game.F2)
        self.p1, self.damping, self.zero_sum = game.p1, damping, game.zero_sum
        self.b = torch.cat([game.g1, game.g2])
        self.solver = "dense" if solver == "dense" else "gmres"
        self.rtol, self.max_iter, self.restart = rtol, max_iter, restart
        self._dense = None

    def damped_F1(self, v: torch.Tensor) -> torch.Tensor:
        return self.F1(v) + self.damping * v

    def damped_F2(self, v: torch.Tensor) -> torch.Tensor:
        return self.F2(v) + self.damping * v

    def matvec(self, lam1: float, lam2: float, v: torch.Tensor) -> torch.Tensor:
        v1, v2 = v[:self.p1], v[self.p1:]
        return torch.cat([lam1 * self.damped_F1(v1) - self.D12(v2),  # eq. (19), first block row
                          -self.D21(v1) + lam2 * self.damped_F2(v2)])

    def dense_blocks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(blockdiag(F1', F2'), [[0, D12], [D21, 0]]), materialised on first use."""
        if self._dense is None:
            n, like = self.b.numel(), self.b
            eye = torch.eye(n, dtype=like.dtype, device=like.device)
            zero = torch.zeros(n, dtype=like.dtype, device=like.device)
            fisher = torch.stack([torch.cat([self.damped_F1(eye[:self.p1, j]), zero[self.p1:]]) if j < self.p1
                                  else torch.cat([zero[:self.p1], self.damped_F2(eye[self.p1:, j])])
                                  for j in range(n)], dim=1)
            coupling = torch.stack([torch.cat([zero[:self.p1], self.D21(eye[:self.p1, j])]) if j < self.p1
                                    else torch.cat([self.D12(eye[self.p1:, j]), zero[self.p1:]])
                                    for j in range(n)], dim=1)
            self._dense = fisher, coupling
        return self._dense

    def quadratic_kl(self, i: int, d: torch.Tensor) -> float:
        """1/2 d' F_i' d, player i's quadratic KL model (eq. (20)); refuses a Fisher that is not PSD."""
        kl_i = 0.5 * float(d @ (self.damped_F1 if i == 1 else self.damped_F2)(d))
        if kl_i < 0:
            raise ValueError(f"natural_cgd_step: F{i} + damping I is not positive semi-definite "
                             f"(d^T F d = {2 * kl_i:.3e} < 0); check the Fisher estimate or raise damping")
        return kl_i

    def solve(self, lam1: float, lam2: float, x0: torch.Tensor | None = None) -> _Solution:
        """Eq. (19) at (lam1, lam2), warm-started from x0 (the stacked [d1; d2]); a singular dense system
        gives a NaN pair (its KL is NaN, which the KL root search reads as 'above the budget')."""
        if self.solver == "dense":
            fisher, coupling = self.dense_blocks()
            like = {"dtype": fisher.dtype, "device": fisher.device}
            weights = torch.cat([torch.full((self.p1,), lam1, **like),
                                 torch.full((self.b.numel() - self.p1,), lam2, **like)])
            M = weights.unsqueeze(1) * fisher - coupling  # eq. (19)
            direction, info = torch.linalg.solve_ex(M, self.b)
            singular = int(info) != 0 or not bool(torch.isfinite(direction).all())
            if singular:
                direction = torch.full_like(self.b, float("nan"))
            iterations, residual, converged = 0, (math.inf if singular else 0.0), not singular
        else:
            result = gmres(lambda v: self.matvec(lam1, lam2, v), self.b, x0=x0, rtol=self.rtol,
                           max_iter=self.max_iter, restart=self.restart)
            direction, iterations = result.x, result.iterations
            residual, converged = result.residual, result.converged
        d1, d2 = direction[:self.p1], direction[self.p1:]
        if not bool(torch.isfinite(direction).all()):
            kl1 = kl2 = math.nan
        else:
            kl1, kl2 = self.quadratic_kl(1, d1), self.quadratic_kl(2, d2)
        return _Solution(lam1, lam2, d1, d2, kl1, kl2, iterations, residual, converged)


def _natural_system(game, damping, solver, rtol, max_iter, restart, rule: str) -> _Eq19:
    """Validate the arguments every natural-CGD rule shares and build eq. (19)'s system."""
    _check_game(game)
    if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not math.isfinite(damping) \
            or damping < 0:
        raise ValueError(f"damping must be a finite number >= 0, got {damping!r}")
    _check_solver(solver, NATURAL_CGD_SOLVERS, rule)
    missing = [name for name in ("F1", "F2") if getattr(game, name) is None]
    if missing:
        raise ValueError(f"{rule} needs the Fisher operators of both players; the LocalGame "
                         f"has no {' and '.join(missing)} (build it with fisher=True)")
    return _Eq19(game, float(damping), solver, rtol, max_iter, restart)


def _solution_step(system: _Eq19, solution: _Solution, iterations: int, info: dict) -> Step:
    """A Step holding eq. (19)'s pair as solved, with its lambdas and quadratic KLs in info."""
    info.update({"lam1": solution.lam1, "lam2": solution.lam2, "kl_model": solution.kl_model,
                 "kl1_model": solution.kl1, "kl2_model": solution.kl2})
    return Step(solution.d1, solution.d2, iterations, solution.residual, solution.converged,
                system.counter.count, info)


def natural_cgd_solve(game: LocalGame, lam1: float, lam2: float, damping: float = 1e-4, rtol: float = 1e-10,
                      max_iter: int | None = None, solver: str = "auto", restart: int | None = None,
                      x0: torch.Tensor | None = None) -> Step:
    """Seed eq. (19) at given weights, unscaled: the Nash pair of the KL-regularised local game.

        [[lam1 F1', -D12], [-D21, lam2 F2']] [d1; d2] = [g1; g2],      F_i' = F_i + damping I

    lam1, lam2 > 0: the players' Fisher weights (absolute, not a ratio). x0: warm start (p1 + p2,),
    the stacked [d1; d2] of a nearby lambda (scaled by lam_old / lam_new it is exact without coupling).
    info: ``lam1``, ``lam2``, the joint quadratic KL ``kl_model`` = 1/2 (d1' F1' d1 + d2' F2' d2) and its
    parts ``kl1_model``, ``kl2_model``. Used by the trust-region line search to re-solve at a larger lambda.
    A singular eq. (19) (dense solve) raises ValueError; GMRES warns with a ConvergenceWarning.
    """
    system = _natural_system(game, damping, solver, rtol, max_iter, restart, "natural_cgd_solve")
    lam1, lam2 = _check_positive("lam1", lam1), _check_positive("lam2", lam2)
    n = game.p1 + game.p2
    if x0 is not None and (not isinstance(x0, torch.Tensor) or x0.shape != (n,)):
        raise ValueError(f"x0 must be a warm start for the stacked [d1; d2] of shape ({n},), got "
                         f"{tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}")
    solution = system.solve(lam1, lam2, x0)
    if system.solver == "dense" and not solution.converged:
        raise ValueError(f"natural_cgd_solve: eq. (19) is singular at lam1={lam1!r}, lam2={lam2!r} (the "
                         f"coupling D12, D21 outweighs the Fisher terms); use larger lambdas")
    return _solution_step(system, solution, solution.iterations, {"solver": system.solver})


def natural_cgd_step(game: LocalGame, kl: float, lam1: float = 1.0, lam2: float = 1.0,
                     damping: float = 1e-4, rtol: float = 1e-10, max_iter: int | None = None,
                     solver: str = "auto", restart: int | None = None, kl_split: str = "joint",
                     kl_rtol: float | None = None, max_solves: int = 60, uncoupled: bool = False) -> Step:
    """Natural CGD: the local game with KL (Fisher) regularisation, seed eq. (19), sized to a KL budget.

    Eq. (19) (F_i' = F_i + damping I, the damped Fisher; see :func:`natural_cgd_solve`):

        [[l1 F1', -D12], [-D21, l2 F2']] [d1; d2] = [g1; g2]

    kl_split="joint" (default; the seed, sec. 4.2 after eq. (20)): l1 = s lam1, l2 = s lam2 with the common
    scale s > 0 chosen so that eq. (19)'s solution has *joint* quadratic KL
    1/2 (d1' F1' d1 + d2' F2' d2) = kl; lam1 : lam2 is a fixed ratio (only the ratio matters). The returned
    pair is exactly eq. (19)'s solution at the reported ``lam1``, ``lam2`` (in info). Without coupling the
    solution is d_i = F_i'^-1 g_i / l_i and the KL falls as 1/s^2: the second solve, at s = sqrt(K(1) / kl)
    and warm-started from the first solution scaled by 1/s, is then exact (natural policy gradient under a
    joint budget). With coupling K(s) is not 1/s^2 and s is a root found in log s (:func:`_find_scale`),
    each evaluation one solve of eq. (19) warm-started from the nearest solved pair; the budget is met to
    relative ``kl_rtol`` (default max(1e-8, 100 rtol)). Without a root ``lam_converged`` is False and
    ``lam_search`` says why: if the budget is beyond every lambda's pair (K levels off below it as
    lambda -> 0, as near the equilibrium of a bilinear zero-sum game) the pair is eq. (19)'s at the largest
    lambda whose joint KL is 99% of that limit (within budget; reported, not warned); if the search
    fails (max_solves ran out, K jumps across the budget) it is the solved pair closest to the budget
    from below, with a ConvergenceWarning. A zero gradient gives a zero pair.

    kl_split="per-player" (the earlier rule, kept as an option): eq. (19) at l1 = lam1, l2 = lam2, then each
    player's direction is rescaled to its own 1/2 d_i' F_i' d_i = kl (joint 2 kl). The rescaled pair is
    eq. (19)'s solution at no lambda (the rescaling changes the d1 : d2 ratio of the equilibrium).
    With D12 = D21 = 0 it is per-player NPG, delta_i = sqrt(2 kl / (g_i' F_i'^-1 g_i)) F_i'^-1 g_i.

    game: a LocalGame with F1 and F2. kl > 0: the budget (nats). lam1, lam2 > 0: the Fisher weights
    (joint: their ratio; per-player: the weights). damping >= 0. solver "auto"/"gmres" or "dense";
    rtol, max_iter, restart: GMRES controls per solve. max_solves: solves of eq. (19) in the root search.
    uncoupled: the caller vouches that D12 = D21 = 0 (independent NPG): the joint split then takes the
    closed form, one solve at (lam1, lam2) and the pair divided by s = sqrt(K(1) / kl), which is eq. (19)'s
    solution at (s lam1, s lam2) exactly.

    info (joint): ``lam1``, ``lam2`` (the weights of the returned pair), ``lam_scale`` (s), ``kl_model``
    (joint quadratic KL of the pair), ``kl1_model``, ``kl2_model``, ``lam_solves``, ``lam_converged``,
    ``lam_search`` (how the search ended).
    info (per-player): per player the model KL before scaling (``kl1_before``, ``kl2_before``), the scale
    applied (``scale1``, ``scale2``; a zero direction stays zero, scale 0), ``kl1_model``, ``kl2_model`` and
    ``kl_model`` of the result.
    """
    kl = _check_positive("kl", kl)
    lam1, lam2 = _check_positive("lam1", lam1), _check_positive("lam2", lam2)
    if kl_split not in KL_SPLITS:
        raise ValueError(f"natural_cgd_step: kl_split must be one of {', '.join(map(repr, KL_SPLITS))}, "
                         f"got {kl_split!r}")
    kl_rtol = default_kl_rtol(rtol) if kl_rtol is None else _check_positive("kl_rtol", kl_rtol)
    if isinstance(max_solves, bool) or not isinstance(max_solves, int) or max_solves < 2:
        raise ValueError(f"max_solves must be an int >= 2, got {max_solves!r}")
    if not isinstance(uncoupled, bool):
        raise ValueError(f"uncoupled must be True or False, got {uncoupled!r}")
    system = _natural_system(game, damping, solver, rtol, max_iter, restart, "natural_cgd_step")
    if kl_split == "per-player":
        return _per_player_step(system, kl, lam1, lam2)
    if uncoupled:
        return _uncoupled_joint_step(system, kl, lam1, lam2)
    return _joint_step(system, kl, lam1, lam2, kl_rtol, max_solves)


def default_kl_rtol(rtol: float) -> float:
    """The relative tolerance of the joint KL root: 100 x the solve's rtol, never below 1e-8 (a float64
    solve at rtol 1e-10 meets the budget to 1e-8; a float32 one at 1e-6 to 1e-4, its KL's own accuracy)."""
    return max(1e-8, 100.0 * float(rtol))


def _per_player_step(system: _Eq19, kl: float, lam1: float, lam2: float) -> Step:
    """kl_split="per-player": eq. (19) at (lam1, lam2), each direction rescaled to its own KL = kl."""
    solution = system.solve(lam1, lam2)
    info = {"solver": system.solver, "kl": kl, "kl_split": "per-player"}
    deltas, kl_model = [], 0.0
    for i, (d, kl_before) in enumerate(((solution.d1, solution.kl1), (solution.d2, solution.kl2)), start=1):
        scale = math.sqrt(kl / kl_before) if kl_before > 0 else 0.0  # each player's own budget (eq. (20))
        info[f"kl{i}_before"], info[f"scale{i}"] = kl_before, scale
        info[f"kl{i}_model"] = kl if scale > 0 else 0.0
        kl_model += info[f"kl{i}_model"]
        deltas.append(scale * d)
    info["kl_model"] = kl_model
    return Step(deltas[0], deltas[1], solution.iterations, solution.residual, solution.converged,
                system.counter.count, info)


def _uncoupled_joint_step(system: _Eq19, kl: float, lam1: float, lam2: float) -> Step:
    """kl_split="joint" with D12 = D21 = 0: d_i = F_i'^-1 g_i / (s lam_i), K(s) = K(1) / s^2 (closed form)."""
    solution = system.solve(lam1, lam2)
    K1 = solution.kl_model
    s = math.sqrt(K1 / kl) if K1 > 0 else 1.0  # K(1) / s^2 = kl
    scaled = _Solution(s * lam1, s * lam2, solution.d1 / s, solution.d2 / s, solution.kl1 / s**2,
                       solution.kl2 / s**2, solution.iterations, solution.residual, solution.converged)
    info = {"solver": system.solver, "kl": kl, "kl_split": "joint", "lam_scale": s, "lam_solves": 1,
            "lam_converged": K1 > 0, "lam_search": "closed form (uncoupled)" if K1 > 0 else ZERO_GRADIENT}
    return _solution_step(system, scaled, solution.iterations, info)


def _joint_step(system: _Eq19, kl: float, lam1: float, lam2: float, kl_rtol: float, max_solves: int) -> Step:
    """kl_split="joint": eq. (19) at (s lam1, s lam2) with s the root of K(s) = kl (seed, after eq. (20))."""
    solutions: dict[float, _Solution] = {}

    def joint_kl(s: float) -> float:
        x0 = None
        finite = [x for x in solutions.values() if math.isfinite(x.kl_model)]
        if finite:  # warm start: the nearest solved pair, scaled as the uncoupled solution scales
            near = min(finite, key=lambda x: abs(math.log(x.lam1 / (s * lam1))))
            x0 = torch.cat([near.d1, near.d2]) * (near.lam1 / (s * lam1))
        solution = system.solve(s * lam1, s * lam2, x0)  # eq. (19) at the common scale s
        solutions[s] = solution
        return solution.kl_model

    s, converged, reason = _find_scale(joint_kl, kl, kl_rtol, max_solves, single_branch=system.zero_sum)
    if not converged and reason != ZERO_GRADIENT and not reason.startswith(OUT_OF_REACH):
        warnings.warn(f"natural_cgd_step: the joint quadratic KL was not put at {kl:.3e} ({reason}); "
                      f"returned eq. (19)'s pair at lam1={s * lam1:.3e}, lam2={s * lam2:.3e}, joint KL "
                      f"{solutions[s].kl_model:.3e}", ConvergenceWarning, stacklevel=3)
    info = {"solver": system.solver, "kl": kl, "kl_split": "joint", "lam_scale": s,
            "lam_solves": len(solutions), "lam_converged": converged, "lam_search": reason}
    return _solution_step(system, solutions[s], sum(x.iterations for x in solutions.values()), info)


ZERO_GRADIENT = "zero gradient: eq. (19)'s solution is zero at every lambda"


def _find_scale(joint_kl, kl: float, kl_rtol: float, max_evals: int, single_branch: bool = False,
                floor: float = 1e-10) -> tuple[float, bool, str]:
    """The scale s > 0 with joint_kl(s) = kl to relative kl_rtol, searched in t = log s.

    joint_kl(s): the joint quadratic KL K(s) of eq. (19)'s solution at (s lam1, s lam2); NaN or inf where
    eq. (19) is singular. Existence: for large s the solution is ~ F'^-1 g / (s lam), so K(s) ~ K(1) / s^2
    -> 0; as s shrinks the coupling takes over. In a zero-sum game eq. (19)'s matrix is
    blockdiag(l1 F1', l2 F2') plus a skew part, nonsingular for every s > 0 when F' is positive definite
    (damping > 0; ``single_branch``), and K may
    level off below the budget as s -> 0 (then no lambda reaches it). In a general-sum game it may turn
    singular at some s* > 0, where K -> inf, so K can cross the budget more than once. The root sought
    is the largest (the branch reached from s = inf, the smallest step that meets the budget):

    - t_lo = the largest t seen with K > kl (or singular); the points above it are all within budget.
    - Secant steps on y(t) = log(K / kl) (slope -2 first, the uncoupled law; clamped to [-8, -1/4]) grow
      s while nothing is within budget above t_lo, and shrink it while nothing is above the budget.
    - General-sum only: the within-budget points above t_lo must fall with s as K ~ 1/s^2 does. The top
      one is probed at 4 s; where K rises with s between two of them, a pole or hump lies above, and a
      golden-section step looks for K > kl inside it (humps narrower than 1% in s are passed over).
    - Then Brent's method finds the root in [t_lo, the lowest within-budget point above it].

    A pole that falls between two evaluated points, both within budget, goes unseen: the root returned
    is then an exact one below it (still eq. (19)'s pair at a lambda with K = kl), not the largest.

    The search goes no lower than ``floor`` times the uncoupled estimate sqrt(K(1) / kl), and stops going
    down where K grows by less than 0.1% per e-fold of s (levelled off: :func:`_near_limit`). Returns
    (s, converged, reason): s is always an evaluated scale. Without a root it is the evaluated one
    with K <= kl closest to the budget (none: the largest s tried), converged False.
    """
    tolerance = math.log1p(kl_rtol)
    points: dict[float, float] = {}  # t -> y(t) = log(K / kl); +inf where singular, -inf where K = 0

    def y_at(t: float) -> float:
        K = joint_kl(math.exp(t))
        points[t] = math.log(K / kl) if math.isfinite(K) and K > 0 else (-math.inf if K == 0 else math.inf)
        return points[t]

    def best_below(reason: str) -> tuple[float, bool, str]:
        above = [t for t, y in points.items() if y > 0]
        below = [t for t, y in points.items() if y <= 0 and (not above or t > max(above))] or \
            [t for t, y in points.items() if y <= 0]
        t = max(below, key=lambda t: points[t]) if below else max(points)
        return math.exp(t), False, reason

    y0 = y_at(0.0)
    if y0 == -math.inf:
        return 1.0, False, ZERO_GRADIENT
    if abs(y0) <= tolerance:
        return 1.0, True, "root"
    t_floor = (y0 / 2 if math.isfinite(y0) else 0.0) + math.log(floor)
    slope, leveled = -2.0, False  # d log K / d log s without coupling
    while len(points) < max_evals:
        above = [t for t in sorted(points) if points[t] > 0]
        t_lo = above[-1] if above else None
        within = [t for t in sorted(points) if t_lo is None or t > t_lo]  # all with K <= kl
        t_from = None
        if not within:  # grow s from t_lo
            t_from = t_lo
        elif not single_branch and (probe := _branch_probe(within, points, tolerance)) is not None:
            t_next = probe
        elif t_lo is not None:
            return _brent(y_at, t_lo, points[t_lo], within[0], points[within[0]], tolerance,
                          max_evals - len(points), best_below)
        elif within[0] <= t_floor or leveled:  # K levels off below the budget as s -> 0
            return _near_limit(y_at, points, max_evals, best_below)
        else:  # shrink s from the lowest within-budget point
            t_from = within[0]
        if t_from is not None:
            y_from = points[t_from]
            step = y_from / -slope if math.isfinite(y_from) else math.log(4.0)
            t_next = max(t_from + max(min(step, 10.0), -10.0), t_floor)
        y = y_at(t_next)
        if abs(y) <= tolerance:
            return math.exp(t_next), True, "root"
        if t_from is not None and math.isfinite(y) and math.isfinite(y_from) and t_next != t_from:
            secant = (y - y_from) / (t_next - t_from)
            slope = min(max(secant, -8.0), -0.25)  # clamped
            leveled = y <= 0 and t_next < t_from - 0.1 and secant > -1e-3  # < 0.1% more K per e-fold down
    return best_below(f"no bracket after {max_evals} solves")


def _near_limit(y_at, points: dict[float, float], max_evals: int, best_below,
                tolerance: float = 1e-3) -> tuple[float, bool, str]:
    """The budget is out of reach (K levels off below it as s -> 0): the largest s whose K is 99% of the
    largest K seen, K_sup (the limit; to ``tolerance``), so that growing lambda from there shrinks the
    step at once."""
    shift = max(points.values()) + math.log(0.99)  # y of the target 0.99 K_sup

    def y_near(t: float) -> float:
        return y_at(t) - shift

    t_a = max(points, key=points.get)  # K_sup, above the target
    while len(points) < max_evals and not [t for t in points if t > t_a and points[t] <= shift]:
        y_near(max(points) + math.log(4.0))  # everything on the plateau so far: look higher
    above_target = [t for t in points if t > t_a and points[t] <= shift]
    reason = f"{OUT_OF_REACH}: the joint KL levels off at {math.exp(max(points.values())):.3e} x the budget"
    if not above_target:
        return best_below(reason)
    t_b = min(above_target)
    s, _, _ = _brent(y_near, t_a, points[t_a] - shift, t_b, points[t_b] - shift, tolerance,
                     max_evals - len(points), lambda _reason: (math.exp(t_b), False, reason))
    return s, False, reason


OUT_OF_REACH = "the budget is beyond every lambda's pair"
GOLDEN = (3.0 - math.sqrt(5.0)) / 2.0


def _branch_probe(within: list[float], points: dict[float, float], margin: float,
                  hump_width: float = 0.01) -> float | None:
    """Where a higher crossing of the budget may hide above the within-budget points ``within`` (sorted t,
    all y <= 0), or None where they fall with s. See :func:`_find_scale` (general-sum games)."""
    if len(within) == 1:
        return within[0] + math.log(4.0)  # the slope at the top end is unknown: probe at 4 s
    for k in range(len(within) - 2, -1, -1):  # the highest pair first
        a, b = within[k], within[k + 1]
        if points[b] > points[a] + margin:  # K rises with s from a to b: a pole or hump lies above a
            if k + 2 == len(within):
                return b + math.log(4.0)  # still rising at the top end: look higher
            c = within[k + 2]  # y(c) <= y(b): the hump is in (a, c), its highest point so far b
            if c - a < hump_width:
                continue
            return b + GOLDEN * (c - b) if c - b > b - a else b - GOLDEN * (b - a)
    return None


def _brent(y_at, a: float, fa: float, b: float, fb: float, tolerance: float, evals: int, best_below):
    """Brent's method (Brent 1973; the zbrent form of Numerical Recipes) on y over the bracket [a, b],
    y(a) > 0 >= y(b): inverse quadratic or secant steps that stay inside the bracket, bisection otherwise.
    An infinite end (eq. (19) singular there) admits only bisection. Stops at |y| <= tolerance."""
    c, fc, d, e = a, fa, b - a, b - a
    for _ in range(evals):
        if (fb > 0) == (fc > 0):  # keep the root between b and c
            c, fc, d, e = a, fa, b - a, b - a
        if abs(fc) < abs(fb):
            a, b, c, fa, fb, fc = b, c, b, fb, fc, fb
        tol1 = 4e-16 * abs(b) + 1e-15
        xm = 0.5 * (c - b)
        if abs(fb) <= tolerance:
            return math.exp(b), True, "root"
        if abs(xm) <= tol1:
            break
        if abs(e) >= tol1 and abs(fa) > abs(fb) and all(map(math.isfinite, (fa, fb, fc))):
            s = fb / fa
            if a == c:  # secant
                p, q = 2.0 * xm * s, 1.0 - s
            else:  # inverse quadratic interpolation
                q, r = fa / fc, fb / fc
                p = s * (2.0 * xm * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            q = -q if p > 0 else q
            p = abs(p)
            if 2.0 * p < min(3.0 * xm * q - abs(tol1 * q), abs(e * q)):
                e, d = d, p / q
            else:
                d = e = xm
        else:
            d = e = xm
        a, fa = b, fb
        b += d if abs(d) > tol1 else math.copysign(tol1, xm)
        fb = y_at(b)
    if abs(fb) <= tolerance:
        return math.exp(b), True, "root"
    return best_below(f"the root was bracketed but not met to relative {math.expm1(tolerance):.1e}")
