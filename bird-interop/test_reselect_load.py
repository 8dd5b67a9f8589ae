"""A kernel change under a large table: the next-hop re-evaluation never holds the daemon.

    inj (one BGP speaker, 10.70.1.1) ---- us (bgpd, 10.70.0.1/16)

The injector (``lab/injector.py``) sends ``PREFIXES`` /32s (BGPD_RESELECT_PREFIXES, default
100,000) with its own address as the next hop, which our kernel reaches through the
connected /16 (IGP cost 0). Then a static /32 route to that next hop comes (cost 5) and goes
(cost 0), twice: each time every prefix resolves differently and is decided again, a slice
per event-loop turn. Meanwhile a thread asks the control socket `show neighbors` and `show
routes --count` over and over: every answer must come within a second; the session must stay
up (keepalives went out); the daemon must log each pass done in many slices; and the kernel
must see no change at all for those prefixes (a cost change of a prefix's only path changes
no selection: no churn), watched with `ip monitor route`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpd.control import ControlClientError, request
from lab.injector import peer_address
from lab.netns import Lab, run
from lab.peers import Bgpd, Process, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

PREFIXES = int(os.environ.get("BGPD_RESELECT_PREFIXES", "100000"))
LOCAL_ASN = 65010
US = "10.70.0.1"
NH = peer_address(0)
CLI_BOUND = 1.0


def bgpd_config(workdir: Path) -> str:
    return f"""
[router]
asn = {LOCAL_ASN}
router_id = "10.70.0.1"
listen = ["{US}"]

[control]
socket = "{workdir}/bgpd.sock"

[[neighbor]]
address = "{NH}"
asn = 65100
import = "all"
export = "none"
passive = true
hold_time = 9
address_families = ["ipv4"]
"""


class Probe(threading.Thread):
    def __init__(self, sock: str) -> None:
        super().__init__(name="cli-probe", daemon=True)
        self.sock = sock
        self.times: list[float] = []
        self.failures: list[str] = []
        self.states: set[str] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for command, args in (
                (["show", "neighbors"], {"address": None}),
                (["show", "routes"], {"vrf": None, "all": False, "prefix": None, "count": True}),
            ):
                t = time.monotonic()
                try:
                    resp = request(self.sock, command, args, timeout=10.0)
                except ControlClientError as exc:
                    self.failures.append(str(exc))
                    continue
                self.times.append(time.monotonic() - t)
                if command[1] == "neighbors" and resp.get("ok"):
                    self.states |= {n["state"] for n in resp["data"]["neighbors"]}
            self.halt.wait(0.02)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Lab, str, Bgpd]]:
    need_root()
    lab = Lab()
    procs: list[Process] = []
    try:
        us, inj = lab.ns("us"), lab.ns("inj")
        lab.link(us, inj, [f"{US}/16"], [f"{NH}/16"], name="vr")
        wd = tmp_path / "us"
        wd.mkdir()
        bgpd = Bgpd(us, wd, "bgpd", config=bgpd_config(wd)).start()
        procs.append(bgpd)
        injector = Process(inj, tmp_path / "inj", "injector")
        procs.append(injector)
        injector._spawn(
            [
                sys.executable,
                "-m",
                "lab.injector",
                "--to",
                US,
                "--peers",
                "1",
                "--prefixes",
                str(PREFIXES),
                "--hold",
                "9",
            ]
        )
        yield lab, us, bgpd
    finally:
        for p in procs:
            p.stop()
        lab.close()


def _routes(bgpd: Bgpd) -> int:
    counts = bgpd.cli_json("show", "routes", "--count")["counts"]
    return sum(c["routes"] for c in counts if c["afi"] == "ipv4")


def test_next_hop_cost_changes_under_a_large_table_keep_the_daemon_responsive(
    setup: tuple[Lab, str, Bgpd], tmp_path: Path
) -> None:
    _lab, us, bgpd = setup
    wait_for("the table in the RIB", lambda: _routes(bgpd) >= PREFIXES, 60 + PREFIXES / 5000)
    wait_for("the table in the kernel", lambda: _kernel_count(us) >= PREFIXES, 60)

    monitor = Process(us, tmp_path / "mon", "monitor")
    monitor._spawn(["ip", "-o", "monitor", "route"])
    probe = Probe(str(bgpd.socket))
    probe.start()
    try:
        time.sleep(0.5)
        for n in range(2):
            run("ip", "route", "add", f"{NH}/32", "dev", "vra", "metric", "5", "proto", "static", ns=us)
            wait_for("a pass done", lambda n=n: _passes(bgpd) >= 2 * n + 1, 60)
            run("ip", "route", "del", f"{NH}/32", "dev", "vra", "metric", "5", ns=us)
            wait_for("another pass done", lambda n=n: _passes(bgpd) >= 2 * n + 2, 60)
        time.sleep(0.5)
    finally:
        probe.halt.set()
        probe.join(15)
        monitor.stop()

    passes = [e for e in _log(bgpd) if e.get("event") == "next hops re-evaluated"]
    print(f"\nre-evaluation passes ({PREFIXES} prefixes): {passes}")
    print(
        f"control answers during them: n={len(probe.times)} worst={max(probe.times):.3f}s "
        f"median={statistics.median(probe.times):.4f}s"
    )
    assert len(passes) == 4
    for p in passes:
        assert p["prefixes"] >= PREFIXES
        assert p["slices"] >= PREFIXES // 1024  # in slices, not in one turn
    assert not probe.failures, probe.failures[:5]
    assert len(probe.times) >= 10
    assert max(probe.times) < CLI_BOUND
    assert probe.states == {"Established"}  # the session never went down: keepalives went out
    churn = [
        line for line in monitor.log_text().splitlines() if " 11." in f" {line}" or line.startswith("11.")
    ]
    assert churn == []  # no kernel write for the table: nothing changed for it
    assert f"Deleted {NH} dev vra proto static" in monitor.log_text()  # (the monitor saw the changes)
    assert _kernel_count(us) >= PREFIXES


def _kernel_count(ns: str) -> int:
    out = run("ip", "-n", ns, "-4", "route", "show", "table", "main", "proto", "186", check=False).stdout
    return out.count("\n")


def _log(bgpd: Bgpd) -> list[dict[str, Any]]:
    out = []
    for line in bgpd.log_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _passes(bgpd: Bgpd) -> int:
    return sum(1 for e in _log(bgpd) if e.get("event") == "next hops re-evaluated")
