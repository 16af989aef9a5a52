"""One validation everywhere (issue 17, item 7): ``train --print-config`` refuses exactly what ``train``
refuses, and ``eval --dry-run`` refuses an attack that cannot attack a victim's env, as the run does.
Each refusal is one stderr line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

import ipo_robust
from ipo_robust.cli import main
from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks import BestResponse, MaskedVictim, Victim

SUMO = '''[env]
name = "sumo-pushers"
num_envs = 2
steps = 12
options = { shaping = 0.1, max_episode_steps = 10 }

[agents]
hidden = [8]

[optimizer]
name = "ppo"
options = { lr = 0.001 }

[schedule]
iterations = 1

[run]
out = "{out}"
'''

HOPPER = '''[env]
name = "rarl-hopper"
num_envs = 2
steps = 12
options = { max_episode_steps = 10 }

[agents]
hidden = [8]

[optimizer]
name = "ppo"

[schedule]
iterations = 1
holder = 2

[run]
out = "{out}"
'''

BEST_RESPONSE_ON_SUMO = ("attack 'best-response' needs a matrix game or an iterated matrix game (exact values); "
                         "'sumo-pushers' is a SumoPushersEnv. Use 'ppo-adversary' for a lower bound instead.")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ipo-robust: error: ") and "Traceback" not in err[0]
    return err[0].removeprefix("ipo-robust: error: ")


def write_config(tmp_path: Path, text: str) -> tuple[Path, Path]:
    out = tmp_path / "run"
    path = tmp_path / "c.toml"
    path.write_text(text.replace("{out}", out.as_posix()))
    return path, out


@pytest.mark.parametrize("config, override, message", [
    (SUMO, "optimizer.options.lr=nan", "config: optimizer.options: optimizer 'ppo': lr must be a finite number > 0, "
                                       "got nan"),
    (SUMO, "env.options.shaping=nan", "config: env 'sumo-pushers' cannot be built with these options: shaping weight "
                                      "must be finite and >= 0, got nan"),
    (SUMO, "env.options.shapingg=1", "config: env.options.shapingg: env 'sumo-pushers' takes no option 'shapingg'"),
    (HOPPER, "schedule.holder=1", "config: schedule.holder: agent 1 cannot hold the superpower: agent 2 has no bodies "
                                  "it could push (agent 2 can hold it)"),
])
def test_print_config_refuses_exactly_what_train_refuses(tmp_path, capsys, config, override, message):
    path, out = write_config(tmp_path, config)
    assert main(["train", str(path), "--print-config", "--set", override]) == 2
    assert one_error_line(capsys) == message
    assert not out.exists() and capsys.readouterr().out == ""  # nothing printed, nothing written
    assert main(["train", str(path), "--set", override, "--no-progress"]) == 2
    assert one_error_line(capsys) == message
    assert not list(out.glob("ckpt-*")) and not (out / "metrics.csv").exists()


def test_print_config_still_prints_a_good_config_and_writes_nothing(tmp_path, capsys):
    path, out = write_config(tmp_path, SUMO)
    assert main(["train", str(path), "--print-config", "--set", "env.options.shaping=0.5"]) == 0
    printed = capsys.readouterr().out
    assert "[env]" in printed and "shaping = 0.5" in printed
    assert not out.exists()


def write_suite(tmp_path: Path, attack: str) -> Path:
    write_config(tmp_path, SUMO)[0].rename(tmp_path / "sumo.toml")
    spec = tmp_path / "suite.toml"
    spec.write_text(f'[suite]\nname = "s"\nexecutor = "serial"\nout = "results"\n\n'
                    f'[[victims]]\nname = "sumo"\ntrain = "sumo.toml"\n\n'
                    f'[[attacks]]\nname = "{attack}"\nbudgets = [1]\n')
    return spec


@pytest.mark.parametrize("dry_run", [["--dry-run"], []], ids=["dry-run", "run"])
def test_eval_refuses_best_response_on_a_mujoco_victim_before_any_work(tmp_path, capsys, dry_run):
    spec = write_suite(tmp_path, "best-response")
    assert main(["eval", str(spec), *dry_run]) == 2
    assert one_error_line(capsys) == (f"suite spec {str(spec)!r}: attacks[0] ('best-response') cannot attack "
                                      f"victims[0] ('sumo'): {BEST_RESPONSE_ON_SUMO}")
    assert not (tmp_path / "results").exists()


def test_eval_dry_run_accepts_an_attack_that_fits(tmp_path, capsys):
    spec = write_suite(tmp_path, "random")
    assert main(["eval", str(spec), "--dry-run"]) == 0
    assert "2 cells (0 done, 2 to run)" in capsys.readouterr().out


def test_the_attack_run_makes_the_check_validation_asks():
    env = ipo_robust.make_env("sumo-pushers", num_envs=1, seed=0)
    attack = BestResponse()
    with pytest.raises(ConfigError) as checked:
        attack.check_env(env, "sumo-pushers")
    victim = Victim(ipo_robust.make_agents(env, seed=0, hidden=(4,)), "sumo-pushers", {})
    with pytest.raises(ConfigError) as ran:
        attack.run(victim, seat=0, budget=1, games=1, seed=0)
    assert str(checked.value) == str(ran.value) == BEST_RESPONSE_ON_SUMO
    attack.check_env(ipo_robust.make_env("rock-paper-scissors"), "rock-paper-scissors")  # exact values: fine
    MaskedVictim().check_env(env, "sumo-pushers")
    with pytest.raises(ConfigError, match="does not say which observation entries describe the opponent"):
        MaskedVictim().check_env(object(), "custom")


def test_compare_refuses_an_env_option_typo_before_any_work(tmp_path, capsys):
    """compare builds every optimizer's run as train does, so a typo in --set env.options fails up front."""
    out = tmp_path / "cmp"
    assert main(["compare", "--env", "sumo-pushers", "--optimizers", "ppo", "--seeds", "1", "--set",
                 "env.options.shapingg=1", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "env.options.shapingg" in err[0] and "takes no option 'shapingg'" in err[0]
    assert not (out / "items").exists()
