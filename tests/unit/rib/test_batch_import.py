"""The batched import path (one UPDATE's prefixes at once) against the per-route path.

A full-table load goes through ``LocRib.update_many`` and ``Channel.queue_export_many``; these
tests feed the same routes one prefix per UPDATE and many per UPDATE and require the same
Loc-RIB, counters, changes and Adj-RIB-Out.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from policy.filters import ACCEPT_ALL, Policy, compile_term
from rib.attrs import PathAttrs
from rib.channel import Channel, ChannelSettings
from rib.decision import Decision, select
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey, make_key
from rib.route import Change, Path, SourceKind
from rib.table import Dest, LocRib
from tests.unit.rib.helpers import LOCAL_AS, attrs, ebgp, ip, key, source

V4 = Afi.IPV4


def keys(n: int, seed: int = 1) -> list[PrefixKey]:
    rng = random.Random(seed)
    out: dict[PrefixKey, None] = {}
    while len(out) < n:
        out[make_key(24, rng.randrange(1 << 24, 224 << 24).to_bytes(4, "big"))] = None
    return list(out)


def snapshot(t: LocRib) -> dict[PrefixKey, tuple[Any, ...]]:
    """Loc-RIB content by value: per prefix the paths and the selection as (peer, attrs)."""

    def v(paths: tuple[Path, ...]) -> tuple[Any, ...]:
        return tuple((p.source.peer, p.attrs) for p in paths)

    return {k: (v(d.paths), v(d.selected)) for k, d in t.items()}


def test_second_source_shares_one_tuple_and_withdraw_goes_back_to_one_path() -> None:
    t = LocRib("main", V4)
    a, b = ebgp("192.0.2.1", 65001), ebgp("192.0.2.2", 65001)
    ps = keys(5)
    pa = Path(a, attrs((65001, 1), "192.0.2.1"), 0.0)
    pb = Path(b, attrs((65001, 1), "192.0.2.2"), 0.0)
    assert len(t.update_many(ps, pa)) == 5
    changes = t.update_many(ps, pb)
    assert [c.best for c in changes] == [(pa, pb)] * 5  # equal: both forward (ECMP)
    assert t.path_count == 10 and len(t) == 5
    # No object per prefix: every prefix stores the same tuple of the two paths.
    stored = {id(t.dests[p]) for p in ps}
    assert len(stored) == 1 and type(t.dests[ps[0]]) is tuple
    d = t.get(ps[0])
    assert d is not None and d.paths == (pa, pb) and d.selected == (pa, pb)
    ch = t.withdraw(ps[0], a)
    assert ch is not None and ch.best == (pb,)
    assert t.dests[ps[0]] is pb and t.path_count == 9
    # The others are untouched by that withdrawal.
    assert all(t.get(p).selected == (pa, pb) for p in ps[1:])  # type: ignore[union-attr]


def test_second_source_that_wins_the_tie_break_still_shares_one_tuple() -> None:
    # The second peer's path is the better one (lower router id): both still forward, stored
    # as the selection (best first), one tuple for every prefix, not a Dest per prefix.
    t = LocRib("main", V4)
    a, b = ebgp("192.0.2.2", 65001, rid=2), ebgp("192.0.2.1", 65001, rid=1)
    ps = keys(5)
    pa = Path(a, attrs((65001, 1), "192.0.2.2"), 0.0)
    pb = Path(b, attrs((65001, 1), "192.0.2.1"), 0.0)
    t.update_many(ps, pa)
    assert [c.best for c in t.update_many(ps, pb)] == [(pb, pa)] * 5
    assert len({id(t.dests[p]) for p in ps}) == 1 and type(t.dests[ps[0]]) is tuple
    d = t.get(ps[0])
    assert d is not None and d.selected == (pb, pa) and d.paths in ((pa, pb), (pb, pa))
    # One prefix at a time (update) ends in the same compact form.
    u = LocRib("main", V4)
    for p in ps:
        u.update(p, pa)
        u.update(p, pb)
    assert all(type(u.dests[p]) is tuple and u.dests[p] == (pb, pa) for p in ps)
    assert t.withdraw(ps[0], b) is not None and t.dests[ps[0]] is pa


def test_second_source_that_loses_gets_its_own_dest_per_prefix() -> None:
    t = LocRib("main", V4)
    a, b = ebgp("192.0.2.1", 65001), ebgp("192.0.2.2", 65002)
    ps = keys(3)
    pa = Path(a, attrs((65001, 1), "192.0.2.1"), 0.0)
    pb = Path(b, attrs((65002, 7, 1), "192.0.2.2"), 0.0)  # longer AS path: not selected
    t.update_many(ps, pa)
    assert t.update_many(ps, pb) == []  # the selection did not change
    dests = [t.dests[p] for p in ps]
    assert all(type(d) is Dest for d in dests) and len({id(d) for d in dests}) == 3
    assert t.withdraw(ps[0], b) is None  # the loser leaves: nothing changes for the kernel
    assert t.dests[ps[0]] is pa
    assert t.get(ps[1]).paths == (pa, pb)  # type: ignore[union-attr]


def _same_as_one_by_one(
    one: LocRib,
    many: LocRib,
    rounds: int,
    rng: random.Random,
    srcs: list[Any],
    sets: list[PathAttrs],
    batch_of: Any,
    withdraw_p: float,
) -> None:
    """Random UPDATEs into ``one`` a prefix at a time and into ``many`` in one call each:
    the same changes, Loc-RIB and path count after every one."""

    def v(cs: list[Change]) -> list[Any]:
        return [(c.prefix, [(p.source.peer, p.attrs) for p in c.best]) for c in cs]

    for _ in range(rounds):
        src = rng.choice(srcs)
        batch = batch_of()
        p1 = Path(src, rng.choice(sets), 0.0)
        p2 = Path(src, p1.attrs, 0.0)
        got_one = [c for c in (one.update(k, p1) for k in dict.fromkeys(batch)) if c is not None]
        assert v(got_one) == v(many.update_many(batch, p2))
        if rng.random() < withdraw_p:
            k = rng.choice(list(one.dests) or batch)
            c1, c2 = one.withdraw(k, src), many.withdraw(k, src)
            assert (c1 is None) == (c2 is None)
        assert snapshot(one) == snapshot(many)
        assert one.path_count == many.path_count


def test_update_many_matches_update_one_by_one() -> None:
    """Random announcements from three sources: the batch and the per-prefix path agree."""
    rng = random.Random(7)
    srcs = [ebgp(f"192.0.2.{i}", 65001 + (i % 2)) for i in (1, 2, 3)]
    sets = [attrs((65001 + (i % 2), *range(i % 3)), f"192.0.2.{i}", med=i % 2) for i in range(1, 7)]
    ps = keys(40)
    one, many = (
        LocRib("main", V4, ecmp=4, multipath_relax=True),
        LocRib("main", V4, ecmp=4, multipath_relax=True),
    )
    # A repeat in the same UPDATE, too.
    _same_as_one_by_one(one, many, 60, rng, srcs, sets, lambda: [*rng.sample(ps, 8), ps[0]], 0.3)


@pytest.mark.parametrize("ecmp", [2, 3, 8])
def test_update_many_matches_update_one_by_one_with_ecmp_sets(ecmp: int) -> None:
    """Four sources whose paths tie (the third and fourth peer meet an ECMP set held as one
    shared tuple): the batch and the per-prefix path agree, changes included."""
    rng = random.Random(11)
    srcs = [ebgp(f"192.0.2.{i}", 65001) for i in (1, 2, 3, 4)]
    sets = [attrs((65001, 7), f"192.0.2.{i}", med=m) for i in (1, 2, 3, 4) for m in (0, 0, 5)]
    ps = keys(30)
    one, many = LocRib("main", V4, ecmp=ecmp), LocRib("main", V4, ecmp=ecmp)
    _same_as_one_by_one(one, many, 120, rng, srcs, sets, lambda: rng.sample(ps, rng.choice((1, 10, 30))), 0.2)


def test_a_third_peer_joining_an_ecmp_set_shares_one_tuple() -> None:
    t = LocRib("main", V4, ecmp=8)
    ps = keys(50)
    paths = [Path(ebgp(f"192.0.2.{i}", 65001), attrs((65001, 7), f"192.0.2.{i}"), 0.0) for i in (1, 2, 3)]
    for p in paths:
        t.update_many(ps, p)
    held = {id(t.dests[k]) for k in ps}
    assert len(held) == 1 and t.dests[ps[0]] == tuple(paths)
    assert t.path_count == 150


def _world(import_filter: Any = ACCEPT_ALL) -> tuple[Rib, Channel, Channel, list[list[Change]]]:
    rib = Rib(LOCAL_AS, router_id=1)
    batches: list[list[Change]] = []
    rib.batch_subscribers.append(batches.append)
    chans = []
    for n in (1, 2):
        peer = f"192.0.2.{n}"
        ch = Channel(
            ChannelSettings(peer, "main", LOCAL_AS, 65000 + n, import_filter=import_filter),
            local_addrs={V4: ip(f"198.51.100.{n}")},
        )
        rib.add_channel(ch)
        rib.channel_up(ch, source(SourceKind.EBGP, peer, 65000 + n, n, peer), [V4])
        ch.take_pending()
        chans.append(ch)
    rib.take_dirty()
    return rib, chans[0], chans[1], batches


@pytest.mark.parametrize("per_prefix", [False, True])
def test_one_update_is_one_batch_with_counters_and_export(per_prefix: bool) -> None:
    flt = ACCEPT_ALL
    if per_prefix:
        flt = Policy(
            "p",
            [
                compile_term({"prefix": "10.0.0.0/8 le 32"}, "reject", {}),
                compile_term({}, "accept", {"med": 5}),
            ],
        )
    rib, a, b, batches = _world(flt)
    ps = [*keys(6), key("10.1.0.0/16")]
    at = attrs((65001, 9), "192.0.2.1")
    rib.receive(a, [(V4, at, [*ps, ps[0]])], [], 1.0)  # one prefix twice
    accepted = 6
    assert len(batches) == 1 and len(batches[0]) == (6 if per_prefix else 7)
    assert a.accepted == (accepted if per_prefix else 7) and a.received() == 7
    sent = b.take_pending()[0][V4]
    assert len(sent) == len(batches[0]) and all(isinstance(v, PathAttrs) for v in sent.values())
    assert len({id(v) for v in sent.values()}) == 1  # exported once for the shared path
    # Re-announced as is: nothing changes, the counters stay.
    rib.receive(a, [(V4, at, ps)], [], 2.0)
    assert len(batches) == 1 and a.accepted == (accepted if per_prefix else 7)
    # Replaced with other attributes, then withdrawn in one UPDATE each.
    at2 = attrs((65001, 9, 9), "192.0.2.1")
    rib.receive(a, [(V4, at2, ps[:3])], [], 3.0)
    assert len(batches) == 2 and len(batches[1]) == 3 and a.accepted == (accepted if per_prefix else 7)
    rib.receive(a, [], [(V4, ps)], 4.0)
    assert len(batches) == 3 and all(c.best == () for c in batches[2])
    assert a.accepted == 0 and a.received() == 0
    assert set(b.take_pending()[0][V4].values()) == {None}
    assert len(rib.table("main", V4)) == 0


def test_two_path_selection_matches_the_general_one() -> None:
    """The two-path shortcut of ``select`` against the general code (a resolver that resolves
    every next hop at cost 0 forces the general code and decides the same)."""
    rng = random.Random(3)
    general = Decision(resolve=lambda _nh: 0)
    kinds = [SourceKind.EBGP, SourceKind.IBGP, SourceKind.LOCAL]
    for _ in range(2000):
        pair = []
        for n in (1, 2):
            kind = rng.choice(kinds)
            asn = rng.choice((65001, 65002))
            src = source(kind, f"192.0.2.{rng.choice((n, 9))}", asn, rng.choice((1, 2)))
            nh = rng.choice(("192.0.2.1", "192.0.2.2", None))
            a = attrs(
                (asn, *range(rng.randrange(3))),
                nh,
                local_pref=rng.choice((None, 100, 200)),
                med=rng.choice((None, 0, 5)),
                origin=rng.choice((0, 2)),
            )
            pair.append(Path(src, a, 0.0))
        for relax in (False, True):
            for ecmp in (1, 2, 8):
                fast = select(pair, ecmp, relax)
                slow = select(pair, ecmp, relax, general)
                assert fast == slow, (pair, relax, ecmp)
