from __future__ import annotations

import itertools
from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rib.attrs import Origin, PathAttrs, SegType
from rib.decision import (
    DEFAULT,
    DEFAULT_LOCAL_PREF,
    ECMP_STEPS,
    STEPS,
    Decision,
    _decide,
    _decide_steps,
    _select_many,
    _select_steps,
    best_of,
    better,
    compare,
    ecmp_equal,
    loss_reason,
    select,
)
from rib.route import Path, SourceKind
from tests.unit.rib.helpers import LOCAL_AS, attrs, ebgp, ibgp, local_source, path, source

STEP_NAMES = [name for name, _ in STEPS]

# A resolver as the daemon injects it: next hop -> IGP cost (None: unreachable).
COSTS = {"198.51.100.1": 10, "198.51.100.2": 20}
FULL = Decision(prefer_older=True, resolve=lambda nh: COSTS.get(str(nh)))


def test_steps_are_in_rfc_order() -> None:
    assert STEP_NAMES == [
        "next hop unreachable",
        "local-pref",
        "locally originated",
        "AS path length",
        "origin",
        "MED",
        "eBGP over iBGP",
        "IGP cost",
        "older path",
        "router id",
        "cluster list length",
        "peer address",
        "path id",
    ]
    assert STEP_NAMES[ECMP_STEPS] == "older path"
    assert DEFAULT_LOCAL_PREF == 100


def assert_decides(a: Path, b: Path, step: str, d: Decision = DEFAULT) -> None:
    """``a`` beats ``b`` on ``step``, whichever side it is on and whatever the input order."""
    r, name = compare(a, b, d)
    assert r < 0 and name == step, (r, name)
    r, name = compare(b, a, d)
    assert r > 0 and name == step, (r, name)
    assert better(a, b, d) and not better(b, a, d)
    assert best_of([a, b], d) is a and best_of([b, a], d) is a
    assert loss_reason(a, b, d) == f"lost on {step}"


# --- a matrix over the steps --------------------------------------------------------------------
#
# Every path is built from these knobs. For step k, ``a`` gets the winning value of step k and
# the *losing* value of every later step, ``b`` the opposite; so step k must decide on its own.
# Then, for each earlier step j, ``b`` also gets the winning value of j: j must decide for b.

BASE: dict[str, Any] = dict(
    lp=None,
    kind=SourceKind.EBGP,
    path=(65001, 65100),
    origin=Origin.IGP,
    med=None,
    rid=10,
    peer="192.0.2.1",
    nh="198.51.100.1",
    since=1.0,
    clusters=(),
    pid=0,
)
TWEAKS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (winning knobs, losing knobs); local-pref also checks that a missing value means 100.
    "next hop unreachable": ({"nh": "198.51.100.2"}, {"nh": "198.51.100.9"}),
    "local-pref": ({"lp": 101}, {"lp": None}),
    "locally originated": ({"kind": SourceKind.LOCAL}, {"kind": SourceKind.IBGP}),
    "AS path length": ({"path": (65001,)}, {"path": (65001, 65002)}),
    "origin": ({"origin": Origin.IGP}, {"origin": Origin.INCOMPLETE}),
    "MED": ({"med": 10}, {"med": 20}),
    "eBGP over iBGP": ({"kind": SourceKind.EBGP}, {"kind": SourceKind.IBGP}),
    "IGP cost": ({"nh": "198.51.100.1"}, {"nh": "198.51.100.2"}),
    "older path": ({"since": 1.0}, {"since": 2.0}),
    "router id": ({"rid": 1}, {"rid": 2}),
    "cluster list length": ({"clusters": ()}, {"clusters": ("10.9.9.9",)}),
    "peer address": ({"peer": "192.0.2.1"}, {"peer": "192.0.2.2"}),
    "path id": ({"pid": 1}, {"pid": 2}),  # two ADD-PATH paths of one peer (RFC 7911)
}
assert list(TWEAKS) == STEP_NAMES


