"""Sample local games (seed eqs. 12-14) against independent references.

References:
- exact derivatives of J(theta1, theta2) by autograd through the same policy networks, with J from
  the matrix game's p1^T A p2 or the iterated game's linear solve (finite horizon H, which is what
  episodes of length H estimate);
- stratified batches: when every policy probability is a multiple of 1/4, a batch holding each joint
  trajectory exactly 4^k P(trajectory) times turns the sample mean into the expectation, so "unbiased"
  becomes "equal up to rounding";
- the estimators' formulas as the seed writes them (eq. 13 as sum_t gamma^t r_t S1_t S2_t^T, eq. 14
  as three terms), evaluated by explicit loops over per-sample score vectors, episode by episode.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from ipo_robust.envs.base import Box, TwoAgentEnv
from ipo_robust.envs.matrix import make_iterated_env, make_matrix_env
from ipo_robust.optim.estimators import METHODS, estimate_local_game
from ipo_robust.policies import GaussianMLPPolicy, TabularCategoricalPolicy, make_policy
from ipo_robust.rollout import Batch, collect

F64 = torch.float64
# torch's forward-mode AD loads TorchScript decompositions on first use and warns about torch.jit.script
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def single_thread():
    """These tensors are small: intra-op threads only add synchronisation, which costs up to 40x when
    another process holds a core (measured on the 2-core dev machine). Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- references ----------------------------------------------------------------------------------------
def flat_grad(y, params, **kwargs):
    grads = torch.autograd.grad(y, params, allow_unused=True, **kwargs)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params, strict=True)])


class ExactLocalGame:
    """g_i and D12 v, D21 v of exact objectives J1, J2 (functions of both policies' parameters)."""

    def __init__(self, J1, J2, policy1, policy2):
        self.P1, self.P2 = list(policy1.parameters()), list(policy2.parameters())
        self.g1 = flat_grad(J1, self.P1, create_graph=True)
        self.g2 = flat_grad(J2, self.P2, create_graph=True)
        self.cross1 = flat_grad(J1, self.P2, create_graph=True)  # grad_2 J1
        self.cross2 = flat_grad(J2, self.P1, create_graph=True)  # grad_1 J2

    def D12(self, v):
        return flat_grad(self.cross1 @ v, self.P1, retain_graph=True)

    def D21(self, v):
        return flat_grad(self.cross2 @ v, self.P2, retain_graph=True)

    def dense(self):
        eye1, eye2 = torch.eye(len(self.g1), dtype=F64), torch.eye(len(self.g2), dtype=F64)
        return (torch.stack([self.D12(e) for e in eye2], 1), torch.stack([self.D21(e) for e in eye1], 1))


def quarter_logits(probs):
    return torch.log(torch.tensor(probs, dtype=F64))


def scripted_batch(env, agents, actions1, actions2):
    """A Batch from prescribed actions (T, N) (log-probabilities from the agents), as collect records it."""
    obs = env.reset()
    T, N = actions1.shape
    t_ep, first = np.zeros(N, dtype=np.int64), np.ones(N, dtype=bool)
    rows = {k: [] for k in ("obs1", "obs2", "act1", "act2", "logp1", "logp2", "rew1", "rew2", "done", "first",
                            "t", "next_obs1", "next_obs2")}
    for step in range(T):
        acts = (torch.as_tensor(actions1[step]), torch.as_tensor(actions2[step]))
        with torch.no_grad():
            for i in range(2):
                o = torch.as_tensor(obs[i], dtype=F64)
                rows[f"obs{i + 1}"].append(o)
                rows[f"act{i + 1}"].append(acts[i])
                rows[f"logp{i + 1}"].append(agents[i].distribution(o).log_prob(acts[i]))
        result = env.step(actions1[step], actions2[step])
        done = result.terminated | result.truncated
        for i in range(2):
            rows[f"rew{i + 1}"].append(torch.as_tensor(result.rewards[i]))
            rows[f"next_obs{i + 1}"].append(torch.as_tensor(result.info["final_obs"][i]))
        rows["done"].append(torch.as_tensor(done))
        rows["first"].append(torch.as_tensor(first.copy()))
        rows["t"].append(torch.as_tensor(t_ep.copy()))
        t_ep, first, obs = np.where(done, 0, t_ep + 1), done.copy(), result.obs
    return Batch(**{k: torch.stack(v) for k, v in rows.items()})


