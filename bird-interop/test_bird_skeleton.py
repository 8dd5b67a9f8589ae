"""Our daemon against two real BIRD 2 routers in network namespaces (the walking skeleton)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.peers import kernel_routes, route_gateways, wait_for
from lab.topology import HOLD_TIME, RED_TABLE, SkeletonLab
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

ALL_NEIGHBORS = ["10.91.1.2", "fd91:1::2", "10.91.2.2", "fd91:2::2"]


def _need_bird() -> None:
    need_root()
    if shutil.which("bird") is None or shutil.which("birdc") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")


def _start(tmp: Path) -> SkeletonLab:
    lab = SkeletonLab(tmp).build()
    try:
        lab.start_birds()
        lab.start_bgpd()
        wait_for("all sessions Established", lambda: all_established(lab), 40)
    except BaseException:
        lab.dump_logs()
        lab.close()
        raise
    return lab


def all_established(lab: SkeletonLab) -> bool:
    assert lab.bgpd is not None
    states = {n["address"]: n["state"] for n in lab.bgpd.cli_json("show", "neighbors")["neighbors"]}
    return all(states.get(a) == "Established" for a in ALL_NEIGHBORS)


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SkeletonLab]:
    _need_bird()
    lab = _start(tmp_path_factory.mktemp("skeleton"))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def fresh(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SkeletonLab]:
    """A lab of its own, for tests that stop or break things."""
    _need_bird()
    lab = _start(tmp_path)
    try:
        yield lab
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            lab.dump_logs()
        lab.close()


def table_routes(lab: SkeletonLab, family: int = 4, table: int = RED_TABLE) -> dict[str, set[str]]:
    return {
        r["dst"]: route_gateways(r)
        for r in kernel_routes(lab.us, table, family)
        if r.get("protocol") in (186, "186", "bgp")
    }


def test_sessions_established_both_sides(skeleton: SkeletonLab) -> None:
    assert all_established(skeleton)
    for name, bird in skeleton.birds.items():
        for proto in ("us4", "us6"):
            assert wait_for(
                f"{name} {proto} Established",
                lambda b=bird, p=proto: "Established" in b.protocol_state(p),
                20,
            )
    neighbors = skeleton.bgpd.cli_json("show", "neighbors")["neighbors"]  # type: ignore[union-attr]
    n = next(n for n in neighbors if n["address"] == "10.91.1.2")
    assert n["asn"] == 65002 and n["vrf"] == "red" and n["uptime_s"] >= 0
    assert n["negotiated"]["four_octet_as"] is True and n["negotiated"]["hold_time"] == HOLD_TIME


def test_bird_routes_in_kernel_table_500(skeleton: SkeletonLab) -> None:
    routes = wait_for(
        "BIRD routes in table 500",
        lambda: {"198.51.100.0/24", "203.0.113.0/24"} <= (r := table_routes(skeleton)).keys() and r,
        30,
    )
    assert routes["198.51.100.0/24"] == {"10.91.1.2"}
    assert routes["203.0.113.0/24"] == {"10.91.2.2"}
    # VRF red's routes are in its own table only, never in main.
    main = {r["dst"] for r in kernel_routes(skeleton.us, "main", 4)}
    assert "198.51.100.0/24" not in main and "203.0.113.0/24" not in main
    # The locally originated network is announced, not installed in our own kernel.
    assert "10.96.0.0/12" not in routes


def test_bird_routes_in_cli_json(skeleton: SkeletonLab) -> None:
    assert skeleton.bgpd is not None
    data = wait_for(
        "203.0.113.0/24 in show routes",
        lambda: (
            (d := skeleton.bgpd.cli_json("show", "routes", "--vrf", "red", "203.0.113.0/24"))["routes"] and d
        ),  # type: ignore[union-attr]
        20,
    )
    [route] = data["routes"]
    assert route["vrf"] == "red" and route["table"] == RED_TABLE and route["prefix"] == "203.0.113.0/24"
    [path] = route["paths"]
    assert path["best"] is True and path["peer"] == "10.91.2.2" and path["next_hop"] == "10.91.2.2"
    assert path["as_path"] == [65002] and path["origin"] == "igp" and path["source"] == "ebgp"
    # longest-match lookup by address
    data = skeleton.bgpd.cli_json("show", "routes", "--vrf", "red", "203.0.113.77")
    assert [r["prefix"] for r in data["routes"]] == ["203.0.113.0/24"]
    # the text form is what an operator reads
    text = skeleton.bgpd.cli("show", "routes", "--vrf", "red").stdout
    assert "203.0.113.0/24" in text and "10.91.2.2" in text


def test_ecmp_two_bird_peers_one_kernel_route_two_next_hops(skeleton: SkeletonLab) -> None:
    routes = wait_for(
        "ECMP route for 192.0.2.0/24",
        lambda: (r := table_routes(skeleton)).get("192.0.2.0/24") == {"10.91.1.2", "10.91.2.2"} and r,
        30,
    )
    assert routes["192.0.2.0/24"] == {"10.91.1.2", "10.91.2.2"}
    routes6 = wait_for(
        "ECMP route for 2001:db8:100::/48",
        lambda: (r := table_routes(skeleton, 6)).get("2001:db8:100::/48") == {"fd91:1::2", "fd91:2::2"} and r,
        30,
    )
    assert routes6["2001:db8:100::/48"] == {"fd91:1::2", "fd91:2::2"}
    data = skeleton.bgpd.cli_json("show", "routes", "192.0.2.0/24")  # type: ignore[union-attr]
    [route] = data["routes"]
    assert [p["ecmp"] for p in route["paths"]] == [True, True]
    assert sum(p["best"] for p in route["paths"]) == 1


def test_our_network_reaches_bird(skeleton: SkeletonLab) -> None:
    b1 = skeleton.birds["b1"]
    out = wait_for(
        "10.96.0.0/12 in BIRD b1",
        lambda: "10.96.0.0/12" in (o := b1.birdc("show", "route", "10.96.0.0/12", "all")) and o,
        30,
    )
    assert "10.91.1.1" in out  # next hop: our address on the b1 link
    assert "65010" in out  # our AS prepended on eBGP
    out6 = wait_for(
        "fd96::/48 in BIRD b2",
        lambda: "fd96::/48" in (o := skeleton.birds["b2"].birdc("show", "route", "fd96::/48", "all")) and o,
        30,
    )
    assert "fd91:2::1" in out6


def test_routes_learnt_from_one_bird_are_announced_to_the_other(skeleton: SkeletonLab) -> None:
    # b2 learns b1's 198.51.100.0/24 through us; BIRD keeps it but rejects it for the AS loop
    # (65002 is its own AS), which `show route ... filtered`/`import ... rejected` do not show;
    # our Adj-RIB-Out counter does.
    neighbors = skeleton.bgpd.cli_json("show", "neighbors", "10.91.2.2")["neighbors"]  # type: ignore[union-attr]
    assert neighbors[0]["advertised"] >= 2  # 10.96.0.0/12 plus at least b1's routes


def test_withdraw_from_bird_removes_the_kernel_route_and_shrinks_ecmp(skeleton: SkeletonLab) -> None:
    b2 = skeleton.birds["b2"]
    wait_for(
        "ECMP installed", lambda: table_routes(skeleton).get("192.0.2.0/24") == {"10.91.1.2", "10.91.2.2"}, 30
    )
    b2.birdc("disable", "st4")  # BIRD withdraws its static IPv4 routes over BGP
    try:
        routes = wait_for(
            "b2's IPv4 routes withdrawn",
            lambda: (
                "203.0.113.0/24" not in (r := table_routes(skeleton))
                and r.get("192.0.2.0/24") == {"10.91.1.2"}
                and r
            ),
            15,
        )
        assert routes["198.51.100.0/24"] == {"10.91.1.2"}
        assert skeleton.bgpd.cli_json("show", "routes", "203.0.113.0/24")["routes"] == []  # type: ignore[union-attr]
        # The IPv6 session of the same router is unaffected.
        assert table_routes(skeleton, 6).get("2001:db8:100::/48") == {"fd91:1::2", "fd91:2::2"}
    finally:
        b2.birdc("enable", "st4")
    wait_for(
        "re-announced", lambda: table_routes(skeleton).get("192.0.2.0/24") == {"10.91.1.2", "10.91.2.2"}, 15
    )
    assert table_routes(skeleton)["203.0.113.0/24"] == {"10.91.2.2"}


def test_hold_timer_expiry_removes_the_silent_peers_routes(fresh: SkeletonLab) -> None:
    wait_for(
        "ECMP installed", lambda: table_routes(fresh).get("192.0.2.0/24") == {"10.91.1.2", "10.91.2.2"}, 30
    )
    b2 = fresh.birds["b2"]
    b2.signal(signal.SIGSTOP)  # b2 goes silent: no KEEPALIVE, no FIN
    try:
        t0 = time.monotonic()
        wait_for(
            "b2's routes gone",
            lambda: (
                "203.0.113.0/24" not in (r := table_routes(fresh)) and r.get("192.0.2.0/24") == {"10.91.1.2"}
            ),
            HOLD_TIME + 5,
        )
        elapsed = time.monotonic() - t0
        assert elapsed <= HOLD_TIME + 5
        n = fresh.bgpd.cli_json("show", "neighbors", "10.91.2.2")["neighbors"][0]  # type: ignore[union-attr]
        assert n["state"] != "Established"
        assert "hold" in (n["last_error"] or "").lower()
    finally:
        b2.signal(signal.SIGCONT)
    # b2 comes back: the session re-establishes and the ECMP route returns.
    wait_for("ECMP back", lambda: table_routes(fresh).get("192.0.2.0/24") == {"10.91.1.2", "10.91.2.2"}, 40)


def test_bird_stopped_routes_gone_and_shutdown_flushes_only_ours(fresh: SkeletonLab) -> None:
    wait_for("routes installed", lambda: "198.51.100.0/24" in table_routes(fresh), 30)
    # A route of another protocol in the same table must survive everything we do.
    fresh.ip("route", "add", "172.31.99.0/24", "via", "10.91.1.2", "table", str(RED_TABLE), "proto", "static")
    fresh.birds["b1"].stop()
    wait_for(
        "b1's routes gone",
        lambda: (
            "198.51.100.0/24" not in (r := table_routes(fresh)) and r.get("192.0.2.0/24") == {"10.91.2.2"}
        ),
        HOLD_TIME + 3,
    )
    assert fresh.bgpd is not None
    assert fresh.bgpd.stop() == 0
    assert table_routes(fresh) == {} and table_routes(fresh, 6) == {}
    others = [r["dst"] for r in kernel_routes(fresh.us, RED_TABLE, 4)]
    assert "172.31.99.0/24" in others


def _bgp_open(asn: int, router_id: str, hold: int = 30) -> bytes:
    """An OPEN built with scapy (independent of our codec)."""
    from scapy.contrib.bgp import BGPHeader, BGPOpen, bgp_module_conf

    bgp_module_conf.use_2_bytes_asn = False
    return bytes(BGPHeader(type=1) / BGPOpen(my_as=asn, hold_time=hold, bgp_id=router_id))


# A rogue speaker at b1's address: OPEN, optionally KEEPALIVE (to reach Established), then the
# bad message; it prints the NOTIFICATION it gets back.
ROGUE = r"""
import socket, struct, sys, time
open_msg, establish, bad = bytes.fromhex(sys.argv[1]), sys.argv[2] == "1", bytes.fromhex(sys.argv[3])
s = socket.create_connection(("10.91.1.1", 179), timeout=10)
s.sendall(open_msg)
buf = b""
def messages(data):
    i = 0
    while i + 19 <= len(data):
        length, mtype = struct.unpack("!HB", data[i + 16:i + 19])
        if i + length > len(data):
            break
        yield mtype, data[i + 19:i + length]
        i += length
