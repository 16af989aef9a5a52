"""The plugin host: discovery through entry points, isolation of broken plugins, lookup errors."""

import ast
import inspect

import pytest

from ipo_robust import hookspecs, host
from ipo_robust.errors import ConfigError, DisabledPluginError, UnknownNameError

GOOD = """
from ipo_robust.hookspecs import hookimpl

class Opt:
    def __init__(self, agents=None, **kw):
        self.kw = kw

@hookimpl
def register_optimizers(register):
    register("{name}", Opt)
"""


def test_every_hookspec_is_documented():
    specs = [f for name, f in vars(hookspecs).items() if name.startswith("register_") and callable(f)]
    assert {f.__name__ for f in specs} == set(hookspecs.HOOK_KINDS)
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        assert ":param register:" in doc and ":return:" in doc and "Called" in doc, spec.__name__


def test_builtin_plugins_load_and_resolve():
    h = host.Host()
    builtin = [p for p in h.plugins if p.distribution == "ipo-robust"]
    assert builtin and all(p.status == "ok" for p in builtin), [p.as_dict() for p in builtin]
    assert {"serial", "local"} <= set(h.registered("executor"))
    executor = h.resolve("executor", "serial")()
    assert list(executor.map(lambda x: x * x, [1, 2, 3])) == [1, 4, 9]


def test_third_party_plugin_is_discovered_and_resolvable(site):
    site("fake-good", "2.5", {"good": "fake_plugin_good"},
         {"fake_plugin_good": GOOD.format(name="x-opt")})
    h = host.Host()
    record = next(p for p in h.plugins if p.name == "good")
    assert (record.status, record.distribution, record.version) == ("ok", "fake-good", "2.5")
    assert record.registers == [("optimizer", "x-opt")]
    factory = h.resolve("optimizer", "x-opt")
    assert factory.__module__ == "fake_plugin_good"
    assert factory(None, lr=0.1).kw == {"lr": 0.1}


@pytest.mark.parametrize(
    "source, reason",
    [
        ("raise ImportError('missing dependency zzz')", "import failed: ImportError: missing dependency zzz"),
        ("from ipo_robust.hookspecs import hookimpl\n@hookimpl\ndef register_optimisers(register):\n    pass\n",
         "unknown hook 'register_optimisers' (did you mean 'register_optimizers'?)"),
        ("from ipo_robust.hookspecs import hookimpl\n@hookimpl\ndef register_envs(register):\n"
         "    register('half-env', object)\n    raise RuntimeError('boom')\n",
         "register_envs raised RuntimeError: boom"),
        ("from ipo_robust.hookspecs import hookimpl\n@hookimpl\ndef register_envs(register):\n"
         "    register('Bad Name', object)\n", "not kebab-case"),
        ("from ipo_robust.hookspecs import hookimpl\n@hookimpl\ndef register_executors(register):\n"
         "    register('serial', object)\n", "executor 'serial' is already registered by plugin 'executors'"),
        ("from ipo_robust.hookspecs import hookimpl\n@hookimpl\ndef register_envs(wrong_argument):\n    pass\n",
         "invalid plugin"),
    ],
    ids=["import-error", "misspelled-hook", "raises-in-hook", "bad-name", "duplicate-name", "bad-signature"],
)
def test_broken_plugin_is_reported_and_skipped(site, source, reason):
    site("fake-broken", "0.1", {"broken": "fake_plugin_broken"}, {"fake_plugin_broken": source})
    site("fake-good", "1.0", {"good": "fake_plugin_good2"}, {"fake_plugin_good2": GOOD.format(name="y-opt")})
    h = host.Host()
    broken = next(p for p in h.plugins if p.name == "broken")
    assert broken.status == "failed"
    assert broken.distribution == "fake-broken"
    assert reason in broken.reason
    assert broken.registers == []
    # nothing of the broken plugin is kept, everything else loads
    assert "half-env" not in h.registered("env")
    assert h.resolve("optimizer", "y-opt")
    assert h.registered("executor")["serial"].__module__ == "ipo_robust.plugins.executors"


