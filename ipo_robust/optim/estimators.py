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

import torch
from torch import nn
from torch.distributions import kl_divergence

from ipo_robust.batch import Batch, reverse_segment_cumsum, segment_cumsum, segment_starts
from ipo_robust.optim.jacobians import ScoreJacobian, auto_method, make_scores
from ipo_robust.optim.local_game import LocalGame
from ipo_robust.optim.operators import LinearOperator

ESTIMATORS = ("mc", "critic")
METHODS = ("auto", "forward-mode", "double-backward", "factors", "surrogate", "layer-factors")
FISHERS = ("kl", "empirical")


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
        return torch.full(shape, float(value), dtype=torch.float64, device=batch.rew1.device)
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
    forward, backward = segment_starts(batch.first), segment_starts(batch.done.flip(0))  # once per game

    def matvec(v: torch.Tensor) -> torch.Tensor:
        u = S_in.jvp(v).to(torch.float64)  # u_l = s_in,l . v
        Gu = G * u
        c = G * segment_cumsum(u, batch.first, forward) + reverse_segment_cumsum(Gu, batch.done, backward) - Gu
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
            return torch.zeros(S_out.p, dtype=S_out.dtype, device=S_out.device)
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
            return torch.zeros(S.p, dtype=S.dtype, device=S.device)
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
        (e.g. :class:`~ipo_robust.value_functions.ValueCritic`); state-only baselines keep every estimate unbiased.
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

