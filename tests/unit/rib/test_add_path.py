"""ADD-PATH (RFC 7911) in the RIB: a path per (peer, path id) in, every exported path out."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policy.filters import ACCEPT_ALL, Policy, compile_term
from rib.attrs import PathAttrs
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey
from rib.route import Change, SourceKind
from tests.unit.rib.helpers import LOCAL_AS, attrs, ip, key, source

V4 = Afi.IPV4
P = key("10.77.0.0/24")
Q = key("10.78.0.0/24")


def world() -> tuple[Rib, list[Change]]:
    rib = Rib(LOCAL_AS, router_id=0x01010101)
    changes: list[Change] = []
    rib.subscribers.append(changes.append)
    return rib, changes


def channel(rib: Rib, peer: str, rx: bool = False, tx: bool = False, **kw: Any) -> Channel:
    ch = Channel(ChannelSettings(peer, "main", LOCAL_AS, LOCAL_AS, **kw), local_addrs={V4: ip("10.70.0.1")})
    rib.add_channel(ch)
    ch.add_path_rx = frozenset({V4}) if rx else frozenset()
    ch.add_path_tx = frozenset({V4}) if tx else frozenset()
    src = source(SourceKind.IBGP, peer, LOCAL_AS, int(ip(peer)) & 0xFFFFFFFF, peer)
    rib.channel_up(ch, src, [V4])
    ch.take_pending()
    rib.take_dirty()
    return ch


def client_route(nh: str, originator: str) -> PathAttrs:
    # What a route reflector sends: the client's next hop, ORIGINATOR_ID and CLUSTER_LIST.
    return attrs(path=(), nh=nh, local_pref=100, originator_id=originator, cluster_list=("10.70.0.2",))


A1 = client_route("10.70.0.11", "10.70.0.11")
A2 = client_route("10.70.0.12", "10.70.0.12")


def announce(rib: Rib, ch: Channel, prefixes: list[PrefixKey], a: PathAttrs, ids: list[int]) -> None:
    rib.receive(ch, [(V4, a, prefixes)], [], 1.0, announce_ids=[ids])


def withdraw(rib: Rib, ch: Channel, prefixes: list[PrefixKey], ids: list[int]) -> None:
    rib.receive(ch, [], [(V4, prefixes)], 2.0, withdraw_ids=[ids])


def next_hops(rib: Rib, prefix: PrefixKey) -> list[str]:
    dest = rib.table("main", V4).get(prefix)
    return [] if dest is None else [str(p.attrs.next_hop) for p in dest.selected]


def test_two_path_ids_from_one_peer_are_two_paths_and_ecmp() -> None:
    rib, changes = world()
    rr = channel(rib, "10.70.0.2", rx=True)
    announce(rib, rr, [P], A1, [1])
    announce(rib, rr, [P], A2, [2])
    assert next_hops(rib, P) == ["10.70.0.11", "10.70.0.12"]
    assert changes[-1].best[1].attrs is A2
    assert rr.received() == 2 and rr.accepted == 2
    dest = rib.table("main", V4).get(P)
    assert dest is not None and [p.source.path_id for p in dest.paths] == [1, 2]
    assert all(p.source.base is rr.source for p in dest.paths)
    # A re-announcement of path 2 with other attributes replaces path 2 only.
    A3 = client_route("10.70.0.13", "10.70.0.12")
    announce(rib, rr, [P], A3, [2])
    assert next_hops(rib, P) == ["10.70.0.11", "10.70.0.13"]
    assert rr.received() == 2


def test_withdraw_with_a_path_id_removes_only_that_path() -> None:
    rib, changes = world()
    rr = channel(rib, "10.70.0.2", rx=True)
    announce(rib, rr, [P, Q], A1, [1, 1])
    announce(rib, rr, [P, Q], A2, [2, 2])
    withdraw(rib, rr, [P], [2])
    assert next_hops(rib, P) == ["10.70.0.11"]
    assert next_hops(rib, Q) == ["10.70.0.11", "10.70.0.12"]
    # An unknown id withdraws nothing.
    withdraw(rib, rr, [P], [7])
    assert next_hops(rib, P) == ["10.70.0.11"]
    withdraw(rib, rr, [P], [1])
    assert rib.table("main", V4).get(P) is None and changes[-1].best == ()
    assert rr.received() == 2 and rr.accepted == 2


def test_equal_paths_of_one_peer_are_ordered_by_path_id() -> None:
    rib, _ = world()
    rr = channel(rib, "10.70.0.2", rx=True)
    same = client_route("10.70.0.11", "10.70.0.9")
    other = client_route("10.70.0.12", "10.70.0.9")
    announce(rib, rr, [P], other, [9])
    announce(rib, rr, [P], same, [3])
    dest = rib.table("main", V4).get(P)
    assert dest is not None and [p.source.path_id for p in dest.selected] == [3, 9]


def test_session_down_removes_every_path_id() -> None:
    rib, changes = world()
    rr = channel(rib, "10.70.0.2", rx=True)
    announce(rib, rr, [P], A1, [1])
    announce(rib, rr, [P], A2, [2])
    rib.channel_down(rr)
    assert rib.table("main", V4).get(P) is None and changes[-1].best == ()
    assert not rr.adj_in_paths and not rr.path_sources


def test_a_peer_without_add_path_is_unchanged() -> None:
    rib, _ = world()
    plain = channel(rib, "10.70.0.3")
    rib.receive(plain, [(V4, A1, [P])], [], 1.0)
    rib.receive(plain, [(V4, A2, [P])], [], 1.0)  # replaces: one path per peer
    assert next_hops(rib, P) == ["10.70.0.12"]
    assert not plain.adj_in_paths and plain.received() == 1


def sent(ch: Channel) -> dict[tuple[int, PrefixKey], PathAttrs | None]:
    """Pending ADD-PATH output as (path id, prefix) -> attributes (None: withdraw)."""
    out = {(int.from_bytes(k[:4], "big"), k[4:]): v for k, v in ch.pending.get(V4, {}).items()}
    ch.take_pending()
    return out


def test_route_reflector_sends_every_path_with_stable_ids() -> None:
    rib, _ = world()
    c1 = channel(rib, "10.70.0.11", rr_client=True)
    c2 = channel(rib, "10.70.0.12", rr_client=True)
    plain = channel(rib, "10.70.0.20", rr_client=True)
    r = channel(rib, "10.70.0.21", tx=True, rr_client=True)
    rib.receive(c1, [(V4, attrs(path=(), nh="10.70.0.11"), [P])], [], 1.0)
    rib.receive(c2, [(V4, attrs(path=(), nh="10.70.0.12"), [P])], [], 1.0)
    out = sent(r)
    assert c1.source is not None and c2.source is not None
    id1, id2 = c1.source.tx_id, c2.source.tx_id
    assert set(out) == {(id1, P), (id2, P)} and id1 != id2
    assert {str(a.next_hop) for a in out.values() if a is not None} == {"10.70.0.11", "10.70.0.12"}
    # The reflected paths carry ORIGINATOR_ID and our CLUSTER_LIST (RFC 4456).
    assert all(a is not None and a.originator_id and a.cluster_list for a in out.values())
    assert r.advertised() == 2
    # Without ADD-PATH: the best path only.
    assert list(plain.pending.get(V4, {})) == [P]
    # One path goes: its id is withdrawn, the other is not re-sent.
    rib.receive(c2, [], [(V4, [P])], 2.0)
    assert sent(r) == {(id2, P): None}
    # A path that is not the best changes: still sent (the selection did not change).
    rib.receive(c2, [(V4, attrs(path=(), nh="10.70.0.12", local_pref=50), [P])], [], 3.0)
    dest = rib.table("main", V4).get(P)
    assert dest is not None and len(dest.selected) == 1
    out = sent(r)
    assert list(out) == [(id2, P)] and out[(id2, P)] is not None and out[(id2, P)].local_pref == 50
    # Its sender's own path is never sent back to it: c1 (no ADD-PATH) gets c2's only when best.
    rib.channel_down(c1)
    assert sent(r) == {(id1, P): None}
    assert r.advertised() == 1


def test_add_path_sender_gets_the_table_at_session_up_and_refresh_keys() -> None:
    rib, _ = world()
    rr = channel(rib, "10.70.0.2", rx=True)
    announce(rib, rr, [P], A1, [1])
    announce(rib, rr, [P], A2, [2])
    client = Channel(
        ChannelSettings("10.70.0.21", "main", LOCAL_AS, LOCAL_AS, rr_client=True),
        local_addrs={V4: ip("10.70.0.1")},
    )
    rib.add_channel(client)
    client.add_path_tx = frozenset({V4})
    rib.channel_up(client, source(SourceKind.IBGP, "10.70.0.21", LOCAL_AS, 21), [V4])
    out = sent(client)
    assert len(out) == 2 and {k[1] for k in out} == {P}
    assert {str(a.next_hop) for a in out.values() if a is not None} == {"10.70.0.11", "10.70.0.12"}
    # The RR's two paths have their own ids (one source per received path id).
    assert rr.path_sources[1].tx_id != rr.path_sources[2].tx_id
    assert {k[0] for k in out} == {rr.path_sources[1].tx_id, rr.path_sources[2].tx_id}


# --- any sequence of ADD-PATH announcements and withdrawals ------------------------------------

PREFIXES = [P, Q, key("10.79.0.0/24")]
ATTRS = [A1, A2, client_route("10.70.0.13", "10.70.0.13")]
Op = tuple[bool, int, int, int]  # (announce?, prefix index, path id, attrs index)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 2), st.integers(0, 3), st.integers(0, 2)), max_size=40)
)
def test_any_sequence_matches_a_model_of_paths_per_path_id(ops: list[Op]) -> None:
    rib, _ = world()
    rr = channel(rib, "10.70.0.2", rx=True)
    r = channel(rib, "10.70.0.21", tx=True, rr_client=True)
    model: dict[tuple[int, int], PathAttrs] = {}  # (prefix, path id) -> attrs
    for announce_it, pi, pid, ai in ops:
        if announce_it:
            announce(rib, rr, [PREFIXES[pi]], ATTRS[ai], [pid])
            model[(pi, pid)] = ATTRS[ai]
        else:
            withdraw(rib, rr, [PREFIXES[pi]], [pid])
            model.pop((pi, pid), None)
    table = rib.table("main", V4)
    advertised: dict[tuple[int, PrefixKey], PathAttrs] = {}
    for k, a in r.adj_out.get(V4, {}).items():
        advertised[(int.from_bytes(k[:4], "big"), k[4:])] = a
    for pi, prefix in enumerate(PREFIXES):
        want = {pid: a for (i, pid), a in model.items() if i == pi}
        dest = table.get(prefix)
        got = {} if dest is None else {p.source.path_id: p.attrs for p in dest.paths}
        assert got == want
        # The ADD-PATH client is advertised every one of them, each under its own id.
        sent = {k: a for k, a in advertised.items() if k[1] == prefix}
        assert len(sent) == len(want)
        assert sorted(str(a.next_hop) for a in sent.values()) == sorted(
            str(a.next_hop) for a in want.values()
        )
    assert rr.received() == len(model) == rr.accepted


def test_soft_reconfiguration_re_imports_every_path_id() -> None:
    rib, _ = world()
    rr = channel(rib, "10.70.0.2", rx=True)
    announce(rib, rr, [P], A1, [1])
    announce(rib, rr, [P], A2, [2])
    no_c2 = Policy(
        "no-c2", [compile_term({"next_hop": "10.70.0.12"}, "reject", {}), compile_term({}, "accept", {})]
    )
    settings_ = rr.settings
    rib.reconfigure(rr, ChannelSettings("10.70.0.2", "main", LOCAL_AS, LOCAL_AS, import_filter=no_c2), 5.0)
    assert next_hops(rib, P) == ["10.70.0.11"]
    assert rr.received() == 2 and rr.accepted == 1
    rib.reconfigure(
        rr, ChannelSettings("10.70.0.2", "main", LOCAL_AS, LOCAL_AS, import_filter=ACCEPT_ALL), 6.0
    )
    assert next_hops(rib, P) == ["10.70.0.11", "10.70.0.12"]
    assert rr.accepted == 2 and settings_ is not rr.settings
