"""The `[vrf.NAME] rules` config keys (steering `ip rule`s): parsed values and every error's key path."""

from __future__ import annotations

import pytest

from bgpd.config.errors import ConfigError
from bgpd.config.model import VrfRule
from bgpd.config.toml import parse_config

ROUTER = '[router]\nasn = 65010\nrouter_id = "10.0.0.1"\n'


def issues(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "bgpd.toml")
    return [(i.file, i.key, i.reason) for i in e.value.issues]


def test_rules_with_vrf_and_per_rule_priority() -> None:
    cfg = parse_config(
        ROUTER
        + "[vrf.red]\ntable = 500\nrule_priority = 900\n"
        + 'rules = [{from = "10.10.0.0/16"}, {iif = "veth1", priority = 50},\n'
        + ' {fwmark = 10, from = "fd10::/48"}]\n'
        + "[vrf.blue]\ntable = 501\nrules = [{fwmark = 11}]\n",
        "bgpd.toml",
    )
    assert cfg.vrfs["red"].rules == [
        VrfRule(900, "10.10.0.0/16"),
        VrfRule(50, None, "veth1"),
        VrfRule(900, "fd10::/48", None, 10),
    ]
    assert cfg.vrfs["blue"].rules == [VrfRule(1000, None, None, 11)]  # the default priority
    assert parse_config(ROUTER + "[vrf.red]\ntable = 500\n", "x").vrfs["red"].rules == []


def test_bad_rules_name_file_key_and_reason() -> None:
    found = issues(
        ROUTER
        + "[vrf.red]\ntable = 500\nrule_priority = 32766\n"
        + 'rules = [{from = "10.1.0.1/16"}, {}, {bogus = 1}, "x", {iif = "waytoolonginterfacename"},'
        + ' {fwmark = -1}, {iif = "a", priority = 0}, {iif = "a"}, {iif = "a"}]\n'
        + "[vrf.main]\ntable = 254\nrules = [{fwmark = 1}]\n"
    )
    assert all(f == "bgpd.toml" for f, _k, _r in found)
    got = {k: r for _f, k, r in found}
    assert set(got) == {
        "vrf.red.rule_priority",
        "vrf.red.rules[0].from",
        "vrf.red.rules[1]",
        "vrf.red.rules[2].bogus",
        "vrf.red.rules[3]",
        "vrf.red.rules[4].iif",
        "vrf.red.rules[5].fwmark",
        "vrf.red.rules[6].priority",
        "vrf.red.rules[8]",
        "vrf.main.rules",
    }
    assert "out of range (1..32765)" in got["vrf.red.rule_priority"]
    assert "host bits" in got["vrf.red.rules[0].from"]
    assert "needs from, iif or fwmark" in got["vrf.red.rules[1]"]
    assert "unknown key" in got["vrf.red.rules[2].bogus"]
    assert "expected a table" in got["vrf.red.rules[3]"]
    assert "not a valid interface name" in got["vrf.red.rules[4].iif"]
    assert "listed twice" in got["vrf.red.rules[8]"]
    assert "main VRF" in got["vrf.main.rules"]
