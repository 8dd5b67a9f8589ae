"""Graceful restart of a peer that sends ADD-PATH paths (rib/stale.py, RFC 4724 + RFC 7911).

A route reflector sends several paths per prefix, each under a path id; over its restart every
path the import policy accepted stays in the Loc-RIB under its per-path-id source, marked stale
per (family, path id, prefix), and the new session takes those same sources over.
"""

from __future__ import annotations

import asyncio

import structlog

from bgpd.connection import Negotiated, SessionClosed
from bgpd.graceful import Helper
from bgpd.wire.messages import Capabilities, GracefulRestart
from policy.filters import Policy, compile_term
from rib.channel import Channel
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey
from rib.route import Change, Path, Source
from rib.stale import has_stale, is_stale, resume, retain, stale_count, stale_families, sweep
from tests.unit.rib.helpers import attrs, key
from tests.unit.rib.test_add_path import A1, A2, announce, channel, client_route, next_hops, withdraw, world

V4 = Afi.IPV4
P = key("10.77.0.0/24")
Q = key("10.78.0.0/24")
R = key("10.79.0.0/24")
A3 = client_route("10.70.0.13", "10.70.0.13")
RR = "10.70.0.2"


def _net(**rr_kw: object) -> tuple[Rib, list[Change], Channel, Channel, Channel]:
    """The reflector (ADD-PATH receive) with P: ids 1 and 2, Q: id 1; a plain client and an
    ADD-PATH-send client that were told everything."""
    rib, changes = world()
    rr = channel(rib, RR, rx=True, **rr_kw)  # type: ignore[arg-type]
    plain = channel(rib, "10.70.0.3", rr_client=True)
    tx = channel(rib, "10.70.0.4", tx=True, rr_client=True)
    announce(rib, rr, [P, Q], A1, [1, 1])
    announce(rib, rr, [P], A2, [2])
    for ch in (plain, tx):
        ch.take_pending()
    rib.take_dirty()
    changes.clear()
    return rib, changes, rr, plain, tx


def _paths(rib: Rib, prefix: PrefixKey) -> list[Path]:
    dest = rib.table("main", V4).get(prefix)
    return [] if dest is None else list(dest.paths)


def _back(rib: Rib, rr: Channel, add_path: bool = True) -> Source:
    """The reflector's new session: the same speaker, so it resumes the stale source."""
    old = rr.stale_source
    assert old is not None
    new = Source(old.kind, old.peer, old.asn, old.router_id, old.name)
    use = resume(rr, new)
    assert use is old
    rr.add_path_rx = frozenset({V4}) if add_path else frozenset()  # as the daemon sets it
    rib.channel_up(rr, use, [V4])
    rr.take_pending()
    rib.take_dirty()
    return use


def _quiet(*chans: Channel) -> bool:
    return not any(ch.has_pending() for ch in chans)


def test_retain_keeps_every_path_id_stale_and_tells_nobody() -> None:
    rib, changes, rr, plain, tx = _net()
    src = rr.source
    assert retain(rib, rr) == 3
    assert changes == [] and _quiet(plain, tx)  # the kernel and the clients see nothing
    assert next_hops(rib, P) == ["10.70.0.11", "10.70.0.12"] and next_hops(rib, Q) == ["10.70.0.11"]
    assert rr.stale_source is src and has_stale(rr) and stale_families(rr) == [V4]
    for prefix in (P, Q):
        assert all(is_stale(rr, V4, prefix, p.source) for p in _paths(rib, prefix))
    assert stale_count(rr) == 3 and rr.received() == 0


def test_identical_resend_after_resume_changes_nothing_and_reuses_the_sources() -> None:
    rib, changes, rr, plain, tx = _net()
    before = {(p.source.path_id, prefix): p.source for prefix in (P, Q) for p in _paths(rib, prefix)}
    retain(rib, rr)
    _back(rib, rr)
    announce(rib, rr, [P, Q], A1, [1, 1])
    announce(rib, rr, [P], A2, [2])
    assert changes == [] and _quiet(plain, tx)
    assert rr.path_source(1) is before[(1, P)] and rr.path_source(2) is before[(2, P)]
    after = {(p.source.path_id, prefix): p.source for prefix in (P, Q) for p in _paths(rib, prefix)}
    assert after == before  # the very same source objects hold the paths
    assert stale_count(rr) == 0 and rr.stale_source is None and not has_stale(rr)
    assert not any(is_stale(rr, V4, P, p.source) for p in _paths(rib, P))
    assert rr.received() == 3 and rr.accepted == 3
    assert sweep(rib, rr, [V4]) == 0 and next_hops(rib, P) == ["10.70.0.11", "10.70.0.12"]


