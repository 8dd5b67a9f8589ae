"""Session security against real peers: TCP MD5 (RFC 2385) with BIRD and FRR, GTSM (RFC 5082)
with a peer one hop too far, unknown peers refused, max_prefixes, and a peer that stops reading.

    far (BIRD) --- r (router) ---+
    10.61.4.2/.3    10.61.4.1    | 10.61.3.2
                                 | 10.61.3.1
    b (BIRD) 10.61.1.2x ------- us (bgpd) 10.61.1.1x / 10.61.2.1x ------- f (FRR) 10.61.2.2x
                                 |
    s (stalled speaker) 10.61.5.2 --- 10.61.5.1

Each case is its own pair of addresses (ours 10.61.N.1x, theirs 10.61.N.2x), so every session is
keyed apart on both sides. BIRD's statics (198.51.100.0/24 and 30 x 100.64.i.0/24) go to every
BIRD session; 20000 x 10.200.0.0/16 /32s come only from the `feed` session and are exported by us
to the stalled speaker.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.frr import Frr
from lab.netns import Lab, run
from lab.peers import Bgpd, Bird, Process, kernel_routes, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

LOCAL_ASN = 65010
BIRD_ASN = 65002
FRR_ASN = 65003
STALL_ASN = 65005
SECRET = "s3cret-Key"
LIMIT_STATICS = 30  # 100.64.i.0/24, plus 198.51.100.0/24: 31 prefixes from every BIRD session
FEED_ROUTES = 20000

# name -> (our address, BIRD's address, BIRD protocol options, our neighbor keys)
BIRD_CASES: dict[str, tuple[str, str, str, str]] = {
    "md5act": ("10.61.1.11", "10.61.1.21", f'password "{SECRET}"; passive on;', f'password = "{SECRET}"'),
    "md5pas": ("10.61.1.12", "10.61.1.22", f'password "{SECRET}";', f'password = "{SECRET}"\npassive = true'),
    "md5bad": ("10.61.1.13", "10.61.1.23", 'password "not-the-key";', f'password = "{SECRET}"'),
    "md5none": ("10.61.1.14", "10.61.1.24", f'password "{SECRET}";', ""),
    "gtsm": ("10.61.1.15", "10.61.1.25", "ttl security on;", "ttl_security = true\nmax_prefixes = 31"),
    "maxpfx": ("10.61.1.16", "10.61.1.26", "", "max_prefixes = 20"),
    "maxpfxrs": ("10.61.1.17", "10.61.1.27", "", "max_prefixes = 20\nmax_prefixes_restart = 2"),
    "feeder": ("10.61.1.18", "10.61.1.28", "", ""),
}
STRANGER = ("10.61.1.1", "10.61.1.29")  # a BIRD session towards us that we never configured
# Through the router r: GTSM must refuse it; plain multihop proves the path works.
FAR_GTSM = "10.61.4.2"
FAR_MULTIHOP = "10.61.4.3"
# name -> (our address, FRR's address, FRR neighbor options, our neighbor keys)
FRR_CASES: dict[str, tuple[str, str, list[str], str]] = {
    "md5act": ("10.61.2.11", "10.61.2.21", [f"password {SECRET}", "passive"], f'password = "{SECRET}"'),
    "md5pas": ("10.61.2.12", "10.61.2.22", [f"password {SECRET}"], f'password = "{SECRET}"\npassive = true'),
    "md5bad": ("10.61.2.13", "10.61.2.23", ["password not-the-key"], f'password = "{SECRET}"'),
    "gtsm": ("10.61.2.14", "10.61.2.24", ["ttl-security hops 1"], "ttl_security = true"),
}
STALL = ("10.61.5.1", "10.61.5.2")


def bird_config() -> str:
    statics = "\n".join(f"  route 100.64.{i}.0/24 blackhole;" for i in range(LIMIT_STATICS))
    feed = "\n".join(f"  route 10.200.{i // 256}.{i % 256}/32 blackhole;" for i in range(FEED_ROUTES))
    protos = []
    for name, (ours, theirs, opts, _) in BIRD_CASES.items():
        table = "table feedt; " if name == "feeder" else ""
        protos.append(f"""
