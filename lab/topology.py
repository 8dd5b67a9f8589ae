"""The walking-skeleton topology: our daemon between two BIRD routers of AS 65002.

    b1 (BIRD, AS 65002) ---- us (bgpd, AS 65010) ---- b2 (BIRD, AS 65002)
    10.91.1.2 fd91:1::2      10.91.1.1 / 10.91.2.1     10.91.2.2 fd91:2::2

Both BIRD peers sit in our VRF `red` (kernel table 500), over separate IPv4 and IPv6
sessions. b1 and b2 both announce 192.0.2.0/24 and 2001:db8:100::/48 (ECMP); b1 alone
198.51.100.0/24, b2 alone 203.0.113.0/24. We announce 10.96.0.0/12 and fd96::/48.
Used by the interop tests and by the lab.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lab.netns import Lab, run
from lab.peers import Bgpd, Bird, wait_for

LOCAL_ASN = 65010
BIRD_ASN = 65002
RED_TABLE = 500
HOLD_TIME = 9

BIRDS = {
    "b1": {"v4": ("10.91.1.1", "10.91.1.2"), "v6": ("fd91:1::1", "fd91:1::2"),
           "routes4": ["192.0.2.0/24", "198.51.100.0/24"], "routes6": ["2001:db8:100::/48"]},
    "b2": {"v4": ("10.91.2.1", "10.91.2.2"), "v6": ("fd91:2::1", "fd91:2::2"),
           "routes4": ["192.0.2.0/24", "203.0.113.0/24"], "routes6": ["2001:db8:100::/48"]},
}  # fmt: skip


def bird_config(name: str) -> str:
    b = BIRDS[name]
    our4, their4 = b["v4"]
    our6, their6 = b["v6"]
    r4 = "\n".join(f"  route {p} blackhole;" for p in b["routes4"])
    r6 = "\n".join(f"  route {p} blackhole;" for p in b["routes6"])
    return f"""
router id {their4};
log stderr all;
protocol device {{ scan time 2; }}
protocol static st4 {{ ipv4;
{r4}
}}
protocol static st6 {{ ipv6;
{r6}
}}
protocol bgp us4 {{
  local {their4} as {BIRD_ASN};
  neighbor {our4} as {LOCAL_ASN};
  hold time {HOLD_TIME};
  connect retry time 2;
  error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
protocol bgp us6 {{
  local {their6} as {BIRD_ASN};
  neighbor {our6} as {LOCAL_ASN};
  hold time {HOLD_TIME};
  connect retry time 2;
  error wait time 1, 5;
  ipv6 {{ import all; export all; }};
}}
"""


def bgpd_config(workdir: Path, extra: str = "") -> str:
    neighbors = []
    for b in BIRDS.values():
        for fam in ("v4", "v6"):
            neighbors.append(
                f"""
[[neighbor]]
address = "{b[fam][1]}"
asn = {BIRD_ASN}
template = "bird"
address_families = ["{"ipv4" if fam == "v4" else "ipv6"}"]
"""
            )
    return f"""
[router]
asn = {LOCAL_ASN}
router_id = "10.91.0.1"
listen = ["0.0.0.0", "::"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[kernel]
protocol = 186

[vrf.red]
table = {RED_TABLE}

[template.bird]
vrf = "red"
import = "all"
export = "all"
hold_time = {HOLD_TIME}
connect_retry = 1

[[network]]
prefix = "10.96.0.0/12"
vrf = "red"

[[network]]
prefix = "fd96::/48"
vrf = "red"
{"".join(neighbors)}
{extra}
"""


@dataclass
class BirdLab:
    """Our daemon in namespace "us" with BIRD routers around it: what the topologies share."""

    workdir: Path
    lab: Lab = field(default_factory=Lab)
    us: str = ""
    birds: dict[str, Bird] = field(default_factory=dict)
    bgpd: Bgpd | None = None

    def _start_birds(self, configs: dict[str, str]) -> None:
        for name, config in configs.items():
            ns = f"{self.lab.prefix}{self.lab.tag}-{name}"
            self.birds[name] = Bird(ns, self.workdir / name, "bird", config=config).start()

    def _start_bgpd(self, make_config: Callable[[Path], str]) -> Bgpd:
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=make_config(wd)).start()
        return self.bgpd

    def dump_logs(self) -> None:
        if self.bgpd is not None:
            print("---- bgpd log ----\n" + self.bgpd.log_text()[-20000:])
        for name, b in self.birds.items():
            print(f"---- {name} log ----\n" + b.log_text()[-5000:])

    def close(self) -> None:
        if self.bgpd is not None:
            self.bgpd.stop()
        for b in self.birds.values():
            b.stop()
        self.lab.close()

    def ip(self, *args: str) -> str:
        return run("ip", *args, ns=self.us).stdout


@dataclass
class SkeletonLab(BirdLab):
    def build(self) -> SkeletonLab:
        self.us = self.lab.ns("us")
        for name, b in BIRDS.items():
            ns = self.lab.ns(name)
            our4, their4 = b["v4"]
            our6, their6 = b["v6"]
            self.lab.link(
                self.us, ns, [f"{our4}/24", f"{our6}/64"], [f"{their4}/24", f"{their6}/64"], name=f"v{name}"
            )
        return self

    def start_birds(self) -> None:
        self._start_birds({name: bird_config(name) for name in BIRDS})

    def start_bgpd(self, extra: str = "") -> Bgpd:
        return self._start_bgpd(lambda wd: bgpd_config(wd, extra))


@contextmanager
def running_skeleton(workdir: Path, extra: str = "") -> Iterator[SkeletonLab]:
    """The skeleton lab built and started, b1's IPv4 session Established; closed on exit.

    Skips the calling test (with the reason) when not root or BIRD is missing.
    """
    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and writes kernel routing tables")
    if shutil.which("bird") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")
    sk = SkeletonLab(workdir).build()
    try:
        sk.start_birds()
        bgpd = sk.start_bgpd(extra)
        wait_for("b1 Established", lambda: bgpd.neighbor_state("10.91.1.2") == "Established", 40)
        yield sk
    finally:
        sk.close()