def build(knobs: dict[str, Any]) -> Path:
    kind = knobs["kind"]
    peer = None if kind == SourceKind.LOCAL else knobs["peer"]
    asn = LOCAL_AS if kind != SourceKind.EBGP else knobs["path"][0]
    src = source(kind, peer, asn, knobs["rid"])
    if knobs["pid"]:
        src = src.for_path_id(knobs["pid"])
    return path(
        src,
        since=knobs["since"],
        path=knobs["path"],
        nh=knobs["nh"],
        local_pref=knobs["lp"],
        origin=knobs["origin"],
        med=knobs["med"],
        cluster_list=knobs["clusters"],
    )


def pair(k: int, earlier_for_b: int | None = None) -> tuple[Path, Path]:
    a, b = dict(BASE), dict(BASE)
    for later in STEP_NAMES[k + 1 :]:
        good, bad = TWEAKS[later]
        a.update(bad)
        b.update(good)
    good, bad = TWEAKS[STEP_NAMES[k]]
    a.update(good)
    b.update(bad)
    if earlier_for_b is not None:
        good, bad = TWEAKS[STEP_NAMES[earlier_for_b]]
        b.update(good)
        a.update(bad)
    return build(a), build(b)


@pytest.mark.parametrize("k", range(len(STEPS)), ids=STEP_NAMES)
def test_step_decides_when_earlier_steps_tie(k: int) -> None:
    a, b = pair(k)
    # Every earlier step ties...
    for _name, step in STEPS[:k]:
        assert step(a, b, FULL) == 0
    # ...and this one decides, even though every later step favours b.
    assert_decides(a, b, STEP_NAMES[k], FULL)


# A locally originated path needs no next hop (it is always "resolvable"): the one pair where
# the next-hop step cannot decide against it. test_local_path_is_always_resolvable covers it.
PAIRS = [
    (k, j) for k in range(len(STEPS)) for j in range(k) if (STEP_NAMES[k], j) != ("locally originated", 0)
]


@pytest.mark.parametrize(("k", "j"), PAIRS, ids=[f"{STEP_NAMES[k]}<-{STEP_NAMES[j]}" for k, j in PAIRS])
def test_earlier_step_overrides_later_one(k: int, j: int) -> None:
    a, b = pair(k, earlier_for_b=j)
    assert_decides(b, a, STEP_NAMES[j], FULL)


# --- each step on its own ------------------------------------------------------------------------

E1 = ebgp("192.0.2.1", 65001, rid=1)
E2 = ebgp("192.0.2.2", 65001, rid=2)
E3 = ebgp("192.0.2.3", 65003, rid=3)
I1 = ibgp("10.0.0.1", rid=4)
I2 = ibgp("10.0.0.2", rid=5)


def test_local_pref_higher_wins_and_missing_means_100() -> None:
    # E2 would win every later step; local-pref decides first.
    hi = path(E2, path=(65001, 1, 2, 3), origin=Origin.INCOMPLETE, local_pref=200)
    lo = path(E1, path=(65001,), local_pref=150)
    assert_decides(hi, lo, "local-pref")
    missing = path(E1, path=(65001,))
    assert compare(path(E2, path=(65001,), local_pref=100), missing)[1] != "local-pref"
    assert_decides(path(E2, path=(65001, 2), local_pref=101), missing, "local-pref")
    assert_decides(missing, path(E2, path=(65001, 2), local_pref=99), "local-pref")
    assert_decides(missing, path(E2, path=(65001, 2), local_pref=0), "local-pref")


def test_locally_originated_beats_learnt() -> None:
    loc = path(local_source(rid=99), origin=Origin.INCOMPLETE, med=1000)
    assert_decides(loc, path(I1, origin=Origin.IGP), "locally originated")
    assert_decides(loc, path(E1, path=(65001,)), "locally originated")
    # ...but not over a higher local-pref.
    assert_decides(path(E1, path=(65001,), local_pref=101), loc, "local-pref")


