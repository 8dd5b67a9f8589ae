"""TCP MD5 (RFC 2385) over IPv6 transport with FRR and BIRD, our side active and passive.

    b (BIRD) fd61:6::2x ------- us (bgpd) fd61:6::1x / fd61:7::1x ------- f (FRR) fd61:7::2x

Each case is its own pair of addresses, so the keys (one per peer address) never mix. A wrong
key must not establish. The IPv4 cases are in test_security.py; the kernel keeps IPv6 MD5 keys
apart (struct tcp_md5sig with a sockaddr_in6), so this path needs its own proof.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.frr import Frr
from lab.netns import Lab, run
from lab.peers import Bgpd, Bird, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

LOCAL_ASN = 65010
BIRD_ASN = 65002
FRR_ASN = 65003
SECRET = "v6-s3cret"
# name -> (our address, their address, our neighbor keys)
BIRD_CASES = {
    "act": ("fd61:6::11", "fd61:6::21", f'password = "{SECRET}"'),
    "pas": ("fd61:6::12", "fd61:6::22", f'password = "{SECRET}"\npassive = true'),
    "bad": ("fd61:6::13", "fd61:6::23", f'password = "{SECRET}"'),
}
BIRD_OPTS = {
    "act": f'password "{SECRET}"; passive on;',
    "pas": f'password "{SECRET}";',
    "bad": 'password "wrong";',
}
FRR_CASES = {
    "act": ("fd61:7::11", "fd61:7::21", f'password = "{SECRET}"'),
    "pas": ("fd61:7::12", "fd61:7::22", f'password = "{SECRET}"\npassive = true'),
    "bad": ("fd61:7::13", "fd61:7::23", f'password = "{SECRET}"'),
}
FRR_OPTS = {
    "act": [f"password {SECRET}", "passive"],
    "pas": [f"password {SECRET}"],
    "bad": ["password wrong"],
}
BIRD_PREFIX = "2001:db8:61:b::/64"
FRR_PREFIX = "2001:db8:61:f::/64"
OUR_PREFIX = "2001:db8:61:a::/64"


def bird_config() -> str:
    protos = "".join(
        f"""
protocol bgp {name} {{
  local {theirs} as {BIRD_ASN};
  neighbor {ours} as {LOCAL_ASN};
  hold time 9; connect retry time 2; error wait time 1, 5;
  {BIRD_OPTS[name]}
  ipv6 {{ import all; export where source = RTS_STATIC; }};
}}"""
        for name, (ours, theirs, _) in BIRD_CASES.items()
    )
    return f"""
router id 10.61.6.21;
log stderr all;
protocol device {{ scan time 2; }}
protocol static st6 {{ ipv6; route {BIRD_PREFIX} blackhole; }}
{protos}
"""


def frr_config() -> str:
    lines = [
        "frr defaults traditional",
        "hostname f6",
        "log stdout informational",
        f"router bgp {FRR_ASN}",
        " bgp router-id 10.61.7.21",
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        " no bgp default ipv4-unicast",
    ]
    for name, (ours, theirs, _) in FRR_CASES.items():
        lines += [
            f" neighbor {ours} remote-as {LOCAL_ASN}",
            f" neighbor {ours} update-source {theirs}",
            f" neighbor {ours} timers 3 9",
            f" neighbor {ours} timers connect 2",
        ]
        lines += [f" neighbor {ours} {o}" for o in FRR_OPTS[name]]
    lines += [" address-family ipv6 unicast", f"  network {FRR_PREFIX}"]
    lines += [f"  neighbor {ours} activate" for ours, _, _ in FRR_CASES.values()]
    lines += [" exit-address-family"]
    return "\n".join(lines) + "\n"


def bgpd_config(workdir: Path) -> str:
    out = [
        f"""
[router]
asn = {LOCAL_ASN}
router_id = "10.61.6.1"
listen = ["::"]

[control]
socket = "{workdir}/bgpd.sock"

[kernel]
enabled = false

[template.t]
import = "all"
export = "all"
hold_time = 9
connect_retry = 1
address_families = ["ipv6"]

