"""``ipo-robust render`` checks --out before building an env or rendering: one stderr line, exit 2."""

from __future__ import annotations

import pytest

import ipo_robust
from ipo_robust.cli import build_parser, main


@pytest.fixture
def no_env(monkeypatch):
    """Fail the test if render builds an env (the output check must come first)."""
    def refuse(*args, **kwargs):
        raise AssertionError("render built an env before checking --out")
    monkeypatch.setattr(ipo_robust, "make_env", refuse)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ipo-robust: error: ")
    return err[0]


def test_out_under_a_regular_file_exits_2_before_any_work(tmp_path, capsys, no_env):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a directory")
    out = blocker / "sub" / "episode.gif"
    assert main(["render", "sumo-pushers", "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert str(blocker) in line and "not a directory" in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("name", ["episode.avi", "episode"])
def test_unsupported_suffix_exits_2_before_any_work(tmp_path, capsys, no_env, name):
    assert main(["render", "sumo-pushers", "--out", str(tmp_path / name)]) == 2
    assert ".gif or .mp4" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_directory_exits_2(tmp_path, capsys, no_env):
    (tmp_path / "d.gif").mkdir()
    assert main(["render", "sumo-pushers", "--out", str(tmp_path / "d.gif")]) == 2
    assert "is a directory" in capsys.readouterr().err.strip().splitlines()[-1]


def test_help_lists_no_progress_and_small_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["render", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--no-progress" in text and "--frame-step" in text
    assert "default 320" in text and "default 240" in text
    args = build_parser().parse_args(["render", "sumo-pushers", "--out", "x.gif"])
    assert (args.width, args.height, args.no_progress, args.frame_step) == (320, 240, False, None)


class _BlankRenderer:
    """mujoco.Renderer without OpenGL: a real scene, a distinct flat frame per render()."""

    def __init__(self, model):
        import mujoco

        self.model, self.scene, self.frames = model, mujoco.MjvScene(model, maxgeom=1000), 0

    def update_scene(self, data, camera):
        pass

    def render(self):
        import numpy as np

        self.frames += 1
        return np.full((12, 16, 3), (37 * self.frames) % 256, dtype=np.uint8)


def test_long_gif_keeps_every_2nd_frame_and_shows_progress(tmp_path, capsys):
    from PIL import Image

    from ipo_robust.commands.render import run_render

    renderer = _BlankRenderer(ipo_robust.make_env("sumo-pushers").model)
    out = tmp_path / "episode.gif"
    args = build_parser().parse_args(["render", "sumo-pushers", "--out", str(out), "--steps", "60"])
    assert run_render(args, renderer=renderer) == 0
    assert renderer.frames == 60
    with Image.open(out) as gif:
        assert gif.n_frames == 30
    assert "60/60" in capsys.readouterr().err  # the progress bar, on stderr
    quiet = build_parser().parse_args(["render", "sumo-pushers", "--out", str(out), "--steps", "60", "--no-progress",
                                       "--frame-step", "1"])
    assert run_render(quiet, renderer=renderer) == 0
    assert capsys.readouterr().err == ""
    with Image.open(out) as gif:
        assert gif.n_frames == 60


# --holder counts agents 1 and 2 as configs do; --alpha is checked before any work (issue 17, items 7 and 8)
@pytest.mark.parametrize("argv, message", [
    (["--alpha", "1.5"], "--alpha must be a number in [0, 1] (the holder's superpower amount), got 1.5"),
    (["--holder", "2", "--alpha", "nan"], "--alpha must be a number in [0, 1] (the holder's superpower amount), "
                                          "got nan"),
    (["--holder", "0"], "--holder must be 1 or 2 (the agent holding the superpower, counted from 1 as in configs; "
                        "leave it out for nobody), got 0"),
    (["--holder", "3"], "--holder must be 1 or 2 (the agent holding the superpower, counted from 1 as in configs; "
                        "leave it out for nobody), got 3"),
])
def test_bad_holder_or_alpha_exits_2_before_any_work(tmp_path, capsys, no_env, argv, message):
    assert main(["render", "sumo-pushers", "--out", str(tmp_path / "x.gif"), *argv]) == 2
    assert _one_error_line(capsys) == f"ipo-robust: error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_holder_that_cannot_push_is_named_as_configs_count_agents(tmp_path, capsys):
    assert main(["render", "rarl-hopper", "--holder", "1", "--out", str(tmp_path / "x.gif")]) == 2
    assert _one_error_line(capsys) == ("ipo-robust: error: --holder 1 in 'rarl-hopper': agent 1 cannot hold the "
                                       "superpower: agent 2 has no bodies it could push (agent 2 can hold it)")
    assert list(tmp_path.iterdir()) == []


def test_holder_2_is_the_env_agent_1(tmp_path, capsys, monkeypatch):
    built = {}

    def make_env(name, **options):
        built.update(options)
        raise AssertionError("stop after the env's options are known")

    monkeypatch.setattr(ipo_robust, "make_env", make_env)
    with pytest.raises(AssertionError):
        main(["render", "sumo-pushers", "--holder", "2", "--alpha", "0.5", "--out", str(tmp_path / "x.gif")])
    assert built["holder"] == 1 and built["alpha"] == 0.5  # the Python API counts agents from 0


def test_holder_a_checkpoint_env_does_not_carry_is_one_line(tmp_path, capsys):
    from ipo_robust.training.loop import run_training
    from tests.test_train import tiny

    run = tmp_path / "run"
    run_training(tiny(kind="self-play", iterations=1), run)  # nobody holds the superpower
    assert main(["render", "sumo-pushers", "--checkpoint", str(run), "--holder", "2",
                 "--out", str(tmp_path / "x.gif")]) == 2
    assert _one_error_line(capsys) == (f"ipo-robust: error: --holder 2: agent 2 cannot hold the superpower in the env "
                                       f"of --checkpoint {str(run)!r}: nobody held the superpower in its training")
    assert not (tmp_path / "x.gif").exists()


def test_help_says_holder_counts_from_1(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["render", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "agent holding the superpower: 1 or 2" in text
