"""Policies and centralised critics.

A policy is a ``torch.nn.Module`` with ``distribution(obs) -> torch.distributions.Distribution`` whose
``log_prob(action)`` has the batch shape of ``obs`` without its last dimension: obs (*B, obs_dim) gives
log-probabilities (*B,). Flat parameter vectors follow ``parameters_to_vector(policy.parameters())``.

- :class:`CategoricalMLPPolicy`: logits = MLP(obs), ``Categorical``; actions (*B,) int64.
- :class:`GaussianMLPPolicy`: mean = MLP(obs), a state-independent log-std parameter (act_dim,);
  ``Independent(Normal(mean, exp(log_std)), 1)`` so log_prob sums over the action dimensions;
  actions (*B, act_dim). Unsquashed: the rollout clips actions to a bounded Box before the env sees
  them; log-probabilities refer to the unclipped sample.
- :class:`StateDependentStdGaussianPolicy`: the same diagonal Gaussian, but the log-std of chosen action
  dimensions is a function of the observation, a head on the mean MLP's last hidden layer squashed into
  ``[log_std_min, log_std_max]``; the other dimensions keep a state-independent log-std parameter. The
  superpower holder of a ``learned-location`` env gets it for its perturbation entries (seed sec. 6: the
  agent outputs the mean vector *and* the diagonal covariance of the perturbation distribution).
- :class:`TabularCategoricalPolicy`: logits are the parameters themselves, (n_states, n_actions). With
  ``n_states=1`` it ignores the observation (one-step matrix games: theta_i are exactly the logits);
  otherwise the observation must be a one-hot of the state (logits = obs @ table), e.g. the memory-one
  policies of the iterated games.

``hidden=()`` makes the MLP policies linear in the observation (logits = W obs + b). Every
``act(obs, generator)`` draws from the given ``torch.Generator`` (global RNG when ``None``).

Deterministic policies (the deterministic policy gradient, seed sec. 4.3: ``ipo-dpg``, ``maddpg``) act by
``mu(obs)`` (*B, act_dim); their ``distribution(obs)`` is the Gaussian *exploration* policy around mu, which
``ipo_robust.collect`` rolls out. :class:`DeterministicPolicy`: mu = MLP(obs), unsquashed;
:class:`ConstantPolicy`: mu = theta, whatever the state (the one-step continuous games);
:func:`make_deterministic_agents` sizes a pair from an env.

The centralised critics that train beside these policies are in :mod:`ipo_robust.value_functions`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from ipo_robust import numpy_mlp

Space = object  # an environment space; duck-typed (see _is_discrete / _is_flat_box)


def _is_discrete(space) -> bool:
    """A Discrete(n) space: has an int ``n`` (ipo_robust.envs.base.Discrete, gymnasium.spaces.Discrete)."""
    return isinstance(getattr(space, "n", None), numbers.Integral) and not hasattr(space, "low")


def _is_flat_box(space) -> bool:
    """A Box of shape (d,): has ``low``, ``high`` and a 1-d ``shape``."""
    return hasattr(space, "low") and hasattr(space, "high") and len(getattr(space, "shape", ())) == 1


def _mlp(in_dim: int, out_dim: int, hidden: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    hidden = tuple(hidden)
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden must be a sequence of positive ints, got {hidden!r}")
    layers: list[nn.Module] = []
    sizes = (in_dim, *hidden)
    activation = numpy_mlp.Tanh if activation is nn.Tanh else activation  # np.tanh's value on the CPU
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(sizes[-1], out_dim))
    return nn.Sequential(*layers)


def _positive(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _dimension_set(dims, act_dim: int) -> tuple[int, ...]:
    """``dims`` as a sorted tuple of distinct action indices in [0, act_dim), at least one."""
    dims = tuple(dims)
    if (not dims or any(isinstance(j, bool) or not isinstance(j, numbers.Integral) or not 0 <= j < act_dim
                        for j in dims) or len(set(dims)) != len(dims)):
        raise ValueError(f"state_dependent_dims must be distinct action indices in [0, {act_dim}), at least "
                         f"one, got {dims!r}")
    return tuple(sorted(int(j) for j in dims))


def _parameter_dtype(module: nn.Module) -> torch.dtype:
    return placement(module)[0]


def placement(module: nn.Module) -> tuple[torch.dtype, torch.device]:
    """(dtype, device) of the module's first floating parameter (the default dtype on the CPU without one)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


