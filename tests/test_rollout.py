"""Rollouts into time-major batches: markers, determinism, episode-boundary sums."""

import numpy as np
import pytest
import torch

import ipo_robust
from ipo_robust.batch import segment_starts
from ipo_robust.envs.base import Box, TwoAgentEnv
from ipo_robust.envs.matrix import make_iterated_env, make_matrix_env
from ipo_robust.policies import GaussianMLPPolicy, TabularCategoricalPolicy, make_policy
from ipo_robust.rollout import Batch, collect, reverse_segment_cumsum, segment_cumsum


def iterated_agents(env, seed=0):
    return tuple(make_policy(env.observation_spaces[i], env.action_spaces[i], hidden=(8,), seed=seed + i)
                 for i in range(2))


def test_collect_shapes_markers_and_stored_log_probs():
    env = make_iterated_env("ipd", num_envs=6, seed=0, horizon=3)
    agents = iterated_agents(env)
    batch = collect(env, agents, steps=8, generator=torch.Generator().manual_seed(0))
    T, N = 8, 6
    assert batch.obs1.shape == (T, N, 5) and batch.act1.shape == (T, N) and batch.act1.dtype == torch.int64
    assert batch.logp1.shape == batch.rew2.shape == batch.t.shape == (T, N)
    assert batch.t[:, 0].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert batch.first[:, 0].tolist() == [True, False, False] * 2 + [True, False]
    assert batch.done[:, 0].tolist() == [False, False, True] * 2 + [False, False]
    assert batch.truncated.equal(batch.done) and not batch.terminated.any()
    assert batch.complete[:, 0].tolist() == [True] * 6 + [False] * 2  # the last episode is partial
    assert batch.num_episodes == 2 * N
    with torch.no_grad():
        for i, policy in enumerate(agents):
            obs, act, logp = (getattr(batch, f"{k}{i + 1}") for k in ("obs", "act", "logp"))
            assert torch.allclose(policy.distribution(obs).log_prob(act), logp)
    # next_obs is the one-hot of the joint action just played (final_obs at episode ends)
    expected = torch.eye(5)[1 + 2 * batch.act1 + batch.act2]
    assert torch.equal(batch.next_obs1, expected) and torch.equal(batch.next_obs2, expected)
    assert torch.equal(batch.obs1[1:][~batch.first[1:]], batch.next_obs1[:-1][~batch.done[:-1]])
    assert torch.equal(batch.rew1, torch.as_tensor(env.payoff1, dtype=torch.float32)[batch.act1, batch.act2])


def test_collect_is_seeded_deterministic():
    def run(env_seed, gen_seed):
        env = make_iterated_env("imp", num_envs=16, seed=env_seed, horizon=4)
        return collect(env, iterated_agents(env), steps=12, generator=torch.Generator().manual_seed(gen_seed))

    a, b, c = run(0, 1), run(0, 1), run(0, 2)
    for name in ("act1", "act2", "logp1", "rew1", "rew2", "obs1", "done"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.act1, c.act1)


def test_segment_sums_restart_at_episode_boundaries():
    # one row, two episodes: steps 0-2 and 3-4 (the second ends at the batch end)
    x = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0]).unsqueeze(1)
    first = torch.tensor([True, False, False, True, False]).unsqueeze(1)
    done = torch.tensor([False, False, True, False, True]).unsqueeze(1)
    assert segment_cumsum(x, first)[:, 0].tolist() == [1.0, 3.0, 6.0, 10.0, 30.0]
    assert reverse_segment_cumsum(x, done)[:, 0].tolist() == [6.0, 5.0, 3.0, 30.0, 20.0]
    # the episode starts, computed once and passed in (as the mixed products do for every matvec)
    assert segment_starts(first)[:, 0].tolist() == [0, 0, 0, 3, 3]
    assert segment_cumsum(x, first, segment_starts(first))[:, 0].tolist() == [1.0, 3.0, 6.0, 10.0, 30.0]
    backward = segment_starts(done.flip(0))
    assert reverse_segment_cumsum(x, done, backward)[:, 0].tolist() == [6.0, 5.0, 3.0, 30.0, 20.0]