def test_disable_by_entry_point_name(site, monkeypatch):
    site("fake-good", "1.0", {"good": "fake_plugin_good3"}, {"fake_plugin_good3": GOOD.format(name="z-opt")})
    assert "z-opt" in host.Host().registered("optimizer")
    h = host.Host(disabled=["good"])
    assert "z-opt" not in h.registered("optimizer")
    assert next(p for p in h.plugins if p.name == "good").status == "disabled"
    monkeypatch.setenv(host.DISABLE_ENV_VAR, "good, executors")
    h = host.Host()
    assert "z-opt" not in h.registered("optimizer") and "serial" not in h.registered("executor")


def test_unknown_names_and_kinds_are_clear():
    h = host.Host()
    with pytest.raises(UnknownNameError) as error:
        h.resolve("executor", "lokal")
    assert str(error.value) == "unknown executor 'lokal'; did you mean 'local'? Known: local, ray, serial."
    with pytest.raises(UnknownNameError, match="unknown plugin kind 'optimiser'; did you mean 'optimizer'"):
        h.registered("optimiser")


def test_module_level_api_uses_a_reloadable_host(site):
    site("fake-good", "1.0", {"good": "fake_plugin_good4"}, {"fake_plugin_good4": GOOD.format(name="w-opt")})
    host.reload()
    try:
        assert "w-opt" in host.registered("optimizer")
        assert host.resolve("optimizer", "w-opt").__name__ == "Opt"
    finally:
        host.reload()


def test_object_plugins_passed_in_directly():
    class Plugin:
        @hookspecs.hookimpl
        def register_attacks(self, register):
            register("noop-attack", dict)

    h = host.Host(plugins=[("inline", Plugin())])
    assert h.resolve("attack", "noop-attack") is dict


def test_hookspecs_module_holds_specs_only():
    tree = ast.parse(inspect.getsource(hookspecs))
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert set(functions) == set(hookspecs.HOOK_KINDS)


def test_name_of_a_disabled_plugin_says_it_is_disabled_and_by_what(site, monkeypatch):
    site("fake-good", "1.0", {"good": "fake_plugin_good5"}, {"fake_plugin_good5": GOOD.format(name="v-opt")})
    h = host.Host(disabled=["good", "ppo"])
    with pytest.raises(DisabledPluginError) as error:
        h.resolve("optimizer", "ppo")
    assert str(error.value) == "optimizer 'ppo' is provided by plugin 'ppo', which is disabled (--disable-plugin ppo)"
    assert isinstance(error.value, UnknownNameError)  # callers that add context to unknown names still catch it
    with pytest.raises(DisabledPluginError, match=r"plugin 'good', which is disabled \(--disable-plugin good\)"):
        h.resolve("optimizer", "v-opt")
    assert next(p for p in h.plugins if p.name == "good").reason == "disabled by --disable-plugin good"
    with pytest.raises(UnknownNameError, match="^unknown optimizer 'ppp'. Known: ") as error:  # still unknown
        h.resolve("optimizer", "ppp")
    assert "ppo" not in error.value.known
    monkeypatch.setenv(host.DISABLE_ENV_VAR, "ppo")
    with pytest.raises(DisabledPluginError, match=rf"disabled \({host.DISABLE_ENV_VAR} entry 'ppo'\)$"):
        host.Host().resolve("optimizer", "ppo")


def test_disabled_plugin_that_fails_to_load_leaves_the_name_unknown(site):
    site("fake-broken", "0.1", {"broken": "fake_plugin_broken6"}, {"fake_plugin_broken6": "raise ImportError('x')"})
    with pytest.raises(UnknownNameError, match="^unknown optimizer 'x-opt'"):
        host.Host(disabled=["broken"]).resolve("optimizer", "x-opt")


def test_disabling_a_name_no_plugin_has_is_refused(monkeypatch):
    with pytest.raises(ConfigError) as error:
        host.Host(disabled=["ppoo"])
    message = str(error.value)
    assert message.startswith("--disable-plugin ppoo matches no installed plugin; did you mean 'ppo'? Known: ")
    assert "executors" in message and "\n" not in message
    monkeypatch.setenv(host.DISABLE_ENV_VAR, "executors,nope")
    with pytest.raises(ConfigError, match=rf"^{host.DISABLE_ENV_VAR} entry 'nope' matches no installed plugin\. Known"):
        host.Host()
