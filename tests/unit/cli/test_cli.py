"""bgpd-cli end to end: a real ControlServer with a fake handler, served from a thread."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpd import cli
from bgpd.control import CommandError, ControlServer

ROOT = Path(__file__).resolve().parents[3]

ROUTES = {
    "routes": [
        {
            "vrf": "red",
            "table": 500,
            "prefix": "192.0.2.0/24",
            "paths": [
                {
                    "best": True,
                    "ecmp": True,
                    "peer": "172.16.1.140",
                    "next_hop": "172.16.1.140",
                    "as_path": [64512],
                    "origin": "igp",
                    "local_pref": 100,
                    "med": None,
                    "communities": [],
                    "large_communities": [],
                    "source": "ebgp",
                    "age_s": 12.5,
                }
            ],
        }
    ]
}
NEIGHBORS = {
    "neighbors": [
        {
            "address": "10.99.0.2",
            "asn": 65001,
            "vrf": "red",
            "state": "Established",
            "uptime_s": 61,
            "received": 3,
            "accepted": 2,
            "advertised": 1,
            "last_error": None,
        }
    ]
}


class FakeDaemon:
    """A ControlServer on its own event loop thread; answers come from ``answers`` by command."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[tuple[list[str], dict[str, Any]]] = []
        self.answers: dict[tuple[str, ...], dict[str, Any] | Exception] = {
            ("show", "routes"): ROUTES,
            ("show", "neighbors"): NEIGHBORS,
            ("show", "vrfs"): {
                "vrfs": [{"name": "main", "table": 254, "routes_ipv4": 1, "routes_ipv6": 0, "neighbors": 1}]
            },
            ("reload",): {"message": "configuration reloaded: 1 neighbor added"},
        }
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = ControlServer(path, self.handle)

    async def handle(self, command: list[str], args: dict[str, Any]) -> dict[str, Any]:
        self.requests.append((command, args))
        if command[0] == "neighbor":
            return {"message": f"neighbor {command[1]}: {command[2]} done"}
        answer = self.answers.get(tuple(command))
        if answer is None:
            raise CommandError(f"unknown command: {' '.join(command)}")
        if isinstance(answer, Exception):
            raise answer
        return answer

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "bgpd.sock")


@pytest.fixture
def daemon(sock_path: str) -> Iterator[FakeDaemon]:
    d = FakeDaemon(sock_path)
    d.start()
    yield d
    d.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- argument validation (no daemon needed: checked before asking) ---------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["show", "rotes"],
            "unknown command 'show rotes' (try: show routes, show neighbors, show vrfs, reload, "
            "neighbor ADDRESS reset|disable|enable|refresh)",
        ),
        (["shw", "routes"], "unknown command 'shw routes' (try: show routes"),
        (["reboot"], "unknown command 'reboot'"),
        (["show"], "show what? (try: show routes, show neighbors, show vrfs)"),
        ([], "no command given"),
        (["show", "routes", "10.0.0.300"], "'10.0.0.300' is not an address or prefix"),
        (["show", "routes", "10.0.0.1/8"], "'10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)"),
        (["show", "routes", "10.0.0.0/8", "10.1.0.0/16"], "takes one PREFIX"),
        (["show", "routes", "--vrf"], "--vrf needs a VRF name"),
        (["show", "routes", "--vfr", "red"], "unknown option '--vfr' for 'show routes' (options: --vrf NAME"),
        (["show", "routes", "--count", "10.0.0.0/8"], "'show routes --count' takes only --vrf NAME"),
        (["show", "routes", "--count", "--all"], "'show routes --count' takes only --vrf NAME"),
        (["show", "neighbors", "spoke-a"], "'spoke-a' is not an IP address"),
        (["show", "neighbors", "10.0.0.1", "10.0.0.2"], "takes at most one ADDRESS"),
        (["show", "vrfs", "red"], "'show vrfs' takes no arguments (got 'red')"),
        (["reload", "now"], "'reload' takes no arguments"),
        (["neighbor", "10.0.0.1"], "usage: neighbor ADDRESS reset|disable|enable|refresh"),
        (["neighbor", "10.0.0.1", "kill"], "unknown neighbor action 'kill'"),
        (["neighbor", "reset", "10.0.0.1"], "the address comes first: neighbor 10.0.0.1 reset"),
        (["neighbor", "10.0.0.256", "reset"], "'10.0.0.256' is not an IP address"),
        (["--sock", "/x", "show", "vrfs"], "unknown option '--sock'"),
        (["show", "vrfs", "--socket"], "--socket needs a value"),
        (["--timeout", "soon", "show", "vrfs"], "--timeout: 'soon' is not a number of seconds"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], sock_path: str, argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "--socket", sock_path, *argv)
    assert code == 2 and out == ""
    assert err.startswith("bgpd-cli: ") and err.count("\n") == 1
    assert message in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: bgpd-cli") and "neighbor ADDRESS reset|disable|enable|refresh" in out


