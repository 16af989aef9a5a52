"""PettingZoo and Gymnasium views of the two-agent envs (ipo_robust.envs.adapters).

Each view is checked with the library's own API checker, compared step by step with the native env
under the same seed, and fed bad input.
"""

import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("pettingzoo")
pytest.importorskip("pyspiel")

import torch  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402
from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

import ipo_robust  # noqa: E402
from ipo_robust import host  # noqa: E402
from ipo_robust.envs import to_gymnasium, to_pettingzoo  # noqa: E402
from ipo_robust.envs.base import Box, TwoAgentEnv  # noqa: E402
from ipo_robust.envs.games import MatrixGame  # noqa: E402
from ipo_robust.policies import TabularCategoricalPolicy, make_policy  # noqa: E402

ENVS = {  # name -> options; markov-soccer gets a short horizon to keep the tests fast
    "matching-pennies": {},
    "iterated-prisoners-dilemma": {},
    "markov-soccer": {"horizon": 30},
}
OPTIONS = {  # registered envs that need options to be made
    "matrix-game": {"payoff1": [[3.0, 0.0], [5.0, 1.0]], "payoff2": [[3.0, 5.0], [0.0, 1.0]]},
    "markov-soccer": {"horizon": 30},
    "openspiel": {"horizon": 30},
}
# What check_env may say about a correct env: unbounded or degenerate Box bounds of the native spaces,
# and that it cannot re-make the env for other render modes without a gymnasium registry spec.
EXPECTED_WARNINGS = ("infinity", "maximum and minimum values are equal", "not having a spec",
                     "symmetric and normalized space")


