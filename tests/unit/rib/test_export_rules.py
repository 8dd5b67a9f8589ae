"""Import checks and export rules as BIRD and FRR apply them (RFC 4271 5.1/6.3, RFC 4456, RFC 1997)."""

from __future__ import annotations

import ipaddress
from typing import Any

from policy.filters import Policy, compile_term
from rib.channel import Channel
from rib.prefix import Afi
from rib.route import SourceKind
from tests.unit.rib.helpers import LOCAL_AS, attrs, ip, key, source
from tests.unit.rib.test_engine import World, pending

V4 = Afi.IPV4
P = key("10.0.0.0/8")
RID = int(ipaddress.IPv4Address("10.255.255.1"))


def chan(w: World, peer: str, asn: int, local: str | None = None, **kw: Any) -> Channel:
    kw.setdefault("router_id", RID)
    ch = w.channel(peer, "red", asn, **kw)
    if local is not None:
        ch.local_addrs = {V4: ip(local)}
    w.up(ch, (V4,))
    return ch


def in_rib(w: World) -> bool:
    return w.rib.table("red", V4).get(P) is not None


# --- import checks -------------------------------------------------------------------------------


def test_own_as_in_the_path_is_a_loop() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001)
    w.announce(a, "10.0.0.0/8", attrs(path=(65001, LOCAL_AS, 65100), nh="192.0.2.1"))
    assert not in_rib(w) and a.received() == 1 and a.accepted == 0


def test_allow_local_as_accepts_that_many_occurrences() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001, allow_local_as=1)
    w.announce(a, "10.0.0.0/8", attrs(path=(65001, LOCAL_AS, LOCAL_AS), nh="192.0.2.1"))
    assert not in_rib(w)
    w.announce(a, "10.0.0.0/8", attrs(path=(65001, LOCAL_AS, 65100), nh="192.0.2.1"))
    assert in_rib(w) and a.accepted == 1


def test_first_as_must_be_the_peers_on_ebgp() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001)
    w.announce(a, "10.0.0.0/8", attrs(path=(65099, 65100), nh="192.0.2.1"))
    assert not in_rib(w)
    w.announce(a, "10.0.0.0/8", attrs(path=(65001, 65100), nh="192.0.2.1"))
    assert in_rib(w)
    # A spoofed first AS now withdraws the route that was there (treat-as-withdraw).
    w.announce(a, "10.0.0.0/8", attrs(path=(65099,), nh="192.0.2.1"))
    assert not in_rib(w)


def test_enforce_first_as_off_for_route_servers() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001, enforce_first_as=False)
    w.announce(a, "10.0.0.0/8", attrs(path=(65099, 65100), nh="192.0.2.1"))
    assert in_rib(w)


def test_ibgp_paths_need_no_first_as() -> None:
    w = World()
    i = chan(w, "10.0.0.1", LOCAL_AS)
    w.announce(i, "10.0.0.0/8", attrs(path=(65099,), nh="10.0.0.1"))
    assert in_rib(w)


def test_reflected_back_to_us_is_rejected() -> None:
    w = World()
    i = chan(w, "10.0.0.1", LOCAL_AS)
    w.announce(i, "10.0.0.0/8", attrs(path=(), nh="10.0.0.1", originator_id="10.255.255.1"))
    assert not in_rib(w)
    w.announce(i, "10.0.0.0/8", attrs(path=(), nh="10.0.0.1", cluster_list=("10.9.9.9", "10.255.255.1")))
    assert not in_rib(w)
    w.announce(i, "10.0.0.0/8", attrs(path=(), nh="10.0.0.1", cluster_list=("10.9.9.9",)))
    assert in_rib(w)


def test_cluster_id_overrides_the_router_id_in_loop_checks() -> None:
    w = World()
    i = chan(w, "10.0.0.1", LOCAL_AS, cluster_id="10.1.1.1")
    w.announce(i, "10.0.0.0/8", attrs(path=(), nh="10.0.0.1", cluster_list=("10.255.255.1",)))
    assert in_rib(w)
    w.announce(i, "10.0.0.0/8", attrs(path=(), nh="10.0.0.1", cluster_list=("10.1.1.1",)))
    assert not in_rib(w)


