"""Exact differentiable two-player games.

Each game gives both players' objectives as differentiable torch scalars of flat parameter vectors,
``values(theta1, theta2) -> (J1, J2)``, and its exact :class:`~ipo_robust.optim.LocalGame` at a point:
gradients by autograd and the mixed Hessians D12, D21 as Hessian-vector products (double backward),
never materialised. Both players *maximise* (../shared/DESIGN.md):

    g1  = grad_{theta1} J1 (p1,)             D12 = d/dtheta1 d/dtheta2^T J1 (p1 x p2)
    g2  = grad_{theta2} J2 (p2,)             D21 = d/dtheta2 d/dtheta1^T J2 (p2 x p1)

Games:
- :class:`BilinearGame`: J1 = x^T A y = -J2 (seed Figure 1 is ``BilinearGame.scalar()``, f = x y).
- :class:`QuadraticGame`: J_i = 0.5 theta^T H_i theta + h_i^T theta on theta = [theta1; theta2],
  zero-sum or general-sum, with closed-form derivatives (``closed_form_local_game``).
- :class:`MatrixGame`: a normal-form game with softmax-parameterised mixed strategies; theta_i are
  logits and J_i = softmax(theta1)^T A_i softmax(theta2). Named textbook instances and seeded random ones.

Everything is float64 unless the caller passes another floating dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.operators import LinearOperator

DTYPE = torch.float64


def _as_parameter_vector(theta, name: str, size: int) -> torch.Tensor:
    """A float tensor of shape (size,) from a tensor, array or list (float64 unless already floating)."""
    if isinstance(theta, torch.Tensor):
        t = theta if theta.is_floating_point() else theta.to(DTYPE)
    else:
        t = torch.as_tensor(np.asarray(theta, dtype=np.float64))
    if t.dim() != 1 or t.numel() != size:
        raise ValueError(f"{name} must be a flat vector of {size} parameters, got shape {tuple(t.shape)}")
    return t


def _mixed_hessian_operator(inner_grad: torch.Tensor, outer: torch.Tensor,
                            transpose_grad: torch.Tensor, transpose_wrt: torch.Tensor) -> LinearOperator:
    """The mixed Hessian d/d(outer) d/d(inner)^T J as a Hessian-vector-product operator.

    ``inner_grad`` = grad_inner J built with ``create_graph=True``; its matvec is
    v -> grad_outer (inner_grad . v), shape (len(outer), len(inner)). The transpose product is
    u -> grad_{transpose_wrt} (transpose_grad . u) with ``transpose_grad`` = grad_outer J.
    """
    rows, cols = outer.numel(), inner_grad.numel()

    def hvp(grad_vector: torch.Tensor, wrt: torch.Tensor, v: torch.Tensor, n_out: int) -> torch.Tensor:
        if v.shape != grad_vector.shape:
            raise ValueError(f"operator expects a vector of shape {tuple(grad_vector.shape)}, "
                             f"got {tuple(v.shape)}")
        if not grad_vector.requires_grad:  # J does not couple the two players
            return torch.zeros(n_out, dtype=wrt.dtype, device=wrt.device)
        (out,) = torch.autograd.grad(grad_vector, wrt, grad_outputs=v.detach().to(grad_vector.dtype),
                                     retain_graph=True, allow_unused=True)
        if out is None:
            return torch.zeros(n_out, dtype=wrt.dtype, device=wrt.device)
        return out.detach()

    return LinearOperator(
        matvec=lambda v: hvp(inner_grad, outer, v, rows),
        shape=(rows, cols),
        rmatvec=lambda u: hvp(transpose_grad, transpose_wrt, u, cols),
    )


class DifferentiableGame:
    """A two-player game with differentiable objectives J1(theta1, theta2), J2(theta1, theta2).

    Subclasses set ``p1``, ``p2`` (parameter counts), ``zero_sum`` and implement :meth:`values`.
    """

    p1: int
    p2: int
    zero_sum: bool = False
    name: str = "game"

    def values(self, theta1: torch.Tensor, theta2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both players' objectives (J1, J2) as differentiable 0-d tensors."""
        raise NotImplementedError

    def initial_parameters(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A starting point (theta1, theta2), float64.

        ``seed=None`` gives the game's documented default point; an int draws both vectors from
        ``numpy.random.default_rng(seed).standard_normal``.
        """
        if seed is None:
            return self._default_parameters()
        rng = np.random.default_rng(seed)
        return (torch.as_tensor(rng.standard_normal(self.p1), dtype=DTYPE),
                torch.as_tensor(rng.standard_normal(self.p2), dtype=DTYPE))

    def _default_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(self.p1, dtype=DTYPE), torch.zeros(self.p2, dtype=DTYPE)

    def fisher_operators(self, theta1: torch.Tensor, theta2: torch.Tensor
                         ) -> tuple[LinearOperator, LinearOperator]:
        """The players' Fisher information operators; only games with policies define them."""
        raise ValueError(f"{type(self).__name__} has no policies and so no Fisher information; "
                         "call local_game(..., fisher=False) or use a MatrixGame")

    def local_game(self, theta1, theta2, fisher: bool = False) -> LocalGame:
        """The exact local game at (theta1, theta2).

        g_i by autograd; D12, D21 as Hessian-vector products by double backward (never dense). The
        returned operators keep the autograd graph alive, so they remain valid as long as the
        LocalGame is. ``fisher=True`` adds F1, F2 (games with policies only). ``info`` holds the
        objective values ``J1``, ``J2`` (floats).
        """
        theta1 = _as_parameter_vector(theta1, "theta1", self.p1).detach().clone().requires_grad_(True)
        theta2 = _as_parameter_vector(theta2, "theta2", self.p2).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            J1, J2 = self.values(theta1, theta2)
            # g1 = grad_{theta1} J1, and the cross gradient grad_{theta2} J1 (for D12 = d1 d2^T J1)
            g1, g1_cross = torch.autograd.grad(J1, (theta1, theta2), create_graph=True, allow_unused=True)
            g2_cross, g2 = torch.autograd.grad(J2, (theta1, theta2), create_graph=True, allow_unused=True)
        g1 = torch.zeros_like(theta1) if g1 is None else g1
        g2 = torch.zeros_like(theta2) if g2 is None else g2
        g1_cross = torch.zeros_like(theta2) if g1_cross is None else g1_cross
        g2_cross = torch.zeros_like(theta1) if g2_cross is None else g2_cross
        # D12 v = grad_{theta1} (grad_{theta2} J1 . v);  D12^T u = grad_{theta2} (grad_{theta1} J1 . u)
        D12 = _mixed_hessian_operator(g1_cross, theta1, g1, theta2)
        # D21 v = grad_{theta2} (grad_{theta1} J2 . v);  D21^T u = grad_{theta1} (grad_{theta2} J2 . u)
        D21 = _mixed_hessian_operator(g2_cross, theta2, g2, theta1)
        F1 = F2 = None
        if fisher:
            F1, F2 = self.fisher_operators(theta1.detach(), theta2.detach())
        return LocalGame(g1.detach(), g2.detach(), D12, D21, F1, F2, zero_sum=self.zero_sum,
                         info={"J1": float(J1.detach()), "J2": float(J2.detach()), "game": self.name})


class BilinearGame(DifferentiableGame):
    """J1(x, y) = x^T A y, J2 = -J1 (zero-sum). A has shape (p1, p2).

    The unique Nash equilibrium of a nonsingular square A is (0, 0); simultaneous gradient ascent
    spirals away from it while CGD converges (seed Figure 1, Schaefer & Anandkumar 2019 Figure 1).
    Default start (seed=None): x = y = 0.5 (all ones times 0.5).
    """

    zero_sum = True

    def __init__(self, A, name: str | None = None):
        A = torch.as_tensor(np.asarray(A, dtype=np.float64)) if not isinstance(A, torch.Tensor) else A
        if A.dim() != 2:
            raise ValueError(f"BilinearGame needs a 2-d matrix A, got shape {tuple(A.shape)}")
        self.A = A.to(DTYPE) if not A.is_floating_point() else A
        self.p1, self.p2 = self.A.shape
        self.name = name or f"bilinear-{self.p1}x{self.p2}"

    @classmethod
    def scalar(cls) -> BilinearGame:
        """f(x, y) = x y with m = n = 1 (seed Figure 1)."""
        return cls(torch.ones(1, 1, dtype=DTYPE), name="bilinear-xy")

    @classmethod
    def identity(cls, n: int) -> BilinearGame:
        """J1 = x^T y = -J2 with x, y in R^n."""
        return cls(torch.eye(n, dtype=DTYPE), name=f"bilinear-identity-{n}")

    def values(self, theta1, theta2):
        J1 = theta1 @ (self.A.to(theta1) @ theta2)
        return J1, -J1

    def _default_parameters(self):
        return torch.full((self.p1,), 0.5, dtype=DTYPE), torch.full((self.p2,), 0.5, dtype=DTYPE)


class QuadraticGame(DifferentiableGame):
    """J_i(theta) = 0.5 theta^T H_i theta + h_i^T theta with theta = [theta1; theta2] of length p1 + p2.

    H_i are symmetric (p1+p2) x (p1+p2) matrices (symmetrised on construction), h_i vectors.
    ``H2=None`` and ``h2=None`` make the game zero-sum (H2 = -H1, h2 = -h1). Closed forms:
    g1 = (H1 theta + h1)[:p1], g2 = (H2 theta + h2)[p1:], D12 = H1[:p1, p1:], D21 = H2[p1:, :p1].
    """

    def __init__(self, H1, p1: int, H2=None, h1=None, h2=None, name: str | None = None):
        H1 = torch.as_tensor(np.asarray(H1, dtype=np.float64)) if not isinstance(H1, torch.Tensor) else H1
        if H1.dim() != 2 or H1.shape[0] != H1.shape[1]:
            raise ValueError(f"H1 must be a square matrix, got shape {tuple(H1.shape)}")
        n = H1.shape[0]
        if not (isinstance(p1, int) and 0 < p1 < n):
            raise ValueError(f"p1 must be an int in 1..{n - 1} (H1 is {n} x {n}), got {p1!r}")
        self.p1, self.p2 = p1, n - p1
        self.zero_sum = H2 is None and h2 is None

        def as_vector(h, label):
            if h is None:
                return torch.zeros(n, dtype=DTYPE)
            h = torch.as_tensor(np.asarray(h, dtype=np.float64)) if not isinstance(h, torch.Tensor) else h
            if h.shape != (n,):
                raise ValueError(f"{label} must have shape ({n},), got {tuple(h.shape)}")
            return h.to(DTYPE)

        self.H1 = 0.5 * (H1.to(DTYPE) + H1.to(DTYPE).T)
        self.h1 = as_vector(h1, "h1")
        if self.zero_sum:
            self.H2, self.h2 = -self.H1, -self.h1
        else:
            if H2 is None:
                raise ValueError("a general-sum QuadraticGame needs H2 (pass H2=None and h2=None "
                                 "for the zero-sum game H2 = -H1)")
            H2 = torch.as_tensor(np.asarray(H2, dtype=np.float64)) if not isinstance(H2, torch.Tensor) else H2
            if H2.shape != (n, n):
                raise ValueError(f"H2 must have shape ({n}, {n}), got {tuple(H2.shape)}")
            self.H2 = 0.5 * (H2.to(DTYPE) + H2.to(DTYPE).T)
            self.h2 = as_vector(h2, "h2")
        self.name = name or f"quadratic-{'zero' if self.zero_sum else 'general'}-sum-{self.p1}x{self.p2}"

    @classmethod
    def random(cls, p1: int, p2: int, zero_sum: bool = True, seed: int = 0) -> QuadraticGame:
        """Standard normal H_i (symmetrised) and h_i from ``numpy.random.default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        n = p1 + p2
        H1, h1 = rng.standard_normal((n, n)), rng.standard_normal(n)
        if zero_sum:
            return cls(H1, p1, h1=h1)
        return cls(H1, p1, H2=rng.standard_normal((n, n)), h1=h1, h2=rng.standard_normal(n))

    def values(self, theta1, theta2):
        theta = torch.cat([theta1, theta2])
        J1 = 0.5 * theta @ (self.H1.to(theta) @ theta) + self.h1.to(theta) @ theta
        J2 = 0.5 * theta @ (self.H2.to(theta) @ theta) + self.h2.to(theta) @ theta
        return J1, J2

    def closed_form_local_game(self, theta1, theta2) -> LocalGame:
        """The local game from the closed forms (dense operators): a reference for the autograd one."""
        theta1 = _as_parameter_vector(theta1, "theta1", self.p1).to(DTYPE)
        theta2 = _as_parameter_vector(theta2, "theta2", self.p2).to(DTYPE)
        theta, p1 = torch.cat([theta1, theta2]), self.p1
        g1 = (self.H1 @ theta + self.h1)[:p1]
        g2 = (self.H2 @ theta + self.h2)[p1:]
        return LocalGame.dense(g1, g2, self.H1[:p1, p1:], self.H2[p1:, :p1], zero_sum=self.zero_sum)


# Named normal-form games. payoff1[a1, a2] is the row player's (player 1's) payoff, payoff2[a1, a2]
# the column player's. Textbook values (e.g. Osborne & Rubinstein, "A Course in Game Theory"; Axelrod
# 1984 for the prisoner's dilemma).
_NAMED_GAMES: dict[str, tuple[list[list[float]], list[list[float]], str]] = {
    # actions (heads, tails); player 1 wins 1 when the coins match, player 2 when they differ.
    # Unique Nash: both uniform, value 0.
    "matching-pennies": ([[1.0, -1.0], [-1.0, 1.0]], [[-1.0, 1.0], [1.0, -1.0]],
                         "zero-sum; actions (heads, tails); player 1 wins on a match"),
    # actions (rock, paper, scissors); win 1, lose -1, tie 0. Unique Nash: both uniform, value 0.
    "rock-paper-scissors": ([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]],
                            [[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]],
                            "zero-sum; actions (rock, paper, scissors); win 1, tie 0, lose -1"),
    # actions (cooperate, defect); Axelrod's R = 3, S = 0, T = 5, P = 1. Unique Nash: (defect, defect).
    "prisoners-dilemma": ([[3.0, 0.0], [5.0, 1.0]], [[3.0, 5.0], [0.0, 1.0]],
                          "general-sum; actions (cooperate, defect); R=3, S=0, T=5, P=1"),
    # actions (swerve, straight); tie 0, swerving against straight -1 / +1, crash -10.
    # Pure Nash: (swerve, straight), (straight, swerve); mixed: straight with probability 1/10.
    "chicken": ([[0.0, -1.0], [1.0, -10.0]], [[0.0, 1.0], [-1.0, -10.0]],
                "general-sum; actions (swerve, straight); swerve vs straight -1/+1, crash -10"),
    # actions (stag, hare); stag together 4, hare 3 whatever the other does, stag alone 0.
    "stag-hunt": ([[4.0, 0.0], [3.0, 3.0]], [[4.0, 3.0], [0.0, 3.0]],
                  "general-sum; actions (stag, hare); stag together 4, hare 3, stag alone 0"),
}


class MatrixGame(DifferentiableGame):
    """A two-player normal-form game with softmax-parameterised mixed strategies.

    theta_i are logits (length n_i); p_i = softmax(theta_i); J_i = p1^T payoff_i p2, where player i
    receives ``payoff_i[a1, a2]`` when the players pick actions a1, a2. payoff1, payoff2 are float64
    tensors of shape (n1, n2). The game is zero-sum iff payoff2 == -payoff1 exactly.

    Fisher information of the softmax (categorical) policy: F_i = diag(p_i) - p_i p_i^T (n_i x n_i).
    Default start (seed=None): zero logits, i.e. uniform strategies.
    """

    def __init__(self, payoff1, payoff2, name: str | None = None):
        def as_matrix(a, label):
            a = torch.as_tensor(np.asarray(a, dtype=np.float64)) if not isinstance(a, torch.Tensor) else a
            if a.dim() != 2 or a.shape[0] < 1 or a.shape[1] < 1:
                raise ValueError(f"{label} must be a non-empty (n1, n2) matrix, got shape {tuple(a.shape)}")
            return a.detach().to(DTYPE).clone()

        self.payoff1 = as_matrix(payoff1, "payoff1")
        self.payoff2 = as_matrix(payoff2, "payoff2")
        if self.payoff1.shape != self.payoff2.shape:
            raise ValueError(f"payoff1 and payoff2 must have the same shape, got "
                             f"{tuple(self.payoff1.shape)} and {tuple(self.payoff2.shape)}")
        if not (torch.isfinite(self.payoff1).all() and torch.isfinite(self.payoff2).all()):
            raise ValueError("payoff matrices must be finite")
        self.p1, self.p2 = self.payoff1.shape
        self.zero_sum = bool(torch.equal(self.payoff2, -self.payoff1))
        self.name = name or f"matrix-{self.p1}x{self.p2}"

    @classmethod
    def names(cls) -> list[str]:
        """The named games available through :meth:`named`."""
        return sorted(_NAMED_GAMES)

    @classmethod
    def named(cls, name: str) -> MatrixGame:
        """A textbook game by name (see :meth:`names`; payoffs documented in ``_NAMED_GAMES``)."""
        if name not in _NAMED_GAMES:
            raise ValueError(f"unknown matrix game {name!r}; choose one of {', '.join(cls.names())}")
        payoff1, payoff2, _ = _NAMED_GAMES[name]
        return cls(payoff1, payoff2, name=name)

    @classmethod
    def random(cls, n1: int, n2: int, zero_sum: bool = True, seed: int = 0) -> MatrixGame:
        """Payoffs uniform on [-1, 1) from ``numpy.random.default_rng(seed)``.

        ``zero_sum=True``: payoff2 = -payoff1; otherwise payoff2 is drawn independently.
        """
        for label, n in (("n1", n1), ("n2", n2)):
            if not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"{label} must be a positive int, got {n!r}")
        rng = np.random.default_rng(seed)
        payoff1 = rng.uniform(-1.0, 1.0, size=(n1, n2))
        payoff2 = -payoff1 if zero_sum else rng.uniform(-1.0, 1.0, size=(n1, n2))
        kind = "zero-sum" if zero_sum else "general-sum"
        return cls(payoff1, payoff2, name=f"random-{kind}-{n1}x{n2}-seed{seed}")

    @property
    def n_actions(self) -> tuple[int, int]:
        return self.p1, self.p2

    @staticmethod
    def logits(p) -> torch.Tensor:
        """Logits log p of a strictly positive probability vector (so softmax(logits) = p / sum p)."""
        p = torch.as_tensor(np.asarray(p, dtype=np.float64)) if not isinstance(p, torch.Tensor) else p
        if p.dim() != 1 or not bool((p > 0).all()):
            raise ValueError(f"logits need a flat, strictly positive probability vector, got {p!r}")
        return torch.log(p.to(DTYPE))

    def probabilities(self, theta1, theta2) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed strategies (softmax(theta1), softmax(theta2))."""
        theta1 = _as_parameter_vector(theta1, "theta1", self.p1)
        theta2 = _as_parameter_vector(theta2, "theta2", self.p2)
        return torch.softmax(theta1, dim=0), torch.softmax(theta2, dim=0)

    def values(self, theta1, theta2):
        pi1, pi2 = self.probabilities(theta1, theta2)
        J1 = pi1 @ (self.payoff1.to(pi1) @ pi2)
        J2 = pi1 @ (self.payoff2.to(pi1) @ pi2)
        return J1, J2

    def fisher_operators(self, theta1, theta2):
        """F_i = diag(p_i) - p_i p_i^T, the Fisher information of softmax(theta_i) in its logits."""
        pi1, pi2 = (p.detach() for p in self.probabilities(theta1, theta2))

        def categorical_fisher(p: torch.Tensor) -> LinearOperator:
            def matvec(v):
                return p * v - p * (p @ v)
            return LinearOperator(matvec, (p.numel(), p.numel()), matvec)  # symmetric

        return categorical_fisher(pi1), categorical_fisher(pi2)

    def __repr__(self) -> str:
        return f"MatrixGame(name={self.name!r}, shape={self.p1}x{self.p2}, zero_sum={self.zero_sum})"


def distance_to_origin(theta1: torch.Tensor, theta2: torch.Tensor) -> float:
    """Euclidean norm of the stacked parameters, ||(theta1, theta2)|| (bilinear-game diagnostics)."""
    return math.sqrt(float(theta1 @ theta1) + float(theta2 @ theta2))
