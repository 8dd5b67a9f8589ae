"""The RIB with a kernel resolver: unusable next hops, IGP cost, and re-evaluation limited to
the prefixes whose next hops resolve differently."""

from __future__ import annotations

from rib.channel import Channel, ChannelSettings
from rib.decision import Decision
from rib.engine import Rib
from rib.prefix import Afi
from rib.route import Change, Source, SourceKind
from tests.unit.rib.helpers import attrs, ip, key

V4 = Afi.IPV4
COSTS: dict[str, int | None] = {}


def resolve(nh: object) -> int | None:
    return COSTS.get(str(nh))


def setup() -> tuple[Rib, list[Channel], list[Change]]:
    rib = Rib(65010, 1, 8, False, Decision())
    rib.add_vrf("main")
    rib.add_vrf("red")
    rib.set_resolver("main", resolve)
    changes: list[Change] = []
    rib.batch_subscribers.append(changes.extend)
    chs = []
    for i, peer in enumerate(("10.0.0.2", "10.0.0.3", "10.0.0.4")):
        ch = Channel(ChannelSettings(peer, "main", 65010, 65010))
        rib.add_channel(ch)
        rib.channel_up(ch, Source(SourceKind.IBGP, ip(peer), 65010, 10 + i), [V4])
        chs.append(ch)
    return rib, chs, changes


def selected(rib: Rib, prefix: str) -> list[str]:
    dest = rib.table("main", V4).get(key(prefix))
    return [str(p.attrs.next_hop) for p in dest.selected] if dest else []


def test_igp_cost_decides_and_unresolvable_paths_are_not_candidates() -> None:
    COSTS.clear()
    COSTS.update({"10.66.0.9": 20, "10.67.0.9": 10})
    rib, (a, b, _c), changes = setup()
    rib.receive(a, [(V4, attrs((), "10.66.0.9"), [key("198.18.0.0/24"), key("198.18.1.0/24")])], [], 1.0)
    rib.receive(b, [(V4, attrs((), "10.67.0.9"), [key("198.18.0.0/24")])], [], 1.0)
    rib.receive(b, [(V4, attrs((), "10.68.0.9"), [key("198.18.2.0/24")])], [], 1.0)  # never resolvable
    assert selected(rib, "198.18.0.0/24") == ["10.67.0.9"]
    assert selected(rib, "198.18.1.0/24") == ["10.66.0.9"]
    assert selected(rib, "198.18.2.0/24") == []  # held, but with no selection
    assert rib.table("main", V4).get(key("198.18.2.0/24")).paths  # type: ignore[union-attr]

    # 10.67.0.9 gets dearer: only the prefixes via it are decided again.
    COSTS["10.67.0.9"] = 30
    changes.clear()
    rib.next_hops_changed("main", {ip("10.67.0.9")})
    assert selected(rib, "198.18.0.0/24") == ["10.66.0.9"]
    assert [c.prefix for c in changes] == [key("198.18.0.0/24")]
    # 10.66.0.9 becomes unreachable: 198.18.1.0/24 is withdrawn (to the kernel and the peers).
    COSTS["10.66.0.9"] = None
    changes.clear()
    rib.next_hops_changed("main", {ip("10.66.0.9")})
    assert selected(rib, "198.18.0.0/24") == ["10.67.0.9"]
    assert sorted((c.prefix, c.best) for c in changes if not c.best) == [(key("198.18.1.0/24"), ())]
    # 10.68.0.9 reachable at last: its prefix is selected.
    COSTS["10.68.0.9"] = 1
    rib.next_hops_changed("main", {ip("10.68.0.9")})
    assert selected(rib, "198.18.2.0/24") == ["10.68.0.9"]


def test_equal_igp_cost_shares_ecmp_and_unequal_does_not() -> None:
    COSTS.clear()
    COSTS.update({"10.66.0.9": 10, "10.67.0.9": 10})
    rib, (a, b, _c), _changes = setup()
    prefixes = [key(f"198.19.{i}.0/24") for i in range(100)]
    rib.receive(a, [(V4, attrs((), "10.66.0.9"), prefixes)], [], 1.0)
    rib.receive(b, [(V4, attrs((), "10.67.0.9"), prefixes)], [], 1.0)
    assert all(selected(rib, f"198.19.{i}.0/24") == ["10.66.0.9", "10.67.0.9"] for i in range(100))
    COSTS["10.66.0.9"] = 11
    rib.next_hops_changed("main", {ip("10.66.0.9")})
    assert all(selected(rib, f"198.19.{i}.0/24") == ["10.67.0.9"] for i in range(100))


def test_a_vrf_without_resolver_keeps_every_next_hop() -> None:
    COSTS.clear()
    rib, _chs, _changes = setup()
    red = Channel(ChannelSettings("10.1.0.2", "red", 65010, 65001))
    rib.add_channel(red)
    rib.channel_up(red, Source(SourceKind.EBGP, ip("10.1.0.2"), 65001, 5), [V4])
    rib.receive(red, [(V4, attrs((65001,), "10.99.0.1"), [key("192.0.2.0/24")])], [], 1.0)
    assert rib.table("red", V4).get(key("192.0.2.0/24")).selected  # type: ignore[union-attr]