# --- well-known communities ----------------------------------------------------------------------


def test_no_advertise_no_export_no_export_subconfed() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001)
    b = chan(w, "192.0.2.2", 65002)
    i = chan(w, "10.0.0.1", LOCAL_AS)
    for comm, to_ebgp, to_ibgp in (
        (0xFFFFFF02, False, False),  # NO_ADVERTISE
        (0xFFFFFF01, False, True),  # NO_EXPORT
        (0xFFFFFF03, False, True),  # NO_EXPORT_SUBCONFED (no confederations: as NO_EXPORT)
        (0x00010001, True, True),
    ):
        b.take_pending()
        i.take_pending()
        b.adj_out.clear()
        i.adj_out.clear()
        w.announce(a, "10.0.0.0/8", attrs(path=(65001,), nh="192.0.2.1", communities=(comm,)))
        assert (P in b.adj_out.get(V4, {})) is to_ebgp, hex(comm)
        assert (P in i.adj_out.get(V4, {})) is to_ibgp, hex(comm)


# --- route reflection ----------------------------------------------------------------------------


def test_without_reflection_ibgp_routes_stay_off_ibgp() -> None:
    w = World()
    i1 = chan(w, "10.0.0.1", LOCAL_AS)
    i2 = chan(w, "10.0.0.2", LOCAL_AS)
    w.announce(i1, "10.0.0.0/8", attrs(path=(), nh="10.0.0.1"))
    assert P not in pending(i2)


def test_reflection_from_a_non_client_reaches_clients_only() -> None:
    w = World()
    client = chan(w, "10.0.0.1", LOCAL_AS, rr_client=True)
    nonc1 = chan(w, "10.0.0.2", LOCAL_AS)
    nonc2 = chan(w, "10.0.0.3", LOCAL_AS)
    w.announce(nonc1, "10.0.0.0/8", attrs(path=(), nh="10.0.0.2", local_pref=150))
    out = pending(client)[P]
    assert out is not None
    assert out.originator_id == "10.0.0.2"  # the source's router id
    assert out.cluster_list == ("10.255.255.1",)
    assert out.next_hop == ip("10.0.0.2") and out.local_pref == 150
    assert P not in pending(nonc2)


def test_reflection_from_a_client_reaches_everyone_but_the_client() -> None:
    w = World()
    client = chan(w, "10.0.0.1", LOCAL_AS, rr_client=True)
    client2 = chan(w, "10.0.0.4", LOCAL_AS, rr_client=True)
    nonc = chan(w, "10.0.0.2", LOCAL_AS)
    # The daemon marks a client's Source; World.up does not, so set it as the daemon does.
    src = source(SourceKind.IBGP, "10.0.0.1", LOCAL_AS, 7, "c")
    object.__setattr__(src, "rr_client", True)
    client.clear()
    w.rib.channel_up(client, src, (V4,))
    client.take_pending()
    w.announce(
        client,
        "10.0.0.0/8",
        attrs(path=(), nh="10.0.0.1", originator_id="10.7.7.7", cluster_list=("10.8.8.8",)),
    )
    for ch in (client2, nonc):
        out = pending(ch)[P]
        assert out is not None
        assert out.originator_id == "10.7.7.7"  # kept: the first reflector set it
        assert out.cluster_list == ("10.255.255.1", "10.8.8.8")
    assert P not in pending(client)


def test_ebgp_export_strips_reflection_attributes() -> None:
    w = World()
    i = chan(w, "10.0.0.1", LOCAL_AS)
    e = chan(w, "192.0.2.2", 65002)
    w.announce(
        i,
        "10.0.0.0/8",
        attrs(path=(65100,), nh="10.0.0.1", originator_id="10.7.7.7", cluster_list=("10.8.8.8",)),
    )
    out = pending(e)[P]
    assert out is not None and out.originator_id is None and out.cluster_list == ()


# --- next hops -----------------------------------------------------------------------------------


