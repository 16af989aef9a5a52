"""ipo-ppo: the surrogate game against dense autograd derivatives, the diagonal-step CGD against a dense
solve, the independent ablation against torch's Adam, and training with a bit-identical resume."""

import copy

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector

import ipo_robust
from ipo_robust import host
from ipo_robust.errors import ConfigError
from ipo_robust.optim import LocalGame, cgd_step, scaled_cgd_step
from ipo_robust.optim.optimizer import SampleOptimizer, capabilities_of
from ipo_robust.plugins.ipo_ppo import IPOPPO, surrogate_game
from ipo_robust.plugins.ppo import clipped_surrogate
from ipo_robust.policies import GaussianMLPPolicy, StateDependentStdGaussianPolicy

CLIP = 0.2


def _unflatten(policy, theta):
    params, offset = {}, 0
    for name, p in policy.named_parameters():
        params[name] = theta[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return params


def _log_prob(policy, theta, obs, act):
    class LogProb(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.policy = policy

        def forward(self, o, a):
            return self.policy.distribution(o).log_prob(a)

    return functional_call(LogProb(), {f"policy.{k}": v for k, v in _unflatten(policy, theta).items()}, (obs, act))


def _problem(seed=0, M=40, std_policy=GaussianMLPPolicy):
    """Two float64 Gaussian MLPs, a minibatch whose log_old comes from other parameters (ratios away from 1,
    some samples clipped), and advantages of both signs."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if std_policy is GaussianMLPPolicy:
        policies = (GaussianMLPPolicy(3, 2, hidden=(5,)).double(), GaussianMLPPolicy(4, 1, hidden=(6,)).double())
    else:
        policies = (StateDependentStdGaussianPolicy(3, 3, (1, 2), hidden=(5,)).double(),
                    GaussianMLPPolicy(4, 1, hidden=(6,)).double())
    obs = (torch.randn(M, 3, generator=g, dtype=torch.float64), torch.randn(M, 4, generator=g, dtype=torch.float64))
    with torch.no_grad():
        act = tuple(p.distribution(o).sample() for p, o in zip(policies, obs, strict=True))
        logp_old = []
        for p, o, a in zip(policies, obs, act, strict=True):
            theta = parameters_to_vector(p.parameters())
            moved = theta + 0.15 * torch.randn(theta.shape, generator=g, dtype=torch.float64)
            logp_old.append(_log_prob(p, moved, o, a))
    advantages = (torch.randn(M, generator=g, dtype=torch.float64), torch.randn(M, generator=g, dtype=torch.float64))
    return policies, obs, act, logp_old, advantages


def _reference(policies, obs, act, logp_old, advantages):
    """g_i, D12, D21 of f_i = mean min(rho A_i, clip(rho) A_i), rho the joint ratio, by dense autograd."""
    thetas = [parameters_to_vector(p.parameters()).detach() for p in policies]

    def f(i, theta1, theta2):
        logp = _log_prob(policies[0], theta1, obs[0], act[0]) + _log_prob(policies[1], theta2, obs[1], act[1])
        return clipped_surrogate(logp, logp_old[0] + logp_old[1], advantages[i], CLIP)

    g1 = torch.func.grad(lambda t1: f(0, t1, thetas[1]))(thetas[0])
    g2 = torch.func.grad(lambda t2: f(1, thetas[0], t2))(thetas[1])
    D12 = torch.func.jacrev(torch.func.grad(lambda t1, t2: f(0, t1, t2), argnums=0), argnums=1)(*thetas)
    D21 = torch.func.jacrev(torch.func.grad(lambda t1, t2: f(1, t1, t2), argnums=1), argnums=0)(*thetas)
    return g1, g2, D12, D21


@pytest.mark.parametrize("method", ["layer-factors", "double-backward"])
@pytest.mark.parametrize("std_policy", [GaussianMLPPolicy, StateDependentStdGaussianPolicy])
def test_surrogate_game_matches_dense_autograd_derivatives(method, std_policy):
    policies, obs, act, logp_old, advantages = _problem(std_policy=std_policy)
    game, info = surrogate_game(policies, obs, act, logp_old, advantages, CLIP, method=method)
    assert 0.05 < info["clipfrac"] < 0.95  # both branches of the min are exercised
    g1, g2, D12, D21 = _reference(policies, obs, act, logp_old, advantages)
    torch.testing.assert_close(game.g1, g1, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(game.g2, g2, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(game.D12.to_dense(g1), D12, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(game.D21.to_dense(g1), D21, rtol=1e-9, atol=1e-11)
    assert D12.abs().max() > 1e-3 and D21.abs().max() > 1e-3  # the mixed terms are there to be checked


def test_independent_surrogate_game_has_no_mixed_terms():
    policies, obs, act, logp_old, advantages = _problem()
    game, _ = surrogate_game(policies, obs, act, logp_old, advantages, CLIP, mixed=False)
    g1, g2, _, _ = _reference(policies, obs, act, logp_old, advantages)
    torch.testing.assert_close(game.g1, g1, rtol=1e-9, atol=1e-11)
    assert game.D12.to_dense(g1).abs().max() == 0 and game.D21.to_dense(g1).abs().max() == 0


@pytest.mark.parametrize("zero_sum", [True, False])
def test_scaled_cgd_step_solves_the_regularised_local_game(zero_sum):
    g = torch.Generator().manual_seed(1)
    p1, p2 = 6, 4
    g1, g2 = torch.randn(p1, generator=g, dtype=torch.float64), torch.randn(p2, generator=g, dtype=torch.float64)
    D12 = torch.randn(p1, p2, generator=g, dtype=torch.float64)
    D21 = -D12.T if zero_sum else torch.randn(p2, p1, generator=g, dtype=torch.float64)
    scale1 = 0.05 + 0.5 * torch.rand(p1, generator=g, dtype=torch.float64)
    scale2 = 0.05 + 0.5 * torch.rand(p2, generator=g, dtype=torch.float64)
    game = LocalGame.dense(g1, g2, D12, D21, zero_sum=zero_sum)
    step = scaled_cgd_step(game, scale1, scale2, rtol=1e-12, max_iter=50)
    # the Nash equilibrium of the local game regularised by d_i' P_i^-1 d_i / 2: [[P1^-1, -D12], [-D21, P2^-1]] d = g
    block = torch.cat([torch.cat([torch.diag(1 / scale1), -D12], 1), torch.cat([-D21, torch.diag(1 / scale2)], 1)])
    expected = torch.linalg.solve(block, torch.cat([g1, g2]))
    torch.testing.assert_close(torch.cat([step.delta1, step.delta2]), expected, rtol=1e-9, atol=1e-11)
    assert step.info["solver"] == ("cg" if zero_sum else "gmres") and step.converged
    # a warm start is d1 in parameter units: the exact solution needs no iteration
    warm = scaled_cgd_step(game, scale1, scale2, rtol=1e-8, max_iter=50, x0=expected[:p1])
    assert warm.iterations == 0
    torch.testing.assert_close(warm.delta2, expected[p1:], rtol=1e-9, atol=1e-11)
    # uniform scales are plain CGD at that learning rate
    uniform = scaled_cgd_step(game, torch.full((p1,), 0.3, dtype=torch.float64),
                              torch.full((p2,), 0.3, dtype=torch.float64), solver="dense")
    torch.testing.assert_close(uniform.delta1, cgd_step(game, 0.3, 0.3, solver="dense").delta1)


def test_scaled_cgd_step_refuses_bad_scales():
    game = LocalGame.dense(torch.ones(2), torch.ones(1), torch.ones(2, 1), torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"scale1 must be a tensor of shape \(2,\)"):
        scaled_cgd_step(game, torch.ones(3), torch.ones(1))
    with pytest.raises(ValueError, match="scale2 must be finite and > 0 everywhere"):
        scaled_cgd_step(game, torch.ones(2), torch.zeros(1))


def _sumo_batch(dtype=torch.float64):
    env = ipo_robust.make_env("sumo-pushers", num_envs=4, seed=0)
    agents = tuple(a.to(dtype) for a in ipo_robust.make_agents(env, seed=0, hidden=(8,)))
    batch = ipo_robust.collect(env, agents, steps=24, generator=torch.Generator().manual_seed(0))
    env.close()
    return agents, batch


def test_independent_ablation_is_adam_without_momentum_on_each_players_surrogate():
    """mixed=False: each minibatch step is torch.optim.Adam(betas=(0, beta)) on -f_i, both players at once."""
    agents, batch = _sumo_batch()
    reference_agents = copy.deepcopy(agents)
    options = {"lr": 3e-3, "epochs": 2, "minibatches": 3, "beta": 0.99, "seed": 5, "critic_hidden": (8,)}
    optimizer = ipo_robust.make_optimizer("ipo-ppo", agents, mixed=False, **options)
    reference = IPOPPO(reference_agents, mixed=False, **options)  # same critics and shuffles, to read them
    reference._build([int(o.shape[-1]) for o in (batch.obs1, batch.obs2)])
    targets = reference._advantages(batch)
    M = batch.num_steps * batch.num_envs
    generator = torch.Generator().manual_seed(5)
    orders = [torch.randperm(M, generator=generator) for _ in range(2)]
    obs = (batch.obs1.reshape(M, -1), batch.obs2.reshape(M, -1))
    act = (batch.act1.reshape(M, -1), batch.act2.reshape(M, -1))
    with torch.no_grad():
        old = [a.distribution(o).log_prob(x) for a, o, x in zip(reference_agents, obs, act, strict=True)]
    adams = [torch.optim.Adam(a.parameters(), lr=3e-3, betas=(0.0, 0.99), eps=1e-5) for a in reference_agents]
    size = M // 3
    for order in orders:
        for start in range(0, M, size):
            idx = order[start:start + size]
            logp = sum(a.distribution(o[idx]).log_prob(x[idx]) for a, o, x in zip(reference_agents, obs, act,
                                                                                   strict=True))
            losses = []
            for i in range(2):
                adv = targets[i][0][idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                losses.append(-clipped_surrogate(logp, (old[0] + old[1])[idx], adv, 0.2))
            grads = [torch.autograd.grad(losses[i], list(reference_agents[i].parameters()), retain_graph=True)
                     for i in range(2)]
            for adam, agent, grad in zip(adams, reference_agents, grads, strict=True):
                for p, gp in zip(agent.parameters(), grad, strict=True):
                    p.grad = gp
                adam.step()
    optimizer.step(batch)
    for agent, ref in zip(agents, reference_agents, strict=True):
        torch.testing.assert_close(parameters_to_vector(agent.parameters()), parameters_to_vector(ref.parameters()),
                                   rtol=1e-9, atol=1e-12)


def test_ipo_ppo_is_interactive_and_sample_only_and_refuses_an_opponent_model():
    factory = host.resolve("optimizer", "ipo-ppo")
    assert factory is IPOPPO and issubclass(IPOPPO, SampleOptimizer)
    capabilities = capabilities_of(IPOPPO)
    assert capabilities.interactive and not capabilities.local_game and not capabilities.opponent_models
    with pytest.raises(ConfigError, match="takes no opponent_model: each step reads both players' policies"):
        IPOPPO(None, opponent_model="mle")


def test_mixed_step_differs_from_the_independent_one_and_solves_converge():
    agents, batch = _sumo_batch()
    other = copy.deepcopy(agents)
    info = ipo_robust.make_optimizer("ipo-ppo", agents, lr=3e-3, critic_hidden=(8,)).step(batch)
    ipo_robust.make_optimizer("ipo-ppo", other, lr=3e-3, critic_hidden=(8,), mixed=False).step(batch)
    assert info["optim/solve_failures"] == 0 and info["optim/iterations"] >= 1
    difference = (parameters_to_vector(agents[0].parameters()) - parameters_to_vector(other[0].parameters())).norm()
    assert difference > 1e-6
    for key in ("optim/kl1", "optim/kl2", "optim/clipfrac", "optim/value_loss1", "train/J1"):
        assert key in info


def test_bad_hyperparameters_and_a_non_finite_gradient_are_named():
    with pytest.raises(ConfigError, match=r"optimizer 'ipo-ppo': beta must be a number in \[0, 1\), got 1"):
        host.create("optimizer", "ipo-ppo", None, beta=1)
    agents, batch = _sumo_batch()
    batch.rew1[3, 1] = float("nan")
    with pytest.raises(FloatingPointError, match="ipo-ppo: player 1's surrogate gradient is not finite"):
        ipo_robust.make_optimizer("ipo-ppo", agents, critic_hidden=(8,)).step(batch)
