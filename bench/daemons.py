"""One adapter per daemon under test: config, start/stop by PID, a RIB probe, its kernel table.

Every adapter runs its daemon inside the namespace ``ns`` (the device under test) with its
files in ``workdir``, peering with the feed processes (bench/feed.py) that listen on the
injector side of each veth link; the daemon connects out. Routes are never exported back
to the feeds. ``rib_paths()`` answers how many paths (routes from all peers) the daemon's
RIB holds, or None when the probe failed; ``kernel`` names the table and rtm_protocol its
routes land in (None: RIB only).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOCAL_ASN = 65000
ROUTER_ID = "10.0.0.1"
HOLD = 180


@dataclass(slots=True)
class Peer:
    address: str  # the feed's address
    local: str  # the daemon's address on that link
    asn: int


@dataclass
class Adapter:
    ns: str
    workdir: Path
    name: str = ""
    kernel: tuple[int, int] | None = None  # (table, rtm_protocol)
    min_poll = 0.0  # seconds between RIB probes at least (a probe that costs the daemon much)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, peers: list[Peer], afi: str) -> None:
        raise NotImplementedError

    def rib_paths(self, afi: str) -> int | None:
        raise NotImplementedError

    @staticmethod
    def version() -> str:
        return "?"

    def spawn(self, argv: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / log, "ab") as out:
            p = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                start_new_session=True,
            )
        self.procs.append(p)
        return p

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        """SIGTERM each process we started (by PID), SIGKILL after 5 s."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def log_tail(self, n: int = 20) -> str:
        lines: list[str] = []
        for f in sorted(self.workdir.glob("*.log")):
            lines += [f"{f.name}: {x}" for x in f.read_text(errors="replace").splitlines()[-n:]]
        return "\n".join(lines)


def _run(*argv: str, timeout: float = 20) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return ""


# --- our daemon ------------------------------------------------------------------------------


