"""Two VRFs on one node: our daemon between a BIRD peer in `red` and one in `blue`.

    red (BIRD, AS 65101) ---- us (bgpd, AS 65010) ---- blue (BIRD, AS 65102)
    10.92.1.2                 10.92.1.1 / 10.92.2.1     10.92.2.2

VRF red is kernel table 500, blue is table 501. Both peers announce 192.0.2.0/24 (the
overlapping prefix: each must land in its own VRF's table via its own peer, never meeting);
red alone 198.51.100.0/24 (tagged with community 65101:7), blue alone 203.0.113.0/24. We
originate 10.96.0.0/12 (with a kernel blackhole route), 10.97.1.0/24 and 10.98.0.0/16 in red
only. Neighbour policies and
extra configuration (e.g. policies) are parameters, so the policy interop test reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.peers import Bgpd
from lab.topology import BirdLab

LOCAL_ASN = 65010
HOLD_TIME = 9
TABLES = {"red": 500, "blue": 501}

PEERS: dict[str, dict[str, Any]] = {
    "red": {"asn": 65101, "v4": ("10.92.1.1", "10.92.1.2"),
            "routes": ["192.0.2.0/24 blackhole",
                       "198.51.100.0/24 blackhole { bgp_community.add((65101, 7)); }"]},
    "blue": {"asn": 65102, "v4": ("10.92.2.1", "10.92.2.2"),
             "routes": ["192.0.2.0/24 blackhole", "203.0.113.0/24 blackhole"]},
}  # fmt: skip
NETWORKS = ["10.96.0.0/12", "10.97.1.0/24", "10.98.0.0/16"]


def bird_config(vrf: str) -> str:
    p = PEERS[vrf]
    ours, theirs = p["v4"]
    routes = "\n".join(f"  route {r};" for r in p["routes"])
    return f"""
router id {theirs};
log stderr all;
protocol device {{ scan time 2; }}
protocol static st4 {{ ipv4;
{routes}
}}
protocol bgp tous {{
  local {theirs} as {p["asn"]};
  neighbor {ours} as {LOCAL_ASN};
  hold time {HOLD_TIME};
  connect retry time 2;
  error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
"""


def bgpd_config(workdir: Path, policies: dict[str, tuple[str, str]] | None = None, extra: str = "") -> str:
    """``policies``: VRF -> (import, export) for that VRF's peer (default all/all)."""
    policies = policies or {}
    neighbors = "".join(
        f"""
[[neighbor]]
address = "{p["v4"][1]}"
asn = {p["asn"]}
vrf = "{vrf}"
template = "bird"
import = "{policies.get(vrf, ("all", "all"))[0]}"
export = "{policies.get(vrf, ("all", "all"))[1]}"
"""
        for vrf, p in PEERS.items()
    )
    # The first network also gets a kernel blackhole route (Calico's address blocks).
    networks = "".join(
        f'\n[[network]]\nprefix = "{n}"\nvrf = "red"\n{"blackhole = true" if i == 0 else ""}\n'
        for i, n in enumerate(NETWORKS)
    )
    vrfs = "".join(f"\n[vrf.{name}]\ntable = {table}\n" for name, table in TABLES.items())
    return f"""
[router]
asn = {LOCAL_ASN}
router_id = "10.92.0.1"
listen = ["0.0.0.0"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[kernel]
protocol = 186
{vrfs}
[template.bird]
hold_time = {HOLD_TIME}
connect_retry = 1
address_families = ["ipv4"]
{networks}
{neighbors}
{extra}
"""


@dataclass
class MultiVrfLab(BirdLab):
    def build(self) -> MultiVrfLab:
        self.us = self.lab.ns("us")
        for vrf, p in PEERS.items():
            ns = self.lab.ns(vrf)
            ours, theirs = p["v4"]
            self.lab.link(self.us, ns, [f"{ours}/24"], [f"{theirs}/24"], name=f"v{vrf}")
        return self

    def start_birds(self) -> None:
        self._start_birds({vrf: bird_config(vrf) for vrf in PEERS})

    def start_bgpd(self, policies: dict[str, tuple[str, str]] | None = None, extra: str = "") -> Bgpd:
        return self._start_bgpd(lambda wd: bgpd_config(wd, policies, extra))

    def established(self) -> bool:
        assert self.bgpd is not None
        states = {n["address"]: n["state"] for n in self.bgpd.cli_json("show", "neighbors")["neighbors"]}
        return all(states.get(p["v4"][1]) == "Established" for p in PEERS.values())
