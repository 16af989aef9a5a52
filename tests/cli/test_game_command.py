"""`ipo-robust game`: exact comparison of optimizers, its table, CSV output and its errors."""

import io

import pandas as pd
import pytest

from ipo_robust.cli import main
from ipo_robust.envs.games import MatrixGame
from ipo_robust.evals.exact_comparison import compare_on_matrix_game
from ipo_robust.evals.exploitability import exploitability


def test_game_table_shows_cgd_beating_simga(capsys):
    assert main(["game", "--game", "rps", "--optimizers", "simga,cgd", "--iters", "1500"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "rock-paper-scissors: 1500 iterations, lr 0.5, exact gradients"
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert float(rows["cgd"][1]) < 1e-3 < 0.1 < float(rows["simga"][1])


def test_csv_to_stdout_and_file(capsys, tmp_path):
    assert main(["game", "--game", "mp", "--optimizers", "simga,lookahead", "--iters", "20", "--csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(table.optimizer) == ["simga", "lookahead"]
    path, curves = tmp_path / "out.csv", tmp_path / "curves.csv"
    assert main(["game", "--game", "mp", "--optimizers", "cgd", "--iters", "20", "--csv", str(path),
                 "--curves", str(curves)]) == 0
    assert list(pd.read_csv(path).optimizer) == ["cgd"]
    assert len(pd.read_csv(curves)) == 21  # iteration 0 (the start) and 20 updates


def test_table_values_are_the_exact_exploitability():
    game = MatrixGame.named("matching-pennies")
    summary, curves = compare_on_matrix_game(game, ["cgd"], iterations=50, lr=0.5)
    last = curves.iloc[-1]
    assert last["iteration"] == 50
    assert summary.loc[0, "exploitability"] == pytest.approx(last["eval/exploitability"], abs=0)
    p1 = [float(x) for x in summary.loc[0, "p1"].strip("[]").split(",")]
    p2 = [float(x) for x in summary.loc[0, "p2"].strip("[]").split(",")]
    assert exploitability(game, p1, p2) == pytest.approx(summary.loc[0, "exploitability"], abs=2e-3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["game", "--game", "rsp"], "unknown game 'rsp'"),
        (["game", "--optimizers", "cgdd"], "unknown optimizer 'cgdd'; did you mean 'cgd'?"),
        (["game", "--iters", "0"], "--iters must be >= 1"),
        (["game", "--lr", "-1"], "--lr must be > 0"),
        (["game", "--set", "cgd.depth=-1"], "optimizer 'cgd': depth must be an integer >= 0"),
        (["game", "--set", "depth=1"], "--set expects OWNER.KEY=VALUE"),
        (["game", "--set", "ncgd.kl=0.1"], "--set names 'ncgd', which is not in --optimizers"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_general_sum_game_reports_nash_conv_only(capsys):
    assert main(["game", "--game", "prisoners-dilemma", "--optimizers", "simga", "--iters", "5", "--csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table.exploitability.isna().all() and (table.nash_conv >= 0).all()