def hand_built_batch():
    """Two rows of 5 steps. Row 0: episodes of length 2 and 3 (both complete). Row 1: one episode of
    length 4 and a partial one of length 1."""
    first = torch.tensor([[1, 1], [0, 0], [1, 0], [0, 0], [0, 1]], dtype=torch.bool)
    done = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 1], [1, 0]], dtype=torch.bool)
    t = torch.tensor([[0, 0], [1, 1], [0, 2], [1, 3], [2, 0]])
    rew = torch.arange(1.0, 11.0).reshape(5, 2)
    obs = torch.zeros(5, 2, 1)
    act = torch.zeros(5, 2, dtype=torch.int64)
    return Batch(obs1=obs, obs2=obs, act1=act, act2=act, logp1=torch.zeros(5, 2), logp2=torch.zeros(5, 2),
                 rew1=rew, rew2=-rew, done=done, first=first, t=t, next_obs1=obs, next_obs2=obs)


def test_hand_built_batch_gives_exactly_the_per_episode_sums():
    batch = hand_built_batch()
    assert batch.complete.tolist() == [[True, True], [True, True], [True, True], [True, True], [True, False]]
    assert batch.num_episodes == 3
    g = 0.5
    returns1, returns2 = batch.discounted_returns(g)
    # ordered by (start step, row): row 0 ep 1 (start 0), row 1 ep 1 (start 0), row 0 ep 2 (start 2)
    expected = [1 + g * 3, 2 + g * 4 + g**2 * 6 + g**3 * 8, 5 + g * 7 + g**2 * 9]
    assert torch.allclose(returns1, torch.tensor(expected, dtype=torch.float64))
    assert torch.allclose(returns2, -returns1)


def test_batch_validation_and_select():
    batch = hand_built_batch()
    sub = batch.select(envs=slice(0, 1))
    assert sub.num_envs == 1 and sub.num_episodes == 2
    cut = batch.select(steps=slice(0, 3))
    assert cut.complete[:, 0].tolist() == [True, True, False] and cut.num_episodes == 1
    with pytest.raises(ValueError, match="every field must start with"):
        Batch(**{**_fields(batch), "rew1": torch.zeros(4, 2)})
    with pytest.raises(ValueError, match="episode markers disagree"):
        Batch(**{**_fields(batch), "first": torch.ones(5, 2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="bool"):
        Batch(**{**_fields(batch), "done": batch.done.long()})


def _fields(batch):
    return {k: getattr(batch, k) for k in ("obs1", "obs2", "act1", "act2", "logp1", "logp2", "rew1", "rew2",
                                           "done", "first", "t", "next_obs1", "next_obs2")}


class PushEnv(TwoAgentEnv):
    """Continuous actions in [-1, 1]^2; rewards = the actions the env received (to see the clipping)."""

    def __init__(self, num_envs, seed=None):
        obs = Box(-np.inf, np.inf, shape=(3,))
        act = Box(-1.0, 1.0, shape=(2,))
        super().__init__(num_envs, (obs, obs), (act, act), seed, max_episode_steps=4)

    def _reset_envs(self, mask):
        x = self.rng.standard_normal((int(mask.sum()), 3))
        return x, x.copy()

    def _step_envs(self, action1, action2):
        x = self.rng.standard_normal((self.num_envs, 3))
        return (x, x.copy()), (action1.sum(1), action2.sum(1)), np.zeros(self.num_envs, dtype=bool), {}


def test_gaussian_policies_are_clipped_for_the_env_and_keep_raw_actions():
    env = PushEnv(8, seed=0)
    agents = (GaussianMLPPolicy(3, 2, hidden=(8,), log_std_init=1.0), GaussianMLPPolicy(3, 2, hidden=()))
    batch = collect(env, agents, steps=6, generator=torch.Generator().manual_seed(0))
    assert batch.act1.shape == (6, 8, 2) and (batch.act1.abs() > 1).any()  # raw samples kept
    assert torch.allclose(batch.rew1, batch.act1.clamp(-1, 1).sum(-1))  # the env saw them clipped


def test_collect_rejects_bad_arguments():
    env = make_matrix_env(name="matching-pennies", num_envs=2)
    agents = (TabularCategoricalPolicy(2), TabularCategoricalPolicy(2))
    with pytest.raises(ValueError, match="steps must be a positive int"):
        collect(env, agents, steps=0)
    with pytest.raises(ValueError, match="two agents"):
        collect(env, agents[:1], steps=1)


# ------------------------------------------------------------------------------------ fast rollouts (issue 15)
def _eps_stream(generator_seed: int, shape, dtype) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(generator_seed), dtype=dtype)


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("kind", ["gaussian", "state-dependent"])
def test_the_rollout_sampler_draws_from_the_policys_own_distribution(kind, dtype, rtol):
    """The NumPy sampler is the policy's distribution: the action is mean + std * eps with eps the generator's
    next randn draw (as sample_action draws it), and its log-density is Normal's (to float rounding)."""
    from ipo_robust.policies import StateDependentStdGaussianPolicy

    torch.manual_seed(0)
    policy = (GaussianMLPPolicy(5, 3, hidden=(16, 8), log_std_init=-0.3) if kind == "gaussian"
              else StateDependentStdGaussianPolicy(5, 3, state_dependent_dims=(0, 2), hidden=(16, 8))).to(dtype)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))  # away from the initial values (the heads' tiny weights)
    obs = torch.randn(40, 5, dtype=dtype)
    action, log_prob = policy.sampler()(obs, torch.Generator().manual_seed(7))
    dist = policy.distribution(obs)
    eps = _eps_stream(7, (40, 3), dtype)
    expected = dist.base_dist.loc + dist.base_dist.scale * eps
    assert action.dtype == dtype and log_prob.dtype == dtype and log_prob.shape == (40,)
    torch.testing.assert_close(action, expected.detach(), rtol=rtol, atol=rtol)
    torch.testing.assert_close(log_prob, dist.log_prob(action).detach(), rtol=rtol, atol=rtol)
    # without a generator: torch's own sampling path, unchanged
    torch.manual_seed(3)
    a_default, _ = policy.sampler()(obs, None)
    torch.manual_seed(3)
    torch.testing.assert_close(a_default, dist.sample())


