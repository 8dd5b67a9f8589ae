"""The next hops the daemon hands the FIB are interned: the FIB keeps one tuple per next-hop set,
not one per UPDATE, in its per-route state."""

from __future__ import annotations

from bgpd.daemon import Daemon
from rib.route import Path, SourceKind
from tests.unit.rib.helpers import attrs, ebgp, local_source


def test_equal_next_hop_sets_share_one_tuple() -> None:
    a, b = ebgp("192.0.2.1", 65001), ebgp("192.0.2.2", 65001)
    first = (
        Path(a, attrs(path=(65001, 1), nh="192.0.2.1"), 1.0),
        Path(b, attrs(path=(65001, 2), nh="192.0.2.2"), 1.0),
    )
    again = (
        Path(a, attrs(path=(65001, 3), nh="192.0.2.1"), 2.0),
        Path(b, attrs(path=(65001, 4), nh="192.0.2.2"), 2.0),
    )
    nh = Daemon._kernel_nexthops(first)
    assert [str(x) for x in nh] == ["192.0.2.1", "192.0.2.2"]
    assert Daemon._kernel_nexthops(again) is nh
    assert Daemon._kernel_nexthops(first[:1]) is Daemon._kernel_nexthops(again[:1])
    assert Daemon._kernel_nexthops(first[:1]) != nh


def test_local_and_empty_selections_have_no_kernel_route() -> None:
    assert Daemon._kernel_nexthops(()) == ()
    local = Path(local_source(), attrs(path=()), 0.0)
    assert local.source.kind == SourceKind.LOCAL and Daemon._kernel_nexthops((local,)) == ()
