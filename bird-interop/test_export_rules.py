"""Export and import rules against real peers: route reflection (RFC 4456), iBGP
non-re-announcement, AS-path loops and `allow_local_as`, `enforce_first_as`, the well-known
communities and eBGP's LOCAL_PREF drop, each seen from the receiving FRR or BIRD.

One LAN (a bridge in our namespace), so every next hop is on-link for everyone:

    us (bgpd, AS 65010, cluster id 10.73.0.99)  10.73.0.1
    a   FRR  AS 65010 RR client      10.73.0.2   announces 198.51.101.0/24
    b   BIRD AS 65010 RR client      10.73.0.3   announces 198.51.102.0/24
    n1  BIRD AS 65010 non-client     10.73.0.4   announces 198.51.103.0/24, and two looped
                                                 routes: .113 (our cluster id in CLUSTER_LIST),
                                                 .114 (our router id as ORIGINATOR_ID)
    n2  BIRD AS 65010 non-client     10.73.0.5   announces nothing
    e1  BIRD AS 65001                10.73.0.6   .105 plain, .106 NO_EXPORT, .107 NO_ADVERTISE,
                                                 .108 NO_EXPORT_SUBCONFED, .109 with 65010 in its path
    e2  BIRD AS 65002 allow_local_as 10.73.0.7   .109 with 65010 in its path (accepted from it)
    e3  BIRD AS 65003 `rs client`    10.73.0.8   .115 with path "65099" (first AS not the peer's),
                                                 .116 with path "65003 65099"
    e4  BIRD AS 65004 `rs client`    10.73.0.9   .117 with path "65099"; enforce_first_as = false
"""

from __future__ import annotations

import shutil
import sys
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

ASN = 65010
US = "10.73.0.1"
ROUTER_ID = "10.73.0.1"
CLUSTER_ID = "10.73.0.99"
NET = "198.51"

# name -> (address, ASN, kind); kind: "client", "nonclient", "ebgp", "rs" (BIRD as route server).
PEERS: dict[str, tuple[str, int, str]] = {
    "a": ("10.73.0.2", ASN, "client"),
    "b": ("10.73.0.3", ASN, "client"),
    "n1": ("10.73.0.4", ASN, "nonclient"),
    "n2": ("10.73.0.5", ASN, "nonclient"),
    "e1": ("10.73.0.6", 65001, "ebgp"),
    "e2": ("10.73.0.7", 65002, "ebgp"),
    "e3": ("10.73.0.8", 65003, "rs"),
    "e4": ("10.73.0.9", 65004, "rs"),
}

NO_EXPORT = "(65535,65281)"
NO_ADVERTISE = "(65535,65282)"
NO_EXPORT_SUBCONFED = "(65535,65283)"

# BIRD peer -> [(prefix, filter statements applied when the static route enters its table)].
BIRD_ROUTES: dict[str, list[tuple[str, str]]] = {
    "b": [(f"{NET}.102.0/24", "")],
    "n1": [
        (f"{NET}.103.0/24", ""),
        (f"{NET}.113.0/24", f"bgp_cluster_list.add({CLUSTER_ID});"),
        (f"{NET}.114.0/24", f"bgp_originator_id = {ROUTER_ID};"),
    ],
    "n2": [],
    "e1": [
        (f"{NET}.105.0/24", ""),
        (f"{NET}.106.0/24", f"bgp_community.add({NO_EXPORT});"),
        (f"{NET}.107.0/24", f"bgp_community.add({NO_ADVERTISE});"),
        (f"{NET}.108.0/24", f"bgp_community.add({NO_EXPORT_SUBCONFED});"),
        (f"{NET}.109.0/24", f"bgp_path.prepend({ASN});"),
    ],
    "e2": [(f"{NET}.109.0/24", f"bgp_path.prepend({ASN});")],
    # A route server does not prepend its own AS: the path is exactly what the filter makes.
    "e3": [
        (f"{NET}.115.0/24", "bgp_path.prepend(65099);"),
        (f"{NET}.116.0/24", "bgp_path.prepend(65099); bgp_path.prepend(65003);"),
    ],
    "e4": [(f"{NET}.117.0/24", "bgp_path.prepend(65099);")],
}  # fmt: skip
FRR_ROUTE = f"{NET}.101.0/24"