def test_shorter_as_path_wins() -> None:
    short = path(E2, path=(65001, 2), origin=Origin.INCOMPLETE, med=100)
    long = path(E1, path=(65001, 2, 3), origin=Origin.IGP, med=0)
    assert_decides(short, long, "AS path length")


def test_as_path_length_counts_as_set_once_and_confederations_not_at_all() -> None:
    set_path = path(E2, as_path=((SegType.AS_SEQUENCE, (65001,)), (SegType.AS_SET, (1, 2, 3, 4))))
    seq3 = path(E1, path=(65001, 2, 3))
    assert_decides(set_path, seq3, "AS path length")  # 2 < 3
    confed = path(
        E2,
        as_path=((SegType.AS_CONFED_SEQUENCE, (64512, 64513, 64514)), (SegType.AS_SEQUENCE, (65001,))),
    )
    assert_decides(confed, path(E1, path=(65001, 2)), "AS path length")  # 1 < 2


def test_lower_origin_wins() -> None:
    igp = path(E2, path=(65001,), origin=Origin.IGP, med=500)
    egp = path(E1, path=(65001,), origin=Origin.EGP, med=0)
    incomplete = path(E1, path=(65001,), origin=Origin.INCOMPLETE)
    assert_decides(igp, egp, "origin")
    assert_decides(egp, incomplete, "origin")
    assert_decides(igp, incomplete, "origin")


def test_lower_med_wins_within_the_same_neighbour_as() -> None:
    low = path(E2, path=(65001, 9), med=5)
    high = path(E1, path=(65001, 7), med=6)
    assert_decides(low, high, "MED")
    # A missing MED counts as 0 (the lowest).
    assert_decides(path(E2, path=(65001,)), path(E1, path=(65001,), med=1), "MED")


def test_med_is_not_compared_between_different_neighbour_ases() -> None:
    a = path(E1, path=(65001, 9), med=500)  # router id 1
    b = path(E3, path=(65003, 9), med=5)  # router id 3
    r, name = compare(a, b)
    assert r < 0 and name == "router id"  # MED skipped; a wins on a later step
    # And the same neighbour AS does compare again.
    c = path(E3, path=(65001, 9), med=5)
    assert compare(a, c)[1] == "MED"


def test_ebgp_beats_ibgp() -> None:
    e = path(E3, path=(65003,), nh="192.0.2.3")  # router id 3
    i = path(ibgp("10.0.0.1", rid=1), path=(65003,), nh="192.0.2.3")  # the better router id
    assert_decides(e, i, "eBGP over iBGP")
    # Two iBGP paths (or two eBGP paths) tie on this step.
    assert compare(path(I1, path=(65003,)), path(I2, path=(65003,)))[1] == "router id"


def test_lower_router_id_wins() -> None:
    a = path(ebgp("192.0.2.9", 65001, rid=0x0A000001), path=(65001,))
    b = path(ebgp("192.0.2.1", 65001, rid=0x0A000002), path=(65001,))
    assert_decides(a, b, "router id")


def test_lower_peer_address_wins_last() -> None:
    a = path(ebgp("192.0.2.1", 65001, rid=7), path=(65001,))
    b = path(ebgp("192.0.2.10", 65001, rid=7), path=(65001,))
    assert_decides(a, b, "peer address")
    # Numeric, not textual, order: .9 < .10.
    c = path(ebgp("192.0.2.9", 65001, rid=7), path=(65001,))
    assert_decides(c, b, "peer address")
    # IPv4 peers sort before IPv6 peers.
    d = path(ebgp("2001:db8::1", 65001, rid=7), path=(65001,))
    assert_decides(b, d, "peer address")


def test_identical_paths_compare_equal() -> None:
    a = path(E1, path=(65001,))
    b = path(E1, path=(65001,))
    assert compare(a, b) == (0, "")
    assert not better(a, b)
    assert loss_reason(a, b) == "equal to best"


# --- ECMP selection ------------------------------------------------------------------------------


