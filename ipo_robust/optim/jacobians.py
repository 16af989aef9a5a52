"""Jacobian products of batched policy outputs: the score Jacobians of eqs. (12)-(14) and J_mu of (22)-(23).

Mixed Hessians and Fisher matrices are never formed; the estimators (:mod:`ipo_robust.optim.estimators`)
multiply through the per-sample Jacobian of a policy output with respect to the parameters, as a JVP
(v (p,) -> per-sample values) and a VJP (per-sample weights -> (p,)). :class:`OutputJacobian` is the one
generic implementation (reverse mode; JVPs by the double-VJP trick); the score Jacobian has faster special
cases (forward mode, materialised factors, and layer factors for the project's MLPs); the methods and
their measured costs are in the estimators' module docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn
from torch.distributions import Distribution

from ipo_robust import mlp_grad
from ipo_robust.policies import (
    CategoricalMLPPolicy,
    GaussianMLPPolicy,
    StateDependentStdGaussianPolicy,
    TabularCategoricalPolicy,
)


# --------------------------------------------------------------------------------------------------
# Per-sample score Jacobians J (M x p), M = T N: row m = grad log pi(a_m | o_m), as jvp / vjp.
# --------------------------------------------------------------------------------------------------
class _LogProb(nn.Module):
    """log pi(act | obs) as a module forward, so torch.func can call the policy with other parameters."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.policy.distribution(obs).log_prob(act)


@contextmanager
def _distribution_validation(enabled: bool):
    """torch.distributions argument checks are data-dependent Python branches, which vmap cannot trace."""
    previous = Distribution._validate_args
    Distribution.set_default_validate_args(enabled)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(previous)


