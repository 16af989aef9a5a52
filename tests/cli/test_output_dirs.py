"""Output directories are checked before any work (issue 17, item 3): ``train``, ``eval``, ``compare`` and
``demo`` refuse an output directory that cannot be created or written with one stderr line and exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipo_robust.cli import main
from ipo_robust.commands.common import check_output_dir
from ipo_robust.errors import ConfigError

TRAIN_CONFIG = '''[env]
name = "rock-paper-scissors"
num_envs = 2
steps = 1

[agents]
hidden = [4]

[optimizer]
name = "simga"

[schedule]
iterations = 1

[run]
out = "{out}"
'''

SUITE = '''[suite]
name = "s"
executor = "serial"
out = "{out}"

[[victims]]
name = "rps"
train = "victim.toml"

[[attacks]]
name = "random"
budgets = [1]
'''


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts training or running cells (the output check must come first)."""
    import ipo_robust.evals.compare
    import ipo_robust.evals.suite
    import ipo_robust.train

    def refuse(*args, **kwargs):
        raise AssertionError("the command started its work before checking its output directory")

    monkeypatch.setattr(ipo_robust.train, "run_training", refuse)
    monkeypatch.setattr(ipo_robust.evals.suite, "run_suite", refuse)
    monkeypatch.setattr(ipo_robust.evals.suite, "pending_cells", refuse)
    monkeypatch.setattr(ipo_robust.evals.compare, "make_spec", refuse)


@pytest.fixture
def blocker(tmp_path) -> Path:
    """A regular file where a directory would go."""
    path = tmp_path / "notes.txt"
    path.write_text("a file, not a directory")
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ipo-robust: error: ") and "Traceback" not in err[0]
    return err[0].removeprefix("ipo-robust: error: ")


def train_config(tmp_path: Path, out: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(TRAIN_CONFIG.format(out=out.as_posix()))
    return path


def suite_spec(tmp_path: Path, out: Path) -> Path:
    (tmp_path / "victim.toml").write_text(TRAIN_CONFIG.format(out="unused"))
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.format(out=out.as_posix()))
    return path


def command_line(command: str, tmp_path: Path, out: Path) -> tuple[list[str], str]:
    """``command``'s argv writing into ``out``, and the name its message gives the option."""
    if command == "train --out":
        return ["train", str(train_config(tmp_path, tmp_path / "runs" / "x")), "--out", str(out)], "--out"
    if command == "train run.out":
        return ["train", str(train_config(tmp_path, out))], "run.out"
    if command == "train --print-config":
        return ["train", str(train_config(tmp_path, out)), "--print-config"], "run.out"
    if command.startswith("eval"):
        return ["eval", str(suite_spec(tmp_path, out)), *command.split()[1:]], "suite.out"
    if command == "compare":
        return ["compare", "--env", "rock-paper-scissors", "--out", str(out)], "--out"
    assert command == "demo"
    return ["demo", "--quick", "--out", str(out)], "--out"


COMMANDS = ["train --out", "train run.out", "train --print-config", "eval", "eval --dry-run", "compare", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_out_under_a_regular_file_exits_2_before_any_work(tmp_path, capsys, no_work, blocker, command):
    out = blocker / "sub" / "run"
    argv, option = command_line(command, tmp_path, out)
    assert main(argv) == 2
    assert one_error_line(capsys) == (f"{option} {str(out)!r} cannot be created: {str(blocker)!r} is a file, "
                                      "not a directory")
    assert blocker.read_text() == "a file, not a directory"


@pytest.mark.parametrize("command", COMMANDS)
def test_out_that_is_a_regular_file_exits_2_before_any_work(tmp_path, capsys, no_work, blocker, command):
    argv, option = command_line(command, tmp_path, blocker)
    assert main(argv) == 2
    assert one_error_line(capsys) == (f"{option} {str(blocker)!r} is a file, not a directory: remove it or choose "
                                      f"another {option}")
    assert blocker.read_text() == "a file, not a directory"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write anywhere: os.access grants every permission")
@pytest.mark.parametrize("command", COMMANDS)
def test_out_without_write_permission_exits_2_before_any_work(tmp_path, capsys, no_work, command):
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "run"
    argv, option = command_line(command, tmp_path, out)
    locked.chmod(0o500)
    try:
        assert main(argv) == 2
        assert one_error_line(capsys) == (f"{option} {str(out)!r} cannot be created: no write permission in "
                                          f"{str(locked)!r}")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_check_output_dir_accepts_what_can_be_written_and_names_relative_paths_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_dir("new/deeper/run") == Path("new/deeper/run")  # nothing is created
    assert not Path("new").exists()
    Path("existing").mkdir()
    assert check_output_dir("existing", "suite.out") == Path("existing")
    Path("notes.txt").write_text("")
    with pytest.raises(ConfigError) as error:
        check_output_dir("notes.txt/run")
    assert str(error.value) == "--out 'notes.txt/run' cannot be created: 'notes.txt' is a file, not a directory"


@pytest.mark.parametrize("command", COMMANDS)
def test_no_write_permission_is_reported_as_such_even_as_root(tmp_path, capsys, no_work, monkeypatch, command):
    """The refusal of the test above, with the permission check told that ``locked`` is read-only (as root,
    os.access grants everything, so the test above is skipped there)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "run"
    argv, option = command_line(command, tmp_path, out)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and access(path, mode, **kw))
    assert main(argv) == 2
    assert one_error_line(capsys) == f"{option} {str(out)!r} cannot be created: no write permission in {str(locked)!r}"
    assert list(locked.iterdir()) == []
