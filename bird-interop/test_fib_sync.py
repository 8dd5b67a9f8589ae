"""Kernel table 500 against the RIB, with our daemon between two real BIRD routers.

After each of: start, `ip route del` by hand, `ip route change` by hand, a link going down and
up, a BIRD withdrawal, and the daemon stopping, the routes of our protocol in the kernel table
(``ip -N -j route show table 500``) must be exactly the RIB's selected routes
(``bgpd-cli --json show routes``) whose ``fib`` status is ``installed``, with the same next hops;
a route the kernel cannot hold is reported ``unresolved`` and absent from the kernel.
Then: a daemon that stops with ``persist`` leaves its routes, and a daemon without
CAP_NET_ADMIN keeps its sessions and reports every route ``failed`` with the kernel's reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.peers import Bgpd, wait_for
from lab.topology import RED_TABLE, SkeletonLab, bgpd_config
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

PROTO = "186"
NEIGHBORS = ["10.91.1.2", "fd91:1::2", "10.91.2.2", "fd91:2::2"]
Routes = dict[str, frozenset[str]]


def _need_bird() -> None:
    need_root()
    if shutil.which("bird") is None or shutil.which("birdc") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")


def kernel_ours(ns: str) -> Routes:
    """Our routes in table 500, both families: prefix -> gateways (dead ECMP members included)."""
    out: Routes = {}
    for fam, host in (("-4", "/32"), ("-6", "/128")):
        shown = subprocess.run(
            ["ip", "-n", ns, "-N", "-j", fam, "route", "show", "table", str(RED_TABLE)],
            capture_output=True,
            text=True,
        )
        if shown.returncode != 0:
            assert "table does not exist" in shown.stderr, shown.stderr  # never written to: empty
            continue
        for r in json.loads(shown.stdout or "[]"):
            if str(r.get("protocol")) != PROTO:
                continue
            dst = r["dst"] if "/" in r["dst"] else r["dst"] + host
            hops = r.get("nexthops", [r])
            out[dst] = frozenset(h["gateway"] for h in hops if "gateway" in h)
    return out


def rib_routes(bgpd: Bgpd) -> list[dict[str, Any]]:
    return [r for r in bgpd.cli_json("show", "routes", "--vrf", "red")["routes"] if r["paths"]]


def rib_for_kernel(bgpd: Bgpd) -> tuple[Routes, dict[str, str | None]]:
    """(the RIB's routes meant for the kernel: prefix -> next hops, prefix -> fib status)."""
    want: Routes = {}
    status: dict[str, str | None] = {}
    for r in rib_routes(bgpd):
        if r["paths"][0]["source"] == "local":
            assert r.get("fib") is None  # our own networks are announced, not installed
            continue
        want[r["prefix"]] = frozenset(p["next_hop"] for p in r["paths"])
        status[r["prefix"]] = r.get("fib")
    return want, status


def kernel_matches_rib(lab: SkeletonLab, unresolved_ok: bool = False) -> bool:
    assert lab.bgpd is not None
    want, status = rib_for_kernel(lab.bgpd)
    installed = {p: nh for p, nh in want.items() if status[p] == "installed"}
    others = {s for p, s in status.items() if p not in installed}
    if others - ({"unresolved"} if unresolved_ok else set()):
        return False
    return bool(want) and kernel_ours(lab.us) == installed


# What the two BIRDs announce once both sessions are up: prefix -> next hops in the RIB.
FULL_RIB: Routes = {
    "192.0.2.0/24": frozenset({"10.91.1.2", "10.91.2.2"}),
    "198.51.100.0/24": frozenset({"10.91.1.2"}),
    "203.0.113.0/24": frozenset({"10.91.2.2"}),
    "2001:db8:100::/48": frozenset({"fd91:1::2", "fd91:2::2"}),
}

# b2's IPv4 session disabled: its routes gone, 192.0.2.0/24 via b1 alone.
WITHOUT_B2_V4: Routes = {
    "192.0.2.0/24": frozenset({"10.91.1.2"}),
    "198.51.100.0/24": frozenset({"10.91.1.2"}),
    "2001:db8:100::/48": frozenset({"fd91:1::2", "fd91:2::2"}),
}


def rib_complete(bgpd: Bgpd) -> bool:
    return rib_for_kernel(bgpd)[0] == FULL_RIB


def all_established(bgpd: Bgpd) -> bool:
    states = {n["address"]: n["state"] for n in bgpd.cli_json("show", "neighbors")["neighbors"]}
    return all(states.get(a) == "Established" for a in NEIGHBORS)


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SkeletonLab]:
    _need_bird()
    lab = SkeletonLab(tmp_path).build()
    try:
        lab.start_birds()
        yield lab
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            lab.dump_logs()
        lab.close()


