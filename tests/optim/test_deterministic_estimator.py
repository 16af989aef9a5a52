"""The estimator of ipo-dpg / maddpg alone: Batch -> the local game of eqs. (22)-(23) on replay states."""

import torch
from torch.nn.utils import parameters_to_vector

import ipo_robust
from ipo_robust.optim.deterministic import DeterministicEstimator, deterministic_local_game, polyak
from ipo_robust.policies import ConstantPolicy


def test_the_estimator_stores_the_batch_and_evaluates_eqs_22_23_on_seeded_replay_states():
    env = ipo_robust.make_env("continuous-quadratic", num_envs=8, seed=0)
    agents = (ConstantPolicy(1, [0.3]), ConstantPolicy(1, [-0.2]))
    batch = ipo_robust.collect(env, agents, steps=2, generator=torch.Generator().manual_seed(0))
    estimator = DeterministicEstimator(batch_size=5, seed=3, critics=env.exact_critics())
    game = estimator(batch, agents)
    assert estimator.buffer.size == 16 and set(game.info) == {"Q1", "Q2"}  # exact critics: no TD losses
    sample = estimator.buffer.sample(5, torch.Generator().manual_seed(3))  # the replay draw of seed 3
    expected = deterministic_local_game(sample["obs1"], sample["obs2"], agents, env.exact_critics())
    torch.testing.assert_close(game.g1, expected.g1)
    torch.testing.assert_close(game.D12.to_dense(game.g1), expected.D12.to_dense(game.g1))
    # independent learners: zero mixed operators
    uncoupled = DeterministicEstimator(batch_size=5, critics=env.exact_critics(), mixed=False)(batch, agents)
    assert uncoupled.D12.to_dense(uncoupled.g1).abs().max() == 0


def test_learned_critics_report_td_losses_and_the_targets_follow_by_polyak():
    env = ipo_robust.make_env("continuous-bilinear", num_envs=8, seed=0)
    agents = (ConstantPolicy(1, [1.0]), ConstantPolicy(1, [0.5]))
    batch = ipo_robust.collect(env, agents, steps=1, generator=torch.Generator().manual_seed(0))
    estimator = DeterministicEstimator(critic_updates=2, batch_size=4, tau=0.25)
    game = estimator(batch, agents)
    assert {"critic/loss1", "Q1", "Q2"} <= set(game.info) and estimator.central.zero_sum  # r2 = -r1: one critic
    with torch.no_grad():
        agents[0].theta.add_(1.0)
    estimator.update_targets()
    target = parameters_to_vector(estimator.central.targets[0].parameters())
    torch.testing.assert_close(target, torch.tensor([0.75 * 1.0 + 0.25 * 2.0]))


def test_polyak_moves_the_target_a_fraction_tau_toward_the_source():
    target, source = ConstantPolicy(2, [0.0, 4.0]), ConstantPolicy(2, [2.0, 0.0])
    polyak(target, source, 0.5)
    torch.testing.assert_close(target.theta.detach(), torch.tensor([1.0, 2.0]))
