"""NumPy forward passes and Gaussian draws for the rollout samplers of :mod:`ipo_robust.policies`, and the
NumPy-backed :class:`Tanh` of the project's MLPs.

At rollout sizes (tens of rows) NumPy's elementwise kernels and calls cost a fraction of torch's
(``np.tanh`` 1.9 us against ``torch.tanh`` 11.5 us on a 64 x 64 block; benchmarks/RESULTS.md, issue 15),
so the policies' ``sampler()`` runs their MLPs here on detached copies of the weights. Noise comes from
the rollout's ``torch.Generator``, the same stream :func:`ipo_robust.policies.sample_action` draws.

The gap holds at update sizes too (``torch.tanh`` 261 us against ``np.tanh`` 37 us on 1600 x 64 float32,
a quarter of a PPO update), so the MLPs' tanh layers compute their forward value with ``np.tanh`` on CPU
float32/64 tensors and differentiate it as torch does (``1 - y^2``, itself differentiable).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_NUMPY_FLOATS = (torch.float32, torch.float64)


class _NumpyTanh(torch.autograd.Function):
    """y = tanh(x) by ``np.tanh``; dy = (1 - y^2) dx by torch's own ``tanh_backward`` kernel (differentiable,
    so double backward works; 57 us on 6400 x 64 where the three-op ``g * (1 - y * y)`` takes 2.4 ms)."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.tanh(x.detach().contiguous().numpy()))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(tangent, y)


def _transforms_active() -> bool:
    """Inside a torch.func transform (vmap, grad, jvp), where only torch ops may run. Without the check
    (a torch without it), assume so: torch.tanh is always correct, only slower."""
    check = getattr(torch._C, "_are_functorch_transforms_active", None)
    return True if check is None else bool(check())


#: the smallest tensor whose tanh goes through NumPy: the autograd Function's Python calls cost ~65 us per
#: forward and backward, which a 64 x 64 block never earns back (torch 34 us, NumPy 72 us) and 400 x 64 just
#: breaks even (97 / 90 us); at 1600 x 64 it is 315 against 150 us (one thread, float32)
NUMPY_TANH_MIN_ELEMENTS = 1 << 16


class Tanh(nn.Tanh):
    """``nn.Tanh`` whose value on a CPU float32/64 tensor of at least :data:`NUMPY_TANH_MIN_ELEMENTS` entries
    comes from ``np.tanh`` (module docstring); on smaller tensors, any other device or dtype, and inside
    torch.func transforms, ``torch.tanh``. Values agree with ``torch.tanh`` to a few units in the last place;
    gradients are the same formula."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() >= NUMPY_TANH_MIN_ELEMENTS and x.device.type == "cpu" and x.dtype in _NUMPY_FLOATS \
                and not _transforms_active():
            return _NumpyTanh.apply(x)
        return torch.tanh(x)


def numpy_layers(modules) -> list | None:
    """[(W^T, b, activation or None), ...] as NumPy arrays (detached copies) of a sequence of ``nn.Linear``
    and elementwise ``nn.Tanh`` / ``nn.ReLU`` modules, or None for any other layout."""
    layers: list[list] = []
    for module in modules:
        if type(module) is nn.Linear:
            weight = module.weight.detach().cpu().numpy().T.copy()
            bias = None if module.bias is None else module.bias.detach().cpu().numpy().copy()
            layers.append([weight, bias, None])
        elif type(module) in (nn.Tanh, Tanh, nn.ReLU) and layers and layers[-1][2] is None:
            layers[-1][2] = _relu_ if type(module) is nn.ReLU else np.tanh
        else:
            return None
    return layers


def stack_layers(first: list | None, second: list | None) -> list | None:
    """Two :func:`numpy_layers` lists of the same shapes and activations as one, each weight (2, in, out) and
    bias (2, 1, out): :func:`forward` on (2, B, in) rows then runs both networks with one product per layer
    (``np.matmul`` takes each slice through the same BLAS call as a 2-D product: the same bits). None when the
    layouts differ."""
    if first is None or second is None or len(first) != len(second):
        return None
    stacked = []
    for (w1, b1, f1), (w2, b2, f2) in zip(first, second, strict=True):
        if w1.shape != w2.shape or w1.dtype != w2.dtype or f1 is not f2 or (b1 is None) != (b2 is None):
            return None
        stacked.append([np.stack([w1, w2]), None if b1 is None else np.stack([b1, b2])[:, None, :], f1])
    return stacked


def _relu_(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=out)


def forward(layers: list, x: np.ndarray) -> np.ndarray:
    for weight, bias, activation in layers:
        x = x @ weight
        if bias is not None:
            x += bias
        if activation is not None:
            activation(x, out=x)
    return x


def numpy_sampling(policy: nn.Module) -> bool:
    """Whether the rollout sampler of ``policy`` may run in NumPy: all parameters in one of float32/64, on one
    device (CUDA parameters are copied to the CPU once per sampler: rollouts then never wait on the device)."""
    params = list(policy.parameters())
    return bool(params) and all(p.device == params[0].device and p.dtype == params[0].dtype for p in params) \
        and params[0].dtype in _NUMPY_FLOATS


def gaussian_draw(mean: np.ndarray, scale: np.ndarray, log_scale: np.ndarray, generator: torch.Generator):
    """(action, log_prob) tensors: ``mean + scale * eps`` with eps drawn as :func:`sample_action` draws it
    (``torch.randn`` from ``generator``, the same stream), and the diagonal Gaussian's log-density."""
    eps = torch.randn(mean.shape, generator=generator, dtype=torch.from_numpy(mean[:0]).dtype).numpy()
    action, log_prob = _sample(mean, scale, log_scale, eps)
    return torch.from_numpy(action), torch.from_numpy(log_prob)


def _sample(mean: np.ndarray, scale: np.ndarray, log_scale: np.ndarray, eps: np.ndarray):
    """(mean + scale * eps, its diagonal Gaussian log-density summed over the last axis), NumPy."""
    action = mean + scale * eps
    diff = action - mean
    return action, (-(diff * diff) / (2 * (scale * scale)) - log_scale - _LOG_SQRT_2PI).sum(-1)


def stacked_gaussian_draw(mean: np.ndarray, scale: np.ndarray, log_scale: np.ndarray, generator: torch.Generator,
                          noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gaussian_draw` for two players at once: ``mean`` and ``noise`` (a buffer it overwrites) (2, B, d),
    ``scale`` and ``log_scale`` (2, 1, d). Player 1's eps is drawn first, then player 2's, each as
    ``torch.randn((B, d))`` draws it (``randn`` is ``normal_`` on a fresh tensor): the same stream and bits as two
    :func:`gaussian_draw` calls. Returns NumPy (action (2, B, d), log_prob (2, B))."""
    eps = torch.from_numpy(noise)
    eps[0].normal_(generator=generator)
    eps[1].normal_(generator=generator)
    return _sample(mean, scale, log_scale, noise)