def assert_local_game_equals(game, g1, g2, D12, D21, atol=1e-12):
    like = torch.zeros(1, dtype=F64)
    torch.testing.assert_close(game.g1, g1, atol=atol, rtol=0)
    torch.testing.assert_close(game.g2, g2, atol=atol, rtol=0)
    torch.testing.assert_close(game.D12.to_dense(like), D12, atol=atol, rtol=0)
    torch.testing.assert_close(game.D21.to_dense(like), D21, atol=atol, rtol=0)


# -- exact in expectation: stratified batches ---------------------------------------------------------
def test_stratified_one_step_batch_gives_the_exact_local_game():
    env = make_matrix_env(name="rock-paper-scissors", num_envs=16)
    p1, p2 = [0.25, 0.25, 0.5], [0.5, 0.25, 0.25]
    agents = (TabularCategoricalPolicy(3, logits=quarter_logits(p1)),
              TabularCategoricalPolicy(3, logits=quarter_logits(p2)))
    pairs = [(a, b) for a, b in itertools.product(range(3), range(3)) for _ in range(round(16 * p1[a] * p2[b]))]
    acts1, acts2 = (np.array([list(x)]) for x in zip(*pairs, strict=True))
    batch = scripted_batch(env, agents, acts1, acts2)
    assert batch.num_episodes == 16
    J1, J2 = env.exact_values(agents[0].probs()[0], agents[1].probs()[0])
    exact = ExactLocalGame(J1, J2, *agents)
    D12, D21 = exact.dense()
    Q1 = torch.as_tensor(env.payoff1)[batch.act1, batch.act2]  # Q_i(a1, a2) = payoff_i: one-step game
    Q2 = torch.as_tensor(env.payoff2)[batch.act1, batch.act2]
    for method in METHODS:
        for estimator, baselines in (("mc", None), ("mc", (0.3, -2.0)), ("critic", None), ("critic", (1.0, 1.0))):
            game = estimate_local_game(batch, *agents, gamma=1.0, estimator=estimator, critics=(Q1, Q2),
                                       baselines=baselines, method=method, fisher="empirical")
            assert_local_game_equals(game, exact.g1.detach(), exact.g2.detach(), D12, D21)
            # the Fisher of a softmax in its logits: diag(p) - p p^T (empirical = exact on this batch)
            p = agents[0].probs()[0].detach()
            torch.testing.assert_close(game.F1.to_dense(p), torch.diag(p) - torch.outer(p, p), atol=1e-12, rtol=0)
    kl = estimate_local_game(batch, *agents, gamma=1.0, fisher="kl").F2.to_dense(p)
    q = agents[1].probs()[0].detach()
    torch.testing.assert_close(kl, torch.diag(q) - torch.outer(q, q), atol=1e-12, rtol=0)


def iterated_quarter_policies():
    """Memory-one policies with P(action 0 | state) in {1/4, 1/2, 3/4}."""
    c1, c2 = [0.25, 0.5, 0.75, 0.25, 0.5], [0.75, 0.25, 0.5, 0.5, 0.25]
    return (TabularCategoricalPolicy(2, 5, logits=quarter_logits([[c, 1 - c] for c in c1])),
            TabularCategoricalPolicy(2, 5, logits=quarter_logits([[c, 1 - c] for c in c2])))


