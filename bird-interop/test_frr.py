"""Interop with FRR (bgpd + zebra in its own namespace): IPv4 and IPv6 sessions, routes both
ways checked from both views, route refresh in both directions, ADD-PATH negotiation.

    us (bgpd, AS 65010) 10.62.1.1 fd62:1::1 ---- f (FRR, AS 65003) 10.62.1.2 fd62:1::2
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.frr import Frr
from lab.netns import Lab
from lab.peers import Bgpd, kernel_routes, route_gateways, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

LOCAL_ASN = 65010
FRR_ASN = 65003
US4, FRR4 = "10.62.1.1", "10.62.1.2"
US6, FRR6 = "fd62:1::1", "fd62:1::2"
FRR_ROUTE4, FRR_ROUTE6 = "198.51.110.0/24", "2001:db8:110::/48"
OUR_ROUTE4, OUR_ROUTE6 = "10.96.0.0/12", "fd96::/48"


def frr_config() -> str:
    return f"""frr defaults traditional
hostname f
log stdout informational
router bgp {FRR_ASN}
 bgp router-id {FRR4}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {US4} remote-as {LOCAL_ASN}
 neighbor {US4} timers 3 9
 neighbor {US4} timers connect 2
 neighbor {US6} remote-as {LOCAL_ASN}
 neighbor {US6} timers 3 9
 neighbor {US6} timers connect 2
 address-family ipv4 unicast
  network {FRR_ROUTE4}
  neighbor {US4} addpath-tx-all-paths
  no neighbor {US6} activate
 exit-address-family
 address-family ipv6 unicast
  network {FRR_ROUTE6}
  neighbor {US6} activate
 exit-address-family
"""


def bgpd_config(workdir: Path) -> str:
    return f"""
