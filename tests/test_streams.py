"""Env streams collected in worker processes (ipo_robust.streams): the same bits for every worker count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ipo_robust
from ipo_robust.errors import ConfigError
from ipo_robust.rollout import collect, stream_seeds
from ipo_robust.streams import StreamedEnv, stream_sizes
from ipo_robust.train import run_training

FIELDS = ("obs1", "obs2", "act1", "act2", "logp1", "logp2", "rew1", "rew2", "done", "first", "t",
          "next_obs1", "next_obs2", "terminated", "truncated")
OPTIONS = {"perturbation": "learned-location", "holder": "both", "max_episode_steps": 7, "shaping": 0.5}


def two_batches(env, agents):
    """Two collects with the phase settings changed in between (the training loop's set_* calls)."""
    generator = torch.Generator().manual_seed(11)
    env.set_superpower(0, 0.5)
    first = collect(env, agents, 9, generator=generator)
    env.set_superpower(1, 0.8)
    env.set_shaping(0.25)
    second = collect(env, agents, 9, generator=generator)
    return first, second


def assert_same_batch(a, b):
    for field in FIELDS:
        x, y = getattr(a, field), getattr(b, field)
        assert x.shape == y.shape and torch.equal(x, y), field


def test_stream_sizes_split_the_copies_evenly():
    assert stream_sizes(7, 3) == [3, 2, 2]
    assert stream_sizes(4, 4) == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="exceeds num_envs"):
        stream_sizes(2, 3)
    with pytest.raises(ValueError, match="positive int"):
        stream_sizes(4, 0)


def test_streamed_batches_are_the_same_bits_for_every_worker_count_and_equal_their_streams():
    agents = None
    runs = {}
    for workers in (1, 2, 3):
        env = StreamedEnv("sumo-pushers", 5, 4, streams=3, workers=workers, **OPTIONS)
        try:
            assert env.workers == workers
            agents = agents or ipo_robust.make_agents(env, seed=2)
            runs[workers] = (*two_batches(env, agents), env.rng_states())
        finally:
            env.close()
    for workers in (2, 3):
        for k in range(2):
            assert_same_batch(runs[1][k], runs[workers][k])
        assert runs[1][2] == runs[workers][2]  # the streams' random states came back from the workers
    assert not torch.equal(runs[1][0].act1, runs[1][1].act1)

    # the reference: each stream on its own, as a plain env built with the stream's seed, its actions drawn
    # from the generator seeded with the stream's draw; the streamed batch is theirs side by side
    reference_env = StreamedEnv("sumo-pushers", 5, 4, streams=3, workers=1, **OPTIONS)
    seeds = [env.seed for env in reference_env.envs]
    reference_env.close()
    generator = torch.Generator().manual_seed(11)
    plain = [ipo_robust.make_env("sumo-pushers", num_envs=n, seed=s, **OPTIONS)
             for n, s in zip((2, 2, 1), seeds, strict=True)]
    for env in plain:
        env.set_superpower(0, 0.5)
    draws = stream_seeds(generator, 3)
    parts = [collect(env, agents, 9, generator=torch.Generator().manual_seed(d))
             for env, d in zip(plain, draws, strict=True)]
    for field in FIELDS:
        joined = torch.cat([getattr(p, field) for p in parts], dim=1)
        assert torch.equal(joined, getattr(runs[1][0], field)), field
    for env in plain:
        env.close()


