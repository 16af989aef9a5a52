"""``ipo-robust compare`` and ``ipo-robust demo``: exact exploitability, leaderboard statistics,
resumability, errors before work, and the report files."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from ipo_robust.checkpoint import load_checkpoint
from ipo_robust.cli import main
from ipo_robust.envs.games import MatrixGame
from ipo_robust.errors import ConfigError
from ipo_robust.evals import compare
from ipo_robust.evals.exploitability import nash_conv


def rps_spec(out, updates=4, seeds=2, **kwargs):
    return compare.make_spec("rock-paper-scissors", ["ipo-vpg", "simga"], seeds=seeds, updates=updates, games=4,
                             out=out, executor="serial", overrides=["env.num_envs=64"], **kwargs)


@pytest.fixture(scope="module")
def rps_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rps")
    return compare.run_compare(rps_spec(out), progress=False)


def pair_probabilities(run_dir):
    agents = load_checkpoint(run_dir).load_agents()
    with torch.no_grad():
        return [a.distribution(torch.ones(1, a.obs_dim)).probs[0].double().numpy() for a in agents]


# ------------------------------------------------------------------------------------- exactness
def test_best_response_exploitability_is_the_exact_nash_conv_over_two_per_seed(rps_run):
    game = MatrixGame.named("rock-paper-scissors")
    seeds = compare.per_seed(rps_run.results)
    assert len(seeds) == 4 and set(seeds["bound"]) == {"exact"}
    for row in seeds.itertuples():
        p1, p2 = pair_probabilities(rps_run.spec.out / "runs" / f"{row.optimizer}-s{row.seed}")
        assert row.exploitability == pytest.approx(nash_conv(game, p1 / p1.sum(), p2 / p2.sum()) / 2, abs=1e-6)
    assert len(rps_run.results) == 2 * 2 * 2  # optimizer x seed x seat
    assert set(rps_run.results["seat"]) == {0, 1}


def test_every_optimizer_gets_the_same_training_samples(rps_run):
    steps = rps_run.results.groupby("optimizer")["env_steps"].unique()
    assert {int(v) for values in steps for v in values} == {4 * 64 * 1}


# ------------------------------------------------------------------------------------ leaderboard
def test_leaderboard_is_sorted_best_first_and_its_intervals_contain_the_means(rps_run):
    board = rps_run.leaderboard
    assert list(board["exploitability"]) == sorted(board["exploitability"])
    assert list(board["rank"]) == [1, 2]
    assert (board["low"] <= board["exploitability"]).all() and (board["exploitability"] <= board["high"]).all()
    assert set(board["seeds"]) == {2}
    on_disk = pd.read_csv(rps_run.spec.out / "leaderboard.csv")
    assert list(on_disk["optimizer"]) == list(board["optimizer"])


def test_t_interval_matches_the_student_t_formula():
    mean, low, high = compare.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert high - mean == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)  # t(0.975, 2) * s / sqrt(n)
    assert mean - low == pytest.approx(high - mean)
    single = compare.t_interval([0.5])
    assert single[0] == 0.5 and math.isnan(single[1]) and math.isnan(single[2])


def test_leaderboard_sorts_by_mean_and_keeps_lower_bound_labels():
    rows = [{"optimizer": name, "seed": seed, "seat": seat, "exploitability": value, "train_seconds": 1.0,
             "env_steps": 10, "bound": "lower bound"}
            for name, values in (("a", (0.5, 0.7)), ("b", (0.1, 0.3))) for seed, value in enumerate(values)
            for seat in (0, 1)]
    board = compare.leaderboard(pd.DataFrame(rows))
    assert list(board["optimizer"]) == ["b", "a"]
    assert board["exploitability"].tolist() == pytest.approx([0.2, 0.6])
    header = compare.leaderboard_rows(board)[0]
    assert "LOWER BOUND" in " ".join(header)


# ---------------------------------------------------------------------------------------- resume
def test_a_second_run_recomputes_no_item(rps_run, monkeypatch):
    items = sorted((rps_run.spec.out / "items").glob("*.json"))
    assert len(items) == 4
    before = {path: os.stat(path).st_mtime_ns for path in items}

    def must_not_run(item):
        raise AssertionError(f"item {item['id']} was recomputed")

    monkeypatch.setattr(compare, "run_item", must_not_run)
    again = compare.run_compare(rps_spec(rps_run.spec.out), progress=False, report=False)
    assert (again.computed, again.reused) == (0, 4)
    assert {path: os.stat(path).st_mtime_ns for path in items} == before
    pd.testing.assert_frame_equal(again.leaderboard, rps_run.leaderboard)


def test_a_missing_item_is_the_only_one_recomputed(tmp_path):
    spec = rps_spec(tmp_path, updates=2, seeds=1)
    first = compare.run_compare(spec, progress=False, report=False)
    (tmp_path / "items" / "simga-s0.json").unlink()  # killed after training: the run resumes from its checkpoint
    again = compare.run_compare(spec, progress=False, report=False)
    assert (again.computed, again.reused) == (1, 1)
    pd.testing.assert_frame_equal(again.results.drop(columns=["seconds", "train_seconds"]),
                                  first.results.drop(columns=["seconds", "train_seconds"]))


def test_items_of_other_settings_in_the_same_out_are_refused(rps_run):
    with pytest.raises(ConfigError, match="different settings"):
        compare.pending(rps_spec(rps_run.spec.out, updates=5))


def test_work_items_pickle_for_process_pools(tmp_path):
    items = rps_spec(tmp_path).items()
    assert pickle.loads(pickle.dumps(items)) == items
    assert pickle.loads(pickle.dumps(compare.run_item)) is compare.run_item


# ----------------------------------------------------------------------------------- overrides
def test_set_applies_per_optimizer_or_to_every_config(tmp_path):
    spec = compare.make_spec("rock-paper-scissors", ["ipo-vpg", "ppo"], seeds=1, out=tmp_path,
                             overrides=["ppo.lr=0.003", "env.num_envs=32"])
    assert spec.configs["ppo"]["optimizer"]["options"]["lr"] == 0.003
    assert spec.configs["ipo-vpg"]["optimizer"]["options"]["lr"] == 0.5
    assert {c["env"]["num_envs"] for c in spec.configs.values()} == {32}


@pytest.mark.parametrize("argv,needle", [
    (["--env", "rock-paper-scissors", "--optimizers", "ipo-vpg,nope"], "nope"),
    (["--env", "no-such-env", "--optimizers", "ipo-vpg"], "no-such-env"),
    (["--env", "rock-paper-scissors", "--optimizers", "ipo-vpg", "--executor", "warp"], "warp"),
    (["--env", "rock-paper-scissors", "--optimizers", "ipo-vpg", "--set", "ppo.lr=1"], "ppo"),
    (["--env", "rock-paper-scissors", "--optimizers", "ipo-vpg", "--set", "ipo-vpg.lr=-1"], "lr"),
    (["--env", "rock-paper-scissors", "--optimizers", "ipo-vpg", "--set", "run.seed=3"], "run.seed"),
    (["--env", "rock-paper-scissors", "--optimizers", "ipo-vpg", "--seeds", "0"], "--seeds"),
])
def test_bad_input_fails_before_any_work_with_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    out = tmp_path / "out"
    assert main(["compare", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ipo-robust: error:") and needle in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------- report
def test_compare_writes_tables_report_and_plots(rps_run):
    out = rps_run.spec.out
    for name in ("results.csv", "leaderboard.csv", "curves.csv", "report.md", "report.html", "exploitability.png",
                 "learning.png"):
        assert (out / name).is_file(), name
    markdown = (out / "report.md").read_text()
    assert "Skipped" in markdown and "exact" in markdown and "95% Student-t" in markdown
    results = pd.read_csv(out / "results.csv")
    assert {"optimizer", "seed", "seat", "exploitability", "bound", "win_rate"} <= set(results.columns)


def test_demo_quick_writes_the_report_and_plots(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "LOWER BOUND" in printed and "EXACT" in printed and "report" in printed
    for name in ("report.md", "report.html", "rps-exact.png", "rps-exploitability.png", "rps-learning.png",
                 "sumo-exploitability.png", "sumo-learning.png", "sumo-robustness.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    page = (out / "report.html").read_text()
    assert page.count("<img") == 6 and page.count('src="data:image/png;base64,') == 6  # self-contained
    markdown = (out / "report.md").read_text()
    assert "lower bound" in markdown.lower() and "noisy" in markdown
    results = pd.read_csv(out / "sumo-pushers" / "results.csv")
    assert set(results["bound"]) == {"lower bound"} and len(results) == 3 * 1 * 2
    assert np.isfinite(pd.read_csv(out / "sumo-pushers" / "robustness.csv")["return"]).all()
