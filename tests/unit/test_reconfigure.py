"""Soft reconfiguration: new filters on a running channel re-filter without a session reset."""

from __future__ import annotations

import ipaddress

from policy.filters import ACCEPT_ALL, Policy, compile_term
from rib.attrs import PathAttrs, intern
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi, parse_prefix
from rib.route import Change, Source, SourceKind

P1 = parse_prefix("192.0.2.0/24")[1]
P2 = parse_prefix("198.51.100.0/24")[1]


def only(prefix: str) -> Policy:
    return Policy(f"only-{prefix}", [compile_term({"prefix": [prefix]}, "accept", {})])


def setup() -> tuple[Rib, Channel, Channel, list[Change]]:
    rib = Rib(65010, 1)
    seen: list[Change] = []
    rib.subscribers.append(seen.append)
    chans = []
    for addr, local in (("10.0.1.2", "10.0.1.1"), ("10.0.2.2", "10.0.2.1")):
        ch = Channel(ChannelSettings(addr, "red", 65010, 65002))
        ch.local_addrs = {Afi.IPV4: ipaddress.ip_address(local)}
        rib.add_channel(ch)
        src = Source(SourceKind.EBGP, ipaddress.ip_address(addr), 65002, int(ipaddress.ip_address(addr)))
        rib.channel_up(ch, src, [Afi.IPV4])
        ch.take_pending()
        chans.append(ch)
    a, b = chans
    attrs = intern(PathAttrs(as_path=((2, (65002,)),), next_hop=ipaddress.ip_address("10.0.1.2")))
    rib.receive(a, [(Afi.IPV4, attrs, [P1, P2])], [], 1.0)
    return rib, a, b, seen


def test_export_policy_change_sends_only_the_difference() -> None:
    rib, _a, b, _seen = setup()
    pending, _ = b.take_pending()
    assert set(pending[Afi.IPV4]) == {P1, P2}
    rib.reconfigure(b, ChannelSettings(b.name, "red", 65010, 65002, export_filter=only("192.0.2.0/24")), 2.0)
    pending, _ = b.take_pending()
    assert pending == {Afi.IPV4: {P2: None}}  # P1 unchanged: not sent again
    assert set(b.adj_out[Afi.IPV4]) == {P1}


def test_import_policy_change_refilters_the_adj_rib_in() -> None:
    rib, a, b, seen = setup()
    b.take_pending()
    seen.clear()
    rib.reconfigure(
        a, ChannelSettings(a.name, "red", 65010, 65002, import_filter=only("198.51.100.0/24")), 2.0
    )
    assert [(c.prefix, c.best) for c in seen] == [(P1, ())]
    assert rib.table("red", Afi.IPV4).get(P1) is None
    assert a.received() == 2 and a.accepted == 1
    pending, _ = b.take_pending()
    assert pending == {Afi.IPV4: {P1: None}}
    # Back to all: the route returns from the Adj-RIB-In without asking the peer.
    rib.reconfigure(a, ChannelSettings(a.name, "red", 65010, 65002, import_filter=ACCEPT_ALL), 3.0)
    assert rib.table("red", Afi.IPV4).get(P1) is not None
    assert a.accepted == 2
    pending, _ = b.take_pending()
    assert list(pending[Afi.IPV4]) == [P1]