def test_collect_takes_any_module_with_a_distribution():
    """A third-party policy with only ``distribution(obs)`` (no ``sampler``) is collected through it, and gives
    the batch a project policy with the same distribution gives."""
    env = ipo_robust.make_env("matching-pennies", num_envs=6, seed=0)
    torch.manual_seed(0)
    policies = (make_policy(env.observation_spaces[0], env.action_spaces[0]),
                make_policy(env.observation_spaces[1], env.action_spaces[1]))

    class Plain(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def distribution(self, obs):
            return self.inner.distribution(obs)

    runs = []
    for agents in (policies, tuple(Plain(p) for p in policies)):
        env.reset(seed=1)
        runs.append(collect(env, agents, 12, generator=torch.Generator().manual_seed(2)))
    for name in ("obs1", "act1", "act2", "logp1", "logp2", "rew1", "done", "t"):
        assert torch.equal(getattr(runs[0], name), getattr(runs[1], name)), name




@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_both_players_sampled_in_one_pass_give_the_two_samplers_bits(monkeypatch, dtype):
    """Two Gaussian MLPs of one layout are sampled with stacked weights, one pass per step (issue 15, item 1):
    the same actions, log-densities and noise stream, bit for bit, as each player's own sampler in turn."""
    from ipo_robust import rollout
    from ipo_robust.policies import StateDependentStdGaussianPolicy, joint_sampler

    torch.manual_seed(0)
    agents = tuple(GaussianMLPPolicy(3, 2, hidden=(16, 8), log_std_init=s).to(dtype) for s in (-0.5, 0.4))
    with torch.no_grad():
        for p in agents[1].parameters():
            p.add_(0.3 * torch.randn_like(p))  # the players differ
    joint = joint_sampler(*agents)
    assert joint is not None
    obs = [np.random.default_rng(k).standard_normal((9, 3)).astype(np.dtype(str(dtype)[6:])) for k in (1, 2)]
    (a1, a2), (lp1, lp2) = joint(obs[0], obs[1], torch.Generator().manual_seed(4))
    generator = torch.Generator().manual_seed(4)
    for got, want in zip((a1, lp1, a2, lp2), (*agents[0].sampler()(torch.from_numpy(obs[0]), generator),
                                              *agents[1].sampler()(torch.from_numpy(obs[1]), generator)), strict=True):
        assert got.dtype == want.numpy().dtype and np.array_equal(got, want.numpy())

    runs = []
    for sampler in (joint_sampler, lambda *players: None):  # one pass, then each player's own sampler
        monkeypatch.setattr(rollout, "joint_sampler", sampler)
        env = PushEnv(9, seed=3)
        runs.append(_fields(collect(env, agents, 7, generator=torch.Generator().manual_seed(5))))
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name

    # other layouts sample player by player
    assert joint_sampler(agents[0], GaussianMLPPolicy(3, 2, hidden=(16, 16)).to(dtype)) is None
    assert joint_sampler(agents[0], GaussianMLPPolicy(4, 2, hidden=(16, 8)).to(dtype)) is None
    assert joint_sampler(agents[0], GaussianMLPPolicy(3, 3, hidden=(16, 8)).to(dtype)) is None
    other = torch.float64 if dtype == torch.float32 else torch.float32
    assert joint_sampler(agents[0], GaussianMLPPolicy(3, 2, hidden=(16, 8)).to(other)) is None
    assert joint_sampler(agents[0], StateDependentStdGaussianPolicy(3, 2, state_dependent_dims=(0,),
                                                                    hidden=(16, 8)).to(dtype)) is None


@pytest.mark.parametrize("env_name, options", [
    ("sumo-pushers", {"perturbation": "learned-location", "holder": 0}),
    ("sumo-ants", {}),
])
def test_batches_are_bit_identical_whatever_the_number_of_env_workers(env_name, options):
    """The copies are stepped on worker threads in chunks; every count gives the same bits (issue 15)."""
    batches = []
    for workers in (1, 2, 3):
        env = ipo_robust.make_env(env_name, num_envs=7, seed=4, workers=workers, **options)
        assert env.workers == workers
        if options:
            env.set_superpower(0, 0.8)
        agents = ipo_robust.make_agents(env, seed=0, state_dependent_std=bool(options))
        batches.append(collect(env, agents, 30, generator=torch.Generator().manual_seed(5)))
        env.close()
    assert int(batches[0].done.sum()) > 0  # episodes ended (resets happened inside the batch)
    for name in ("obs1", "obs2", "act1", "act2", "logp1", "logp2", "rew1", "rew2", "next_obs1", "next_obs2",
                 "done", "terminated", "truncated", "first", "t"):
        for other in batches[1:]:
            assert torch.equal(getattr(batches[0], name), getattr(other, name)), name


def test_env_workers_default_and_bad_values(monkeypatch):
    from ipo_robust.envs.mujoco.base import default_workers
    from ipo_robust.threads import WORKERS_VARIABLE

    monkeypatch.setenv(WORKERS_VARIABLE, "1")
    assert default_workers() == 1
    assert ipo_robust.make_env("sumo-pushers", num_envs=64, seed=0).workers == 1
    monkeypatch.setenv(WORKERS_VARIABLE, "3")
    assert ipo_robust.make_env("sumo-pushers", num_envs=64, seed=0).workers == 3
    assert ipo_robust.make_env("sumo-pushers", num_envs=16, seed=0).workers == 2  # at most one per 8 copies
    assert ipo_robust.make_env("sumo-pushers", num_envs=4, seed=0).workers == 1
    monkeypatch.setenv(WORKERS_VARIABLE, "zero")
    with pytest.raises(ValueError, match=WORKERS_VARIABLE):
        default_workers()
    monkeypatch.delenv(WORKERS_VARIABLE)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive int"):
            ipo_robust.make_env("sumo-pushers", num_envs=4, seed=0, workers=bad)