[[network]]
prefix = "{OUR_PREFIX}"
"""
    ]
    for cases, asn in ((BIRD_CASES, BIRD_ASN), (FRR_CASES, FRR_ASN)):
        for ours, theirs, keys in cases.values():
            out.append(
                f'\n[[neighbor]]\naddress = "{theirs}"\nasn = {asn}\ntemplate = "t"\n'
                f'source_address = "{ours}"\n{keys}\n'
            )
    return "".join(out)


@dataclass
class Md5Lab:
    workdir: Path
    lab: Lab = field(default_factory=Lab)
    us: str = ""
    bird: Bird | None = None
    frr: Frr | None = None
    bgpd: Bgpd | None = None

    def start(self) -> Md5Lab:
        lab = self.lab
        self.us = lab.ns("us")
        b, f = lab.ns("b"), lab.ns("f")
        lab.link(
            self.us,
            b,
            [f"{c[0]}/64" for c in BIRD_CASES.values()],
            [f"{c[1]}/64" for c in BIRD_CASES.values()],
            "v6b",
        )
        lab.link(
            self.us,
            f,
            [f"{c[0]}/64" for c in FRR_CASES.values()],
            [f"{c[1]}/64" for c in FRR_CASES.values()],
            "v6f",
        )
        self.bird = Bird(b, self.workdir / "b", "bird", config=bird_config()).start()
        self.frr = Frr(f, self.workdir / "f", frr_config()).start()
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.us, wd, "bgpd", config=bgpd_config(wd)).start()
        return self

    def close(self) -> None:
        for p in (self.bgpd, self.bird):
            if p is not None:
                p.stop()
        if self.frr is not None:
            self.frr.stop()
        self.lab.close()

    def neighbor(self, address: str) -> dict:  # type: ignore[type-arg]
        assert self.bgpd is not None
        return self.bgpd.cli_json("show", "neighbors", address)["neighbors"][0]  # type: ignore[no-any-return]

    def route_peers(self, prefix: str) -> set[str]:
        assert self.bgpd is not None
        routes = self.bgpd.cli_json("show", "routes", "--all", prefix)["routes"]
        return {p["peer"] for r in routes for p in r["paths"]}


@pytest.fixture(scope="module")
def md5lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Md5Lab]:
    need_root()
    for tool in ("bird", "vtysh"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (bird2 and frr packages)")
    m = Md5Lab(tmp_path_factory.mktemp("md5v6"))
    try:
        m.start()
        yield m
    finally:
        if any(getattr(i, "rep_call", None) and i.rep_call.failed for i in request.session.items):
            for p in (m.bgpd, m.bird, m.frr):
                if p is not None:
                    sys.stderr.write(f"--- log ---\n{p.log_text()[-20000:]}\n")
        m.close()


@pytest.mark.parametrize("case", ["act", "pas"])
def test_md5_ipv6_with_bird(md5lab: Md5Lab, case: str) -> None:
    _ours, theirs, _ = BIRD_CASES[case]
    assert md5lab.bird is not None
    wait_for(f"BIRD {case} Established here", lambda: md5lab.neighbor(theirs)["state"] == "Established", 40)
    wait_for(f"BIRD {case} Established there", lambda: md5lab.bird.protocol_state(case) == "Established", 20)  # type: ignore[union-attr]
    wait_for("BIRD's IPv6 route", lambda: theirs in md5lab.route_peers(BIRD_PREFIX), 20)
    ss = run("ss", "-tnie", "state", "established", "dst", f"[{theirs}]", ns=md5lab.us)
    assert "md5" in ss.stdout, ss.stdout
    wait_for(
        "our route in BIRD", lambda: OUR_PREFIX in md5lab.bird.birdc("show", "route", "protocol", case), 20
    )  # type: ignore[union-attr]


@pytest.mark.parametrize("case", ["act", "pas"])
def test_md5_ipv6_with_frr(md5lab: Md5Lab, case: str) -> None:
    ours, theirs, _ = FRR_CASES[case]
    frr = md5lab.frr
    assert frr is not None
    wait_for(f"FRR {case} Established here", lambda: md5lab.neighbor(theirs)["state"] == "Established", 40)
    wait_for(f"FRR {case} Established there", lambda: frr.peer_state(ours) == "Established", 20)
    wait_for("FRR's IPv6 route", lambda: theirs in md5lab.route_peers(FRR_PREFIX), 30)
    ss = run("ss", "-tnie", "state", "established", "dst", f"[{theirs}]", ns=md5lab.us)
    assert "md5" in ss.stdout, ss.stdout
    wait_for(
        "our route in FRR", lambda: OUR_PREFIX in frr.json("show bgp ipv6 unicast json").get("routes", {}), 30
    )


def test_md5_ipv6_wrong_key_never_establishes(md5lab: Md5Lab) -> None:
    """After the good sessions (same timers) are up, the wrong-key ones stay down for 12 s."""
    assert md5lab.bird is not None and md5lab.frr is not None
    wait_for("good sessions", lambda: md5lab.neighbor(BIRD_CASES["act"][1])["state"] == "Established", 40)
    wait_for("good FRR", lambda: md5lab.neighbor(FRR_CASES["act"][1])["state"] == "Established", 40)
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        for cases in (BIRD_CASES, FRR_CASES):
            assert md5lab.neighbor(cases["bad"][1])["state"] != "Established"
        assert md5lab.bird.protocol_state("bad") != "Established"
        assert md5lab.frr.peer_state(FRR_CASES["bad"][0]) != "Established"
        time.sleep(1)
