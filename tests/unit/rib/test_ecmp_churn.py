"""The ECMP set changes only when it must: unrelated path changes reach neither kernel nor peers."""

from __future__ import annotations

from rib.engine import Rib
from rib.prefix import Afi
from tests.unit.rib.helpers import LOCAL_AS, attrs, key
from tests.unit.rib.test_engine import World

V4 = Afi.IPV4
P = key("192.0.2.10/32")


def vip_world(ecmp: int, relax: bool) -> World:
    return World(rib=Rib(LOCAL_AS, router_id=1, ecmp=ecmp, multipath_relax=relax))


def test_anycast_vip_from_different_ases_shares_with_multipath_relax() -> None:
    for relax, expected in ((False, 1), (True, 3)):
        w = vip_world(8, relax)
        chans = [w.channel(f"10.0.{n}.2", "red", 64600 + n) for n in range(3)]
        for ch in chans:
            w.up(ch, (V4,))
        for n, ch in enumerate(chans):
            w.announce(ch, "192.0.2.10/32", attrs(path=(64600 + n,), nh=f"10.0.{n}.2"))
        assert len(w.changes[-1].best) == expected


def test_unrelated_path_change_causes_no_change() -> None:
    w = vip_world(8, False)
    a, b, c = (w.channel(f"10.0.{n}.2", "red", 65001) for n in range(3))
    for ch in (a, b, c):
        w.up(ch, (V4,))
    w.announce(a, "192.0.2.10/32", attrs(path=(65001,), nh="10.0.0.2"))
    w.announce(b, "192.0.2.10/32", attrs(path=(65001,), nh="10.0.1.2"))
    w.announce(c, "192.0.2.10/32", attrs(path=(65001, 9), nh="10.0.2.2"))  # longer: not in the set
    assert [len(ch.best) for ch in w.changes] == [1, 2]
    w.changes.clear()
    # C changes its (losing) path again and again: nothing for the kernel.
    for med in range(5):
        w.announce(c, "192.0.2.10/32", attrs(path=(65001, 9, 9), nh="10.0.2.2", med=med))
    w.withdraw(c, "192.0.2.10/32")
    assert w.changes == []


def test_full_set_is_not_reshuffled_by_an_equal_newcomer() -> None:
    w = vip_world(2, False)
    chans = [w.channel(f"10.0.{n}.2", "red", 65001) for n in (1, 6, 5)]
    for ch in chans:
        w.up(ch, (V4,))
    w.announce(chans[0], "192.0.2.10/32", attrs(path=(65001,), nh="10.0.1.2"))
    w.announce(chans[1], "192.0.2.10/32", attrs(path=(65001,), nh="10.0.6.2"))
    before = w.changes[-1].best
    w.changes.clear()
    # 10.0.5.2 sorts before 10.0.6.2 but the set is full: the kernel keeps its two next hops.
    w.announce(chans[2], "192.0.2.10/32", attrs(path=(65001,), nh="10.0.5.2"))
    assert w.changes == []
    sel = w.rib.table("red", V4).get(P).selected  # type: ignore[union-attr]
    assert [p.attrs.next_hop for p in sel] == [p.attrs.next_hop for p in before]
    # When a member leaves, the waiting path takes its place.
    w.withdraw(chans[1], "192.0.2.10/32")
    assert {str(p.attrs.next_hop) for p in w.changes[-1].best} == {"10.0.1.2", "10.0.5.2"}