def test_stratified_iterated_batch_gives_the_exact_local_game():
    """Every 2-step trajectory of the iterated prisoner's dilemma, 256 P(trajectory) times: the MC
    estimator (eq. 13), the critic estimator with the exact Q (eq. 14) and both with the exact state-value
    baseline reproduce the exact derivatives of the 2-step discounted value."""
    H, gamma = 2, 0.9
    agents = iterated_quarter_policies()
    probs = [a.probs().detach().numpy() for a in agents]
    trajectories = []
    for a in itertools.product(range(2), repeat=4):  # (a1_0, a2_0, a1_1, a2_1)
        s1 = 1 + 2 * a[0] + a[1]
        weight = probs[0][0, a[0]] * probs[1][0, a[1]] * probs[0][s1, a[2]] * probs[1][s1, a[3]]
        trajectories += [a] * round(256 * weight)
    assert len(trajectories) == 256
    traj = np.array(trajectories).T  # (4, 256)
    env = make_iterated_env("ipd", num_envs=256, gamma=gamma, horizon=H)
    batch = scripted_batch(env, agents, traj[[0, 2]], traj[[1, 3]])
    assert batch.num_episodes == 256 and batch.done[1].all()

    obs = torch.eye(5, dtype=F64)
    pi1, pi2 = agents[0].distribution(obs).probs, agents[1].distribution(obs).probs
    exact = ExactLocalGame(*env.exact_values(pi1, pi2, horizon=H), *agents)
    D12, D21 = exact.dense()
    Q1, Q2 = (q.detach() for q in env.exact_action_values(pi1, pi2, horizon=H))  # (H, 2, 2)
    state = batch.obs1.argmax(-1)
    q = (Q1[batch.t, batch.act1, batch.act2], Q2[batch.t, batch.act1, batch.act2])
    pa1, pa2 = pi1.detach()[state], pi2.detach()[state]  # (T, N, 2)
    V = tuple(torch.einsum("tna,tnb,tnab->tn", pa1, pa2, Q[batch.t]) for Q in (Q1, Q2))  # V_t(s_t)
    for estimator, baselines in (("mc", None), ("critic", None), ("mc", V), ("critic", V)):
        game = estimate_local_game(batch, *agents, gamma=gamma, estimator=estimator, critics=q, baselines=baselines)
        assert_local_game_equals(game, exact.g1.detach(), exact.g2.detach(), D12, D21)


# -- the sample formulas as the seed writes them -------------------------------------------------------
def per_sample_scores(policy, obs, act):
    """(T, N, p) score vectors grad log pi(a_tn | o_tn), one autograd call per sample."""
    params = list(policy.parameters())
    T, N = act.shape[:2]
    return torch.stack([torch.stack([flat_grad(policy.distribution(obs[t, n]).log_prob(act[t, n]), params)
                                     for n in range(N)]) for t in range(T)])


def literal_estimates(batch, agents, gamma, G_from=None):
    """eqs. (12)-(14) by loops over the episodes of every row (complete episodes only).

    G_from=None: eq. (12) sum_t gamma^t r_t S_t and eq. (13) sum_t gamma^t r1_t S1_t S2_t^T.
    G_from=(Q1, Q2): eq. (14), three terms with gamma^t Q1_t, and the gradient sum_t gamma^t Q_t s_t.
    """
    s1 = per_sample_scores(agents[0], batch.obs1, batch.act1)
    s2 = per_sample_scores(agents[1], batch.obs2, batch.act2)
    g1, g2 = torch.zeros(s1.shape[-1], dtype=F64), torch.zeros(s2.shape[-1], dtype=F64)
    D12, D21 = torch.zeros(len(g1), len(g2), dtype=F64), torch.zeros(len(g2), len(g1), dtype=F64)
    episodes = 0
    for n in range(batch.num_envs):
        start = 0
        for end in range(batch.num_steps):
            if not batch.done[end, n]:
                continue
            episodes += 1
            S1 = torch.zeros_like(g1)
            S2 = torch.zeros_like(g2)
            for k, step in enumerate(range(start, end + 1)):
                assert int(batch.t[step, n]) == k
                prev1, prev2 = S1.clone(), S2.clone()
                S1, S2 = S1 + s1[step, n], S2 + s2[step, n]
                if G_from is None:
                    r1, r2 = gamma ** k * batch.rew1[step, n], gamma ** k * batch.rew2[step, n]
                    g1 += r1 * S1
                    g2 += r2 * S2
                    D12 += r1 * torch.outer(S1, S2)  # eq. (13)
                    D21 += r2 * torch.outer(S2, S1)
                else:
                    q1, q2 = gamma ** k * G_from[0][step, n], gamma ** k * G_from[1][step, n]
                    g1 += q1 * s1[step, n]
                    g2 += q2 * s2[step, n]
                    # eq. (14): same-step term, then the two cross terms with strictly earlier scores
                    D12 += q1 * (torch.outer(s1[step, n], s2[step, n]) + torch.outer(s1[step, n], prev2)
                                 + torch.outer(prev1, s2[step, n]))
                    D21 += q2 * (torch.outer(s2[step, n], s1[step, n]) + torch.outer(s2[step, n], prev1)
                                 + torch.outer(prev2, s1[step, n]))
            start = end + 1
    return g1 / episodes, g2 / episodes, D12 / episodes, D21 / episodes


