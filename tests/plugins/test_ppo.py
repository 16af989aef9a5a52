"""ppo: the clipped objective, GAE against hand-computed values, and learning a dominant strategy."""

import copy
import math

import pytest
import torch

import ipo_robust
from ipo_robust import host
from ipo_robust.optim.optimizer import Optimizer, SampleOptimizer, capabilities_of
from ipo_robust.plugins.ppo import (
    PPO,
    clipped_surrogate,
    critic_values,
    generalized_advantages,
    normalized,
    normalized_minibatches,
    value_critics,
)


@pytest.mark.parametrize(("ratio", "advantage", "clipped"), [
    (1.5, 2.0, True),     # ratio above 1 + eps with A > 0: no incentive to move further
    (0.5, -2.0, True),    # ratio below 1 - eps with A < 0: likewise
    (1.5, -2.0, False),   # the pessimistic bound keeps the unclipped term: gradient A * ratio
    (0.5, 2.0, False),
    (1.1, 2.0, False),    # inside the clip range
])
def test_clipped_objective_gradient_vanishes_outside_the_clip_range(ratio, advantage, clipped):
    logp = torch.tensor([math.log(ratio)], dtype=torch.float64, requires_grad=True)
    objective = clipped_surrogate(logp, torch.zeros(1, dtype=torch.float64),
                                  torch.tensor([advantage], dtype=torch.float64), clip=0.2)
    (grad,) = torch.autograd.grad(objective, logp)
    expected = 0.0 if clipped else advantage * ratio  # d(rho A)/d log pi = rho A
    assert float(grad) == pytest.approx(expected, rel=1e-12, abs=0.0)


