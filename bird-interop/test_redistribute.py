"""Redistribution and kernel next-hop resolution against real BIRD peers and real kernel tables.

    b1 (BIRD, AS 65003, eBGP) ---- us (bgpd, AS 65010) ---- b2, b3 (BIRD, AS 65010, iBGP)
    10.93.1.2              10.93.1.1 / .2.1 / .3.1         10.93.2.2, 10.93.3.2

We redistribute what another daemon puts in table 254 with protocol 80 (Calico's pod
blocks: blackhole routes), through a policy, and the connected subnets; b1 must see them
appear and go as ``ip route add/del`` and ``ip addr add/del`` change our kernel. b2 and b3
announce 198.18.0.0/24 over iBGP with next hops 10.66.0.9 and 10.67.0.9, which our kernel
reaches through static routes via them with different metrics: the lower metric (IGP cost) wins,
a next hop whose route goes is unresolvable, and with none left the route leaves our kernel
and b1.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.netns import Lab, run
from lab.peers import Bgpd, Bird, kernel_routes, route_gateways, wait_for

pytestmark = [pytest.mark.root, pytest.mark.interop]

US_ASN, B1_ASN = 65010, 65003
PREFIX = "198.18.0.0/24"
NH_A, NH_B = "10.66.0.9", "10.67.0.9"  # b2's next hops for PREFIX, over sessions a and b

B1_CONF = f"""
router id 10.93.1.2;
log stderr all;
protocol device {{ scan time 2; }}
protocol bgp ours {{
  local 10.93.1.2 as {B1_ASN};
  neighbor 10.93.1.1 as {US_ASN};
  hold time 9;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 {{ import all; export none; }};
}}
"""


def ibgp_conf(addr: str, next_hop: str) -> str:
    """b2 or b3: PREFIX over iBGP with ``next_hop`` (not on our subnet: resolved by our kernel)."""
    return f"""
router id {addr};
log stderr all;
protocol device {{ scan time 2; }}
protocol static st4 {{ ipv4; route {PREFIX} blackhole; }}
protocol bgp ours {{
  local {addr} as {US_ASN};
  neighbor {addr.rsplit(".", 1)[0]}.1 as {US_ASN};
  hold time 9;
  connect retry time 2;
  error wait time 1, 5;
  ipv4 {{ import none; export filter {{ bgp_next_hop = {next_hop}; accept; }}; next hop keep; }};
}}
"""


KERNEL_ENTRY = """[[redistribute]]
kernel_table = 254
protocol = 80
policy = "pods"
"""


def bgpd_config(workdir: Path) -> str:
    return f"""
