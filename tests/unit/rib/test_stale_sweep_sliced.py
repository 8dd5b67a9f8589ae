"""A graceful-restart sweep of many stale routes goes through the sliced drain (rib/drain.py):
the event loop is never held for a whole table, and what the returning peer sends again
meanwhile is kept."""

from __future__ import annotations

from rib.prefix import Afi, make_key
from rib.stale import has_stale, is_stale, resume, retain, sweep
from tests.unit.rib.helpers import attrs
from tests.unit.rib.test_engine import World

V4 = Afi.IPV4
N = 50


def keys(n: int) -> list[bytes]:
    return [make_key(24, bytes((10, 200, i, 0))) for i in range(n)]


def loaded() -> tuple[World, object, list[bytes]]:
    w = World()
    w.rib.drain_slice = 8
    a = w.channel("192.0.2.1", "red", 65001)
    src = w.up(a)
    ks = keys(N)
    a_attrs = attrs(path=(65001,), nh="192.0.2.1")
    w.rib.receive(a, [(V4, a_attrs, ks)], [], 1.0)
    retain(w.rib, a)
    # The same speaker comes back: it resumes the stale source.
    assert resume(a, src) is src
    w.rib.channel_up(a, src, (V4,))
    w.changes.clear()
    return w, a, ks


def test_a_big_sweep_is_sliced_and_ends_with_every_stale_route_gone() -> None:
    w, a, ks = loaded()
    table = w.rib.table("red", V4)
    assert sweep(w.rib, a) == N  # type: ignore[arg-type]
    assert not has_stale(a)  # type: ignore[arg-type]
    # Nothing withdrawn in the sweep call itself: it is queued for the loop's slices.
    assert w.changes == [] and len(table) == N and w.rib.draining
    assert not any(is_stale(a, V4, k, table.get(k).selected[0].source) for k in ks)  # type: ignore[arg-type,union-attr]
    steps = 0
    while w.rib.drain_step(w.rib.drain_slice):
        steps += 1
        assert len(w.changes) == 8 * steps  # one slice per step
    assert len(table) == 0 and len(w.changes) == N
    assert all(c.best == () for c in w.changes)


def test_what_the_peer_sends_again_during_the_sliced_sweep_stays() -> None:
    w, a, ks = loaded()
    table = w.rib.table("red", V4)
    sweep(w.rib, a)  # type: ignore[arg-type]
    w.rib.drain_step(w.rib.drain_slice)  # the first slice is gone
    again = attrs(path=(65001, 65002), nh="192.0.2.1")
    late = ks[-5:]  # not yet drained
    w.rib.receive(a, [(V4, again, late)], [], 3.0)  # type: ignore[arg-type]
    while w.rib.drain_step(w.rib.drain_slice):
        pass
    assert sorted(table.dests) == sorted(late)
    assert all(table.get(k).selected[0].attrs is again for k in late)  # type: ignore[union-attr]