def mp(peer: str, asn: int, nh: str, rid: int, since: float = 0.0, **kw: Any) -> Path:
    kind_src = ebgp(peer, asn, rid=rid)
    return path(kind_src, path=kw.pop("as_path", (asn, 65100)), nh=nh, since=since, **kw)


def test_select_empty_and_single() -> None:
    assert select([], 8, False) == ()
    p = mp("192.0.2.1", 65001, "192.0.2.1", 1)
    assert select([p], 8, False) == (p,)


def test_select_best_first_then_equal_paths_by_peer_address() -> None:
    a = mp("192.0.2.3", 65001, "192.0.2.3", rid=1)  # best: lowest router id
    b = mp("192.0.2.2", 65001, "192.0.2.2", rid=2)
    c = mp("192.0.2.1", 65001, "192.0.2.1", rid=3)
    worse = mp("192.0.2.4", 65001, "192.0.2.4", rid=0, as_path=(65001, 1, 2))
    assert select([worse, c, b, a], 8, False) == (a, c, b)


def test_select_is_limited_by_ecmp() -> None:
    a = mp("192.0.2.3", 65001, "192.0.2.3", rid=1)
    b = mp("192.0.2.2", 65001, "192.0.2.2", rid=2)
    c = mp("192.0.2.1", 65001, "192.0.2.1", rid=3)
    assert select([a, b, c], 2, False) == (a, c)  # the lowest peer address fills the slot
    assert select([a, b, c], 3, False) == (a, c, b)
    assert select([a, b, c], 1, False) == (a,)
    assert select([a, b, c], 0, False) == (a,)


def test_select_requires_the_same_neighbour_as_unless_relaxed() -> None:
    a = mp("192.0.2.1", 65001, "192.0.2.1", rid=1)
    b = mp("192.0.2.2", 65002, "192.0.2.2", rid=2)
    assert select([a, b], 8, False) == (a,)
    assert not ecmp_equal(a, b, False)
    assert select([a, b], 8, True) == (a, b)
    assert ecmp_equal(a, b, True)


def test_multipath_relax_still_needs_equal_length_and_origin() -> None:
    a = mp("192.0.2.1", 65001, "192.0.2.1", rid=1)
    longer = mp("192.0.2.2", 65002, "192.0.2.2", rid=2, as_path=(65002, 1, 2))
    worse_origin = mp("192.0.2.3", 65003, "192.0.2.3", rid=3, origin=Origin.INCOMPLETE)
    lower_lp = mp("192.0.2.4", 65004, "192.0.2.4", rid=4, local_pref=50)
    assert select([a, longer, worse_origin, lower_lp], 8, True) == (a,)


def test_select_needs_equal_med_within_the_same_as() -> None:
    a = mp("192.0.2.1", 65001, "192.0.2.1", rid=1, med=10)
    b = mp("192.0.2.2", 65001, "192.0.2.2", rid=2, med=20)
    c = mp("192.0.2.3", 65001, "192.0.2.3", rid=3, med=10)
    assert select([a, b, c], 8, False) == (a, c)


def test_select_collapses_duplicate_next_hops() -> None:
    a = mp("192.0.2.1", 65001, "198.51.100.1", rid=1)
    b = mp("192.0.2.2", 65001, "198.51.100.1", rid=2)  # same next hop as the best
    c = mp("192.0.2.3", 65001, "198.51.100.3", rid=3)
    d = mp("192.0.2.4", 65001, "198.51.100.3", rid=4)  # same next hop as c
    sel = select([a, b, c, d], 8, False)
    assert sel[0] is a
    assert [p.attrs.next_hop for p in sel] == [a.attrs.next_hop, c.attrs.next_hop]
    assert len(sel) == 2
    assert select([a, b], 8, False) == (a,)


def test_select_skips_paths_without_next_hop() -> None:
    a = mp("192.0.2.1", 65001, "192.0.2.1", rid=1)
    b = path(ebgp("192.0.2.2", 65001, rid=2), path=(65001, 65100))  # no next hop
    assert select([a, b], 8, False) == (a,)