# Steering rules for VRF red (the egress-gateway case): written at start, removed at stop.
RULES = (
    'rule_priority = 1000\nrules = [{from = "10.10.0.0/16"}, {iif = "vb2a", priority = 900}, {fwmark = 10}]\n'
)


def start(lab: SkeletonLab, rules: bool = False) -> Bgpd:
    wd = lab.workdir / "us"
    wd.mkdir(parents=True, exist_ok=True)
    config = bgpd_config(wd)
    if rules:
        config = config.replace(f"table = {RED_TABLE}\n", f"table = {RED_TABLE}\n{RULES}", 1)
    bgpd = lab.bgpd = Bgpd(lab.us, wd, "bgpd", config=config).start()
    wait_for("all sessions Established", lambda: all_established(bgpd), 40)
    return bgpd


def our_rules(ns: str) -> list[tuple[str, int, str, str | None, str | None]]:
    """Rules with our protocol number: (family, priority, from, iif, fwmark), table 500 checked."""
    out = []
    for fam in ("-4", "-6"):
        text = subprocess.run(
            ["ip", "-n", ns, "-N", "-j", fam, "rule", "show"], capture_output=True, text=True, check=True
        ).stdout
        for r in json.loads(text or "[]"):
            if str(r.get("protocol")) != PROTO:
                continue
            assert str(r["table"]) == str(RED_TABLE)
            src = r["src"] if "srclen" not in r else f"{r['src']}/{r['srclen']}"
            out.append((fam, r["priority"], src, r.get("iif"), r.get("fwmark")))
    return sorted(out, key=str)