[router]
asn = {LOCAL_ASN}
router_id = "{US4}"
listen = ["0.0.0.0", "::"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[[neighbor]]
address = "{FRR4}"
asn = {FRR_ASN}
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
address_families = ["ipv4"]
add_path = "receive"

[[neighbor]]
address = "{FRR6}"
asn = {FRR_ASN}
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
address_families = ["ipv6"]

[[network]]
prefix = "{OUR_ROUTE4}"

[[network]]
prefix = "{OUR_ROUTE6}"
"""


@dataclass
class FrrLab:
    workdir: Path
    lab: Lab = field(default_factory=Lab)
    us: str = ""
    f: str = ""
    frr: Frr | None = None
    bgpd: Bgpd | None = None

    def neighbor(self, address: str) -> dict:  # type: ignore[type-arg]
        assert self.bgpd is not None
        return self.bgpd.cli_json("show", "neighbors", address)["neighbors"][0]  # type: ignore[no-any-return]

    def frr_neighbor(self, address: str) -> dict:  # type: ignore[type-arg]
        assert self.frr is not None
        return self.frr.json(f"show bgp neighbors {address} json").get(address, {})  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.bgpd is not None:
            self.bgpd.stop()
        if self.frr is not None:
            self.frr.stop()
        self.lab.close()


@pytest.fixture(scope="module")
def fl(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[FrrLab]:
    need_root()
    if shutil.which("vtysh") is None:
        pytest.skip("needs FRR (apt-get install frr)")
    lab = FrrLab(tmp_path_factory.mktemp("frr"))
    try:
        lab.us = lab.lab.ns("us")
        lab.f = lab.lab.ns("f")
        lab.lab.link(lab.us, lab.f, [f"{US4}/24", f"{US6}/64"], [f"{FRR4}/24", f"{FRR6}/64"], name="vf")
        lab.frr = Frr(lab.f, lab.workdir / "f", frr_config()).start()
        wd = lab.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        lab.bgpd = Bgpd(lab.us, wd, "bgpd", config=bgpd_config(wd)).start()
        wait_for("IPv4 session", lambda: lab.neighbor(FRR4)["state"] == "Established", 40)
        wait_for("IPv6 session", lambda: lab.neighbor(FRR6)["state"] == "Established", 40)
        yield lab
    finally:
        if any(getattr(i, "rep_call", None) and i.rep_call.failed for i in request.session.items):
            if lab.bgpd is not None:
                sys.stderr.write(f"--- bgpd log ---\n{lab.bgpd.log_text()[-15000:]}\n")
            if lab.frr is not None:
                sys.stderr.write(f"--- FRR log ---\n{lab.frr.log_text()[-10000:]}\n")
        lab.close()


def our_route(fl: FrrLab, prefix: str) -> dict | None:  # type: ignore[type-arg]
    assert fl.bgpd is not None
    routes = fl.bgpd.cli_json("show", "routes", prefix)["routes"]
    return routes[0] if routes else None


def test_sessions_established_in_both_views(fl: FrrLab) -> None:
    assert fl.frr is not None
    wait_for("FRR sees IPv4 Established", lambda: fl.frr_neighbor(US4).get("bgpState") == "Established", 20)
    wait_for("FRR sees IPv6 Established", lambda: fl.frr_neighbor(US6).get("bgpState") == "Established", 20)
    assert fl.neighbor(FRR4)["negotiated"]["families"] == ["ipv4"]
    assert fl.neighbor(FRR6)["negotiated"]["families"] == ["ipv6"]


def test_frr_routes_reach_our_rib_and_kernel(fl: FrrLab) -> None:
    r4 = wait_for("FRR's IPv4 route in our RIB", lambda: our_route(fl, FRR_ROUTE4), 20)
    assert r4["paths"][0]["peer"] == FRR4 and r4["paths"][0]["as_path"] == [FRR_ASN]
    r6 = wait_for("FRR's IPv6 route in our RIB", lambda: our_route(fl, FRR_ROUTE6), 20)
    assert r6["paths"][0]["peer"] == FRR6
    k4 = wait_for(
        "IPv4 kernel route", lambda: [r for r in kernel_routes(fl.us, "main") if r["dst"] == FRR_ROUTE4], 20
    )
    assert route_gateways(k4[0]) == {FRR4}
    k6 = wait_for(
        "IPv6 kernel route",
        lambda: [r for r in kernel_routes(fl.us, "main", family=6) if r["dst"] == FRR_ROUTE6],
        20,
    )
    assert route_gateways(k6[0]) == {FRR6}


def test_our_routes_reach_frr_and_its_kernel(fl: FrrLab) -> None:
    assert fl.frr is not None
    frr = fl.frr
    r4 = wait_for(
        "our IPv4 route in FRR", lambda: frr.json("show bgp ipv4 unicast json")["routes"].get(OUR_ROUTE4), 20
    )
    assert r4[0]["nexthops"][0]["ip"] == US4
    assert r4[0]["path"] == str(LOCAL_ASN)
    r6 = wait_for(
        "our IPv6 route in FRR", lambda: frr.json("show bgp ipv6 unicast json")["routes"].get(OUR_ROUTE6), 20
    )
    assert any(nh["ip"] == US6 for nh in r6[0]["nexthops"]), r6
    # zebra installed them in FRR's kernel table.
    wait_for(
        "FRR's kernel has our IPv4 route",
        lambda: [r for r in kernel_routes(fl.f, "main") if r["dst"] == OUR_ROUTE4],
        20,
    )
    wait_for(
        "FRR's kernel has our IPv6 route",
        lambda: [r for r in kernel_routes(fl.f, "main", family=6) if r["dst"] == OUR_ROUTE6],
        20,
    )


def test_route_refresh_both_ways(fl: FrrLab) -> None:
    assert fl.frr is not None and fl.bgpd is not None
    wait_for("FRR's route", lambda: our_route(fl, FRR_ROUTE4), 20)
    # We ask FRR (ROUTE-REFRESH): it re-sends, nothing flaps, nothing is duplicated.
    before = fl.neighbor(FRR4)
    fl.bgpd.cli("neighbor", FRR4, "refresh")
    after = wait_for(
        "FRR re-sent", lambda: (a := fl.neighbor(FRR4))["updates_in"] > before["updates_in"] and a, 15
    )
    assert after["flaps"] == before["flaps"] and after["received"] == before["received"]
    # FRR asks us (`clear bgp X soft in` sends ROUTE-REFRESH): we re-send our Adj-RIB-Out.
    before = fl.neighbor(FRR4)
    fl.frr.vtysh(f"clear bgp ipv4 unicast {US4} soft in")
    after = wait_for(
        "we re-sent", lambda: (a := fl.neighbor(FRR4))["updates_out"] > before["updates_out"] and a, 15
    )
    assert after["flaps"] == before["flaps"]
    assert fl.frr_neighbor(US4)["bgpState"] == "Established"
    assert fl.frr.json("show bgp ipv4 unicast json")["routes"].get(OUR_ROUTE4)


def test_add_path_negotiated_with_frr(fl: FrrLab) -> None:
    """We offer ADD-PATH receive for IPv4, FRR offers send (addpath-tx-all-paths)."""
    assert fl.frr is not None
    caps = fl.neighbor(FRR4)["negotiated"]["capabilities"]
    assert caps["add_path"] == {"receive": ["ipv4"], "send": []}, caps
    assert [1, 1, 3] in caps["peer"]["add_path"]  # FRR offered send+receive for IPv4 unicast
    frr_caps = fl.frr_neighbor(US4)["neighborCapabilities"]["addPath"]["ipv4Unicast"]
    assert frr_caps.get("txAdvertised") and frr_caps.get("rxAdvertisedAndReceived"), frr_caps
    # FRR now sends path identifiers; its route still arrives and installs normally.
    r = our_route(fl, FRR_ROUTE4)
    assert r is not None and r["paths"][0]["peer"] == FRR4
