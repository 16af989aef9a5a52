"""Smoke test of benchmarks/bench_soccer.py (the Markov soccer head-to-head) with tiny settings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.utils import parameters_to_vector

pytest.importorskip("pyspiel")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_soccer.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_soccer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_soccer", module)  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(bench):
    args = bench.parse_args(["--iterations", "2", "--num-envs", "8", "--horizon", "100", "--games", "20",
                             "--hidden", "16", "--lr", "0.05", "--log-every", "0"])
    return bench.run(args)


def test_counts_add_up_and_both_seats_played(result):
    rows = result["rows"]
    head_to_head = [r for r in rows if r["matchup"] == "ipo-vpg vs simga"]
    assert [r["configuration"] for r in head_to_head] == ["IPO as A (seat 1)", "IPO as B (seat 2)", "overall"]
    as_a, as_b, overall = head_to_head
    assert as_a["games"] == 10 and as_b["games"] == 10 and overall["games"] == 20
    for row in rows:
        assert row["win"] + row["loss"] + row["draw"] == row["games"]
        assert row["win_low"] <= row["win_rate"] <= row["win_high"]
        assert abs(row["win_rate"] + row["loss_rate"] + row["draw_rate"] - 1.0) < 1e-12
    for key in ("win", "loss", "draw"):
        assert overall[key] == as_a[key] + as_b[key]
    assert {r["matchup"] for r in rows} == {"ipo-vpg vs simga", "ipo-vpg vs uniform random",
                                             "simga vs uniform random"}


def test_same_samples_for_both_optimizers_and_weights_moved(result):
    ipo, simga = result["ipo"], result["simga"]
    assert ipo["samples"] == simga["samples"] == 2 * 8 * 99
    for trained in (ipo, simga):
        for agent, theta0 in zip(trained["agents"], trained["initial"], strict=True):
            assert not torch.equal(parameters_to_vector(agent.parameters()).detach(), theta0)
    # same seeds: both pairs started from the same weights
    for a, b in zip(ipo["initial"], simga["initial"], strict=True):
        assert torch.equal(a, b)


def test_wilson_interval(bench):
    low, high = bench.wilson(82, 100)
    assert 0.73 < low < 0.74 and 0.88 < high < 0.89  # Wilson 95% for 0.82 at n = 100
    assert bench.wilson(0, 10)[0] == 0.0 and bench.wilson(10, 10)[1] == 1.0


def test_main_prints_table_and_writes_csv(bench, tmp_path, capsys):
    out = tmp_path / "soccer.csv"
    bench.main(["--iterations", "1", "--num-envs", "2", "--horizon", "10", "--games", "4", "--hidden", "8",
                "--log-every", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| ipo-vpg vs simga | overall | 4 |" in printed and "wall time" in printed
    assert out.read_text().splitlines()[0].startswith("matchup,configuration,games,win,loss,draw")