def bird_config(name: str) -> str:
    addr, asn, kind = PEERS[name]
    routes = BIRD_ROUTES[name]
    statics = "\n".join(f"  route {p} blackhole;" for p, _ in routes)
    cases = "\n".join(f"    if net = {p} then {{ {stmts} }}" for p, stmts in routes if stmts)
    return f"""
router id {addr};
log stderr all;
protocol device {{ scan time 2; }}
protocol static st4 {{
  ipv4 {{ import filter {{
{cases}
    accept;
  }}; }};
{statics}
}}
protocol bgp peer1 {{
  local {addr} as {asn};
  neighbor {US} as {ASN};
  hold time 9;
  connect retry time 2;
  error wait time 1, 5;
  {"rs client;" if kind == "rs" else ""}
  ipv4 {{ import all; export all; }};
}}
"""


def frr_config() -> str:
    addr = PEERS["a"][0]
    return f"""frr defaults traditional
hostname a
log stdout informational
router bgp {ASN}
 bgp router-id {addr}
 no bgp network import-check
 neighbor {US} remote-as {ASN}
 neighbor {US} timers 3 9
 neighbor {US} timers connect 2
 address-family ipv4 unicast
  network {FRR_ROUTE}
 exit-address-family
"""


def bgpd_config(workdir: Path) -> str:
    neighbors = []
    for addr, asn, kind in PEERS.values():
        extra = ""
        if kind == "client":
            extra = "route_reflector_client = true\n"
        elif addr == PEERS["e2"][0]:
            extra = "allow_local_as = 1\n"
        elif addr == PEERS["e4"][0]:
            extra = "enforce_first_as = false\n"
        neighbors.append(
            f"""
[[neighbor]]
address = "{addr}"
asn = {asn}
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
{extra}"""
        )
    return f"""
[router]
asn = {ASN}
router_id = "{ROUTER_ID}"
cluster_id = "{CLUSTER_ID}"
listen = ["0.0.0.0"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[kernel]
protocol = 186
{"".join(neighbors)}
"""


@dataclass
class ExportLab:
    workdir: Path
    lab: Lab = field(default_factory=Lab)
    us: str = ""
    birds: dict[str, Bird] = field(default_factory=dict)
    frr: Frr | None = None
    bgpd: Bgpd | None = None

    def build(self) -> ExportLab:
        self.us = self.lab.ns("us")
        run("ip", "link", "add", "br0", "type", "bridge", ns=self.us)
        run("ip", "addr", "add", f"{US}/24", "dev", "br0", ns=self.us)
        run("ip", "link", "set", "br0", "up", ns=self.us)
        for name, (addr, _asn, _kind) in PEERS.items():
            ns = self.lab.ns(name)
            if_us, _ = self.lab.link(self.us, ns, [], [f"{addr}/24"], name=f"x{name}")
            run("ip", "link", "set", if_us, "master", "br0", ns=self.us)
        return self

    def start(self) -> None:
        for name in BIRD_ROUTES:
            ns = f"{self.lab.prefix}{self.lab.tag}-{name}"
            self.birds[name] = Bird(ns, self.workdir / name, "bird", config=bird_config(name)).start()
        self.frr = Frr(f"{self.lab.prefix}{self.lab.tag}-a", self.workdir / "a", frr_config()).start()
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_config(wd)).start()

    def established(self) -> bool:
        assert self.bgpd is not None
        states = {n["address"]: n["state"] for n in self.bgpd.cli_json("show", "neighbors")["neighbors"]}
        return all(states.get(addr) == "Established" for addr, _, _ in PEERS.values())

    def routes(self, prefix: str) -> list[dict[str, Any]]:
        """Our paths for ``prefix`` (`show routes --all`), empty when we hold none."""
        assert self.bgpd is not None
        data = self.bgpd.cli_json("show", "routes", "--all", prefix)
        return [p for r in data["routes"] for p in r["paths"]]

    def kernel(self, prefix: str) -> dict[str, Any] | None:
        return next((r for r in kernel_routes(self.us, "main") if r["dst"] == prefix), None)

    def bird_route(self, name: str, prefix: str) -> str:
        """`birdc show route PREFIX all` at a BIRD peer: "" when it has no such route."""
        out = self.birds[name].birdc("show", "route", prefix, "all")
        return out if prefix in out else ""

    def frr_paths(self, prefix: str) -> list[dict[str, Any]]:
        """FRR a's paths for ``prefix`` (vtysh json), empty when it has none."""
        assert self.frr is not None
        return list(self.frr.json(f"show bgp ipv4 unicast {prefix} json").get("paths", []))

    def waits_at(self, name: str, prefix: str) -> str:
        """Wait until BIRD ``name`` has ``prefix``; its `show route all` text."""
        return wait_for(f"{prefix} at {name}", lambda: self.bird_route(name, prefix), 20)

    def close(self) -> None:
        if self.bgpd is not None:
            self.bgpd.stop()
        for b in self.birds.values():
            b.stop()
        if self.frr is not None:
            self.frr.stop()
        self.lab.close()

    def dump_logs(self) -> None:
        if self.bgpd is not None:
            sys.stderr.write(f"--- bgpd log ---\n{self.bgpd.log_text()[-20000:]}\n")
        for name, b in self.birds.items():
            sys.stderr.write(f"--- {name} log ---\n{b.log_text()[-4000:]}\n")
        if self.frr is not None:
            sys.stderr.write(f"--- FRR log ---\n{self.frr.log_text()[-6000:]}\n")


