from __future__ import annotations

import ipaddress

import pytest

from policy.filters import (
    ACCEPT_ALL,
    REJECT_ALL,
    Policy,
    PrefixMatch,
    Term,
    compile_term,
)
from rib.attrs import PathAttrs, intern, parse_community
from rib.prefix import Afi, parse_prefix
from rib.route import Source, SourceKind

SRC = Source(SourceKind.EBGP, ipaddress.ip_address("192.0.2.1"), 65001, 1, "a")
BASE = intern(PathAttrs(next_hop=ipaddress.ip_address("192.0.2.1"), communities=(100,)))


def m(text: str, prefix: str) -> bool:
    afi, key = parse_prefix(prefix)
    return PrefixMatch.parse(text).matches(afi, key)


def run(policy: Policy, prefix: str, attrs: PathAttrs = BASE) -> PathAttrs | None:
    afi, key = parse_prefix(prefix)
    return policy.apply(afi, key, attrs, SRC)


# --- PrefixMatch ---------------------------------------------------------------------------------


def test_parse_bounds() -> None:
    exact = PrefixMatch.parse("10.0.0.0/8")
    assert (exact.afi, exact.network, exact.ge, exact.le) == (
        Afi.IPV4,
        ipaddress.ip_network("10.0.0.0/8"),
        8,
        8,
    )
    assert (PrefixMatch.parse("10.0.0.0/8 le 24").ge, PrefixMatch.parse("10.0.0.0/8 le 24").le) == (8, 24)
    assert (PrefixMatch.parse("10.0.0.0/8 ge 16").ge, PrefixMatch.parse("10.0.0.0/8 ge 16").le) == (16, 32)
    both = PrefixMatch.parse("10.0.0.0/8 ge 16 le 24")
    assert (both.ge, both.le) == (16, 24)
    assert PrefixMatch.parse("  10.0.0.0/8   le   24 ").le == 24
    v6 = PrefixMatch.parse("2001:db8::/32 ge 48")
    assert (v6.afi, v6.ge, v6.le) == (Afi.IPV6, 48, 128)


def test_exact_match() -> None:
    assert m("10.0.0.0/8", "10.0.0.0/8")
    assert not m("10.0.0.0/8", "10.0.0.0/9")
    assert not m("10.0.0.0/8", "10.1.0.0/16")
    assert not m("10.0.0.0/8", "11.0.0.0/8")
    assert not m("10.0.0.0/8", "0.0.0.0/0")


def test_le_match() -> None:
    t = "10.0.0.0/8 le 24"
    for yes in ("10.0.0.0/8", "10.128.0.0/9", "10.1.0.0/16", "10.255.255.0/24"):
        assert m(t, yes), yes
    for no in ("10.0.0.0/25", "10.0.0.1/32", "11.0.0.0/16", "0.0.0.0/0", "8.0.0.0/7"):
        assert not m(t, no), no


def test_ge_match() -> None:
    t = "10.0.0.0/8 ge 16"
    for yes in ("10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32"):
        assert m(t, yes), yes
    for no in ("10.0.0.0/8", "10.0.0.0/15", "11.1.0.0/16"):
        assert not m(t, no), no


def test_ge_le_match() -> None:
    t = "10.0.0.0/8 ge 16 le 24"
    for yes in ("10.1.0.0/16", "10.1.2.0/24", "10.1.2.0/23"):
        assert m(t, yes), yes
    for no in ("10.0.0.0/8", "10.0.0.0/15", "10.1.2.0/25", "172.16.0.0/16"):
        assert not m(t, no), no


def test_default_route_and_v6_matches() -> None:
    assert m("0.0.0.0/0", "0.0.0.0/0")
    assert not m("0.0.0.0/0", "10.0.0.0/8")
    assert m("0.0.0.0/0 le 32", "203.0.113.7/32")
    assert m("2001:db8::/32 le 48", "2001:db8:1::/48")
    assert not m("2001:db8::/32 le 48", "2001:db8:1::/64")
    assert not m("2001:db8::/32 le 48", "2001:db9::/48")
    assert m("::/0 le 128", "2001:db8::1/128")


