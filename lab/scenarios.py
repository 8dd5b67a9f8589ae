"""The lab of the real scenarios: one bgpd router ("us", AS 65010) and its neighbours.

(a) Transit router: a data-centre router (FRR, AS 65000) and two spoke VPC routers (BIRD,
    AS 65020 and 65021) in the main table. Spokes use the `spoke` template (next-hop-self,
    import and export policies); each side is sent only the intended prefixes.
(b) Multi-VRF: external routers in VRF red (table 500) and blue (table 501) both announce
    192.0.2.0/24; each copy lands in its own table.
(c) Anycast service VIPs: two Kubernetes nodes (BIRD, AS 64601 and 64602) announce the
    service CIDR 10.96.0.0/12 and the VIP 10.96.0.10/32 (and fd96::/112, fd96::10/128);
    the main table gets one route per prefix with both nodes as next hops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.frr import Frr
from lab.netns import Lab, run
from lab.peers import Bgpd, Bird

LOCAL_ASN = 65010
HOLD = 9

# name: (our address, their address, their ASN, VRF, IPv6 pair or None)
PEERS: dict[str, dict[str, Any]] = {
    "dc": {"us": "10.92.0.1", "them": "10.92.0.2", "asn": 65000, "vrf": "main"},
    "spa": {"us": "10.92.1.1", "them": "10.92.1.2", "asn": 65020, "vrf": "main"},
    "spb": {"us": "10.92.2.1", "them": "10.92.2.2", "asn": 65021, "vrf": "main"},
    "red": {"us": "10.93.1.1", "them": "10.93.1.2", "asn": 64512, "vrf": "red"},
    "blu": {"us": "10.93.2.1", "them": "10.93.2.2", "asn": 64513, "vrf": "blue"},
    "n1": {
        "us": "10.94.1.1",
        "them": "10.94.1.2",
        "asn": 64601,
        "vrf": "main",
        "v6": ("fd94:1::1", "fd94:1::2"),
    },
    "n2": {
        "us": "10.94.2.1",
        "them": "10.94.2.2",
        "asn": 64602,
        "vrf": "main",
        "v6": ("fd94:2::1", "fd94:2::2"),
    },
}
SPOKE_ROUTES = {"spa": ["10.20.0.0/16", "10.20.1.0/24", "192.168.99.0/24"], "spb": ["10.21.0.0/16"]}
DC_ROUTES = ["172.16.0.0/16", "172.17.5.0/24", "198.18.0.0/15"]
VRF_ROUTES = ["192.0.2.0/24"]
NODE_ROUTES4 = ["10.96.0.0/12", "10.96.0.10/32"]
NODE_ROUTES6 = ["fd96::/112", "fd96::10/128"]


def bgpd_config(workdir: Path) -> str:
    neighbors = []
    for name, p in PEERS.items():
        if name in ("spa", "spb"):
            body = 'template = "spoke"'
        elif name == "dc":
            body = 'import = "from-dc"\nexport = "to-dc"'
        else:
            body = 'import = "all"\nexport = "none"'
        fams = '["ipv4"]'
        neighbors.append(
            f'[[neighbor]]\naddress = "{p["them"]}"\nasn = {p["asn"]}\nvrf = "{p["vrf"]}"\n'
            f'description = "{name}"\naddress_families = {fams}\n'
            f"hold_time = {HOLD}\nconnect_retry = 1\n{body}\n"
        )
        if "v6" in p:
            neighbors.append(
                f'[[neighbor]]\naddress = "{p["v6"][1]}"\nasn = {p["asn"]}\nvrf = "{p["vrf"]}"\n'
                f'description = "{name} v6"\naddress_families = ["ipv6"]\n'
                f"hold_time = {HOLD}\nconnect_retry = 1\n"
                'import = "all"\nexport = "none"\n'
            )
    return f"""
[router]
asn = {LOCAL_ASN}
router_id = "10.92.0.1"
listen = ["0.0.0.0", "::"]
multipath_relax = true          # the anycast nodes are in different ASes

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "info"

[vrf.red]
table = 500

[vrf.blue]
table = 501

[template.spoke]
next_hop_self = true
import = "from-spokes"
export = "to-spokes"

