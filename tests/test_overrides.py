"""The one ``--set KEY=VALUE`` parser: nested keys, the value rule (TOML literals, then JSON, then the
string; ``none`` is the string, ``null`` is None), lists of tables, and one-line errors naming the item."""

import math

import pytest

from ipo_robust import cli, overrides
from ipo_robust.commands.game import parse_optimizer_overrides
from ipo_robust.errors import ConfigError, UnknownNameError
from ipo_robust.evals import compare, suite


def test_nested_keys_become_nested_dicts_and_a_later_item_wins():
    parsed = overrides.parse_overrides(["cgd.depth=2", "cgd.rtol=1e-8", "simga.lr1=0.1", "a.b.c=x", "cgd.depth=3"])
    assert parsed == {"cgd": {"depth": 3, "rtol": 1e-8}, "simga": {"lr1": 0.1}, "a": {"b": {"c": "x"}}}


@pytest.mark.parametrize("raw,value", [
    ("3", 3), ("-1", -1), ("1_000", 1000), ("3e-4", 3e-4), ("1.5", 1.5),
    ("true", True), ("false", False),
    ('"a b"', "a b"), ("'a b'", "a b"),
    ("[64, 64]", [64, 64]), ("[]", []), ('["x", 1]', ["x", 1]),
    ("{ lr = 0.1 }", {"lr": 0.1}), ('{"lr": 0.1}', {"lr": 0.1}),  # TOML inline table, JSON object
    ("null", None),
    ("none", "none"), ("None", "None"), ("ppo-adversary", "ppo-adversary"), ("runs/x", "runs/x"),
    ("2024-01-01", "2024-01-01"),  # TOML dates stay text
    ("1\nx = 2", "1\nx = 2"),  # only one literal, never more TOML
    ("", ""), ("a=b", "a=b"), ("True", "True"),
])
def test_one_rule_for_values(raw, value):
    parsed = overrides.parse_value(raw)
    assert parsed == value and type(parsed) is type(value)


def test_non_finite_floats_are_toml_literals():
    assert math.isinf(overrides.parse_value("inf")) and math.isnan(overrides.parse_value("nan"))


def test_every_set_parser_uses_the_one_rule():
    item = "cgd.depth=null"
    assert cli.parse_value is overrides.parse_value
    assert cli.parse_overrides([item]) == parse_optimizer_overrides([item]) == {"cgd": {"depth": None}}
    raw = {"grid": {}}
    suite.apply_override(raw, "grid.games=none")
    assert raw == {"grid": {"games": "none"}}
    per_optimizer, shared = compare.split_overrides(["ppo.critic=none", "ppo.hidden=[8]", "env.num_envs=4"], ["ppo"])
    assert per_optimizer == {"ppo": {"critic": "none", "hidden": [8]}} and shared == ["env.num_envs=4"]


def test_apply_overrides_copies_and_enters_lists_by_index_label_or_name():
    tree = {"attacks": [{"name": "random"}, {"name": "ppo-adversary", "label": "ppo", "options": {}}], "grid": {}}
    out = overrides.apply_overrides(tree, ["attacks.ppo.options.lr=0.1", "attacks.0.options={ num_envs = 2 }",
                                           "attacks.random.label=r", "grid.seats=[2]"])
    assert out["attacks"][1]["options"] == {"lr": 0.1} and out["attacks"][0] == {"name": "random",
                                                                                    "options": {"num_envs": 2},
                                                                                    "label": "r"}
    assert out["grid"] == {"seats": [2]} and tree["grid"] == {} and tree["attacks"][1]["options"] == {}


@pytest.mark.parametrize("items,kwargs,message", [
    (["depth"], {}, "--set expects KEY=VALUE with a dotted key (e.g. section.key=1), got 'depth'"),
    (["a..b=1"], {}, "got 'a..b=1'"),
    (["=1"], {}, "got '=1'"),
    (["depth=1"], {"usage": "OWNER.KEY=VALUE", "min_depth": 2}, "--set expects OWNER.KEY=VALUE, got 'depth=1'"),
    (["a.b.c=1"], {"usage": "OWNER.KEY=VALUE", "max_depth": 2}, "got 'a.b.c=1'"),
    (["a=1", "a.b=2"], {}, "--set 'a.b=2': a is a value, not a table"),
])
def test_bad_items_raise_one_line_naming_the_item(items, kwargs, message):
    with pytest.raises(ConfigError) as error:
        overrides.parse_overrides(items, **kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_list_segments_name_the_key():
    tree = {"attacks": [{"name": "zero"}, {"name": "zero"}]}
    with pytest.raises(ConfigError, match=r"--set attacks.5: there are only 2 entries"):
        overrides.apply_overrides(tree, ["attacks.5.label=x"])
    with pytest.raises(ConfigError, match=r"--set attacks.zero: 'zero' names 2 entries; use an index"):
        overrides.apply_overrides(tree, ["attacks.zero.label=x"])
    with pytest.raises(UnknownNameError, match=r"unknown entry of attacks 'ranom'"):
        overrides.apply_overrides({"attacks": [{"name": "random"}]}, ["attacks.ranom.label=x"])
