"""Policies and centralised critics: shapes, exact log-probabilities, seeded sampling and init."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal

from ipo_robust.envs.base import Box, Discrete
from ipo_robust.policies import (
    CategoricalMLPPolicy,
    GaussianMLPPolicy,
    StateDependentStdGaussianPolicy,
    TabularCategoricalPolicy,
    make_policy,
    sample_action,
)
from ipo_robust.value_functions import QCritic, ValueCritic


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


# ---------------------------------------------------------------- state-dependent log-std (seed sec. 6)
def _reference_distribution(policy: StateDependentStdGaussianPolicy, obs: torch.Tensor) -> Independent:
    """Mean and std recomputed from the weights by hand (one hidden tanh layer), then torch's own Gaussian."""
    first, mean_head, std_head = policy.mean_net[0], policy.mean_net[2], policy.log_std_head
    h = torch.tanh(obs @ first.weight.T + first.bias)
    mean = h @ mean_head.weight.T + mean_head.bias
    u = h @ std_head.weight.T + std_head.bias
    low, high = policy.log_std_min, policy.log_std_max
    log_std = torch.empty_like(mean)
    log_std[..., list(policy.free_dims)] = policy.log_std
    log_std[..., list(policy.state_dependent_dims)] = low + (high - low) * (torch.tanh(u) + 1) / 2
    return Independent(Normal(mean, log_std.exp()), 1)


def _state_std_policy(**options) -> StateDependentStdGaussianPolicy:
    policy = StateDependentStdGaussianPolicy(3, 4, (3, 1), hidden=(8,), **options).double()
    with torch.no_grad():
        policy.log_std_head.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
        policy.log_std.copy_(torch.tensor([-0.3, 0.4]))
    return policy


def test_state_dependent_log_std_varies_with_the_observation_within_its_bounds():
    policy = _state_std_policy()
    assert policy.state_dependent_dims == (1, 3) and policy.free_dims == (0, 2)
    obs = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    log_std = policy.log_std_at(obs)
    assert log_std.shape == (200, 4)
    assert torch.equal(log_std[:, [0, 2]], policy.log_std.expand(200, 2))  # state-independent dims
    assert (log_std[:, [1, 3]].std(0) > 0.1).all()  # state-dependent dims
    assert ((log_std >= -5.0) & (log_std <= 2.0)).all()
    huge = policy.log_std_at(1e6 * obs)  # saturated head: still inside the bounds, never beyond
    assert ((huge[:, [1, 3]] >= -5.0) & (huge[:, [1, 3]] <= 2.0)).all() and torch.isfinite(huge).all()
    fresh = StateDependentStdGaussianPolicy(3, 4, (3, 1), hidden=(8,), log_std_init=-0.5)
    initial = fresh.log_std_at(obs.float())
    assert (initial[:, [1, 3]].std(0) > 0).all()  # the default init already depends on the observation
    torch.testing.assert_close(initial, torch.full_like(initial, -0.5), rtol=0, atol=0.1)
    torch.testing.assert_close(fresh.log_std.detach(), torch.full((2,), -0.5))


