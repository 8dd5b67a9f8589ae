"""Graceful restart (RFC 4724) in both roles against real BIRD, with the kernel table watched.

Topology: lab.topology's skeleton (our daemon in VRF red, table 500, between BIRD b1 and b2).
A netlink monitor (`ip monitor route`, run in our namespace for the whole restart) records
every route deletion in table 500; the assertions say which prefixes may have been deleted.

(a) BIRD restarts (helper role: us): its routes stay in our RIB (stale) and in the kernel, are
    refreshed, and the one it no longer announces goes at its End-of-RIB; when BIRD does not
    come back, its routes go when its restart time runs out.
(b) We restart (SIGTERM, and kill -9) with `[router] graceful_restart = true`: BIRD keeps our
    routes while we are away, the kernel loses none of them, and after the restart only the
    prefix the new config rejects is deleted, once the peers' End-of-RIB is in.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.peers import Bgpd, Bird, wait_for
from lab.topology import RED_TABLE, SkeletonLab, bgpd_config, bird_config
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

BIRD_RESTART_TIME = 6  # what BIRD advertises: how long we keep its routes while it is away
GR_BIRD = f"  graceful restart on;\n  graceful restart time {BIRD_RESTART_TIME};\n"


def gr_bird_config(name: str, drop: tuple[str, ...] = ()) -> str:
    conf = bird_config(name).replace("  connect retry time 2;\n", "  connect retry time 2;\n" + GR_BIRD)
    for prefix in drop:
        conf = conf.replace(f"  route {prefix} blackhole;\n", "")
    return conf


KEPT_NETWORK = '\n[[network]]\nprefix = "10.97.0.0/16"\nvrf = "red"\n'


def gr_bgpd_config(
    workdir: Path, restarting: bool, reject: str | None = None, network: bool = True, restart_time: int = 120
) -> str:
    conf = bgpd_config(workdir, KEPT_NETWORK)
    conf = conf.replace("connect_retry = 1\n", f"connect_retry = 1\nrestart_time = {restart_time}\n", 1)
    if restarting:
        conf = conf.replace('router_id = "10.91.0.1"\n', 'router_id = "10.91.0.1"\ngraceful_restart = true\n')
    if reject is not None:
        conf = conf.replace('import = "all"', 'import = "no-reject"', 1)
        conf += f"""
