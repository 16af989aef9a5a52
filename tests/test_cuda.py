"""``run.device``: where policies, critics and updates run (envs stay on the CPU).

The CUDA tests compare a run on the GPU with the same run on the CPU. Rollouts sample from CPU copies of
the weights with the same generator stream (:meth:`ipo_robust.policies.Policy.sampler`), so the first batch
of both runs is the same, bit for bit; the first update then differs by the two devices' rounding alone,
which the solvers amplify by no more than their conditioning: the tests bound the difference of the two
first steps relative to the step. They skip where torch finds no CUDA device; the checks of the setting
itself run everywhere.
"""

from __future__ import annotations

import pytest
import torch

import ipo_robust
from ipo_robust.checkpoint import load_checkpoint
from ipo_robust.cli import main
from ipo_robust.config import parse_config
from ipo_robust.devices import device_problem, relocate
from ipo_robust.errors import ConfigError
from ipo_robust.policies import make_deterministic_agents
from ipo_robust.rollout import collect
from ipo_robust.train import run_training
from ipo_robust.training.setup import TrainingSetup

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def config_for(optimizer: str, device: str, env_name: str = "sumo-pushers", **extra) -> dict:
    options = {"ppo": {"lr": 1e-3}, "ipo-dpg": {"lr": 1e-3, "critic_updates": 3, "batch_size": 32}}.get(
        optimizer, {"lr": 0.05, "critic": "value"})
    if optimizer in ("ipo-npg", "ipo-trpo", "trpo", "npg"):
        options = {"kl": 0.01, "critic": "value"}
    config = {"env": {"name": env_name, "num_envs": 4, "steps": 16},
              "agents": {"hidden": [16, 16]},
              "optimizer": {"name": optimizer, "options": options},
              "schedule": {"kind": "self-play", "iterations": 4},
              "run": {"seed": 5, "checkpoint_every": 1, "device": device}}
    if env_name == "sumo-pushers":
        config["env"]["options"] = {"shaping": 0.5, "max_episode_steps": 12}
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return config


def flat(agents) -> torch.Tensor:
    return torch.cat([p.detach().to("cpu", torch.float64).reshape(-1) for a in agents for p in a.parameters()])


