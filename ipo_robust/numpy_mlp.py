"""NumPy forward passes and Gaussian draws for the rollout samplers of :mod:`ipo_robust.policies`.

At rollout sizes (tens of rows) NumPy's elementwise kernels and calls cost a fraction of torch's
(``np.tanh`` 1.9 us against ``torch.tanh`` 11.5 us on a 64 x 64 block; benchmarks/RESULTS.md, issue 15),
so the policies' ``sampler()`` runs their MLPs here on detached copies of the weights. Noise comes from
the rollout's ``torch.Generator``, the same stream :func:`ipo_robust.policies.sample_action` draws.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_NUMPY_FLOATS = (torch.float32, torch.float64)


def numpy_layers(modules) -> list | None:
    """[(W^T, b, activation or None), ...] as NumPy arrays (detached copies) of a sequence of ``nn.Linear``
    and elementwise ``nn.Tanh`` / ``nn.ReLU`` modules, or None for any other layout."""
    layers: list[list] = []
    for module in modules:
        if type(module) is nn.Linear:
            weight = module.weight.detach().cpu().numpy().T.copy()
            bias = None if module.bias is None else module.bias.detach().cpu().numpy().copy()
            layers.append([weight, bias, None])
        elif type(module) in (nn.Tanh, nn.ReLU) and layers and layers[-1][2] is None:
            layers[-1][2] = np.tanh if type(module) is nn.Tanh else _relu_
        else:
            return None
    return layers


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
    action = mean + scale * eps
    diff = action - mean
    log_prob = (-(diff * diff) / (2 * (scale * scale)) - log_scale - _LOG_SQRT_2PI).sum(-1)
    return torch.from_numpy(action), torch.from_numpy(log_prob)