protocol bgp {name} {{
  local {theirs} as {BIRD_ASN};
  neighbor {ours} as {LOCAL_ASN};
  hold time 9; connect retry time 2; error wait time 1, 5;
  {opts}
  ipv4 {{ {table}import all; export where source = RTS_STATIC; }};
}}""")
    return f"""
router id 10.61.1.21;
log stderr all;
ipv4 table feedt;
protocol device {{ scan time 2; }}
protocol static st4 {{ ipv4;
  route 198.51.100.0/24 blackhole;
{statics}
}}
protocol static stfeed {{ ipv4 {{ table feedt; }};
{feed}
}}
protocol bgp stranger {{
  local {STRANGER[1]} as {BIRD_ASN};
  neighbor {STRANGER[0]} as {LOCAL_ASN};
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export none; }};
}}
{"".join(protos)}
"""


def far_bird_config() -> str:
    return f"""
router id {FAR_GTSM};
log stderr all;
protocol device {{ scan time 2; }}
protocol static st4 {{ ipv4; route 198.51.102.0/24 blackhole; }}
protocol bgp gtsm {{
  local {FAR_GTSM} as {BIRD_ASN};
  neighbor 10.61.3.1 as {LOCAL_ASN};
  multihop 2; ttl security on;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
protocol bgp mh {{
  local {FAR_MULTIHOP} as {BIRD_ASN};
  neighbor 10.61.3.1 as {LOCAL_ASN};
  multihop 2;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 {{ import all; export all; }};
}}
"""


def frr_config() -> str:
    lines = [
        "frr defaults traditional",
        "hostname f",
        "log stdout informational",
        f"router bgp {FRR_ASN}",
        " bgp router-id 10.61.2.21",
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
    ]
    for ours, theirs, opts, _ in FRR_CASES.values():
        lines += [
            f" neighbor {ours} remote-as {LOCAL_ASN}",
            f" neighbor {ours} update-source {theirs}",
            f" neighbor {ours} timers 3 9",
            f" neighbor {ours} timers connect 2",
        ]
        lines += [f" neighbor {ours} {o}" for o in opts]
    lines += [" address-family ipv4 unicast", "  network 198.51.101.0/24", " exit-address-family"]
    return "\n".join(lines) + "\n"


def bgpd_config(workdir: Path) -> str:
    out = [
        f"""
[router]
asn = {LOCAL_ASN}
router_id = "10.61.0.1"
listen = ["0.0.0.0"]

[control]
socket = "{workdir}/bgpd.sock"

[log]
level = "debug"

[template.t]
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
address_families = ["ipv4"]

[[network]]
prefix = "10.96.0.0/12"
"""
    ]

    def neighbor(address: str, asn: int, source: str, keys: str) -> None:
        out.append(
            f'\n[[neighbor]]\naddress = "{address}"\nasn = {asn}\ntemplate = "t"\n'
            f'source_address = "{source}"\n{keys}\n'
        )

    for ours, theirs, _, keys in BIRD_CASES.values():
        neighbor(theirs, BIRD_ASN, ours, keys)
    neighbor(FAR_GTSM, BIRD_ASN, "10.61.3.1", "ttl_security = true")
    neighbor(FAR_MULTIHOP, BIRD_ASN, "10.61.3.1", "multihop = 2")
    for ours, theirs, _, keys in FRR_CASES.values():
        neighbor(theirs, FRR_ASN, ours, keys)
    neighbor(STALL[1], STALL_ASN, STALL[0], "passive = true")
    return "".join(out)


# A BGP speaker that completes OPEN/KEEPALIVE and then never reads again (its receive window
# stays full), while it keeps sending KEEPALIVEs so our hold timer never fires.
STALLED_SPEAKER = """
import socket, sys, time
from bgpd.wire import MessageFramer, encode_keepalive, encode_open
src, dst, asn = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind((src, 0))
for _ in range(100):
    try:
        s.connect((dst, 179))
        break
    except OSError:
        time.sleep(0.3)
s.sendall(encode_open(asn, 9, src, [(1, 1)]))
framer = MessageFramer()
seen = 0
while seen < 2:  # OPEN and KEEPALIVE
    data = s.recv(4096)
    if not data:
        sys.exit("closed before established")
    seen += len(list(framer.feed(data)))
s.sendall(encode_keepalive())
print("established, no longer reading", flush=True)
while True:
    time.sleep(2)
    s.sendall(encode_keepalive())
"""


@dataclass
class SecurityLab:
    workdir: Path
    lab: Lab = field(default_factory=Lab)
    us: str = ""
    ns: dict[str, str] = field(default_factory=dict)
    bird: Bird | None = None
    far: Bird | None = None
    frr: Frr | None = None
    stall: Process | None = None
    bgpd: Bgpd | None = None

    def build(self) -> SecurityLab:
        lab = self.lab
        self.us = lab.ns("us")
        for name in ("b", "f", "r", "far", "s"):
            self.ns[name] = lab.ns(name)
        # Small send buffers on our side, so a peer that stops reading fills them with a table
        # of this size (the default autotuning would absorb megabytes).
        run("sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 65536", ns=self.us)
        bird_ours = [f"{c[0]}/24" for c in BIRD_CASES.values()] + [f"{STRANGER[0]}/24"]
        bird_theirs = [f"{c[1]}/24" for c in BIRD_CASES.values()] + [f"{STRANGER[1]}/24"]
        lab.link(self.us, self.ns["b"], bird_ours, bird_theirs, name="vb")
        frr_ours = [f"{c[0]}/24" for c in FRR_CASES.values()]
        frr_theirs = [f"{c[1]}/24" for c in FRR_CASES.values()]
        lab.link(self.us, self.ns["f"], frr_ours, frr_theirs, name="vf")
        lab.link(self.us, self.ns["r"], ["10.61.3.1/24"], ["10.61.3.2/24"], name="vr")
        lab.link(
            self.ns["r"],
            self.ns["far"],
            ["10.61.4.1/24"],
            [f"{FAR_GTSM}/24", f"{FAR_MULTIHOP}/24"],
            name="vx",
        )
        lab.link(self.us, self.ns["s"], [f"{STALL[0]}/24"], [f"{STALL[1]}/24"], name="vs")
        run("ip", "route", "add", "10.61.4.0/24", "via", "10.61.3.2", ns=self.us)
        run("ip", "route", "add", "default", "via", "10.61.4.1", ns=self.ns["far"])
        return self

    def start(self) -> None:
        self.bird = Bird(self.ns["b"], self.workdir / "b", "bird", config=bird_config()).start()
        self.far = Bird(self.ns["far"], self.workdir / "far", "bird", config=far_bird_config()).start()
        self.frr = Frr(self.ns["f"], self.workdir / "f", frr_config()).start()
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_config(wd)).start()

    def close(self) -> None:
        for p in (self.stall, self.bgpd, self.bird, self.far):
            if p is not None:
                p.stop()
        if self.frr is not None:
            self.frr.stop()
        self.lab.close()

    # --- views ---------------------------------------------------------------------------------

    def neighbor(self, address: str) -> dict:  # type: ignore[type-arg]
        assert self.bgpd is not None
        return self.bgpd.cli_json("show", "neighbors", address)["neighbors"][0]  # type: ignore[no-any-return]

    def bird_info(self, proto: str, birdc: Bird | None = None) -> str:
        b = birdc or self.bird
        assert b is not None
        return b.protocol_state(proto)

    def log_records(self) -> list[dict]:  # type: ignore[type-arg]
        assert self.bgpd is not None
        out = []
        for line in self.bgpd.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


@pytest.fixture(scope="module")
def sec(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[SecurityLab]:
    need_root()
    for tool in ("bird", "vtysh"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (bird2 and frr packages)")
    sl = SecurityLab(tmp_path_factory.mktemp("security")).build()
    try:
        sl.start()
        yield sl
    finally:
        if any(getattr(i, "rep_call", None) and i.rep_call.failed for i in request.session.items):
            for p in (sl.bgpd, sl.bird, sl.far):
                if p is not None:
                    sys.stderr.write(f"--- {p.name} log ---\n{p.log_text()[-20000:]}\n")
        sl.close()


def route_peers(sec: SecurityLab, prefix: str) -> set[str]:
    assert sec.bgpd is not None
    routes = sec.bgpd.cli_json("show", "routes", "--all", prefix)["routes"]
    return {p["peer"] for r in routes for p in r["paths"]}


def established(sec: SecurityLab, address: str) -> bool:
    return sec.neighbor(address)["state"] == "Established"


# --- TCP MD5 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["md5act", "md5pas"])
def test_md5_with_bird_establishes_active_and_passive(sec: SecurityLab, case: str) -> None:
    _ours, theirs, _, _ = BIRD_CASES[case]
    wait_for(f"{case} Established here", lambda: established(sec, theirs), 40)
    wait_for(f"{case} Established in BIRD", lambda: sec.bird_info(case) == "Established", 20)
    n = wait_for("BIRD's routes received", lambda: (x := sec.neighbor(theirs))["received"] >= 31 and x, 20)
    assert n["received"] == LIMIT_STATICS + 1
    # The segments really carry the option: the connection's socket has the key (ss shows md5).
    ss = run("ss", "-tnie", "state", "established", "dst", theirs, ns=sec.us)
    assert "md5" in ss.stdout, ss.stdout
    assert "10.96.0.0/12" in sec.bird.birdc("show", "route", "protocol", case) if sec.bird else False


@pytest.mark.parametrize("case", ["md5act", "md5pas"])
def test_md5_with_frr_establishes_active_and_passive(sec: SecurityLab, case: str) -> None:
    ours, theirs, _, _ = FRR_CASES[case]
    assert sec.frr is not None
    wait_for(f"{case} Established here", lambda: established(sec, theirs), 40)
    wait_for(f"{case} Established in FRR", lambda: sec.frr.peer_state(ours) == "Established", 20)  # type: ignore[union-attr]
    wait_for("FRR's route received", lambda: theirs in route_peers(sec, "198.51.101.0/24"), 30)
    nb = sec.frr.json(f"show bgp neighbors {ours} json")[ours]
    assert nb["bgpState"] == "Established"
    routes = sec.frr.json("show bgp ipv4 unicast json")["routes"]
    assert "10.96.0.0/12" in routes


def test_md5_mismatch_and_gtsm_too_far_never_establish(sec: SecurityLab) -> None:
    """Wrong or missing MD5 keys (BIRD, FRR) and a GTSM peer one hop too far: never Established.

