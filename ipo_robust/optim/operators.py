"""Linear operators given by matrix-vector products.

Mixed Hessians and Fisher matrices of policies with many parameters are never formed: an estimator
hands the update rules a :class:`LinearOperator`, which is a shape plus a ``matvec`` callable. The
callable may run autograd (Hessian-vector products), multiply low-rank factors, or wrap a dense matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LinearOperator:
    """A linear map R^shape[1] -> R^shape[0] known through its matvec.

    ``rmatvec`` (the transpose product) is optional; update rules never need it.
    """

    matvec: Matvec
    shape: tuple[int, int]
    rmatvec: Matvec | None = None

    def __post_init__(self):
        if len(self.shape) != 2 or any(int(s) < 0 for s in self.shape):
            raise ValueError(f"LinearOperator shape must be (rows, cols), got {self.shape!r}")
        object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v)

    @classmethod
    def dense(cls, matrix: torch.Tensor) -> LinearOperator:
        """Wrap a dense matrix (the reference implementation in tests and small games)."""
        if matrix.dim() != 2:
            raise ValueError(f"dense operator needs a 2-d matrix, got shape {tuple(matrix.shape)}")
        return cls(lambda v: matrix @ v, tuple(matrix.shape), lambda v: matrix.T @ v)

    @classmethod
    def zeros(cls, rows: int, cols: int, like: torch.Tensor) -> LinearOperator:
        """The zero map (independent learners: mixed Hessians that vanish)."""
        return cls(lambda v: torch.zeros(rows, dtype=like.dtype, device=like.device), (rows, cols),
                   lambda v: torch.zeros(cols, dtype=like.dtype, device=like.device))

    @classmethod
    def identity(cls, n: int) -> LinearOperator:
        return cls(lambda v: v, (n, n), lambda v: v)

    def to_dense(self, like: torch.Tensor) -> torch.Tensor:
        """Materialise by applying the operator to each basis vector (tests and tiny problems only)."""
        eye = torch.eye(self.shape[1], dtype=like.dtype, device=like.device)
        if self.shape[1] == 0:
            return torch.zeros(self.shape, dtype=like.dtype, device=like.device)
        return torch.stack([self.matvec(eye[:, j]) for j in range(self.shape[1])], dim=1)


def as_operator(op: LinearOperator | torch.Tensor) -> LinearOperator:
    """Accept a dense tensor where an operator is expected."""
    if isinstance(op, LinearOperator):
        return op
    if isinstance(op, torch.Tensor):
        return LinearOperator.dense(op)
    raise TypeError(f"expected a LinearOperator or a 2-d torch.Tensor, got {type(op).__name__}")
