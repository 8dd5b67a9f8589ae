"""Graceful restart of a route reflector that sends us ADD-PATH paths, against real FRR and BIRD.

The topology of test_add_path.py (one LAN, AS 65070): BIRD c1 and c2 both originate
10.77.0.0/24, FRR rr reflects both paths to us with `addpath-tx-all-paths`, and our kernel holds
one ECMP route via c1 and c2. Here every speaker also does graceful restart (RFC 4724). FRR's
bgpd is killed (kill -9 by PID: TCP closes without a NOTIFICATION) and started again, while
`ip monitor route` in our namespace records every change the kernel makes to our routes:

(a) FRR comes back with the same paths: both stay in our RIB, stale (`show routes --json`
    `"stale": true` per path) while it is away, and the kernel's ECMP route never changes,
    also when FRR numbers the paths anew (it does: the ids follow the order its clients came
    back in).
(b) FRR comes back no longer reflecting c2's path: that next hop goes, in one replace of the
    route (never a deletion), only after FRR's End-of-RIB.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import test_graceful_restart
from test_add_path import C1, C2, ONLY_C1, PFX, RR, AddPathLab, bgpd_config, client_config, frr_config

from lab.frr import Frr
from lab.peers import Bgpd, Bird, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

FRR_RESTART_TIME = 30  # what FRR advertises: how long we keep its paths while it is away
# c2's path of PFX is no longer reflected (case b): FRR's import filter for c2 denies it.
NO_C2_PFX = f"""ip prefix-list not-pfx seq 5 deny {PFX}
ip prefix-list not-pfx seq 10 permit 0.0.0.0/0 le 32
route-map from-c2 permit 10
 match ip address prefix-list not-pfx
"""


def gr_frr_config(drop_c2: bool = False) -> str:
    conf = frr_config().replace(
        " no bgp ebgp-requires-policy\n",
        " no bgp ebgp-requires-policy\n bgp graceful-restart\n bgp graceful-restart preserve-fw-state\n"
        f" bgp graceful-restart restart-time {FRR_RESTART_TIME}\n",
    )
    if drop_c2:
        conf = conf.replace(
            f"  neighbor {C2} route-reflector-client\n",
            f"  neighbor {C2} route-reflector-client\n  neighbor {C2} route-map from-c2 in\n",
        )
        conf += NO_C2_PFX
    return conf


def gr_client_config(me: str, prefixes: list[str]) -> str:
    # A graceful-restart-capable client: the restarting FRR waits for its End-of-RIB before it
    # selects and sends its paths (RFC 4724 4.1, deferred selection).
    return client_config(me, prefixes).replace("  hold time 9;\n", "  hold time 9;\n  graceful restart on;\n")


class GrAddPathLab(AddPathLab):
    def start(self) -> None:
        self.frr = Frr(self.ns("rr"), self.workdir / "rr", gr_frr_config()).start()
        configs = {"c1": gr_client_config(C1, [PFX, ONLY_C1]), "c2": gr_client_config(C2, [PFX])}
        for name, conf in configs.items():
            self.birds[name] = Bird(self.ns(name), self.workdir / name, "bird", config=conf).start()
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        conf = bgpd_config(wd).split('\n[[neighbor]]\naddress = "10.70.0.20"')[0]  # no BIRD r here
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=conf).start()

    def gr(self) -> dict[str, Any]:
        return self.neighbor(RR)["graceful_restart"]  # type: ignore[no-any-return]


@dataclass
class Message:
    """One `ip monitor route` message about our routes (proto 186) in the main table."""

    at: float  # wall clock, from `ip -ts`
    deleted: bool
    prefix: str
    gateways: set[str]


class RouteMonitor(test_graceful_restart.RouteMonitor):
    """`ip -ts monitor route` in a namespace, for the whole restart."""

    def __init__(self, ns: str, workdir: Path) -> None:
        super().__init__(ns, workdir, "-N", "-ts")

    def messages(self, prefix: str) -> list[Message]:
        out: list[Message] = []
        for block in re.split(r"\n(?=\[)", self.path.read_text()):
            m = re.match(r"\[([^\]]+)\]\s*(Deleted )?(\S+) (.*)", block, re.S)
            if m is None or m.group(3) != prefix or "proto 186" not in m.group(4) or "table" in m.group(4):
                continue
            at = datetime.fromisoformat(m.group(1)).timestamp()
            out.append(Message(at, m.group(2) is not None, m.group(3), set(re.findall(r"via (\S+)", block))))
        return out


@pytest.fixture
def gap(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GrAddPathLab]:
    need_root()
    if shutil.which("vtysh") is None or shutil.which("bird") is None:
        pytest.skip("needs FRR and BIRD 2 (apt-get install frr bird2)")
    lab = GrAddPathLab(tmp_path)
    monitors: list[test_graceful_restart.RouteMonitor] = []
    try:
        with test_graceful_restart.monitoring(lab) as monitors:
            lab.build()
            lab.start()
            wait_for("session to FRR", lambda: lab.neighbor(RR)["state"] == "Established", 40)
            wait_for("ECMP route via c1 and c2", lambda: lab.kernel_gateways(PFX) == {C1, C2}, 40)
            wait_for("c1's own prefix", lambda: lab.kernel_gateways(ONLY_C1) == {C1}, 20)
            yield lab
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            if lab.bgpd is not None:
                print(f"--- bgpd log ---\n{lab.bgpd.log_text()[-20000:]}")
            if lab.frr is not None:
                print(f"--- FRR log ---\n{lab.frr.log_text()[-8000:]}")
            if monitors:
                print(f"--- ip monitor ---\n{monitors[0].path.read_text()[-5000:]}")
        lab.close()


def kill_frr(lab: GrAddPathLab) -> RouteMonitor:
    """Watch our kernel, then kill FRR's bgpd (zebra stays); returns the monitor."""
    caps = lab.neighbor(RR)["negotiated"]["capabilities"]
    assert caps["add_path"]["receive"] == ["ipv4"], caps
    assert lab.gr()["peer_forwarding"] == ["ipv4"] and lab.gr()["peer_restart_time"] == FRR_RESTART_TIME
    assert lab.neighbor(RR)["received"] == 3
    mon = RouteMonitor(lab.us, lab.workdir)
    lab.monitors.append(mon)  # type: ignore[attr-defined]
    assert lab.frr is not None and lab.frr.bgpd is not None and lab.frr.bgpd.proc is not None
    lab.frr.bgpd.signal(signal.SIGKILL)
    lab.frr.bgpd.proc.wait(5)
    wait_for("FRR down", lambda: lab.neighbor(RR)["state"] != "Established", 15)
    return mon


