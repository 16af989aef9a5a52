"""Monte-Carlo critics of the sample estimator: V_i(s) baselines or Q_i(s, a1, a2) for eq. (14).

:class:`ReturnCritics` owns both players' critics and their Adam optimizers for their whole life: sized
from the first batch (or rebuilt from a checkpoint's size spec), fitted on each batch's returns-to-go
*after* that batch's update and used from the next batch on, so a value baseline is independent of the
samples it is subtracted from (the estimates of eqs. (12)-(14) stay unbiased).
"""

from __future__ import annotations

import math

import torch

from ipo_robust import mlp_grad
from ipo_robust.batch import Batch, reverse_segment_cumsum
from ipo_robust.devices import relocate
from ipo_robust.threads import thread_map
from ipo_robust.value_functions import QCritic, ValueCritic

CRITIC_KINDS = ("none", "value", "q")


def adam(params, **options) -> torch.optim.Adam:
    """``torch.optim.Adam`` over ``params``, its fused kernel where all of them are CPU or CUDA floats: one kernel
    per step for all the tensors, where the default CPU path runs a dozen small ops per tensor. PPO's 32 Adam
    steps per update on sumo-pushers took 15 ms that way (benchmarks/RESULTS.md, issue 15). The same update
    rule; the rounding differs in the last bits."""
    params = list(params)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, fused=fused or None, **options)


def regression_step(critic: torch.nn.Module, optimizer: torch.optim.Optimizer, inputs: tuple,
                    target: torch.Tensor, scale: float = 1.0) -> float:
    """One ``optimizer`` step on scale * mean (critic(*inputs) - target)^2, the error in ``target``'s dtype;
    returns the mean squared error before the step. A :class:`ValueCritic` or :class:`QCritic` whose network
    :func:`ipo_robust.mlp_grad.linear_layers` accepts, all of it trainable, is differentiated by hand (the
    same gradient, without autograd's bookkeeping); any other critic by autograd."""
    layers = mlp_grad.linear_layers(critic.net) if type(critic) in (ValueCritic, QCritic) \
        and all(p.requires_grad for p in critic.parameters()) else None
    if layers is None:
        with torch.enable_grad():
            loss = ((critic(*inputs).to(target.dtype) - target) ** 2).mean()
            optimizer.zero_grad()
            (scale * loss).backward()
    else:
        loss, grads = mlp_grad.squared_error(layers, critic.features(*inputs), target, scale)
        for p, g in zip(mlp_grad.parameters(layers), grads, strict=True):
            p.grad = g
    optimizer.step()
    return float(loss.detach())


class _FlatBox:
    """A (d,) Box as the critics read it (``low``, ``high``, ``shape``)."""

    def __init__(self, d: int):
        self.shape, self.low, self.high = (int(d),), -math.inf, math.inf


class _Choices:
    """A Discrete(n) as the critics read it (``n``)."""

    def __init__(self, n: int):
        self.n = int(n)


def critic_spaces(batch: Batch, agents=None):
    """Observation and action spaces for centralised critics, read off a batch and the policies.

    ``agents=None`` (an opponent model is attached, so no policy may be read): a discrete action count
    is the largest action in the batch plus one, which undercounts only if the top action never appears.
    """
    observations = (_FlatBox(batch.obs1.shape[-1]), _FlatBox(batch.obs2.shape[-1]))
    actions = []
    for agent, obs, act in zip(agents or (None, None), (batch.obs1, batch.obs2), (batch.act1, batch.act2),
                               strict=True):
        if act.is_floating_point():
            actions.append(_FlatBox(act.shape[-1]))
        elif agent is None:
            actions.append(_Choices(int(act.max()) + 1))
        else:
            with torch.no_grad():
                actions.append(_Choices(agent.distribution(obs[:1, :1]).probs.shape[-1]))
    return observations, tuple(actions)


