"""Training schedules, resume and the ``ipo-robust train`` command (issue 7)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ipo_robust import checkpoint as ckpt
from ipo_robust.cli import main
from ipo_robust.envs.mujoco.base import MujocoTwoAgentEnv
from ipo_robust.errors import ConfigError
from ipo_robust.train import Phase, Schedule, anneal_factor, holder_rewards, run_training


def tiny(kind="ipo-rarl", optimizer="ipo-vpg", iterations=3, **schedule):
    options = {"lr": 0.05, "critic": "value"} if optimizer not in ("ppo", "ipo-ppo") else {"lr": 1e-3}
    config = {"env": {"name": "sumo-pushers", "num_envs": 2, "steps": 12, "options": {"shaping": 0.1,
                                                                                        "max_episode_steps": 10}},
              "agents": {"hidden": [8]},
              "optimizer": {"name": optimizer, "options": options},
              "schedule": {"kind": kind, "iterations": iterations, **schedule},
              "run": {"seed": 3, "checkpoint_every": 2}}
    if kind == "ipo-rarl":
        config["perturbation"] = {"name": "learned-location"}
    return config


def weights(agents):
    return [p.detach().clone() for a in agents for p in a.parameters()]


# ---------------------------------------------------------------------------------- the schedules
def test_anneal_factors_match_their_closed_forms():
    assert [anneal_factor("constant", k, 4) for k in range(4)] == [1.0] * 4
    assert [anneal_factor("linear", k, 4) for k in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert anneal_factor("cosine", 2, 4) == pytest.approx(0.5)
    assert anneal_factor("cosine", 1, 4) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


def test_ipo_rarl_schedule_is_algorithm_1():
    s = Schedule({"kind": "ipo-rarl", "iterations": 3, "n1": 2, "n2": 1, "alpha1": 0.6, "alpha2": 0.3,
                  "anneal": "linear", "holder": "none", "alpha": 1.0, "protagonist": 1})
    assert s.total_updates == 9 and s.env_holder() == "both"
    phases = [s.phase(u) for u in range(9)]
    assert [p.holder for p in phases] == [0, 0, 1] * 3
    assert [p.iteration for p in phases] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    expected = [0.6, 0.6, 0.3, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1]
    assert [p.alpha for p in phases] == pytest.approx(expected)
    assert all(p.trainable == (True, True) for p in phases)


def test_rarl_schedule_alternates_learners_and_the_adversary_always_holds():
    s = Schedule({"kind": "rarl", "iterations": 2, "n1": 1, "n2": 2, "alpha": 0.5, "anneal": "constant",
                  "protagonist": 1, "holder": "none", "alpha1": 0, "alpha2": 0})
    phases = [s.phase(u) for u in range(6)]
    assert [p.trainable for p in phases] == [(True, False), (False, True), (False, True)] * 2
    assert {p.holder for p in phases} == {1} and {p.alpha for p in phases} == {0.5}
    assert s.env_holder() == 1


def test_holder_reward_combines_task_and_failure_terms():
    from ipo_robust import collect, make_agents, make_env

    env = make_env("matching-pennies", num_envs=4, seed=0)
    batch = collect(env, make_agents(env, seed=0), steps=3)
    combined = holder_rewards(batch, Phase(0, 0, 1, 1.0, (True, True)), task_weight=0.25, fail_weight=2.0)
    assert torch.equal(combined.rew2, 0.25 * batch.rew2 - 2.0 * batch.rew1)
    assert torch.equal(combined.rew1, batch.rew1)
    assert holder_rewards(batch, Phase(0, 0, None, 0.0, (True, True)), 0.25, 2.0) is batch


def test_training_applies_the_phases_to_the_env(monkeypatch, tmp_path):
    """Instrumented env: per step, who holds the superpower with what alpha, and whose bodies were pushed."""
    seen = []
    original = MujocoTwoAgentEnv._step_envs

    def spy(self, action1, action2):
        result = original(self, action1, action2)
        forces = result[-1]["forces"] if isinstance(result[-1], dict) else {}
        seen.append((self.holder, self.alpha, np.asarray(forces.get("body", np.zeros((0, 0))))))
        return result

    monkeypatch.setattr(MujocoTwoAgentEnv, "_step_envs", spy)
    config = tiny(iterations=2, n1=2, n2=1, alpha1=0.8, alpha2=0.4, anneal="linear")
    run = run_training(config, tmp_path / "run")
    steps = config["env"]["steps"]
    assert len(seen) == 6 * steps
    plan = [(0, 0.8), (0, 0.8), (1, 0.4), (0, 0.4), (0, 0.4), (1, 0.2)]
    env = ckpt.load_checkpoint(run.run_dir).make_env()
    for u, (holder, alpha) in enumerate(plan):
        for h, a, bodies in seen[u * steps:(u + 1) * steps]:
            assert h == holder and a == pytest.approx(alpha)
            victim_bodies = set(env.body_ids[1 - holder].tolist())
            assert bodies.size > 0 and set(bodies[bodies >= 0].tolist()) <= victim_bodies  # never the holder's
    assert run.metrics["holder"].tolist() == [h + 1 for h, _ in plan]
    assert run.metrics["alpha"].tolist() == pytest.approx([a for _, a in plan])


def test_rarl_trains_one_agent_at_a_time(tmp_path):
    config = tiny(kind="rarl", optimizer="simga", iterations=1, n1=1, n2=1, alpha=0.5)
    config["perturbation"] = {"name": "body-force"}
    first = run_training(config, tmp_path / "a", max_updates=1)
    w0 = weights(first.agents)
    n1 = sum(p.numel() for p in first.agents[0].parameters())
    second = run_training(config, tmp_path / "a", resume=True)
    w1 = weights(second.agents)
    moved = [not torch.equal(a, b) for a, b in zip(w0, w1, strict=True)]
    split = len(list(first.agents[0].parameters()))
    assert not any(moved[:split]) and any(moved[split:])  # update 2: only the adversary learns
    assert n1 > 0


def test_rarl_refuses_an_interactive_optimizer():
    with pytest.raises(ConfigError, match="interactive"):
        run_training(tiny(kind="rarl", optimizer="ipo-vpg"), "unused")


def test_a_schedule_the_env_cannot_host_is_refused(tmp_path):
    config = tiny(kind="ipo-rarl")
    config["env"] = {"name": "rock-paper-scissors"}
    config.pop("perturbation")
    with pytest.raises(ConfigError, match="superpower|holder"):
        run_training(config, tmp_path / "x")


# -------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("optimizer,extra", [("ipo-vpg", {}), ("ppo", {}), ("ipo-ppo", {}),
                                             ("simga", {"opponent": "mle"})])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, optimizer, extra):
    config = tiny(optimizer=optimizer, iterations=3)
    if extra.get("opponent"):
        config["opponent_model"] = {"name": extra["opponent"], "options": {"epochs": 3}}
    whole = run_training(config, tmp_path / "whole")
    run_training(config, tmp_path / "split", max_updates=3)  # stops mid-iteration, with a checkpoint
    resumed = run_training(config, tmp_path / "split", resume=True)
    assert resumed.updates == whole.updates == 6
    for a, b in zip(weights(whole.agents), weights(resumed.agents), strict=True):
        assert torch.equal(a, b)
    columns = [c for c in whole.metrics if "seconds" not in c and c != "steps_per_second"]
    assert whole.metrics[columns].equals(resumed.metrics[columns])


def test_resume_refuses_a_changed_config(tmp_path):
    config = tiny(iterations=2)
    run_training(config, tmp_path / "r", max_updates=1)
    config["schedule"]["alpha1"] = 0.9
    with pytest.raises(ConfigError, match="schedule.alpha1"):
        run_training(config, tmp_path / "r", resume=True)


def test_a_run_directory_is_never_overwritten_without_resume(tmp_path):
    run_training(tiny(iterations=1), tmp_path / "r")
    with pytest.raises(ConfigError, match="--resume"):
        run_training(tiny(iterations=1), tmp_path / "r")


def test_ctrl_c_checkpoints_the_completed_updates(tmp_path, monkeypatch):
    from ipo_robust.optim.optimizer import Optimizer

    calls = {"n": 0}
    original = Optimizer.step

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Optimizer, "step", interrupted)
    config = tiny(iterations=3)
    config["run"]["checkpoint_every"] = 100
    with pytest.raises(KeyboardInterrupt):
        run_training(config, tmp_path / "r")
    loaded = ckpt.load_checkpoint(tmp_path / "r")
    assert loaded.iteration == 3 and loaded.state["updates"] == 3


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    run_training(tiny(iterations=2), tmp_path / "r", max_updates=2)  # checkpoint of update 2
    before = ckpt.load_checkpoint(tmp_path / "r")
    real_replace = os.replace

    def crash(src, dst):
        if Path(dst).name.startswith("ckpt-"):
            raise OSError("simulated crash before the rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        run_training(tiny(iterations=2), tmp_path / "r", resume=True)
    monkeypatch.setattr(os, "replace", real_replace)
    after = ckpt.load_checkpoint(tmp_path / "r")
    assert after.path == before.path and after.iteration == 2
    assert not list((tmp_path / "r").glob(".ckpt-*"))  # the half-written directory was removed


def test_a_killed_training_process_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL at an arbitrary moment (here: while it writes checkpoints every update)."""
    config_path = tmp_path / "c.toml"
    config_path.write_text(
        '[env]\nname = "sumo-pushers"\nnum_envs = 2\nsteps = 5\noptions = { max_episode_steps = 4 }\n'
        '[agents]\nhidden = [8]\n[optimizer]\nname = "simga"\n[schedule]\niterations = 100000\n'
        f'[run]\ncheckpoint_every = 1\nkeep = 2\nout = "{(tmp_path / "run").as_posix()}"\n')
    process = subprocess.Popen([sys.executable, "-m", "ipo_robust", "train", str(config_path), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "run" / "latest").exists() and time.time() < deadline:
            assert process.poll() is None, "training exited early"
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    loaded = ckpt.load_checkpoint(tmp_path / "run")
    assert loaded.state["updates"] >= 1
    assert len(loaded.load_agents()) == 2


# ------------------------------------------------------------------------------------------- CLI
def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BASE = ('[env]\nname = "sumo-pushers"\nnum_envs = 2\nsteps = 5\noptions = { max_episode_steps = 4 }\n'
        '[agents]\nhidden = [8]\n[schedule]\niterations = 1\n')


@pytest.mark.parametrize("extra,key", [
    ("[schedule]\nalpha1 = 1.5\n", "schedule.alpha1"),
    ("[optimizer]\nname = \"simga\"\noptions = { lr = -0.1 }\n", "lr"),
    ("[env]\nnum_envs = \"many\"\n", "env.num_envs"),
    ("[run]\nseeds = 3\n", "'seeds'"),
    ("[bogus]\nx = 1\n", "'bogus'"),
    ("[optimizer]\nname = \"ipo-vpgg\"\n", "did you mean 'ipo-vpg'"),
])
def test_bad_configs_fail_with_one_line_naming_the_key(tmp_path, capsys, extra, key):
    # merge the extra table into BASE (TOML forbids a table twice): rebuild the text from dicts
    import tomllib

    from ipo_robust.config import to_toml

    raw = tomllib.loads(BASE)
    for section, values in tomllib.loads(extra).items():
        raw.setdefault(section, {}).update(values)
    path = write_config(tmp_path / "bad.toml", to_toml(raw))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err, err
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_bad_toml_and_missing_file_are_one_line_errors(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = write_config(tmp_path / "b.toml", "[env\nname=")
    assert main(["train", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_set_overrides_and_print_config(tmp_path, capsys):
    import tomllib

    path = write_config(tmp_path / "c.toml", BASE)
    assert main(["train", str(path), "--set", "schedule.alpha1=0.25", "--set", "optimizer.options.lr=0.1",
                 "--set", "schedule.kind=ipo-rarl", "--print-config"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["schedule"]["alpha1"] == 0.25 and printed["schedule"]["kind"] == "ipo-rarl"
    assert printed["optimizer"]["options"] == {"lr": 0.1}
    assert printed["run"]["checkpoint_every"] == 10  # defaults resolved
    assert main(["train", str(path), "--set", "schedule.alpha1=2", "--print-config"]) == 2


def test_train_command_writes_checkpoint_and_metrics_and_resumes(tmp_path, capsys):
    import pandas as pd

    path = write_config(tmp_path / "c.toml", BASE + "[run]\ncheckpoint_every = 1\n")
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--no-progress", "--set", "schedule.iterations=3",
                 "--max-updates", "2"]) == 0
    assert ckpt.load_checkpoint(out).iteration == 2
    assert main(["train", str(out), "--resume", "--no-progress"]) == 0  # a run directory resumes itself
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["update"].tolist() == [0, 1, 2]
    assert {"train/return1", "steps_per_second", "alpha", "optim/kl1"} <= set(metrics.columns)
    assert "trained 3 updates" in capsys.readouterr().out


def test_shipped_configs_are_valid():
    from ipo_robust.config import load_toml, validate

    configs = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.toml"))
    assert len(configs) >= 4
    for path in configs:
        validate(load_toml(path))


def test_metrics_also_go_to_tensorboard_when_installed(tmp_path):
    pytest.importorskip("tensorboard")  # optional: the test extra installs it
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny(iterations=1)
    config["run"]["tensorboard"] = True
    run = run_training(config, tmp_path / "r")
    events = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    events.Reload()
    values = [e.value for e in events.Scalars("alpha")]
    assert values == pytest.approx(run.metrics["alpha"].tolist())
    config["run"]["tensorboard"] = False
    run_training(config, tmp_path / "off")
    assert not (tmp_path / "off" / "tensorboard").exists()


# ------------------------------------------------------------------------------ failed Krylov solves
FAILING = ('[env]\nname = "sumo-pushers"\nnum_envs = 2\nsteps = 5\n'
           'options = { max_episode_steps = 4, shaping = 1.0 }\n[agents]\nhidden = [8]\n'
           '[optimizer]\nname = "ipo-vpg"\noptions = { lr = 0.05, rtol = 1e-12, max_iter = 1 }\n'
           '[perturbation]\nname = "learned-location"\n[schedule]\nkind = "ipo-rarl"\niterations = 2\n'
           '[run]\ncheckpoint_every = 1\n')


def test_failed_solves_are_counted_per_update_and_summarised_once(tmp_path, capsys):
    """An explicit rtol no solve can reach in one iteration: every update's solve fails. Nothing is printed
    per update; metrics.csv counts each update's failures and the running total; the command prints one
    summary line at the end."""
    import warnings

    import pandas as pd

    from ipo_robust.optim import ConvergenceWarning

    path = write_config(tmp_path / "c.toml", FAILING)
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", str(path), "--out", str(out), "--no-progress", "--max-updates", "3"]) == 0
        assert main(["train", str(out), "--resume", "--no-progress"]) == 0  # the total carries over
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["optim/solve_failures"].tolist() == [1, 1, 1, 1]
    assert metrics["optim/solve_failures_total"].tolist() == [1, 2, 3, 4]
    assert not metrics["optim/converged"].any()
    err = capsys.readouterr().err
    summaries = [line for line in err.splitlines() if line.startswith("solver:")]
    assert len(summaries) == 2 and "4 Krylov solves in 4 of 4 updates" in summaries[1]
    assert "ConvergenceWarning" not in err and "did not converge" not in err


def test_a_run_whose_solves_converge_prints_no_solver_line(tmp_path, capsys):
    path = write_config(tmp_path / "c.toml", FAILING.replace(", rtol = 1e-12, max_iter = 1", ""))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    import pandas as pd

    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert (metrics["optim/iterations"] > 0).all() and metrics["optim/converged"].all()
    assert metrics["optim/solve_failures_total"].iloc[-1] == 0
    assert "solver:" not in capsys.readouterr().err


def test_exact_game_training_counts_failed_solves_without_printing_them():
    import warnings

    from ipo_robust import make_optimizer
    from ipo_robust.envs.games import MatrixGame
    from ipo_robust.optim import ConvergenceWarning
    from ipo_robust.train import train_exact_game

    game = MatrixGame.named("rock-paper-scissors")
    theta = torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64)
    failing = make_optimizer("cgd", None, lr=0.5, rtol=1e-12, max_iter=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train_exact_game(game, failing, theta, -theta, iterations=5, record_every=2)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert run.solve_failures == 5
    assert [row.get("optim/solve_failures") for row in run.history] == [None, 1, 1, 1]
    fine = train_exact_game(game, make_optimizer("cgd", None, lr=0.5), theta, -theta, iterations=5)
    assert fine.solve_failures == 0


# ------------------------------------------------------------------------- agents.state_dependent_std
def test_state_dependent_std_decides_the_holders_policy():
    from ipo_robust.policies import GaussianMLPPolicy, StateDependentStdGaussianPolicy
    from ipo_robust.train import TrainingSetup

    config = tiny()  # ipo-rarl with learned-location forces: both agents may hold the superpower
    assert all(isinstance(a, StateDependentStdGaussianPolicy) for a in TrainingSetup(config).agents)
    config["agents"]["state_dependent_std"] = False
    assert all(type(a) is GaussianMLPPolicy for a in TrainingSetup(config).agents)


def test_a_run_from_before_state_dependent_std_resumes_with_it_false(tmp_path, capsys):
    import json

    config = tiny(iterations=2)
    config["agents"]["state_dependent_std"] = False
    whole = run_training(config, tmp_path / "whole")
    run_training(config, tmp_path / "r", max_updates=1)
    sidecar = ckpt.find_checkpoint(tmp_path / "r") / "meta.json"
    meta = json.loads(sidecar.read_text())
    del meta["config"]["agents"]["state_dependent_std"]  # as written before the key existed
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="agents.state_dependent_std=false"):
        run_training(tiny(iterations=2), tmp_path / "r", resume=True)  # the default builds other agents
    assert main(["train", str(tmp_path / "r"), "--resume", "--no-progress"]) == 2
    assert "--set agents.state_dependent_std=false" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "r"), "--resume", "--no-progress",
                 "--set", "agents.state_dependent_std=false"]) == 0
    resumed = ckpt.load_checkpoint(tmp_path / "r")
    assert resumed.state["updates"] == whole.updates == 4
    for a, b in zip(weights(whole.agents), weights(resumed.load_agents()), strict=True):
        assert torch.equal(a, b)


