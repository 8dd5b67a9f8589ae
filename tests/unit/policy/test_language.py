"""The policy language: every match and set key, and config validation through the same code."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from bgpd.config.errors import ConfigError
from bgpd.config.toml import parse_config
from policy.filters import MATCH_KEYS, SET_KEYS, Policy, compile_term
from rib.attrs import Origin, PathAttrs, SegType, intern, parse_community
from rib.prefix import parse_prefix
from rib.route import Source, SourceKind

ip = ipaddress.ip_address
EBGP = Source(SourceKind.EBGP, ip("192.0.2.1"), 65001, 1, "a")
IBGP = Source(SourceKind.IBGP, ip("10.0.0.1"), 65000, 2, "i")
LOCAL = Source(SourceKind.LOCAL, None, 65000, 3, "local")
A = intern(
    PathAttrs(
        origin=Origin.EGP,
        as_path=((SegType.AS_SEQUENCE, (65001, 65002, 65003)),),
        next_hop=ip("192.0.2.1"),
        communities=(parse_community("65001:10"), parse_community("no_export")),
        large_communities=((65001, 1, 2),),
        ext_communities=(struct.pack("!BBHI", 0, 2, 65001, 100),),
    )
)


def hit(
    match: dict[str, object],
    attrs: PathAttrs = A,
    src: Source = EBGP,
    prefix: str = "10.1.0.0/16",
    vrf: str = "red",
) -> bool:
    afi, key = parse_prefix(prefix)
    return compile_term(match, "accept", {}, 65000).matches(afi, key, attrs, src, vrf)


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"prefix": "10.0.0.0/8 le 16"}, True),
        ({"prefix": "10.1.0.0/16"}, True),  # exact
        ({"prefix": "10.1.0.0/17"}, False),
        ({"family": "ipv4"}, True),
        ({"family": "ipv6"}, False),
        ({"community": "65001:10"}, True),
        ({"community": "65001:*"}, True),
        ({"community": "*:11"}, False),
        ({"community": "no_export"}, True),
        ({"large_community": "65001:1:2"}, True),
        ({"large_community": "65001:*:*"}, True),
        ({"large_community": "65001:2:*"}, False),
        ({"ext_community": "rt:65001:100"}, True),
        ({"ext_community": "soo:65001:100"}, False),
        ({"as_path": "^65001_"}, True),
        ({"as_path": "_65002_"}, True),
        ({"as_path": "_650_"}, False),
        ({"as_path": "65003$"}, True),
        ({"as_path_contains": 65002}, True),
        ({"as_path_contains": [1, 2]}, False),
        ({"as_path_length": "2..3"}, True),
        ({"as_path_length": "..2"}, False),
        ({"as_path_length": 3}, True),
        ({"origin_as": 65003}, True),
        ({"origin_as": 65001}, False),
        ({"origin": "egp"}, True),
        ({"origin": ["igp", "incomplete"]}, False),
        ({"next_hop": "192.0.2.0/24"}, True),
        ({"next_hop": "192.0.2.2"}, False),
        ({"neighbor": "192.0.2.1"}, True),
        ({"neighbor": "10.0.0.0/8"}, False),
        ({"source": "ebgp"}, True),
        ({"source": ["ibgp", "local"]}, False),
        ({"vrf": "red"}, True),
        ({"vrf": ["blue", "main"]}, False),
        ({"family": "ipv4", "community": "65001:10", "origin_as": 65003}, True),
        ({"family": "ipv4", "community": "65001:10", "origin_as": 1}, False),
    ],
)
def test_match(match: dict[str, object], expected: bool) -> None:
    assert hit(match) is expected


def test_every_match_key_is_tested() -> None:
    # Guards the table above: a new key needs a case.
    assert {
        "prefix", "family", "community", "large_community", "ext_community", "as_path",
        "as_path_contains", "as_path_length", "origin_as", "origin", "next_hop", "neighbor",
        "source", "vrf",
    } == MATCH_KEYS  # fmt: skip


def test_source_and_origin_as_of_local_routes() -> None:
    loc = intern(PathAttrs())
    assert hit({"source": "local"}, loc, LOCAL)
    assert hit({"origin_as": 65000}, loc, LOCAL)  # an empty path originates here
    assert hit({"source": "ibgp"}, A, IBGP)
    assert not hit({"neighbor": "192.0.2.1"}, loc, LOCAL)


def mod(sets: dict[str, object], attrs: PathAttrs = A) -> PathAttrs:
    return compile_term({}, "accept", sets, 65000).modify(attrs)


def test_set_scalars() -> None:
    out = mod({"local_pref": 300, "med": 7, "origin": "igp", "next_hop": "198.51.100.1"})
    assert (out.local_pref, out.med, out.origin, out.next_hop) == (300, 7, Origin.IGP, ip("198.51.100.1"))
    assert mod({"next_hop": "self"}).next_hop == ip("0.0.0.0")  # the channel puts the real address in


def test_set_communities() -> None:
    c10, ne = parse_community("65001:10"), parse_community("no_export")
    assert mod({"community_add": ["1:1", "65001:10"]}).communities == (c10, ne, parse_community("1:1"))
    assert mod({"community_remove": "no_export"}).communities == (c10,)
    assert mod({"community_set": ["2:2"]}).communities == (parse_community("2:2"),)
    assert mod({"community_set": []}).communities == ()
    assert mod({"community_delete": "65001:*"}).communities == (ne,)
    # Several setters in one term apply in order.
    assert mod({"community_delete": "*:*", "community_add": "3:3"}).communities == (parse_community("3:3"),)


def test_set_large_communities() -> None:
    assert mod({"large_community_add": "1:2:3"}).large_communities == ((65001, 1, 2), (1, 2, 3))
    assert mod({"large_community_remove": "65001:1:2"}).large_communities == ()
    assert mod({"large_community_set": ["9:9:9"]}).large_communities == ((9, 9, 9),)
    assert mod({"large_community_delete": "65001:*:*"}).large_communities == ()


def test_prepend_own_as() -> None:
    out = mod({"prepend": 3})
    assert out.as_path == ((SegType.AS_SEQUENCE, (65000, 65000, 65000, 65001, 65002, 65003)),)


def test_every_set_key_is_known() -> None:
    assert {
        "local_pref", "med", "origin", "next_hop", "prepend",
        "community_add", "community_remove", "community_set", "community_delete",
        "large_community_add", "large_community_remove", "large_community_set", "large_community_delete",
    } == SET_KEYS  # fmt: skip


def test_next_term_then_accept() -> None:
    p = Policy(
        "p",
        [
            compile_term({"source": "ebgp"}, "next", {"local_pref": 50}),
            compile_term({"as_path": "_65003$"}, "reject", {}),
            compile_term({}, "accept", {"med": 1}),
        ],
    )
    afi, key = parse_prefix("10.0.0.0/8")
    assert p.apply(afi, key, A, EBGP) is None
    out = p.apply(afi, key, A.with_(as_path=((SegType.AS_SEQUENCE, (65001,)),)), EBGP)
    assert out is not None and (out.local_pref, out.med) == (50, 1)
    assert not p.per_prefix


@pytest.mark.parametrize(
    ("match", "sets", "where"),
    [
        ({"as_path": "(("}, {}, "match.as_path"),
        ({"origin": "bgp"}, {}, "match.origin"),
        ({"source": "static"}, {}, "match.source"),
        ({"family": "ipv5"}, {}, "match.family"),
        ({"large_community": "1:2"}, {}, "match.large_community"),
        ({"ext_community": "xx:1:2"}, {}, "match.ext_community"),
        ({"as_path_length": "5..2"}, {}, "match.as_path_length"),
        ({"next_hop": "nope"}, {}, "match.next_hop"),
        ({}, {"next_hop": "0.0.0.0"}, "set.next_hop"),
        ({}, {"prepend": 0}, "set.prepend"),
        ({}, {"origin": "x"}, "set.origin"),
        ({}, {"community_delete": "x:*"}, "set.community_delete"),
    ],
)
def test_bad_values_name_the_key(match: dict[str, object], sets: dict[str, object], where: str) -> None:
    with pytest.raises(ValueError, match=where.replace(".", r"\.")):
        compile_term(match, "accept", sets)


BASE_CFG = """
[router]
asn = 65000
router_id = "10.0.0.1"
[[neighbor]]
address = "192.0.2.1"
asn = 65001
import = "in"
export = "all"
"""


def test_config_accepts_the_whole_language() -> None:
    cfg = parse_config(
        BASE_CFG
        + """
