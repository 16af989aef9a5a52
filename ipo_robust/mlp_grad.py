"""Gradients of the project's MLPs written out by hand, for updates that take many small gradient steps.

PPO takes 16 Adam steps per player per batch (4 epochs x 4 minibatches of 1,600 rows on a 64-copy batch),
each on a policy and a critic of two 64-wide tanh layers. Through autograd a PPO update on sumo-pushers
spent two thirds of its time outside the matrix products: graph bookkeeping, ``torch.distributions``
objects, advanced indexing and the per-call cost of the NumPy tanh Function (benchmarks/RESULTS.md,
issue 15). For a chain of ``nn.Linear`` layers with an elementwise tanh or ReLU after each but the last,
the backward pass is a few lines::

    forward:   x_0 = input,  z_k = x_k W_k^T + b_k,  x_{k+1} = f_k(z_k)      (f_last = identity)
    backward:  dz_last = dL/d output
               dW_k = dz_k^T x_k,   db_k = sum_rows dz_k,   dx_k = dz_k W_k
               dz_{k-1} = dx_k * f'(z_{k-1})     tanh: 1 - x_k^2;  ReLU: [x_k > 0]

:func:`linear_layers` recognises such a network (else None: the caller keeps autograd), :func:`forward`
records the layer inputs on a :class:`Tape`, and :func:`backward` returns the gradients in
``net.parameters()`` order. :func:`gaussian_log_prob` and :func:`gaussian_log_prob_backward` are the same
for a diagonal Gaussian head with a state-independent log-std (:class:`~ipo_robust.policies.GaussianMLPPolicy`).
Only CPU float32/64 parameters qualify: there tanh's value comes from ``np.tanh`` in place (NumPy's kernel
is several times faster than torch's at these sizes; :mod:`ipo_robust.numpy_mlp`), and on a GPU the
autograd path's kernel launches are not where the time goes. Tests compare every gradient with autograd's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ipo_robust.numpy_mlp import Tanh

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_ACTIVATIONS = {nn.Tanh: "tanh", Tanh: "tanh", nn.ReLU: "relu"}


def linear_layers(net: nn.Module) -> list[tuple[nn.Linear, str | None]] | None:
    """[(linear, "tanh" | "relu" | None), ...] of an ``nn.Sequential`` of ``nn.Linear`` layers each followed by at
    most one tanh or ReLU module, all its parameters CPU float32 or all float64; None for anything else."""
    if not isinstance(net, nn.Sequential):
        return None
    layers: list[list] = []
    for module in net:
        if type(module) is nn.Linear:
            layers.append([module, None])
        elif type(module) in _ACTIVATIONS and layers and layers[-1][1] is None:
            layers[-1][1] = _ACTIVATIONS[type(module)]
        else:
            return None
    params = list(net.parameters())
    if not layers or not all(p.device.type == "cpu" and p.dtype == params[0].dtype for p in params) \
            or params[0].dtype not in (torch.float32, torch.float64):
        return None
    return [(linear, activation) for linear, activation in layers]


def parameters(layers: list[tuple[nn.Linear, str | None]]) -> list[nn.Parameter]:
    """The layers' parameters in the order :func:`backward` returns their gradients (``net.parameters()``')."""
    return [p for linear, _ in layers for p in linear.parameters()]


@dataclass
class Tape:
    """What :func:`backward` needs from a forward pass: each layer's input x_k and its output x_{k+1}."""

    layers: list[tuple[nn.Linear, str | None]]
    inputs: list[torch.Tensor]
    output: torch.Tensor


def forward(layers: list[tuple[nn.Linear, str | None]], x: torch.Tensor) -> Tape:
    """The network's output on rows ``x`` (B, in), no autograd graph, with the layer inputs kept."""
    inputs = []
    with torch.no_grad():
        for linear, activation in layers:
            inputs.append(x)
            x = affine(linear, x)
            if activation == "tanh":
                np.tanh(x.numpy(), out=x.numpy())  # in place on the fresh product (module docstring)
            elif activation == "relu":
                x.clamp_(min=0)
    return Tape(layers, inputs, x)


def deltas(tape: Tape, grad_output: torch.Tensor) -> list[torch.Tensor]:
    """dz_k for every layer k (rows: the samples) of L = sum(grad_output * output): with ``grad_output`` row m
    the derivative of sample m's own loss, row m of dz_k is that sample's gradient at layer k's output."""
    dz = grad_output
    out: list[torch.Tensor] = [dz]
    with torch.no_grad():
        for k in range(len(tape.layers) - 1, 0, -1):
            dz = activation_backward(tape.layers[k - 1][1], dz.mm(tape.layers[k][0].weight), tape.inputs[k])
            out.append(dz)
    return out[::-1]


def activation_backward(activation: str | None, grad: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """The gradient at an activation's input from the gradient at its ``output``."""
    if activation == "tanh":
        return torch.ops.aten.tanh_backward(grad, output)  # grad (1 - y^2), y = tanh(z)
    if activation == "relu":
        return torch.ops.aten.threshold_backward(grad, output, 0)  # grad [y > 0]
    return grad


def affine(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """x W^T + b on rows x, a fresh tensor (no autograd graph inside :func:`forward`'s no_grad)."""
    return torch.mm(x, linear.weight.t()) if linear.bias is None else torch.addmm(linear.bias, x, linear.weight.t())


def backward(tape: Tape, grad_output: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of sum(grad_output * output) with respect to the network's parameters, in ``parameters()``
    order (each layer's weight, then its bias); ``grad_output`` has the output's shape."""
    grads: list[torch.Tensor] = []
    with torch.no_grad():
        for (linear, _), x, dz in zip(tape.layers, tape.inputs, deltas(tape, grad_output), strict=True):
            grads.append(dz.t().mm(x))
            if linear.bias is not None:
                grads.append(dz.sum(0))
    return grads


def squared_error(layers: list[tuple[nn.Linear, str | None]], x: torch.Tensor, target: torch.Tensor,
                  scale: float = 1.0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(mean_rows (f(x) - target)^2, the gradients of ``scale`` times it in ``parameters()`` order) of a network
    with one output, f(x) (B, 1) against ``target`` (B,); the error is taken in ``target``'s dtype (a float64
    loss of a float32 critic), the gradients in the parameters'."""
    tape = forward(layers, x)
    with torch.no_grad():
        error = tape.output.squeeze(-1).to(target.dtype) - target
        grad = ((2.0 * scale / error.numel()) * error).to(tape.output.dtype).unsqueeze(-1)
        loss = (error * error).mean()
    return loss, backward(tape, grad)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log N(action; mean, diag exp(2 log_std)) summed over the last dimension (B,), the standardised
    residual z = (action - mean) / std (B, d), which :func:`gaussian_log_prob_backward` takes)."""
    with torch.no_grad():
        z = (action - mean) * torch.exp(-log_std)
        log_prob = (-0.5 * z * z - log_std).sum(-1) - mean.shape[-1] * _LOG_SQRT_2PI
    return log_prob, z


def gaussian_log_prob_backward(grad_log_prob: torch.Tensor, z: torch.Tensor, log_std: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/d mean (B, d), dL/d log_std (d,)) from dL/d log_prob (B,):
    d log_prob / d mean = z / std, d log_prob / d log_std = z^2 - 1."""
    with torch.no_grad():
        g = grad_log_prob.unsqueeze(-1)
        return g * z * torch.exp(-log_std), (g * (z * z - 1)).sum(0)