    Watched together for one window, after the good sessions (same timers) came up, so each
    mismatch had several connect attempts in both directions."""
    assert sec.frr is not None and sec.far is not None
    wait_for("the good MD5 sessions", lambda: established(sec, BIRD_CASES["md5act"][1]), 40)
    wait_for("the good FRR session", lambda: established(sec, FRR_CASES["md5act"][1]), 40)
    # Control for GTSM: the same far host over plain multihop works, so routing through r is
    # fine; its GTSM session arrives with TTL 254 and is dropped by our minimum TTL of 255.
    wait_for("multihop peer through r Established", lambda: established(sec, FAR_MULTIHOP), 40)
    wait_for("multihop route", lambda: FAR_MULTIHOP in route_peers(sec, "198.51.102.0/24"), 20)
    ours = [BIRD_CASES["md5bad"][1], BIRD_CASES["md5none"][1], FRR_CASES["md5bad"][1], FAR_GTSM]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for address in ours:
            assert sec.neighbor(address)["state"] != "Established", address
        assert sec.bird_info("md5bad") != "Established"
        assert sec.bird_info("md5none") != "Established"
        assert sec.frr.peer_state(FRR_CASES["md5bad"][0]) != "Established"
        assert sec.bird_info("gtsm", sec.far) != "Established"
        time.sleep(0.5)
    for address in ours:
        n = sec.neighbor(address)
        assert n["received"] == 0 and n["uptime_s"] is None, n
    # The kernel drops badly signed segments silently: our connects time out, and we say so.
    assert "connect" in (sec.neighbor(BIRD_CASES["md5bad"][1])["last_error"] or "")


# --- GTSM ----------------------------------------------------------------------------------------


def test_gtsm_direct_peers_establish(sec: SecurityLab) -> None:
    """BIRD and FRR with GTSM accept only TTL 255 from us: Established proves we send 255."""
    assert sec.frr is not None
    theirs = BIRD_CASES["gtsm"][1]
    wait_for("BIRD GTSM Established", lambda: established(sec, theirs), 40)
    assert sec.bird_info("gtsm") == "Established"
    f_ours, f_theirs, _, _ = FRR_CASES["gtsm"]
    wait_for("FRR GTSM Established", lambda: established(sec, f_theirs), 40)
    assert sec.frr.peer_state(f_ours) == "Established"
    # Our socket really requires TTL 255 in (IP_MINTTL), and sends 255.
    ss = run("ss", "-tni", "state", "established", "dst", theirs, ns=sec.us).stdout
    assert ss.strip(), "no socket to the GTSM peer"


# --- unknown peers -------------------------------------------------------------------------------


def test_unconfigured_peer_is_refused_and_logged(sec: SecurityLab) -> None:
    assert sec.bird is not None
    wait_for(
        "refusal logged",
        lambda: any(
            r.get("event") == "connection from unknown peer refused" and r.get("peer") == STRANGER[1]
            for r in sec.log_records()
        ),
        20,
    )
    assert sec.bird_info("stranger") != "Established"
    # From the stranger's side: the connection is closed at once, without an OPEN.
    out = run(
        sys.executable,
        "-c",
        "import socket,sys\n"
        f"s=socket.create_connection(('{STRANGER[0]}',179),timeout=5,source_address=('{STRANGER[1]}',0))\n"
        "s.settimeout(5)\n"
        "d=s.recv(100)\n"
        "print(len(d))",
        ns=sec.ns["b"],
        check=False,
    )
    assert out.stdout.strip() == "0", (out.stdout, out.stderr)
    assert "stranger" not in json.dumps(sec.bgpd.cli_json("show", "neighbors")) if sec.bgpd else False


# --- max_prefixes --------------------------------------------------------------------------------


def test_max_prefixes_cease_and_stay_down(sec: SecurityLab) -> None:
    """31 prefixes over a limit of 20: Cease/1 with AFI/SAFI/limit, then down until reset."""
    assert sec.bird is not None and sec.bgpd is not None
    theirs = BIRD_CASES["maxpfx"][1]
    wait_for(
        "BIRD got our Cease",
        # The data is AFI 1, SAFI 1 and the limit 20 (RFC 4486), as BIRD prints it in hex.
        lambda: "maxpfx: Received: Maximum number of prefixes reached: 00010100000014" in sec.bird.log_text(),  # type: ignore[union-attr]
        40,
    )
    n = wait_for(
        "limit reported",
        lambda: "prefix limit" in ((x := sec.neighbor(theirs))["last_error"] or "") and x,
        10,
    )
    assert n["last_notification"].startswith("sent "), n
    assert n["enabled"] is False
    # The notification carried AFI 1, SAFI 1 and the limit 20 (RFC 4486).
    rec = [
        r
        for r in sec.log_records()
        if r.get("event") == "prefix limit exceeded, closing session" and r.get("peer") == theirs
    ]
    assert rec and rec[0]["limit"] == 20 and rec[0]["afi"] == "ipv4" and rec[0]["received"] > 20
    # It stays down (BIRD keeps retrying): no routes from it, and the guarded boundary case
    # (gtsm: 31 prefixes, limit 31) stays up.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        n = sec.neighbor(theirs)
        assert n["state"] != "Established" and n["received"] == 0
        time.sleep(0.5)
    assert established(sec, BIRD_CASES["gtsm"][1])
    # An operator reset brings it back (and it is cut again by the same limit).
    flaps = n["flaps"]
    sec.bgpd.cli("neighbor", theirs, "reset")
    wait_for("reconnected and cut again", lambda: sec.neighbor(theirs)["flaps"] > flaps, 30)


def test_max_prefixes_restart_timer_reconnects(sec: SecurityLab) -> None:
    theirs = BIRD_CASES["maxpfxrs"][1]
    wait_for("first cut", lambda: sec.neighbor(theirs)["flaps"] >= 1, 40)
    first = sec.neighbor(theirs)["flaps"]
    # max_prefixes_restart = 2: it reconnects by itself, and is cut again.
    wait_for(
        "reconnected after the restart timer and cut again", lambda: sec.neighbor(theirs)["flaps"] > first, 30
    )


# --- a peer that stops reading -------------------------------------------------------------------


def test_a_peer_that_stops_reading_blocks_nobody(sec: SecurityLab) -> None:
    assert sec.bird is not None and sec.bgpd is not None
    feed = BIRD_CASES["feeder"][1]
    sec.stall = Process(sec.ns["s"], sec.workdir / "s", "stall")
    sec.stall._spawn([sys.executable, "-c", STALLED_SPEAKER, STALL[1], STALL[0], str(STALL_ASN)])
    wait_for("stalled speaker Established", lambda: established(sec, STALL[1]), 30)
    wait_for("the feed's table", lambda: sec.neighbor(feed)["received"] == FEED_ROUTES, 60)

    def send_q() -> int:
        ss = run("ss", "-tn", "state", "established", "dst", STALL[1], ns=sec.us).stdout.splitlines()
        return max((int(line.split()[1]) for line in ss[1:] if line.split()), default=0)

    # The stalled peer's socket is full: bytes sit in our send queue and stay there.
    wait_for("our send queue to the stalled peer fills", lambda: send_q() > 10000 or None, 30)
    assert "established" in sec.stall.log_text()
    # Meanwhile the CLI answers quickly and another peer's changes flow both ways.
    slowest = 0.0
    t0 = time.monotonic()
    sec.bird.birdc("disable", "st4")
    md5 = BIRD_CASES["md5act"][1]

    def gone() -> bool:
        nonlocal slowest
        t = time.monotonic()
        n = sec.neighbor(md5)
        slowest = max(slowest, time.monotonic() - t)
        return n["received"] == 0

    wait_for("withdrawals from BIRD processed", gone, 20)
    assert "198.51.100.0/24" not in {r["dst"] for r in kernel_routes(sec.us, "main")}
    sec.bird.birdc("enable", "st4")
    wait_for(
        "routes back in the kernel",
        lambda: "198.51.100.0/24" in {r["dst"] for r in kernel_routes(sec.us, "main")},
        20,
    )
    assert slowest < 1.0, f"a show neighbors took {slowest:.2f}s"
    assert time.monotonic() - t0 < 30
    # The stalled session is still up (its KEEPALIVEs reach us) and still stuck.
    assert established(sec, STALL[1]) and send_q() > 10000
    # What the daemon itself holds for it is bounded (bird-interop/test_output_cap.py fills it).
    stalled = sec.neighbor(STALL[1])
    assert stalled["out_queue_peak"] <= stalled["out_queue_cap"], stalled
    assert stalled["out_queue_bytes"] <= stalled["out_queue_cap"], stalled
    # And a FRR peer still gets our announcements (export side not blocked).
    assert sec.frr is not None
    assert "10.96.0.0/12" in sec.frr.json("show bgp ipv4 unicast json")["routes"]