# ------------------------------------------------------------------------------ everywhere
def test_the_device_setting_is_checked_in_one_line(monkeypatch, tmp_path, capsys):
    assert device_problem("cpu") is None
    assert "not a device" in device_problem("tpu:x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA device" in device_problem("cuda")
    with pytest.raises(ConfigError, match=r"run\.device: 'cuda', but torch finds no CUDA device"):
        parse_config(config_for("ppo", "cuda"))
    path = tmp_path / "c.toml"
    path.write_text('[env]\nname = "rock-paper-scissors"\n[run]\ndevice = "cuda:0"\n')
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.device" in err[0] and "no CUDA device" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_run_may_change_device_on_resume():
    from ipo_robust.config import differences

    cpu, cuda = config_for("ppo", "cpu"), config_for("ppo", "cuda")
    assert differences(cpu, cuda) == []  # the device changes rounding only
    assert differences(cpu, config_for("ppo", "cuda", run={"seed": 6})) == ["run.seed"]


# ------------------------------------------------------------------------------ on CUDA
@needs_cuda
def test_relocate_moves_the_adam_moments_with_the_module():
    module = torch.nn.Linear(3, 2).double()
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    module(torch.ones(4, 3, dtype=torch.float64)).sum().backward()
    optimizer.step()
    before = {k: v.clone() for k, v in optimizer.state[module.weight].items()}
    moved = relocate(module, optimizer, torch.device("cuda"))
    assert module.weight.device.type == "cuda" and moved is not optimizer
    after = moved.state[module.weight]
    assert after["exp_avg"].device.type == "cuda" and torch.equal(after["exp_avg"].cpu(), before["exp_avg"])
    assert torch.equal(after["exp_avg_sq"].cpu(), before["exp_avg_sq"])
    module(torch.ones(4, 3, dtype=torch.float64, device="cuda")).sum().backward()
    moved.step()  # and it keeps stepping there


@needs_cuda
def test_the_first_batch_is_the_cpu_batch_on_the_device():
    setups = [TrainingSetup(config_for("ipo-vpg", device)) for device in ("cpu", "cuda")]
    batches = [collect(s.env, s.agents, 16, s.generator) for s in setups]
    for name in ("obs1", "obs2", "act1", "act2", "rew1", "rew2", "done", "first", "t", "terminated"):
        cpu, gpu = getattr(batches[0], name), getattr(batches[1], name)
        assert gpu.device.type == "cuda", name
        assert torch.equal(cpu, gpu.cpu()), name  # same weights, same draws, same env: the same numbers
    assert torch.allclose(batches[0].logp1, batches[1].logp1.cpu(), rtol=1e-5, atol=1e-5)
    for s in setups:
        s.env.close()


CASES = [("ppo", {}), ("ipo-vpg", {}), ("simga", {}), ("ipo-npg", {}), ("ipo-trpo", {}), ("trpo", {}), ("lola", {}),
         ("ipo-vpg", {"opponent_model": {"name": "mle", "options": {"epochs": 3}}}),
         ("ipo-vpg", {"perturbation": {"name": "learned-location"},
                      "schedule": {"kind": "ipo-rarl", "iterations": 1, "n1": 1, "n2": 1}})]


@needs_cuda
@pytest.mark.parametrize("optimizer, extra", CASES, ids=[f"{o}-{i}" for i, (o, _) in enumerate(CASES)])
def test_an_update_on_the_gpu_is_the_cpu_update(tmp_path, optimizer, extra):
    steps = []
    for i, device in enumerate(("cpu", "cuda")):
        config = config_for(optimizer, device, **extra)
        setup = TrainingSetup(config)
        start = flat(setup.agents)
        setup.env.close()
        result = run_training(config, tmp_path / str(i), max_updates=1)
        assert all(p.device.type == device for a in result.agents for p in a.parameters())
        steps.append(flat(result.agents) - start)
    gap = float((steps[1] - steps[0]).norm() / steps[0].norm())
    print(f"{optimizer} {sorted(extra)}: |step_gpu - step_cpu| / |step_cpu| = {gap:.2e}")
    assert steps[0].norm() > 0 and gap < 1e-3


@needs_cuda
@pytest.mark.parametrize("optimizer", ["ipo-dpg", "maddpg"])
def test_deterministic_updates_on_the_gpu_are_the_cpu_updates(optimizer):
    """The off-policy learners (Python API only): replay buffer, TD critics and target networks on the device."""
    steps = []
    for device in ("cpu", "cuda"):
        env = ipo_robust.make_env("sumo-pushers", num_envs=4, seed=1, max_episode_steps=12)
        agents = tuple(a.to(device) for a in make_deterministic_agents(env, seed=2, hidden=(16, 16)))
        start = flat(agents)
        learner = ipo_robust.make_optimizer(optimizer, agents, critic_updates=3, batch_size=32, lr1=0.01, lr2=0.01)
        generator = torch.Generator().manual_seed(3)
        for _ in range(2):
            learner.step(collect(env, agents, 16, generator))
        assert all(p.device.type == device for a in agents for p in a.parameters())
        steps.append(flat(agents) - start)
        env.close()
    gap = float((steps[1] - steps[0]).norm() / steps[0].norm())
    print(f"{optimizer}: |step_gpu - step_cpu| / |step_cpu| = {gap:.2e}")
    assert steps[0].norm() > 0 and gap < 1e-3


@needs_cuda
@pytest.mark.parametrize("optimizer, extra", CASES[:2] + CASES[7:8])
def test_checkpoints_move_between_devices(tmp_path, optimizer, extra):
    """Two updates on the GPU, then the rest on the CPU, and the other way round: each split run ends where the
    uninterrupted run on the second device ends, to the devices' rounding (same draws, same batches)."""
    ends = {}
    for i, (first, second) in enumerate((("cuda", "cpu"), ("cpu", "cuda"), ("cpu", "cpu"), ("cuda", "cuda"))):
        run = tmp_path / f"split{i}"
        run_training(config_for(optimizer, first, **extra), run, max_updates=2)
        result = run_training(config_for(optimizer, second, **extra), run, resume=True)
        assert result.updates == 4 and all(p.device.type == second for a in result.agents for p in a.parameters())
        ends[first, second] = flat(result.agents)
    whole = flat(run_training(config_for(optimizer, "cpu", **extra), tmp_path / "whole").agents)
    assert torch.equal(ends["cpu", "cpu"], whole)  # bit for bit on the CPU
    setup = TrainingSetup(config_for(optimizer, "cpu", **extra))
    scale = float((whole - flat(setup.agents)).norm())
    setup.env.close()
    for key, end in ends.items():
        gap = float((end - whole).norm()) / scale
        print(f"{optimizer} {key}: |end - cpu end| / |cpu travel| = {gap:.2e}")
        assert gap < 1e-2, key


@needs_cuda
def test_the_train_command_runs_on_the_gpu(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text('[env]\nname = "sumo-pushers"\nnum_envs = 8\nsteps = 20\noptions = { max_episode_steps = 10 }\n'
                    '[optimizer]\nname = "ppo"\n[schedule]\niterations = 3\n[run]\ndevice = "cuda"\n')
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 4
    agents = load_checkpoint(tmp_path / "run").load_agents()  # its checkpoint loads on the CPU like any other
    assert all(p.device.type == "cpu" for a in agents for p in a.parameters())