@pytest.fixture(scope="module")
def el(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ExportLab]:
    need_root()
    if shutil.which("bird") is None or shutil.which("vtysh") is None:
        pytest.skip("needs BIRD 2 and FRR (apt-get install bird2 frr)")
    lab = ExportLab(tmp_path_factory.mktemp("export")).build()
    try:
        lab.start()
        wait_for("every session Established", lab.established, 60)
        # Everything announced has settled once the last accepted route of the last peer is in.
        wait_for(
            "the peers' routes at us",
            lambda: all(lab.routes(f"{NET}.{n}.0/24") for n in (101, 102, 103, 105, 116, 117)),
            40,
        )
        yield lab
    except BaseException:
        lab.dump_logs()
        raise
    finally:
        if any(getattr(getattr(i, "rep_call", None), "failed", False) for i in request.session.items):
            lab.dump_logs()
        lab.close()


# --- route reflection ----------------------------------------------------------------------


def test_client_route_reflected_to_bird_client_with_originator_and_cluster_list(el: ExportLab) -> None:
    out = wait_for("a's route at b", lambda: el.bird_route("b", FRR_ROUTE), 20)
    assert f"BGP.originator_id: {PEERS['a'][0]}" in out, out
    assert f"BGP.cluster_list: {CLUSTER_ID}" in out, out
    assert f"BGP.next_hop: {PEERS['a'][0]}" in out, out  # reflection leaves the next hop alone
    assert "BGP.local_pref: 100" in out, out


def test_client_route_reflected_to_frr_client_with_originator_and_cluster_list(el: ExportLab) -> None:
    prefix = f"{NET}.102.0/24"
    [path] = wait_for("b's route at a", lambda: el.frr_paths(prefix), 20)
    assert path["originatorId"] == PEERS["b"][0], path
    assert path["clusterList"]["list"] == [CLUSTER_ID], path
    assert path["nexthops"][0]["ip"] == PEERS["b"][0], path


def test_non_client_route_reflected_to_clients_only(el: ExportLab) -> None:
    prefix = f"{NET}.103.0/24"
    out = el.waits_at("b", prefix)
    assert f"BGP.originator_id: {PEERS['n1'][0]}" in out, out
    frr = wait_for("n1's route at client a", lambda: el.frr_paths(prefix), 20)
    assert frr[0]["originatorId"] == PEERS["n1"][0]
    # A non-client's route never goes to another non-client (RFC 4456 8; plain iBGP rule).
    el.waits_at("n2", f"{NET}.102.0/24")  # a client's route: the control
    assert el.bird_route("n2", prefix) == ""
    # A client's route goes to non-clients too.
    assert f"BGP.cluster_list: {CLUSTER_ID}" in el.bird_route("n2", FRR_ROUTE)


def test_ebgp_route_to_ibgp_peers_without_reflection_attributes(el: ExportLab) -> None:
    prefix = f"{NET}.105.0/24"
    for name in ("b", "n1", "n2"):
        out = el.waits_at(name, prefix)
        assert "BGP.originator_id" not in out, out
        assert "BGP.cluster_list" not in out, out
        assert "BGP.as_path: 65001" in out, out
        assert "BGP.local_pref: 100" in out, out


def test_reflection_loops_are_dropped_on_import(el: ExportLab) -> None:
    # n1's .103 arrived (the fixture waited for it); .113 carries our cluster id and .114 our
    # router id as ORIGINATOR_ID: both are loops and must be dropped.
    assert el.routes(f"{NET}.103.0/24")
    assert el.routes(f"{NET}.113.0/24") == []
    assert el.routes(f"{NET}.114.0/24") == []
    assert el.kernel(f"{NET}.113.0/24") is None
    assert el.kernel(f"{NET}.114.0/24") is None
    # BIRD did send them: n1 exported both.
    exported = el.birds["n1"].birdc("show", "route", "export", "peer1")
    assert f"{NET}.113.0/24" in exported and f"{NET}.114.0/24" in exported, exported


