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
    assert set(rps_run.results["seat"]) == {1, 2}  # the victim's agent 1 and agent 2, as configs count them


def test_every_optimizer_gets_the_same_training_samples(rps_run):
    steps = rps_run.results.groupby("optimizer")["env_steps"].unique()
    assert {int(v) for values in steps for v in values} == {4 * 64 * 1}


# ------------------------------------------------------------------------------------ leaderboard
def test_leaderboard_is_sorted_best_first_and_its_intervals_contain_the_means(rps_run):
    board = rps_run.leaderboard
    assert list(board["exploitability"]) == sorted(board["exploitability"])
    assert list(board["rank"]) == [1, 2]
    assert (board["exploitability_low"] <= board["exploitability"]).all()
    assert (board["exploitability"] <= board["exploitability_high"]).all()
    assert set(board["seeds"]) == {2}
    on_disk = pd.read_csv(rps_run.spec.out / "leaderboard.csv")
    assert list(on_disk["optimizer"]) == list(board["optimizer"])


def test_leaderboard_intervals_are_the_seed_bootstrap_and_stay_within_the_data():
    """The interval is statistics.aggregate's percentile bootstrap of the per-seed values (no Student-t
    quantile), inside the seeds' own range; a single seed has none; the lower bound per seat is the max
    over attacker seeds."""
    from ipo_robust.evals.statistics import aggregate

    rows = [{"optimizer": "a", "seed": seed, "seat": seat, "attacker_seed": k, "budget": 100,
             "exploitability": value + 0.1 * k, "train_seconds": 1.0, "env_steps": 10, "bound": "lower bound"}
            for seed, value in enumerate([-1.5, 0.2, 1.9]) for seat in (1, 2) for k in (0, 1)]
    rows += [{"optimizer": "b", "seed": 0, "seat": seat, "attacker_seed": 0, "budget": 100, "exploitability": 0.5,
              "train_seconds": 1.0, "env_steps": 10, "bound": "lower bound"} for seat in (1, 2)]
    board = compare.leaderboard(pd.DataFrame(rows), 100).set_index("optimizer")
    per_seed = np.array([-1.4, 0.3, 2.0])  # the max over attacker seeds (+0.1), the same on both seats
    assert board.loc["a", "exploitability"] == pytest.approx(per_seed.mean())
    reference = aggregate({"a": per_seed, "b": [0.5]}, -1.4, 2.0).set_index("name")
    assert board.loc["a", "exploitability_low"] == pytest.approx(reference.loc["a", "mean_low"])
    assert board.loc["a", "exploitability_high"] == pytest.approx(reference.loc["a", "mean_high"])
    assert -1.4 <= board.loc["a", "exploitability_low"] < per_seed.mean() < board.loc["a", "exploitability_high"] <= 2.0
    assert math.isnan(board.loc["b", "exploitability_low"]) and math.isnan(board.loc["b", "exploitability_high"])


def test_leaderboard_sorts_by_mean_and_keeps_lower_bound_labels():
    rows = [{"optimizer": name, "seed": seed, "seat": seat, "exploitability": value, "train_seconds": 1.0,
             "env_steps": 10, "bound": "lower bound"}
            for name, values in (("a", (0.5, 0.7)), ("b", (0.1, 0.3))) for seed, value in enumerate(values)
            for seat in (1, 2)]
    board = compare.leaderboard(pd.DataFrame(rows))
    assert list(board["optimizer"]) == ["b", "a"]
    assert board["exploitability"].tolist() == pytest.approx([0.2, 0.6])
    header = compare.leaderboard_rows(board)[0]
    assert "LOWER BOUND" in " ".join(header)


def test_leaderboard_controls_and_printed_table_number_the_seats_1_and_2():
    """Per-seat columns and headers count the victim's agents from 1, as configs do: seat1 is agent 1 attacked."""
    rows = [{"optimizer": "a", "seed": seed, "seat": seat, "exploitability": 0.1 * seat + seed, "train_seconds": 1.0,
             "env_steps": 10, "bound": "exact"} for seed in (0, 1) for seat in (1, 2)]
    board = compare.leaderboard(pd.DataFrame(rows))
    assert "seat0" not in board and board.loc[0, "seat1"] == pytest.approx(0.6)
    assert board.loc[0, "seat2"] == pytest.approx(0.7)
    header, line = compare.leaderboard_rows(board)
    assert header[5:7] == ("SEAT 1", "SEAT 2") and line[5:7] == ("0.6", "0.7")
    control_rows = pd.DataFrame([{"control": "zero", "budget": 8, "seat": seat, "wins": wins, "games": 10,
                                  "win_rate": wins / 10} for seat, wins in ((1, 9), (2, 7))])
    controls = compare.control_table(control_rows, compare.CompareSpec(
        "rock-paper-scissors", "matrix", ["a"], [0], {}, "best-response", {}, 8, 10, 0, 0, "unused", victim_steps=8))
    assert controls.loc[0, "seat1_win_rate"] == 0.9 and controls.loc[0, "seat2_win_rate"] == 0.7
    assert controls.loc[0, "win_rate"] == 0.8 and "seat0_win_rate" not in controls