def test_estimates_equal_the_literal_per_episode_sums_across_episode_boundaries():
    """Rows holding several episodes (H = 2 in 7 steps: 3 complete and a partial one per row)."""
    env = make_iterated_env("ipd", num_envs=3, seed=0, gamma=0.8, horizon=2)
    agents = tuple(make_policy(env.observation_spaces[i], env.action_spaces[i], hidden=(3,), seed=i, dtype=F64)
                   for i in range(2))
    batch = collect(env, agents, steps=7, generator=torch.Generator().manual_seed(0))
    assert batch.first[2].all() and batch.first[4].all() and not batch.complete[6].any()
    Q = (torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(1)),
         torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(2)))
    for estimator, G_from in (("mc", None), ("critic", Q)):
        expected = literal_estimates(batch, agents, 0.8, G_from)
        for method in METHODS:
            game = estimate_local_game(batch, *agents, gamma=0.8, estimator=estimator, critics=Q, method=method)
            assert_local_game_equals(game, *expected, atol=1e-10)


def test_partial_episodes_at_the_batch_end_are_dropped():
    env = make_iterated_env("imp", num_envs=5, seed=0, horizon=3)
    agents = iterated_quarter_policies()
    batch = collect(env, agents, steps=8, generator=torch.Generator().manual_seed(0))
    whole = batch.select(steps=slice(0, 6))  # the two complete episodes of every row
    assert batch.num_episodes == whole.num_episodes == 10
    v = torch.randn(10, dtype=F64, generator=torch.Generator().manual_seed(0))
    a = estimate_local_game(batch, *agents, gamma=0.9)
    b = estimate_local_game(whole, *agents, gamma=0.9)
    torch.testing.assert_close(a.g1, b.g1)
    torch.testing.assert_close(a.D12 @ v, b.D12 @ v)
    torch.testing.assert_close(a.D21 @ v, b.D21 @ v)
    assert a.info["J1"] == b.info["J1"] and a.info["episodes"] == 10


# -- convergence to the exact derivatives --------------------------------------------------------------
def relative_errors(game, exact, v1, v2, D12v, D21v):
    pairs = ((game.g1, exact.g1), (game.g2, exact.g2), (game.D12 @ v2, D12v), (game.D21 @ v1, D21v))
    return torch.tensor([float((a - e.detach()).norm() / e.detach().norm()) for a, e in pairs])


def convergence_setting(name):
    """(env, agents, steps, gamma, J1, J2, Q1, Q2, V1, V2) with exact values through the same networks."""
    if name == "one-step":
        env = make_matrix_env(name="rock-paper-scissors", num_envs=65536, seed=0)
        agents = [make_policy(env.observation_spaces[i], env.action_spaces[i], hidden=(8,), seed=i + 1, dtype=F64)
                  for i in range(2)]
        with torch.no_grad():  # sharpen the random init so the policies are far from uniform
            for a in agents:
                a.logits_net[-1].weight.mul_(4.0)
                a.logits_net[-1].bias.mul_(4.0)
        pi1, pi2 = (a.distribution(torch.ones(1, 1, dtype=F64)).probs[0] for a in agents)
        return env, agents, 1, 1.0, env.exact_values(pi1, pi2)
    env = make_iterated_env("ipd", num_envs=65536, seed=0, gamma=0.9, horizon=3)
    agents = [make_policy(env.observation_spaces[i], env.action_spaces[i], hidden=(), seed=i + 11, dtype=F64)
              for i in range(2)]
    obs = torch.eye(5, dtype=F64)
    pi1, pi2 = (a.distribution(obs).probs for a in agents)
    return env, agents, 3, 0.9, env.exact_values(pi1, pi2, horizon=3)


