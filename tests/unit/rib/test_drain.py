"""A session going down withdraws its paths a slice at a time (rib/drain.py) with the same end
result as all at once: Loc-RIB, the changes per prefix, the other peers' Adj-RIB-Out, counts."""

from __future__ import annotations

from typing import Any

import pytest

from policy.filters import ACCEPT_ALL, Policy, compile_term
from rib.attrs import PathAttrs
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey, make_key
from rib.route import Change, Source, SourceKind
from tests.unit.rib.helpers import LOCAL_AS, attrs, ip, source

V4 = Afi.IPV4
N = 300  # prefixes of peer A; B holds every third of them too
ONE_SHOT = 10**9


def prefix(i: int) -> PrefixKey:
    return make_key(24, bytes([10, i // 256, i % 256, 0]))


PREFIXES = [prefix(i) for i in range(N)]


class World:
    def __init__(self, drain_slice: int, lean_min: int = 65_536) -> None:
        self.rib = Rib(LOCAL_AS, router_id=0x01010101, drain_slice=drain_slice, lean_min=lean_min)
        self.changes: list[Change] = []
        self.rib.batch_subscribers.append(self.changes.extend)
        self.n = 0

    def channel(self, peer: str, peer_asn: int, **kw: Any) -> Channel:
        self.n += 1
        kw.setdefault("import_filter", ACCEPT_ALL)
        kw.setdefault("export_filter", ACCEPT_ALL)
        settings = ChannelSettings(peer, "main", LOCAL_AS, peer_asn, **kw)
        ch = Channel(settings, local_addrs={V4: ip(f"198.51.100.{self.n}")})
        self.rib.add_channel(ch)
        return ch

    def up(self, ch: Channel, rid: int = 0) -> Source:
        kind = SourceKind.EBGP if ch.settings.ebgp else SourceKind.IBGP
        src = source(kind, ch.name, ch.settings.peer_asn, rid or int(ip(ch.name)) & 0xFFFFFFFF, ch.name)
        self.rib.channel_up(ch, src, [V4])
        ch.take_pending()
        self.rib.take_dirty()
        return src

    def announce(self, ch: Channel, prefixes: list[PrefixKey], a: PathAttrs, now: float = 1.0) -> None:
        self.rib.receive(ch, [(V4, a, prefixes)], [], now)

    def drain(self, limit: int) -> int:
        steps = 0
        while self.rib.drain_step(limit):
            steps += 1
        return steps + 1

    def state(self) -> dict[PrefixKey, list[tuple[str, str]]]:
        """The Loc-RIB: per prefix, each path as (peer, next hop), the selected ones first."""
        out = {}
        for p, dest in self.rib.table("main", V4).items():
            sel = [(str(x.source.peer), str(x.attrs.next_hop)) for x in dest.selected]
            rest = [(str(x.source.peer), str(x.attrs.next_hop)) for x in dest.paths if x not in dest.selected]
            out[p] = sel + sorted(rest)
        return out


def a_attrs(i: int) -> PathAttrs:
    # Attribute sets shared by runs of prefixes (as UPDATEs carry them), AS paths of 1-3 ASNs.
    return attrs(path=(65001, *range(65100, 65100 + i % 3)), nh="192.0.2.1", med=i // 10)


def b_attrs(i: int) -> PathAttrs:
    return attrs(path=(65002, 65200), nh="192.0.2.2")


def load(w: World) -> tuple[Channel, Channel, Channel]:
    """A sends N prefixes, B a third of them (better than A for some, worse for others), C
    sends nothing and is exported everything; an export policy drops some prefixes for C."""
    a, b = w.channel("192.0.2.1", 65001), w.channel("192.0.2.2", 65002)
    drop = Policy("drop", [compile_term({"prefix": "10.0.1.0/24 le 32"}, "reject", {}, LOCAL_AS)])
    drop.terms.append(compile_term({}, "accept", {}, LOCAL_AS))
    c = w.channel("192.0.2.3", 65003, export_filter=drop)
    for ch in (a, b, c):
        w.up(ch)
    for i in range(0, N, 10):
        w.announce(a, PREFIXES[i : i + 10], a_attrs(i))
    w.announce(b, PREFIXES[::3], b_attrs(0))
    c.take_pending()
    w.changes.clear()
    return a, b, c


def per_prefix(changes: list[Change]) -> dict[PrefixKey, list[list[tuple[str, str]]]]:
    out: dict[PrefixKey, list[list[tuple[str, str]]]] = {}
    for c in changes:
        out.setdefault(c.prefix, []).append([(str(p.source.peer), str(p.attrs.next_hop)) for p in c.best])
    return out


@pytest.mark.parametrize("lean", [False, True], ids=["plain", "lean"])
@pytest.mark.parametrize("slice_size", [1, 7, 64, N // 2])
def test_the_drained_result_is_the_one_shot_result(lean: bool, slice_size: int) -> None:
    lean_min = 50 if lean else 65_536
    one, sliced = World(ONE_SHOT, lean_min), World(slice_size, lean_min)
    chans = [load(one), load(sliced)]
    assert chans[1][0].lean is lean
    for w, (a, _b, _c) in zip((one, sliced), chans, strict=True):
        w.rib.channel_down(a)
    # All at once: nothing left to drain. Sliced: the channel says 0 at once, the Loc-RIB still
    # holds A's paths until the steps withdraw them.
    assert not one.rib.draining and sliced.rib.draining
    a = chans[1][0]
    assert a.received() == 0 and a.accepted == 0 and a.source is None
    assert sliced.rib.drains.left() > slice_size
    assert sum(p[0][0] == "192.0.2.1" for p in sliced.state().values()) > 0
    steps = sliced.drain(slice_size)
    assert steps >= N // slice_size
    assert sliced.state() == one.state()
    assert per_prefix(sliced.changes) == per_prefix(one.changes)
    assert all(len(v) == 1 for v in per_prefix(sliced.changes).values())  # one change per prefix
    t1, t2 = one.rib.table("main", V4), sliced.rib.table("main", V4)
    assert (len(t2), t2.path_count) == (len(t1), t1.path_count) == (N // 3, N // 3)
    for i in (1, 2):  # B and C: what they are sent (withdrawals, B's paths in place of A's)
        c1, c2 = chans[0][i], chans[1][i]
        assert c2.pending == c1.pending and c2.adj_out == c1.adj_out
    assert chans[1][2].pending[V4]  # C was told


def test_small_tables_still_go_at_once() -> None:
    w = World(drain_slice=N + 1)
    a, _b, _c = load(w)
    w.rib.channel_down(a)
    assert not w.rib.draining
    assert all(p[0][0] == "192.0.2.2" for p in w.state().values())


def test_a_reconnect_mid_drain_keeps_the_new_sessions_paths() -> None:
    w = World(drain_slice=16)
    a, _b, _c = load(w)
    old = a.source
    w.rib.channel_down(a)
    w.rib.drain_step(16)
    assert w.rib.draining
    # The neighbour is back (a new session: a new source) before its old paths are gone.
    new = w.up(a)
    assert new is not old
    # Its table dump carried none of its own old paths back to it.
    assert not a.adj_out.get(V4) or all(
        w.rib.table("main", V4).get(p).selected[0].source.peer != a.source.peer  # type: ignore[union-attr]
        for p in a.adj_out[V4]
    )
    # It sends half its table again, with another next hop: its new paths take the prefixes
    # over at once (the old ones of those prefixes go in the same batch).
    again = PREFIXES[: N // 2]
    moved = attrs(path=(65001,), nh="192.0.2.11")
    w.changes.clear()
    w.announce(a, again, moved)
    tab = w.rib.table("main", V4)
    for p in again:
        dest = tab.get(p)
        assert dest is not None and [x.source for x in dest.paths if x.source.peer == ip("192.0.2.1")] == [
            new
        ]
        assert dest.selected[0].source is new  # shorter AS path than B's
    assert a.received() == a.accepted == len(again)
    w.drain(16)
    # The old paths are all gone, the new ones all kept; B's fill in where A sent nothing new.
    state = w.state()
    for i, p in enumerate(PREFIXES):
        if i < N // 2:
            assert state[p][0] == ("192.0.2.1", "192.0.2.11"), i
        elif i % 3 == 0:
            assert state[p] == [("192.0.2.2", "192.0.2.2")], i
        else:
            assert p not in state, i
    assert all(x.source is new for _p, d in tab.items() for x in d.paths if x.source.peer == ip("192.0.2.1"))
    # The kernel's view: one last change per prefix, of the end state.
    last = {c.prefix: c.best for c in w.changes}
    for p, best in last.items():
        assert [(str(x.source.peer), str(x.attrs.next_hop)) for x in best] == state.get(p, [])[: len(best)]
    assert a.received() == a.accepted == len(again)


def test_the_same_live_source_keeps_what_it_announces_again() -> None:
    """``Rib.drain`` of a source still in use (a graceful-restart sweep): what it sends again
    meanwhile is its own again and stays."""
    w = World(drain_slice=10)
    a, _b, _c = load(w)
    src = a.source
    assert src is not None
    w.rib.drain("main", V4, src, PREFIXES[100:200])
    assert w.rib.draining
    w.announce(a, PREFIXES[150:160], a_attrs(150))  # identical to what it holds: no change
    w.drain(10)
    tab = w.rib.table("main", V4)
    for i in range(N):
        dest = tab.get(PREFIXES[i])
        has_a = dest is not None and any(x.source is src for x in dest.paths)
        assert has_a == (not 100 <= i < 200 or 150 <= i < 160), i


def test_add_path_paths_are_drained_and_withdrawn_from_add_path_peers() -> None:
    w = World(drain_slice=8)
    rr = w.channel("10.70.0.2", LOCAL_AS)
    rr.add_path_rx = frozenset({V4})
    w.up(rr)
    tx = w.channel("10.70.0.21", LOCAL_AS, rr_client=True)
    tx.add_path_tx = frozenset({V4})
    w.up(tx)
    for pid, nh in ((1, "10.70.0.11"), (2, "10.70.0.12")):
        a = attrs(path=(), nh=nh, local_pref=100, originator_id=nh, cluster_list=("10.70.0.2",))
        w.rib.receive(rr, [(V4, a, PREFIXES[:50])], [], 1.0, announce_ids=[[pid] * 50])
    ids = {rr.path_source(1).tx_id, rr.path_source(2).tx_id}
    tx.take_pending()
    assert tx.advertised() == 100
    w.rib.channel_down(rr)
    assert w.rib.draining and rr.received() == 0
    w.drain(8)
    assert len(w.rib.table("main", V4)) == 0
    out = tx.pending[V4]
    assert len(out) == 100 and all(v is None for v in out.values())
    assert {int.from_bytes(k[:4], "big") for k in out} == ids
    assert tx.advertised() == 0


def test_a_path_that_was_not_selected_is_withdrawn_from_add_path_peers() -> None:
    w = World(drain_slice=4)
    a, b = w.channel("10.70.0.1", LOCAL_AS, rr_client=True), w.channel("10.70.0.2", LOCAL_AS, rr_client=True)
    tx = w.channel("10.70.0.21", LOCAL_AS, rr_client=True)
    tx.add_path_tx = frozenset({V4})
    for ch in (a, b, tx):
        w.up(ch)
    w.announce(a, PREFIXES[:20], attrs(path=(), nh="10.70.0.1", local_pref=50))  # loses to b's
    w.announce(b, PREFIXES[:20], attrs(path=(), nh="10.70.0.2", local_pref=200))
    assert a.source is not None
    a_id = a.source.tx_id
    tx.take_pending()
    assert tx.advertised() == 40
    w.rib.channel_down(a)
    w.drain(4)
    assert {int.from_bytes(k[:4], "big") for k, v in tx.pending[V4].items() if v is None} == {a_id}
    assert tx.advertised() == 20


def test_remove_channel_mid_drain_and_while_up() -> None:
    w = World(drain_slice=32)
    a, b, c = load(w)
    w.rib.channel_down(a)
    w.rib.drain_step(32)
    w.rib.remove_channel(a)  # removed on reload while its paths drain: they still all go
    w.rib.remove_channel(b)  # removed while up: captured and drained like a session going down
    assert "192.0.2.1" not in w.rib.channels and "192.0.2.2" not in w.rib.channels
    assert b.received() == 0
    w.drain(32)
    assert len(w.rib.table("main", V4)) == 0
    assert not c.adj_out.get(V4)


def test_a_vrf_removed_mid_drain_is_drained_at_once() -> None:
    w = World(drain_slice=32)
    a, _b, _c = load(w)
    w.rib.channel_down(a)
    w.rib.drain_vrf_now("main")
    assert not w.rib.draining
    assert all(p[0][0] == "192.0.2.2" for p in w.state().values())


def test_a_live_add_path_source_keeps_only_the_path_ids_it_sends_again() -> None:
    """A sweep of one path id's paths (``Rib.drain`` of a live per-path-id source): what the
    session announces again under that id stays, under another id changes nothing of it."""
    w = World(drain_slice=8)
    rr = w.channel("10.70.0.2", LOCAL_AS)
    rr.add_path_rx = frozenset({V4})
    w.up(rr)

    def send(pid: int, prefixes: list[PrefixKey]) -> None:
        nh = f"10.70.0.{10 + pid}"
        a = attrs(path=(), nh=nh, local_pref=100, originator_id=nh, cluster_list=("10.70.0.2",))
        w.rib.receive(rr, [(V4, a, prefixes)], [], 1.0, announce_ids=[[pid] * len(prefixes)])

    send(1, PREFIXES[:50])
    send(2, PREFIXES[:50])
    one = rr.path_source(1)
    w.rib.drain("main", V4, one, PREFIXES[:50])
    assert w.rib.draining
    send(1, PREFIXES[10:20])  # path id 1 again: kept
    send(2, PREFIXES[20:30])  # path id 2: path id 1's sweep goes on there
    w.drain(8)
    tab = w.rib.table("main", V4)
    for i in range(50):
        dest = tab.get(PREFIXES[i])
        assert dest is not None
        assert sorted(p.source.path_id for p in dest.paths) == ([1, 2] if 10 <= i < 20 else [2]), i