# ---------------------------------------------------------------------------------------- resume
def test_a_second_run_recomputes_no_item(rps_run, monkeypatch):
    items = sorted((rps_run.spec.out / "items").glob("*.json"))
    assert len(items) == 6  # 2 optimizers x 2 seeds and the 2 positive controls
    before = {path: os.stat(path).st_mtime_ns for path in items}

    def must_not_run(item):
        raise AssertionError(f"item {item['id']} was recomputed")

    monkeypatch.setattr(compare, "run_item", must_not_run)
    again = compare.run_compare(rps_spec(rps_run.spec.out), progress=False, report=False)
    assert (again.computed, again.reused) == (0, 6)
    assert {path: os.stat(path).st_mtime_ns for path in items} == before
    pd.testing.assert_frame_equal(again.leaderboard, rps_run.leaderboard)


def test_a_missing_item_is_the_only_one_recomputed(tmp_path):
    spec = rps_spec(tmp_path, updates=2, seeds=1)
    first = compare.run_compare(spec, progress=False, report=False)
    (tmp_path / "items" / "simga-s0.json").unlink()  # killed after training: the run resumes from its checkpoint
    again = compare.run_compare(spec, progress=False, report=False)
    assert (again.computed, again.reused) == (1, 3)  # the other seed and the 2 controls reused
    pd.testing.assert_frame_equal(again.results.drop(columns=["seconds", "train_seconds"]),
                                  first.results.drop(columns=["seconds", "train_seconds"]))


def test_items_saved_with_seats_counted_from_0_are_read_renumbered(rps_run, tmp_path, monkeypatch):
    """Item files written before seats counted from 1 (no "format"; seats 0 and 1) resume as they are: read
    with their seats renumbered 1 and 2, nothing recomputed, the same tables as a run in today's numbering."""
    import json

    (tmp_path / "items").mkdir()
    for path in sorted((rps_run.spec.out / "items").glob("*.json")):
        record = json.loads(path.read_text())
        assert record.pop("format") == compare.ITEM_FORMAT == 2
        for part in ("rows", "masked", "robustness"):
            for row in record.get(part, []):
                assert row["seat"] in (1, 2)
                row["seat"] -= 1
        (tmp_path / "items" / path.name).write_text(json.dumps(record))

    def must_not_run(item):
        raise AssertionError(f"item {item['id']} was recomputed")

    monkeypatch.setattr(compare, "run_item", must_not_run)
    old = compare.run_compare(rps_spec(tmp_path), progress=False, report=False)
    assert (old.computed, old.reused) == (0, 6)
    pd.testing.assert_frame_equal(old.results, rps_run.results)
    pd.testing.assert_frame_equal(old.controls, rps_run.controls)
    pd.testing.assert_frame_equal(old.leaderboard, rps_run.leaderboard)
    assert set(pd.read_csv(tmp_path / "results.csv")["seat"]) == {1, 2}


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


def test_a_compare_refused_after_locking_its_out_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "new" / "out"  # --workers 0 is refused when the executor is built, inside the locked --out
    assert main(["compare", "--env", "rock-paper-scissors", "--optimizers", "ipo-vpg", "--seeds", "1", "--workers",
                 "0", "--out", str(out), "--no-progress"]) == 2
    assert "max_workers must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------------------- report
def test_compare_writes_tables_report_and_plots(rps_run):
    out = rps_run.spec.out
    for name in ("results.csv", "leaderboard.csv", "curves.csv", "report.md", "report.html", "exploitability.png",
                 "learning.png"):
        assert (out / name).is_file(), name
    markdown = (out / "report.md").read_text()
    assert "Skipped" in markdown and "exact" in markdown and "95% percentile bootstrap" in markdown
    results = pd.read_csv(out / "results.csv")
    assert {"optimizer", "seed", "seat", "exploitability", "bound", "win_rate"} <= set(results.columns)
    assert "(seat 1 = agent 1, seat 2 = agent 2)" in markdown and "| seat 1 | seat 2 |" in markdown
    assert {"seat1", "seat2"} <= set(pd.read_csv(out / "leaderboard.csv").columns)
    assert {"seat1_win_rate", "seat2_win_rate"} <= set(pd.read_csv(out / "controls.csv").columns)


