"""Attacks on frozen victims: registration, the frozen victim, exact best responses against NashConv,
a PPO adversary against exploitable and unexploitable RPS victims, the controls and option checks."""

import itertools
import math

import numpy as np
import pytest
import torch

import ipo_robust
from ipo_robust import host
from ipo_robust.checkpoint import save_agents
from ipo_robust.envs.games import MatrixGame
from ipo_robust.envs.matrix import make_iterated_env
from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks import (
    ATTACKS,
    AttackResult,
    MaskedActor,
    Victim,
    ZeroActor,
    play_games,
)
from ipo_robust.evals.exploitability import nash_conv
from ipo_robust.policies import TabularCategoricalPolicy

NAMES = ["best-response", "masked-victim", "ppo-adversary", "random", "zero"]
ROW_KEYS = {"attack", "seat", "budget", "games", "wins", "ties", "losses", "win_rate", "win_low", "win_high",
            "tie_rate", "tie_low", "tie_high", "loss_rate", "loss_low", "loss_high", "attacker_return",
            "victim_return", "partner_return", "exploitability", "kind", "seconds"}


def rps_victim(logits, tmp_path=None) -> Victim:
    """A victim pair for rock-paper-scissors: agent 1 with the given logits, agent 2 uniform."""
    agents = (TabularCategoricalPolicy(3, logits=torch.tensor(logits)), TabularCategoricalPolicy(3))
    if tmp_path is None:
        return Victim(agents, "rock-paper-scissors", {})
    save_agents(tmp_path / "victim", agents, "rock-paper-scissors")
    return Victim.from_checkpoint(tmp_path / "victim")


def weights(module):
    return [p.detach().clone() for p in module.parameters()]


def test_the_builtin_plugin_registers_every_attack():
    from ipo_robust.plugins import attacks as plugin

    registered = {}
    plugin.register_attacks(lambda name, factory: registered.setdefault(name, factory))
    assert registered == ATTACKS and sorted(registered) == NAMES


def test_every_attack_resolves_through_the_host():
    if not host.registered("attack"):
        pytest.skip("the installed metadata predates the 'attacks' entry point: run pip install -e . again")
    for name in NAMES:
        assert host.resolve("attack", name) is ATTACKS[name]
        assert host.resolve("attack", name)().name == name


def test_victim_from_checkpoint_round_trip(tmp_path):
    victim = rps_victim([5.0, 0.0, 0.0], tmp_path)
    assert victim.env_name == "rock-paper-scissors" and victim.env_options == {}
    assert torch.equal(victim.agents[0].logits, torch.tensor([[5.0, 0.0, 0.0]]))
    env = victim.make_env(4, seed=0)
    assert env.num_envs == 4


def test_ppo_adversary_leaves_the_victim_bit_identical(tmp_path):
    victim = rps_victim([3.0, 1.0, 0.0], tmp_path)
    before = [weights(a) for a in victim.agents]
    result = ATTACKS["ppo-adversary"](lr=3e-3, num_envs=8, steps=16, hidden=(8,)).run(
        victim, seat=0, budget=512, games=32, seed=0)
    for agent, saved in zip(victim.agents, before, strict=True):
        for now, then in zip(agent.parameters(), saved, strict=True):
            assert torch.equal(now.detach(), then)
            assert now.grad is None
    assert result.kind == "lower-bound" and result.games == 32
    assert result.details["train"]["attack/train_steps"] >= 512


def test_ppo_adversary_keeps_a_mujoco_victim_frozen():
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0, perturbation="learned-location", holder=1)
    victim = Victim(ipo_robust.make_agents(env, seed=0, hidden=(8,)), "sumo-pushers",
                    {"perturbation": "learned-location", "holder": 1, "shaping": 0.1})
    before = [weights(a) for a in victim.agents]
    attack = ATTACKS["ppo-adversary"](num_envs=2, steps=16, hidden=(8,))
    for seat in (0, 1):
        result = attack.run(victim, seat=seat, budget=64, games=4, seed=1)
        assert result.games == 4 and result.wins + result.ties + result.losses == 4
        assert result.attacker_return == pytest.approx(-result.victim_return)  # sparse, zero-sum
    for agent, saved in zip(victim.agents, before, strict=True):
        assert all(torch.equal(p.detach(), q) for p, q in zip(agent.parameters(), saved, strict=True))


