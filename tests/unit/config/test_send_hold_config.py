"""The neighbour key `send_hold_time` (RFC 9687): default per the RFC, 0 turns it off."""

from __future__ import annotations

import pytest

from bgpd.config.errors import ConfigError
from bgpd.config.toml import parse_config

ROUTER = '[router]\nasn = 65010\nrouter_id = "10.0.0.1"\n'
NEIGHBOR = '[[neighbor]]\naddress = "10.0.0.2"\nasn = 65001\nimport = "all"\nexport = "all"\n'


def test_default_is_left_to_the_session() -> None:
    # None: max(480, 2 x the negotiated hold time), computed once the hold time is negotiated.
    assert parse_config(ROUTER + NEIGHBOR, "t.toml").neighbors[0].send_hold_time is None


@pytest.mark.parametrize("value", [0, 30, 86400])
def test_set(value: int) -> None:
    c = parse_config(ROUTER + NEIGHBOR + f"send_hold_time = {value}\n", "t.toml")
    assert c.neighbors[0].send_hold_time == value


def test_from_a_template() -> None:
    text = ROUTER + "[template.t]\nsend_hold_time = 60\n" + NEIGHBOR + 'template = "t"\n'
    assert parse_config(text, "t.toml").neighbors[0].send_hold_time == 60


@pytest.mark.parametrize(
    "extra", ["send_hold_time = -1\n", 'send_hold_time = "8m"\n', "send_hold_time = 86401\n"]
)
def test_bad_value_names_file_and_key(extra: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(ROUTER + NEIGHBOR + extra, "t.toml")
    assert "neighbor[0].send_hold_time" in str(e.value) and "t.toml" in str(e.value)
