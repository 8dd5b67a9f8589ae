"""IPv6 redistribution to a real FRR peer: a kernel-table route and a connected /64.

    us (bgpd, AS 65010) fd94:1::1 ------- fd94:1::2 f (FRR, AS 65003)

Another daemon's route (protocol 80) in our main table, through a policy, and the interfaces'
subnets are announced to FRR over an IPv6 session; FRR must see them come and go as
``ip -6 route add/del`` and ``ip -6 addr add/del`` change our kernel, with our global address
as the next hop (`vtysh -c 'show bgp ipv6 unicast json'`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.frr import Frr
from lab.netns import Lab, run
from lab.peers import Bgpd, wait_for

pytestmark = [pytest.mark.root, pytest.mark.interop]

US_ASN, FRR_ASN = 65010, 65003
US, THEM = "fd94:1::1", "fd94:1::2"
POD = "2001:db8:244:1::/64"  # another daemon's route in our main table: announced
OUTSIDE = "2001:db8:245::/64"  # the same, outside the policy: never announced
CONNECTED = "fd94:55::/64"  # an address added on our link later: its subnet is announced
FRR_PREFIX = "2001:db8:66::/48"  # FRR's, with a next hop off the link: resolved by our kernel
FRR_NH = "fd94:66::9"
NH_NET = "fd94:66::/64"

FRR_CONF = f"""frr defaults traditional
hostname f
log stdout informational
router bgp {FRR_ASN}
 bgp router-id 10.94.0.2
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 neighbor {US} remote-as {US_ASN}
 neighbor {US} timers 3 9
 neighbor {US} timers connect 2
 address-family ipv6 unicast
  network {FRR_PREFIX}
  neighbor {US} activate
  neighbor {US} route-map NH out
 exit-address-family
route-map NH permit 10
 set ipv6 next-hop global {FRR_NH}
"""


def bgpd_config(workdir: Path) -> str:
    return f"""
[router]
asn = {US_ASN}
router_id = "10.94.0.1"
listen = ["::"]

[control]
socket = "{workdir}/bgpd.sock"

[policy.pods]
[[policy.pods.term]]
match.prefix = "2001:db8:244::/48 le 64"
action = "accept"

[[redistribute]]
kernel_table = 254
protocol = 80
policy = "pods"

[[redistribute]]
connected = true

[[neighbor]]
address = "{THEM}"
asn = {FRR_ASN}
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
address_families = ["ipv6"]
"""


class FrrRedistLab:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lab = Lab()
        self.frr: Frr | None = None
        self.bgpd: Bgpd | None = None
        self.us = ""

    def start(self) -> None:
        self.us = self.lab.ns("us")
        f = self.lab.ns("f")
        self.lab.link(self.us, f, [f"{US}/64"], [f"{THEM}/64"], name="rf6")
        self.ip(f"-6 route add blackhole {POD} proto 80")
        self.ip(f"-6 route add blackhole {OUTSIDE} proto 80")
        self.frr = Frr(f, self.workdir / "f", FRR_CONF).start()
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_config(wd)).start()

    def ip(self, args: str) -> str:
        return run("ip", *args.split(), ns=self.us).stdout

    def frr_routes(self) -> dict[str, list[dict[str, Any]]]:
        """FRR's IPv6 BGP table: prefix -> paths."""
        assert self.frr is not None
        return dict(self.frr.json("show bgp ipv6 unicast json").get("routes", {}))

    def close(self) -> None:
        if self.bgpd is not None:
            self.bgpd.stop()
        if self.frr is not None:
            self.frr.stop()
        self.lab.close()

    def dump_logs(self) -> None:
        if self.bgpd is not None:
            print("---- bgpd log ----\n" + self.bgpd.log_text()[-20000:])
        if self.frr is not None:
            print("---- frr log ----\n" + self.frr.log_text()[-5000:])


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FrrRedistLab]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and writes kernel routing tables")
    if shutil.which("vtysh") is None or not Path("/usr/lib/frr/bgpd").exists():
        pytest.skip("needs FRR (apt-get install frr)")
    lab = FrrRedistLab(tmp_path)
    try:
        lab.start()
        assert lab.frr is not None
        frr = lab.frr
        wait_for("FRR session Established", lambda: frr.peer_state(US) == "Established", 40)
    except BaseException:
        lab.dump_logs()
        lab.close()
        raise
    try:
        yield lab
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            lab.dump_logs()
        lab.close()


def _timed(what: str, fn: Any, timeout: float = 10.0) -> float:
    started = time.monotonic()
    wait_for(what, fn, timeout, interval=0.05)
    return time.monotonic() - started