[policy.from-spokes]            # a spoke may announce only its VPC CIDRs
[[policy.from-spokes.term]]
match.prefix = ["10.20.0.0/15 le 24"]
action = "accept"

[policy.to-spokes]              # spokes learn the data centre, each other and the services
[[policy.to-spokes.term]]
match.prefix = ["172.16.0.0/12 le 24", "10.20.0.0/15 le 24", "10.96.0.0/12 le 32"]
action = "accept"

[policy.from-dc]
[[policy.from-dc.term]]
match.prefix = ["172.16.0.0/12 le 24"]
action = "accept"

[policy.to-dc]                  # the data centre learns the VPCs and the services
[[policy.to-dc.term]]
match.prefix = ["10.20.0.0/15 le 24", "10.96.0.0/12 le 32"]
action = "accept"

{chr(10).join(neighbors)}
"""


def bird_config(name: str) -> str:
    p = PEERS[name]
    r4 = SPOKE_ROUTES.get(name) or (VRF_ROUTES if name in ("red", "blu") else NODE_ROUTES4)
    statics4 = "\n".join(f"  route {r} blackhole;" for r in r4)
    v6 = ""
    if "v6" in p:
        statics6 = "\n".join(f"  route {r} blackhole;" for r in NODE_ROUTES6)
        v6 = f"""
protocol static st6 {{ ipv6;
{statics6}
}}
protocol bgp us6 {{
  local {p["v6"][1]} as {p["asn"]};
  neighbor {p["v6"][0]} as {LOCAL_ASN};
  hold time {HOLD}; connect retry time 2; error wait time 1, 5;
  ipv6 {{ import all; export all; }};
}}
"""
    return f"""
router id {p["them"]};
log stderr all;
protocol device {{ scan time 2; }}
protocol static st4 {{ ipv4;
{statics4}
}}
protocol bgp us4 {{
  local {p["them"]} as {p["asn"]};
  neighbor {p["us"]} as {LOCAL_ASN};
  hold time {HOLD}; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
{v6}
"""


def frr_config() -> str:
    p = PEERS["dc"]
    nets = "\n".join(f"  network {r}" for r in DC_ROUTES)
    return f"""frr defaults traditional
hostname dc
log stdout informational
router bgp {p["asn"]}
 bgp router-id {p["them"]}
 no bgp ebgp-requires-policy
 no bgp network import-check
 timers bgp 3 {HOLD}
 neighbor {p["us"]} remote-as {LOCAL_ASN}
 address-family ipv4 unicast
{nets}
 exit-address-family
"""


@dataclass
class ScenarioLab:
    workdir: Path
    lab: Lab = field(default_factory=Lab)
    us: str = ""
    ns: dict[str, str] = field(default_factory=dict)
    birds: dict[str, Bird] = field(default_factory=dict)
    frr: Frr | None = None
    bgpd: Bgpd | None = None

    def build(self) -> ScenarioLab:
        self.us = self.lab.ns("us")
        for name, p in PEERS.items():
            ns = self.ns[name] = self.lab.ns(name)
            mine, theirs = [f"{p['us']}/24"], [f"{p['them']}/24"]
            if "v6" in p:
                mine.append(f"{p['v6'][0]}/64")
                theirs.append(f"{p['v6'][1]}/64")
            self.lab.link(self.us, ns, mine, theirs, name=f"v{name}")
        return self

    def start(self) -> ScenarioLab:
        for name in PEERS:
            if name == "dc":
                self.frr = Frr(self.ns[name], self.workdir / name, frr_config()).start()
            else:
                self.birds[name] = Bird(
                    self.ns[name], self.workdir / name, "bird", config=bird_config(name)
                ).start()
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_config(wd)).start()
        return self

    def pids(self) -> list[int]:
        procs = [b.proc for b in self.birds.values()]
        if self.frr is not None:
            procs += [p.proc for p in (self.frr.zebra, self.frr.bgpd) if p is not None]
        if self.bgpd is not None:
            procs.append(self.bgpd.proc)
        return [p.pid for p in procs if p is not None]

    def close(self) -> None:
        if self.bgpd is not None:
            self.bgpd.stop()
        for b in self.birds.values():
            b.stop()
        if self.frr is not None:
            self.frr.stop()
        self.lab.close()

    def ip(self, *args: str) -> str:
        return run("ip", *args, ns=self.us).stdout
