"""Sample estimates of the local game (seed eqs. 12-14) from a rollout Batch.

Setting. Both players maximise J_i = E[sum_t gamma^t r_i,t] over episodes tau = (s_0, a1_0, a2_0, ...)
in which a1_t ~ pi1(.|o1_t; theta1) and a2_t ~ pi2(.|o2_t; theta2) are drawn simultaneously and
independently given the state. Scores: s1_k = grad_1 log pi1(a1_k|o1_k) (p1,), s2_l likewise (p2,);
S1_t = sum_{k<=t} s1_k, S2_t = sum_{l<=t} s2_l (within the episode; t = step in the episode).

Policy gradient, eq. (12): g_i = E[sum_t gamma^t r_i,t S_i,t] = E[sum_k s_i,k G_i,k] with the
reward-to-go G_i,k = sum_{t>=k} gamma^t r_i,t (causality: a score after t is independent of r_t).

Mixed Hessian, eq. (13). log p(tau) = sum_k log pi1_k + sum_l log pi2_l + (dynamics), additively
separable in theta1 and theta2, so grad_1 grad_2^T p(tau) = p(tau) S1 S2^T and (causality again)

    D12 = E[ sum_t gamma^t r1_t S1_t S2_t^T ] = E[ sum_{k,l} s1_k s2_l^T G1_{max(k,l)} ].

Grouping the pairs (k, l) by m = max(k, l), i.e. (k = m, l <= m) and (k < m, l = m):

    D12 = E[ sum_m G1_m ( s1_m S2_m^T + S1_{m-1} s2_m^T ) ]                               (*)
        = E[ sum_m G1_m ( s1_m s2_m^T + s1_m S2_{m-1}^T + S1_{m-1} s2_m^T ) ].

Critic form, eq. (14) (the competitive policy gradient theorem of Prajapat et al. 2021): every score in
the m-th term of (*) is fixed by the history up to (s_m, a1_m, a2_m), and under the Markov property
E[G1_m | history, s_m, a_m] = gamma^m Q1(s_m, a1_m, a2_m). Replacing G1_m by gamma^m Q1_m gives

    D12 = E[sum_m gamma^m Q1_m s1_m s2_m^T] + E[sum_m gamma^m Q1_m s1_m (sum_{l<m} s2_l)^T]
          + E[sum_m gamma^m Q1_m (sum_{k<m} s1_k) s2_m^T],

and g_i = E[sum_m gamma^m Q_i,m s_i,m] (policy gradient theorem). D21 is the same with player 2's
rewards and the roles of the scores exchanged.

Baselines. Subtracting gamma^m b_i(s_m) from G_i,m keeps g_i, D12 and D21 unbiased for any b_i that
depends on the state only: for the pair terms with k < m = l (or l < m = k) the score at m has
conditional mean zero given s_m and the past; for k = l = m, E[s1_m s2_m^T | s_m] =
E[s1_m | s_m] E[s2_m | s_m]^T = 0 because the two actions are drawn independently given s_m. No
advantage normalisation is applied anywhere: the estimates are unbiased for the exact derivatives of J.

Samples. Only complete episodes (``batch.complete``) enter; partial episodes at the end of the batch
are dropped (their returns are unknown). Every estimate is (1/E) sum over the E complete episodes,
exactly unbiased when the batch's complete episodes are a fixed number of i.i.d. episodes (e.g.
fixed-horizon games with ``steps`` a multiple of the horizon); with variable episode lengths, keeping
only episodes that ended inside the batch favours short ones slightly (collect more steps).

Matvecs, never a p1 x p2 matrix. With u_l = s2_l . v (a Jacobian-vector product of the per-sample
log-probabilities of player 2) and U_t = sum_{l<=t} u_l, form (*) gives

    D12 v = (1/E) sum_k s1_k c_k,    c_k = G1_k U_k + sum_{m>k} G1_m u_m     (segmented sums, O(T N)),

a vector-Jacobian product of player 1's log-probabilities: one JVP and one VJP per matvec. The JVP is
available by forward-mode AD (``method="forward-mode"``: ``torch.func.jvp``), by the double-VJP trick
(``"double-backward"``), or from per-sample score factors J_i (M x p_i) materialised once with
``torch.func.vmap(grad)`` (``"factors"``: then a matvec is two dense mat-vecs). ``"surrogate"`` is the
textbook route: differentiate a surrogate whose mixed second derivative is (*) twice; its first
backward pass (with ``create_graph``) is built once and each product is then a single reverse pass.
Measured (benchmarks/RESULTS.md, ``benchmarks/bench_estimators.py``: Gaussian MLPs 64x64, 4096 samples,
CPU, one thread) one D12 v costs about one policy gradient (forward + backward) with ``"double-backward"``
(0.92-0.96) and with ``"surrogate"`` (1.04-1.07 in the benchmark; a separate two-method A/B gave the
surrogate 10-20% ahead, so the two tie within the noise of a shared machine), 2.0-3.1 with
``"forward-mode"`` (it recomputes the forward pass every time) and about 2 with ``"factors"``
(memory-bound mat-vecs with 4096 x 5900 factors, after a ``vmap(grad)`` setup of about 65 policy
gradients). ``"layer-factors"`` (:class:`LayerFactorScores`) keeps the per-sample scores of the project's MLP
policies in layer-factored form (layer inputs and per-sample output gradients) and multiplies without
autograd: about 0.6 of a policy gradient per D12 v. ``"auto"`` picks ``"layer-factors"`` for those policies
and ``"double-backward"`` (as cheap as the surrogate, one retained graph per player serving D12, D21,
both transposes and the empirical Fisher) for any other module. All methods give the same numbers
(tested).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn
from torch.distributions import Distribution, kl_divergence

from ipo_robust.batch import Batch, reverse_segment_cumsum, segment_cumsum
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.operators import LinearOperator

ESTIMATORS = ("mc", "critic")
METHODS = ("auto", "forward-mode", "double-backward", "factors", "surrogate", "layer-factors")
FISHERS = ("kl", "empirical")


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


class ScoreJacobian:
    """The score Jacobian of one policy on a batch, known through products.

    ``jvp(v)``: v (p,) -> (T, N), u_m = grad log pi(a_m|o_m) . v.
    ``vjp(c)``: c (T, N) -> (p,), sum_m c_m grad log pi(a_m|o_m).
    ``logp``: (T, N) log-probabilities with their autograd graph (kept for the VJPs).
    p counts every parameter in ``policy.parameters()`` order; frozen ones get zero rows.
    """

    keeps_graph = True  # whether ``logp`` carries the autograd graph its products need

    def __init__(self, policy: nn.Module, obs: torch.Tensor, act: torch.Tensor):
        self.policy = policy
        self.params = list(policy.parameters())
        if not self.params:
            raise ValueError(f"{type(policy).__name__} has no parameters to differentiate")
        self.dtype = self.params[0].dtype
        self.p = sum(p.numel() for p in self.params)
        self.trainable = [p for p in self.params if p.requires_grad]
        self.obs = obs.to(self.dtype)
        self.act = act if not act.is_floating_point() else act.to(self.dtype)
        self.shape = tuple(obs.shape[:2])
        with torch.set_grad_enabled(self.keeps_graph):
            self.logp = policy.distribution(self.obs).log_prob(self.act)
        if tuple(self.logp.shape) != self.shape:
            raise ValueError(f"{type(policy).__name__}.distribution(obs).log_prob(act) has shape "
                             f"{tuple(self.logp.shape)}, expected (T, N) = {self.shape}")

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
        grads = torch.autograd.grad(self.logp, self.trainable, grad_outputs=c.to(self.dtype),
                                    retain_graph=True, allow_unused=True)
        return self.flatten(grads)

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DoubleBackwardScores(ScoreJacobian):
    """JVP by the double-VJP trick, J v = d/dz [ (J^T z) . v ]: the map z -> J^T z is linear, so its
    graph is built once, on the first product (one backward pass with ``create_graph``), and each
    product is one reverse pass through it to the leaf z (no forward recomputation)."""

    def __init__(self, policy, obs, act):
        super().__init__(policy, obs, act)
        self.z = None
        self.Jt_z: list = []

    def _build(self):
        """The graph of z -> J^T z, built on the first product."""
        with torch.enable_grad():
            self.z = torch.zeros_like(self.logp, requires_grad=True)
            Jt_z = torch.autograd.grad(self.logp, self.trainable, grad_outputs=self.z, create_graph=True,
                                       allow_unused=True)
        self.Jt_z = [(g, p) for g, p in zip(Jt_z, self.trainable, strict=True)
                     if g is not None and g.requires_grad]

    def jvp(self, v):
        tangents = dict(zip(map(id, self.params), self.split(v), strict=True))
        if self.z is None:
            self._build()
        if not self.Jt_z:
            return torch.zeros(self.shape, dtype=self.dtype)
        (u,) = torch.autograd.grad([g for g, _ in self.Jt_z], self.z,
                                   grad_outputs=[tangents[id(p)] for _, p in self.Jt_z],
                                   retain_graph=True, allow_unused=True)
        return torch.zeros(self.shape, dtype=self.dtype) if u is None else u.detach()


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
    A :class:`~ipo_robust.policies.TabularCategoricalPolicy` (logits = obs @ table, or the one row) is one
    such layer: grad_table log pi_m = obs_m (onehot(a_m) - p_m)^T.
    """

    keeps_graph = True

    @staticmethod
    def supports(policy: nn.Module) -> bool:
        """The project's MLP policies (rows never mix) whose parameters are all Linear weights and biases,
        plus a GaussianMLPPolicy's ``log_std``."""
        from ipo_robust.policies import CategoricalMLPPolicy, GaussianMLPPolicy, TabularCategoricalPolicy

        if type(policy) is TabularCategoricalPolicy:
            return True
        if type(policy) not in (CategoricalMLPPolicy, GaussianMLPPolicy):
            return False
        owned = {id(p) for m in policy.modules() if type(m) is nn.Linear for p in m.parameters(recurse=False)}
        if isinstance(policy, GaussianMLPPolicy):
            owned.add(id(policy.log_std))
        return all(id(p) in owned for p in policy.parameters())

    def __init__(self, policy, obs, act):
        from ipo_robust.policies import GaussianMLPPolicy, TabularCategoricalPolicy

        if not self.supports(policy):
            raise ValueError(f"method 'layer-factors' needs a CategoricalMLPPolicy or GaussianMLPPolicy made of "
                             f"nn.Linear layers; got {type(policy).__name__} (use method='double-backward')")
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
                features = (torch.ones(M, 1, dtype=self.dtype) if policy.n_states == 1
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
            delta = torch.zeros(M, m.out_features, dtype=self.dtype) if delta is None else delta.reshape(M, -1)
            self.layers[m] = (inputs, delta)
        self.log_std_scores = None
        if isinstance(policy, GaussianMLPPolicy):
            with torch.no_grad():
                dist = policy.distribution(self.obs).base_dist
                z = (self.act - dist.loc) / dist.scale
                self.log_std_scores = (z * z - 1.0).reshape(M, -1)
        self.logp = self.logp.detach()  # the products below need no graph
        # where each parameter lives: ("weight" | "bias", Linear) or ("log_std", None); frozen -> None
        self.slots = []
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
            self.slots.append(slot)

    def jvp(self, v):
        M = self.shape[0] * self.shape[1]
        per_layer: dict[nn.Linear, list] = {}
        u = torch.zeros(M, dtype=self.dtype)
        for slot, tangent in zip(self.slots, self.split(v), strict=True):
            if slot is None:
                continue
            kind, m = slot
            if kind == "log_std":
                u = u + self.log_std_scores @ tangent
            elif kind == "table":
                features, delta = self.table
                u = u + ((features @ tangent) * delta).sum(1)
            else:
                per_layer.setdefault(m, [None, None])[0 if kind == "weight" else 1] = tangent
        for m, (V, vb) in per_layer.items():
            A, Delta = self.layers[m]
            z = A @ V.T if V is not None else torch.zeros_like(Delta)
            if vb is not None:
                z = z + vb
            u = u + (z * Delta).sum(1)
        return u.reshape(self.shape)

    def vjp(self, c):
        c = c.reshape(-1).to(self.dtype)
        parts = []
        for slot, param in zip(self.slots, self.params, strict=True):
            if slot is None:
                parts.append(torch.zeros(param.numel(), dtype=self.dtype))
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
            weighted = Delta * c[:, None]
            parts.append((weighted.T @ A).reshape(-1) if kind == "weight" else weighted.sum(0))
        return torch.cat(parts)


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


# --------------------------------------------------------------------------------------------------
# Weights G_i,m of eqs. (12)-(14)
# --------------------------------------------------------------------------------------------------
def _pair(value, name: str) -> tuple:
    if value is None:
        return (None, None)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(value)
    raise ValueError(f"{name} must be a pair (for player 1, for player 2), got {type(value).__name__}")


def _per_step(value, batch: Batch, name: str, call: Callable) -> torch.Tensor:
    """A (T, N) float64 tensor from a number, a (T, N) tensor, or a critic module evaluated by ``call``."""
    shape = (batch.num_steps, batch.num_envs)
    if isinstance(value, (int, float)):
        return torch.full(shape, float(value), dtype=torch.float64)
    if isinstance(value, torch.Tensor):
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} as a tensor must have shape (T, N) = {shape}, got {tuple(value.shape)}")
        return value.detach().to(torch.float64)
    if callable(value):
        with torch.no_grad():
            out = call(value)
        if tuple(out.shape) != shape:
            raise ValueError(f"{name} returned shape {tuple(out.shape)}, expected (T, N) = {shape}")
        return out.detach().to(torch.float64)
    raise ValueError(f"{name} must be a number, a (T, N) tensor or a critic module, got {type(value).__name__}")


