"""The evals reach plugins only through the host: disabling the ``ppo`` optimizer plugin disables the
``ppo-adversary`` attack that trains with it, with an error that says so."""

import pytest

from ipo_robust import host
from ipo_robust.errors import ConfigError
from ipo_robust.evals.attacks import ATTACKS


@pytest.fixture
def without_ppo():
    host.reload(disabled=["ppo"])
    yield
    host.reload()


def test_ppo_adversary_needs_the_ppo_plugin(without_ppo):
    with pytest.raises(ConfigError, match=r"attack 'ppo-adversary' trains its attacker with the optimizer plugin "
                                          r"'ppo', which is not available"):
        ATTACKS["ppo-adversary"]()
    ATTACKS["random"]()  # attacks that need no plugin are unaffected


def test_ppo_adversary_resolves_ppo_through_the_host():
    attack = ATTACKS["ppo-adversary"](num_envs=2)
    assert attack.config.num_envs == 2
