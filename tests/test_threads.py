"""Per-player work on threads (issue 15): same results for every thread count."""

import pytest
import torch

import ipo_robust
from ipo_robust.threads import WORKERS_VARIABLE, available_cpus, thread_map


def test_thread_map_keeps_order_and_raises():
    assert thread_map(lambda x: x * x, range(5), threads=3) == [0, 1, 4, 9, 16]
    assert thread_map(lambda x: x + 1, [7], threads=4) == [8]

    def fail_on_two(x):
        if x == 2:
            raise RuntimeError("item 2")
        return x

    with pytest.raises(RuntimeError, match="item 2"):
        thread_map(fail_on_two, [1, 2, 3], threads=2)


def test_items_side_by_side_run_with_one_intra_op_thread_and_the_count_is_restored():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert thread_map(lambda _: torch.get_num_threads(), range(2), threads=2) == [1, 1]
        assert torch.get_num_threads() == 2
        assert thread_map(lambda _: torch.get_num_threads(), range(2), threads=1) == [2, 2]  # in this thread
        with pytest.raises(RuntimeError, match="boom"):
            thread_map(lambda _: (_ for _ in ()).throw(RuntimeError("boom")), range(2), threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_available_cpus_reads_the_variable(monkeypatch):
    monkeypatch.setenv(WORKERS_VARIABLE, "3")
    assert available_cpus() == 3
    monkeypatch.setenv(WORKERS_VARIABLE, "-2")
    with pytest.raises(ValueError, match=WORKERS_VARIABLE):
        available_cpus()


@pytest.mark.parametrize("optimizer, options", [("ppo", {"lr": 0.003}), ("ipo-vpg", {"lr": 0.05, "critic": "value"}),
                                                 ("simga", {"lr": 0.05, "critic": "q"}), ("ipo-ppo", {"lr": 0.003})])
def test_training_is_bit_identical_on_one_or_two_threads(monkeypatch, tmp_path, optimizer, options):
    """PPO's two players' updates, both critics' regressions, and ipo-ppo's critics beside its policy steps run
    side by side on threads; the weights after a few updates are the same bits as on one thread."""
    from ipo_robust.train import run_training

    config = {"env": {"name": "sumo-pushers", "num_envs": 8, "steps": 110, "options": {"shaping": 1.0}},
              "agents": {"hidden": [16, 16]}, "optimizer": {"name": optimizer, "options": options},
              "schedule": {"kind": "self-play", "iterations": 3}, "run": {"seed": 1, "checkpoint_every": 100}}
    weights = []
    for threads in ("1", "2"):
        monkeypatch.setenv(WORKERS_VARIABLE, threads)
        result = run_training(config, tmp_path / threads)
        weights.append([p.detach().clone() for agent in result.agents for p in agent.parameters()])
        assert result.updates == 3
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights[0], [p for agent in ipo_robust.make_agents(
        ipo_robust.make_env("sumo-pushers", num_envs=1, seed=1), seed=1, hidden=(16, 16)) for p in agent.parameters()],
        strict=True))  # the runs trained


def test_a_run_resumes_on_another_number_of_env_workers(tmp_path):
    """``env.options.workers`` changes speed, never results: a resume may change it, and the resumed run
    equals the uninterrupted one bit for bit."""
    from ipo_robust.train import run_training

    def config(workers):
        return {"env": {"name": "sumo-pushers", "num_envs": 16, "steps": 105, "options": {"workers": workers}},
                "agents": {"hidden": [8]}, "optimizer": {"name": "ppo", "options": {"lr": 0.003}},
                "schedule": {"kind": "self-play", "iterations": 2}, "run": {"seed": 2, "checkpoint_every": 1}}

    whole = run_training(config(1), tmp_path / "whole")
    run_training(config(1), tmp_path / "split", max_updates=1)
    resumed = run_training(config(2), tmp_path / "split", resume=True)
    assert resumed.updates == 2 and resumed.trained == 1
    for a, b in zip(whole.agents, resumed.agents, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