def test_streamed_env_steps_as_its_streams_side_by_side():
    env = StreamedEnv("sumo-pushers", 3, 0, streams=2, workers=1, **OPTIONS)
    plain = [ipo_robust.make_env("sumo-pushers", num_envs=n, seed=e.seed, **OPTIONS)
             for n, e in zip((2, 1), env.envs, strict=True)]
    env.set_superpower(1, 0.5)
    for p in plain:
        p.set_superpower(1, 0.5)
    obs = env.reset()
    ref = [p.reset() for p in plain]
    np.testing.assert_array_equal(obs[0], np.concatenate([r[0] for r in ref]))
    rng = np.random.default_rng(0)
    for _ in range(8):
        a1 = rng.uniform(-1, 1, size=(3, env.action_spaces[0].shape[0]))
        a2 = rng.uniform(-1, 1, size=(3, env.action_spaces[1].shape[0]))
        got = env.step(a1, a2)
        want = [plain[0].step(a1[:2], a2[:2]), plain[1].step(a1[2:], a2[2:])]
        for i in (0, 1):
            np.testing.assert_array_equal(got.obs[i], np.concatenate([w.obs[i] for w in want]))
            np.testing.assert_array_equal(got.rewards[i], np.concatenate([w.rewards[i] for w in want]))
        np.testing.assert_array_equal(got.terminated | got.truncated,
                                      np.concatenate([w.terminated | w.truncated for w in want]))
        np.testing.assert_array_equal(got.info["forces"]["force"],
                                      np.concatenate([w.info["forces"]["force"] for w in want]))
    assert env.holder == 1 and env.alpha == 0.5
    env.close()
    for p in plain:
        p.close()


def streamed_config(workers: int, iterations: int = 2) -> dict:
    return {"env": {"name": "sumo-pushers", "num_envs": 4, "steps": 12, "streams": 2,
                    "options": {"shaping": 0.1, "max_episode_steps": 10, "workers": workers}},
            "agents": {"hidden": [8]},
            "optimizer": {"name": "ipo-vpg", "options": {"lr": 0.05, "critic": "value"}},
            "perturbation": {"name": "learned-location"},
            "schedule": {"kind": "ipo-rarl", "iterations": iterations},
            "run": {"seed": 3, "checkpoint_every": 1}}


def test_streamed_training_is_the_same_on_one_or_two_workers_and_resumes_bit_for_bit(tmp_path):
    one = run_training(streamed_config(1), tmp_path / "one")
    two = run_training(streamed_config(2), tmp_path / "two")
    run_training(streamed_config(2), tmp_path / "split", max_updates=3)
    resumed = run_training(streamed_config(1), tmp_path / "split", resume=True)  # workers: speed only
    for run in (two, resumed):
        assert run.updates == one.updates == 4
        for a, b in zip(one.agents, run.agents, strict=True):
            for p, q in zip(a.parameters(), b.parameters(), strict=True):
                assert torch.equal(p, q)
        columns = [c for c in one.metrics if "seconds" not in c and c != "steps_per_second"]
        assert one.metrics[columns].equals(run.metrics[columns])


def test_stream_count_is_part_of_the_run(tmp_path):
    config = streamed_config(1, iterations=1)
    run_training(config, tmp_path / "r", max_updates=1)
    config["env"]["streams"] = 1
    with pytest.raises(ConfigError, match="env.streams"):
        run_training(config, tmp_path / "r", resume=True)
    config["env"]["streams"] = 5
    with pytest.raises(ConfigError, match="env.streams = 5 exceeds env.num_envs = 4"):
        run_training(config, tmp_path / "other")


def test_bad_worker_counts_are_refused():
    env = StreamedEnv("sumo-pushers", 2, 0, streams=2, workers=1)
    with pytest.raises(ValueError, match="workers must be a positive int"):
        env.set_workers(0)
    env.set_workers(8)
    assert env.workers == 2  # at most one per stream
    env.close()


def test_a_dead_worker_is_one_clear_error_and_the_next_collect_starts_new_ones():
    env = StreamedEnv("sumo-pushers", 2, 0, streams=2, workers=2)
    agents = ipo_robust.make_agents(env, seed=0)
    try:
        first = collect(env, agents, 5, generator=torch.Generator().manual_seed(0))
        states = env.rng_states()
        process = env._pool.processes[1]
        process.kill()
        process.join()
        with pytest.raises(RuntimeError, match="collect worker 1 exited"):
            collect(env, agents, 5, generator=torch.Generator().manual_seed(0))
        assert env.rng_states() == states  # nothing half-applied
        env.set_rng_states(states)
        again = collect(env, agents, 5, generator=torch.Generator().manual_seed(0))
        assert again.obs1.shape == first.obs1.shape and env._pool is not None
    finally:
        env.close()
