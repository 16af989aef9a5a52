"""The command line: listing plugins, one-line usage errors, third-party plugins installed for real."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from ipo_robust.cli import build_parser, main
from tests.conftest import REPO, write_distribution


def run_cli(*args, env_extra=None, pythonpath=None):
    env = dict(os.environ)
    env.pop(  # the host must see exactly what is installed plus what the test adds
        "IPO_ROBUST_DISABLE_PLUGINS", None)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "ipo_robust", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_plugins_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERS", "STATUS"]
    assert "executor:local" in out and "ipo-robust" in out


def test_plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    executors = next(r for r in records if r["plugin"] == "executors")
    assert executors["status"] == "ok" and "executor:serial" in executors["registers"]


@pytest.mark.parametrize("argv", [["nonsense"], ["plugins", "--bogus"], ["--bogus"], []])
def test_usage_errors_are_one_line_exit_2(argv):
    result = run_cli(*argv)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("ipo-robust") and "error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help_on_every_subcommand():
    import ipo_robust

    assert run_cli("--version").stdout.strip() == f"ipo-robust {ipo_robust.__version__}"
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    for name in subcommands:
        result = run_cli(name, "--help")
        assert result.returncode == 0 and result.stdout.startswith("usage: ipo-robust " + name), name


def test_broken_plugin_listed_as_failed_exit_0(tmp_path):
    site = write_distribution(tmp_path / "site", "fake-broken", "0.3", {"broken": "fake_broken_cli"},
                              {"fake_broken_cli": "import does_not_exist_anywhere\n"})
    result = run_cli("plugins", "--json", pythonpath=site)
    assert result.returncode == 0, result.stderr
    broken = next(r for r in json.loads(result.stdout) if r["plugin"] == "broken")
    assert broken["status"] == "failed" and broken["distribution"] == "fake-broken"
    assert "No module named 'does_not_exist_anywhere'" in broken["reason"]
    table = run_cli("plugins", pythonpath=site)
    assert table.returncode == 0 and "failed: import failed: ModuleNotFoundError" in table.stdout


def test_disable_plugin_option_and_env_var(tmp_path):
    listed = json.loads(run_cli("--disable-plugin", "executors", "plugins", "--json").stdout)
    assert next(r for r in listed if r["plugin"] == "executors")["status"] == "disabled"
    listed = json.loads(run_cli("plugins", "--json", env_extra={"IPO_ROBUST_DISABLE_PLUGINS": "executors"}).stdout)
    assert next(r for r in listed if r["plugin"] == "executors")["status"] == "disabled"


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--disable-plugin", "ppo", "game", "--optimizers", "ppo"], {},
         "ipo-robust: error: optimizer 'ppo' is provided by plugin 'ppo', which is disabled (--disable-plugin ppo)"),
        (["game", "--optimizers", "ppo"], {"IPO_ROBUST_DISABLE_PLUGINS": "ppo"},
         "ipo-robust: error: optimizer 'ppo' is provided by plugin 'ppo', which is disabled "
         "(IPO_ROBUST_DISABLE_PLUGINS entry 'ppo')"),
        (["--disable-plugin", "ppoo", "plugins"], {},
         "ipo-robust: error: --disable-plugin ppoo matches no installed plugin; did you mean 'ppo'? Known: "),
        (["plugins"], {"IPO_ROBUST_DISABLE_PLUGINS": "ppoo"},
         "ipo-robust: error: IPO_ROBUST_DISABLE_PLUGINS entry 'ppoo' matches no installed plugin; "
         "did you mean 'ppo'? Known: "),
    ],
    ids=["flag-disabled-name", "env-disabled-name", "flag-no-such-plugin", "env-no-such-plugin"],
)
def test_disabled_plugins_are_named_and_bad_disable_names_refused(args, env, message):
    result = run_cli(*args, env_extra=env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert "unknown" not in result.stderr


def test_installed_example_plugin_is_discovered_listed_and_resolvable(tmp_path):
    """pip-install the example third-party package (and a broken one) and use it through the host."""
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO / "examples" / "ipo-robust-example-plugin")],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    write_distribution(target, "fake-broken", "0.3", {"broken": "fake_broken_cli2"},
                       {"fake_broken_cli2": "raise RuntimeError('this plugin is broken on purpose')\n"})
    result = run_cli("plugins", "--json", pythonpath=target)
    assert result.returncode == 0, result.stderr
    records = {r["plugin"]: r for r in json.loads(result.stdout)}
    example = records["example"]
    assert example["distribution"] == "ipo-robust-example-plugin" and example["status"] == "ok"
    assert set(example["registers"]) == {"optimizer:x-opt", "perturbation:observation-bias"}
    assert records["broken"]["status"] == "failed"
    assert "this plugin is broken on purpose" in records["broken"]["reason"]
    code = ("from ipo_robust import host; f = host.resolve('optimizer', 'x-opt'); "
            "print(f.__module__, f.__name__)")
    resolved = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(target)})
    assert resolved.stdout.split() == ["ipo_robust_example", "OptimisticGradient"], resolved.stderr


def test_wheel_installs_nothing_at_top_level_but_ipo_robust(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("ipo_robust-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"ipo_robust"}, top
    for package in ("plugins", "envs", "evals", "optim"):
        assert f"ipo_robust/{package}/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "[ipo_robust]" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.parametrize("columns", [80, 120])
def test_plugins_table_fits_the_terminal_width(tmp_path, columns):
    site = write_distribution(tmp_path / "site", "fake-broken", "0.3", {"broken": "fake_broken_cli"},
                              {"fake_broken_cli": "import does_not_exist_anywhere\n"})
    env = {"COLUMNS": str(columns)}
    table = run_cli("plugins", env_extra=env, pythonpath=site)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERS", "STATUS"]
    assert all(len(line) <= columns for line in lines), max(lines, key=len)
    shown = {word.rstrip(",") for line in lines for word in line.split()}
    records = json.loads(run_cli("plugins", "--json", env_extra=env, pythonpath=site).stdout)
    registered = [item for record in records for item in record["registers"]]
    assert registered and all(item in shown for item in registered), set(registered) - shown
    assert "failed: import failed: ModuleNotFoundError" in " ".join(line.strip() for line in lines)


@pytest.mark.parametrize("argv, backend", [
    (["plugins"], "disable"),  # every command but render only simulates: no OpenGL, so no libEGL needed
    (["render", "sumo-pushers", "--out", "episode.avi"], "egl"),  # refused (suffix) after the backend is chosen
])
def test_opengl_backend_default_is_egl_for_render_only(monkeypatch, capsys, argv, backend):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    main(argv)
    assert os.environ["MUJOCO_GL"] == backend


def test_opengl_backend_set_by_the_user_is_kept(monkeypatch, capsys):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert main(["plugins"]) == 0
    assert os.environ["MUJOCO_GL"] == "osmesa"
