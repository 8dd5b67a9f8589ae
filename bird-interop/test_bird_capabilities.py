"""Capabilities against a real BIRD 2: what both sides negotiated, and RFC 8950 in the kernel.

    bc (BIRD, AS 65003) ==== us (bgpd, AS 65010)
    10.93.1.2 / fd93:1::2    10.93.1.1 / fd93:1::1

Session "cap4" (IPv4 transport): BIRD enables extended messages, route refresh (enhanced),
graceful restart, long-lived graceful restart, ADD-PATH rx/tx and advertises its host name;
we enable graceful restart and ADD-PATH both. Session "enh6" (IPv6 transport) carries IPv4
unicast with extended next hop: BIRD's IPv4 route 198.18.0.0/24 arrives with an IPv6 next hop
and must land in our kernel main table as `via inet6 fd93:1::2`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.netns import Lab
from lab.peers import Bgpd, Bird, kernel_routes, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

OUR4, BIRD4 = "10.93.1.1", "10.93.1.2"
OUR6, BIRD6 = "fd93:1::1", "fd93:1::2"
BIRD_HOST = "bird-caps"
EXT_NH_PREFIX = "198.18.0.0/24"
V4_PREFIX = "198.19.0.0/24"
OUR_PREFIX = "10.97.0.0/16"

BIRD_CONF = f"""
router id {BIRD4};
hostname "{BIRD_HOST}";
log stderr all;
protocol device {{ scan time 2; }}
protocol static st4 {{ ipv4;
  route {EXT_NH_PREFIX} blackhole;
  route {V4_PREFIX} blackhole;
}}
protocol bgp cap4 {{
  local {BIRD4} as 65003;
  neighbor {OUR4} as 65010;
  hold time 9;
  connect retry time 2;
  error wait time 1, 5;
  enable extended messages on;
  enable route refresh on;
  graceful restart on;
  graceful restart time 150;
  long lived graceful restart on;
  advertise hostname on;
  ipv4 {{ import all; export where net = {V4_PREFIX}; add paths on; }};
}}
protocol bgp enh6 {{
  local {BIRD6} as 65003;
  neighbor {OUR6} as 65010;
  hold time 9;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 {{ import all; export where net = {EXT_NH_PREFIX}; extended next hop on; }};
}}
"""


def bgpd_conf(workdir: Path) -> str:
    return f"""