def test_select_does_not_mix_ibgp_and_ebgp() -> None:
    e = path(ebgp("192.0.2.1", 65001, rid=9), path=(65001,), nh="192.0.2.1")
    i = path(ibgp("10.0.0.1", rid=1), path=(65001,), nh="10.0.0.1")
    assert select([i, e], 8, False) == (e,)
    assert select([i, e], 8, True) == (e,)
    assert not ecmp_equal(e, i, True)
    # Two iBGP paths may share forwarding.
    i2 = path(ibgp("10.0.0.2", rid=2), path=(65001,), nh="10.0.0.2")
    assert select([i2, i], 8, False) == (i, i2)


def test_local_routes_are_never_ecmp() -> None:
    loc = path(local_source(), nh="192.0.2.254")
    other_local = path(source(SourceKind.LOCAL, None, LOCAL_AS, 2), nh="192.0.2.253")
    e = path(ebgp("192.0.2.1", 65001), nh="192.0.2.1")
    assert select([e, loc], 8, True) == (loc,)
    assert select([loc, other_local], 8, True) == (loc,)
    assert not ecmp_equal(loc, e, True)
    assert not ecmp_equal(e, loc, True)
    assert not ecmp_equal(loc, other_local, True)


def test_select_order_is_stable_whatever_the_input_order() -> None:
    paths = [
        mp("192.0.2.5", 65001, "192.0.2.5", rid=1),
        mp("192.0.2.3", 65001, "192.0.2.3", rid=2),
        mp("192.0.2.40", 65001, "192.0.2.40", rid=3),
        mp("192.0.2.4", 65001, "192.0.2.4", rid=4),
        mp("192.0.2.6", 65001, "192.0.2.6", rid=5, as_path=(65001, 1, 65100)),  # worse
    ]
    expected = (paths[0], paths[1], paths[3], paths[2])
    for perm in itertools.permutations(paths):
        assert select(list(perm), 8, False) == expected
        assert select(list(perm), 3, False) == expected[:3]


# --- the steps added for the full process -------------------------------------------------------


def test_local_path_is_always_resolvable() -> None:
    loc = path(local_source(), nh="198.51.100.9")  # a next hop the resolver does not know
    e = path(E1, path=(65001,), nh="198.51.100.1")
    assert_decides(loc, e, "locally originated", FULL)
    assert select([e, loc], 8, False, FULL) == (loc,)


def test_unresolvable_paths_are_not_candidates() -> None:
    good = path(E2, path=(65001, 1, 2, 3), nh="198.51.100.2")
    bad = path(E1, path=(65001,), nh="198.51.100.9", local_pref=500)
    assert select([bad, good], 8, False, FULL) == (good,)
    assert loss_reason(good, bad, FULL) == "lost on next hop unreachable"
    assert select([bad], 8, False, FULL) == ()
    # Without a resolver every next hop counts as reachable at cost 0.
    assert select([bad, good], 8, False) == (bad,)


def test_always_compare_med_compares_across_neighbour_ases() -> None:
    a = path(E1, path=(65001, 9), med=500)
    b = path(E3, path=(65003, 9), med=5)
    assert compare(a, b)[1] == "router id"
    assert_decides(b, a, "MED", Decision(always_compare_med=True))


def test_prefer_older_only_between_ebgp_paths_and_only_when_enabled() -> None:
    old = path(E2, path=(65001,), since=1.0)  # router id 2
    new = path(E1, path=(65001,), since=5.0)  # router id 1
    assert compare(old, new)[1] == "router id"
    assert_decides(old, new, "older path", Decision(prefer_older=True))
    i_old = path(I2, path=(65001,), since=1.0)
    i_new = path(I1, path=(65001,), since=5.0)
    assert compare(i_old, i_new, Decision(prefer_older=True))[1] == "router id"