def _weights(batch: Batch, gamma: float, estimator: str, critics, baselines, zero_sum: bool
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """G_1, G_2 (T, N) float64: reward-to-go (eq. 12/13) or gamma^t Q (eq. 14), minus gamma^t b(s_t),
    zero outside complete episodes."""
    discount = float(gamma) ** batch.t.to(torch.float64)  # gamma^t, t = step within the episode
    critics, baselines = _pair(critics, "critics"), _pair(baselines, "baselines")
    players = (0,) if zero_sum else (0, 1)
    G = []
    for i in players:
        if estimator == "mc":
            rew = (batch.rew1, batch.rew2)[i].to(torch.float64)
            G_i = reverse_segment_cumsum(discount * rew, batch.done)  # sum_{t>=m} gamma^t r_t, eq. (12)
        else:
            if critics[i] is None:
                raise ValueError(f"estimator='critic' needs critics=(Q1, Q2) (QCritic modules or (T, N) "
                                 f"tensors of Q_i(s_t, a1_t, a2_t)); critic {i + 1} is missing")
            Q = _per_step(critics[i], batch, f"critics[{i}]",
                          lambda q: q(batch.obs1, batch.obs2, batch.act1, batch.act2))
            G_i = discount * Q  # gamma^m Q_i(s_m, a1_m, a2_m), eq. (14)
        if baselines[i] is not None:
            b = _per_step(baselines[i], batch, f"baselines[{i}]", lambda v: v(batch.obs1, batch.obs2))
            G_i = G_i - discount * b  # gamma^m b_i(s_m): unbiased (module docstring)
        G.append(torch.where(batch.complete, G_i, torch.zeros_like(G_i)))
    if zero_sum:
        G.append(-G[0])
    return G[0], G[1]


# --------------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------------
def _mixed_operator(G: torch.Tensor, S_out: ScoreJacobian, S_in: ScoreJacobian, batch: Batch,
                    episodes: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """v (p_in,) -> (1/E) S_out^T c, c_k = G_k U_k + sum_{m>k} G_m u_m, u = S_in v: eq. (13)/(14) via (*)."""

    def matvec(v: torch.Tensor) -> torch.Tensor:
        u = S_in.jvp(v).to(torch.float64)  # u_l = s_in,l . v
        Gu = G * u
        c = G * segment_cumsum(u, batch.first) + reverse_segment_cumsum(Gu, batch.done) - Gu
        return S_out.vjp(c) / episodes

    return matvec


def _surrogate_operator(G: torch.Tensor, S_out: ScoreJacobian, S_in: ScoreJacobian, batch: Batch,
                        episodes: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The same product by double backward through L = (1/E) sum_m G_m (lp_out,m C_in,m + C_out,m-1 lp_in,m),
    C = within-episode cumulative log-probabilities: d_out d_in^T L = (*). grad_in L is built with
    ``create_graph`` on the first product and reused; each product is one reverse pass through it."""
    cache: list = []

    def grad_in_pairs():
        if not cache:
            with torch.enable_grad():
                C_out = segment_cumsum(S_out.logp, batch.first)
                C_in = segment_cumsum(S_in.logp, batch.first)
                L = (G.to(S_out.dtype) * (S_out.logp * C_in + (C_out - S_out.logp) * S_in.logp)).sum() / episodes
                grad_in = torch.autograd.grad(L, S_in.trainable, create_graph=True, allow_unused=True)
            cache.append([(g, p) for g, p in zip(grad_in, S_in.trainable, strict=True)
                          if g is not None and g.requires_grad])
        return cache[0]

    def matvec(v: torch.Tensor) -> torch.Tensor:
        tangents = dict(zip(map(id, S_in.params), S_in.split(v), strict=True))
        pairs = grad_in_pairs()
        if not pairs:
            return torch.zeros(S_out.p, dtype=S_out.dtype)
        dot = sum((g * tangents[id(p)]).sum() for g, p in pairs)
        grads = torch.autograd.grad(dot, S_out.trainable, retain_graph=True, allow_unused=True)
        return S_out.flatten(grads)

    return matvec


def _fisher_operator(kind: str, policy: nn.Module, S: ScoreJacobian, obs: torch.Tensor,
                     mask: torch.Tensor) -> LinearOperator:
    """F v averaged over the samples of complete episodes (``mask``): ``"kl"`` = Hessian of the mean
    KL(pi_old || pi_theta) at theta (the exact Fisher of each state's action distribution, by double
    backward); ``"empirical"`` = the mean of s s^T v over the sampled actions (equal in expectation)."""
    count = max(int(mask.sum()), 1)
    if kind == "empirical":
        weight = mask.to(torch.float64)

        def matvec(v):
            return S.vjp(S.jvp(v).to(torch.float64) * weight) / count

        return LinearOperator(matvec, (S.p, S.p), matvec)
    states = obs[mask].to(S.dtype)
    with torch.no_grad():
        old = policy.distribution(states)
    with torch.enable_grad():
        kl = kl_divergence(old, policy.distribution(states)).mean()
        grad_kl = torch.autograd.grad(kl, S.trainable, create_graph=True, allow_unused=True)
    pairs = [(g, p) for g, p in zip(grad_kl, S.trainable, strict=True) if g is not None and g.requires_grad]

    def kl_hvp(v):
        if not pairs:
            return torch.zeros(S.p, dtype=S.dtype)
        tangents = dict(zip(map(id, S.params), S.split(v), strict=True))
        dot = sum((g * tangents[id(p)]).sum() for g, p in pairs)
        return S.flatten(torch.autograd.grad(dot, S.trainable, retain_graph=True, allow_unused=True))

    return LinearOperator(kl_hvp, (S.p, S.p), kl_hvp)


def estimate_local_game(batch: Batch, policy1: nn.Module, policy2: nn.Module, gamma: float = 0.99,
                        estimator: str = "mc", critics=None, baselines=None, fisher: bool | str = False,
                        zero_sum: bool = False, method: str = "auto") -> LocalGame:
    """The sample local game (g1, g2, D12, D21[, F1, F2]) at the policies' current parameters.

    batch: a :class:`~ipo_robust.rollout.Batch` collected with these parameters (only its observations,
        actions, rewards and episode markers are used; log-probabilities are recomputed with graphs).
    gamma: the discount of J_i = E[sum_t gamma^t r_i,t], t counted within each episode.
    estimator: ``"mc"`` (returns; eqs. 12-13) or ``"critic"`` (eq. 14 with ``critics``).
    critics: (Q1, Q2), each a QCritic-like module ``Q(obs1, obs2, act1, act2) -> (T, N)`` or a (T, N)
        tensor of Q_i(s_t, a1_t, a2_t); only for ``estimator="critic"``.
    baselines: (b1, b2), each None, a number, a (T, N) tensor, or a module ``b(obs1, obs2) -> (T, N)``
        (e.g. :class:`~ipo_robust.policies.ValueCritic`); state-only baselines keep every estimate unbiased.
    fisher: False, True (= ``"kl"``), ``"kl"`` or ``"empirical"``: add F1, F2, averaged over the samples of
        complete episodes (``_fisher_operator``).
    zero_sum: declare J2 = -J1. The batch's rewards must satisfy r2 = -r1; player 1's rewards, critic and
        baseline define both objectives, so D21 = -D12^T holds exactly.
    method: how the products are computed (module docstring); ``"auto"``: ``"layer-factors"`` for the
        project's policies, else ``"double-backward"``.

    Returns a LocalGame with g1 (p1,), g2 (p2,), D12 (p1 x p2) and D21 (p2 x p1) operators (with
    rmatvec) in the policies' dtype. ``info``: estimator, method, episodes, samples, and the sample
    means ``J1``, ``J2`` of the discounted returns of the complete episodes.
    """
    if not isinstance(batch, Batch):
        raise ValueError(f"batch must be an ipo_robust.rollout.Batch, got {type(batch).__name__}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
    fisher_kind = "kl" if fisher is True else fisher
    if fisher_kind not in (False, None, *FISHERS):
        raise ValueError(f"fisher must be False, True or one of {FISHERS}, got {fisher!r}")
    episodes = batch.num_episodes
    if episodes == 0:
        raise ValueError(f"the batch holds no complete episode ({batch.num_steps} steps per copy): collect "
                         "more steps than the episode length, or shorten the episodes")
    valid = batch.complete
    if zero_sum and not torch.allclose(batch.rew2[valid].to(torch.float64), -batch.rew1[valid].to(torch.float64),
                                       atol=1e-6, rtol=1e-6):
        raise ValueError("zero_sum=True but the batch's rewards are not zero-sum (r2 != -r1); pass zero_sum=False")
    G1, G2 = _weights(batch, gamma, estimator, critics, baselines, zero_sum)
    methods = tuple(auto_method(policy) if method == "auto" else method for policy in (policy1, policy2))
    S1 = make_scores(policy1, batch.obs1, batch.act1, methods[0])
    S2 = make_scores(policy2, batch.obs2, batch.act2, methods[1])

    g1 = S1.vjp(G1) / episodes  # eq. (12)
    g2 = S2.vjp(G2) / episodes  # eq. (12)
    mixed = _surrogate_operator if method == "surrogate" else _mixed_operator
    # eq. (13) (estimator="mc") or eq. (14) (estimator="critic"), in the grouped form (*)
    D12 = LinearOperator(mixed(G1, S1, S2, batch, episodes), (S1.p, S2.p),
                         rmatvec=mixed(G1, S2, S1, batch, episodes))
    D21 = LinearOperator(mixed(G2, S2, S1, batch, episodes), (S2.p, S1.p),
                         rmatvec=mixed(G2, S1, S2, batch, episodes))
    F1 = F2 = None
    if fisher_kind:
        F1 = _fisher_operator(fisher_kind, policy1, S1, batch.obs1, valid)
        F2 = _fisher_operator(fisher_kind, policy2, S2, batch.obs2, valid)
    returns1, returns2 = batch.discounted_returns(gamma)
    method = methods[0] if methods[0] == methods[1] else "/".join(methods)
    info = {"estimator": estimator, "method": method, "episodes": episodes, "samples": int(valid.sum()),
            "J1": float(returns1.mean()), "J2": float(returns2.mean())}
    return LocalGame(g1, g2, D12, D21, F1, F2, zero_sum=zero_sum, info=info)
