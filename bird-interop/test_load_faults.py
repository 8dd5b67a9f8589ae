"""Load and faults: many peers at once, each with its own table, and faulty peers that hurt
only themselves, while the control socket keeps answering within a second.

    inj (50 BGP speakers, 10.70.1.1 .. 10.70.1.50) ---- us (bgpd, 10.70.0.1)

The injector (``lab/injector.py``, one process, a thread per peer) connects every peer to us,
waits until all are up, then sends every table at once (distinct /32s per peer) and keeps the
sessions alive; a session that ends is reconnected and its table sent again. Once every
route is in the kernel, three peers misbehave: one resets its connection in the middle of an
UPDATE, one sends garbage, one goes silent for longer than the hold time. Only those three
sessions may go down and only their routes may leave the kernel.

From the daemon's start to the end of the faults a thread asks the control socket, over and
over, `show neighbors`, `show routes --count` and `show routes PREFIX` (what ``bgpd-cli``
sends) and times each answer: the slowest must be under ``CLI_BOUND`` (1 s, issue #5);
another runs a whole ``bgpd-cli`` process once a second (see ``check_cli``).

Size: ``PEERS`` x ``PREFIXES`` (BGPD_LOAD_PEERS / BGPD_LOAD_PREFIXES), by default the issue's
50 x 10,000: 500k kernel routes, all in within 8-22 s on this 2-core machine (quiet or busy),
the module 21-43 s. Figures (time to all Established and to all routes in the kernel, the
control answers' worst and median per command and phase, the daemon's peak RSS) are printed
(run with ``-s``) and written to ``load-figures.json`` in the test's work directory.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bgpd.control import ControlClientError, request
from lab.injector import peer_address
from lab.netns import Lab, run
from lab.peers import Bgpd, Process, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

PEERS = int(os.environ.get("BGPD_LOAD_PEERS", "50"))
PREFIXES = int(os.environ.get("BGPD_LOAD_PREFIXES", "10000"))
LOCAL_ASN = 65010
US = "10.70.0.1"
HOLD = 9
STALL_HOLD = 6  # the stalling peer offers 6 s: it is declared dead 6 s after it goes quiet
FAULTS = {1: "reset", 2: "garbage", 3: "stall"}  # peer index -> fault
CLI_BOUND = 1.0  # issue #5: the CLI answers within a second throughout
CLI_PROCESS = "bgpd-cli --json show neighbors (process)"
LOAD_TIMEOUT = 60 + PEERS * PREFIXES / 5000  # generous: 50 x 10k loads in 10-15 s here

# What the probe asks, as bgpd-cli sends it (bgpd/control.py lists the shapes).
PROBES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "show neighbors": (["show", "neighbors"], {"address": None}),
    "show routes --count": (["show", "routes"], {"vrf": None, "all": False, "prefix": None, "count": True}),
    "show routes PREFIX": (
        ["show", "routes"],
        {"vrf": None, "all": False, "prefix": "11.0.0.7/32", "count": False},
    ),
}


def bgpd_config(workdir: Path) -> str:
    out = [
        f"""