[router]
asn = {US_ASN}
router_id = "10.93.0.1"
listen = ["0.0.0.0"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[policy.pods]
[[policy.pods.term]]
match.prefix = "10.244.0.0/16 le 26"
action = "accept"
set.community_add = ["65010:80"]

{KERNEL_ENTRY}
[[redistribute]]
connected = true

[[neighbor]]
address = "10.93.1.2"
asn = {B1_ASN}
import = "none"
export = "all"
hold_time = 9
connect_retry = 1
address_families = ["ipv4"]

[[neighbor]]
address = "10.93.2.2"
asn = {US_ASN}
hold_time = 9
connect_retry = 1
address_families = ["ipv4"]

[[neighbor]]
address = "10.93.3.2"
asn = {US_ASN}
hold_time = 9
connect_retry = 1
address_families = ["ipv4"]
"""


class RedistLab:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lab = Lab()
        self.birds: dict[str, Bird] = {}
        self.bgpd: Bgpd | None = None
        self.us = ""

    def start(self) -> None:
        self.us = self.lab.ns("us")
        b1, b2, b3 = self.lab.ns("b1"), self.lab.ns("b2"), self.lab.ns("b3")
        self.lab.link(self.us, b1, ["10.93.1.1/24"], ["10.93.1.2/24"], name="re1")
        self.lab.link(self.us, b2, ["10.93.2.1/24"], ["10.93.2.2/24"], name="re2")
        self.lab.link(self.us, b3, ["10.93.3.1/24"], ["10.93.3.2/24"], name="re3")
        # Another daemon's pod block in our main table (Calico: a blackhole, its own protocol).
        self.ip("route add blackhole 10.244.1.0/26 proto 80")
        self.ip("route add blackhole 10.245.0.0/26 proto 80")  # outside the policy: not announced
        # The ways to b2's next hops: the IGP cost is the metric.
        self.ip(f"route add {NH_A.rsplit('.', 1)[0]}.0/24 via 10.93.2.2 metric 20 proto static")
        self.ip(f"route add {NH_B.rsplit('.', 1)[0]}.0/24 via 10.93.3.2 metric 10 proto static")
        workdir = self.workdir
        confs = {b1: B1_CONF, b2: ibgp_conf("10.93.2.2", NH_A), b3: ibgp_conf("10.93.3.2", NH_B)}
        for ns, conf in confs.items():
            name = ns.rsplit("-", 1)[1]
            self.birds[name] = Bird(ns, workdir / name, "bird", config=conf).start()
        wd = workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_config(wd)).start()

    def ip(self, args: str) -> str:
        return run("ip", *args.split(), ns=self.us).stdout

    def b1_routes(self) -> dict[str, dict[str, Any]]:
        """b1's table: prefix -> {"via": next hop, "communities": [...]} (from `birdc show route all`)."""
        out = self.birds["b1"].birdc("show", "route", "all")
        routes: dict[str, dict[str, Any]] = {}
        cur: dict[str, Any] | None = None
        for line in out.splitlines():
            words = line.split()
            if words and "/" in words[0] and words[0][0].isdigit():
                cur = routes.setdefault(words[0], {"via": None, "communities": ""})
            elif cur is not None and words[:1] == ["via"]:
                cur["via"] = words[1]
            elif cur is not None and "BGP.community:" in line:
                cur["communities"] = line.split(":", 1)[1].strip()
        return routes

    def routes(self, *args: str) -> list[dict[str, Any]]:
        assert self.bgpd is not None
        return list(self.bgpd.cli_json("show", "routes", *args)["routes"])

    def ours(self) -> dict[str, set[str]]:
        """Our (proto 186) routes in the main table."""
        return {
            r["dst"]: route_gateways(r)
            for r in kernel_routes(self.us, "main", 4)
            if str(r.get("protocol")) in ("186", "bgp")
        }

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


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedistLab]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and writes kernel routing tables")
    if shutil.which("bird") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")
    lab = RedistLab(tmp_path)
    try:
        lab.start()
        assert lab.bgpd is not None
        bgpd = lab.bgpd
        wait_for(
            "all sessions Established",
            lambda: {n["state"] for n in bgpd.cli_json("show", "neighbors")["neighbors"]} == {"Established"},
            40,
        )
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


def test_kernel_and_connected_routes_reach_bird_and_follow_the_kernel(lab: RedistLab) -> None:
    wait_for(
        "redistributed routes at b1",
        lambda: {"10.244.1.0/26", "10.93.1.0/24", "10.93.2.0/24"} <= lab.b1_routes().keys(),
        20,
    )
    got = lab.b1_routes()
    assert "10.245.0.0/26" not in got  # rejected by the policy
    assert got["10.244.1.0/26"]["via"] == "10.93.1.1"  # next hop self
    assert "(65010,80)" in got["10.244.1.0/26"]["communities"]
    # As our CLI shows them: local routes named for their source, never in our kernel.
    [pod] = lab.routes("10.244.1.0/26")
    assert pod["paths"][0]["source"] == "kernel" and pod["paths"][0]["origin"] == "incomplete"
    assert pod["fib"] is None
    [conn] = lab.routes("10.93.1.0/24")
    assert conn["paths"][0]["source"] == "connected"
    assert "10.244.1.0/26" not in lab.ours() and "10.93.1.0/24" not in lab.ours()
    assert [r.get("type") for r in kernel_routes(lab.us, "main", 4) if r["dst"] == "10.244.1.0/26"] == [
        "blackhole"
    ]

    lab.ip("route del 10.244.1.0/26")
    gone = _timed("10.244.1.0/26 withdrawn at b1", lambda: "10.244.1.0/26" not in lab.b1_routes())
    lab.ip("route add blackhole 10.244.7.0/26 proto 80")
    added = _timed("10.244.7.0/26 announced at b1", lambda: "10.244.7.0/26" in lab.b1_routes())
    lab.ip("addr add 10.55.0.1/24 dev re1a")
    conn_added = _timed("10.55.0.0/24 announced at b1", lambda: "10.55.0.0/24" in lab.b1_routes())
    lab.ip("addr del 10.55.0.1/24 dev re1a")
    conn_gone = _timed("10.55.0.0/24 withdrawn at b1", lambda: "10.55.0.0/24" not in lab.b1_routes())
    print(
        f"kernel -> BIRD: del {gone:.2f}s, add {added:.2f}s, addr add {conn_added:.2f}s, del {conn_gone:.2f}s"
    )
    # Within a second, with birdc's own polling included.
    assert max(gone, added, conn_added, conn_gone) < 1.5