[policy.no-reject]
[[policy.no-reject.term]]
match.prefix = "{reject}"
action = "reject"
[[policy.no-reject.term]]
action = "accept"
"""
    if not network:
        conf = conf.replace('[[network]]\nprefix = "10.96.0.0/12"\nvrf = "red"\n', "")
    return conf


class RouteMonitor:
    """`ip monitor route` in a namespace: every deletion in one table, as the kernel reports it."""

    def __init__(self, ns: str, workdir: Path, *options: str) -> None:
        self.path = workdir / "ipmon.log"
        self.file = open(self.path, "w")  # noqa: SIM115 - the child writes it until stop()
        self.proc = subprocess.Popen(
            ["ip", "-n", ns, *options, "monitor", "route"], stdout=self.file, stderr=subprocess.STDOUT
        )
        time.sleep(0.3)  # subscribed before anything happens

    def deleted(self, table: int) -> set[str]:
        out = set()
        for line in self.path.read_text().splitlines():
            if line.startswith("Deleted ") and f"table {table} " in line + " ":
                out.add(line.split()[1])
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.file.close()


@contextlib.contextmanager
def monitoring(lab: Any) -> Iterator[list[RouteMonitor]]:
    """``lab.monitors``, where ``monitor(lab)`` puts each one; all stopped on the way out."""
    monitors: list[RouteMonitor] = []
    lab.monitors = monitors
    try:
        yield monitors
    finally:
        for m in monitors:
            m.stop()


def ours(lab: SkeletonLab) -> dict[str, set[str]]:
    """Our routes (proto 186) in table 500, both families: prefix -> gateways."""
    out: dict[str, set[str]] = {}
    for fam in ("-4", "-6"):
        shown = subprocess.run(
            ["ip", "-n", lab.us, "-N", "-j", fam, "route", "show", "table", str(RED_TABLE)],
            capture_output=True,
            text=True,
        )
        for r in json.loads(shown.stdout or "[]") if shown.returncode == 0 else []:
            if str(r.get("protocol")) == "186":
                hops = r.get("nexthops", [r])
                out[r["dst"]] = {h["gateway"] for h in hops if "gateway" in h}
    return out


def routes(bgpd: Bgpd) -> dict[str, list[dict[str, Any]]]:
    return {r["prefix"]: r["paths"] for r in bgpd.cli_json("show", "routes", "--vrf", "red")["routes"]}


def neighbor(bgpd: Bgpd, address: str) -> dict[str, Any]:
    return next(n for n in bgpd.cli_json("show", "neighbors")["neighbors"] if n["address"] == address)


def all_established(bgpd: Bgpd) -> bool:
    return all(n["state"] == "Established" for n in bgpd.cli_json("show", "neighbors")["neighbors"])


def bird_prefixes(bird: Bird) -> set[str]:
    out = set()
    for table in ("master4", "master6"):
        for line in bird.birdc("show", "route", "table", table).splitlines():
            word = line.split(maxsplit=1)[0] if line.strip() else ""
            if "/" in word and not line.startswith((" ", "\t")):
                out.add(word)
    return out


def restart_bird(bird: Bird, config: str, recovery: bool) -> None:
    """Start BIRD again (after it exited), with ``-R`` for graceful restart recovery."""
    conf = bird.workdir / f"{bird.name}.conf"
    conf.write_text(config)
    bird.socket.unlink(missing_ok=True)
    argv = ["bird", "-f", "-c", str(conf), "-s", str(bird.socket), "-P", str(bird.workdir / "bird.pid")]
    bird._spawn([*argv, "-R"] if recovery else argv)
    wait_for("BIRD control socket", lambda: bird.socket.exists() or None, 15)


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SkeletonLab]:
    need_root()
    if shutil.which("bird") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")
    lab = SkeletonLab(tmp_path).build()
    try:
        with monitoring(lab):
            lab._start_birds({name: gr_bird_config(name) for name in ("b1", "b2")})
            yield lab
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            lab.dump_logs()
        lab.close()


def monitor(lab: SkeletonLab) -> RouteMonitor:
    m = RouteMonitor(lab.us, lab.workdir)
    lab.monitors.append(m)  # type: ignore[attr-defined]
    return m


def start_us(lab: SkeletonLab, restarting: bool = False, **kw: Any) -> Bgpd:
    wd = lab.workdir / "us"
    wd.mkdir(parents=True, exist_ok=True)
    lab.bgpd = Bgpd(lab.us, wd, "bgpd", config=gr_bgpd_config(wd, restarting, **kw)).start()
    return lab.bgpd


FULL = {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8:100::/48"}
# Announced by both BIRDs: complete only with both next hops (ECMP), not just present.
ECMP = {"192.0.2.0/24": {"10.91.1.2", "10.91.2.2"}, "2001:db8:100::/48": {"fd91:1::2", "fd91:2::2"}}


def complete(lab: SkeletonLab) -> dict[str, set[str]] | None:
    """Our kernel routes once every BIRD route is in, the ECMP ones with both next hops."""
    now = ours(lab)
    if not set(now) >= FULL or any(now[p] != gws for p, gws in ECMP.items()):
        return None
    return now


def test_bird_restarts_gracefully_and_we_help(lab: SkeletonLab) -> None:
    bgpd = start_us(lab)
    wait_for("all sessions up", lambda: all_established(bgpd), 40)
    wait_for("every BIRD route in the kernel", lambda: complete(lab), 30)
    assert ours(lab)["192.0.2.0/24"] == {"10.91.1.2", "10.91.2.2"}
    assert neighbor(bgpd, "10.91.1.2")["graceful_restart"]["peer_restart_time"] == BIRD_RESTART_TIME
    mon = monitor(lab)

    b1 = lab.birds["b1"]
    b1.birdc("graceful", "restart")  # BIRD closes its sessions without NOTIFICATION and exits
    assert b1.proc is not None
    b1.proc.wait(15)
    wait_for("b1 down", lambda: neighbor(bgpd, "10.91.1.2")["state"] != "Established", 15)
    gr = neighbor(bgpd, "10.91.1.2")["graceful_restart"]
    assert gr["state"] == "restarting" and gr["stale"] == 2, gr  # 192.0.2.0/24, 198.51.100.0/24
    assert 0 < gr["time_left_s"] <= BIRD_RESTART_TIME
    rib = routes(bgpd)
    only_b1 = rib["198.51.100.0/24"]
    assert [p["stale"] for p in only_b1] == [True] and only_b1[0]["peer"] == "10.91.1.2"
    assert sorted(p["stale"] for p in rib["192.0.2.0/24"]) == [False, True]
    assert rib["203.0.113.0/24"][0]["stale"] is False
    # The kernel is untouched: the ECMP route keeps both next hops, b1's own route stays.
    assert ours(lab)["192.0.2.0/24"] == {"10.91.1.2", "10.91.2.2"}
    assert "198.51.100.0/24" in ours(lab)

    # BIRD comes back (recovery) without 198.51.100.0/24: it is swept after BIRD's End-of-RIB.
    restart_bird(b1, gr_bird_config("b1", drop=("198.51.100.0/24",)), recovery=True)
    wait_for("b1 back", lambda: neighbor(bgpd, "10.91.1.2")["state"] == "Established", 30)
    wait_for("198.51.100.0/24 swept", lambda: "198.51.100.0/24" not in ours(lab) or None, 30)
    wait_for(
        "b1's End-of-RIB", lambda: neighbor(bgpd, "10.91.1.2")["graceful_restart"]["state"] == "none", 15
    )
    assert neighbor(bgpd, "10.91.1.2")["graceful_restart"]["stale"] == 0
    rib = routes(bgpd)
    assert "198.51.100.0/24" not in rib
    assert all(p["stale"] is False for p in rib["192.0.2.0/24"]) and len(rib["192.0.2.0/24"]) == 2
    assert ours(lab)["192.0.2.0/24"] == {"10.91.1.2", "10.91.2.2"}
    # The only deletion the kernel saw during the whole restart is the swept prefix.
    assert mon.deleted(RED_TABLE) == {"198.51.100.0/24"}
    assert "graceful restart: End-of-RIB, stale routes swept" in bgpd.log_text()


def test_bird_does_not_come_back_restart_time_sweeps(lab: SkeletonLab) -> None:
    bgpd = start_us(lab)
    wait_for("all sessions up", lambda: all_established(bgpd), 40)
    wait_for("every BIRD route in the kernel", lambda: complete(lab), 30)
    b2 = lab.birds["b2"]
    b2.signal(signal.SIGKILL)  # a crash: TCP closes without NOTIFICATION
    assert b2.proc is not None
    b2.proc.wait(5)
    down = time.monotonic()
    wait_for("b2 down", lambda: neighbor(bgpd, "10.91.2.2")["state"] != "Established", 15)
    assert neighbor(bgpd, "10.91.2.2")["graceful_restart"]["state"] == "restarting"
    time.sleep(BIRD_RESTART_TIME / 2)
    assert "203.0.113.0/24" in ours(lab)  # still there within the restart time
    assert ours(lab)["192.0.2.0/24"] == {"10.91.1.2", "10.91.2.2"}
    wait_for(
        "203.0.113.0/24 swept", lambda: "203.0.113.0/24" not in ours(lab) or None, BIRD_RESTART_TIME + 10
    )
    assert time.monotonic() - down >= BIRD_RESTART_TIME - 1
    assert ours(lab)["192.0.2.0/24"] == {"10.91.1.2"}  # the ECMP set shrank to b1
    assert neighbor(bgpd, "10.91.2.2")["graceful_restart"]["stale"] == 0
    assert "restart time expired" in bgpd.log_text()


def test_notification_ends_the_session_without_graceful_restart(lab: SkeletonLab) -> None:
    """RFC 4724 without RFC 8538's N bit: a Cease from the peer withdraws at once."""
    bgpd = start_us(lab)
    wait_for("all sessions up", lambda: all_established(bgpd), 40)
    wait_for("every BIRD route in the kernel", lambda: complete(lab), 30)
    lab.birds["b2"].birdc("disable", "us4")  # BIRD sends Cease/administrative shutdown
    wait_for("203.0.113.0/24 withdrawn at once", lambda: "203.0.113.0/24" not in ours(lab) or None, 5)
    assert neighbor(bgpd, "10.91.2.2")["graceful_restart"]["state"] == "none"