def checked(env) -> None:
    """check_env, failing on any warning other than EXPECTED_WARNINGS (obs outside the space, dtype
    mismatches and the like only warn inside gymnasium's passive checker)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught if not any(e in str(w.message) for e in EXPECTED_WARNINGS)]
    assert not unexpected, unexpected


def first_action(obs):
    return 0


def fixed_action_for(space):
    """A constant opponent valid for any space: action 0, or the middle of a Box."""
    if hasattr(space, "n"):
        return first_action
    middle = np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)
    return lambda obs: middle


class Pushers(TwoAgentEnv):
    """A toy continuous env (not registered): two points on a line push a puck; Box actions and a random
    start, to check the adapters on the kind of spaces the MuJoCo envs have."""

    def __init__(self, num_envs=1, seed=None):
        obs_space, act_space = Box(-10.0, 10.0, shape=(2,)), Box(-1.0, 1.0, shape=(1,))
        super().__init__(num_envs, (obs_space, obs_space), (act_space, act_space), seed, max_episode_steps=20)
        self.x = np.zeros(num_envs)

    def _obs(self, x):
        return np.stack([x, -x], axis=1), np.stack([-x, x], axis=1)

    def _reset_envs(self, mask):
        self.x[mask] = self.rng.uniform(-1.0, 1.0, size=int(mask.sum()))
        return self._obs(self.x[mask])

    def _step_envs(self, action1, action2):
        self.x = self.x + action1[:, 0] - action2[:, 0]
        return self._obs(self.x), (self.x.copy(), -self.x), np.abs(self.x) >= 5.0, {"puck": self.x.copy()}


# -- the libraries' own checkers -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ENVS))
def test_pettingzoo_view_passes_parallel_api_and_seed_tests(name):
    parallel_api_test(to_pettingzoo(name, **ENVS[name]), num_cycles=300)
    parallel_seed_test(lambda: to_pettingzoo(name, **ENVS[name]), num_cycles=100)


@pytest.mark.parametrize("player", [0, 1])
@pytest.mark.parametrize("name", sorted(ENVS))
def test_gymnasium_view_passes_check_env(name, player):
    checked(to_gymnasium(name, opponent=first_action, player=player, render_mode="ansi", **ENVS[name]))
    env = ipo_robust.make_env(name, **ENVS[name])
    policy = ipo_robust.make_agents(env, seed=0)[1 - player]  # a stochastic opponent, seeded at reset
    checked(to_gymnasium(name, opponent=policy, player=player, **ENVS[name]))


def test_every_registered_env_has_both_views():
    names = sorted(host.get_host().registered("env"))
    assert set(ENVS) <= set(names)
    for name in names:
        options = OPTIONS.get(name, {})
        parallel_api_test(to_pettingzoo(name, **options), num_cycles=200)
        opponent_space = ipo_robust.make_env(name, **options).action_spaces[1]
        checked(to_gymnasium(name, opponent=fixed_action_for(opponent_space), **options))


def test_views_of_an_unregistered_continuous_env():
    parallel_api_test(to_pettingzoo(Pushers(seed=0)), num_cycles=100)
    policy = make_policy(Pushers().observation_spaces[1], Pushers().action_spaces[1], seed=0)
    for player in (0, 1):
        env = to_gymnasium(Pushers(), opponent=policy, player=player)
        checked(env)
        obs, _ = env.reset(seed=3)
        assert obs.dtype == np.float64 and obs.shape == (2,)
        _, _, _, _, info = env.step(np.array([0.5]))
        assert "puck" in info and np.shape(info["puck"]) == ()  # env info, row 0
        assert np.shape(info["opponent_action"]) == (1,) and abs(info["opponent_action"][0]) <= 1.0


# -- same episodes as the native env ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ENVS))
def test_seeded_pettingzoo_episode_equals_native_episode(name):
    native = ipo_robust.make_env(name, **ENVS[name])
    view = to_pettingzoo(name, **ENVS[name])
    n1, n2 = native.action_spaces[0].n, native.action_spaces[1].n
    for seed in (5, 6):
        rng = np.random.default_rng(seed)
        native_obs = native.reset(seed=seed)
        obs, infos = view.reset(seed=seed)
        assert set(infos) == {"player_0", "player_1"}
        for _ in range(1000):
            for i, agent in enumerate(("player_0", "player_1")):
                assert np.array_equal(obs[agent], native_obs[i][0])
            a1, a2 = int(rng.integers(n1)), int(rng.integers(n2))
            result = native.step(np.array([a1]), np.array([a2]))
            obs, rewards, terminations, truncations, _ = view.step({"player_0": a1, "player_1": a2})
            native_obs = result.info["final_obs"]  # the true next observation, before the auto-reset
            for i, agent in enumerate(("player_0", "player_1")):
                assert rewards[agent] == result.rewards[i][0]
                assert terminations[agent] is bool(result.terminated[0])
                assert truncations[agent] is bool(result.truncated[0])
            if result.info["done_mask"][0]:
                assert view.agents == []
                for i, agent in enumerate(("player_0", "player_1")):
                    assert np.array_equal(obs[agent], native_obs[i][0])
                break
            assert view.agents == ["player_0", "player_1"]
        else:
            pytest.fail(f"{name}: no episode end in 1000 steps")


@pytest.mark.parametrize("player", [0, 1])
def test_seeded_gymnasium_episode_equals_native_episode(player):
    native = ipo_robust.make_env("markov-soccer", horizon=30)
    script = np.random.default_rng(0).integers(5, size=(2, 40))
    moves = iter(script[1 - player])
    view = to_gymnasium("markov-soccer", opponent=lambda obs: int(next(moves)), player=player, horizon=30)
    native_obs = native.reset(seed=9)
    obs, _ = view.reset(seed=9)
    for t in range(40):
        assert np.array_equal(obs, native_obs[player][0])
        result = native.step(script[0, t:t + 1], script[1, t:t + 1])
        obs, reward, terminated, truncated, info = view.step(int(script[player, t]))
        native_obs = result.info["final_obs"]
        assert reward == result.rewards[player][0] and info["opponent_reward"] == result.rewards[1 - player][0]
        assert info["opponent_action"] == script[1 - player, t]
        if terminated or truncated:
            assert np.array_equal(obs, native_obs[player][0])
            break
    assert terminated and not truncated  # markov_soccer ends itself, at its horizon at the latest


def test_stochastic_opponent_is_reproducible_from_the_reset_seed():
    env = ipo_robust.make_env("markov-soccer", horizon=30)
    policy = ipo_robust.make_agents(env, seed=1)[1]
    view = to_gymnasium("markov-soccer", opponent=policy, horizon=30)

    def episode(seed):
        view.reset(seed=seed)
        return [view.step(t % 5)[4]["opponent_action"] for t in range(25)]

    first = episode(3)
    assert episode(3) == first
    assert episode(4) != first


# -- frozen deterministic opponents reproduce the payoffs ---------------------------------------------
@pytest.mark.parametrize("game", ["matching-pennies", "rock-paper-scissors", "prisoners-dilemma"])
def test_frozen_opponent_reproduces_the_payoff(game):
    payoffs = (MatrixGame.named(game).payoff1.numpy(), MatrixGame.named(game).payoff2.numpy())
    n = payoffs[0].shape[0]
    for player in (0, 1):
        for theirs in range(n):
            logits = torch.full((1, n), -1e9, dtype=torch.float64)
            logits[0, theirs] = 0.0
            opponents = (lambda obs, a=theirs: a, TabularCategoricalPolicy(n, logits=logits))
            for opponent in opponents:
                view = to_gymnasium(game, opponent=opponent, player=player)
                for mine in range(n):
                    view.reset(seed=mine)
                    _, reward, terminated, truncated, info = view.step(mine)
                    joint = (mine, theirs) if player == 0 else (theirs, mine)
                    assert reward == pytest.approx(payoffs[player][joint])
                    assert info["opponent_reward"] == pytest.approx(payoffs[1 - player][joint])
                    assert terminated and not truncated


def test_iterated_prisoners_dilemma_return_against_always_cooperate():
    view = to_gymnasium("iterated-prisoners-dilemma", opponent=lambda obs: 0, player=1, horizon=10)
    view.reset(seed=0)
    total, steps, done = 0.0, 0, False
    while not done:
        _, reward, terminated, truncated, _ = view.step(1)  # always defect against always cooperate
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert (steps, total, truncated) == (10, 0.0, True)  # LOLA's DC payoff for the defector is 0


# -- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("player", [2, -1, True, "0", 0.0])
def test_bad_player_index_is_rejected(player):
    with pytest.raises(ValueError, match="player must be 0 or 1"):
        to_gymnasium("matching-pennies", opponent=first_action, player=player)


def test_bad_opponents_are_rejected():
    with pytest.raises(ValueError, match="needs opponent="):
        to_gymnasium("matching-pennies")
    with pytest.raises(TypeError, match="opponent must be a policy"):
        to_gymnasium("matching-pennies", opponent=42)
    view = to_gymnasium("matching-pennies", opponent=lambda obs: 7)
    view.reset(seed=0)
    with pytest.raises(ValueError, match=r"the opponent \(player_1\) returned 7.*0\.\.1"):
        view.step(0)
    view = to_gymnasium("matching-pennies", opponent=lambda obs: [0, 1])
    view.reset(seed=0)
    with pytest.raises(ValueError, match="one action for one observation"):
        view.step(0)


def test_bad_use_of_the_pettingzoo_view_is_rejected():
    view = to_pettingzoo("matching-pennies")
    with pytest.raises(RuntimeError, match="before reset"):
        view.step({"player_0": 0, "player_1": 0})
    view.reset(seed=0)
    with pytest.raises(ValueError, match=r"missing \['player_1'\]"):
        view.step({"player_0": 0})
    with pytest.raises(ValueError, match="not in its action space"):
        view.step({"player_0": 2, "player_1": 0})
    with pytest.raises(KeyError, match="unknown agent"):
        view.action_space("player_2")
    view.step({"player_0": 0, "player_1": 1})
    with pytest.raises(RuntimeError, match="call reset"):
        view.step({"player_0": 0, "player_1": 0})
    with pytest.raises(ValueError, match="render_mode"):
        to_pettingzoo("matching-pennies", render_mode="rgb_array")
    view.close()
    view.close()


def test_env_instances_and_options():
    env = ipo_robust.make_env("matching-pennies", seed=0)
    assert to_pettingzoo(env).reset(seed=0)[0]["player_0"].shape == (1,)
    with pytest.raises(ValueError, match="num_envs=1"):
        to_pettingzoo(ipo_robust.make_env("matching-pennies", num_envs=2))
    with pytest.raises(ValueError, match="only used when the env is made by name"):
        to_pettingzoo(env, horizon=3)
    with pytest.raises(ValueError, match="drop num_envs"):
        to_gymnasium("matching-pennies", opponent=first_action, num_envs=4)
    with pytest.raises(TypeError, match="lacks"):
        to_pettingzoo(object())


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipo_robust.envs.adapters", raising=False)
    monkeypatch.setitem(sys.modules, "pettingzoo", None)
    monkeypatch.setitem(sys.modules, "pettingzoo.utils.env", None)
    with pytest.raises(ImportError, match=r"ipo-robust\[adapters\]"):
        to_pettingzoo("matching-pennies")


def test_ansi_render_shows_the_last_step():
    view = to_pettingzoo("matching-pennies", render_mode="ansi")
    assert view.metadata["render_modes"] == ["ansi"]
    view.reset(seed=0)
    view.step({"player_0": 1, "player_1": 0})
    text = view.render()
    assert "step 1 (episode over)" in text and "player_0=1 player_1=0" in text and "rewards -1 / 1" in text