# --- eBGP ---------------------------------------------------------------------------------


def test_ebgp_peer_gets_ibgp_routes_with_our_as_and_no_ibgp_attributes(el: ExportLab) -> None:
    for n in (101, 102, 103, 105):
        prefix = f"{NET}.{n}.0/24"
        out = el.waits_at("e2", prefix)
        assert "BGP.as_path: 65010" in out.replace("\t", " "), out
        assert "BGP.originator_id" not in out, out
        assert "BGP.cluster_list" not in out, out
    # BIRD keeps a LOCAL_PREF that an eBGP neighbour sends only to log and discard it.
    assert "Discarding LOCAL_PREF" not in el.birds["e2"].log_text()


def test_no_export_goes_to_ibgp_not_to_ebgp(el: ExportLab) -> None:
    # The control first: e1's plain route reached the eBGP peers, so what is absent there was
    # withheld, not just late.
    for name in ("e2", "e3"):
        el.waits_at(name, f"{NET}.105.0/24")
    for n in (106, 108):  # NO_EXPORT, NO_EXPORT_SUBCONFED (no confederation: the same)
        prefix = f"{NET}.{n}.0/24"
        for name in ("b", "n2"):
            out = el.waits_at(name, prefix)
            assert "BGP.community: (65535,6528" in out, out
        assert el.bird_route("e2", prefix) == ""
        assert el.bird_route("e3", prefix) == ""
    assert wait_for("NO_EXPORT route at a", lambda: el.frr_paths(f"{NET}.106.0/24"), 20)


def test_no_advertise_goes_to_nobody(el: ExportLab) -> None:
    prefix = f"{NET}.107.0/24"
    [path] = wait_for("e1's NO_ADVERTISE route at us", lambda: el.routes(prefix), 20)
    assert path["best"] is True, path  # we accept and use it ourselves
    wait_for(f"{prefix} in our kernel", lambda: el.kernel(prefix), 20)
    # The controls: e1's plain route (sent with it) reached everyone else.
    for name in ("b", "n1", "n2", "e2", "e3", "e4"):
        el.waits_at(name, f"{NET}.105.0/24")
    wait_for("e1's plain route at a", lambda: el.frr_paths(f"{NET}.105.0/24"), 20)
    for name in ("b", "n1", "n2", "e2", "e3", "e4"):
        assert el.bird_route(name, prefix) == "", name
    assert el.frr_paths(prefix) == []


def test_as_loop_rejected_unless_allow_local_as(el: ExportLab) -> None:
    prefix = f"{NET}.109.0/24"
    paths = wait_for("e2's looped route accepted", lambda: el.routes(prefix), 20)
    # e1's copy carries 65010 too, but e1 has no allow_local_as: only e2's is held.
    assert [p["peer"] for p in paths] == [PEERS["e2"][0]], paths
    route = wait_for("e2's looped route in the kernel", lambda: el.kernel(prefix), 20)
    assert route_gateways(route) == {PEERS["e2"][0]}, route
    assert f"{NET}.109.0/24" in el.birds["e1"].birdc("show", "route", "export", "peer1")


def test_first_as_not_the_peers_is_treat_as_withdraw(el: ExportLab) -> None:
    wait_for("e3's good route", lambda: el.kernel(f"{NET}.116.0/24"), 20)
    # e3 (route server, no prepend) sent .115 with path "65099": not its own AS first.
    exported = el.birds["e3"].birdc("show", "route", "export", "peer1", "all")
    assert f"{NET}.115.0/24" in exported, exported
    assert el.routes(f"{NET}.115.0/24") == []
    assert el.kernel(f"{NET}.115.0/24") is None
    [good] = el.routes(f"{NET}.116.0/24")
    assert good["as_path"] == [65003, 65099], good
    # e4 is the same kind of route server, but enforce_first_as = false for it.
    [rs] = el.routes(f"{NET}.117.0/24")
    assert rs["as_path"] == [65099], rs
    assert route_gateways(wait_for("e4's route in the kernel", lambda: el.kernel(f"{NET}.117.0/24"), 20)) == {
        PEERS["e4"][0]
    }
