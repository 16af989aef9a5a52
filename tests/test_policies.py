"""Policies and centralised critics: shapes, exact log-probabilities, seeded sampling and init."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal

from ipo_robust.envs.base import Box, Discrete
from ipo_robust.policies import (
    CategoricalMLPPolicy,
    GaussianMLPPolicy,
    QCritic,
    TabularCategoricalPolicy,
    ValueCritic,
    make_policy,
    sample_action,
)


def test_categorical_mlp_shapes_and_log_probs():
    policy = CategoricalMLPPolicy(4, 3, hidden=(16, 16))
    obs = torch.randn(5, 7, 4)
    dist = policy.distribution(obs)
    assert isinstance(dist, Categorical) and dist.batch_shape == (5, 7)
    actions = policy.act(obs, generator=torch.Generator().manual_seed(0))
    assert actions.shape == (5, 7) and actions.dtype == torch.int64
    logits = policy.logits_net(obs)
    expected = torch.log_softmax(logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(dist.log_prob(actions), expected)
    assert sum(1 for m in policy.logits_net if isinstance(m, torch.nn.Tanh)) == 2  # tanh by default


def test_gaussian_mlp_log_prob_sums_over_action_dimensions():
    policy = GaussianMLPPolicy(3, 2, hidden=(8,), log_std_init=-0.5)
    obs = torch.randn(6, 3)
    dist = policy.distribution(obs)
    assert isinstance(dist, Independent) and dist.batch_shape == (6,) and dist.event_shape == (2,)
    action = policy.act(obs, generator=torch.Generator().manual_seed(1))
    assert action.shape == (6, 2)
    mean = policy.mean_net(obs)
    expected = Normal(mean, math.exp(-0.5)).log_prob(action).sum(-1)
    assert torch.allclose(dist.log_prob(action), expected)
    assert "log_std" in dict(policy.named_parameters())  # a state-independent parameter (act_dim,)


def test_hidden_empty_gives_a_linear_policy():
    policy = CategoricalMLPPolicy(5, 2, hidden=())
    assert len(policy.logits_net) == 1 and isinstance(policy.logits_net[0], torch.nn.Linear)
    obs = torch.eye(5)
    assert torch.allclose(policy.distribution(obs).logits,
                          torch.log_softmax(obs @ policy.logits_net[0].weight.T + policy.logits_net[0].bias, -1))


def test_tabular_policy_logits_are_the_parameters():
    one_step = TabularCategoricalPolicy(3, logits=torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
    dist = one_step.distribution(torch.ones(4, 2, 1))
    assert dist.batch_shape == (4, 2)
    assert torch.allclose(dist.probs[1, 1], torch.softmax(one_step.logits[0], -1))
    assert one_step.logits.dtype == torch.float64
    memory_one = TabularCategoricalPolicy(2, n_states=5, logits=torch.arange(10.0).reshape(5, 2))
    obs = torch.eye(5)[[0, 3, 3]]
    assert torch.allclose(memory_one.distribution(obs).probs, memory_one.probs()[[0, 3, 3]])
    with pytest.raises(ValueError, match="one-hot observations of size 5"):
        memory_one.distribution(torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        TabularCategoricalPolicy(2, n_states=5, logits=torch.zeros(4, 2))


def test_act_is_reproducible_with_a_generator_and_matches_the_distribution():
    policy = CategoricalMLPPolicy(2, 3, hidden=(8,))
    obs = torch.zeros(20000, 2)
    a = policy.act(obs, generator=torch.Generator().manual_seed(3))
    b = policy.act(obs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    freq = torch.bincount(a, minlength=3).double() / a.numel()
    assert torch.allclose(freq, policy.distribution(obs[:1]).probs[0].double(), atol=0.02)
    gaussian = GaussianMLPPolicy(2, 2, hidden=())
    x = gaussian.act(torch.zeros(20000, 2), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x.mean(0), gaussian.distribution(torch.zeros(1, 2)).mean[0], atol=0.03)
    assert torch.allclose(x.std(0), torch.ones(2), atol=0.03)


def test_sample_action_rejects_unknown_distributions_with_a_generator():
    dist = torch.distributions.Beta(torch.ones(2), torch.ones(2))
    with pytest.raises(TypeError, match="Beta"):
        sample_action(dist, torch.Generator())
    assert sample_action(dist, None).shape == (2,)


def test_make_policy_chooses_the_class_and_seeds_without_touching_global_rng():
    obs = Box(-1.0, 1.0, shape=(4,))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    p = make_policy(obs, Discrete(3), hidden=(8,), seed=0)
    q = make_policy(obs, Discrete(3), hidden=(8,), seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert isinstance(p, CategoricalMLPPolicy)
    assert all(torch.equal(a, b) for a, b in zip(p.parameters(), q.parameters(), strict=True))
    g = make_policy(obs, Box(-1.0, 1.0, shape=(2,)), seed=1, dtype=torch.float64)
    assert isinstance(g, GaussianMLPPolicy) and g.log_std.dtype == torch.float64
    assert [m.out_features for m in g.mean_net if isinstance(m, torch.nn.Linear)] == [64, 64, 2]
    with pytest.raises(ValueError, match="Discrete and flat Box"):
        make_policy(obs, Box(0.0, 1.0, shape=(2, 2)))
    with pytest.raises(ValueError, match="flat Box observation"):
        make_policy(Discrete(3), Discrete(2))
    with pytest.raises(ValueError, match="hidden"):
        make_policy(obs, Discrete(2), hidden=(0,))


def test_centralised_critics_take_both_observations_and_actions():
    obs_spaces = (Box(0.0, 1.0, shape=(3,)), Box(0.0, 1.0, shape=(2,)))
    V = ValueCritic(obs_spaces, hidden=(8,))
    o1, o2 = torch.randn(4, 5, 3), torch.randn(4, 5, 2)
    assert V(o1, o2).shape == (4, 5)
    Q = QCritic(obs_spaces, (Discrete(3), Box(-1.0, 1.0, shape=(2,))), hidden=(8,))
    a1, a2 = torch.randint(3, (4, 5)), torch.randn(4, 5, 2)
    assert Q(o1, o2, a1, a2).shape == (4, 5)
    assert Q.net[0].in_features == 3 + 2 + 3 + 2  # observations, one-hot a1, continuous a2
    changed = a1.clone()
    changed[0, 0] = (a1[0, 0] + 1) % 3
    assert not torch.equal(Q(o1, o2, a1, a2)[0, 0], Q(o1, o2, changed, a2)[0, 0])