def test_state_dependent_log_probs_and_entropy_match_an_independent_gaussian():
    policy = _state_std_policy(log_std_min=-4.0, log_std_max=1.5)
    obs = torch.randn(5, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    dist = policy.distribution(obs)
    assert isinstance(dist, Independent) and dist.batch_shape == (5, 7) and dist.event_shape == (4,)
    actions = policy.act(obs, generator=torch.Generator().manual_seed(3))
    reference = _reference_distribution(policy, obs)
    torch.testing.assert_close(dist.log_prob(actions), reference.log_prob(actions))
    torch.testing.assert_close(dist.entropy(), reference.entropy())
    torch.testing.assert_close(dist.base_dist.scale, reference.base_dist.scale)
    # seeded samples are mean + std * eps with eps drawn from the generator, as for the plain Gaussian
    eps = torch.randn(5, 7, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(actions, reference.base_dist.loc + reference.base_dist.scale * eps)


def test_log_prob_gradients_reach_the_std_head_and_the_estimators_agree():
    from torch.nn.utils import parameters_to_vector

    from ipo_robust.optim.estimators import auto_method, make_scores

    policy = _state_std_policy()
    obs = torch.randn(6, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    actions = policy.act(obs, generator=torch.Generator().manual_seed(5))
    policy.distribution(obs).log_prob(actions).mean().backward()
    names = [name for name, _ in policy.named_parameters()]
    assert names == ["log_std", "mean_net.0.weight", "mean_net.0.bias", "mean_net.2.weight", "mean_net.2.bias",
                     "log_std_head.weight", "log_std_head.bias"]
    for name, p in policy.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 1e-6, name
    # Hessian-vector products go through distribution(obs): every exact score method gives the same numbers
    p = parameters_to_vector(policy.parameters()).numel()
    v = torch.randn(p, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    c = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    assert auto_method(policy) == "layer-factors"  # the log-std head is one more Linear layer (issue 15)
    reference = make_scores(policy, obs, actions, "forward-mode")
    for method in ("double-backward", "factors", "surrogate", "layer-factors"):
        scores = make_scores(policy, obs, actions, method)
        torch.testing.assert_close(scores.jvp(v), reference.jvp(v))
        torch.testing.assert_close(scores.vjp(c), reference.vjp(c))
    head = slice(p - policy.log_std_head.weight.numel() - policy.log_std_head.bias.numel(), p)
    assert reference.vjp(c)[head].abs().sum() > 1e-6


def test_state_dependent_std_rejects_bad_dimensions_and_bounds():
    with pytest.raises(ValueError, match=r"state_dependent_dims must be distinct action indices in \[0, 4\)"):
        StateDependentStdGaussianPolicy(3, 4, (4,))
    with pytest.raises(ValueError, match="state_dependent_dims"):
        StateDependentStdGaussianPolicy(3, 4, (1, 1))
    with pytest.raises(ValueError, match="state_dependent_dims"):
        StateDependentStdGaussianPolicy(3, 4, ())
    with pytest.raises(ValueError, match="log_std_init=3.0"):
        StateDependentStdGaussianPolicy(3, 4, (0,), log_std_init=3.0)
    with pytest.raises(ValueError, match="log_std_min"):
        StateDependentStdGaussianPolicy(3, 4, (0,), log_std_min=1.0, log_std_max=-1.0)
    with pytest.raises(ValueError, match="needs a flat Box action space"):
        make_policy(Box(-1.0, 1.0, shape=(3,)), Discrete(2), state_dependent_std_dims=(0,))


def test_all_dimensions_state_dependent_and_a_linear_policy():
    policy = StateDependentStdGaussianPolicy(2, 3, range(3), hidden=())
    assert policy.log_std.shape == (0,) and policy.log_std_head.in_features == 2
    obs = torch.randn(4, 2, generator=torch.Generator().manual_seed(8))
    dist = policy.distribution(obs)
    assert dist.base_dist.scale.shape == (4, 3) and policy.act(obs).shape == (4, 3)


def test_make_policy_without_state_dependent_dims_is_the_plain_gaussian_bit_for_bit():
    obs, act = Box(-1.0, 1.0, shape=(5,)), Box(-1.0, 1.0, shape=(4,))
    torch.manual_seed(11)
    plain = GaussianMLPPolicy(5, 4, (16, 16))  # what make_policy(seed=11) built before issue 13
    made = make_policy(obs, act, hidden=(16, 16), seed=11)
    assert type(made) is GaussianMLPPolicy
    assert [n for n, _ in made.named_parameters()] == [n for n, _ in plain.named_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(made.parameters(), plain.parameters(), strict=True))
    state = make_policy(obs, act, hidden=(16, 16), seed=11, state_dependent_std_dims=(2, 3))
    assert isinstance(state, StateDependentStdGaussianPolicy)
    for a, b in zip(state.mean_net.parameters(), plain.mean_net.parameters(), strict=True):
        assert torch.equal(a, b)  # the mean network comes from the same draws


# ------------------------------------------------------------------------------- the NumPy-backed tanh
def test_mlp_tanh_layers_are_numpy_backed_and_agree_with_torch_tanh():
    from ipo_robust.numpy_mlp import Tanh

    policy = GaussianMLPPolicy(5, 2, hidden=(16, 16))
    assert [type(m) for m in policy.mean_net if not isinstance(m, torch.nn.Linear)] == [Tanh, Tanh]
    for dtype, tol in ((torch.float32, 4e-7), (torch.float64, 1e-15)):
        x = torch.randn(2000, 40, dtype=dtype) * 3  # above NUMPY_TANH_MIN_ELEMENTS: the NumPy path
        assert (Tanh()(x) - torch.tanh(x)).abs().max() <= tol  # a few units in the last place
        assert Tanh()(x).dtype == dtype
    big = torch.randn(2000, 40, requires_grad=True)
    small = torch.randn(64, 64, requires_grad=True)  # below NUMPY_TANH_MIN_ELEMENTS: torch.tanh is faster
    assert type(Tanh()(big).grad_fn).__name__ == "_NumpyTanhBackward"
    assert type(Tanh()(small).grad_fn).__name__ == "TanhBackward0"
    half = torch.randn(8, dtype=torch.bfloat16)  # a dtype NumPy lacks: torch.tanh itself
    assert torch.equal(Tanh()(half), torch.tanh(half))


def test_numpy_tanh_gradients_against_finite_differences_and_autograd_modes():
    from torch.autograd import forward_ad, gradcheck, gradgradcheck

    from ipo_robust.numpy_mlp import NUMPY_TANH_MIN_ELEMENTS, Tanh, _NumpyTanh

    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    numpy_tanh = _NumpyTanh.apply  # the NumPy path itself (a tensor this small takes torch.tanh in Tanh)
    assert gradcheck(numpy_tanh, (x,)) and gradgradcheck(numpy_tanh, (x,))  # backward and double backward
    exact = 1 - torch.tanh(x.detach()) ** 2
    with forward_ad.dual_level():  # forward mode outside torch.func
        tangent = forward_ad.unpack_dual(numpy_tanh(forward_ad.make_dual(x.detach(), torch.ones_like(x)))).tangent
    torch.testing.assert_close(tangent, exact, rtol=1e-12, atol=0)

    # inside torch.func transforms the module falls back to torch.tanh, however large the tensor
    big = torch.randn(NUMPY_TANH_MIN_ELEMENTS // 64 + 1, 64, dtype=torch.float64)
    exact = 1 - torch.tanh(big) ** 2
    layer = Tanh()
    per_sample = torch.func.vmap(torch.func.grad(lambda v: layer(v).sum()))(big)
    torch.testing.assert_close(per_sample, exact, rtol=1e-12, atol=0)
    _, jvp = torch.func.jvp(layer, (big,), (torch.ones_like(big),))
    torch.testing.assert_close(jvp, exact, rtol=1e-12, atol=0)
    grad, = torch.autograd.grad(layer(big.requires_grad_()).sum(), big)  # the NumPy path, outside transforms
    torch.testing.assert_close(grad, exact, rtol=1e-12, atol=0)