# --- daemon not reachable ---------------------------------------------------------------------------


def test_daemon_not_running(capsys: pytest.CaptureFixture[str], sock_path: str) -> None:
    code, out, err = run(capsys, "--socket", sock_path, "show", "routes")
    assert code == 1 and out == ""
    assert err == f"bgpd-cli: cannot reach bgpd at {sock_path}: no such socket (is the daemon running?)\n"


def test_default_socket_path_in_the_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BGPD_SOCKET", raising=False)
    if os.path.exists(cli.DEFAULT_SOCKET):
        pytest.skip("a bgpd runs on this machine")
    code, _out, err = run(capsys, "show", "routes")
    assert code == 1
    assert (
        err == "bgpd-cli: cannot reach bgpd at /run/bgpd/bgpd.sock: no such socket (is the daemon running?)\n"
    )


def test_stale_socket_is_connection_refused(capsys: pytest.CaptureFixture[str], sock_path: str) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(sock_path)
    dead.close()
    code, _out, err = run(capsys, "--socket", sock_path, "show", "vrfs")
    assert code == 1 and "connection refused (is the daemon running?)" in err


def test_env_socket(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, daemon: FakeDaemon
) -> None:
    monkeypatch.setenv("BGPD_SOCKET", daemon.path)
    code, out, _err = run(capsys, "show", "vrfs")
    assert code == 0 and out.startswith("Name  Table")


def test_console_script_without_daemon_prints_no_traceback(sock_path: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bgpd.cli", "show", "neighbors"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "BGPD_SOCKET": sock_path},
        timeout=30,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr
        == f"bgpd-cli: cannot reach bgpd at {sock_path}: no such socket (is the daemon running?)\n"
    )


# --- talking to the daemon --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "command", "args"),
    [
        (["show", "routes"], ["show", "routes"], {"vrf": None, "all": False, "prefix": None, "count": False}),
        (
            ["show", "routes", "--vrf", "red", "--all", "2001:DB8::/32"],
            ["show", "routes"],
            {"vrf": "red", "all": True, "prefix": "2001:db8::/32", "count": False},
        ),
        (
            ["sh", "ro", "--vrf=red", "10.0.0.1"],
            ["show", "routes"],
            {"vrf": "red", "all": False, "prefix": "10.0.0.1", "count": False},
        ),
        (
            ["show", "routes", "--count", "--vrf", "red"],
            ["show", "routes"],
            {"vrf": "red", "all": False, "prefix": None, "count": True},
        ),
        (["show", "neighbors"], ["show", "neighbors"], {"address": None}),
        (["show", "protocols", "2001:db8:0::2"], ["show", "neighbors"], {"address": "2001:db8::2"}),
        (["show", "vrfs"], ["show", "vrfs"], {}),
        (["reload"], ["reload"], {}),
        (
            ["neighbor", "10.99.0.2", "disable"],
            ["neighbor", "10.99.0.2", "disable"],
            {"address": "10.99.0.2"},
        ),
    ],
)
def test_requests_sent(
    capsys: pytest.CaptureFixture[str],
    daemon: FakeDaemon,
    argv: list[str],
    command: list[str],
    args: dict[str, Any],
) -> None:
    if args.get("count"):
        daemon.answers["show", "routes"] = {"counts": []}
    code, _out, err = run(capsys, "--socket", daemon.path, *argv)
    assert code == 0, err
    assert daemon.requests == [(command, args)]