def _next_hops(paths: list[dict[str, Any]]) -> set[str]:
    return {nh["ip"] for p in paths for nh in p.get("nexthops", []) if nh.get("scope", "global") == "global"}


def test_ipv6_kernel_and_connected_routes_reach_frr_and_follow_the_kernel(lab: FrrRedistLab) -> None:
    wait_for("redistributed routes at FRR", lambda: {POD, "fd94:1::/64"} <= lab.frr_routes().keys(), 20)
    got = lab.frr_routes()
    assert OUTSIDE not in got  # rejected by the policy
    assert _next_hops(got[POD]) == {US}  # next hop self: our global address
    assert all(p.get("valid") for p in got[POD])
    assert {p.get("origin") for p in got[POD]} == {"incomplete"}
    assert [p["path"] for p in got[POD]] == [str(US_ASN)]
    assert not any(k.startswith("fe80") for k in got)  # link-local subnets are never announced
    assert lab.bgpd is not None
    [pod] = lab.bgpd.cli_json("show", "routes", POD)["routes"]
    assert pod["paths"][0]["source"] == "kernel" and pod["fib"] is None

    lab.ip(f"-6 route del {POD}")
    gone = _timed(f"{POD} withdrawn at FRR", lambda: POD not in lab.frr_routes())
    lab.ip("-6 route add blackhole 2001:db8:244:7::/64 proto 80")
    added = _timed("2001:db8:244:7::/64 announced at FRR", lambda: "2001:db8:244:7::/64" in lab.frr_routes())
    lab.ip("-6 addr add fd94:55::1/64 dev rf6a nodad")
    conn_added = _timed(f"{CONNECTED} announced at FRR", lambda: CONNECTED in lab.frr_routes())
    assert _next_hops(lab.frr_routes()[CONNECTED]) == {US}
    lab.ip("-6 addr del fd94:55::1/64 dev rf6a")
    conn_gone = _timed(f"{CONNECTED} withdrawn at FRR", lambda: CONNECTED not in lab.frr_routes())
    lab.ip("-6 route del 2001:db8:244:7::/64")
    gone2 = _timed(
        "2001:db8:244:7::/64 withdrawn at FRR", lambda: "2001:db8:244:7::/64" not in lab.frr_routes()
    )
    print(
        f"kernel -> FRR (IPv6): del {gone:.2f}s, add {added:.2f}s, addr add {conn_added:.2f}s, "
        f"addr del {conn_gone:.2f}s, del {gone2:.2f}s"
    )
    # Within a second, with vtysh's own polling included.
    assert max(gone, added, conn_added, conn_gone, gone2) < 1.5
    assert "fd94:1::/64" in lab.frr_routes()  # the link's subnet stays throughout


def _ours(lab: FrrRedistLab) -> dict[str, dict[str, Any]]:
    """Our (proto 186) IPv6 routes in the main table."""
    out = run("ip", "-6", "-j", "route", "show", "proto", "186", ns=lab.us).stdout
    return {r["dst"]: r for r in json.loads(out or "[]")}


def _path(lab: FrrRedistLab) -> dict[str, Any]:
    assert lab.bgpd is not None
    [route] = lab.bgpd.cli_json("show", "routes", "--all", FRR_PREFIX)["routes"]
    [path] = route["paths"]
    return path  # type: ignore[no-any-return]


def test_ipv6_next_hop_off_the_link_follows_the_kernel_route_to_it(lab: FrrRedistLab) -> None:
    """FRR's route has a next hop our kernel reaches only through a route (IPv6 resolution)."""
    wait_for(
        "FRR's route received",
        lambda: lab.bgpd is not None and lab.bgpd.cli_json("show", "routes", "--all", FRR_PREFIX)["routes"],
        20,
    )
    assert _path(lab)["next_hop"] == FRR_NH
    assert _path(lab)["reason"] == "next hop unresolvable"  # no route to it yet
    assert FRR_PREFIX not in _ours(lab)

    lab.ip(f"-6 route add {NH_NET} via {THEM} metric 20 proto static")
    wait_for("installed once the next hop resolves", lambda: FRR_PREFIX in _ours(lab), 10)
    assert _path(lab)["best"] is True

    lab.ip(f"-6 route del {NH_NET}")
    wait_for(
        "removed from our kernel with the route to the next hop", lambda: FRR_PREFIX not in _ours(lab), 10
    )
    assert _path(lab)["reason"] == "next hop unresolvable"
    assert lab.bgpd is not None and "next hops resolve differently" in lab.bgpd.log_text()