@pytest.mark.parametrize("name", ["one-step", "iterated"])
def test_sample_estimates_converge_to_exact_derivatives_like_one_over_sqrt_n(name):
    """g1, g2, D12 v, D21 v by the MC estimator (eqs. 12-13, no baseline) on 65536 episodes: the RMS
    relative error over 64 disjoint batches of 1024 episodes is about twice that over 16 batches of 4096
    (1/sqrt(N)), and the estimate from all 65536 episodes is within 5% of the exact value."""
    env, agents, steps, gamma, (J1, J2) = convergence_setting(name)
    exact = ExactLocalGame(J1, J2, *agents)
    gen = torch.Generator().manual_seed(7)
    v1, v2 = (torch.randn(len(g), dtype=F64, generator=gen) for g in (exact.g1, exact.g2))
    D12v, D21v = exact.D12(v2).detach(), exact.D21(v1).detach()
    batch = collect(env, agents, steps=steps, generator=gen)
    rms = {}
    for size in (1024, 4096):
        errors = torch.stack([relative_errors(estimate_local_game(batch.select(envs=slice(k, k + size)), *agents,
                                                                  gamma=gamma), exact, v1, v2, D12v, D21v)
                              for k in range(0, batch.num_envs, size)])
        rms[size] = errors.pow(2).mean(0).sqrt()
    ratio = rms[1024] / rms[4096]
    full = relative_errors(estimate_local_game(batch, *agents, gamma=gamma), exact, v1, v2, D12v, D21v)
    print(f"{name}: rms@1024 {rms[1024].tolist()} rms@4096 {rms[4096].tolist()} ratio {ratio.tolist()} "
          f"full@65536 {full.tolist()}")
    # sqrt(4) = 2 expected; an RMS over 16 batches is itself uncertain by about 1/sqrt(2 * 16) = 18%
    assert ((ratio > 1.3) & (ratio < 3.0)).all(), ratio
    assert 1.5 < math.sqrt(float(rms[1024].pow(2).sum() / rms[4096].pow(2).sum())) < 2.6
    assert (full < 0.05).all(), full


def test_critic_estimator_with_exact_q_converges_and_reduces_variance():
    """eq. (14) with the exact finite-horizon Q and the exact V as baseline on the iterated game."""
    env, agents, steps, gamma, (J1, J2) = convergence_setting("iterated")
    exact = ExactLocalGame(J1, J2, *agents)
    gen = torch.Generator().manual_seed(8)
    v1, v2 = (torch.randn(len(g), dtype=F64, generator=gen) for g in (exact.g1, exact.g2))
    D12v, D21v = exact.D12(v2).detach(), exact.D21(v1).detach()
    batch = collect(env, agents, steps=steps, generator=gen)
    obs = torch.eye(5, dtype=F64)
    pi1, pi2 = (a.distribution(obs).probs.detach() for a in agents)
    Q1, Q2 = env.exact_action_values(pi1, pi2, horizon=steps)
    state = batch.obs1.argmax(-1)
    q = (Q1[batch.t, batch.act1, batch.act2], Q2[batch.t, batch.act1, batch.act2])
    V = tuple(torch.einsum("tna,tnb,tnab->tn", pi1[state], pi2[state], Q[batch.t]) for Q in (Q1, Q2))
    critic = relative_errors(estimate_local_game(batch, *agents, gamma=gamma, estimator="critic", critics=q,
                                                 baselines=V), exact, v1, v2, D12v, D21v)
    mc = relative_errors(estimate_local_game(batch, *agents, gamma=gamma), exact, v1, v2, D12v, D21v)
    print(f"critic+baseline {critic.tolist()} mc {mc.tolist()}")
    assert (critic < 0.05).all(), critic
    assert critic[:2].max() < mc[:2].min()  # the gradients gain most from the critic and baseline


# -- methods, operators, errors -------------------------------------------------------------------------
class DriftEnv(TwoAgentEnv):
    """Continuous 2-d actions, random observations, rewards depending on both actions; episodes of a
    random length (terminated with probability 0.3 per step, truncated at 4)."""

    def __init__(self, num_envs, seed=None):
        obs, act = Box(-np.inf, np.inf, shape=(3,)), Box(-np.inf, np.inf, shape=(2,))
        super().__init__(num_envs, (obs, obs), (act, act), seed, max_episode_steps=4)

    def _reset_envs(self, mask):
        x = self.rng.standard_normal((int(mask.sum()), 3))
        return x, x.copy()

    def _step_envs(self, a1, a2):
        x = self.rng.standard_normal((self.num_envs, 3))
        r = np.tanh(a1 @ np.array([1.0, -0.5]) * a2[:, 0]) + 0.1 * a1[:, 1]
        return (x, x.copy()), (r, -r), self.rng.random(self.num_envs) < 0.3, {}