class OutputJacobian:
    """The Jacobian J = d out / d theta of a batched module output, known through products.

    The one Jacobian-product code of the estimators: the score Jacobian of eqs. (12)-(14) (``out`` =
    log pi(a|o), shape (T, N)) and the action Jacobian J_mu of eqs. (22)-(23) (``out`` = mu(s), shape
    (B, d)) are both this, on different outputs.

    ``vjp(c)``: c (shape of out) -> (p,), sum_m c_m . d out_m / d theta (one reverse pass).
    ``jvp(v)``: v (p,) -> (shape of out), (d out_m / d theta) v, by the double-VJP trick
    J v = d/dz [(J^T z) . v]: the map z -> J^T z is linear, so its graph is built once, on the first
    product (one backward pass with ``create_graph``), and each product is one reverse pass through it
    to the leaf z (no forward recomputation).
    p counts every parameter in ``module.parameters()`` order; frozen ones get zero rows.
    """

    keeps_graph = True  # whether ``out`` carries the autograd graph its products need

    def __init__(self, module: nn.Module, output: Callable[[], torch.Tensor]):
        self.params = list(module.parameters())
        if not self.params:
            raise ValueError(f"{type(module).__name__} has no parameters to differentiate")
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.p = sum(p.numel() for p in self.params)
        self.trainable = [p for p in self.params if p.requires_grad]
        with torch.set_grad_enabled(self.keeps_graph):
            self.out = output()
        self.shape = tuple(self.out.shape)
        self.z = None
        self.Jt_z: list = []

    # -- flat vectors <-> parameter lists ------------------------------------------------------------
    def split(self, v: torch.Tensor) -> list[torch.Tensor]:
        if v.shape != (self.p,):
            raise ValueError(f"expected a flat vector of {self.p} parameters, got shape {tuple(v.shape)}")
        v = v.detach().to(self.dtype)
        return [chunk.view_as(p) for chunk, p in zip(torch.split(v, [p.numel() for p in self.params]),
                                                     self.params, strict=True)]

    def flatten(self, grads) -> torch.Tensor:
        """Flat (p,) vector from gradients of ``self.trainable`` (None -> zeros; frozen -> zeros)."""
        by_id = {id(p): g for p, g in zip(self.trainable, grads, strict=True)}
        parts = []
        for p in self.params:
            g = by_id.get(id(p))
            parts.append(torch.zeros(p.numel(), dtype=self.dtype, device=p.device) if g is None
                         else g.detach().reshape(-1))
        return torch.cat(parts)

    def vjp(self, c: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(self.out, self.trainable, grad_outputs=c.to(self.dtype),
                                    retain_graph=True, allow_unused=True)
        return self.flatten(grads)

    def _build(self):
        """The graph of z -> J^T z, built on the first product."""
        with torch.enable_grad():
            self.z = torch.zeros_like(self.out, requires_grad=True)
            Jt_z = torch.autograd.grad(self.out, self.trainable, grad_outputs=self.z, create_graph=True,
                                       allow_unused=True)
        self.Jt_z = [(g, p) for g, p in zip(Jt_z, self.trainable, strict=True)
                     if g is not None and g.requires_grad]

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        tangents = dict(zip(map(id, self.params), self.split(v), strict=True))
        if self.z is None:
            self._build()
        if not self.Jt_z:
            return torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        (u,) = torch.autograd.grad([g for g, _ in self.Jt_z], self.z,
                                   grad_outputs=[tangents[id(p)] for _, p in self.Jt_z],
                                   retain_graph=True, allow_unused=True)
        return torch.zeros(self.shape, dtype=self.dtype, device=self.device) if u is None else u.detach()


class ScoreJacobian(OutputJacobian):
    """The score Jacobian of one policy on a batch (rows grad log pi(a_m|o_m)), known through products.

    ``jvp(v)``: v (p,) -> (T, N), u_m = grad log pi(a_m|o_m) . v (double-VJP trick by default).
    ``vjp(c)``: c (T, N) -> (p,), sum_m c_m grad log pi(a_m|o_m).
    ``logp``: (T, N) log-probabilities with their autograd graph (kept for the VJPs).
    """

    def __init__(self, policy: nn.Module, obs: torch.Tensor, act: torch.Tensor):
        self.policy = policy
        params = list(policy.parameters())
        dtype = params[0].dtype if params else obs.dtype
        self.obs = obs.to(dtype)
        self.act = act if not act.is_floating_point() else act.to(dtype)
        super().__init__(policy, self._log_prob)
        if self.shape != tuple(obs.shape[:2]):
            raise ValueError(f"{type(policy).__name__}.distribution(obs).log_prob(act) has shape "
                             f"{self.shape}, expected (T, N) = {tuple(obs.shape[:2])}")
        self.shape = tuple(obs.shape[:2])

    def _log_prob(self) -> torch.Tensor:
        """log pi(act | obs) (T, N), with its graph when grad mode is on."""
        return self.policy.distribution(self.obs).log_prob(self.act)

    @property
    def logp(self) -> torch.Tensor:
        return self.out

    @logp.setter
    def logp(self, value: torch.Tensor) -> None:
        self.out = value


DoubleBackwardScores = ScoreJacobian  # the default JVP of OutputJacobian


class PolicyJacobian(OutputJacobian):
    """J_mu of a deterministic policy on a batch of states (B, n): ``vjp(u)``: u (B, d) -> sum_b J_mu(s_b)^T
    u_b (p,); ``jvp(v)``: v (p,) -> (B, d), J_mu(s_b) v. ``action``: mu(s) (B, d) with its graph."""

    def __init__(self, policy: nn.Module, obs: torch.Tensor):
        params = list(policy.parameters())
        dtype = params[0].dtype if params else obs.dtype
        with torch.enable_grad():
            super().__init__(policy, lambda: policy.mu(obs.to(dtype)))

    @property
    def action(self) -> torch.Tensor:
        return self.out


class ForwardModeScores(ScoreJacobian):
    """JVP by forward-mode AD (``torch.func.jvp`` through ``functional_call``; one dual forward pass)."""

    def __init__(self, policy, obs, act):
        super().__init__(policy, obs, act)
        self.module = _LogProb(policy)
        self.names = [f"policy.{name}" for name, _ in policy.named_parameters()]

    def jvp(self, v):
        primals = tuple(p.detach() for p in self.params)
        tangents = tuple(t if p.requires_grad else torch.zeros_like(t)
                         for t, p in zip(self.split(v), self.params, strict=True))

        def logp(*params):
            return torch.func.functional_call(self.module, dict(zip(self.names, params, strict=True)),
                                              (self.obs, self.act))

        _, u = torch.func.jvp(logp, primals, tangents)
        return u.detach()


class FactorScores(ScoreJacobian):
    """The per-sample scores materialised once, J (M x p) by ``vmap(grad)``; products are dense mat-vecs."""

    keeps_graph = False

    def __init__(self, policy, obs, act):
        super().__init__(policy, obs, act)
        module = _LogProb(policy)
        names = [f"policy.{name}" for name, _ in policy.named_parameters()]
        M = self.shape[0] * self.shape[1]
        obs_flat = self.obs.reshape(M, *self.obs.shape[2:])
        act_flat = self.act.reshape(M, *self.act.shape[2:])

        def logp_one(params, o, a):
            return torch.func.functional_call(module, dict(zip(names, params, strict=True)), (o, a))

        primals = tuple(p.detach() for p in self.params)
        with _distribution_validation(False):
            grads = torch.func.vmap(torch.func.grad(logp_one), in_dims=(None, 0, 0))(primals, obs_flat, act_flat)
        mask = [p.requires_grad for p in self.params]
        self.J = torch.cat([g.reshape(M, -1) * float(keep) for g, keep in zip(grads, mask, strict=True)], dim=1)

    def jvp(self, v):
        return (self.J @ v.detach().to(self.dtype)).reshape(self.shape)

    def vjp(self, c):
        return self.J.T @ c.reshape(-1).to(self.dtype)


class LayerFactorScores(ScoreJacobian):
    """Per-sample scores kept in layer-factored form, for policies whose parameters sit in ``nn.Linear``
    layers (plus a Gaussian ``log_std``): no p-wide per-sample matrix, no autograd in the products.

    For a linear layer z = W a + b applied row by row, the score of sample m is
    grad_W log pi_m = delta_m a_m^T and grad_b log pi_m = delta_m, with delta_m = d log pi_m / d z_m.
    Rows are independent (an MLP mixes no samples), so one backward pass of sum_m log pi_m to every
    layer output gives all delta_m at once. Then, per layer (A: inputs (M, in), Delta: (M, out)),

        J v   = rowsum((A V^T + v_b) * Delta)          (one (M, in) x (in, out) product)
        J^T c = ((Delta * c)^T A, sum_m c_m delta_m)   (one (out, M) x (M, in) product),

    each about the cost of the layer's forward pass. A Gaussian's state-independent ``log_std`` has the
    closed-form score d log pi_m / d log sigma_j = (a_mj - mu_mj)^2 / sigma_j^2 - 1, kept as (M, act_dim).
    A :class:`~ipo_robust.policies.StateDependentStdGaussianPolicy` qualifies too: its log-std head is one
    more Linear layer run once per row (its delta flows through the tanh squash by the same backward
    pass), and its ``log_std`` parameter has the closed-form score of its free dimensions.
    A :class:`~ipo_robust.policies.TabularCategoricalPolicy` (logits = obs @ table, or the one row) is one
    such layer: grad_table log pi_m = obs_m (onehot(a_m) - p_m)^T.
    """

    keeps_graph = True

    @staticmethod
    def supports(policy: nn.Module) -> bool:
        """The project's MLP policies (rows never mix, every Linear layer runs once per row) whose parameters
        are all Linear weights and biases, plus a Gaussian policy's ``log_std``."""
        if type(policy) is TabularCategoricalPolicy:
            return True
        if type(policy) not in (CategoricalMLPPolicy, GaussianMLPPolicy, StateDependentStdGaussianPolicy):
            return False
        owned = {id(p) for m in policy.modules() if type(m) is nn.Linear for p in m.parameters(recurse=False)}
        if type(policy) is not CategoricalMLPPolicy:
            owned.add(id(policy.log_std))
        return all(id(p) in owned for p in policy.parameters())

    def __init__(self, policy, obs, act):
        if not self.supports(policy):
            raise ValueError(f"method 'layer-factors' needs a CategoricalMLPPolicy or GaussianMLPPolicy made of "
                             f"nn.Linear layers; got {type(policy).__name__} (use method='double-backward')")
        self._by_hand = _GaussianFactors.of(policy)
        self.hand_written = self._by_hand is not None  # factors by hand rather than from autograd's hooks
        if self._by_hand is not None:
            self._factors_by_hand(policy, obs, act)
            return
        captured: dict[nn.Linear, tuple[torch.Tensor, torch.Tensor]] = {}
        linears = [m for m in policy.modules() if type(m) is nn.Linear]
        hooks = [m.register_forward_hook(lambda mod, inp, out: captured.__setitem__(mod, (inp[0], out)))
                 for m in linears]
        try:
            super().__init__(policy, obs, act)
        finally:
            for hook in hooks:
                hook.remove()
        M = self.shape[0] * self.shape[1]
        self.table = None
        if isinstance(policy, TabularCategoricalPolicy):
            with torch.no_grad():
                features = (torch.ones(M, 1, dtype=self.dtype, device=self.device) if policy.n_states == 1
                            else self.obs.reshape(M, policy.n_states))
                probs = policy.distribution(self.obs).probs.reshape(M, -1)
                onehot = torch.nn.functional.one_hot(self.act.reshape(M), policy.n_actions).to(self.dtype)
            self.table = (features, onehot - probs)  # d log pi_m / d logits_m = onehot(a_m) - p_m
        outputs = [captured[m][1] for m in linears]
        deltas = (torch.autograd.grad(self.logp.sum(), outputs, allow_unused=True)  # all delta_m at once
                  if outputs else ())
        self.layers = {}  # Linear -> (A (M, in), Delta (M, out))
        for m, delta in zip(linears, deltas, strict=True):
            inputs = captured[m][0].detach().reshape(M, -1)
            delta = (torch.zeros(M, m.out_features, dtype=self.dtype, device=self.device) if delta is None
                     else delta.reshape(M, -1))
            self.layers[m] = (inputs, delta)
        self.log_std_scores = None
        if isinstance(policy, GaussianMLPPolicy | StateDependentStdGaussianPolicy):
            with torch.no_grad():
                dist = policy.distribution(self.obs).base_dist
                z = (self.act - dist.loc) / dist.scale
                self.log_std_scores = (z * z - 1.0).reshape(M, -1)
            if isinstance(policy, StateDependentStdGaussianPolicy):  # the log_std parameter covers the free dims
                self.log_std_scores = self.log_std_scores[:, list(policy.free_dims)]
        self.logp = self.logp.detach()  # the products below need no graph
        self.slots = self._slots(linears)

    def _log_prob(self) -> torch.Tensor:
        if self._by_hand is None:
            return super()._log_prob()
        M = self.obs.shape[0] * self.obs.shape[1]
        logp = self._by_hand.forward(self.obs.reshape(M, -1), self.act.reshape(M, -1))
        return logp.reshape(self.obs.shape[:2])

    def _slots(self, linears: list[nn.Linear]) -> list:
        """Where each parameter lives: ("weight" | "bias", Linear), ("log_std" | "table", None); frozen -> None."""
        slots = []
        for param in self.params:
            slot = None
            if param.requires_grad:
                for m in linears:
                    if param is m.weight:
                        slot = ("weight", m)
                    elif param is m.bias:
                        slot = ("bias", m)
                if slot is None:
                    slot = ("table", None) if self.table is not None else ("log_std", None)
            slots.append(slot)
        return slots

    def _factors_by_hand(self, policy: nn.Module, obs: torch.Tensor, act: torch.Tensor) -> None:
        """The same factors for the Gaussian policies :class:`_GaussianFactors` covers, without autograd."""
        ScoreJacobian.__init__(self, policy, obs, act)  # its forward is _log_prob's hand-written one
        self.table = None
        self.layers, self.log_std_scores = self._by_hand.backward()
        self.logp = self.logp.detach()
        self.slots = self._slots(list(self.layers))
        self._by_hand = None  # frees the forward pass's tensors

    def jvp(self, v):
        M = self.shape[0] * self.shape[1]
        per_layer: dict[nn.Linear, list] = {}
        u = None
        for slot, tangent in zip(self.slots, self.split(v), strict=True):
            if slot is None:
                continue
            kind, m = slot
            if kind == "log_std":
                term = self.log_std_scores @ tangent
            elif kind == "table":
                features, delta = self.table
                term = ((features @ tangent) * delta).sum(1)
            else:
                per_layer.setdefault(m, [None, None])[0 if kind == "weight" else 1] = tangent
                continue
            u = term if u is None else u.add_(term)
        for m, (V, vb) in per_layer.items():
            A, Delta = self.layers[m]
            if V is None:
                term = Delta @ vb  # rowsum(vb * Delta)
            else:
                z = A @ V.T if vb is None else torch.addmm(vb, A, V.T)  # the layer's output tangent
                term = torch.linalg.vecdot(z, Delta)  # rowsum(z * Delta) without the (M, out) product
            u = term if u is None else u.add_(term)
        if u is None:
            u = torch.zeros(M, dtype=self.dtype, device=self.device)
        return u.reshape(self.shape)

    def vjp(self, c):
        c = c.reshape(-1).to(self.dtype)
        parts = []
        for slot, param in zip(self.slots, self.params, strict=True):
            if slot is None:
                parts.append(torch.zeros(param.numel(), dtype=self.dtype, device=self.device))
                continue
            kind, m = slot
            if kind == "log_std":
                parts.append(self.log_std_scores.T @ c)
                continue
            if kind == "table":
                features, delta = self.table
                parts.append((features.T @ (delta * c[:, None])).reshape(-1))
                continue
            A, Delta = self.layers[m]
            if kind == "bias":
                parts.append(c @ Delta)  # sum_m c_m delta_m
                continue
            # (Delta * c)^T A = Delta^T (c * A): weight the narrower of the two by c
            if A.shape[1] <= Delta.shape[1]:
                parts.append((Delta.T @ (A * c[:, None])).reshape(-1))
            else:
                parts.append(((Delta * c[:, None]).T @ A).reshape(-1))
        return torch.cat(parts)


class _GaussianFactors:
    """The layer factors of :class:`LayerFactorScores` for a :class:`GaussianMLPPolicy` or
    :class:`StateDependentStdGaussianPolicy` on the CPU, by hand (:mod:`ipo_robust.mlp_grad`).

    The trunk (every layer of the mean MLP but the last) gives h; the mean head mu = W_mu h + b_mu and, for
    the state-dependent policy, the log-std head u = W_s h + b_s, log sigma_j = lo + (hi - lo)(tanh u_j + 1)/2
    on its dimensions. With z = (a - mu) / sigma, the per-sample derivatives of log pi are
    d/d mu = z / sigma, d/d log sigma = z^2 - 1, d/d u_j = (z_j^2 - 1)(hi - lo)(1 - tanh^2 u_j) / 2, and
    d/d h = (d/d mu) W_mu + (d/d u) W_s, which the trunk's backward pass carries to every layer.
    """

    def __init__(self, policy: nn.Module, trunk: list, mean_head: nn.Linear, std_head: nn.Linear | None):
        self.policy, self.trunk, self.mean_head, self.std_head = policy, trunk, mean_head, std_head

    @classmethod
    def of(cls, policy: nn.Module) -> _GaussianFactors | None:
        """The plan for ``policy``, or None (any other class; parameters not all CPU float32 or all float64)."""
        if type(policy) not in (GaussianMLPPolicy, StateDependentStdGaussianPolicy):
            return None
        modules = list(policy.mean_net)
        if not modules or type(modules[-1]) is not nn.Linear:
            return None
        trunk = mlp_grad.linear_layers(nn.Sequential(*modules[:-1])) if len(modules) > 1 else []
        params = list(policy.parameters())
        if trunk is None or any(p.device.type != "cpu" or p.dtype != params[0].dtype for p in params) \
                or params[0].dtype not in (torch.float32, torch.float64):
            return None
        std_head = policy.log_std_head if type(policy) is StateDependentStdGaussianPolicy else None
        return cls(policy, trunk, modules[-1], std_head)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log pi(act | obs) (M,) for rows obs (M, d), act (M, k), keeping what :meth:`backward` needs."""
        policy = self.policy
        with torch.no_grad():
            self.tape = mlp_grad.forward(self.trunk, obs) if self.trunk else None
            self.h = obs if self.tape is None else self.tape.output
            mean = mlp_grad.affine(self.mean_head, self.h)
            log_std = policy.log_std.detach()
            if self.std_head is not None:
                self.squashed = torch.tanh(mlp_grad.affine(self.std_head, self.h))
                state = policy.log_std_min + (policy.log_std_max - policy.log_std_min) * (self.squashed + 1.0) / 2.0
                log_std = torch.cat([log_std.expand(len(obs), -1), state], dim=-1)[:, policy._order]
            logp, self.z = mlp_grad.gaussian_log_prob(mean, log_std, act)
            self.log_std = log_std
        return logp

    def backward(self) -> tuple[dict, torch.Tensor]:
        """({Linear: (inputs (M, in), deltas (M, out))}, the log_std parameter's scores (M, free dims))."""
        policy = self.policy
        with torch.no_grad():
            grad_mean = self.z * torch.exp(-self.log_std)
            log_std_scores = self.z * self.z - 1.0
            layers = {}
            if self.std_head is not None:
                width = policy.log_std_max - policy.log_std_min
                grad_u = log_std_scores[:, list(policy.state_dependent_dims)] * (0.5 * width) \
                    * (1.0 - self.squashed * self.squashed)
                log_std_scores = log_std_scores[:, list(policy.free_dims)]
            if self.tape is not None:  # the trunk's deltas, from d/d h
                grad_h = grad_mean @ self.mean_head.weight
                if self.std_head is not None:
                    grad_h = grad_h + grad_u @ self.std_head.weight
                grad_top = mlp_grad.activation_backward(self.trunk[-1][1], grad_h, self.h)
                for (linear, _), x, delta in zip(self.trunk, self.tape.inputs, mlp_grad.deltas(self.tape, grad_top),
                                                 strict=True):
                    layers[linear] = (x, delta)
            layers[self.mean_head] = (self.h, grad_mean)
            if self.std_head is not None:
                layers[self.std_head] = (self.h, grad_u)
        return layers, log_std_scores


_SCORES = {"forward-mode": ForwardModeScores, "double-backward": DoubleBackwardScores,
           "factors": FactorScores, "surrogate": DoubleBackwardScores, "layer-factors": LayerFactorScores}


def auto_method(policy: nn.Module) -> str:
    """The fastest measured exact method for this policy (benchmarks/RESULTS.md): ``"layer-factors"`` for the
    project's MLP and tabular policies, ``"double-backward"`` for any other module."""
    return "layer-factors" if LayerFactorScores.supports(policy) else "double-backward"


def make_scores(policy: nn.Module, obs: torch.Tensor, act: torch.Tensor, method: str = "forward-mode"
                ) -> ScoreJacobian:
    """The score Jacobian of ``policy`` on (obs (T, N, d), act (T, N, ...)) computed by ``method``."""
    if method not in _SCORES:
        raise ValueError(f"unknown score method {method!r}; choose one of {sorted(_SCORES)}")
    return _SCORES[method](policy, obs, act)