[router]
asn = 65010
router_id = "10.93.0.1"
listen = ["0.0.0.0", "::"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[kernel]
protocol = 186

[[network]]
prefix = "{OUR_PREFIX}"

[[neighbor]]
address = "{BIRD4}"
asn = 65003
hold_time = 9
connect_retry = 1
import = "all"
export = "all"
address_families = ["ipv4"]
graceful_restart = true
restart_time = 120
add_path = "both"

[[neighbor]]
address = "{BIRD6}"
asn = 65003
hold_time = 9
connect_retry = 1
import = "all"
export = "none"
address_families = ["ipv4"]
"""


class CapLab:
    def __init__(self, workdir: Path) -> None:
        self.lab = Lab()
        self.workdir = workdir
        self.us = self.lab.ns("us")
        ns_b = self.lab.ns("bc")
        self.lab.link(
            self.us, ns_b, [f"{OUR4}/24", f"{OUR6}/64"], [f"{BIRD4}/24", f"{BIRD6}/64"], name="vcap"
        )
        self.bird: Bird | None = Bird(ns_b, workdir / "bc", "bird", config=BIRD_CONF)
        self.bgpd: Bgpd | None = None

    def start(self) -> None:
        assert self.bird is not None
        (self.workdir / "bc").mkdir(parents=True, exist_ok=True)
        self.bird.start()
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_conf(wd)).start()

    def neighbor(self, address: str) -> dict[str, Any]:
        assert self.bgpd is not None
        [n] = self.bgpd.cli_json("show", "neighbors", address)["neighbors"]
        return n  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.bgpd is not None:
            self.bgpd.stop()
        if self.bird is not None:
            self.bird.stop()
        self.lab.close()

    def dump(self) -> None:
        if self.bgpd is not None:
            print("---- bgpd log ----\n" + self.bgpd.log_text()[-20000:])
        if self.bird is not None:
            print("---- bird log ----\n" + self.bird.log_text()[-5000:])


@pytest.fixture(scope="module")
def caplab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CapLab]:
    need_root()
    if shutil.which("bird") is None or shutil.which("birdc") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")
    lab = CapLab(tmp_path_factory.mktemp("caps"))
    try:
        lab.start()
        wait_for(
            "both sessions Established",
            lambda: all(lab.neighbor(a)["state"] == "Established" for a in (BIRD4, BIRD6)),
            40,
        )
        yield lab
    except BaseException:
        lab.dump()
        raise
    finally:
        lab.close()


def test_negotiated_capabilities_in_show_neighbors(caplab: CapLab) -> None:
    n = caplab.neighbor(BIRD4)
    caps = n["negotiated"]["capabilities"]
    assert caps["extended_message"] is True
    assert caps["enhanced_route_refresh"] is True
    assert caps["graceful_restart"] is True
    assert caps["add_path"] == {"receive": ["ipv4"], "send": ["ipv4"]}
    peer = caps["peer"]
    assert peer["hostname"] == BIRD_HOST
    assert peer["graceful_restart"]["restart_time"] == 150
    assert [f[:2] for f in peer["graceful_restart"]["families"]] == [[1, 1]]
    assert peer["long_lived_graceful_restart"] is not None
    assert [f[:2] for f in peer["long_lived_graceful_restart"]] == [[1, 1]]
    assert peer["add_path"] == [[1, 1, 3]]
    assert peer["four_octet_as"] == 65003
    # The text form shows them too.
    text = caplab.bgpd.cli("show", "neighbors", BIRD4).stdout  # type: ignore[union-attr]
    assert BIRD_HOST in text and "extended" in text.lower()


def test_bird_sees_our_capabilities(caplab: CapLab) -> None:
    assert caplab.bird is not None
    out = wait_for(
        "BIRD cap4 Established",
        lambda: (o := caplab.bird.birdc("show", "protocols", "all", "cap4")) and "Established" in o and o,
        20,  # type: ignore[union-attr]
    )
    neighbor_caps = out.split("Neighbor capabilities", 1)[1].split("Session:", 1)[0]
    for cap in ("Extended message", "Enhanced refresh", "Graceful restart", "ADD-PATH", "Hostname: "):
        assert cap in neighbor_caps, (cap, neighbor_caps)
    assert "Restart time: 120" in neighbor_caps
    # BIRD's ADD-PATH summary: both directions negotiated for ipv4.
    assert "RX: ipv4" in neighbor_caps and "TX: ipv4" in neighbor_caps


def test_route_over_add_path_session(caplab: CapLab) -> None:
    """BIRD sends its IPv4 route with a path identifier; we install it."""
    routes = wait_for(
        f"{V4_PREFIX} in the kernel",
        lambda: [r for r in kernel_routes(caplab.us, "main", 4) if r["dst"] == V4_PREFIX],
        30,
    )
    assert routes[0]["gateway"] == BIRD4
    assert caplab.neighbor(BIRD4)["accepted"] >= 1


def test_bird_accepts_our_add_path_announcement(caplab: CapLab) -> None:
    """We send with path identifiers (ADD-PATH send negotiated): BIRD decodes and keeps it."""
    assert caplab.bird is not None
    out = wait_for(
        f"{OUR_PREFIX} in BIRD",
        lambda: OUR_PREFIX in (o := caplab.bird.birdc("show", "route", OUR_PREFIX, "all")) and o,  # type: ignore[union-attr]
        30,
    )
    assert "65010" in out and OUR4 in out


def test_extended_next_hop_ipv4_route_via_ipv6(caplab: CapLab) -> None:
    n = caplab.neighbor(BIRD6)
    assert n["negotiated"]["capabilities"]["extended_next_hop"] == ["ipv4"]
    assert caplab.bird is not None
    out = caplab.bird.birdc("show", "protocols", "all", "enh6")
    assert "Extended next hop" in out.split("Neighbor capabilities", 1)[1]
    routes = wait_for(
        f"{EXT_NH_PREFIX} via inet6 in the kernel",
        lambda: [r for r in kernel_routes(caplab.us, "main", 4) if r["dst"] == EXT_NH_PREFIX],
        30,
    )
    [route] = routes
    via = route.get("via") or {}
    assert via.get("family") == "inet6", route
    assert via.get("host") in (BIRD6,) or str(via.get("host", "")).startswith("fe80:"), route
    data = caplab.bgpd.cli_json("show", "routes", EXT_NH_PREFIX)  # type: ignore[union-attr]
    [r] = data["routes"]
    assert r["paths"][0]["next_hop"] in (BIRD6,) or r["paths"][0]["next_hop"].startswith("fe80:")