def test_third_party_next_hop_on_a_shared_subnet() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001, local="192.0.2.254")
    b = chan(w, "192.0.2.2", 65002, local="192.0.2.254")
    c = chan(w, "198.51.100.2", 65003, local="198.51.100.254")
    w.announce(a, "10.0.0.0/8", attrs(path=(65001,), nh="192.0.2.1"))
    assert pending(b)[P].next_hop == ip("192.0.2.1")  # type: ignore[union-attr]
    assert pending(c)[P].next_hop == ip("198.51.100.254")  # type: ignore[union-attr]


def test_third_party_uses_the_connected_prefix_when_known() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001, local="192.0.2.254")
    b = w.channel("192.0.2.2", "red", 65002)
    b.local_addrs = {V4: ip("192.0.2.3")}
    b.connected = {V4: ipaddress.ip_network("192.0.2.2/31")}  # .1 is outside b's link
    w.up(b, (V4,))
    w.announce(a, "10.0.0.0/8", attrs(path=(65001,), nh="192.0.2.1"))
    assert pending(b)[P].next_hop == ip("192.0.2.3")  # type: ignore[union-attr]


def test_next_hop_keep() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001)
    b = chan(w, "203.0.113.2", 65002, local="203.0.113.1", next_hop_keep=True)
    w.announce(a, "10.0.0.0/8", attrs(path=(65001,), nh="192.0.2.1"))
    out = pending(b)[P]
    assert out is not None and out.next_hop == ip("192.0.2.1") and out.as_path[0][1] == (LOCAL_AS, 65001)


# --- Adj-RIB-Out diffing -------------------------------------------------------------------------


def test_reannounce_with_identical_outgoing_attributes_sends_nothing() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001)
    b = chan(w, "203.0.113.2", 65002, local="203.0.113.1")
    w.announce(a, "10.0.0.0/8", attrs(path=(65001,), nh="192.0.2.1", med=5))
    sent = pending(b)[P]
    b.take_pending()
    w.rib.take_dirty()
    # A new MED from A changes the Loc-RIB path but not what B is sent (MED is not passed on).
    w.announce(a, "10.0.0.0/8", attrs(path=(65001,), nh="192.0.2.1", med=7))
    assert w.rib.table("red", V4).get(P).selected[0].attrs.med == 7  # type: ignore[union-attr]
    assert not b.has_pending() and b.adj_out[V4][P] is sent
    assert b not in w.rib.take_dirty()


# --- policy on export ----------------------------------------------------------------------------


def test_export_policy_next_hop_med_and_prepend() -> None:
    w = World()
    a = chan(w, "192.0.2.1", 65001)
    pol = Policy(
        "out", [compile_term({}, "accept", {"med": 40, "prepend": 2, "next_hop": "203.0.113.9"}, LOCAL_AS)]
    )
    b = chan(w, "203.0.113.2", 65002, local="203.0.113.1", export_filter=pol)
    i = chan(
        w,
        "10.0.0.2",
        LOCAL_AS,
        local="10.0.0.254",
        export_filter=Policy("self", [compile_term({}, "accept", {"next_hop": "self"})]),
    )
    w.announce(a, "10.0.0.0/8", attrs(path=(65001,), nh="192.0.2.1", med=5))
    out = pending(b)[P]
    assert out is not None
    assert out.med == 40 and out.next_hop == ip("203.0.113.9")
    assert out.as_path[0][1] == (LOCAL_AS, LOCAL_AS, LOCAL_AS, 65001)
    iout = pending(i)[P]
    assert iout is not None and iout.next_hop == ip("10.0.0.254")


def test_import_policy_next_hop_self_means_the_neighbour() -> None:
    w = World()
    pol = Policy("in", [compile_term({}, "accept", {"next_hop": "self"})])
    a = chan(w, "192.0.2.1", 65001, import_filter=pol)
    w.announce(a, "10.0.0.0/8", attrs(path=(65001,), nh="192.0.2.77"))
    assert w.rib.table("red", V4).get(P).selected[0].attrs.next_hop == ip("192.0.2.1")  # type: ignore[union-attr]