def test_wrong_family_never_matches() -> None:
    assert not m("0.0.0.0/0 le 32", "::/0")
    assert not m("0.0.0.0/0 le 32", "a00::/8")  # same key bytes as 10.0.0.0/8
    assert not m("::/0 le 128", "10.0.0.0/8")
    assert not m("::/0 le 128", "0.0.0.0/0")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "bogus",
        "10.0.0.1/8",  # host bits
        "10.0.0.0/33",
        "10.0.0.0/8 le",  # missing value
        "10.0.0.0/8 le 24 ge",
        "10.0.0.0/8 foo 9",
        "10.0.0.0/8 le x",
        "10.0.0.0/8 le 33",  # beyond the family
        "2001:db8::/32 le 129",
        "10.0.0.0/16 le 8",  # shorter than the prefix
        "10.0.0.0/16 ge 8",
        "10.0.0.0/8 ge 24 le 16",  # ge > le
    ],
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(ValueError):
        PrefixMatch.parse(text)


# --- Policy ------------------------------------------------------------------------------------------


def test_accept_all_and_reject_all() -> None:
    afi, key = parse_prefix("10.0.0.0/8")
    assert ACCEPT_ALL.apply(afi, key, BASE, SRC) is BASE
    assert REJECT_ALL.apply(afi, key, BASE, SRC) is None
    assert (ACCEPT_ALL.name, REJECT_ALL.name) == ("all", "none")
    assert not ACCEPT_ALL.per_prefix and not REJECT_ALL.per_prefix
    # Only prefix matches make a policy depend on the prefix (else results are cached per attrs).
    assert not Policy("p", []).per_prefix
    assert Policy("p", [compile_term({"prefix": "10.0.0.0/8"}, "accept", {})]).per_prefix
    assert not Policy("p", [compile_term({"community": "1:1", "family": "ipv4"}, "accept", {})]).per_prefix


def test_first_matching_term_decides() -> None:
    p = Policy(
        "p",
        [
            compile_term({"prefix": "10.0.0.0/8 le 24"}, "accept", {"local_pref": 200}),
            compile_term({}, "accept", {"local_pref": 50}),
        ],
    )
    out = run(p, "10.1.0.0/16")
    assert out is not None and out.local_pref == 200
    out = run(p, "192.168.0.0/16")
    assert out is not None and out.local_pref == 50


def test_reject_term() -> None:
    p = Policy(
        "p",
        [
            compile_term({"prefix": ["10.0.0.0/8 le 32", "192.168.0.0/16 le 32"]}, "reject", {}),
            compile_term({}, "accept", {}),
        ],
    )
    assert run(p, "10.1.0.0/16") is None
    assert run(p, "192.168.1.0/24") is None
    assert run(p, "203.0.113.0/24") is BASE  # accepted unchanged: the same interned object


def test_reject_after_a_next_term_discards_its_changes() -> None:
    p = Policy(
        "p",
        [compile_term({}, "next", {"local_pref": 300}), compile_term({"community": "65000:1"}, "reject", {})],
    )
    assert run(p, "10.0.0.0/8", BASE.with_(communities=(parse_community("65000:1"),))) is None


def test_next_term_falls_through_and_keeps_its_changes() -> None:
    p = Policy(
        "p",
        [
            compile_term({"prefix": "10.0.0.0/8 le 32"}, "next", {"community_add": "65000:10", "med": 7}),
            compile_term({}, "next", {"local_pref": 150}),
            compile_term({"community": "65000:10"}, "accept", {"community_add": ["65000:20"]}),
            compile_term({}, "accept", {}),
        ],
    )
    out = run(p, "10.1.0.0/16")
    assert out is not None
    assert out.communities == (100, parse_community("65000:10"), parse_community("65000:20"))
    assert (out.med, out.local_pref) == (7, 150)
    # The community added by the first term is what made the third term match: without it, the
    # last term accepts with only the local-pref.
    out = run(p, "192.0.2.0/24")
    assert out is not None and out.communities == (100,) and out.local_pref == 150 and out.med is None


def test_no_matching_term_rejects() -> None:
    p = Policy("p", [compile_term({"prefix": "10.0.0.0/8"}, "accept", {})])
    assert run(p, "10.0.0.0/8") is BASE
    assert run(p, "10.0.0.0/9") is None
    assert run(Policy("empty", []), "10.0.0.0/8") is None
    # Only "next" terms that all match: still no decision, so reject.
    assert run(Policy("n", [compile_term({}, "next", {"local_pref": 1})]), "10.0.0.0/8") is None