def test_demo_quick_writes_the_report_and_plots(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "LOWER BOUND" in printed and "EXACT" in printed and "report" in printed
    for name in ("report.md", "report.html", "rps-exact.png", "rps-exploitability.png", "rps-learning.png",
                 "sumo-exploitability.png", "sumo-learning.png", "sumo-robustness.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    page = (out / "report.html").read_text()
    # exact curves, per comparison (rps, sumo): exploitability, learning, strength; sumo: robustness
    assert page.count("<img") == 8 and page.count('src="data:image/png;base64,') == 8  # self-contained
    markdown = (out / "report.md").read_text()
    assert "lower bound" in markdown.lower() and "noisy" in markdown
    masked = pd.read_csv(out / "sumo-pushers" / "masked.csv")  # the masked-victim control, both seats
    assert len(masked) == 3 * 1 * 2 and set(masked["seat"]) == {1, 2}  # agent 1 and agent 2
    from ipo_robust.evals.attacks import ATTACKS, Victim

    row = masked.iloc[0]
    victim = Victim.from_checkpoint(out / "sumo-pushers" / "runs" / f"{row['optimizer']}-s{row['seed']}")
    again = ATTACKS["masked-victim"]().run(victim, int(row["seat"]) - 1, 0, int(row["games"]), int(row["seed"]))
    assert again.win_rate == row["partner_win_rate"] and again.attacker_return == pytest.approx(row["partner_return"])
    results = pd.read_csv(out / "sumo-pushers" / "results.csv")
    assert set(results["bound"]) == {"lower bound"} and len(results) == 3 * 1 * 2  # one attacker seed
    assert np.isfinite(pd.read_csv(out / "sumo-pushers" / "robustness.csv")["return"]).all()


# ------------------------------------------------------------------------- game units and controls (issue 16)
RESULTS_CONTRACT = {"optimizer", "seed", "seat", "budget_multiple", "attacker_seed", "exploitability", "win_rate",
                    "tie_rate", "loss_rate", "attacker_return", "partner_return"}
CONTROLS_CONTRACT = {"control", "budget_multiple", "win_rate"}
LEADERBOARD_CONTRACT = {"optimizer", "exploitability", "exploitability_low", "exploitability_high", "strength",
                        "strength_low", "strength_high"}


def test_trained_attack_on_rps_in_game_units_with_budget_multiples_attacker_seeds_and_controls(tmp_path):
    """--attack ppo-adversary --attack-budget 1x --attacker-seeds 2 on rock-paper-scissors: the output contract,
    exploitability = attacker return - partner return per row, the per-seat lower bound is the max over the
    attackers, the budget is the victims' own training steps, and the zero-action control is beaten >= 0.9."""
    spec = compare.make_spec("rock-paper-scissors", ["ipo-vpg", "simga"], seeds=1, updates=3, games=64,
                             out=tmp_path, executor="serial", attack="ppo-adversary", attack_budget="1x",
                             attacker_seeds=2)
    facts = spec.facts("ipo-vpg")  # 3 self-play updates of num_envs x steps
    assert spec.attack_budgets == [spec.victim_steps] == [3 * facts["num_envs"] * facts["steps"]]
    assert spec.env_steps == {"ipo-vpg": spec.victim_steps, "simga": spec.victim_steps}
    result = compare.run_compare(spec, progress=False, report=False)
    results = pd.read_csv(tmp_path / "results.csv")
    assert RESULTS_CONTRACT <= set(results.columns)
    assert len(results) == 2 * 1 * 2 * 2  # optimizers x seeds x seats x attacker seeds
    assert (results["budget_multiple"] == 1.0).all() and set(results["attacker_seed"]) == {0, 1}
    np.testing.assert_allclose(results["exploitability"], results["attacker_return"] - results["partner_return"],
                               atol=1e-12)
    np.testing.assert_allclose(results[["win_rate", "tie_rate", "loss_rate"]].sum(axis=1), 1.0, atol=1e-12)
    bounds = results.groupby(["optimizer", "seed", "seat"])["exploitability"].max().groupby("optimizer").mean()
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert LEADERBOARD_CONTRACT <= set(board.columns)
    board = board.set_index("optimizer")
    for name, value in bounds.items():
        assert board.loc[name, "exploitability"] == pytest.approx(value, abs=1e-12)
    strength = pd.read_csv(tmp_path / "strength.csv")  # one row per trained pair; one seed: no interval per optimizer
    assert set(strength["name"]) == {"ipo-vpg-s0", "simga-s0"} and strength["strength"].sum() == pytest.approx(0.0)
    controls = pd.read_csv(tmp_path / "controls.csv")
    assert CONTROLS_CONTRACT <= set(controls.columns) and set(controls["control"]) == {"zero", "random"}
    zero = controls[controls["control"] == "zero"]["win_rate"].iloc[0]
    assert zero >= 0.9 and result.certified  # always rock is easy to beat
    # the uniformly random victim is rock-paper-scissors' equilibrium: nobody wins much more than a third
    assert controls[controls["control"] == "random"]["win_rate"].iloc[0] < 0.6


def test_budget_parsing_and_a_budget_curve_spec():
    assert compare.parse_budget("1x", 1000) == 1000 and compare.parse_budget("0.25x", 1000) == 250
    assert compare.parse_budget(5000, 1000) == 5000 and compare.parse_budget("5_000", 1000) == 5000
    for bad in ("x", "-1x", "ten", -3, "nanx"):
        with pytest.raises(ConfigError, match="multiple of the victim's training env steps"):
            compare.parse_budget(bad, 1000)
    spec = compare.make_spec("sumo-pushers", ["ppo"], seeds=1, updates=10, attack_budgets="0.5x,0.25x,2x",
                             out="unused")
    steps = spec.victim_steps
    assert spec.attack_budgets == [steps // 4, steps // 2, 2 * steps] and spec.attack_budget == 2 * steps
    assert spec.attacker_seeds == 3 and spec.controls == ("zero", "random")
