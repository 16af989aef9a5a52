"""Where tensors live: the run's device (``run.device``) and moving a module with its Adam moments.

Training runs on the CPU by default. With ``run.device = "cuda"`` the policies, critics, opponent models
and every update run on the GPU; the environments stay on the CPU, and rollouts sample from CPU copies of
the policies' weights (:meth:`ipo_robust.policies.Policy.sampler`), so a batch crosses to the device once.
"""

from __future__ import annotations

import torch


def device_problem(name: str) -> str | None:
    """Why ``name`` cannot be this run's device, or None: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` with that
    GPU present."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        return f"{name!r} is not a device: use 'cpu', 'cuda' or 'cuda:N'"
    if device.type == "cpu":
        return None if device.index is None else f"{name!r}: say 'cpu' (the CPU device has no index)"
    if device.type != "cuda":
        return f"{name!r}: only 'cpu' and CUDA ('cuda', 'cuda:N') are supported"
    if not torch.cuda.is_available():
        return f"{name!r}, but torch finds no CUDA device here (torch {torch.__version__}); use 'cpu'"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"{name!r}, but torch finds {count} CUDA device(s) (cuda:0 to cuda:{count - 1})"
    return None


def relocate(module: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
             device: torch.device) -> torch.optim.Optimizer | None:
    """Move ``module`` to ``device`` with the moments of ``optimizer`` (which holds exactly its parameters);
    returns the optimizer to use from now on (the same one when nothing had to move).

    For state loaded from a checkpoint onto the CPU and then met by batches on another device: a module moves
    in place, but an optimizer's moments stay where they were, so it is rebuilt from its state dict, whose
    loading casts the moments to the parameters' device.
    """
    first = next(module.parameters(), None)
    if first is None or first.device == device:
        return optimizer
    state = None if optimizer is None else optimizer.state_dict()
    module.to(device)
    if optimizer is None:
        return None
    moved = type(optimizer)(module.parameters(), **optimizer.defaults)
    moved.load_state_dict(state)
    return moved