def assert_kept_stale(lab: GrAddPathLab) -> None:
    """While FRR is away: both paths in our RIB, stale, and both next hops in the kernel."""
    gr = lab.gr()
    assert gr["state"] == "restarting" and gr["stale"] == 3, gr  # PFX twice, ONLY_C1
    paths = lab.our_paths(PFX)
    assert len(paths) == 2 and {p["next_hop"] for p in paths} == {C1, C2}, paths
    assert all(p["stale"] is True and p["peer"] == RR for p in paths), paths
    assert len({p["path_id"] for p in paths}) == 2
    assert all(p["best"] or p["ecmp"] for p in paths), paths
    assert lab.kernel_gateways(PFX) == {C1, C2}
    assert lab.neighbor(RR)["received"] == 0  # the session's counters: nothing received yet


def eor_swept(lab: GrAddPathLab) -> dict[str, Any]:
    """Our log line for FRR's End-of-RIB sweep (JSON), once it is there."""
    assert lab.bgpd is not None
    for line in lab.bgpd.log_text().splitlines():
        if "End-of-RIB, stale routes swept" in line and RR in line:
            return json.loads(line)  # type: ignore[no-any-return]
    return {}


def path_ids(lab: GrAddPathLab) -> dict[str, int]:
    return {p["next_hop"]: p["path_id"] for p in lab.our_paths(PFX)}


def test_rr_restart_keeps_every_path_and_the_kernel_never_changes(gap: GrAddPathLab) -> None:
    before = path_ids(gap)
    mon = kill_frr(gap)
    assert_kept_stale(gap)
    time.sleep(2)  # a while away: still all there
    assert_kept_stale(gap)

    assert gap.frr is not None
    gap.frr.respawn_bgpd()
    wait_for("FRR back", lambda: gap.neighbor(RR)["state"] == "Established", 40)
    wait_for("FRR's End-of-RIB", lambda: gap.gr()["state"] == "none" or None, 40)
    # Every path came back, maybe under other path ids (FRR numbers them in the order its
    # clients came back): a path displaced from its id stays stale until the End-of-RIB.
    assert "swept" in eor_swept(gap), gap.bgpd.log_text() if gap.bgpd else ""
    paths = gap.our_paths(PFX)
    assert {p["next_hop"] for p in paths} == {C1, C2} and not any(p["stale"] for p in paths), paths
    assert gap.gr()["stale"] == 0 and gap.neighbor(RR)["received"] == 3
    print(f"path ids before {before}, after {path_ids(gap)}, {eor_swept(gap)}")
    assert gap.kernel_gateways(PFX) == {C1, C2} and gap.kernel_gateways(ONLY_C1) == {C1}
    time.sleep(0.5)
    # The kernel never lost a next hop: not one message about the ECMP route (nor c1's route).
    assert [m for m in mon.messages(PFX) if m.deleted or m.gateways != {C1, C2}] == []
    assert [m for m in mon.messages(ONLY_C1) if m.deleted or m.gateways != {C1}] == []


def test_rr_back_without_a_path_drops_it_only_at_its_end_of_rib(gap: GrAddPathLab) -> None:
    mon = kill_frr(gap)
    assert_kept_stale(gap)

    assert gap.frr is not None
    gap.frr.respawn_bgpd(gr_frr_config(drop_c2=True))
    wait_for("FRR back", lambda: gap.neighbor(RR)["state"] == "Established", 40)
    wait_for("c2's path gone from the kernel", lambda: gap.kernel_gateways(PFX) == {C1} or None, 40)
    wait_for("FRR's End-of-RIB", lambda: gap.gr()["state"] == "none" or None, 20)
    swept = eor_swept(gap)
    assert swept.get("swept", 0) >= 1, swept  # c2's path of PFX (and any displaced), at End-of-RIB
    paths = gap.our_paths(PFX)
    assert [(p["next_hop"], p["stale"]) for p in paths] == [(C1, False)], paths
    assert gap.kernel_gateways(ONLY_C1) == {C1} and gap.neighbor(RR)["received"] == 2
    time.sleep(0.5)
    # The route was replaced once, with c1 alone, after the End-of-RIB; never deleted, and
    # before that it kept both next hops.
    msgs = mon.messages(PFX)
    assert not any(m.deleted for m in msgs), msgs
    assert [m.gateways for m in msgs][-1:] == [{C1}], msgs
    assert all(m.gateways == {C1, C2} for m in msgs[:-1]), msgs
    eor_at = datetime.fromisoformat(swept["timestamp"]).timestamp()
    assert msgs[-1].at >= eor_at - 0.01, (msgs[-1].at, eor_at)
    assert [m for m in mon.messages(ONLY_C1) if m.deleted or m.gateways != {C1}] == []