def _our_restart(lab: SkeletonLab, how: int) -> None:
    bgpd = start_us(lab, restarting=True)
    wait_for("all sessions up", lambda: all_established(bgpd), 40)
    wait_for("every BIRD route in the kernel", lambda: complete(lab), 30)
    b1 = lab.birds["b1"]
    wait_for("b1 has our network", lambda: "10.96.0.0/12" in bird_prefixes(b1) or None, 15)
    wait_for("b1 has our other network", lambda: "10.97.0.0/16" in bird_prefixes(b1) or None, 15)
    before = ours(lab)
    mon = monitor(lab)

    if how == signal.SIGTERM:
        bgpd.signal(signal.SIGTERM)
    else:
        bgpd.signal(signal.SIGKILL)
    assert bgpd.proc is not None
    bgpd.proc.wait(20)
    # While we are away: the kernel keeps everything, BIRD keeps our routes (stale).
    assert ours(lab) == before
    time.sleep(1.0)
    assert {"10.96.0.0/12", "10.97.0.0/16", "fd96::/48"} <= bird_prefixes(b1)
    bgpd.socket.unlink(missing_ok=True)  # kill -9 leaves it behind; start() waits for a new one

    # Back with a changed config: 203.0.113.0/24 rejected on import, 10.96.0.0/12 no longer ours.
    bgpd = start_us(lab, restarting=True, reject="203.0.113.0/24", network=False)
    wait_for("all sessions up again", lambda: all_established(bgpd), 40)
    gr = neighbor(bgpd, "10.91.1.2")["graceful_restart"]
    assert "our_restart" in gr and gr["our_restart"]["forwarding"] == ["ipv4", "ipv6"], gr
    wait_for(
        "203.0.113.0/24 deleted after reconciliation", lambda: "203.0.113.0/24" not in ours(lab) or None, 30
    )
    assert "graceful restart: recovery done" in bgpd.log_text()
    after = ours(lab)
    assert after == {p: nh for p, nh in before.items() if p != "203.0.113.0/24"}
    # Nothing else was ever deleted from the kernel during the whole restart.
    assert mon.deleted(RED_TABLE) == {"203.0.113.0/24"}
    # BIRD: our withdrawn network goes after our End-of-RIB, the rest stays ours, fresh.
    wait_for("b1 drops 10.96.0.0/12", lambda: "10.96.0.0/12" not in bird_prefixes(b1) or None, 30)
    assert {"10.97.0.0/16", "fd96::/48"} <= bird_prefixes(b1)


