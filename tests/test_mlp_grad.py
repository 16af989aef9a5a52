"""mlp_grad: hand-written MLP and diagonal-Gaussian gradients against autograd, and which networks qualify."""

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from ipo_robust import mlp_grad
from ipo_robust.numpy_mlp import NUMPY_TANH_MIN_ELEMENTS, Tanh


def _net(sizes, activation, bias=True):
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b, bias=bias), activation()]
    layers.append(nn.Linear(sizes[-2], sizes[-1], bias=bias))
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize(("sizes", "activation", "bias"), [
    ((5, 7, 6, 3), Tanh, True),        # the project's MLPs
    ((5, 7, 6, 3), nn.Tanh, True),
    ((5, 7, 6, 3), nn.ReLU, True),
    ((5, 4, 1), Tanh, False),
    ((5, 3), Tanh, True),              # hidden=(): linear
])
@pytest.mark.parametrize("rows", [9, NUMPY_TANH_MIN_ELEMENTS // 7 + 1])  # both sides of the NumPy-tanh threshold
def test_forward_and_backward_match_autograd(sizes, activation, bias, rows):
    torch.manual_seed(0)
    net = _net(sizes, activation, bias)
    x = torch.randn(rows, sizes[0], dtype=torch.float64)
    weights = torch.randn(rows, sizes[-1], dtype=torch.float64)
    layers = mlp_grad.linear_layers(net)
    assert layers is not None and mlp_grad.parameters(layers) == list(net.parameters())
    tape = mlp_grad.forward(layers, x)
    output = net(x)
    torch.testing.assert_close(tape.output, output.detach(), rtol=1e-12, atol=1e-12)
    expected = torch.autograd.grad((output * weights).sum(), list(net.parameters()))
    got = mlp_grad.backward(tape, weights)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)


def test_gaussian_log_prob_and_its_gradients_match_torch_distributions():
    torch.manual_seed(1)
    mean = torch.randn(11, 3, dtype=torch.float64, requires_grad=True)
    log_std = torch.randn(3, dtype=torch.float64, requires_grad=True)
    action = torch.randn(11, 3, dtype=torch.float64)
    weights = torch.randn(11, dtype=torch.float64)
    reference = Independent(Normal(mean, log_std.exp().expand_as(mean)), 1).log_prob(action)
    log_prob, z = mlp_grad.gaussian_log_prob(mean.detach(), log_std.detach(), action)
    torch.testing.assert_close(log_prob, reference.detach(), rtol=1e-12, atol=1e-12)
    expected = torch.autograd.grad((reference * weights).sum(), (mean, log_std))
    got = mlp_grad.gaussian_log_prob_backward(weights, z, log_std.detach())
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("net", [
    nn.Linear(3, 2),                                                    # not a Sequential
    nn.Sequential(nn.Linear(3, 2), nn.Sigmoid(), nn.Linear(2, 1)),       # another activation
    nn.Sequential(nn.Tanh(), nn.Linear(3, 2)),                           # an activation before any layer
    nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Tanh(), nn.Linear(2, 1)),
    nn.Sequential(),
    nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)).half(),   # not float32/64
    nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1).double()),  # mixed dtypes
])
def test_other_networks_are_left_to_autograd(net):
    assert mlp_grad.linear_layers(net) is None


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize(("kind", "hidden"), [("gaussian", (6, 5)), ("gaussian", ()), ("state-std", (6, 5)),
                                              ("state-std", ())])
def test_layer_factor_scores_by_hand_equal_the_autograd_factors(kind, hidden, frozen, monkeypatch):
    """LayerFactorScores builds the factors of the Gaussian MLP policies by hand; their products equal those of
    the factors taken from autograd's hooks (the path of every other policy). A frozen layer gets zero rows
    in both."""
    from ipo_robust.optim.jacobians import LayerFactorScores
    from ipo_robust.policies import GaussianMLPPolicy, StateDependentStdGaussianPolicy

    torch.manual_seed(2)
    if kind == "gaussian":
        policy = GaussianMLPPolicy(4, 3, hidden=hidden).double()
    else:
        policy = StateDependentStdGaussianPolicy(4, 3, (0, 2), hidden=hidden).double()
        with torch.no_grad():  # a head with weight, so its squash is away from the linear regime
            policy.log_std_head.weight.mul_(100.0)
    if frozen:
        policy.mean_net[0].weight.requires_grad_(False)
    obs = torch.randn(7, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        act = policy.distribution(obs).sample()
    p = sum(q.numel() for q in policy.parameters())
    v, c = torch.randn(p, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    by_hand = LayerFactorScores(policy, obs, act)
    assert by_hand.hand_written
    monkeypatch.setattr(mlp_grad, "linear_layers", lambda net: None)
    if not hidden:  # no trunk to refuse: refuse the policy class instead
        from ipo_robust.optim import jacobians
        monkeypatch.setattr(jacobians._GaussianFactors, "of", classmethod(lambda cls, policy: None))
    hooked = LayerFactorScores(policy, obs, act)
    assert not hooked.hand_written
    torch.testing.assert_close(by_hand.logp, hooked.logp, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(by_hand.jvp(v), hooked.jvp(v), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(by_hand.vjp(c), hooked.vjp(c), rtol=1e-10, atol=1e-12)
    assert not by_hand.logp.requires_grad
