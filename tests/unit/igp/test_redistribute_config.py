"""`[[redistribute]]` in the config, the redistributor's choices, and how `show routes` shows
redistributed routes and unusable paths (pure: a KernelView filled by hand)."""

from __future__ import annotations

import ipaddress

import pytest

from bgpd.config.errors import ConfigError
from bgpd.config.model import RedistributeConfig
from bgpd.config.toml import parse_config
from bgpd.redistribute import CONNECTED, KERNEL, Announce, Redistributor
from bgpd.views import routes_json
from fib.kernel_view import KernelAddr, KernelRoute, KernelView, RouteChange
from policy.filters import ACCEPT_ALL, REJECT_ALL, Filter
from rib.channel import Channel, ChannelSettings
from rib.decision import Decision
from rib.engine import Rib
from rib.prefix import Afi, parse_prefix
from rib.route import Source, SourceKind
from tests.unit.rib.helpers import attrs, ip, key

BASE = """
[router]
asn = 65010
router_id = "10.0.0.1"
[vrf.red]
table = 500
[policy.pods]
[[policy.pods.term]]
match.prefix = "10.244.0.0/16 le 26"
action = "accept"
"""


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(BASE + text, "f.toml")
    return [f"{i.key}: {i.reason}" for i in e.value.issues]


def test_redistribute_entries_parse() -> None:
    cfg = parse_config(
        BASE
        + """
[[redistribute]]
kernel_table = 254
protocol = ["static", 80]
policy = "pods"
[[redistribute]]
vrf = "red"
connected = true
[[redistribute]]
kernel_table = 600
""",
        "f.toml",
    )
    assert cfg.redistribute == [
        RedistributeConfig("main", 254, (4, 80), False, "pods"),
        RedistributeConfig("red", None, (), True, "all"),
        RedistributeConfig("main", 600, (), False, "all"),
    ]
    assert cfg.kernel.resolve_next_hops is True


def test_redistribute_errors_name_the_key() -> None:
    got = issues(
        """
[[redistribute]]
vrf = "blue"
kernel_table = 254
protocol = ["static", "nope", 300]
policy = "missing"
[[redistribute]]
connected = true
kernel_table = 254
[[redistribute]]
protocol = 186
[[redistribute]]
kernel_table = 255
colour = "red"
"""
    )
    text = "\n".join(got)
    assert "redistribute[0].vrf: no vrf 'blue'" in text
    assert "redistribute[0].protocol[1]: unknown protocol name 'nope'" in text
    assert "redistribute[0].protocol[2]: 300 is out of range (0..255)" in text
    assert 'redistribute[0].policy: "missing" is neither all, none nor a defined policy' in text
    assert "redistribute[1].connected: give either kernel_table or connected = true, not both" in text
    assert "redistribute[2].kernel_table: missing (required unless connected = true)" in text
    assert "redistribute[2].protocol: 186 is our own ([kernel] protocol): never redistributed" in text
    assert "redistribute[3].colour: unknown key" in text
    assert "redistribute[3].kernel_table: 255 is the kernel's local table" in text


def route(prefix: str, protocol: int, table: int = 254, rtype: int = 6) -> KernelRoute:
    afi, k = parse_prefix(prefix)
    return KernelRoute(table, afi, k, 0, protocol, rtype, ())


def test_default_protocols_are_any_but_ours_and_the_kernels_and_the_first_entry_wins() -> None:
    view = KernelView()
    view.load(
        [route("10.244.1.0/26", 80), route("10.77.0.0/24", 2, rtype=1), route("10.89.0.0/24", 186)],
        [KernelAddr(2, ip("10.77.0.1"), ipaddress.ip_network("10.77.0.0/24"))],
    )
    r = Redistributor(65010, 1, 186)
    filters: dict[str, Filter] = {"all": ACCEPT_ALL, "none": REJECT_ALL}
    diff = r.configure([RedistributeConfig("main", 254)], filters, view)
    assert [(type(d), d.prefix, d.source.name) for d in diff] == [(Announce, key("10.244.1.0/26"), KERNEL)]
    # Rejected by policy: withdrawn on reconfiguration; connected: the interface's subnet.
    diff = r.configure(
        [RedistributeConfig("main", 254, policy="none"), RedistributeConfig("main", connected=True)],
        filters,
        view,
    )
    assert sorted((type(d).__name__, d.prefix, d.source.name) for d in diff) == [
        ("Announce", key("10.77.0.0/24"), CONNECTED),
        ("Withdraw", key("10.244.1.0/26"), KERNEL),
    ]
    # A change of a route that is announced as it was: nothing to say.
    t = view.apply([RouteChange(route("10.77.0.0/24", 2, rtype=1), True)])
    assert r.changed(view, t.routes, t.addrs) == []


def test_show_routes_names_redistributed_sources_and_unusable_paths() -> None:
    rib = Rib(65010, 1, 8, False, Decision())
    rib.add_vrf("main")
    rib.set_resolver("main", lambda nh: None if str(nh) == "10.66.0.9" else 0)
    kernel_src = Source(SourceKind.LOCAL, None, 65010, 1, KERNEL)
    rib.originate("main", Afi.IPV4, key("10.244.1.0/26"), attrs(origin=2), 1.0, kernel_src)
    ch = Channel(ChannelSettings("10.0.0.2", "main", 65010, 65010))
    rib.add_channel(ch)
    rib.channel_up(ch, Source(SourceKind.IBGP, ip("10.0.0.2"), 65010, 2), [Afi.IPV4])
    rib.receive(ch, [(Afi.IPV4, attrs((), "10.66.0.9"), [key("198.18.0.0/24")])], [], 1.0)
    tables = [("main", 254, rib.table("main", Afi.IPV4))]
    plain = routes_json(tables, None, False, 2.0)["routes"]
    assert [(r["prefix"], r["paths"][0]["source"]) for r in plain] == [("10.244.1.0/26", "kernel")]
    full = routes_json(tables, None, True, 2.0)["routes"]
    unusable = next(r for r in full if r["prefix"] == "198.18.0.0/24")
    assert [(p["best"], p["reason"]) for p in unusable["paths"]] == [(False, "next hop unresolvable")]
    rib.withdraw_local("main", Afi.IPV4, key("10.244.1.0/26"), kernel_src)
    assert rib.table("main", Afi.IPV4).get(key("10.244.1.0/26")) is None