def test_a_path_id_not_sent_again_goes_at_end_of_rib() -> None:
    rib, changes, rr, _plain, tx = _net()
    retain(rib, rr)
    _back(rib, rr)
    announce(rib, rr, [P, Q], A1, [1, 1])  # path 2 of P does not come back
    assert changes == [] and next_hops(rib, P) == ["10.70.0.11", "10.70.0.12"]
    src2 = rr.path_source(2)
    assert is_stale(rr, V4, P, src2) and not is_stale(rr, V4, P, rr.path_source(1))
    assert stale_count(rr) == 1
    assert sweep(rib, rr, [V4]) == 1  # End-of-RIB
    assert next_hops(rib, P) == ["10.70.0.11"] and next_hops(rib, Q) == ["10.70.0.11"]
    assert [c.prefix for c in changes] == [P]
    withdrawn = [k for k, v in tx.pending.get(V4, {}).items() if v is None]
    assert withdrawn == [src2.tx_id.to_bytes(4, "big") + P]  # the ADD-PATH client loses that path only
    assert rr.stale_source is None and stale_count(rr) == 0


def test_a_withdrawn_path_id_goes_at_once() -> None:
    rib, changes, rr, _plain, tx = _net()
    retain(rib, rr)
    _back(rib, rr)
    withdraw(rib, rr, [P], [2])
    assert next_hops(rib, P) == ["10.70.0.11"]
    assert [c.prefix for c in changes] == [P] and stale_count(rr) == 2
    assert any(v is None for v in tx.pending.get(V4, {}).values())
    withdraw(rib, rr, [Q], [1])
    assert next_hops(rib, Q) == [] and stale_count(rr) == 1
    withdraw(rib, rr, [R], [7])  # never known: nothing happens
    assert stale_count(rr) == 1 and next_hops(rib, P) == ["10.70.0.11"]


def test_paths_numbered_anew_lose_no_next_hop_and_the_displaced_go_at_end_of_rib() -> None:
    """FRR numbers its paths in the order its clients came back: c1's path under id 2, c2's
    under id 1. Each path id sent with other attributes keeps its stale path (displaced) until
    the sweep, so the ECMP set never loses a next hop in between."""
    rib, changes, rr, _plain, tx = _net()
    retain(rib, rr)
    _back(rib, rr)
    announce(rib, rr, [P], A2, [1])  # id 1 now carries c2's path
    assert set(next_hops(rib, P)) == {"10.70.0.11", "10.70.0.12"}
    announce(rib, rr, [P], A1, [2])  # and id 2 c1's
    announce(rib, rr, [Q], A1, [1])  # Q's id 1 unchanged: refreshed in place
    assert all({"10.70.0.11", "10.70.0.12"} <= {str(p.attrs.next_hop) for p in c.best} for c in changes)
    displaced = [p for p in _paths(rib, P) if p.source is rr.stale_displaced_sources.get(p.source.path_id)]
    assert len(displaced) == 2 and all(is_stale(rr, V4, P, p.source) for p in displaced)
    assert stale_count(rr) == 2 and has_stale(rr)
    live = [p for p in _paths(rib, P) if p not in displaced]
    assert sorted((p.source.path_id, str(p.attrs.next_hop)) for p in live) == [
        (1, "10.70.0.12"),
        (2, "10.70.0.11"),
    ]
    assert not any(is_stale(rr, V4, P, p.source) for p in live)
    assert all(p.source.base is rr.source for p in _paths(rib, P))  # none goes back to rr
    changes.clear()
    assert sweep(rib, rr, [V4]) == 2  # End-of-RIB
    assert all({"10.70.0.11", "10.70.0.12"} <= {str(p.attrs.next_hop) for p in c.best} for c in changes)
    assert {id(p) for p in _paths(rib, P)} == {id(p) for p in live} and set(next_hops(rib, P)) == {
        "10.70.0.11",
        "10.70.0.12",
    }
    assert next_hops(rib, Q) == ["10.70.0.11"] and rr.stale_source is None
    assert not rr.stale_displaced and not rr.stale_displaced_sources
    # The ADD-PATH client was told of the displaced paths and then of their withdrawal: it
    # ends with the two live paths only.
    assert len(tx.adj_out_ids[V4][P]) == 2


