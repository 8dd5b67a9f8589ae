"""ADD-PATH (RFC 7911) through route reflectors, against real FRR and BIRD on one LAN.

    c1 (BIRD) 10.70.0.11 --+                      all in AS 65070, one bridge 10.70.0.0/24
    c2 (BIRD) 10.70.0.12 --+-- rr (FRR) 10.70.0.2, route reflector, addpath-tx-all-paths to us
    us (bgpd) 10.70.0.1  --+   ADD-PATH receive from rr; route reflector for r, ADD-PATH send
    r  (BIRD) 10.70.0.20 --+   our client, `add paths rx`

c1 and c2 both originate 10.77.0.0/24 (and c1 alone 10.77.1.0/24). FRR reflects both paths of
10.77.0.0/24 to us with two path ids: we keep two paths from one peer, install one kernel
route with both next hops, and reflect both paths to r, which shows two routes for the prefix.
A withdrawal at c2 takes exactly one path away everywhere.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.frr import Frr
from lab.netns import Lab, run
from lab.peers import Bgpd, Bird, kernel_routes, route_gateways, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

ASN = 65070
US, RR, C1, C2, R = "10.70.0.1", "10.70.0.2", "10.70.0.11", "10.70.0.12", "10.70.0.20"
PFX, ONLY_C1 = "10.77.0.0/24", "10.77.1.0/24"


def frr_config() -> str:
    clients = "".join(
        f" neighbor {c} remote-as {ASN}\n neighbor {c} timers 3 9\n neighbor {c} timers connect 2\n"
        for c in (US, C1, C2)
    )
    return f"""frr defaults traditional
hostname rr
log stdout informational
router bgp {ASN}
 bgp router-id {RR}
 no bgp ebgp-requires-policy
{clients} address-family ipv4 unicast
  neighbor {C1} route-reflector-client
  neighbor {C2} route-reflector-client
  neighbor {US} route-reflector-client
  neighbor {US} addpath-tx-all-paths
 exit-address-family
"""


def client_config(me: str, prefixes: list[str]) -> str:
    routes = "".join(f"  route {p} blackhole;\n" for p in prefixes)
    return f"""router id {me};
protocol device {{ }}
protocol static origin {{
  ipv4;
{routes}}}
protocol bgp reflector {{
  local {me} as {ASN};
  neighbor {RR} as {ASN};
  hold time 9;
  connect retry time 2;
  ipv4 {{ import none; export all; next hop self; }};
}}
"""


def receiver_config() -> str:
    return f"""router id {R};
protocol device {{ }}
protocol bgp ours {{
  local {R} as {ASN};
  neighbor {US} as {ASN};
  direct;
  hold time 9;
  connect retry time 2;
  ipv4 {{ import all; export none; add paths rx; gateway direct; }};
}}
"""


def bgpd_config(workdir: Path) -> str:
    return f"""