[router]
asn = {LOCAL_ASN}
router_id = "10.70.0.1"
listen = ["{US}"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "info"

[template.inj]
import = "all"
export = "none"
passive = true
hold_time = {HOLD}
address_families = ["ipv4"]
"""
    ]
    for i in range(PEERS):
        out.append(f'\n[[neighbor]]\naddress = "{peer_address(i)}"\nasn = {65100 + i}\ntemplate = "inj"\n')
    return "".join(out)


@dataclass
class CliProbe:
    """Times the control socket's answers from a thread, for as long as the module runs, and
    (from another thread, once a second) a whole ``bgpd-cli`` process, Python start-up included."""

    socket: str
    cli: Callable[[], object]
    phase: str = "load"
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> CliProbe:
        for target in (self._run, self._run_cli):
            self._threads.append(threading.Thread(target=target, name="cli-probe", daemon=True))
            self._threads[-1].start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(35)

    def _record(self, name: str, took: float) -> None:
        self.times.setdefault(self.phase, {}).setdefault(name, []).append(took)

    def _run_cli(self) -> None:
        while not self._stop.wait(1.0):
            t = time.monotonic()
            try:
                self.cli()
            except (RuntimeError, subprocess.SubprocessError) as exc:
                self.failures.append(f"{self.phase}: bgpd-cli: {exc}")
                continue
            self._record(CLI_PROCESS, time.monotonic() - t)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, (command, args) in PROBES.items():
                t = time.monotonic()
                try:
                    resp = request(self.socket, command, args, timeout=10.0)
                except ControlClientError as exc:
                    self.failures.append(f"{self.phase}: {name}: {exc}")
                    continue
                took = time.monotonic() - t
                if not resp.get("ok"):
                    self.failures.append(f"{self.phase}: {name}: {resp.get('error')}")
                self._record(name, took)
            self._stop.wait(0.05)

    def summary(self, phase: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, ts in dict(self.times.get(phase, {})).items():
            out[name] = {
                "n": len(ts),
                "worst_s": round(max(ts), 3),
                "median_s": round(statistics.median(ts), 4),
            }
        return out


@dataclass
class LoadLab:
    workdir: Path
    lab: Lab = field(default_factory=Lab)
    us: str = ""
    inj_ns: str = ""
    bgpd: Bgpd | None = None
    injector: Process | None = None
    probe: CliProbe | None = None
    started: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    def build(self) -> LoadLab:
        self.us = self.lab.ns("us")
        self.inj_ns = self.lab.ns("inj")
        self.lab.link(
            self.us, self.inj_ns, [f"{US}/16"], [f"{peer_address(i)}/16" for i in range(PEERS)], name="vl"
        )
        return self

    @property
    def go(self) -> Path:
        return self.workdir / "go"

    def start(self) -> None:
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_config(wd)).start()
        bgpd = self.bgpd
        self.probe = CliProbe(str(bgpd.socket), lambda: bgpd.cli_json("show", "neighbors")).start()
        self.injector = Process(self.inj_ns, self.workdir / "inj", "injector")
        faults = ",".join(f"{i}={f}" for i, f in FAULTS.items())
        size = ["--peers", str(PEERS), "--prefixes", str(PREFIXES)]
        timers = ["--hold", str(HOLD), "--stall-hold", str(STALL_HOLD)]
        self.injector._spawn(
            [
                sys.executable,
                "-m",
                "lab.injector",
                "--to",
                US,
                *size,
                *timers,
                "--go",
                str(self.go),
                "--faults",
                faults,
            ]
        )

    def close(self) -> None:
        if self.probe is not None:
            self.probe.stop()
        for p in (self.injector, self.bgpd):
            if p is not None:
                p.stop()
        self.lab.close()

    def kernel_count(self) -> int:
        out = run(
            "ip", "-n", self.us, "-4", "route", "show", "table", "main", "proto", "186", check=False
        ).stdout
        return out.count("\n")

    def neighbors(self) -> list[dict[str, Any]]:
        assert self.bgpd is not None
        resp = request(str(self.bgpd.socket), ["show", "neighbors"], {}, timeout=10.0)
        assert resp.get("ok"), resp
        return resp["data"]["neighbors"]

    def peak_rss_mib(self) -> float:
        """The daemon's peak resident set (VmHWM)."""
        assert self.bgpd is not None and self.bgpd.proc is not None
        for line in Path(f"/proc/{self.bgpd.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def check_cli(self, phase: str) -> None:
        """Every control answer of ``phase`` came within the bound, and there were some.

        A whole bgpd-cli process is held to the bound by its median: most of its time is the
        Python start-up (~0.1 s idle, 0.25-0.5 s while this 2-core machine is loaded), which
        the daemon does not control; the socket answers are what it does, each one bounded.
        """
        assert self.probe is not None
        assert not self.probe.failures, self.probe.failures[:5]
        summary = self.probe.summary(phase)
        self.figures[f"cli_{phase}"] = summary
        by_name = dict(self.probe.times.get(phase, {}))  # a copy: the probe runs on meanwhile
        process = list(by_name.pop(CLI_PROCESS, []))
        times = [t for ts in by_name.values() for t in list(ts)]
        assert len(times) >= 3 and process, f"too few control answers timed during {phase}: {summary}"
        assert max(times) < CLI_BOUND, f"slowest control answer during {phase}: {max(times):.3f}s: {summary}"
        assert statistics.median(process) < CLI_BOUND, f"bgpd-cli during {phase}: {summary}"

    def report(self) -> None:
        text = json.dumps(self.figures, indent=1)
        (self.workdir / "load-figures.json").write_text(text)
        sys.stderr.write(f"\nload figures ({PEERS} peers x {PREFIXES} prefixes): {text}\n")


@pytest.fixture(scope="module")
def load(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[LoadLab]:
    need_root()
    ll = LoadLab(tmp_path_factory.mktemp("load")).build()
    try:
        ll.start()
        yield ll
    finally:
        if ll.figures:
            ll.report()
        if any(getattr(i, "rep_call", None) and i.rep_call.failed for i in request.session.items):
            for p in (ll.bgpd, ll.injector):
                if p is not None:
                    sys.stderr.write(f"--- {p.name} log ---\n{p.log_text()[-10000:]}\n")
        ll.close()


def wait_loaded(load: LoadLab) -> list[dict[str, Any]]:
    """Poll until every peer is up and every route is in the kernel; note when each happened."""
    total = PEERS * PREFIXES
    while True:
        neighbors = load.neighbors()
        up = sum(n["state"] == "Established" for n in neighbors)
        received = sum(n["received"] for n in neighbors)
        elapsed = time.monotonic() - load.started
        if up == PEERS:
            load.figures.setdefault("all_established_s", round(elapsed, 1))
        # Dumping the kernel table is costly: only once the RIB has everything.
        in_kernel = load.kernel_count() if up == PEERS and received == total else 0
        if in_kernel >= total:
            assert in_kernel == total
            load.figures.setdefault("all_in_kernel_s", round(time.monotonic() - load.started, 1))
            return neighbors
        assert elapsed < LOAD_TIMEOUT, (
            f"{up}/{PEERS} up, {received}/{total} received, {in_kernel} in the kernel"
        )
        time.sleep(0.3)


def test_loads_every_table_while_the_cli_answers_within_a_second(load: LoadLab) -> None:
    assert load.probe is not None
    load.probe.phase = "load"
    neighbors = wait_loaded(load)
    load.figures["peak_rss_mib"] = round(load.peak_rss_mib(), 1)
    assert all(n["state"] == "Established" and n["received"] == PREFIXES for n in neighbors), [
        n for n in neighbors if n["received"] != PREFIXES
    ]
    # No session was lost on the way (a busy loop must not cost a hold timer).
    assert all(n["flaps"] == 0 for n in neighbors), [n for n in neighbors if n["flaps"]]
    load.check_cli("load")


def test_faults_stay_local(load: LoadLab) -> None:
    assert load.probe is not None
    wait_loaded(load)
    load.probe.phase = "faults"
    # Faults: reset mid-UPDATE, garbage, silence beyond the hold time.
    load.go.write_text("go")
    faulty = {peer_address(i) for i in FAULTS}

    def faulty_down() -> bool:
        return all(n["state"] != "Established" for n in load.neighbors() if n["address"] in faulty)

    wait_for("the three faulty sessions down", faulty_down, STALL_HOLD + 15)
    wait_for(
        "their routes gone from the kernel",
        lambda: load.kernel_count() == (PEERS - len(FAULTS)) * PREFIXES or None,
        30,
    )
    by_addr = {n["address"]: n for n in load.neighbors()}
    for i in range(PEERS):
        n = by_addr[peer_address(i)]
        if i in FAULTS:
            assert n["received"] == 0, n
            assert n["last_error"], n
        else:
            assert n["state"] == "Established" and n["received"] == PREFIXES and n["flaps"] == 0, n
    assert "Hold Timer Expired" in (by_addr[peer_address(3)]["last_notification"] or ""), by_addr[
        peer_address(3)
    ]
    assert "Header" in (by_addr[peer_address(2)]["last_notification"] or ""), by_addr[peer_address(2)]
    load.check_cli("faults")