class Bgpd(Adapter):
    TABLE = 500

    def __init__(self, ns: str, workdir: Path) -> None:
        super().__init__(ns, workdir, "bgpd", (self.TABLE, 186))

    @staticmethod
    def version() -> str:
        rev = _run("git", "-C", str(ROOT), "log", "-1", "--format=%h").strip()
        return f"bgpd {rev} (Python {sys.version.split()[0]})"

    def start(self, peers: list[Peer], afi: str) -> None:
        sock = self.workdir / "bgpd.sock"
        neigh = "".join(
            f"""
[[neighbor]]
address = "{p.address}"
asn = {p.asn}
vrf = "red"
import = "all"
export = "none"
hold_time = {HOLD}
connect_retry = 1
address_families = ["{afi}"]
"""
            for p in peers
        )
        conf = f"""
[router]
asn = {LOCAL_ASN}
router_id = "{ROUTER_ID}"
listen = []

[control]
socket = "{sock}"

[log]
level = "warning"

[kernel]
protocol = 186
ecmp = 8

[vrf.red]
table = {self.TABLE}
{neigh}"""
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "bgpd.toml"
        path.write_text(conf)
        self.spawn([sys.executable, "-m", "bgpd.main", "--config", str(path)], "bgpd.log")
        deadline = time.monotonic() + 20
        while not sock.exists():
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError(f"bgpd did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def rib_paths(self, afi: str) -> int | None:
        from bgpd.control import request  # what `bgpd-cli --json show routes --count` sends

        try:
            resp = request(
                str(self.workdir / "bgpd.sock"),
                ["show", "routes"],
                {"vrf": None, "all": False, "prefix": None, "count": True},
                timeout=30,
            )
        except Exception:
            return None
        if not resp.get("ok"):
            return None
        return sum(int(c["paths"]) for c in resp["data"]["counts"] if c["vrf"] == "red" and c["afi"] == afi)


# --- BIRD 2 ----------------------------------------------------------------------------------


class Bird(Adapter):
    TABLE = 500

    def __init__(self, ns: str, workdir: Path) -> None:
        super().__init__(ns, workdir, "bird", (self.TABLE, 12))  # RTPROT_BIRD

    @staticmethod
    def version() -> str:
        out = subprocess.run(["bird", "--version"], capture_output=True, text=True)
        return (out.stdout + out.stderr).strip().replace("BIRD version ", "BIRD ")

    def start(self, peers: list[Peer], afi: str) -> None:
        bgp = "".join(
            f"""
protocol bgp feed{i} {{
  local {p.local} as {LOCAL_ASN};
  neighbor {p.address} as {p.asn};
  hold time {HOLD};
  connect delay time 1;
  connect retry time 1;
  {afi} {{ import all; export none; }};
}}
"""
            for i, p in enumerate(peers, 1)
        )
        conf = f"""
router id {ROUTER_ID};
log "{self.workdir}/bird.log" {{ warning, error, fatal }};
protocol device {{ scan time 10; }}
protocol kernel {{
  {afi} {{ import none; export all; }};
  kernel table {self.TABLE};
  merge paths on;
  learn off;
  scan time 600;
}}
{bgp}"""
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "bird.conf"
        path.write_text(conf)
        check = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"BIRD rejected {path}: {check.stderr.strip()}")
        sock = self.workdir / "bird.ctl"
        self.spawn(
            ["bird", "-f", "-c", str(path), "-s", str(sock), "-P", str(self.workdir / "bird.pid")],
            "bird.out.log",
        )
        deadline = time.monotonic() + 15
        while not sock.exists():
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError(f"BIRD did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def rib_paths(self, afi: str) -> int | None:
        # "N of M routes for K networks in table master4" (not a snapshot under load: PEERS.md)
        out = _run("birdc", "-s", str(self.workdir / "bird.ctl"), "show", "route", "count", timeout=30)
        m = re.search(r"(\d+) of \d+ routes for \d+ networks in table master" + afi[-1], out)
        return int(m.group(1)) if m else None


# --- FRR 8 (zebra + bgpd) ---------------------------------------------------------------------


class Frr(Adapter):
    """Without VRF devices zebra writes only the main table, so FRR's kernel figures are for
    table main (254) of the daemon's namespace, where its routes carry proto bgp (186)."""

    def __init__(self, ns: str, workdir: Path) -> None:
        super().__init__(ns, workdir, "frr", (254, 186))

    @staticmethod
    def version() -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "frr"], capture_output=True, text=True)
        return f"FRR {out.stdout.strip()}"

    def start(self, peers: list[Peer], afi: str) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        act = "".join(
            f"  neighbor {p.address} activate\n  neighbor {p.address} route-map ALL in\n"
            f"  neighbor {p.address} route-map NONE out\n"
            for p in peers
        )
        neigh = "".join(
            f" neighbor {p.address} remote-as {p.asn}\n neighbor {p.address} timers {HOLD // 3} {HOLD}\n"
            f" neighbor {p.address} timers connect 1\n"
            for p in peers
        )
        (d / "zebra.conf").write_text("hostname zebra\n")
        (d / "bgpd.conf").write_text(
            f"""hostname bgpd
log file {d}/bgpd.flog warnings
{os.environ.get("BENCH_FRR_DEBUG", "")}
route-map ALL permit 10
exit
route-map NONE deny 10
exit
router bgp {LOCAL_ASN}
 bgp router-id {ROUTER_ID}
 no bgp default ipv4-unicast
 no bgp ebgp-requires-policy
{neigh} address-family {afi} unicast
{act}  maximum-paths 8
 exit-address-family
exit
"""
        )
        shutil.chown(d, "frr", "frr")
        for f in d.iterdir():
            shutil.chown(f, "frr", "frr")
        common = ["-z", str(d / "zserv.api"), "--vty_socket", str(d), "-u", "frr", "-g", "frr"]
        self.spawn(
            [
                "/usr/lib/frr/zebra",
                "-f",
                str(d / "zebra.conf"),
                "-i",
                str(d / "zebra.pid"),
                "-s",
                str(64 << 20),
                *common,
            ],
            "zebra.log",
        )
        deadline = time.monotonic() + 15
        while not (d / "zserv.api").exists():
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError(f"zebra did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        self.spawn(
            [
                "/usr/lib/frr/bgpd",
                "-f",
                str(d / "bgpd.conf"),
                "-i",
                str(d / "bgpd.pid"),
                "-p",
                "179",
                *common,
            ],
            "bgpd.log",
        )
        time.sleep(0.5)
        if not self.alive():
            raise RuntimeError(f"FRR bgpd did not start:\n{self.log_tail()}")

    def rib_paths(self, afi: str) -> int | None:
        import json

        out = _run(
            "vtysh",
            "--vty_socket",
            str(self.workdir),
            "-c",
            f"show bgp {afi} unicast summary json",
            timeout=30,
        )
        try:
            peers = json.loads(out).get("peers", {})
        except ValueError:
            return None
        return sum(int(p.get("pfxRcd", 0)) for p in peers.values())


# --- GoBGP (RIB only) --------------------------------------------------------------------------