[policy.in]
[[policy.in.term]]
match.as_path = "^65001_"
match.large_community = ["65001:*:*"]
match.source = "ebgp"
match.family = "ipv4"
action = "next"
set.community_delete = ["65001:*"]
set.prepend = 2
[[policy.in.term]]
action = "accept"
set.next_hop = "self"
set.large_community_add = "65000:1:1"
""",
        "t.toml",
    )
    assert [t.action for t in cfg.policies["in"].terms] == ["next", "accept"]


@pytest.mark.parametrize(
    ("term", "key", "reason"),
    [
        ('match.colour = "red"', "policy.in.term[0].match.colour", "unknown key"),
        ("set.weight = 1", "policy.in.term[0].set.weight", "unknown key"),
        ('match.origin = "bgp"', "policy.in.term[0].match.origin", "igp, egp, incomplete"),
        ('match.as_path = "(("', "policy.in.term[0].match.as_path", "regular expression"),
        ("set.prepend = 99", "policy.in.term[0].set.prepend", "out of range"),
    ],
)
def test_config_errors_name_file_key_and_reason(term: str, key: str, reason: str) -> None:
    text = BASE_CFG + f'[policy.in]\n[[policy.in.term]]\naction = "accept"\n{term}\n'
    with pytest.raises(ConfigError) as e:
        parse_config(text, "t.toml")
    issue = e.value.issues[0]
    assert (issue.file, issue.key) == ("t.toml", key) and reason in issue.reason, issue


def test_config_missing_policy_is_named() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(BASE_CFG, "t.toml")
    assert e.value.issues[0].key == "neighbor[0].import"
    text = BASE_CFG.replace('import = "in"', 'template = "t"') + '[template.t]\nimport = "gone"\n'
    with pytest.raises(ConfigError) as e2:
        parse_config(text, "t.toml")
    assert any(i.key == "template.t.import" and "gone" in i.reason for i in e2.value.issues)