def test_gae_matches_a_hand_computed_three_step_episode_with_truncation():
    gamma, lam = 0.9, 0.8
    # row 0: one 3-step episode truncated by a time limit (bootstraps V(next_obs) at its end);
    # row 1: an episode terminating at step 1, then a partial episode cut by the batch end.
    rew = torch.tensor([[1.0, 1.0], [2.0, 0.0], [3.0, 5.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 0.1], [0.6, 0.2], [0.7, 0.3]], dtype=torch.float64)
    next_values = torch.tensor([[0.6, 0.2], [0.7, 0.9], [0.9, 0.4]], dtype=torch.float64)
    done = torch.tensor([[False, False], [False, True], [True, False]])
    terminated = torch.tensor([[False, False], [False, True], [False, False]])
    advantages, returns = generalized_advantages(rew, values, next_values, done, terminated, gamma, lam)
    # row 0, by hand
    d2 = 3.0 + 0.9 * 0.9 - 0.7           # truncated: bootstrap with V(next_obs) = 0.9
    d1 = 2.0 + 0.9 * 0.7 - 0.6
    d0 = 1.0 + 0.9 * 0.6 - 0.5
    A2, A1 = d2, d1 + 0.72 * d2
    A0 = d0 + 0.72 * A1
    # row 1, by hand
    e1 = 0.0 + 0.0 - 0.2                 # terminated: no bootstrap
    e0 = 1.0 + 0.9 * 0.2 - 0.1
    e2 = 5.0 + 0.9 * 0.4 - 0.3           # partial episode at the batch end: bootstrapped
    B1, B0, B2 = e1, e0 + 0.72 * e1, e2
    expected = torch.tensor([[A0, B0], [A1, B1], [A2, B2]], dtype=torch.float64)
    torch.testing.assert_close(advantages, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(returns, expected + values, rtol=1e-12, atol=1e-12)


def test_critic_values_read_the_next_value_one_step_on_and_evaluate_next_obs_where_needed():
    """V(next_obs_t) is V(obs_{t+1}) where the episode goes on, the critic's value of next_obs everywhere else: at
    episode ends (after a reset obs_{t+1} is another episode's), at the batch's last step, and where an env's
    next_obs differs from the next step's obs although no episode ended."""
    env = ipo_robust.make_env("sumo-pushers", num_envs=6, seed=0, max_episode_steps=7)
    agents = ipo_robust.make_agents(env, seed=0)
    batch = ipo_robust.collect(env, agents, 20, generator=torch.Generator().manual_seed(1))
    assert batch.done[:-1].any()
    batch.next_obs2[3, 2] += 0.5  # an env whose two records of an observation disagree, mid-episode
    assert not batch.done[3, 2]
    critic, _ = value_critics(agents, (16, 16), (8,), seed=0)
    values, next_values = critic_values(critic, batch)
    with torch.no_grad():
        torch.testing.assert_close(values, critic(batch.obs1, batch.obs2), rtol=0, atol=0)
        torch.testing.assert_close(next_values, critic(batch.next_obs1, batch.next_obs2))
        shifted = critic(batch.obs1, batch.obs2)[1:]
    assert not torch.allclose(next_values[:-1][batch.done[:-1]], shifted[batch.done[:-1]])  # ends differ


@pytest.mark.parametrize("count, size", [(12, 4), (14, 4), (3, 5), (7, 1), (9, 2)])
def test_minibatch_normalisation_in_one_pass_is_each_minibatchs_own(count, size):
    advantages = torch.randn(count, generator=torch.Generator().manual_seed(count), dtype=torch.float64) * 3 + 1
    expected = torch.cat([normalized(advantages[start:start + size]) for start in range(0, count, size)])
    got = normalized_minibatches(advantages, size)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    if size >= 2:
        assert abs(float(got[:size].mean())) < 1e-12 and float(got[:size].std()) == pytest.approx(1.0, rel=1e-6)


def test_ppo_is_sample_only():
    """PPO declares it has no local game and is a sibling of the local-game optimizers: it inherits no
    update(game) or local_game(batch) that it would have to refuse."""
    factory = host.resolve("optimizer", "ppo")
    assert factory is PPO and not capabilities_of(PPO).local_game
    assert issubclass(PPO, SampleOptimizer) and not issubclass(PPO, Optimizer)
    optimizer = factory(None)
    assert not hasattr(optimizer, "update") and not hasattr(optimizer, "local_game")


def test_ppo_learns_to_defect_in_the_prisoners_dilemma():
    env = ipo_robust.make_env("prisoners-dilemma", num_envs=64, seed=0)
    agents = ipo_robust.make_agents(env, seed=0, hidden=(16,))
    optimizer = ipo_robust.make_optimizer("ppo", agents, lr=0.01, critic_hidden=(16,), minibatches=2, seed=0)
    generator = torch.Generator().manual_seed(0)
    obs = torch.ones(1, 1)
    with torch.no_grad():
        start = [float(a.distribution(obs).probs[0, 1]) for a in agents]
    for _ in range(8):
        info = optimizer.step(ipo_robust.collect(env, agents, steps=2, generator=generator))
    with torch.no_grad():
        defect = [float(a.distribution(obs).probs[0, 1]) for a in agents]
    assert max(start) < 0.6
    assert min(defect) > 0.9  # measured 0.998 and 0.9986 after 8 steps of 128 samples
    for key in ("optim/kl1", "optim/clipfrac2", "optim/value_loss1", "train/J1"):
        assert key in info


def _sumo_pushers(dtype):
    env = ipo_robust.make_env("sumo-pushers", num_envs=4, seed=0)
    agents = tuple(a.to(dtype) for a in ipo_robust.make_agents(env, seed=0))
    batch = ipo_robust.collect(env, agents, 30, generator=torch.Generator().manual_seed(0))
    env.close()
    return agents, batch


def test_hand_written_gradients_take_the_same_steps_as_autograd(monkeypatch):
    """PPO differentiates the project's Gaussian MLP policy and value critic by hand (ipo_robust.mlp_grad);
    three updates must move the weights as autograd's gradients do, with the clip, the entropy bonus and the
    gradient-norm clip all active, and a frozen player left alone."""
    from ipo_robust.plugins import ppo as ppo_module

    options = {"lr": 3e-2, "ent_coef": 0.05, "max_grad_norm": 0.05, "epochs": 3, "minibatches": 3}
    agents, batch = _sumo_pushers(torch.float64)
    runs = {}
    for by_hand in (True, False):
        copies = tuple(copy.deepcopy(a) for a in agents)
        if not by_hand:
            monkeypatch.setattr(ppo_module, "_by_hand", lambda agent, critic: None)
        calls = []
        original = ppo_module._gradients_by_hand
        monkeypatch.setattr(ppo_module, "_gradients_by_hand",
                            lambda *a, calls=calls, original=original: calls.append(1) or original(*a))
        optimizer = host.create("optimizer", "ppo", copies, **options)
        infos = [optimizer.step(batch) for _ in range(3)]
        assert bool(calls) == by_hand
        runs[by_hand] = (copies, optimizer, infos)
        monkeypatch.undo()
    (hand, hand_opt, hand_infos), (auto, auto_opt, auto_infos) = runs[True], runs[False]
    assert max(info["optim/clipfrac1"] for info in auto_infos) > 0.05  # the clipped branch is exercised
    for a, b in zip([*hand, *hand_opt.critics], [*auto, *auto_opt.critics], strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-8, atol=1e-10)
    for key in auto_infos[-1]:
        assert hand_infos[-1][key] == pytest.approx(auto_infos[-1][key], rel=1e-7, abs=1e-10), key


def test_a_frozen_player_keeps_its_weights_with_hand_written_gradients():
    agents, batch = _sumo_pushers(torch.float32)
    before = [[p.detach().clone() for p in agent.parameters()] for agent in agents]
    host.create("optimizer", "ppo", agents, lr=1e-2, train="player1").step(batch)
    moved = [[not torch.equal(p, q) for p, q in zip(agent.parameters(), old, strict=True)]
             for agent, old in zip(agents, before, strict=True)]
    assert all(moved[0]) and not any(moved[1])


def test_a_frozen_tensor_inside_a_player_stays_put():
    """A parameter with requires_grad=False is left alone: such a player takes autograd's path, whose gradient
    of a frozen tensor is None (Adam skips it)."""
    agents, batch = _sumo_pushers(torch.float32)
    frozen = agents[0].mean_net[0].weight
    frozen.requires_grad_(False)
    before, trained = frozen.detach().clone(), agents[0].mean_net[2].weight.detach().clone()
    host.create("optimizer", "ppo", agents, lr=1e-2).step(batch)
    assert torch.equal(frozen, before)
    assert not torch.equal(agents[0].mean_net[2].weight, trained)