def test_we_restart_gracefully_sigterm(lab: SkeletonLab) -> None:
    _our_restart(lab, signal.SIGTERM)


def test_we_restart_after_kill_9(lab: SkeletonLab) -> None:
    _our_restart(lab, signal.SIGKILL)


def test_we_restart_and_a_peer_stays_away(lab: SkeletonLab) -> None:
    """Recovery waits for every graceful-restart peer's End-of-RIB, at most our restart time."""
    bgpd = start_us(lab, restarting=True, restart_time=8)
    wait_for("all sessions up", lambda: all_established(bgpd), 40)
    wait_for("every BIRD route in the kernel", lambda: complete(lab), 30)
    before = ours(lab)
    mon = monitor(lab)
    bgpd.signal(signal.SIGTERM)
    assert bgpd.proc is not None
    bgpd.proc.wait(20)
    lab.birds["b2"].signal(signal.SIGKILL)  # b2 never comes back
    bgpd = start_us(lab, restarting=True, restart_time=8)
    started = time.monotonic()
    wait_for("b1 up again", lambda: neighbor(bgpd, "10.91.1.2")["state"] == "Established", 30)
    time.sleep(3)
    assert ours(lab) == before  # still waiting for b2: nothing touched
    ours_gr = neighbor(bgpd, "10.91.1.2")["graceful_restart"]["our_restart"]
    assert ours_gr["recovering"] is True and ours_gr["waiting_end_of_rib"] is False
    assert neighbor(bgpd, "10.91.2.2")["graceful_restart"]["our_restart"]["waiting_end_of_rib"] is True
    wait_for("b2's route deleted at the deadline", lambda: "203.0.113.0/24" not in ours(lab) or None, 20)
    assert time.monotonic() - started >= 7
    assert ours(lab)["192.0.2.0/24"] == {"10.91.1.2"}  # replaced in place: the ECMP set shrank
    assert mon.deleted(RED_TABLE) == {"203.0.113.0/24"}
    assert '"timed_out": true' in bgpd.log_text()