def test_reload_adds_and_removes_redistribution(lab: RedistLab) -> None:
    assert lab.bgpd is not None
    wait_for("pod block at b1", lambda: "10.244.1.0/26" in lab.b1_routes(), 20)
    conf = lab.bgpd.config_path.read_text()
    # A bad file changes nothing, and says which key.
    lab.bgpd.config_path.write_text(
        conf.replace(KERNEL_ENTRY, KERNEL_ENTRY.replace("[[redistribute]]", "[[redistribut]]"))
    )
    bad = lab.bgpd.cli("reload", check=False)
    assert bad.returncode != 0 and "redistribut: unknown key (did you mean 'redistribute'?)" in bad.stderr
    assert "10.244.1.0/26" in lab.b1_routes()
    # Without the kernel entry: the pod block goes, the connected subnets stay.
    lab.bgpd.config_path.write_text(conf.replace(KERNEL_ENTRY, ""))
    lab.bgpd.cli("reload")
    wait_for("pod block withdrawn at b1", lambda: "10.244.1.0/26" not in lab.b1_routes(), 10)
    assert "10.93.1.0/24" in lab.b1_routes()
    lab.bgpd.config_path.write_text(conf)
    lab.bgpd.cli("reload")
    wait_for("pod block back at b1", lambda: "10.244.1.0/26" in lab.b1_routes(), 10)


def _paths(lab: RedistLab, *args: str) -> dict[str, dict[str, Any]]:
    """next hop -> path of PREFIX as `show routes --all` gives it."""
    routes = lab.routes("--all", PREFIX, *args)
    return {p["next_hop"]: p for r in routes for p in r["paths"]}


def test_igp_cost_decides_and_unresolvable_next_hops_are_unusable(lab: RedistLab) -> None:
    # Both paths in, the one via the lower metric (10, to NH_B) best; in the kernel via b2's .3.
    wait_for("both paths", lambda: set(_paths(lab)) == {NH_A, NH_B}, 20)
    wait_for("best via the lower IGP cost", lambda: _paths(lab)[NH_B]["best"], 5)
    paths = _paths(lab)
    assert paths[NH_A]["best"] is False and paths[NH_A]["reason"] == "lost on IGP cost"
    wait_for("kernel route via 10.93.3.2", lambda: lab.ours().get(PREFIX) == {"10.93.3.2"}, 10)
    wait_for("b1 has it", lambda: PREFIX in lab.b1_routes(), 10)

    # The costs swap: the other path wins, and the kernel follows.
    lab.ip(f"route del {NH_B.rsplit('.', 1)[0]}.0/24 metric 10")
    lab.ip(f"route add {NH_B.rsplit('.', 1)[0]}.0/24 via 10.93.3.2 metric 30 proto static")
    wait_for("best via NH_A now", lambda: _paths(lab)[NH_A]["best"], 5)
    wait_for("kernel route via 10.93.2.2", lambda: lab.ours().get(PREFIX) == {"10.93.2.2"}, 10)

    # NH_A's route goes: its path is unusable, NH_B's (cost 30) takes over.
    lab.ip(f"route del {NH_A.rsplit('.', 1)[0]}.0/24")
    wait_for("best via NH_B again", lambda: _paths(lab)[NH_B]["best"], 5)
    assert _paths(lab)[NH_A]["reason"] == "next hop unresolvable"
    wait_for("kernel route via 10.93.3.2 again", lambda: lab.ours().get(PREFIX) == {"10.93.3.2"}, 10)

    # No way to either: out of the Loc-RIB's selection, the kernel and b1; --all says why.
    lab.ip(f"route del {NH_B.rsplit('.', 1)[0]}.0/24")
    wait_for("route gone from our kernel", lambda: PREFIX not in lab.ours(), 10)
    assert lab.routes(PREFIX) == []
    assert {p["reason"] for p in _paths(lab).values()} == {"next hop unresolvable"}
    wait_for("withdrawn at b1", lambda: PREFIX not in lab.b1_routes(), 10)

    # A way back: announced and installed again.
    lab.ip(f"route add {NH_A.rsplit('.', 1)[0]}.0/24 via 10.93.2.2 metric 20 proto static")
    wait_for("kernel route via 10.93.2.2 once more", lambda: lab.ours().get(PREFIX) == {"10.93.2.2"}, 10)
    wait_for("back at b1", lambda: PREFIX in lab.b1_routes(), 10)
    assert lab.bgpd is not None and "next hops resolve differently" in lab.bgpd.log_text()
