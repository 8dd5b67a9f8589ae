"""Graceful restart in the RIB (rib/stale.py): stale paths kept, refreshed, swept per family."""

from __future__ import annotations

from rib.attrs import PathAttrs
from rib.channel import Channel
from rib.prefix import Afi, parse_prefix
from rib.route import Change
from rib.stale import is_stale, resume, retain, stale_count, sweep
from tests.unit.rib.helpers import attrs
from tests.unit.rib.test_engine import World, pending

V4, V6 = Afi.IPV4, Afi.IPV6


def _a(nh: str = "192.0.2.1", med: int | None = None) -> PathAttrs:
    return attrs(path=(65001,), nh=nh, med=med)


def _setup() -> tuple[World, Channel, Channel]:
    w = World()
    a = w.channel("192.0.2.1", "red", 65001)
    b = w.channel("192.0.2.2", "red", 65002)
    w.up(a)
    w.up(b)
    for p in ("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"):
        w.announce(a, p, _a())
    w.announce(a, "2001:db8:1::/48", attrs(path=(65001,), nh="2001:db8::1"))
    b.take_pending()
    w.rib.take_dirty()
    w.changes.clear()
    return w, a, b


def _k(text: str) -> bytes:
    return parse_prefix(text)[1]


def test_retain_keeps_paths_in_the_loc_rib_and_tells_nobody() -> None:
    w, a, b = _setup()
    src = a.source
    assert retain(w.rib, a) == 4
    assert not a.up and a.stale_source is src
    assert w.changes == []  # no kernel change
    assert not b.has_pending()  # no withdrawal to the other peers
    dest = w.rib.table("red", V4).get(_k("10.1.0.0/16"))
    assert dest is not None and dest.selected[0].source is src
    assert is_stale(a, V4, _k("10.1.0.0/16"), src)
    assert stale_count(a) == 4 and a.received() == 0


def test_refresh_replaces_stale_and_eor_sweeps_the_rest_of_its_family_only() -> None:
    w, a, b = _setup()
    src = a.source
    assert src is not None
    retain(w.rib, a)
    # The peer comes back as the same speaker: its new session takes over the stale source.
    new = type(src)(src.kind, src.peer, src.asn, src.router_id, src.name)
    assert resume(a, new) is src
    w.rib.channel_up(a, src, (V4, V6))
    a.take_pending()
    w.rib.take_dirty()
    w.announce(a, "10.1.0.0/16", _a())  # the same route again: nothing changes anywhere
    assert w.changes == [] and not pending(b)
    w.announce(a, "10.2.0.0/16", _a(med=5))  # changed: an ordinary update
    assert [c.prefix for c in w.changes] == [_k("10.2.0.0/16")]
    assert not is_stale(a, V4, _k("10.1.0.0/16"), src)
    assert is_stale(a, V4, _k("10.3.0.0/16"), src)
    w.changes.clear()
    # End-of-RIB for IPv4: 10.3/16 was not sent again, it goes; IPv6 stays stale.
    assert sweep(w.rib, a, [V4]) == 1
    assert w.changes == [Change("red", V4, _k("10.3.0.0/16"), ())]
    assert pending(b)[_k("10.3.0.0/16")] is None  # withdrawn at the other peer too
    assert w.rib.table("red", V4).get(_k("10.3.0.0/16")) is None
    assert stale_count(a) == 1 and a.stale_source is src
    assert sweep(w.rib, a) == 1
    assert a.stale_source is None and w.rib.table("red", V6).get(_k("2001:db8:1::/48")) is None


def test_withdrawal_of_a_stale_prefix_removes_it() -> None:
    w, a, _b = _setup()
    src = a.source
    assert src is not None
    retain(w.rib, a)
    w.rib.channel_up(a, src, (V4, V6))
    w.withdraw(a, "10.1.0.0/16")
    assert w.rib.table("red", V4).get(_k("10.1.0.0/16")) is None
    assert stale_count(a) == 3


def test_a_different_speaker_does_not_take_over() -> None:
    w, a, _b = _setup()
    src = a.source
    assert src is not None
    retain(w.rib, a)
    other = type(src)(src.kind, src.peer, src.asn, src.router_id + 1, src.name)
    assert resume(a, other) is other


def test_second_loss_before_the_sweep_keeps_both() -> None:
    w, a, _b = _setup()
    src = a.source
    assert src is not None
    retain(w.rib, a)
    w.rib.channel_up(a, src, (V4, V6))
    w.announce(a, "10.9.0.0/16", _a())  # new in the second session
    w.announce(a, "10.1.0.0/16", _a())  # refreshed
    assert retain(w.rib, a) == 5
    assert is_stale(a, V4, _k("10.9.0.0/16"), src) and is_stale(a, V4, _k("10.1.0.0/16"), src)
    assert sweep(w.rib, a) == 5
    assert len(w.rib.table("red", V4)) == 0


def test_sweep_costs_per_stale_route_not_per_table() -> None:
    """A big table of another peer is never walked: sweep touches only the stale prefixes."""
    w, a, b = _setup()
    big = [parse_prefix(f"172.{i // 256}.{i % 256}.0/24")[1] for i in range(20_000)]
    w.rib.receive(b, [(V4, attrs(path=(65002,), nh="192.0.2.2"), big)], [], 1.0)
    retain(w.rib, a)
    table = w.rib.table("red", V4)
    calls = 0
    orig = table.withdraw

    def counting(prefix: bytes, source: object) -> Change | None:
        nonlocal calls
        calls += 1
        return orig(prefix, source)  # type: ignore[arg-type]

    table.withdraw = counting  # type: ignore[method-assign]
    sweep(w.rib, a)
    assert calls == 3  # the three stale IPv4 prefixes