def test_set_actions() -> None:
    t = compile_term(
        {}, "accept", {"local_pref": 250, "med": 0, "community_add": ["no_export", "100:1", "0:100"]}
    )
    out = t.modify(BASE)
    assert out.local_pref == 250 and out.med == 0
    # Added in order, without duplicating one already there (0:100 == 100).
    assert out.communities == (100, 0xFFFFFF01, parse_community("100:1"))
    assert out is intern(
        PathAttrs(next_hop=BASE.next_hop, local_pref=250, med=0, communities=out.communities)
    )
    assert BASE.local_pref is None  # the input is untouched
    assert Term().modify(BASE) is BASE  # nothing to set: the same object


def test_community_match_any_of() -> None:
    t = compile_term({"community": ["65000:1", "65000:2"]}, "accept", {})
    afi, key = parse_prefix("10.0.0.0/8")
    assert t.matches(afi, key, BASE.with_(communities=(parse_community("65000:2"),)), SRC)
    assert t.matches(afi, key, BASE.with_(communities=(5, parse_community("65000:1"))), SRC)
    assert not t.matches(afi, key, BASE, SRC)
    assert not t.matches(afi, key, BASE.with_(communities=()), SRC)


def test_prefix_and_community_must_both_match() -> None:
    t = compile_term({"prefix": "10.0.0.0/8 le 32", "community": "65000:1"}, "accept", {})
    tagged = BASE.with_(communities=(parse_community("65000:1"),))
    a10, k10 = parse_prefix("10.1.0.0/16")
    a192, k192 = parse_prefix("192.0.2.0/24")
    assert t.matches(a10, k10, tagged, SRC)
    assert not t.matches(a10, k10, BASE, SRC)
    assert not t.matches(a192, k192, tagged, SRC)


def test_empty_match_matches_everything() -> None:
    t = compile_term({}, "accept", {})
    for text in ("0.0.0.0/0", "10.0.0.0/8", "2001:db8::/32"):
        afi, key = parse_prefix(text)
        assert t.matches(afi, key, BASE, SRC)


def test_policy_sees_both_families() -> None:
    p = Policy(
        "p",
        [
            compile_term({"prefix": "2001:db8::/32 le 64"}, "accept", {"med": 6}),
            compile_term({"prefix": "10.0.0.0/8 le 32"}, "accept", {"med": 4}),
        ],
    )
    out6, out4 = run(p, "2001:db8:1::/48"), run(p, "10.0.0.0/16")
    assert out6 is not None and out6.med == 6
    assert out4 is not None and out4.med == 4
    assert run(p, "2001:db9::/32") is None


# --- compile_term ----------------------------------------------------------------------------------


def test_compile_term_fields() -> None:
    t = compile_term(
        {"prefix": ["10.0.0.0/8 le 24", "2001:db8::/32"], "community": "blackhole"},
        "reject",
        {"local_pref": "120", "med": 9, "community_add": "1:2"},
    )
    assert t.action == "reject"
    assert [p.network for p in t.prefixes] == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    ]
    bh = BASE.with_(communities=(0xFFFF029A,))
    afi, k = parse_prefix("10.1.0.0/16")
    assert t.matches(afi, k, bh, SRC) and not t.matches(afi, k, BASE, SRC)
    out = t.modify(BASE)
    assert (out.local_pref, out.med, out.communities) == (120, 9, (100, (1 << 16) | 2))


def test_compile_term_unknown_match_key_names_it() -> None:
    with pytest.raises(ValueError, match=r"match\.color"):
        compile_term({"color": "red"}, "accept", {})


def test_compile_term_unknown_set_key_names_it() -> None:
    with pytest.raises(ValueError, match=r"set\.weight"):
        compile_term({}, "accept", {"weight": 100})


def test_compile_term_bad_values() -> None:
    with pytest.raises(ValueError):
        compile_term({"prefix": "10.0.0.1/8"}, "accept", {})
    with pytest.raises(ValueError):
        compile_term({"community": "65536:1"}, "accept", {})
    with pytest.raises(ValueError):
        compile_term({}, "accept", {"community_add": ["nope"]})
    with pytest.raises(ValueError):
        compile_term({}, "accept", {"local_pref": "high"})
