"""The local game: first and mixed second derivatives of both players' objectives at a point.

Conventions (../DESIGN.md): both players *maximise*. With J_i the objective of player i and theta_i
its flat parameter vector,

    g1  = grad_{theta1} J1                      (p1,)
    g2  = grad_{theta2} J2                      (p2,)
    D12 = d/dtheta1 d/dtheta2^T J1              (p1 x p2)
    D21 = d/dtheta2 d/dtheta1^T J2              (p2 x p1)
    F1, F2: the players' Fisher information (natural and trust-region variants only).

Estimators build a LocalGame (from samples or exactly); update rules consume it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ipo_robust.optim.operators import LinearOperator, as_operator


@dataclass
class LocalGame:
    g1: torch.Tensor
    g2: torch.Tensor
    D12: LinearOperator
    D21: LinearOperator
    F1: LinearOperator | None = None
    F2: LinearOperator | None = None
    zero_sum: bool = False
    """Declared zero-sum (J2 = -J1), so D21 = -D12^T and the CGD system is symmetric positive definite."""
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.D12 = as_operator(self.D12)
        self.D21 = as_operator(self.D21)
        if self.F1 is not None:
            self.F1 = as_operator(self.F1)
        if self.F2 is not None:
            self.F2 = as_operator(self.F2)
        if self.g1.dim() != 1 or self.g2.dim() != 1:
            raise ValueError(
                f"g1 and g2 must be flat vectors, got shapes {tuple(self.g1.shape)} and {tuple(self.g2.shape)}"
            )
        p1, p2 = self.p1, self.p2
        expected = {"D12": (p1, p2), "D21": (p2, p1), "F1": (p1, p1), "F2": (p2, p2)}
        for name, shape in expected.items():
            op = getattr(self, name)
            if op is not None and op.shape != shape:
                raise ValueError(f"{name} has shape {op.shape}, expected {shape} for p1={p1}, p2={p2}")

    @property
    def p1(self) -> int:
        return self.g1.numel()

    @property
    def p2(self) -> int:
        return self.g2.numel()

    @classmethod
    def dense(cls, g1, g2, D12, D21, F1=None, F2=None, zero_sum=False) -> LocalGame:
        """A local game from dense matrices (tests, tiny games)."""
        return cls(g1, g2, LinearOperator.dense(D12), LinearOperator.dense(D21),
                   None if F1 is None else LinearOperator.dense(F1),
                   None if F2 is None else LinearOperator.dense(F2), zero_sum)