def test_show_routes_text(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon) -> None:
    code, out, err = run(capsys, "--socket", daemon.path, "show", "routes")
    assert code == 0 and err == ""
    assert out == (
        "Table red (kernel table 500):\n"
        "192.0.2.0/24         unicast [172.16.1.140 00:00:12] * (100) [AS64512i]\n"
        "\tvia 172.16.1.140\n"
    )


def test_show_routes_count_text(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon) -> None:
    daemon.answers["show", "routes"] = {"counts": [{"vrf": "main", "afi": "ipv4", "routes": 2, "paths": 3}]}
    code, out, _err = run(capsys, "--socket", daemon.path, "show", "routes", "--count")
    assert code == 0
    assert out == "VRF   AFI   Routes  Paths\nmain  ipv4       2      3\n"


def test_show_neighbors_text(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon) -> None:
    code, out, _err = run(capsys, "--socket", daemon.path, "show", "protocols")
    assert code == 0
    assert out.splitlines() == [
        "Address       AS  VRF  State  Since     Info",
        "10.99.0.2  65001  red  up     00:01:01  Established  rcvd/acc/adv 3/2/1",
    ]


def test_show_one_neighbor_in_detail(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon) -> None:
    code, out, _err = run(capsys, "--socket", daemon.path, "show", "neighbors", "10.99.0.2")
    assert code == 0
    assert "  Prefixes:           3 received, 2 accepted, 1 advertised" in out.splitlines()


def test_reload_and_neighbor_messages(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon) -> None:
    assert run(capsys, "--socket", daemon.path, "reload") == (
        0,
        "configuration reloaded: 1 neighbor added\n",
        "",
    )
    assert run(capsys, "--socket", daemon.path, "neighbor", "10.99.0.2", "reset") == (
        0,
        "neighbor 10.99.0.2: reset done\n",
        "",
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_passthrough(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon, where: str) -> None:
    argv = ["--json", "show", "routes"] if where == "before" else ["show", "routes", "--json"]
    code, out, _err = run(capsys, "--socket", daemon.path, *argv)
    assert code == 0
    assert out == json.dumps(ROUTES, indent=2) + "\n"
    assert json.loads(out) == ROUTES


def test_daemon_error_exits_1(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon) -> None:
    daemon.answers["show", "routes"] = CommandError("no vrf 'blue'")
    assert run(capsys, "--socket", daemon.path, "show", "routes", "--vrf", "blue") == (
        1,
        "",
        "bgpd-cli: no vrf 'blue'\n",
    )


def test_daemon_internal_error_exits_1(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon) -> None:
    daemon.answers["show", "vrfs"] = RuntimeError("bug")
    code, out, err = run(capsys, "--socket", daemon.path, "--json", "show", "vrfs")
    assert (code, out) == (1, "")
    assert err == "bgpd-cli: internal error in 'show vrfs': RuntimeError: bug (details in the daemon log)\n"


def test_unexpected_shape_falls_back_to_json(capsys: pytest.CaptureFixture[str], daemon: FakeDaemon) -> None:
    daemon.answers["show", "vrfs"] = {"vrfs": "not a list"}
    code, out, err = run(capsys, "--socket", daemon.path, "show", "vrfs")
    assert code == 0
    assert "cannot render the answer as text" in err
    assert json.loads(out) == {"vrfs": "not a list"}
