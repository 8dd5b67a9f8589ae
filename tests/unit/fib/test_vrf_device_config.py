"""The `[vrf.NAME] device` key (an l3mdev VRF device the VRF's sessions bind to)."""

from __future__ import annotations

import pytest

from bgpd.config.errors import ConfigError
from bgpd.config.toml import parse_config

ROUTER = '[router]\nasn = 65010\nrouter_id = "10.0.0.1"\n'


def issues(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "bgpd.toml")
    return [(i.file, i.key, i.reason) for i in e.value.issues]


def test_device_is_optional_and_kept() -> None:
    cfg = parse_config(ROUTER + '[vrf.red]\ntable = 500\ndevice = "red"\n[vrf.blue]\ntable = 501\n', "x")
    assert cfg.vrfs["red"].device == "red"
    assert cfg.vrfs["blue"].device is None  # table-only mode is the default
    assert cfg.vrfs["main"].device is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('""', "must not be empty"),
        ('"a-name-of-16-chr"', "not a valid interface name"),
        ('"has space"', "not a valid interface name"),
        ("7", "expected a string"),
    ],
)
def test_bad_device_names_file_key_and_reason(value: str, reason: str) -> None:
    [(file, key, why)] = issues(ROUTER + f"[vrf.red]\ntable = 500\ndevice = {value}\n")
    assert (file, key) == ("bgpd.toml", "vrf.red.device")
    assert reason in why


def test_fifteen_characters_is_the_limit() -> None:
    cfg = parse_config(ROUTER + '[vrf.red]\ntable = 500\ndevice = "a-name-of-15-ch"\n', "x")
    assert cfg.vrfs["red"].device == "a-name-of-15-ch"


def test_main_may_not_name_a_device() -> None:
    [(file, key, why)] = issues(ROUTER + '[vrf.main]\ntable = 254\ndevice = "red"\n')
    assert (file, key) == ("bgpd.toml", "vrf.main.device")
    assert "main VRF has no VRF device" in why
