"""Prefix lists compiled for speed must answer as the plain definition does.

``PrefixSet`` (probes per route length) against ``PrefixMatch.matches`` (one entry at a time),
and a policy's ``plan`` (the attribute-only terms decided once per attribute set, the prefix
lists left per prefix) against ``Policy.apply`` (every term per route), over random lists,
routes and policies with `next` terms that change what later terms see.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from policy.filters import Policy, PrefixPlan, compile_term
from policy.match import PrefixMatch, PrefixSet
from rib.attrs import PathAttrs, intern
from rib.prefix import Afi, PrefixKey, make_key
from rib.route import Source, SourceKind


def entry(afi: Afi) -> st.SearchStrategy[str]:
    maxlen = afi.max_plen

    @st.composite
    def build(draw: st.DrawFn) -> str:
        n = draw(st.integers(0, maxlen))
        addr = draw(st.integers(0, (1 << maxlen) - 1)) >> (maxlen - n) << (maxlen - n) if n else 0
        # Few distinct networks, so that random routes hit them: the top bits from a small set.
        if n:
            top = draw(st.sampled_from([0x0A, 0xC0, 0x20, 0xFE]))
            addr = (top << (maxlen - 8) | addr & ((1 << (maxlen - 8)) - 1)) >> (maxlen - n) << (maxlen - n)
        net = ipaddress.ip_network((addr, n)) if afi is Afi.IPV4 else ipaddress.IPv6Network((addr, n))
        kind = draw(st.sampled_from(["exact", "le", "ge", "both"]))
        if kind == "exact":
            return str(net)
        lo = draw(st.integers(n, maxlen))
        hi = draw(st.integers(lo, maxlen))
        return {"le": f"{net} le {hi}", "ge": f"{net} ge {lo}", "both": f"{net} ge {lo} le {hi}"}[kind]

    return build()


@st.composite
def route(draw: st.DrawFn, afi: Afi) -> PrefixKey:
    maxlen = afi.max_plen
    plen = draw(st.integers(0, maxlen))
    top = draw(st.sampled_from([0x0A, 0xC0, 0x20, 0xFE, 0x01]))
    addr = top << (maxlen - 8) | draw(st.integers(0, (1 << (maxlen - 8)) - 1))
    return make_key(plen, addr.to_bytes(afi.addr_len, "big"))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_prefix_set_answers_as_its_entries(data: st.DataObject) -> None:
    afi = data.draw(st.sampled_from(list(Afi)))
    texts = data.draw(st.lists(entry(afi), min_size=1, max_size=8))
    other = data.draw(st.lists(entry(Afi.IPV4 if afi is Afi.IPV6 else Afi.IPV6), max_size=2))
    entries = [PrefixMatch.parse(t) for t in texts + other]
    pset = PrefixSet(entries)
    keys = data.draw(st.lists(route(afi), min_size=1, max_size=30))
    for key in keys:
        want = any(m.matches(afi, key) for m in entries)
        assert pset.contains(afi, key) == want, (texts, key.hex())
    assert pset.matching(afi, keys) == [k for k in keys if any(m.matches(afi, k) for m in entries)]


SRC = Source(SourceKind.EBGP, ipaddress.ip_address("192.0.2.1"), 65001, 1, "192.0.2.1")


@st.composite
def policy(draw: st.DrawFn) -> Policy:
    terms = []
    for _ in range(draw(st.integers(1, 5))):
        match: dict[str, object] = {}
        if draw(st.booleans()):
            match["prefix"] = draw(st.lists(entry(Afi.IPV4), min_size=1, max_size=3))
        if draw(st.booleans()):
            match["community"] = draw(st.sampled_from(["65000:1", "65000:2"]))
        if draw(st.booleans()):
            match["as_path_length"] = draw(st.sampled_from(["..1", "2..", "1"]))
        action = draw(st.sampled_from(["accept", "reject", "next"]))
        sets: dict[str, object] = {}
        if action != "reject" and draw(st.booleans()):
            sets["community_add"] = draw(st.sampled_from(["65000:1", "65000:2"]))
        if action != "reject" and draw(st.booleans()):
            sets["local_pref"] = draw(st.integers(50, 200))
        terms.append(compile_term(match, action, sets))
    return Policy("p", terms)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_plan_answers_as_the_policy(data: st.DataObject) -> None:
    pol = data.draw(policy())
    path = tuple(data.draw(st.lists(st.integers(1, 70000), min_size=1, max_size=3)))
    comms = tuple(data.draw(st.sets(st.sampled_from([65000 << 16 | 1, 65000 << 16 | 2, 7]))))
    attrs = intern(PathAttrs(as_path=((2, path),), communities=comms))
    plan = pol.plan(Afi.IPV4, attrs, SRC)
    for key in data.draw(st.lists(route(Afi.IPV4), min_size=1, max_size=20)):
        want = pol.apply(Afi.IPV4, key, attrs, SRC)
        got = plan.result(Afi.IPV4, key) if isinstance(plan, PrefixPlan) else plan
        assert got == want, key.hex()
        groups = plan.partition(Afi.IPV4, [key]) if isinstance(plan, PrefixPlan) else [(plan, [key])]
        assert groups == [(want, [key])]


def test_a_plan_decides_the_attribute_terms_once() -> None:
    # A bogon filter then attribute terms: per prefix only the list is left to test.
    pol = Policy(
        "p",
        [
            compile_term({"prefix": ["10.0.0.0/8 le 32", "0.0.0.0/0 ge 25"]}, "reject", {}),
            compile_term({"community": "65000:1"}, "reject", {}),
            compile_term({}, "accept", {"local_pref": 120}),
        ],
    )
    attrs = intern(PathAttrs(as_path=((2, (65001,)),)))
    plan = pol.plan(Afi.IPV4, attrs, SRC)
    assert isinstance(plan, PrefixPlan) and len(plan.steps) == 1
    accepted = plan.default
    assert isinstance(accepted, PathAttrs) and accepted.local_pref == 120
    keys = [
        make_key(24, bytes([10, 1, 2])),
        make_key(24, bytes([11, 1, 2])),
        make_key(26, bytes([11, 1, 2, 64])),
    ]
    assert plan.partition(Afi.IPV4, keys) == [(None, [keys[0], keys[2]]), (accepted, [keys[1]])]
    # The community term rejects the whole set: no per-prefix work left at all.
    assert pol.plan(Afi.IPV4, intern(PathAttrs(communities=(65000 << 16 | 1,))), SRC) is None