def test_json_shapes(lab: SkeletonLab) -> None:
    bgpd = start_us(lab)
    wait_for("b1 up", lambda: neighbor(bgpd, "10.91.1.2")["state"] == "Established", 40)
    gr = neighbor(bgpd, "10.91.1.2")["graceful_restart"]
    assert gr == {
        "enabled": True,
        "peer_restart_time": BIRD_RESTART_TIME,
        "peer_forwarding": [],
        "state": "none",
        "stale": 0,
        "time_left_s": None,
    }, json.dumps(gr)


# --- FRR, both directions --------------------------------------------------------------------

FRR_ASN = 65003
US4, FRR4 = "10.63.1.1", "10.63.1.2"
FRR_KEEP, FRR_DROP = "198.51.120.0/24", "198.51.121.0/24"
FRR_RESTART_TIME = 8


def frr_gr_config(networks: tuple[str, ...]) -> str:
    nets = "".join(f"  network {n}\n" for n in networks)
    return f"""frr defaults traditional
hostname f
log stdout informational
router bgp {FRR_ASN}
 bgp router-id {FRR4}
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 bgp graceful-restart preserve-fw-state
 bgp graceful-restart restart-time {FRR_RESTART_TIME}
 neighbor {US4} remote-as 65010
 neighbor {US4} timers 3 9
 neighbor {US4} timers connect 2
 address-family ipv4 unicast
{nets} exit-address-family
"""


def frr_us_config(workdir: Path, restarting: bool, network: bool = True) -> str:
    nets = '[[network]]\nprefix = "10.98.0.0/16"\nvrf = "red"\n' if network else ""
    return f"""
[router]
asn = 65010
router_id = "{US4}"
listen = ["0.0.0.0"]
graceful_restart = {"true" if restarting else "false"}

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[vrf.red]
table = {RED_TABLE}

[[neighbor]]
address = "{FRR4}"
asn = {FRR_ASN}
vrf = "red"
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
address_families = ["ipv4"]

[[network]]
prefix = "10.99.0.0/16"
vrf = "red"
{nets}"""


@pytest.fixture
def frr_lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[SkeletonLab, Any]]:
    from lab.frr import Frr

    need_root()
    if shutil.which("vtysh") is None:
        pytest.skip("needs FRR (apt-get install frr)")
    lab = SkeletonLab(tmp_path)
    lab.us = lab.lab.ns("us")
    f = lab.lab.ns("f")
    lab.lab.link(lab.us, f, [f"{US4}/24"], [f"{FRR4}/24"], name="vf")
    frr = Frr(f, tmp_path / "f", frr_gr_config((FRR_KEEP, FRR_DROP)))
    try:
        with monitoring(lab):
            frr.start()
            yield lab, frr
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            lab.dump_logs()
            print("---- FRR log ----\n" + frr.log_text()[-8000:])
        frr.stop()
        lab.close()


def start_us_frr(lab: SkeletonLab, restarting: bool, network: bool = True) -> Bgpd:
    wd = lab.workdir / "us"
    wd.mkdir(parents=True, exist_ok=True)
    lab.bgpd = Bgpd(lab.us, wd, "bgpd", config=frr_us_config(wd, restarting, network)).start()
    return lab.bgpd