class ReturnCritics:
    """Both players' critics, regressed on Monte-Carlo returns-to-go of complete episodes.

    kind: ``"value"`` (V_i(s), baselines) or ``"q"`` (Q_i(s, a1, a2), eq. (14)). lr: Adam learning rate.
    epochs: full-batch regression steps per batch. ``pair`` is None until the first :meth:`fit`.
    """

    def __init__(self, kind: str, lr: float, epochs: int, gamma: float):
        if kind not in ("value", "q"):
            raise ValueError(f"critic kind must be 'value' or 'q', got {kind!r}")
        self.kind, self.lr, self.epochs, self.gamma = kind, float(lr), int(epochs), float(gamma)
        self.pair: tuple[torch.nn.Module, torch.nn.Module] | None = None
        self.optimizers: list[torch.optim.Optimizer] = []
        self.spec: dict | None = None

    def estimator_options(self) -> dict:
        """What :func:`~ipo_robust.optim.estimators.estimate_local_game` takes from the critics (nothing
        before the first fit)."""
        if self.pair is None:
            return {}
        if self.kind == "value":
            return {"baselines": self.pair}  # state-only baselines: unbiased (estimators docstring)
        return {"estimator": "critic", "critics": self.pair}  # eq. (14)

    def build(self, spec: dict) -> None:
        """Critics and their Adam optimizers from a size spec: {"kind", "obs": [d1, d2], "act": [[kind, size]]}."""
        observation_spaces = tuple(_FlatBox(d) for d in spec["obs"])
        action_spaces = tuple(_FlatBox(n) if kind == "box" else _Choices(n) for kind, n in spec["act"])
        with torch.random.fork_rng(devices=[]):  # seeded critic weights; the global RNG is left alone
            torch.manual_seed(0)
            self.pair = tuple(ValueCritic(observation_spaces) if spec["kind"] == "value"
                              else QCritic(observation_spaces, action_spaces) for _ in (0, 1))
        self.optimizers = [adam(c.parameters(), lr=self.lr) for c in self.pair]
        self.spec = spec

    def place(self, device: torch.device) -> None:
        """Move the critics and their Adam moments to ``device`` (the batches' device: a run resumed on
        another device, or critics loaded from a checkpoint onto the CPU); nothing before the first fit."""
        if self.pair is not None:
            self.optimizers = [relocate(c, o, device) for c, o in zip(self.pair, self.optimizers, strict=True)]

    def fit(self, batch: Batch, agents=None) -> dict:
        """Regress each player's critic on this batch's returns-to-go; sized on the first call from the batch
        (and ``agents``, None when no policy may be read). Returns ``critic/loss1``, ``critic/loss2``."""
        if batch.num_episodes == 0:
            return {}
        if self.pair is None:
            observation_spaces, action_spaces = critic_spaces(batch, agents)
            self.build({"kind": self.kind, "obs": [int(s.shape[0]) for s in observation_spaces],
                        "act": [["box", int(s.shape[0])] if hasattr(s, "shape") else ["discrete", int(s.n)]
                                for s in action_spaces]})
        self.place(batch.obs1.device)
        discount = self.gamma ** batch.t.to(torch.float64)
        mask = batch.complete
        inputs = (batch.obs1, batch.obs2) if self.kind == "value" else (batch.obs1, batch.obs2, batch.act1, batch.act2)
        inputs = tuple(x[mask] for x in inputs)  # the steps of complete episodes, whose returns-to-go are known

        def regress(i: int) -> float:
            critic, optimizer, rew = self.pair[i], self.optimizers[i], (batch.rew1, batch.rew2)[i]
            # sum_{t' >= t} gamma^(t' - t) r_t', the target of V(s_t) and Q(s_t, a1_t, a2_t)
            target = (reverse_segment_cumsum(discount * rew.to(torch.float64), batch.done) / discount)[mask]
            for _ in range(self.epochs):
                loss = regression_step(critic, optimizer, inputs, target)
            return loss

        # the two regressions are independent: side by side on two threads where two CPUs are free
        return {f"critic/loss{i + 1}": loss for i, loss in enumerate(thread_map(regress, (0, 1)))}

    def state_dict(self) -> dict | None:
        if self.pair is None:
            return None
        return {"spec": self.spec, "weights": [c.state_dict() for c in self.pair],
                "optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        self.build(state["spec"])
        for critic, optimizer, weights, moments in zip(self.pair, self.optimizers, state["weights"],
                                                       state["optimizers"], strict=True):
            critic.load_state_dict(weights)
            optimizer.load_state_dict(moments)
