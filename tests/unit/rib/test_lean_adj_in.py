"""The lean Adj-RIB-In (Rib._go_lean): a big channel importing `all` keeps its accepted routes
in the Loc-RIB only. Every observable answer must be the one a plain channel gives: counts,
the Adj-RIB-In as a whole, withdrawals, session down, a reload's re-import, graceful restart."""

from __future__ import annotations

import random
from dataclasses import replace

from policy.filters import Policy, compile_term
from rib.attrs import PathAttrs
from rib.channel import Channel
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey, make_key
from rib.stale import retain
from tests.unit.rib.helpers import LOCAL_AS, attrs
from tests.unit.rib.test_engine import World

V4 = Afi.IPV4
PEER_AS = 65001


def _world(lean_min: int) -> tuple[World, Channel, Channel]:
    w = World(rib=Rib(LOCAL_AS, router_id=0x01010101, lean_min=lean_min))
    a = w.channel("192.0.2.1", "red", PEER_AS)  # import `all` (the default)
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


def _pair(seed: int) -> tuple[tuple[World, Channel, Channel], tuple[World, Channel, Channel]]:
    keys = _keys(60)
    plain, lean = _world(10**9), _world(4)
    for world in (plain, lean):
        _feed(world[0], world[1], seed, keys, 300)
    return plain, lean


def test_lean_channel_answers_as_a_plain_one() -> None:
    for seed in range(5):
        (pw, pa, _), (lw, la, _) = _pair(seed)
        assert la.lean and not pa.lean
        # Only what import rejected is in the lean channel's own dict.
        assert all(v.contains_as(LOCAL_AS) for t in la.adj_in.values() for v in t.values())
        assert (la.received(), la.accepted) == (pa.received(), pa.accepted)
        assert lw.rib.adj_rib_in(la) == pa.adj_in
        assert _loc_rib(lw) == _loc_rib(pw)
        assert [(c.prefix, [p.attrs for p in c.best]) for c in lw.changes] == [
            (c.prefix, [p.attrs for p in c.best]) for c in pw.changes
        ]


def test_lean_saves_the_accepted_routes_dict() -> None:
    (_pw, pa, _), (_lw, la, _) = _pair(1)
    accepted_in_plain = sum(1 for a in pa.adj_in[V4].values() if not a.contains_as(LOCAL_AS))
    assert accepted_in_plain > 10
    assert len(la.adj_in.get(V4, {})) == len(pa.adj_in[V4]) - accepted_in_plain


def test_session_down_withdraws_everything_and_tells_the_other_peers() -> None:
    (pw, pa, pb), (lw, la, lb) = _pair(2)
    for world, ch in ((pw, pa), (lw, la)):
        world.changes.clear()
        world.rib.channel_down(ch)
    assert len(lw.rib.table("red", V4)) == 0
    assert sorted(c.prefix for c in lw.changes) == sorted(c.prefix for c in pw.changes)
    assert lb.pending == pb.pending
    assert (la.lean, la.received(), la.accepted) == (False, 0, 0)


def test_reload_reimports_the_whole_adj_rib_in() -> None:
    (pw, pa, _), (lw, la, _) = _pair(3)
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
    assert not la.lean  # a policy that changes attributes: the plain dict again
    assert la.adj_in == pa.adj_in
    assert (la.received(), la.accepted) == (pa.received(), pa.accepted)
    assert _loc_rib(lw) == _loc_rib(pw)
    assert any(a.local_pref == 7 and a.contains_as(LOCAL_AS) for _n, a in sum(_loc_rib(lw).values(), ()))


def test_graceful_restart_keeps_every_accepted_route_stale() -> None:
    (pw, pa, _), (lw, la, _) = _pair(4)
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