def test_all_methods_agree_on_gaussian_mlp_policies_with_variable_length_episodes():
    env = DriftEnv(6, seed=0)
    torch.manual_seed(0)
    agents = (GaussianMLPPolicy(3, 2, hidden=(5, 4)).double(), GaussianMLPPolicy(3, 2, hidden=(4,)).double())
    batch = collect(env, agents, steps=9, generator=torch.Generator().manual_seed(0))
    assert not batch.complete.all() and batch.terminated.any() and batch.truncated.any()
    gen = torch.Generator().manual_seed(1)
    p1, p2 = (sum(p.numel() for p in a.parameters()) for a in agents)
    v1, v2 = torch.randn(p1, dtype=F64, generator=gen), torch.randn(p2, dtype=F64, generator=gen)
    results = {}
    for method in METHODS:
        game = estimate_local_game(batch, *agents, gamma=0.95, method=method, fisher="empirical",
                                   baselines=(0.2, -0.2))
        results[method] = (game.g1, game.g2, game.D12 @ v2, game.D21 @ v1, game.D12.rmatvec(v1),
                           game.D21.rmatvec(v2), game.F1 @ v1)
        # adjoints: <v1, D12 v2> = <D12^T v1, v2>
        torch.testing.assert_close(v1 @ (game.D12 @ v2), game.D12.rmatvec(v1) @ v2)
        assert game.info["method"] == (method if method != "auto" else "layer-factors")
    for method in METHODS[1:]:
        for a, b in zip(results[METHODS[0]], results[method], strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)
    assert all(p.grad is None for a in agents for p in a.parameters())  # no side effects on .grad


def test_zero_sum_local_game_has_d21_equal_minus_d12_transpose():
    env = DriftEnv(4, seed=1)
    agents = (GaussianMLPPolicy(3, 2, hidden=(3,)).double(), GaussianMLPPolicy(3, 2, hidden=()).double())
    batch = collect(env, agents, steps=8, generator=torch.Generator().manual_seed(0))
    game = estimate_local_game(batch, *agents, gamma=0.9, zero_sum=True)
    general = estimate_local_game(batch, *agents, gamma=0.9)
    like = torch.zeros(1, dtype=F64)
    torch.testing.assert_close(game.D21.to_dense(like), -game.D12.to_dense(like).T)
    torch.testing.assert_close(general.D21.to_dense(like), game.D21.to_dense(like))  # rewards are zero-sum
    assert game.zero_sum and not general.zero_sum


def test_kl_fisher_is_the_exact_gaussian_fisher():
    """For a Gaussian policy the Hessian of the mean KL equals the mean over states of
    J_mu^T diag(1/sigma^2) J_mu (+ 2 I on log-std): compare with that closed form."""
    env = DriftEnv(3, seed=2)
    policy = GaussianMLPPolicy(3, 2, hidden=(), log_std_init=-0.3).double()
    batch = collect(env, (policy, policy), steps=4, generator=torch.Generator().manual_seed(0))
    F = estimate_local_game(batch, policy, policy, gamma=1.0, fisher=True).F1.to_dense(torch.zeros(1, dtype=F64))
    states = batch.obs1[batch.complete]
    W = policy.mean_net[0]
    sigma2 = torch.exp(2 * policy.log_std.detach())
    # parameters() order: log_std (2), weight (2x3), bias (2)
    x = torch.cat([states, torch.ones(len(states), 1, dtype=F64)], 1)  # (M, 4)
    mean_block = torch.kron(torch.diag(1 / sigma2), x.T @ x / len(states))  # rows (out, [w..., b])
    expected = torch.zeros(10, 10, dtype=F64)
    expected[:2, :2] = 2 * torch.eye(2, dtype=F64)
    # flat index of weight[o, i] is 2 + 3 o + i, of bias[o] is 8 + o; mean_block rows are (o, [x_i..., 1])
    idx = [j for o in range(2) for j in ([2 + 3 * o + i for i in range(3)] + [8 + o])]
    expected[np.ix_(idx, idx)] = mean_block
    assert W.weight.shape == (2, 3)
    torch.testing.assert_close(F, expected, atol=1e-10, rtol=1e-10)