@pytest.mark.parametrize("game", ["matching-pennies", "rock-paper-scissors"])
def test_best_response_over_both_seats_is_half_the_nash_conv(game):
    payoffs = MatrixGame.named(game)
    n = payoffs.payoff1.shape[0]
    generator = torch.Generator().manual_seed(0)
    for trial in range(4):
        logits = [2 * torch.randn(n, generator=generator, dtype=torch.float64) for _ in range(2)]
        victim = Victim(tuple(TabularCategoricalPolicy(n, logits=lg) for lg in logits), game, {})
        results = [ATTACKS["best-response"](num_envs=4).run(victim, seat=s, budget=0, games=20, seed=trial)
                   for s in (0, 1)]
        assert all(r.kind == "exact" for r in results)
        mean = np.mean([r.exploitability for r in results])
        expected = nash_conv(payoffs, torch.softmax(logits[0], 0), torch.softmax(logits[1], 0)) / 2
        assert mean == pytest.approx(expected, abs=1e-9)


def test_best_response_beats_a_pure_rps_victim_every_game():
    result = ATTACKS["best-response"]().run(rps_victim([30.0, 0.0, 0.0]), seat=0, budget=0, games=50, seed=0)
    assert result.wins == 50 and result.exploitability == pytest.approx(1.0, abs=1e-9)
    assert result.details["best_response_value"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["iterated-matching-pennies", "iterated-prisoners-dilemma"])
def test_iterated_best_response_matches_brute_force_over_memory_one_policies(name):
    generator = torch.Generator().manual_seed(1)
    logits = [torch.randn(5, 2, generator=generator, dtype=torch.float64) for _ in range(2)]
    victim = Victim(tuple(TabularCategoricalPolicy(2, 5, logits=lg) for lg in logits), name, {"horizon": 20})
    env = make_iterated_env(name, horizon=20)
    probs = [torch.softmax(lg, -1) for lg in logits]
    pure = [torch.eye(2, dtype=torch.float64)[list(c)] for c in itertools.product([0, 1], repeat=5)]
    for seat in (0, 1):
        result = ATTACKS["best-response"](num_envs=4).run(victim, seat=seat, budget=0, games=8, seed=0)
        attacker = 1 - seat
        values = [float(env.exact_values(*((probs[0], p) if seat == 0 else (p, probs[1])))[attacker]) for p in pure]
        partner = float(env.exact_values(probs[0], probs[1])[attacker])
        assert result.details["best_response_value"] == pytest.approx(max(values), abs=1e-9)
        assert result.details["partner_value"] == pytest.approx(partner, abs=1e-12)
        assert result.exploitability == pytest.approx(max(values) - partner, abs=1e-9)
        episode = ATTACKS["best-response"](horizon="episode", num_envs=4).run(victim, seat=seat, budget=0,
                                                                              games=8, seed=0)
        finite = [float(env.exact_values(*((probs[0], p) if seat == 0 else (p, probs[1])), horizon=20)[attacker])
                  for p in pure]
        assert episode.details["best_response_value"] >= max(finite) - 1e-9  # non-stationary: at least as good