def test_a_new_path_id_during_the_restart_is_not_stale_and_outlives_the_sweep() -> None:
    rib, _changes, rr, _plain, _tx = _net()
    retain(rib, rr)
    _back(rib, rr)
    announce(rib, rr, [P, R], A3, [3, 3])
    assert next_hops(rib, P) == ["10.70.0.11", "10.70.0.12", "10.70.0.13"]
    assert not is_stale(rr, V4, P, rr.path_source(3)) and stale_count(rr) == 3
    assert sweep(rib, rr) == 3
    assert (
        next_hops(rib, P) == ["10.70.0.13"]
        and next_hops(rib, Q) == []
        and next_hops(rib, R) == ["10.70.0.13"]
    )
    assert rr.received() == 2


def test_only_the_path_ids_the_import_policy_accepted_are_kept() -> None:
    no_c2 = Policy(
        "no-c2", [compile_term({"next_hop": "10.70.0.12"}, "reject", {}), compile_term({}, "accept", {})]
    )
    rib, changes, rr, plain, tx = _net(import_filter=no_c2)
    assert next_hops(rib, P) == ["10.70.0.11"]
    assert retain(rib, rr) == 2  # P and Q of path 1; path 2 was never in the Loc-RIB
    assert changes == [] and next_hops(rib, P) == ["10.70.0.11"]
    assert list(rr.stale_paths[V4]) == [1]
    _back(rib, rr)
    announce(rib, rr, [P, Q], A1, [1, 1])
    announce(rib, rr, [P], A2, [2])  # still rejected
    assert changes == [] and _quiet(plain, tx) and stale_count(rr) == 0
    assert next_hops(rib, P) == ["10.70.0.11"]


def test_a_second_loss_before_the_sweep_keeps_both() -> None:
    rib, _changes, rr, _plain, _tx = _net()
    retain(rib, rr)
    src = _back(rib, rr)
    announce(rib, rr, [R], A3, [3])  # new in the second session
    announce(rib, rr, [P], A1, [1])  # refreshed
    assert retain(rib, rr) == 4  # P/1 (again stale), Q/1, P/2, R/3
    assert rr.stale_source is src and not rr.up
    assert next_hops(rib, R) == ["10.70.0.13"] and is_stale(rr, V4, R, _paths(rib, R)[0].source)
    assert sweep(rib, rr) == 4
    assert len(rib.table("main", V4)) == 0 and not rr.stale_path_sources


def test_a_session_back_without_add_path_does_not_refresh_the_path_ids() -> None:
    """Its plain routes are of another source: the stale per-path-id ones wait for the sweep."""
    rib, _changes, rr, _plain, _tx = _net()
    retain(rib, rr)
    _back(rib, rr, add_path=False)
    rib.receive(rr, [(V4, A1, [P])], [], 3.0)
    assert len(_paths(rib, P)) == 3 and stale_count(rr) == 3
    assert sweep(rib, rr) == 3
    assert [p.source for p in _paths(rib, P)] == [rr.source] and next_hops(rib, Q) == []


def test_plain_and_add_path_stale_are_refreshed_apart() -> None:
    """A plain withdrawal of P must not drop P's stale path ids, nor the reverse."""
    rib, _changes, rr, _plain, _tx = _net()
    rib.receive(rr, [(V4, attrs(path=(), nh="10.70.0.2", local_pref=100), [R])], [], 1.0)  # no id
    retain(rib, rr)
    _back(rib, rr)
    rib.receive(rr, [], [(V4, [P])], 3.0)  # plain withdrawal: P has no plain path
    assert stale_count(rr) == 4 and len(_paths(rib, P)) == 2
    withdraw(rib, rr, [R], [1])  # id 1 never had R
    assert stale_count(rr) == 4 and next_hops(rib, R) == ["10.70.0.2"]