def test_bad_arguments_raise_clear_errors():
    env = make_matrix_env(name="prisoners-dilemma", num_envs=4, horizon=3)
    agents = (TabularCategoricalPolicy(2).double(), TabularCategoricalPolicy(2).double())
    short = collect(env, agents, steps=2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="no complete episode"):
        estimate_local_game(short, *agents)
    batch = collect(env, agents, steps=3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="not zero-sum"):
        estimate_local_game(batch, *agents, zero_sum=True)
    with pytest.raises(ValueError, match="estimator must be one of"):
        estimate_local_game(batch, *agents, estimator="td")
    with pytest.raises(ValueError, match="method must be one of"):
        estimate_local_game(batch, *agents, method="magic")
    with pytest.raises(ValueError, match="critic 1 is missing"):
        estimate_local_game(batch, *agents, estimator="critic")
    with pytest.raises(ValueError, match=r"critics\[0\] as a tensor must have shape"):
        estimate_local_game(batch, *agents, estimator="critic", critics=(torch.zeros(2), torch.zeros(3, 4)))
    with pytest.raises(ValueError, match="fisher must be"):
        estimate_local_game(batch, *agents, fisher="hessian")
    with pytest.raises(ValueError, match="gamma"):
        estimate_local_game(batch, *agents, gamma=1.5)
    with pytest.raises(ValueError, match="baselines must be a pair"):
        estimate_local_game(batch, *agents, baselines=0.5)
    with pytest.raises(ValueError, match="flat vector of 2"):
        estimate_local_game(batch, *agents).D12 @ torch.zeros(3, dtype=F64)


def test_layer_factors_match_double_backward_on_categorical_mlps_and_fall_back_elsewhere():
    """The autograd-free layer-factored products equal the autograd ones; unknown modules use autograd."""
    env = make_iterated_env("ipd", num_envs=16, seed=3, horizon=4)
    torch.manual_seed(2)
    agents = tuple(make_policy(env.observation_spaces[i], env.action_spaces[i], hidden=(6, 5), dtype=F64)
                   for i in (0, 1))
    batch = collect(env, agents, steps=8, generator=torch.Generator().manual_seed(4))
    assert_layer_factors_match_double_backward(batch, agents, gamma=0.9, seed=5)

    class Wrapped(torch.nn.Module):  # not one of the project's policies: rows could mix, so no layer factors
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def distribution(self, obs):
            return self.inner.distribution(obs)

    wrapped = (Wrapped(agents[0]), agents[1])
    assert estimate_local_game(batch, *wrapped, gamma=0.9).info["method"] == "double-backward/layer-factors"
    with pytest.raises(ValueError, match="method 'layer-factors' needs"):
        estimate_local_game(batch, *wrapped, gamma=0.9, method="layer-factors")


@pytest.mark.parametrize("frozen", ["mean_net.0.weight", "mean_net.2.bias", "log_std"])
def test_layer_factors_match_double_backward_with_a_frozen_weight_bias_or_log_std(frozen):
    """A layer whose weight (or bias) is frozen keeps only its other part in the factored products;
    frozen entries get zero rows and columns. The reference is autograd through the same networks."""
    env = DriftEnv(6, seed=4)
    torch.manual_seed(3)
    agents = (GaussianMLPPolicy(3, 2, hidden=(5, 4)).double(), GaussianMLPPolicy(3, 2, hidden=(4,)).double())
    dict(agents[0].named_parameters())[frozen].requires_grad_(False)
    batch = collect(env, agents, steps=9, generator=torch.Generator().manual_seed(6))
    factored, v1, v2 = assert_layer_factors_match_double_backward(batch, agents, gamma=0.95, seed=7)
    assert (factored.D21 @ v1).abs().max() > 0 and (factored.D12 @ v2).abs().max() > 0


def assert_layer_factors_match_double_backward(batch, agents, gamma, seed):
    """g1, D12 v2, D21 v1, D12^T v1 and F1 v1 by layer factors equal autograd's for random tangents v1, v2;
    returns (the layer-factored game, v1, v2)."""
    gen = torch.Generator().manual_seed(seed)
    p1, p2 = (sum(p.numel() for p in a.parameters()) for a in agents)
    v1, v2 = torch.randn(p1, dtype=F64, generator=gen), torch.randn(p2, dtype=F64, generator=gen)
    reference = estimate_local_game(batch, *agents, gamma=gamma, method="double-backward", fisher="empirical")
    factored = estimate_local_game(batch, *agents, gamma=gamma, method="layer-factors", fisher="empirical")
    for a, b in [(reference.g1, factored.g1), (reference.D12 @ v2, factored.D12 @ v2),
                 (reference.D21 @ v1, factored.D21 @ v1), (reference.D12.rmatvec(v1), factored.D12.rmatvec(v1)),
                 (reference.F1 @ v1, factored.F1 @ v1)]:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    return factored, v1, v2