def test_best_response_refuses_envs_without_exact_values():
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0)
    victim = Victim(ipo_robust.make_agents(env, seed=0, hidden=(4,)), "sumo-pushers", {})
    with pytest.raises(ConfigError, match="matrix game"):
        ATTACKS["best-response"]().run(victim, seat=0, budget=0, games=1, seed=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_adversary_exploits_a_pure_rps_victim(seed):
    victim = rps_victim([20.0, 0.0, 0.0])  # always rock
    result = ATTACKS["ppo-adversary"](lr=3e-3).run(victim, seat=0, budget=4096, games=200, seed=seed)
    assert result.win_rate > 0.9
    assert result.as_row()["win_low"] > 0.9
    # game units: the attacker's return (about +1: paper beats rock) minus the uniform partner's (about 0)
    assert result.exploitability == pytest.approx(result.attacker_return - result.partner_return, abs=1e-12)
    assert result.exploitability > 0.7 and abs(result.partner_return) < 0.2


def test_ppo_adversary_partner_return_is_the_partners_own_games_and_budgets_come_from_one_attacker():
    """partner_return = the mean return of the victim's own partner in the attacker's seat, as played
    independently here; run_budgets' result at a budget equals run() at that budget exactly (the attacker's
    checkpoint along its training does not depend on the larger budgets that follow)."""
    from ipo_robust.evals.attacks.play import PolicyActor, play_games
    from ipo_robust.evals.attacks.victim import game_env

    victim = rps_victim([2.0, 0.0, -1.0])
    attack = ATTACKS["ppo-adversary"](num_envs=8, steps=16, hidden=(8,), lr=3e-3)
    curve = attack.run_budgets(victim, seat=1, budgets=[512, 128, 256], games=100, seed=4)
    assert [r.budget for r in curve] == [128, 256, 512]
    single = attack.run(victim, seat=1, budget=256, games=100, seed=4)
    assert (single.wins, single.ties, single.losses) == (curve[1].wins, curve[1].ties, curve[1].losses)
    assert single.exploitability == curve[1].exploitability
    env = game_env(victim, 8, 5)  # the evaluation env and seed (seed + 1) of the attack
    generator = torch.Generator().manual_seed(5)
    actors = tuple(PolicyActor(victim.agents[i], env.action_spaces[i], generator) for i in (0, 1))
    R1, _ = play_games(env, actors, 100, 5)
    for result in curve:  # seat 1 is the victim's, so the partner (agent 1) plays seat 0
        assert result.partner_return == pytest.approx(float(R1.mean()), abs=1e-12)
        assert result.exploitability == pytest.approx(result.attacker_return - result.partner_return, abs=1e-12)


@pytest.mark.parametrize("seed,seat", [(0, 0), (1, 1)])
def test_ppo_adversary_cannot_exploit_the_uniform_nash_victim(seed, seat):
    victim = rps_victim([0.0, 0.0, 0.0])
    result = ATTACKS["ppo-adversary"](lr=3e-3, reference="none").run(victim, seat=seat, budget=4096, games=200,
                                                                     seed=seed)
    assert result.win_rate < 0.45


def test_ppo_adversary_is_seeded():
    victim = rps_victim([1.0, 0.0, 0.0])
    attack = ATTACKS["ppo-adversary"](num_envs=4, steps=8, hidden=(8,), reference="none")
    first, second = (attack.run(victim, seat=1, budget=128, games=16, seed=3) for _ in range(2))
    assert (first.wins, first.ties, first.losses) == (second.wins, second.ties, second.losses)


@pytest.mark.parametrize("name", ["random", "zero", "masked-victim"])
def test_controls_run_are_labelled_and_count_exactly(name):
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0)
    victim = Victim(ipo_robust.make_agents(env, seed=0, hidden=(8,)), "sumo-pushers", {"shaping": 0.5})
    for seat in (0, 1):
        result = ATTACKS[name](num_envs=4).run(victim, seat=seat, budget=1000, games=7, seed=0)
        assert isinstance(result, AttackResult) and result.kind == "control" and result.attack == name
        assert result.games == 7 == result.wins + result.ties + result.losses
        assert math.isnan(result.exploitability)
        row = result.as_row()
        assert set(row) == ROW_KEYS
        assert all(isinstance(v, (int, float, str)) for v in row.values())
        again = ATTACKS[name](num_envs=4).run(victim, seat=seat, budget=1000, games=7, seed=0)
        assert again.as_row()["wins"] == row["wins"] and again.victim_return == result.victim_return


def test_zero_attack_in_rps_always_plays_rock():
    result = ATTACKS["zero"]().run(rps_victim([0.0, 20.0, 0.0]), seat=0, budget=0, games=30, seed=0)  # paper
    assert result.losses == 30


def test_masked_actor_freezes_opponent_entries_at_the_episode_start():
    seen = []

    class Record:
        def act(self, obs, t):
            seen.append(obs.copy())
            return np.zeros(obs.shape[0], dtype=np.int64)

    actor = MaskedActor(Record(), indices=(1,))
    actor.act(np.array([[0.0, 10.0], [1.0, 11.0]]), np.array([0, 0]))
    actor.act(np.array([[2.0, 20.0], [3.0, 21.0]]), np.array([1, 0]))  # row 1 starts a new episode
    assert np.array_equal(seen[1], [[2.0, 10.0], [3.0, 21.0]])
    whole = MaskedActor(Record(), indices=None)
    whole.act(np.array([[0.0, 10.0]]), np.array([0]))
    whole.act(np.array([[5.0, 50.0]]), np.array([1]))
    assert np.array_equal(seen[-1], [[0.0, 10.0]])


