"""The lean Adj-RIB-In (Rib._go_lean): a big channel keeps its accepted routes in the Loc-RIB
only (with the attributes as received where import policy changed them). Every observable
answer must be the one a plain channel gives: counts, the Adj-RIB-In as a whole, withdrawals,
session down, a reload's re-import, graceful restart; with import `all`, with a policy that
changes attributes, and with one whose prefix lists decide per prefix."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from policy.filters import ACCEPT_ALL, Filter, Policy, compile_term
from rib.attrs import PathAttrs
from rib.channel import Channel
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey, make_key
from rib.stale import retain
from tests.unit.rib.helpers import LOCAL_AS, attrs
from tests.unit.rib.test_engine import World

V4 = Afi.IPV4
PEER_AS = 65001


# Import policies: `all`; one that changes attributes (and rejects a path); one whose prefix
# lists decide per prefix (a reject, a `next` that changes the MED, then attribute terms).
POLICIES: dict[str, Filter] = {
    "all": ACCEPT_ALL,
    "attrs": Policy(
        "attrs",
        [
            compile_term({"as_path_contains": 65102}, "reject", {}),
            compile_term({}, "accept", {"local_pref": 150, "community_add": "65010:7"}),
        ],
    ),
    "prefix": Policy(
        "prefix",
        [
            compile_term({"prefix": "10.0.16.0/20 le 24"}, "reject", {}),
            compile_term({"prefix": "10.0.32.0/21 le 24"}, "next", {"med": 99}),
            compile_term({"as_path_contains": 65103}, "reject", {}),
            compile_term({}, "accept", {"local_pref": 120}),
        ],
    ),
}
POLICY_NAMES = list(POLICIES)


def _world(lean_min: int, policy: str = "all") -> tuple[World, Channel, Channel]:
    w = World(rib=Rib(LOCAL_AS, router_id=0x01010101, lean_min=lean_min))
    a = w.channel("192.0.2.1", "red", PEER_AS, import_filter=POLICIES[policy])
    b = w.channel("192.0.2.2", "red", 65002)
    w.up(a)
    w.up(b)
    return w, a, b


def _keys(n: int) -> list[PrefixKey]:
    return [make_key(24, (0x0A000000 + (i << 8)).to_bytes(4, "big")[:3]) for i in range(n)]


def _sets() -> list[PathAttrs]:
    good = [attrs(path=(PEER_AS, 65100 + i), nh="192.0.2.1", med=i) for i in range(5)]
    loop = attrs(path=(PEER_AS, LOCAL_AS), nh="192.0.2.1")  # our AS in the path: rejected
    return [*good, loop]


def _feed(w: World, ch: Channel, seed: int, keys: list[PrefixKey], steps: int) -> None:
    """Announcements (some looped, so rejected) and withdrawals in random groups."""
    rng = random.Random(seed)
    sets = _sets()
    for _ in range(steps):
        group = rng.sample(keys, rng.randint(1, 8))
        if rng.random() < 0.25:
            w.rib.receive(ch, [], [(V4, group)], 2.0)
        else:
            w.rib.receive(ch, [(V4, rng.choice(sets), group)], [], 1.0)


def _loc_rib(w: World) -> dict[PrefixKey, tuple[tuple[str, PathAttrs], ...]]:
    return {p: tuple((s.source.name, s.attrs) for s in d.paths) for p, d in w.rib.table("red", V4).items()}


def _pair(
    seed: int, policy: str = "all"
) -> tuple[tuple[World, Channel, Channel], tuple[World, Channel, Channel]]:
    keys = _keys(60)
    plain, lean = _world(10**9, policy), _world(4, policy)
    for world in (plain, lean):
        _feed(world[0], world[1], seed, keys, 300)
    return plain, lean


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_lean_channel_answers_as_a_plain_one(policy: str) -> None:
    for seed in range(5):
        (pw, pa, _), (lw, la, _) = _pair(seed, policy)
        assert la.lean and not pa.lean
        # Only what import rejected is in the lean channel's own dict.
        assert all(la.import_attrs(V4, p, v) is None for t in la.adj_in.values() for p, v in t.items())
        assert la.adj_in[V4]
        assert (la.received(), la.accepted) == (pa.received(), pa.accepted)
        assert lw.rib.adj_rib_in(la) == pa.adj_in
        assert _loc_rib(lw) == _loc_rib(pw)
        assert [(c.prefix, [p.attrs for p in c.best]) for c in lw.changes] == [
            (c.prefix, [p.attrs for p in c.best]) for c in pw.changes
        ]


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_lean_saves_the_accepted_routes_dict(policy: str) -> None:
    (_pw, pa, _), (_lw, la, _) = _pair(1, policy)
    accepted_in_plain = sum(1 for p, a in pa.adj_in[V4].items() if pa.import_attrs(V4, p, a) is not None)
    assert accepted_in_plain > 10
    assert len(la.adj_in.get(V4, {})) == len(pa.adj_in[V4]) - accepted_in_plain


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_session_down_withdraws_everything_and_tells_the_other_peers(policy: str) -> None:
    (pw, pa, pb), (lw, la, lb) = _pair(2, policy)
    for world, ch in ((pw, pa), (lw, la)):
        world.changes.clear()
        world.rib.channel_down(ch)
    assert len(lw.rib.table("red", V4)) == 0
    assert sorted(c.prefix for c in lw.changes) == sorted(c.prefix for c in pw.changes)
    assert lb.pending == pb.pending
    assert (la.lean, la.received(), la.accepted) == (False, 0, 0)


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_reload_reimports_the_whole_adj_rib_in(policy: str) -> None:
    (pw, pa, _), (lw, la, _) = _pair(3, policy)
    # The new import policy rejects MED 0 and accepts our own AS once: what the lean channel
    # rejected before (the loops) must come back, what it accepted must be re-checked.
    policy = Policy(
        "p",
        [
            compile_term({"as_path_length": "3.."}, "reject", {}),
            compile_term({}, "accept", {"local_pref": 7}),
        ],
    )
    for world, ch in ((pw, pa), (lw, la)):
        world.rib.reconfigure(ch, replace(ch.settings, import_filter=policy, allow_local_as=1), 5.0)
    # Lean again (the received attributes stay on the paths), with the same answers.
    assert la.lean and not pa.lean
    assert lw.rib.adj_rib_in(la) == pa.adj_in
    assert (la.received(), la.accepted) == (pa.received(), pa.accepted)
    assert _loc_rib(lw) == _loc_rib(pw)
    assert any(a.local_pref == 7 and a.contains_as(LOCAL_AS) for _n, a in sum(_loc_rib(lw).values(), ()))


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_graceful_restart_keeps_every_accepted_route_stale(policy: str) -> None:
    (pw, pa, _), (lw, la, _) = _pair(4, policy)
    assert retain(pw.rib, pa) == retain(lw.rib, la) > 0
    assert la.stale == pa.stale
    assert _loc_rib(lw) == _loc_rib(pw)
    assert not la.lean


def test_going_lean_drops_the_accepted_copies_at_once() -> None:
    w, a, _ = _world(30)
    good, loop = _sets()[0], _sets()[-1]
    keys = _keys(50)
    w.rib.receive(a, [(V4, good, keys[:20]), (V4, loop, keys[20:25])], [], 1.0)
    assert not a.lean and len(a.adj_in[V4]) == 25  # below lean_min: the plain dict
    w.rib.receive(a, [(V4, good, keys[25:])], [], 1.0)
    assert a.lean
    assert set(a.adj_in[V4]) == set(keys[20:25])  # only the rejected ones are left in it
    assert (a.received(), a.accepted) == (50, 45)
    # A rejected prefix announced again acceptably moves to the Loc-RIB, and back.
    w.rib.receive(a, [(V4, good, keys[20:22])], [], 1.0)
    assert set(a.adj_in[V4]) == set(keys[22:25]) and (a.received(), a.accepted) == (50, 47)
    w.rib.receive(a, [(V4, loop, keys[:2])], [], 1.0)
    assert (a.received(), a.accepted) == (50, 45) and w.rib.table("red", V4).get(keys[0]) is None