def test_sweep_and_refresh_cost_per_stale_path_not_per_table() -> None:
    rib, _changes, rr, plain, _tx = _net()
    big = [key(f"172.{i // 256}.{i % 256}.0/24") for i in range(20_000)]
    rib.receive(plain, [(V4, attrs(path=(), nh="10.70.0.3", local_pref=100), big)], [], 1.0)
    retain(rib, rr)
    table = rib.table("main", V4)
    calls = 0
    orig = table.withdraw

    def counting(prefix: bytes, source: Source) -> Change | None:
        nonlocal calls
        calls += 1
        return orig(prefix, source)

    table.withdraw = counting  # type: ignore[method-assign]
    _back(rib, rr)
    withdraw(rib, rr, [Q], [1])
    assert calls == 1
    sweep(rib, rr)
    assert calls == 3  # P/1 and P/2 left


# --- through the daemon's helper (bgpd/graceful.py) -------------------------------------------------

TCP_LOST = SessionClosed("connection closed by peer")
CEASE_IN = SessionClosed("received NOTIFICATION", notification_received=(6, 2, b""))


def _neg() -> Negotiated:
    cap = GracefulRestart(0x8, 120, [(1, 1, 0x80), (2, 1, 0x80)])
    return Negotiated(
        RR, 65010, 90, 30, True, [V4], True, Capabilities(graceful_restart=cap), graceful_restart=True
    )


def _helper(rib: Rib, rr: Channel) -> tuple[Helper, Source]:
    """The daemon's helper on the running loop, the reflector's session up with GR: its source."""
    helper = Helper(rib, structlog.get_logger(), lambda: None, asyncio.get_running_loop().call_later)
    src = rr.source
    assert src is not None
    helper.session_up(RR, rr, src, _neg(), 360)
    return helper, src


async def test_helper_shows_the_path_ids_stale_and_sweeps_them_at_end_of_rib() -> None:
    rib, changes, rr, _plain, _tx = _net()
    helper, src = _helper(rib, rr)
    assert helper.session_down(RR, rr, TCP_LOST, True)
    assert changes == []
    assert all(helper.is_stale(V4, P, p) for p in _paths(rib, P))  # `show routes` "stale": true
    info = helper.json(RR, rr, True)
    assert info["state"] == "restarting" and info["stale"] == 3
    new = Source(src.kind, src.peer, src.asn, src.router_id, src.name)
    rr.add_path_rx = frozenset({V4})
    use = helper.session_up(RR, rr, new, _neg(), 360)
    assert use is src and helper.json(RR, rr, True)["state"] == "waiting_eor"
    rib.channel_up(rr, use, [V4])
    announce(rib, rr, [P, Q], A1, [1, 1])
    assert changes == []
    assert [helper.is_stale(V4, P, p) for p in _paths(rib, P)] == [False, True]
    helper.end_of_rib(RR, rr, V4)
    assert next_hops(rib, P) == ["10.70.0.11"] and helper.json(RR, rr, True)["state"] == "none"
    assert not any(helper.is_stale(V4, P, p) for p in _paths(rib, P))


async def test_helper_a_notification_during_the_restart_withdraws_everything() -> None:
    rib, _changes, rr, _plain, _tx = _net()
    helper, src = _helper(rib, rr)
    helper.session_down(RR, rr, TCP_LOST, True)
    rr.add_path_rx = frozenset({V4})
    use = helper.session_up(RR, rr, Source(src.kind, src.peer, src.asn, src.router_id), _neg(), 360)
    rib.channel_up(rr, use, [V4])
    announce(rib, rr, [R], A3, [3])
    assert not helper.session_down(RR, rr, CEASE_IN, True)  # ends the ordinary way
    rib.channel_down(rr)
    while rib.drain_step():
        pass
    assert len(rib.table("main", V4)) == 0 and stale_count(rr) == 0
