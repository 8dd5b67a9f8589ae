"""Graceful restart keys: `[router] graceful_restart` and the neighbour's `stale_time`."""

from __future__ import annotations

import pytest

from bgpd.config.errors import ConfigError
from bgpd.config.toml import parse_config

ROUTER = '[router]\nasn = 65010\nrouter_id = "10.0.0.1"\n'
NEIGHBOR = '[[neighbor]]\naddress = "10.0.0.2"\nasn = 65001\nimport = "all"\nexport = "all"\n'


def test_defaults_helper_on_restarting_speaker_off() -> None:
    c = parse_config(ROUTER + NEIGHBOR, "t.toml")
    assert c.router.graceful_restart is False
    n = c.neighbors[0]
    assert (n.graceful_restart, n.restart_time, n.stale_time) == (True, 120, 360)


def test_set() -> None:
    text = ROUTER + "graceful_restart = true\n" + NEIGHBOR + "stale_time = 30\nrestart_time = 60\n"
    c = parse_config(text, "t.toml")
    assert c.router.graceful_restart is True
    assert (c.neighbors[0].restart_time, c.neighbors[0].stale_time) == (60, 30)


@pytest.mark.parametrize(
    ("extra", "key"), [("stale_time = 0\n", "stale_time"), ('stale_time = "x"\n', "stale_time")]
)
def test_bad_stale_time_names_the_key(extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(ROUTER + NEIGHBOR + extra, "t.toml")
    assert key in str(e.value) and "t.toml" in str(e.value)


def test_bad_router_flag_names_the_key() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(ROUTER + "graceful_restart = 1\n" + NEIGHBOR, "t.toml")
    assert "router.graceful_restart" in str(e.value)
