"""A VRF that names a device: its sessions bind to it (SO_BINDTODEVICE), in real namespaces.

This kernel has no `vrf` link type, but SO_BINDTODEVICE works on any device, and binding to a
VRF device is binding to a device: the socket's route lookups see only routes through it. So
namespace "a" reaches the peer address 10.99.0.9 two ways, through namespace "b" (the better
route) and through "c" (metric 100), and a session bound to the veth towards "c" must reach
"c"'s listener while an unbound one reaches "b"'s. Inbound, a connection whose socket is not
bound to the VRF's device (as one arriving in another VRF is not) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import select
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpd.config.model import NeighborConfig
from bgpd.session import PeerSession
from lab.peers import Bgpd, Bird, wait_for
from tests.netns.test_fib_netlink import in_netns
from tests.pair.test_pair_tcp import ListLogger, Recorder, until
from tests.support.netns import Lab, need_root, run

pytestmark = pytest.mark.root

PEER = "10.99.0.9"
MARKER = b"\xff" * 16


@pytest.fixture
def topo() -> Iterator[tuple[str, str, str, str, str]]:
    """(ns a, ns b, ns c, a's device towards b, a's device towards c)."""
    need_root()
    tag = uuid.uuid4().hex[:4]
    with Lab() as lab:
        a, b, c = lab.ns("a"), lab.ns("b"), lab.ns("c")
        to_b, _ = lab.link(a, b, ["10.81.0.1/24"], ["10.81.0.2/24"], name=f"vb{tag}")
        to_c, _ = lab.link(a, c, ["10.82.0.1/24"], ["10.82.0.2/24"], name=f"vc{tag}")
        for ns in (a, b, c):
            run("ip", "link", "set", "lo", "up", ns=ns)
        for ns in (b, c):
            run("ip", "addr", "add", f"{PEER}/32", "dev", "lo", ns=ns)
        run("ip", "route", "add", f"{PEER}/32", "via", "10.81.0.2", ns=a)
        run("ip", "route", "add", f"{PEER}/32", "via", "10.82.0.2", "metric", "100", ns=a)
        yield a, b, c, to_b, to_c


def listening(ns: str, addr: str, port: int) -> socket.socket:
    with in_netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4)
    s.setblocking(False)
    return s


def pending(listener: socket.socket) -> bool:
    return bool(select.select([listener], [], [], 0)[0])


def session(device: str | None, port: int, passive: bool = False) -> tuple[PeerSession, ListLogger]:
    cfg = NeighborConfig(
        address=ipaddress.ip_address(PEER), asn=65002, port=port, passive=passive, connect_retry=0.2
    )
    log = ListLogger("a")
    return PeerSession(cfg, 65001, "10.0.0.1", Recorder(), log, device), log  # type: ignore[arg-type]


@pytest.mark.parametrize("bound", [True, False])
def test_outgoing_session_reaches_the_peer_only_through_its_device(topo, bound: bool) -> None:
    a, b, c, _to_b, to_c = topo
    via_b, via_c = listening(b, PEER, 1179), listening(c, PEER, 1179)
    sess, _log = session(to_c if bound else None, 1179)

    async def main() -> None:
        sess.start()
        try:
            await until(lambda: pending(via_b) or pending(via_c), "a connection", timeout=10)
        finally:
            await sess.stop()

    try:
        with in_netns(a):
            asyncio.run(main())
        # Bound to the device towards c, the better route via b is not the socket's to use.
        assert pending(via_c) is bound
        assert pending(via_b) is not bound
    finally:
        via_b.close()
        via_c.close()


def test_missing_device_is_a_clear_connect_failure(topo) -> None:
    a, *_ = topo
    sess, log = session("nosuchdev0", 1179)

    async def main() -> None:
        sess.start()
        try:
            await until(lambda: bool(sess.last_error), "a connect failure", timeout=10)
        finally:
            await sess.stop()

    with in_netns(a):
        asyncio.run(main())
    assert sess.last_error == "connect failed: vrf device nosuchdev0: No such device"
    assert "connect failed" in log.events("warning")  # said once, then retried quietly


def test_inbound_connection_must_come_through_the_device(topo) -> None:
    """From c, one connection to a listener bound to the device (accepted, OPEN sent) and one to
    an unbound listener (refused: closed without a message). The listeners hand the connections
    straight to the session, as bgpd.listener does once it has matched the peer's address."""
    a, _b, c, _to_b, to_c = topo
    unbound = listening(a, "10.82.0.1", 1180)
    bound = listening(a, "10.82.0.1", 1181)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, to_c.encode())
    sess, log = session(to_c, 179, passive=True)
    clients: list[socket.socket] = []

    def connect(port: int) -> socket.socket:
        with in_netns(c):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(("10.82.0.1", port))
        clients.append(s)
        return s

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sess.start()
        servers = [
            await asyncio.start_server(lambda r, w: sess.accept(r, w), sock=lst) for lst in (unbound, bound)
        ]
        try:
            refused = await loop.run_in_executor(None, connect, 1180)
            assert await loop.run_in_executor(None, refused.recv, 100) == b""  # closed, nothing sent
            assert "inbound connection refused: not through the vrf's device" in log.events("warning")
            accepted = await loop.run_in_executor(None, connect, 1181)
            assert (await loop.run_in_executor(None, accepted.recv, 100)).startswith(MARKER)  # our OPEN
        finally:
            await sess.stop()
            for server in servers:
                server.close()
                await server.wait_closed()

    try:
        with in_netns(a):
            asyncio.run(main())
    finally:
        for s in clients:
            with contextlib.suppress(OSError):
                s.close()