def test_play_games_counts_exactly_and_spreads_games_over_copies():
    env = ipo_robust.make_env("rock-paper-scissors", num_envs=4)
    space = env.action_spaces[0]
    R1, R2 = play_games(env, (ZeroActor(space), ZeroActor(space)), games=10, seed=0)
    assert R1.shape == (10,) and np.all(R1 == 0) and np.all(R2 == 0)


@pytest.mark.parametrize("name,options,bad", [
    ("ppo-adversary", {"lrr": 0.1}, "lrr"),
    ("ppo-adversary", {"lr": -1.0}, "lr"),
    ("ppo-adversary", {"reference": "self"}, "reference"),
    ("ppo-adversary", {"hidden": (0,)}, "hidden"),
    ("best-response", {"horizon": "forever"}, "horizon"),
    ("random", {"num_envs": 0}, "num_envs"),
    ("masked-victim", {"opponent": "ghost"}, "opponent"),
    ("zero", {"games": 3}, "games"),
])
def test_bad_options_raise_a_config_error_naming_the_option(name, options, bad):
    with pytest.raises(ConfigError, match=rf"attack '{name}'.*{bad}"):
        host.create("attack", name, **options)


@pytest.mark.parametrize("kwargs,bad", [({"seat": 2}, "seat"), ({"budget": -1}, "budget"), ({"games": 0}, "games"),
                                        ({"seed": 1.5}, "seed")])
def test_bad_run_arguments_raise_a_config_error(kwargs, bad):
    arguments = {"seat": 0, "budget": 0, "games": 1, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=bad):
        ATTACKS["random"]().run(rps_victim([0.0, 0.0, 0.0]), **arguments)


def record_shaping(monkeypatch) -> list[float]:
    """Every shaping weight set on an env a Victim makes, in order (the attacker's and the games' envs)."""
    weights = []
    original = Victim.make_env

    def recording(self, num_envs, seed):
        env = original(self, num_envs, seed)
        set_shaping = env.set_shaping
        env.set_shaping = lambda w: (weights.append(w), set_shaping(w))[1]
        return env

    monkeypatch.setattr(Victim, "make_env", recording)
    return weights


def test_ppo_adversary_shaping_anneals_linearly_to_sparse(monkeypatch):
    """Option shaping: the attacker's env starts at that dense shaping weight and is annealed linearly to 0 at
    the largest budget (Gleave et al. 2020); the evaluation games stay sparse."""
    weights = record_shaping(monkeypatch)
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0)
    victim = Victim(ipo_robust.make_agents(env, seed=0, hidden=(4,)), "sumo-pushers", {"shaping": 0.5})
    ATTACKS["ppo-adversary"](num_envs=2, steps=8, hidden=(4,), shaping=2.0).run(victim, seat=0, budget=64, games=2,
                                                                              seed=0)
    # training: 2 * (1 - done / 64) before each of the 4 batches of 16 steps; every other env (the partner's and
    # the attacker's evaluation games, the training env before its first batch) is sparse
    start = weights.index(2.0)
    assert weights[start:start + 4] == pytest.approx([2.0, 1.5, 1.0, 0.5])
    others = weights[:start] + weights[start + 4:]
    assert len(others) >= 3 and all(w == 0.0 for w in others)


def test_ppo_adversary_defaults_anneal_the_shaping_from_1_with_80_gradient_steps_per_batch(monkeypatch):
    """Issue 16's defaults: the attacker trains on the env's dense shaping at weight 1 annealed linearly to 0 at
    the budget (a training aid; the games stay sparse), with 10 epochs x 8 minibatches per PPO batch."""
    config = ATTACKS["ppo-adversary"]().config
    assert (config.epochs, config.minibatches, config.shaping, config.sparse) == (10, 8, 1.0, True)
    weights = record_shaping(monkeypatch)
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0)
    victim = Victim(ipo_robust.make_agents(env, seed=0, hidden=(4,)), "sumo-pushers", {"shaping": 0.5})
    ATTACKS["ppo-adversary"](num_envs=2, steps=8, hidden=(4,)).run(victim, seat=0, budget=32, games=2, seed=0)
    start = weights.index(1.0)
    assert weights[start:start + 2] == pytest.approx([1.0, 0.5])  # 1 * (1 - done / 32) before each batch of 16
    assert all(w == 0.0 for w in weights[:start] + weights[start + 2:])