def test_kernel_follows_rib_through_hand_changes_links_withdrawals_and_stop(lab: SkeletonLab) -> None:
    bgpd = start(lab, rules=True)
    # Established is not enough: the second BIRD's UPDATE may still be on its way, and the
    # kernel matches a RIB that holds one path. Wait for both paths, then compare.
    wait_for(
        "both BIRDs' paths in the RIB and kernel == RIB after start",
        lambda: all_established(bgpd) and rib_complete(bgpd) and kernel_matches_rib(lab),
        20,
    )
    assert our_rules(lab.us) == sorted(
        [
            ("-4", 1000, "10.10.0.0/16", None, None),
            ("-4", 900, "all", "vb2a", None),
            ("-4", 1000, "all", None, "0xa"),
            ("-6", 900, "all", "vb2a", None),
            ("-6", 1000, "all", None, "0xa"),
        ],
        key=str,
    )
    want, _ = rib_for_kernel(bgpd)
    assert want["192.0.2.0/24"] == {"10.91.1.2", "10.91.2.2"}  # ECMP from both BIRDs
    assert want["2001:db8:100::/48"] == {"fd91:1::2", "fd91:2::2"}
    assert set(want) == {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8:100::/48"}

    lab.ip("route", "del", "198.51.100.0/24", "table", str(RED_TABLE))
    lab.ip("-6", "route", "del", "2001:db8:100::/48", "table", str(RED_TABLE))
    wait_for("kernel == RIB after ip route del", lambda: kernel_matches_rib(lab), 10)

    # ECMP -> one gateway and another protocol: our route comes back as it was.
    lab.ip("route", "change", "192.0.2.0/24", "via", "10.91.1.2", "table", str(RED_TABLE))
    wait_for("kernel == RIB after ip route change", lambda: kernel_matches_rib(lab), 10)
    assert kernel_ours(lab.us)["192.0.2.0/24"] == {"10.91.1.2", "10.91.2.2"}

    # Link to b1 down and up, quicker than the hold time: the kernel drops the routes via it.
    subprocess.run(
        ["ip", "netns", "exec", lab.us, "sysctl", "-qw", "net.ipv6.conf.vb1a.keep_addr_on_down=1"], check=True
    )
    lab.ip("link", "set", "vb1a", "down")
    wait_for(
        "198.51.100.0/24 (via b1 only) reported unresolved while the link is down",
        lambda: rib_for_kernel(bgpd)[1].get("198.51.100.0/24") == "unresolved",
        10,
    )
    assert "198.51.100.0/24" not in kernel_ours(lab.us)
    assert kernel_matches_rib(lab, unresolved_ok=True)
    assert "kernel table differed from what we installed" in bgpd.log_text()  # seen by the monitor
    lab.ip("link", "set", "vb1a", "up")
    wait_for("kernel == RIB after the link is back", lambda: kernel_matches_rib(lab), 10)
    # BIRD may reset its session over the flapped link; once it is back, the kernel still agrees.
    wait_for("all sessions Established after the flap", lambda: all_established(bgpd), 40)
    wait_for(
        "kernel == RIB with b1 back",
        lambda: rib_complete(bgpd) and kernel_matches_rib(lab) and len(kernel_ours(lab.us)) == 4,
        10,
    )

    # BIRD b2 withdraws its routes: 203.0.113.0/24 goes, 192.0.2.0/24 shrinks to b1 alone.
    lab.birds["b2"].birdc("disable", "st4")
    wait_for("203.0.113.0/24 withdrawn", lambda: "203.0.113.0/24" not in rib_for_kernel(bgpd)[0], 15)
    # (b1 may still be re-establishing after the flap: wait for the settled state, not a moment.)
    wait_for(
        "kernel == RIB after the withdrawal, 192.0.2.0/24 via b1 alone",
        lambda: kernel_matches_rib(lab) and rib_for_kernel(bgpd)[0].get("192.0.2.0/24") == {"10.91.1.2"},
        40,
    )
    assert kernel_ours(lab.us)["192.0.2.0/24"] == {"10.91.1.2"}

    assert bgpd.stop() == 0
    assert kernel_ours(lab.us) == {}  # flushed: persist is off
    assert our_rules(lab.us) == []  # and the steering rules removed


def test_persist_keeps_routes_after_stop_and_next_start_reconciles(lab: SkeletonLab, tmp_path: Path) -> None:
    wd = tmp_path / "us-persist"
    wd.mkdir()
    config = bgpd_config(wd).replace("protocol = 186", "protocol = 186\npersist = true")
    bgpd = lab.bgpd = Bgpd(lab.us, wd, "bgpd", config=config).start()
    wait_for("all sessions Established", lambda: all_established(bgpd), 40)
    wait_for(
        "both paths in the RIB and kernel == RIB", lambda: rib_complete(bgpd) and kernel_matches_rib(lab), 20
    )
    before = kernel_ours(lab.us)
    assert len(before) == 4
    assert bgpd.stop() == 0
    assert kernel_ours(lab.us) == before  # persist: left in place

    # Restarted while b2 announces less: the leftovers are reconciled against what is learnt.
    lab.birds["b2"].birdc("disable", "st4")
    bgpd.start()
    wait_for("all sessions Established", lambda: all_established(bgpd), 40)
    wait_for(
        "kernel == RIB after a restart over persisted routes",
        lambda: (
            rib_for_kernel(bgpd)[0] == WITHOUT_B2_V4
            and kernel_matches_rib(lab)
            and "203.0.113.0/24" not in kernel_ours(lab.us)
        ),
        20,
    )
    assert kernel_ours(lab.us)["192.0.2.0/24"] == {"10.91.1.2"}


def test_without_cap_net_admin_sessions_run_and_routes_show_failed(lab: SkeletonLab, tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop CAP_NET_ADMIN")
    wd = tmp_path / "us-nocap"
    wd.mkdir()
    bgpd = NoNetAdminBgpd(lab.us, wd, "bgpd", config=bgpd_config(wd))
    lab.bgpd = bgpd
    bgpd.start()
    wait_for("all sessions Established without CAP_NET_ADMIN", lambda: all_established(bgpd), 40)
    wait_for(
        "every learnt route reported failed",
        lambda: (s := rib_for_kernel(bgpd)[1]) and set(s.values()) == {"failed"},
        20,
    )
    failed = [r for r in rib_routes(bgpd) if r.get("fib") == "failed"]
    assert all("not permitted" in r["fib_error"] for r in failed), failed
    assert kernel_ours(lab.us) == {}
    assert "CAP_NET_ADMIN" in bgpd.log_text()
    assert bgpd.running and all_established(bgpd)


class NoNetAdminBgpd(Bgpd):
    """Our daemon as root but with CAP_NET_ADMIN dropped (bounding, inheritable and so effective)."""

    def _spawn(self, argv: list[str]) -> None:
        if argv and argv[0] == sys.executable:
            argv = ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", *argv]
        super()._spawn(argv)