# --- reload: a VRF's device changes --------------------------------------------------------


def _bird_peers_config(addr: str, peer: str, extra: str = "") -> str:
    return f"""
router id {addr.split("/")[0] if "/" in addr else addr};
log stderr all;
protocol device {{ scan time 2; }}
protocol bgp red {{
  local {PEER} as 65002;
  neighbor {peer} as 65001;
  multihop; passive on;
  hold time 9;
  ipv4 {{ import all; export none; }};
}}
{extra}
"""


def _bgpd_config(workdir: Path, device: str, blue_neighbor: str) -> str:
    return f"""
[router]
asn = 65001
router_id = "10.0.0.1"

[control]
socket = "{workdir}/bgpd.sock"

[kernel]
enabled = false

[vrf.red]
table = 500
device = "{device}"

[vrf.blue]
table = 501

[[neighbor]]
address = "{PEER}"
asn = 65002
vrf = "red"
hold_time = 9
connect_retry = 1
import = "all"
export = "none"

[[neighbor]]
address = "{blue_neighbor}"
asn = 65003
vrf = "blue"
source_address = "10.81.0.11"
hold_time = 9
connect_retry = 1
import = "all"
export = "none"
"""


def _neighbors(bgpd: Bgpd) -> dict[str, dict[str, Any]]:
    return {n["address"]: n for n in bgpd.cli_json("show", "neighbors")["neighbors"]}


def test_reload_rebinds_exactly_the_sessions_of_a_vrf_whose_device_changed(topo, tmp_path: Path) -> None:
    """VRF red's neighbour 10.99.0.9 is BIRD in c while red is bound to the veth towards c, and
    BIRD in b once a reload binds red to the veth towards b: the old session gets a Cease
    "other configuration change" (subcode 6), the new one comes up through the new device.
    VRF blue (no device, unchanged) keeps its session to b over the reload."""
    if shutil.which("bird") is None or shutil.which("birdc") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")
    a, b, c, to_b, to_c = topo
    # blue's session has an address of its own: BIRD tells its sessions apart by neighbour address.
    run("ip", "addr", "add", "10.81.0.11/24", "dev", to_b, ns=a)
    blue = """
protocol bgp blue {
  local 10.81.0.2 as 65003;
  neighbor 10.81.0.11 as 65001;
  passive on; hold time 9;
  ipv4 { import all; export none; };
}
"""
    bird_b = Bird(b, tmp_path / "b", "bird", config=_bird_peers_config("10.81.0.2", "10.81.0.1", blue))
    bird_c = Bird(c, tmp_path / "c", "bird", config=_bird_peers_config("10.82.0.2", "10.82.0.1"))
    wd = tmp_path / "a"
    wd.mkdir()
    bgpd = Bgpd(a, wd, "bgpd", config=_bgpd_config(wd, to_c, "10.81.0.2"))
    try:
        bird_b.start()
        bird_c.start()
        bgpd.start()
        wait_for("red up through c", lambda: bird_c.protocol_state("red") == "Established", 30)
        wait_for("blue up", lambda: _neighbors(bgpd)["10.81.0.2"]["state"] == "Established", 30)
        assert bird_b.protocol_state("red") != "Established"  # bound to the veth towards c
        wait_for("a second of blue uptime", lambda: _neighbors(bgpd)["10.81.0.2"]["uptime_s"] >= 2, 10)
        blue_before = _neighbors(bgpd)["10.81.0.2"]["uptime_s"]

        # A reload that changes nothing of red's keeps its session.
        bgpd.config_path.write_text(_bgpd_config(wd, to_c, "10.81.0.2") + "\n# touched\n")
        assert "0 restarted" in bgpd.cli("reload").stdout
        assert bird_c.protocol_state("red") == "Established"

        bgpd.config_path.write_text(_bgpd_config(wd, to_b, "10.81.0.2"))
        out = bgpd.cli("reload").stdout
        assert "1 restarted" in out, out
        wait_for("red up through b", lambda: bird_b.protocol_state("red") == "Established", 30)
        assert _neighbors(bgpd)[PEER]["state"] == "Established"
        assert bird_c.protocol_state("red") != "Established"
        assert "Received: Other configuration change" in bird_c.birdc("show", "protocols", "all", "red")
        assert "vrf device changed: its sessions restart" in bgpd.log_text()
        # blue was not touched: same session, its uptime ran on.
        blue_after = _neighbors(bgpd)["10.81.0.2"]
        assert blue_after["state"] == "Established"
        assert blue_after["uptime_s"] >= blue_before
        assert bird_b.protocol_state("blue") == "Established"
    finally:
        for p in (bgpd, bird_b, bird_c):
            p.stop()