[router]
asn = {ASN}
router_id = "{US}"
listen = ["0.0.0.0"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[[neighbor]]
address = "{RR}"
asn = {ASN}
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
add_path = "receive"

[[neighbor]]
address = "{R}"
asn = {ASN}
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
route_reflector_client = true
add_path = "send"
"""


@dataclass
class AddPathLab:
    workdir: Path
    lab: Lab = field(default_factory=Lab)
    us: str = ""
    frr: Frr | None = None
    birds: dict[str, Bird] = field(default_factory=dict)
    bgpd: Bgpd | None = None

    def build(self) -> AddPathLab:
        lab = self.lab
        sw = lab.ns("sw")
        run("ip", "link", "add", "br0", "type", "bridge", ns=sw)
        run("ip", "link", "set", "br0", "up", ns=sw)
        hosts = {"us": US, "rr": RR, "c1": C1, "c2": C2, "r": R}
        for name, addr in hosts.items():
            ns = lab.ns(name)
            if name == "us":
                self.us = ns
            _a, if_sw = lab.link(ns, sw, [f"{addr}/24"], [], name=f"v{name}")
            run("ip", "link", "set", if_sw, "master", "br0", ns=sw)
        return self

    def ns(self, name: str) -> str:
        return f"{self.lab.prefix}{self.lab.tag}-{name}"

    def start(self) -> None:
        self.frr = Frr(self.ns("rr"), self.workdir / "rr", frr_config()).start()
        configs = {
            "c1": client_config(C1, [PFX, ONLY_C1]),
            "c2": client_config(C2, [PFX]),
            "r": receiver_config(),
        }
        for name, conf in configs.items():
            self.birds[name] = Bird(self.ns(name), self.workdir / name, "bird", config=conf).start()
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_config(wd)).start()

    def close(self) -> None:
        if self.bgpd is not None:
            self.bgpd.stop()
        for b in self.birds.values():
            b.stop()
        if self.frr is not None:
            self.frr.stop()
        self.lab.close()

    # --- views ---------------------------------------------------------------------------------

    def neighbor(self, address: str) -> dict[str, Any]:
        assert self.bgpd is not None
        return self.bgpd.cli_json("show", "neighbors", address)["neighbors"][0]  # type: ignore[no-any-return]

    def our_paths(self, prefix: str) -> list[dict[str, Any]]:
        assert self.bgpd is not None
        routes = self.bgpd.cli_json("show", "routes", "--all", prefix)["routes"]
        return routes[0]["paths"] if routes else []  # type: ignore[no-any-return]

    def kernel_gateways(self, prefix: str) -> set[str]:
        routes = [r for r in kernel_routes(self.us, "main") if r["dst"] == prefix]
        return route_gateways(routes[0]) if routes else set()

    def bird_paths(self, prefix: str) -> list[str]:
        """The routes BIRD r holds for ``prefix`` (`show route all`): one line per path."""
        out = self.birds["r"].birdc("show", "route", "all", "for", prefix)
        return [line for line in out.splitlines() if "unicast [ours" in line]

    def bird_next_hops(self, prefix: str) -> set[str]:
        out = self.birds["r"].birdc("show", "route", "all", "for", prefix)
        return {line.split()[1] for line in out.splitlines() if line.strip().startswith("via ")}


@pytest.fixture(scope="module")
def ap(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[AddPathLab]:
    need_root()
    if shutil.which("vtysh") is None:
        pytest.skip("needs FRR (apt-get install frr)")
    lab = AddPathLab(tmp_path_factory.mktemp("addpath"))
    try:
        lab.build()
        lab.start()
        wait_for("session to FRR", lambda: lab.neighbor(RR)["state"] == "Established", 40)
        wait_for("session to BIRD r", lambda: lab.neighbor(R)["state"] == "Established", 40)
        yield lab
    finally:
        if any(getattr(i, "rep_call", None) and i.rep_call.failed for i in request.session.items):
            if lab.bgpd is not None:
                print(f"--- bgpd log ---\n{lab.bgpd.log_text()[-20000:]}")
            if lab.frr is not None:
                print(f"--- FRR log ---\n{lab.frr.log_text()[-5000:]}")
            for name, b in lab.birds.items():
                print(f"--- {name} log ---\n{b.log_text()[-3000:]}")
        lab.close()


def both_paths(ap: AddPathLab) -> list[dict[str, Any]] | None:
    paths = ap.our_paths(PFX)
    return paths if len(paths) == 2 else None


def test_two_paths_from_the_reflector_make_one_ecmp_kernel_route(ap: AddPathLab) -> None:
    caps = ap.neighbor(RR)["negotiated"]["capabilities"]
    assert caps["add_path"]["receive"] == ["ipv4"], caps
    paths = wait_for("both paths of the prefix from FRR", lambda: both_paths(ap), 40)
    # Two paths from one peer, told apart by their path ids, both selected (ECMP).
    assert {p["peer"] for p in paths} == {RR}
    assert len({p["path_id"] for p in paths}) == 2
    assert {p["next_hop"] for p in paths} == {C1, C2}
    assert all(p["best"] or p["ecmp"] for p in paths), paths
    gws = wait_for("one kernel route with both next hops", lambda: ap.kernel_gateways(PFX) == {C1, C2}, 30)
    assert gws
    # The prefix only c1 sends is one path, one next hop.
    assert wait_for("c1's own prefix", lambda: ap.kernel_gateways(ONLY_C1), 20) == {C1}
    assert ap.neighbor(RR)["received"] == 3  # paths, not prefixes


def test_we_reflect_both_paths_to_an_add_path_client(ap: AddPathLab) -> None:
    wait_for("both paths of the prefix from FRR", lambda: both_paths(ap), 40)
    caps = ap.neighbor(R)["negotiated"]["capabilities"]
    assert caps["add_path"]["send"] == ["ipv4"], caps
    wait_for("BIRD r holds two paths for the prefix", lambda: len(ap.bird_paths(PFX)) == 2, 30)
    assert ap.bird_next_hops(PFX) == {C1, C2}
    assert len(ap.bird_paths(ONLY_C1)) == 1
    assert ap.neighbor(R)["advertised"] == 3


def test_a_withdrawal_at_the_origin_removes_only_that_path(ap: AddPathLab) -> None:
    wait_for("both paths of the prefix from FRR", lambda: both_paths(ap), 40)
    wait_for("BIRD r holds two paths", lambda: len(ap.bird_paths(PFX)) == 2, 30)
    ap.birds["c2"].birdc("disable", "origin")
    try:
        wait_for(
            "our path set shrinks to c1's", lambda: [p["next_hop"] for p in ap.our_paths(PFX)] == [C1], 30
        )
        wait_for("kernel route back to one next hop", lambda: ap.kernel_gateways(PFX) == {C1}, 30)
        wait_for("BIRD r down to one path", lambda: len(ap.bird_paths(PFX)) == 1, 30)
        assert ap.bird_next_hops(PFX) == {C1}
        assert ap.neighbor(RR)["received"] == 2 and ap.neighbor(R)["advertised"] == 2
        assert ap.neighbor(RR)["state"] == "Established" and ap.neighbor(R)["state"] == "Established"
    finally:
        ap.birds["c2"].birdc("enable", "origin")
    # And back: the second path returns everywhere.
    wait_for("both paths back", lambda: both_paths(ap), 30)
    wait_for("kernel route with both next hops again", lambda: ap.kernel_gateways(PFX) == {C1, C2}, 30)
    wait_for("BIRD r has both again", lambda: len(ap.bird_paths(PFX)) == 2, 30)