def frr_routes(frr: Any) -> dict[str, list[dict[str, Any]]]:
    return frr.json("show bgp ipv4 unicast json").get("routes", {})  # type: ignore[no-any-return]


def test_frr_restarts_and_we_help(frr_lab: tuple[SkeletonLab, Any]) -> None:
    lab, frr = frr_lab
    bgpd = start_us_frr(lab, restarting=False)
    wait_for("FRR up", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    wait_for("FRR's routes in the kernel", lambda: {FRR_KEEP, FRR_DROP} <= set(ours(lab)) or None, 30)
    assert neighbor(bgpd, FRR4)["graceful_restart"]["peer_forwarding"] == ["ipv4"]
    mon = monitor(lab)
    # FRR's bgpd dies (zebra stays): TCP closes without NOTIFICATION.
    frr.bgpd.signal(signal.SIGKILL)
    frr.bgpd.proc.wait(5)
    wait_for("FRR down", lambda: neighbor(bgpd, FRR4)["state"] != "Established", 15)
    gr = neighbor(bgpd, FRR4)["graceful_restart"]
    assert gr["state"] == "restarting" and gr["stale"] == 2, gr
    assert {FRR_KEEP, FRR_DROP} <= set(ours(lab))
    assert all(p["stale"] for p in routes(bgpd)[FRR_KEEP])
    # bgpd again, without FRR_DROP.
    from lab.peers import Process

    (frr.rundir / "frr.conf").write_text(frr_gr_config((FRR_KEEP,)))
    (frr.rundir / "bgpd.vty").unlink(missing_ok=True)
    frr.bgpd = Process(frr.ns, frr.workdir, "bgpd")
    run = frr.rundir
    frr.bgpd._spawn(
        [
            "/usr/lib/frr/bgpd",
            *("-f", str(run / "frr.conf"), "-z", str(run / "zserv.api"), "--vty_socket", str(run)),
            *("-u", "frr", "-g", "frr", "-i", str(run / "bgpd.pid"), "-p", "179"),
        ]
    )
    wait_for("FRR back", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    wait_for("FRR_DROP swept", lambda: FRR_DROP not in set(ours(lab)) or None, 40)
    wait_for("recovered", lambda: neighbor(bgpd, FRR4)["graceful_restart"]["state"] == "none", 20)
    assert FRR_KEEP in ours(lab) and not routes(bgpd)[FRR_KEEP][0]["stale"]
    assert mon.deleted(RED_TABLE) == {FRR_DROP}


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_we_restart_and_frr_helps(frr_lab: tuple[SkeletonLab, Any], how: int) -> None:
    lab, frr = frr_lab
    bgpd = start_us_frr(lab, restarting=True)
    wait_for("FRR up", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    wait_for("FRR's routes in the kernel", lambda: {FRR_KEEP, FRR_DROP} <= set(ours(lab)) or None, 30)
    wait_for("FRR has ours", lambda: {"10.98.0.0/16", "10.99.0.0/16"} <= set(frr_routes(frr)) or None, 20)
    before = ours(lab)
    mon = monitor(lab)
    bgpd.signal(how)
    assert bgpd.proc is not None
    bgpd.proc.wait(20)
    bgpd.socket.unlink(missing_ok=True)  # kill -9 leaves it behind; start() waits for a new one
    # FRR, as helper, keeps our routes and marks them stale.
    stale = wait_for(
        "FRR marks our routes stale",
        lambda: all(frr_routes(frr).get(p, [{}])[0].get("stale") for p in ("10.98.0.0/16", "10.99.0.0/16")),
        15,
    )
    assert stale
    assert ours(lab) == before
    bgpd = start_us_frr(lab, restarting=True, network=False)
    wait_for("FRR up again", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    wait_for("FRR drops 10.98.0.0/16", lambda: "10.98.0.0/16" not in frr_routes(frr) or None, 30)
    fresh = frr_routes(frr)["10.99.0.0/16"][0]
    assert not fresh.get("stale"), fresh
    assert "graceful restart: recovery done" in bgpd.log_text()
    assert ours(lab) == before
    assert mon.deleted(RED_TABLE) == set()
