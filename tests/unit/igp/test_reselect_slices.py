"""Re-evaluation after an IGP change in slices: the same result as one pass, each prefix
decided with the latest answers even when UPDATEs or further changes come between slices,
and no pass at all for a next hop no path carries."""

from __future__ import annotations

from rib.channel import Channel, ChannelSettings
from rib.decision import Decision
from rib.engine import Rib
from rib.prefix import Afi
from rib.reselect import Reselector
from rib.route import Change, Source, SourceKind
from tests.unit.rib.helpers import attrs, ip, key

V4 = Afi.IPV4
COSTS: dict[str, int | None] = {}
N = 1000
PREFIXES = [key(f"10.{i // 256}.{i % 256}.0/24") for i in range(N)]


def resolve(nh: object) -> int | None:
    return COSTS.get(str(nh))


def setup() -> tuple[Rib, list[Channel], list[Change]]:
    rib = Rib(65010, 1, 8, False, Decision())
    rib.add_vrf("main")
    rib.set_resolver("main", resolve)
    changes: list[Change] = []
    rib.batch_subscribers.append(changes.extend)
    chs = []
    for i, peer in enumerate(("10.0.0.2", "10.0.0.3")):
        ch = Channel(ChannelSettings(peer, "main", 65010, 65010))
        rib.add_channel(ch)
        rib.channel_up(ch, Source(SourceKind.IBGP, ip(peer), 65010, 10 + i), [V4])
        chs.append(ch)
    return rib, chs, changes


def selected(rib: Rib, prefix: object) -> list[str]:
    dest = rib.table("main", V4).get(prefix)  # type: ignore[arg-type]
    return [str(p.attrs.next_hop) for p in dest.selected] if dest else []


def loaded() -> tuple[Rib, list[Channel], list[Change]]:
    """a sends every prefix via 10.66.0.9 (cost 10), b the even ones via 10.67.0.9 (cost 20)."""
    COSTS.clear()
    COSTS.update({"10.66.0.9": 10, "10.67.0.9": 20})
    rib, (a, b), changes = setup()
    rib.receive(a, [(V4, attrs((), "10.66.0.9"), PREFIXES)], [], 1.0)
    rib.receive(b, [(V4, attrs((), "10.67.0.9"), PREFIXES[::2])], [], 1.0)
    assert all(selected(rib, p) == ["10.66.0.9"] for p in PREFIXES)
    changes.clear()
    return rib, [a, b], changes


def test_slices_give_what_one_pass_gives_each_prefix_changed_once() -> None:
    rib, _chs, changes = loaded()
    COSTS["10.66.0.9"] = None  # a's next hop unreachable
    r = Reselector(rib, slice_size=64)
    r.changed("main", {ip("10.66.0.9")})
    steps = 0
    while r.step():
        steps += 1
        assert steps < 100
    assert steps >= N // 64 - 1  # really in slices
    assert [selected(rib, p) for p in PREFIXES] == [["10.67.0.9"] if i % 2 == 0 else [] for i in range(N)]
    assert sorted(c.prefix for c in changes) == sorted(PREFIXES)  # each prefix once, no churn

    # The same change on a twin RIB decided in one go gives the same kernel picture.
    twin, _c2, twin_changes = loaded()
    COSTS["10.66.0.9"] = None
    twin.next_hops_changed("main", {ip("10.66.0.9")})
    assert sorted((c.prefix, [str(p.attrs.next_hop) for p in c.best]) for c in twin_changes) == sorted(
        (c.prefix, [str(p.attrs.next_hop) for p in c.best]) for c in changes
    )


def test_updates_and_further_changes_between_slices_end_decided_with_the_latest_answers() -> None:
    rib, (a, b), changes = loaded()
    COSTS["10.66.0.9"] = 30  # dearer than b's 20: the even prefixes move to b
    r = Reselector(rib, slice_size=100)
    r.changed("main", {ip("10.66.0.9")})
    assert r.step()  # prefixes 0..99 passed
    assert selected(rib, PREFIXES[0]) == ["10.67.0.9"]
    assert selected(rib, PREFIXES[500]) == ["10.66.0.9"]  # not reached yet
    # An UPDATE for a prefix not reached yet is decided with the new answers at once.
    rib.receive(b, [(V4, attrs((), "10.67.0.9"), [PREFIXES[501]])], [], 2.0)
    assert selected(rib, PREFIXES[501]) == ["10.67.0.9"]
    # b's next hop gets dearer still while the pass runs: the prefixes already passed
    # (0..99, which moved to b) must come back to a.
    COSTS["10.67.0.9"] = 40
    r.changed("main", {ip("10.67.0.9")})
    r.run()
    assert not r.busy
    want = [["10.66.0.9"]] * N
    assert [selected(rib, p) for p in PREFIXES] == want
    # And the last change of every prefix is what it holds now.
    last = {c.prefix: [str(p.attrs.next_hop) for p in c.best] for c in changes}
    assert all(last[p] == ["10.66.0.9"] for p in last)
    # A withdrawal between slices is simply skipped.
    COSTS["10.66.0.9"] = None
    r.changed("main", {ip("10.66.0.9")})
    r.step()
    rib.receive(a, [], [(V4, [PREFIXES[-1]])], 3.0)
    r.run()
    assert rib.table("main", V4).get(PREFIXES[-1]) is None  # 999: a alone, withdrawn
    assert selected(rib, PREFIXES[-2]) == ["10.67.0.9"]  # 998: b's path is left
    assert selected(rib, PREFIXES[-3]) == []  # 997: a alone, now unreachable


def test_a_next_hop_no_path_carries_costs_no_pass() -> None:
    rib, _chs, changes = loaded()
    r = Reselector(rib, slice_size=10)
    COSTS["10.99.0.99"] = 5
    r.changed("main", {ip("10.99.0.99")})  # never interned in any attribute set
    assert not r.busy
    assert r.decided == 0 and changes == []
    # One that is carried makes a pass over the table.
    COSTS["10.67.0.9"] = 5
    r.changed("main", {ip("10.67.0.9")})
    assert r.busy
    r.run()
    assert r.decided == N
    assert selected(rib, PREFIXES[0]) == ["10.67.0.9"] and selected(rib, PREFIXES[1]) == ["10.66.0.9"]