class Gobgp(Adapter):
    # `gobgp global rib summary` every 0.2 s cost gobgpd ~29 CPU-s of a 1M load (73 vs 44 CPU-s).
    min_poll = 1.0

    def __init__(self, ns: str, workdir: Path) -> None:
        super().__init__(ns, workdir, "gobgp", None)

    @staticmethod
    def version() -> str:
        out = subprocess.run(["gobgpd", "--version"], capture_output=True, text=True)
        return "GoBGP " + (out.stdout + out.stderr).strip().split()[-1]

    def start(self, peers: list[Peer], afi: str) -> None:
        neigh = "".join(
            f"""
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{p.address}"
    peer-as = {p.asn}
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = {HOLD}
    keepalive-interval = {HOLD // 3}
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "{afi}-unicast"
  [neighbors.apply-policy.config]
    default-import-policy = "accept-route"
    default-export-policy = "reject-route"
"""
            for p in peers
        )
        conf = f"""[global.config]
  as = {LOCAL_ASN}
  router-id = "{ROUTER_ID}"
  port = -1
{neigh}"""
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "gobgpd.toml"
        path.write_text(conf)
        self.spawn(["gobgpd", "-f", str(path), "-t", "toml", "-l", "warn", "--api-hosts", "127.0.0.1:50051",
                    "--pprof-disable"], "gobgpd.log")  # fmt: skip
        time.sleep(0.5)
        if not self.alive():
            raise RuntimeError(f"gobgpd did not start:\n{self.log_tail()}")

    def rib_paths(self, afi: str) -> int | None:
        out = _run("ip", "netns", "exec", self.ns, "gobgp", "-u", "127.0.0.1", "global", "rib", "summary",
                   "-a", afi, timeout=30)  # fmt: skip
        m = re.search(r"Path:\s*(\d+)", out)
        return int(m.group(1)) if m else None


# --- ExaBGP (receive only) -----------------------------------------------------------------------


class Exabgp(Adapter):
    """ExaBGP parses every UPDATE and hands it to an API process as JSON (bench/exabgp_count.py),
    which counts prefixes; both processes are measured."""

    def __init__(self, ns: str, workdir: Path) -> None:
        super().__init__(ns, workdir, "exabgp", None)

    @staticmethod
    def version() -> str:
        out = subprocess.run(["exabgp", "--version"], capture_output=True, text=True)
        m = re.search(r"ExaBGP : (\S+)", out.stdout + out.stderr)
        return f"ExaBGP {m.group(1) if m else '?'}"

    def start(self, peers: list[Peer], afi: str) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        counter = f"{sys.executable} {ROOT / 'bench' / 'exabgp_count.py'} {d / 'count'}"
        neigh = "".join(
            f"""
neighbor {p.address} {{
  router-id {ROUTER_ID};
  local-address {p.local};
  local-as {LOCAL_ASN};
  peer-as {p.asn};
  hold-time {HOLD};
  family {{ {afi} unicast; }}
  api {{ processes [ counter ]; receive {{ parsed; update; }} }}
}}
"""
            for p in peers
        )
        (d / "exabgp.conf").write_text(f"process counter {{\n  run {counter};\n  encoder json;\n}}\n{neigh}")
        env = {
            "exabgp.daemon.user": "root",
            "exabgp.daemon.drop": "false",
            "exabgp.tcp.bind": "",
            "exabgp.log.level": "WARNING",
            "exabgp.api.ack": "false",
            "exabgp.cache.attributes": "true",
        }
        self.spawn(["exabgp", str(d / "exabgp.conf")], "exabgp.log",
                   env={k.replace(".", "_"): v for k, v in env.items()})  # fmt: skip
        time.sleep(0.5)
        if not self.alive():
            raise RuntimeError(f"exabgp did not start:\n{self.log_tail()}")

    def rib_paths(self, afi: str) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.workdir / "count").read_text().split()[0])
        return None


ADAPTERS: dict[str, type[Adapter]] = {
    "bgpd": Bgpd,
    "bird": Bird,
    "frr": Frr,
    "gobgp": Gobgp,
    "exabgp": Exabgp,
}


# --- process figures ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def ns_pids(ns: str, exclude: set[int]) -> list[int]:
    """Every process in the namespace but ``exclude`` (the monitor) and transient probes."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    pids = []
    for s in out:
        pid = int(s)
        if pid in exclude:
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm in ("gobgp", "ip", "vtysh", "birdc"):
            continue
        pids.append(pid)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            f = stat[stat.rindex(")") + 2 :].split()
            total += int(f[11]) + int(f[12])  # utime, stime
    return total / _TICK


def peak_rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024