def sample_action(dist: Distribution, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one action per batch element of ``dist`` from ``generator`` (no gradient).

    Supports ``Categorical``, ``Normal`` and ``Independent`` wrappers of them; with ``generator=None``
    it falls back to ``dist.sample()`` (the global torch RNG) for any distribution. The draws come from
    ``generator`` on its own device (a CPU generator for a CUDA distribution draws on the CPU, and the
    draw is moved), so a run on another device samples the same stream.
    """
    with torch.no_grad():
        if generator is None:
            return dist.sample()
        base = dist.base_dist if isinstance(dist, Independent) else dist
        if isinstance(base, Categorical):
            probs = base.probs.reshape(-1, base.probs.shape[-1])
            draws = torch.multinomial(probs.to(generator.device), 1, generator=generator).squeeze(-1)
            return draws.reshape(base.batch_shape).to(probs.device)
        if isinstance(base, Normal):
            eps = torch.randn(base.loc.shape, generator=generator, dtype=base.loc.dtype, device=generator.device)
            return base.loc + base.scale * eps.to(base.loc.device)
    raise TypeError(f"sample_action cannot draw from {type(dist).__name__} with an explicit generator; "
                    "use Categorical, Normal or Independent(Normal), or pass generator=None")


class Policy(nn.Module):
    """Base of the policies: subclasses implement :meth:`distribution`."""

    def distribution(self, obs: torch.Tensor) -> Distribution:
        raise NotImplementedError

    def act(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample actions for observations (*B, obs_dim) without recording gradients."""
        with torch.no_grad():
            return sample_action(self.distribution(self._as_obs(obs)), generator)

    def sampler(self) -> Callable[[torch.Tensor, torch.Generator | None], tuple[torch.Tensor, torch.Tensor]]:
        """A function ``(obs, generator) -> (action, log_prob)`` for rollouts, valid while the parameters
        stay as they are (no gradients). The default goes through :meth:`distribution` and
        :func:`sample_action`; subclasses may return a faster function with the same draws and results."""

        def sample(obs: torch.Tensor, generator: torch.Generator | None):
            dist = self.distribution(obs)
            action = sample_action(dist, generator)
            return action, dist.log_prob(action)

        return sample

    def _as_obs(self, obs) -> torch.Tensor:
        """Observations as the parameters hold numbers: their dtype, on their device."""
        dtype, device = placement(self)
        return torch.as_tensor(obs).to(device=device, dtype=dtype)


class CategoricalMLPPolicy(Policy):
    """Categorical policy with logits = MLP(obs); obs (*B, obs_dim) -> Categorical with batch shape (*B,)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (64, 64),
                 activation: type[nn.Module] = nn.Tanh):
        super().__init__()
        self.obs_dim, self.n_actions = _positive(obs_dim, "obs_dim"), _positive(n_actions, "n_actions")
        self.logits_net = _mlp(obs_dim, n_actions, hidden, activation)

    def distribution(self, obs: torch.Tensor) -> Categorical:
        return Categorical(logits=self.logits_net(self._as_obs(obs)))


class GaussianMLPPolicy(Policy):
    """Diagonal Gaussian policy: mean = MLP(obs), std = exp(log_std) with log_std a parameter (act_dim,).

    ``distribution(obs)`` for obs (*B, obs_dim) is ``Independent(Normal(mean, std), 1)``: batch shape
    (*B,), event shape (act_dim,), log_prob summed over the action dimensions.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (64, 64),
                 activation: type[nn.Module] = nn.Tanh, log_std_init: float = 0.0):
        super().__init__()
        self.obs_dim, self.act_dim = _positive(obs_dim, "obs_dim"), _positive(act_dim, "act_dim")
        self.mean_net = _mlp(obs_dim, act_dim, hidden, activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def distribution(self, obs: torch.Tensor) -> Independent:
        mean = self.mean_net(self._as_obs(obs))
        return Independent(Normal(mean, self.log_std.exp().expand_as(mean)), 1)

    def sampler(self):
        """The rollout sampler (:meth:`Policy.sampler`). For CPU observations and a CPU generator, with
        float32/64 parameters on any device, the forward pass runs in NumPy on CPU copies of the weights (no
        module dispatch, no distribution objects, no device round trip per step; NumPy's elementwise kernels
        are several times faster than torch's at rollout sizes); eps is drawn from the generator exactly as
        :func:`sample_action` draws it, so actions and log-densities agree with :meth:`distribution` to
        float rounding. Otherwise, and without a generator, the default path."""
        fallback = super().sampler()
        layers = numpy_mlp.numpy_layers(self.mean_net) if numpy_mlp.numpy_sampling(self) else None
        if layers is None:
            return fallback
        log_std = self.log_std.detach().cpu().numpy().copy()
        scale, dtype = np.exp(log_std), self.log_std.dtype

        def sample(obs: torch.Tensor, generator: torch.Generator | None):
            if generator is None or obs.device.type != "cpu" or generator.device.type != "cpu":
                return fallback(obs, generator)
            return numpy_mlp.gaussian_draw(numpy_mlp.forward(layers, obs.to(dtype).numpy()), scale, log_std, generator)

        return sample


def joint_sampler(policy1: nn.Module, policy2: nn.Module) -> Callable | None:
    """Both players' rollout samplers in one NumPy pass (issue 15, item 1), where both are
    :class:`GaussianMLPPolicy` whose mean networks have the same layer shapes, activations and dtype: their
    weights stacked, one product per layer for both. Else None (each player samples on its own).

    ``sample(obs1, obs2, generator)`` takes NumPy rows of the players' dtype and a CPU ``torch.Generator``, and
    returns NumPy ((action1, action2), (log_prob1, log_prob2)): bit for bit what the two players' own
    :meth:`GaussianMLPPolicy.sampler` calls return in turn, their noise drawn from ``generator`` in the same order
    (tests/test_rollout.py). The weights are copied when it is made, as ``sampler()`` copies them."""
    if type(policy1) is not GaussianMLPPolicy or type(policy2) is not GaussianMLPPolicy \
            or not (numpy_mlp.numpy_sampling(policy1) and numpy_mlp.numpy_sampling(policy2)) \
            or policy1.log_std.shape != policy2.log_std.shape:
        return None
    # numpy_sampling: one dtype within each policy; stack_layers: the same dtype and shapes across the two
    layers = numpy_mlp.stack_layers(numpy_mlp.numpy_layers(policy1.mean_net), numpy_mlp.numpy_layers(policy2.mean_net))
    if layers is None:
        return None
    log_std = np.stack([p.log_std.detach().cpu().numpy() for p in (policy1, policy2)])[:, None, :]
    scale = np.exp(log_std)
    noise: list[np.ndarray] = []  # the eps buffer, (2, B, d), made on the first call

    def sample(obs1: np.ndarray, obs2: np.ndarray, generator: torch.Generator):
        rows = np.stack([obs1, obs2])
        if not noise or noise[0].shape[1] != rows.shape[1]:
            noise[:] = [np.empty((2, rows.shape[1], log_std.shape[-1]), dtype=log_std.dtype)]
        action, log_prob = numpy_mlp.stacked_gaussian_draw(numpy_mlp.forward(layers, rows), scale, log_std,
                                                           generator, noise[0])
        return (action[0], action[1]), (log_prob[0], log_prob[1])

    return sample


class StateDependentStdGaussianPolicy(Policy):
    """Diagonal Gaussian whose log-std of the dimensions ``state_dependent_dims`` is an output of the network.

    Seed sec. 6 ("each agent outputs mean vector and diagonal covariance of the perturbation distribution"):
    the mean MLP's last hidden layer h(obs) feeds two heads, ``mean_net[-1]`` (the mean, all ``act_dim``
    entries, exactly as in :class:`GaussianMLPPolicy`) and ``log_std_head`` (one raw output u per state-
    dependent dimension). Each raw output is tanh-squashed into the bounds (CleanRL's
    ``sac_continuous_action.py`` bounds its log-std head the same way)::

        log_std_j(obs) = log_std_min + (log_std_max - log_std_min) * (tanh(u_j(obs)) + 1) / 2

    Squashing rather than clamping keeps the log-density smooth in the parameters everywhere: a clamp would
    leave the head zero gradient (and zero Fisher rows) once it saturates. The default bounds keep the std
    in [exp(-5), exp(2)] = [0.0067, 7.4] (a location in m, a force in units of f_max): it can neither
    collapse (log-densities and their gradients blowing up as std -> 0) nor grow without limit. The
    remaining dimensions use the state-independent parameter ``log_std`` ((act_dim - k,), in increasing
    dimension order, unbounded as in :class:`GaussianMLPPolicy`). With ``hidden=()`` both heads read the
    observation directly.

    Parameters, in ``parameters()`` order (the flat-vector convention; a module's own parameters come
    before its submodules', as in :class:`GaussianMLPPolicy`): ``log_std``, ``mean_net`` (built first,
    from the same random draws a :class:`GaussianMLPPolicy` of the same sizes would use), then
    ``log_std_head``. The head's weights are ``nn.Linear``'s default draw times 0.01 and its bias is the
    inverse squash of ``log_std_init``: the initial std is close to ``exp(log_std_init)`` (the head's raw
    outputs vary by about 1/100 of a default layer's), yet already varies with the observation, and the
    head's gradient is nonzero from the start.

    ``distribution(obs)`` is ``Independent(Normal(mean, exp(log_std_at(obs))), 1)``: batch shape (*B,),
    event shape (act_dim,). Every operation is an ordinary differentiable torch op, so scores, Fisher and
    Hessian-vector products go through ``distribution(obs)`` like any policy's; the estimators' fastest
    exact path, ``layer-factors``, covers it too (the head is one more Linear layer run once per row).
    """

    def __init__(self, obs_dim: int, act_dim: int, state_dependent_dims: Sequence[int],
                 hidden: Sequence[int] = (64, 64), activation: type[nn.Module] = nn.Tanh,
                 log_std_init: float = 0.0, log_std_min: float = -5.0, log_std_max: float = 2.0):
        super().__init__()
        self.obs_dim, self.act_dim = _positive(obs_dim, "obs_dim"), _positive(act_dim, "act_dim")
        self.state_dependent_dims = _dimension_set(state_dependent_dims, act_dim)
        self.log_std_min, self.log_std_max = float(log_std_min), float(log_std_max)
        log_std_init = float(log_std_init)
        if not (math.isfinite(self.log_std_min) and math.isfinite(self.log_std_max)
                and self.log_std_min < log_std_init < self.log_std_max):
            raise ValueError(f"log_std_min < log_std_init < log_std_max must hold with finite bounds, got "
                             f"log_std_min={log_std_min!r}, log_std_init={log_std_init!r}, "
                             f"log_std_max={log_std_max!r}")
        self.free_dims = tuple(j for j in range(act_dim) if j not in self.state_dependent_dims)
        self.mean_net = _mlp(obs_dim, act_dim, hidden, activation)
        self.log_std = nn.Parameter(torch.full((len(self.free_dims),), log_std_init))
        self.log_std_head = nn.Linear(self.mean_net[-1].in_features, len(self.state_dependent_dims))
        # where each dimension sits in cat([free, state-dependent]): one gather puts them back in order
        self._order = [(self.free_dims + self.state_dependent_dims).index(j) for j in range(act_dim)]
        with torch.no_grad():
            self.log_std_head.weight.mul_(0.01)
            unit = 2.0 * (log_std_init - self.log_std_min) / (self.log_std_max - self.log_std_min) - 1.0
            self.log_std_head.bias.fill_(math.atanh(unit))

    def _heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean (*B, act_dim), log_std (*B, act_dim)) for obs (*B, obs_dim)."""
        h = self._as_obs(obs)
        for layer in list(self.mean_net)[:-1]:  # the shared trunk; each layer runs once
            h = layer(h)
        mean = self.mean_net[-1](h)
        u = self.log_std_head(h)
        state_log_std = self.log_std_min + (self.log_std_max - self.log_std_min) * (torch.tanh(u) + 1.0) / 2.0
        free_log_std = self.log_std.expand(*mean.shape[:-1], len(self.free_dims))
        return mean, torch.cat([free_log_std, state_log_std], dim=-1)[..., self._order]

    def log_std_at(self, obs: torch.Tensor) -> torch.Tensor:
        """The log-std of every action dimension at ``obs``: (*B, act_dim) (differentiable)."""
        return self._heads(obs)[1]

    def distribution(self, obs: torch.Tensor) -> Independent:
        mean, log_std = self._heads(obs)
        return Independent(Normal(mean, log_std.exp()), 1)

    def sampler(self):
        """The rollout sampler: as :meth:`GaussianMLPPolicy.sampler` (NumPy on the CPU), with both heads."""
        fallback = super().sampler()
        trunk = numpy_mlp.numpy_layers(list(self.mean_net)[:-1]) if numpy_mlp.numpy_sampling(self) else None
        heads = numpy_mlp.numpy_layers([self.mean_net[-1]]), numpy_mlp.numpy_layers([self.log_std_head])
        if trunk is None or None in heads:
            return fallback
        free, dtype = self.log_std.detach().cpu().numpy().copy(), self.log_std.dtype
        lo, width, order = self.log_std_min, self.log_std_max - self.log_std_min, self._order

        def sample(obs: torch.Tensor, generator: torch.Generator | None):
            if generator is None or obs.device.type != "cpu" or generator.device.type != "cpu":
                return fallback(obs, generator)
            h = numpy_mlp.forward(trunk, obs.to(dtype).numpy())
            mean, u = numpy_mlp.forward(heads[0], h), numpy_mlp.forward(heads[1], h)
            state = lo + width * (np.tanh(u) + 1.0) / 2.0
            log_std = np.concatenate([np.broadcast_to(free, (*mean.shape[:-1], free.size)), state], -1)[..., order]
            return numpy_mlp.gaussian_draw(mean, np.exp(log_std), log_std, generator)

        return sample


class TabularCategoricalPolicy(Policy):
    """Logits as parameters: a table (n_states, n_actions).

    ``n_states=1``: the observation is ignored except for its batch shape (obs (*B, d) -> batch (*B,));
    theta = the logits exactly. ``n_states>1``: obs (*B, n_states) must be one-hot and logits = obs @ table.
    ``logits`` sets the initial table (default zeros: uniform).
    """

    def __init__(self, n_actions: int, n_states: int = 1, logits=None):
        super().__init__()
        self.n_actions, self.n_states = _positive(n_actions, "n_actions"), _positive(n_states, "n_states")
        table = torch.zeros(n_states, n_actions) if logits is None else torch.as_tensor(logits).clone()
        if table.dim() == 1 and n_states == 1:
            table = table.unsqueeze(0)
        if tuple(table.shape) != (n_states, n_actions):
            raise ValueError(f"logits must have shape ({n_states}, {n_actions}), got {tuple(table.shape)}")
        self.logits = nn.Parameter(table.to(torch.get_default_dtype() if not table.is_floating_point()
                                            else table.dtype))

    def distribution(self, obs: torch.Tensor) -> Categorical:
        obs = self._as_obs(obs)
        if self.n_states == 1:
            logits = self.logits[0].expand(*obs.shape[:-1], self.n_actions)
        else:
            if obs.shape[-1] != self.n_states:
                raise ValueError(f"a tabular policy over {self.n_states} states needs one-hot observations "
                                 f"of size {self.n_states}, got shape {tuple(obs.shape)}")
            logits = obs @ self.logits
        return Categorical(logits=logits)

    def probs(self) -> torch.Tensor:
        """The action probabilities of every state, (n_states, n_actions) (differentiable)."""
        return torch.softmax(self.logits, dim=-1)


class DeterministicPolicy(nn.Module):
    """a = mu(obs; theta) = MLP(obs) (unsquashed; the rollout clips to the action Box).

    ``distribution(obs)`` is the *exploration* policy Independent(Normal(mu(obs), exploration_std), 1), so
    ``ipo_robust.collect`` rolls it out with Gaussian exploration noise; the optimizers differentiate
    ``mu``. ``exploration_std`` is a plain attribute, not a parameter (the optimizers set it to ``noise``).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (64, 64),
                 activation: type[nn.Module] = nn.Tanh, exploration_std: float = 0.1):
        super().__init__()
        self.obs_dim, self.act_dim, self.exploration_std = int(obs_dim), int(act_dim), float(exploration_std)
        self.mu_net = _mlp(self.obs_dim, self.act_dim, hidden, activation)

    def mu(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action (*B, act_dim) for observations (*B, obs_dim)."""
        weight = self.mu_net[0].weight
        return self.mu_net(torch.as_tensor(obs).to(device=weight.device, dtype=weight.dtype))

    def forward(self, obs):
        return self.mu(obs)

    def distribution(self, obs: torch.Tensor) -> Independent:
        mean = self.mu(obs)
        return Independent(Normal(mean, torch.full_like(mean, max(self.exploration_std, 1e-8))), 1)


class ConstantPolicy(DeterministicPolicy):
    """State-independent mu(s; theta) = theta (act_dim,): the policy of the one-step continuous games."""

    def __init__(self, act_dim: int = 1, init=None, exploration_std: float = 0.1):
        nn.Module.__init__(self)
        self.obs_dim, self.act_dim, self.exploration_std = None, int(act_dim), float(exploration_std)
        theta = torch.zeros(self.act_dim) if init is None else torch.as_tensor(init).reshape(-1).clone()
        if theta.shape != (self.act_dim,):
            raise ValueError(f"init must hold {self.act_dim} numbers, got shape {tuple(theta.shape)}")
        self.theta = nn.Parameter(theta.to(torch.get_default_dtype() if not theta.is_floating_point()
                                           else theta.dtype))

    def mu(self, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs)
        return self.theta.expand(*obs.shape[:-1], self.act_dim)


def _flat_dim(space: Space, name: str) -> int:
    if _is_flat_box(space):
        return int(space.shape[0])
    raise ValueError(f"{name} must be a flat Box observation space (d,), got {space!r}")


def make_policy(obs_space: Space, action_space: Space, hidden: Sequence[int] = (64, 64),
                seed: int | None = None, dtype: torch.dtype = torch.float32,
                state_dependent_std_dims: Sequence[int] = ()) -> Policy:
    """A policy sized from the spaces: Discrete actions -> :class:`CategoricalMLPPolicy`, Box (d,)
    actions -> :class:`GaussianMLPPolicy`, or :class:`StateDependentStdGaussianPolicy` when
    ``state_dependent_std_dims`` names action dimensions whose log-std is an output of the network (empty,
    the default: every log-std is a state-independent parameter). ``seed`` fixes the initial weights
    without touching the global torch RNG; ``dtype`` is the parameter dtype (float64 for exactness tests).
    """
    obs_dim = _flat_dim(obs_space, "obs_space")
    state_dependent_std_dims = tuple(state_dependent_std_dims)
    if state_dependent_std_dims and not _is_flat_box(action_space):
        raise ValueError(f"state_dependent_std_dims={state_dependent_std_dims!r} needs a flat Box action space "
                         f"(a Gaussian policy), got {action_space!r}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if _is_discrete(action_space):
            policy: Policy = CategoricalMLPPolicy(obs_dim, int(action_space.n), hidden)
        elif _is_flat_box(action_space) and state_dependent_std_dims:
            policy = StateDependentStdGaussianPolicy(obs_dim, int(action_space.shape[0]), state_dependent_std_dims,
                                                     hidden)
        elif _is_flat_box(action_space):
            policy = GaussianMLPPolicy(obs_dim, int(action_space.shape[0]), hidden)
        else:
            raise ValueError(f"make_policy supports Discrete and flat Box action spaces, got {action_space!r}")
    return policy.to(dtype)


def make_deterministic_agents(env, seed: int | None = None, hidden: Sequence[int] = (64, 64),
                              exploration_std: float = 0.1, dtype: torch.dtype = torch.float32):
    """Two DeterministicPolicy sized from the env's flat Box spaces; agent i seeded with seed + i."""
    agents = []
    for i in (0, 1):
        obs_space, act_space = env.observation_spaces[i], env.action_spaces[i]
        if not _is_flat_box(act_space):
            raise ValueError(f"deterministic policies need flat Box actions, got {act_space!r} for player {i + 1}")
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed + i)
            agents.append(DeterministicPolicy(obs_space.shape[0], act_space.shape[0], hidden,
                                              exploration_std=exploration_std).to(dtype))
    return tuple(agents)