def test_originator_id_stands_in_for_the_router_id() -> None:
    # I1 has the lower router id, but its path was reflected from 10.255.0.9.
    reflected = path(I1, path=(65001,), originator_id="10.255.0.9", cluster_list=("10.0.0.5",))
    direct = path(I2, path=(65001,))
    assert_decides(direct, reflected, "router id")


def test_shorter_cluster_list_wins_on_equal_originator() -> None:
    a = path(I2, path=(65001,), originator_id="10.255.0.9", cluster_list=("10.0.0.5",))
    b = path(I1, path=(65001,), originator_id="10.255.0.9", cluster_list=("10.0.0.6", "10.0.0.5"))
    assert_decides(a, b, "cluster list length")


def test_lower_igp_cost_wins_and_igp_cost_is_part_of_ecmp() -> None:
    near = mp("192.0.2.2", 65001, "198.51.100.1", rid=2)
    far = mp("192.0.2.1", 65001, "198.51.100.2", rid=1)
    assert_decides(near, far, "IGP cost", FULL)
    assert select([far, near], 8, False, FULL) == (near,)
    assert select([far, near], 8, False) == (far, near)


def test_ecmp_ignores_the_age_of_paths() -> None:
    a = mp("192.0.2.1", 65001, "192.0.2.1", rid=1, since=5.0)
    b = mp("192.0.2.2", 65001, "192.0.2.2", rid=2, since=1.0)
    assert select([a, b], 8, False, Decision(prefer_older=True)) == (b, a)


def test_full_ecmp_set_keeps_its_members_when_a_newcomer_arrives() -> None:
    a = mp("192.0.2.5", 65001, "192.0.2.5", rid=1)
    b = mp("192.0.2.6", 65001, "192.0.2.6", rid=2)
    first = select([a, b], 2, False)
    assert first == (a, b)
    newcomer = mp("192.0.2.1", 65001, "192.0.2.1", rid=3)  # lower address, would sort first
    assert select([a, b, newcomer], 2, False, DEFAULT, first) == (a, b)
    # Without history the lowest address takes the slot; once b leaves, the newcomer joins.
    assert select([a, b, newcomer], 2, False) == (a, newcomer)
    assert select([a, newcomer], 2, False, DEFAULT, first) == (a, newcomer)


# --- the written-out comparison (_decide) must decide as the steps do ---------------------------


@st.composite
def any_path(draw: st.DrawFn) -> Path:
    kind = draw(st.sampled_from([SourceKind.EBGP, SourceKind.IBGP, SourceKind.LOCAL]))
    asn = draw(st.sampled_from([65001, 65002]))
    peer = draw(st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1"]))
    rid = draw(st.integers(1, 3))
    src = (
        local_source(rid)
        if kind == SourceKind.LOCAL
        else (ebgp(peer, asn, rid) if kind == SourceKind.EBGP else ibgp(peer, rid))
    )
    segments = draw(
        st.sampled_from(
            [
                (),
                ((int(SegType.AS_SEQUENCE), ()),),
                ((int(SegType.AS_SEQUENCE), (asn,)),),
                ((int(SegType.AS_SEQUENCE), (asn, 65100)),),
                ((int(SegType.AS_SEQUENCE), (65002, 65100)),),
                ((int(SegType.AS_SEQUENCE), (asn,)), (int(SegType.AS_SET), (1, 2))),
                ((int(SegType.AS_CONFED_SEQUENCE), (64512,)), (int(SegType.AS_SEQUENCE), (asn,))),
            ]
        )
    )
    a = PathAttrs(
        origin=draw(st.sampled_from([0, 1, 2])),
        as_path=segments,
        med=draw(st.sampled_from([None, 0, 5])),
        local_pref=draw(st.sampled_from([None, 100, 200])),
        originator_id=draw(st.sampled_from([None, "10.0.0.9"])),
        cluster_list=draw(st.sampled_from([(), ("10.0.0.1",)])),
        next_hop=draw(
            st.sampled_from([None, *map(ip_address, ["198.51.100.1", "198.51.100.2", "198.51.100.3"])])
        ),
    )
    return path(src, a, since=draw(st.sampled_from([0.0, 1.0])))


@settings(max_examples=500, deadline=None)
@given(any_path(), any_path(), st.booleans(), st.booleans(), st.booleans())
def test_written_out_decision_matches_the_steps(
    a: Path, b: Path, always_med: bool, older: bool, igp: bool
) -> None:
    # With the resolver: .1 costs 10, .2 costs 20, .3 is unreachable (COSTS above).
    d = Decision(always_compare_med=always_med, prefer_older=older, resolve=FULL.resolve if igp else None)
    r, i = _decide(a, b, d)
    r2, i2 = _decide_steps(a, b, d)
    assert ((r > 0) - (r < 0), i) == ((r2 > 0) - (r2 < 0), i2)
    # And a selection of the two is the one through the steps.
    for ecmp in (1, 2, 4):
        assert select([a, b], ecmp, igp, d) == _select_steps([a, b], ecmp, igp, d)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(any_path(), min_size=3, max_size=5),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 4),
)
def test_written_out_selection_of_many_matches_the_steps(
    paths: list[Path], always_med: bool, older: bool, igp: bool, relax: bool, keep: int
) -> None:
    d = Decision(always_compare_med=always_med, prefer_older=older, resolve=FULL.resolve if igp else None)
    previous = tuple(paths[:keep])  # a full set keeps its members: both must agree on that too
    for ecmp in (1, 2, 3, 8):
        assert _select_many(paths, ecmp, relax, d, previous) == _select_steps(paths, ecmp, relax, d, previous)


