"""A new session's table dump in slices, and channels whose export is `none` skipped in O(1)."""

from __future__ import annotations

from policy.filters import REJECT_ALL
from rib.attrs import PathAttrs
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey
from rib.route import Path, SourceKind
from tests.unit.rib.helpers import LOCAL_AS, attrs, ip, key, source

V4, V6 = Afi.IPV4, Afi.IPV6


def make_rib() -> Rib:
    return Rib(LOCAL_AS, router_id=0x01010101)


def channel(rib: Rib, peer: str, peer_asn: int, **kw: object) -> Channel:
    ch = Channel(
        ChannelSettings(peer, "main", LOCAL_AS, peer_asn, **kw),  # type: ignore[arg-type]
        local_addrs={V4: ip("198.51.100.1"), V6: ip("2001:db8:ffff::1")},
    )
    rib.add_channel(ch)
    return ch


def up(rib: Rib, ch: Channel, limit: int | None = None) -> bool:
    src = source(SourceKind.EBGP, ch.name, ch.settings.peer_asn, int(ip(ch.name)), ch.name)
    return rib.channel_up(ch, src, (V4, V6), limit)


def keys(n: int, base: int = 10 << 24) -> list[PrefixKey]:
    return [bytes([32]) + (base + i).to_bytes(4, "big") for i in range(n)]


def loaded(n: int) -> tuple[Rib, Channel, list[PrefixKey]]:
    """A RIB with ``n`` IPv4 routes from peer A (AS 65001), and 3 IPv6 ones of our own."""
    rib = make_rib()
    a = channel(rib, "192.0.2.1", 65001)
    up(rib, a)
    ks = keys(n)
    rib.receive(a, [(V4, attrs(path=(65001,), nh="192.0.2.1"), ks)], [], 1.0)
    for i in range(3):
        rib.originate("main", V6, key(f"2001:db8:{i}::/48"), attrs(), 0.0)
    return rib, a, ks


def sent(ch: Channel) -> tuple[dict[Afi, dict[PrefixKey, PathAttrs | None]], set[Afi]]:
    return ch.take_pending()


def test_a_whole_dump_at_once_without_a_limit() -> None:
    rib, _a, ks = loaded(50)
    b = channel(rib, "192.0.2.2", 65002)
    assert up(rib, b) is True
    out, eor = sent(b)
    assert set(out[V4]) == set(ks) and len(out[V6]) == 3
    assert eor == {V4, V6}


def test_a_dump_in_slices_sends_everything_then_end_of_rib() -> None:
    rib, _a, ks = loaded(50)
    b = channel(rib, "192.0.2.2", 65002)
    assert up(rib, b, limit=20) is False
    got: dict[Afi, set[PrefixKey]] = {V4: set(), V6: set()}
    calls = 0
    while True:
        assert b in rib.take_dirty()  # the daemon is told there is output
        out, eor = sent(b)
        for afi, changes in out.items():
            assert len(changes) <= 20
            got[afi] |= set(changes)
        if eor:
            assert eor == {V4, V6}
            break
        calls += 1
        rib.continue_dump(b, 20)
    assert got[V4] == set(ks) and len(got[V6]) == 3
    assert calls == 2  # 53 routes, 20 per slice: two more slices after the first
    assert rib.continue_dump(b, 20) is True  # nothing left: a late call is harmless


def test_changes_during_a_dump_end_in_the_right_adj_rib_out() -> None:
    rib, a, ks = loaded(30)
    b = channel(rib, "192.0.2.2", 65002)
    up(rib, b, limit=10)
    # Meanwhile: one route not yet dumped is withdrawn, one is changed, one is new.
    rib.receive(a, [], [(V4, [ks[25]])], 2.0)
    changed = attrs(path=(65001, 64999), nh="192.0.2.1")
    rib.receive(a, [(V4, changed, [ks[26]])], [], 2.0)
    new = keys(1, base=172 << 24)[0]
    rib.receive(a, [(V4, changed, [new])], [], 2.0)
    while not rib.continue_dump(b, 10):
        pass
    adj = b.adj_out[V4]
    assert ks[25] not in adj
    assert set(adj) == (set(ks) - {ks[25]}) | {new}
    assert adj[ks[26]].as_path == ((2, (LOCAL_AS, 65001, 64999)),)
    assert b.pending[V4].get(ks[25]) is None and ks[25] not in b.pending[V4]  # never sent, never withdrawn
    assert b.eor_pending == {V4, V6}


def test_a_session_going_down_mid_dump_ends_it() -> None:
    rib, _a, _ks = loaded(30)
    b = channel(rib, "192.0.2.2", 65002)
    up(rib, b, limit=10)
    rib.channel_down(b)
    assert rib.continue_dump(b, 10) is True
    assert not b.has_pending() and b.advertised() == 0
    # Up again: a fresh dump of everything.
    assert up(rib, b) is True
    assert b.advertised() == 33 and b.eor_pending == {V4, V6}


def test_export_none_channel_is_skipped_and_gets_only_end_of_rib() -> None:
    rib, a, ks = loaded(20)
    quiet = channel(rib, "192.0.2.3", 65003, export_filter=REJECT_ALL)
    assert quiet.exports_none(V4) and quiet.exports_none(V6)
    assert up(rib, quiet, limit=1) is True  # nothing to dump, even with a tiny limit
    assert sent(quiet) == ({}, {V4, V6})

    # Per UPDATE, the channel is not asked to export anything: its export filter never runs.
    calls = 0

    class CountingReject:
        per_prefix = False

        def apply(self, *args: object) -> None:
            nonlocal calls
            calls += 1

    quiet.settings.export_filter = REJECT_ALL
    rib.receive(a, [(V4, attrs(path=(65001, 7), nh="192.0.2.1"), ks)], [], 3.0)
    assert not quiet.has_pending() and quiet.advertised() == 0
    assert quiet._export_cache == {}  # export_attrs never ran for it
    # The same channel with a filter that merely rejects everything is asked every time.
    quiet.settings.export_filter = CountingReject()  # type: ignore[assignment]
    assert not quiet.exports_none(V4)
    rib.receive(a, [(V4, attrs(path=(65001, 8), nh="192.0.2.1"), ks)], [], 4.0)
    assert calls >= 1 and not quiet.has_pending()


def test_export_none_after_all_still_withdraws_what_was_sent() -> None:
    rib, a, ks = loaded(5)
    b = channel(rib, "192.0.2.2", 65002)
    up(rib, b)
    sent(b)
    assert b.advertised() == 8
    b.settings.export_filter = REJECT_ALL
    assert not b.exports_none(V4)  # something was sent: it must be withdrawn first
    rib.receive(a, [], [(V4, [ks[0]])], 2.0)
    assert sent(b)[0] == {V4: {ks[0]: None}}
    best = rib.table("main", V4).get(ks[1])
    assert best is not None
    b.queue_export(V4, ks[1], None)  # what a re-filter does for each route
    for k in ks[2:]:
        b.queue_export(V4, k, None)
    assert b.exports_none(V4)
    b.queue_export(V4, ks[1], Path(best.selected[0].source, best.selected[0].attrs, 0.0))
    assert b.adj_out[V4] == {}