# ------------------------------------------------------------- the summary after a resume (issue 17)
def test_the_summary_counts_this_calls_updates_and_the_runs_total(tmp_path, capsys):
    path = write_config(tmp_path / "c.toml", BASE + "[run]\ncheckpoint_every = 1\n")
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--no-progress", "--set", "schedule.iterations=4",
                 "--max-updates", "3"]) == 0
    first = capsys.readouterr().out
    assert "trained 3 updates in " in first and "(the run has trained 3 updates in total)" in first
    assert main(["train", str(out), "--resume", "--no-progress"]) == 0
    resumed = capsys.readouterr().out
    assert "trained 1 update in " in resumed and "(the run has trained 4 updates in total)" in resumed


def test_run_training_says_what_this_call_trained(tmp_path):
    config = tiny(iterations=2)
    fresh = run_training(config, tmp_path / "r", max_updates=1)
    assert (fresh.trained, fresh.updates) == (1, 1)
    resumed = run_training(config, tmp_path / "r", resume=True)
    assert (resumed.trained, resumed.updates) == (3, 4)


# ------------------------------------------------------------------ one writer, nothing lost (issue 17)
def test_a_second_train_into_a_running_directory_is_refused(tmp_path, capsys):
    import pandas as pd

    from ipo_robust.locking import HOLDER

    path = write_config(tmp_path / "c.toml", BASE + "[run]\ncheckpoint_every = 1\n")
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "ipo_robust", "train", str(path), "--out", str(out),
                              "--no-progress", "--set", "schedule.iterations=40"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / HOLDER).exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.05)
        assert main(["train", str(path), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{str(out)!r} is in use by pid {first.pid} on host " in err, err
        assert "(python -m ipo_robust train " in err and err.endswith("wait for it or use another --out")
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    updates = pd.read_csv(out / "metrics.csv")["update"].tolist()
    assert updates == list(range(ckpt.load_checkpoint(out).iteration)) and len(updates) > 1  # intact


def test_outputs_without_a_checkpoint_are_kept_unless_overwrite(tmp_path, capsys):
    import pandas as pd

    path = write_config(tmp_path / "c.toml", BASE)
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("update,train/return1\n0,1.5\n")  # a run killed before its first checkpoint
    assert main(["train", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no checkpoint to resume from (metrics.csv)" in err and "--overwrite" in err
    assert (out / "metrics.csv").read_text() == "update,train/return1\n0,1.5\n"  # untouched
    assert main(["train", str(path), "--out", str(out), "--no-progress", "--resume", "--overwrite"]) == 2
    assert main(["train", str(path), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert "--overwrite: deleted 1 entries" in capsys.readouterr().err
    assert ckpt.load_checkpoint(out).iteration == 1
    metrics = pd.read_csv(out / "metrics.csv")  # the new run's, not the stub (parsed: any number may hold "1.5")
    assert metrics["update"].tolist() == [0] and len(metrics.columns) > 2
    assert metrics["train/return1"].tolist() != [1.5]


def test_a_refused_train_leaves_no_run_directory_it_created(tmp_path, capsys):
    """Refused after its run directory was created and locked (a config the env cannot host, found when the run is
    built; --resume of a directory without a run): no empty directory, nor one with only the lock file, is left;
    a directory that existed before stays."""
    host = write_config(tmp_path / "host.toml", '[env]\nname = "rock-paper-scissors"\nnum_envs = 2\nsteps = 1\n'
                        '[schedule]\nkind = "ipo-rarl"\niterations = 1\n')
    assert main(["train", str(host), "--out", str(tmp_path / "new" / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be built with these options" in err, err
    assert not (tmp_path / "new").exists()
    path = write_config(tmp_path / "c.toml", BASE)
    assert main(["train", str(path), "--out", str(tmp_path / "fresh"), "--no-progress", "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main(["train", str(host), "--out", str(mine), "--no-progress"]) == 2
    assert mine.is_dir()  # it was there before: kept


def test_a_finished_run_is_refused_without_resume_and_overwrite_starts_it_over(tmp_path, capsys):
    path = write_config(tmp_path / "c.toml", BASE)
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", str(path), "--out", str(out), "--no-progress"]) == 2
    assert "pass --resume to continue it, --overwrite" in capsys.readouterr().err
    assert main(["train", str(path), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert ckpt.load_checkpoint(out).iteration == 1