def wait_for_type(t):
    global buf
    deadline = time.time() + 10
    while time.time() < deadline:
        if any(mt == t for mt, _ in messages(buf)):
            return
        chunk = s.recv(4096)
        if not chunk:
            return
        buf += chunk
wait_for_type(1)  # their OPEN
if establish:
    s.sendall(b"\xff" * 16 + struct.pack("!HB", 19, 4))
    wait_for_type(4)  # their KEEPALIVE: Established
s.sendall(bad)
wait_for_type(3)
for mt, body in messages(buf):
    if mt == 3:
        print("NOTIFICATION", body[0], body[1])
"""

MARKER = b"\xff" * 16
# (name, establish first, bytes, expected NOTIFICATION code/subcode)
ROGUE_CASES = [
    ("bad marker", False, b"\x00" * 16 + bytes.fromhex("001304"), "1 1"),
    ("KEEPALIVE with a body", False, MARKER + bytes.fromhex("00140400"), "1 2"),
    ("unknown message type", False, MARKER + bytes.fromhex("001309"), "1 3"),
    # UPDATE whose ORIGIN attribute claims 200 bytes: the attribute list cannot be parsed.
    ("truncated UPDATE", True, MARKER + bytes.fromhex("001d02000000064001c8000000"), "3 1"),
]


@pytest.fixture(scope="module")
def rogue_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SkeletonLab]:
    """The skeleton lab with b1 stopped, so a crafted speaker can take its address."""
    _need_bird()
    lab = _start(tmp_path_factory.mktemp("rogue"))
    try:
        lab.birds["b1"].stop()
        wait_for("b1 down", lambda: lab.bgpd.neighbor_state("10.91.1.2") != "Established", HOLD_TIME + 3)  # type: ignore[union-attr]
        yield lab
    finally:
        lab.close()


@pytest.mark.parametrize(
    ("case", "establish", "bad", "expected"), ROGUE_CASES, ids=[c[0] for c in ROGUE_CASES]
)
def test_bad_message_from_a_peer_gets_the_right_notification(
    rogue_lab: SkeletonLab, case: str, establish: bool, bad: bytes, expected: str
) -> None:
    lab = rogue_lab
    assert lab.bgpd is not None
    ns = lab.birds["b1"].ns
    open_msg = _bgp_open(65002, "10.91.1.2", hold=30)
    # Our session may be in its reconnect backoff: it accepts the inbound connection anyway.
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-c",
            ROGUE,
            open_msg.hex(),
            "1" if establish else "0",
            bad.hex(),
        ],
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert f"NOTIFICATION {expected}" in out.stdout, (
        f"{case}: {out.stdout} {out.stderr}\n{lab.bgpd.log_text()[-3000:]}"
    )
    assert lab.bgpd.running
    # The error is logged with the peer, and the daemon's other peers are untouched.
    log = lab.bgpd.log_text()
    assert '"peer": "10.91.1.2"' in log and "NOTIFICATION" in log
    assert lab.bgpd.neighbor_state("10.91.2.2") == "Established"
    assert "203.0.113.0/24" in table_routes(lab)
