"""The systemd service: the unit verifies, and the daemon speaks sd_notify on a real NOTIFY_SOCKET."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.netns import Lab
from lab.peers import Bgpd
from tests.support.netns import need_root

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "bgpd.service"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    bgpd = Path(sys.executable).parent / "bgpd"
    if not bgpd.exists():
        pytest.skip("the bgpd console script is not installed in this environment")
    # The unit names the installed path; point it at this environment's script to verify it.
    unit = tmp_path / "bgpd.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/bgpd", str(bgpd)))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RuntimeDirectory=bgpd",
        "User=bgpd",
        "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ):
        assert line in text


def _recv_until(sock: socket.socket, want: str, timeout: float) -> list[str]:
    """Datagrams received until one contains ``want`` (all of them, in order)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if want in got[-1]:
            return got
    raise AssertionError(f"no {want!r} within {timeout}s; got {got!r}")


def test_notify_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    need_root()
    notify_path = tmp_path / "notify.sock"
    with Lab() as lab, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        ns = lab.ns("sd")
        config = f"""
[router]
asn = 65010
router_id = "10.0.0.1"
listen = ["127.0.0.1"]
port = 1179

[control]
socket = "{tmp_path}/bgpd.sock"

[vrf.red]
table = 500

[[network]]
prefix = "10.96.0.0/12"
vrf = "red"
"""
        bgpd = Bgpd(
            ns,
            tmp_path,
            "bgpd",
            config=config,
            extra_env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"},
        )
        bgpd.start(wait=False)
        try:
            got = _recv_until(notify, "READY=1", 20)
            # READY comes only once the control socket and the BGP listener are up.
            assert bgpd.socket.exists()
            listening = subprocess.run(
                ["ip", "netns", "exec", ns, "ss", "-ltnH", "sport", "= :1179"], capture_output=True, text=True
            ).stdout
            assert "127.0.0.1:1179" in listening
            assert "STATUS=" in got[-1]
            # The watchdog is fed from the event loop at half the interval.
            pings = _recv_until(notify, "WATCHDOG=1", 2)
            pings += _recv_until(notify, "WATCHDOG=1", 2)
            assert sum("WATCHDOG=1" in p for p in pings) >= 2
            bgpd.signal(signal.SIGTERM)
            _recv_until(notify, "STOPPING=1", 10)
            assert bgpd.proc is not None and bgpd.proc.wait(10) == 0
        finally:
            bgpd.stop()