@st.composite
def near_tie(draw: st.DrawFn) -> Path:
    """Paths equal up to the tie-breakers or nearly (ECMP candidates): the neighbour AS, MED,
    the kind, the age, the router id, the next hop and the address vary."""
    asn = draw(st.sampled_from([65001, 65001, 65002]))
    peer = draw(st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]))
    rid = draw(st.integers(1, 4))
    kind = draw(st.sampled_from([SourceKind.EBGP, SourceKind.EBGP, SourceKind.IBGP]))
    src = ebgp(peer, asn, rid) if kind == SourceKind.EBGP else ibgp(peer, rid)
    nh = draw(st.sampled_from(["198.51.100.1", "198.51.100.2", "198.51.100.4", "198.51.100.5"]))
    a = attrs((asn, 65100), nh=nh, med=draw(st.sampled_from([None, 0, 0, 5])))
    return path(src, a, since=draw(st.sampled_from([0.0, 1.0])))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(near_tie(), min_size=3, max_size=5),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 4),
)
def test_written_out_selection_of_near_ties_matches_the_steps(
    paths: list[Path], older: bool, igp: bool, relax: bool, keep: int
) -> None:
    d = Decision(prefer_older=older, resolve=(lambda nh: COSTS.get(str(nh), 10)) if igp else None)
    previous = tuple(paths[:keep])
    for ecmp in (2, 3, 8):
        assert _select_many(paths, ecmp, relax, d, previous) == _select_steps(paths, ecmp, relax, d, previous)


def test_written_out_decision_breaks_ties_on_igp_cost_then_router_id() -> None:
    d = Decision(resolve=FULL.resolve)
    near = path(ebgp("192.0.2.2", 65001, 2), attrs((65001,), nh="198.51.100.1"))
    far = path(ebgp("192.0.2.1", 65001, 1), attrs((65001,), nh="198.51.100.2"))
    assert _decide(near, far, d) == _decide_steps(near, far, d) == (-10, 7)
    assert select([far, near], 2, False, d) == (near,)  # decided before the tie-breakers: no ECMP
    same = path(ebgp("192.0.2.1", 65001, 1), attrs((65001,), nh="198.51.100.1", med=0))
    assert _decide(near, same, d)[1] == _decide_steps(near, same, d)[1] == 9  # router id
    assert select([near, same], 2, False, d) == (same,)  # one next hop: nothing to share
