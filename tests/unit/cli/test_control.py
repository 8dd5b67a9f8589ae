"""The control socket over a real Unix socket: round trips, bad requests, failing handlers, stale files."""

from __future__ import annotations

import asyncio
import grp
import json
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from bgpd.control import (
    MAX_REQUEST,
    CommandError,
    ControlProtocolError,
    ControlServer,
    ControlSocketError,
    ControlUnreachable,
    request,
)

LOG = logging.getLogger("test.control")


async def echo(command: list[str], args: dict[str, Any]) -> dict[str, Any]:
    match command:
        case ["boom"]:
            raise RuntimeError("kaputt")
        case ["refuse"]:
            raise CommandError("no vrf 'blue'")
        case ["value"]:
            raise ValueError("no neighbor 10.0.0.9")
        case ["list"]:
            return [1, 2]  # type: ignore[return-value]
        case ["nan"]:
            return {"x": float("nan")}
        case ["object"]:
            return {"x": object()}
        case ["slow"]:
            await asyncio.sleep(args.get("s", 30))
    return {"command": command, "args": args}


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "c.sock")


@pytest.fixture
async def server(sock_path: str):
    srv = ControlServer(sock_path, echo, log=LOG)
    await srv.start()
    yield srv
    await srv.close()


async def ask(path: str, command: list[str], args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """The blocking client, run off the event loop that serves it."""
    return await asyncio.to_thread(request, path, command, args or {}, **kw)


async def raw_exchange(path: str, payload: bytes, answers: int) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)  # answers echo the request
    writer.write(payload)
    await writer.drain()
    out = [json.loads(await reader.readline()) for _ in range(answers)]
    writer.close()
    await writer.wait_closed()
    return out


# --- round trips ------------------------------------------------------------------------------------


async def test_round_trip(server: ControlServer, sock_path: str) -> None:
    args = {"vrf": "red", "all": False, "prefix": None, "count": False}
    resp = await ask(sock_path, ["show", "routes"], args)
    assert resp == {"ok": True, "data": {"command": ["show", "routes"], "args": args}}


async def test_socket_mode_is_0660(server: ControlServer, sock_path: str) -> None:
    st = os.stat(sock_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


async def test_several_requests_on_one_connection(server: ControlServer, sock_path: str) -> None:
    lines = b"".join(json.dumps({"command": ["n", str(i)], "args": {}}).encode() + b"\n" for i in range(3))
    answers = await raw_exchange(sock_path, lines, 3)
    assert [a["data"]["command"] for a in answers] == [["n", "0"], ["n", "1"], ["n", "2"]]


async def test_args_may_be_omitted(server: ControlServer, sock_path: str) -> None:
    [answer] = await raw_exchange(sock_path, b'{"command": ["reload"]}\n', 1)
    assert answer == {"ok": True, "data": {"command": ["reload"], "args": {}}}


async def test_last_request_without_newline_is_answered(server: ControlServer, sock_path: str) -> None:
    reader, writer = await asyncio.open_unix_connection(sock_path)
    writer.write(b'{"command": ["reload"], "args": {}}')
    writer.write_eof()
    answer = json.loads(await reader.readline())
    writer.close()
    assert answer["ok"] is True


# --- malformed requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"hello\n", "not valid JSON"),
        (b"\xff\xfe\n", "not valid JSON"),
        (b"[1, 2]\n", "expected a JSON object"),
        (b'{"args": {}}\n', '"command" must be a non-empty list of strings'),
        (b'{"command": []}\n', '"command" must be a non-empty list of strings'),
        (b'{"command": "show routes"}\n', '"command" must be a non-empty list of strings'),
        (b'{"command": ["show", 1]}\n', '"command" must be a non-empty list of strings'),
        (b'{"command": ["show"], "args": [1]}\n', '"args" must be an object'),
    ],
)
async def test_malformed_requests_get_an_error_and_the_connection_goes_on(
    server: ControlServer, sock_path: str, line: bytes, reason: str
) -> None:
    good = b'{"command": ["ping"], "args": {}}\n'
    bad, after = await raw_exchange(sock_path, line + good, 2)
    assert bad["ok"] is False and reason in bad["error"]
    assert after["ok"] is True


async def test_too_long_request(server: ControlServer, sock_path: str) -> None:
    huge = b'{"command": ["x"], "args": {"pad": "' + b"a" * (MAX_REQUEST + 10) + b'"}}\n'
    reader, writer = await asyncio.open_unix_connection(sock_path)
    writer.write(huge)
    await writer.drain()
    answer = json.loads(await reader.readline())
    assert answer == {"ok": False, "error": "request too long (limit 64 KiB)"}
    assert await reader.read() == b""  # hung up: the rest of that line cannot be resynchronised
    writer.close()
    # ... and the server is still there for everyone else.
    assert (await ask(sock_path, ["ping"]))["ok"] is True


async def test_request_just_under_the_limit(server: ControlServer, sock_path: str) -> None:
    head = b'{"command": ["x"], "args": {"pad": "'
    tail = b'"}}\n'
    line = head + b"a" * (MAX_REQUEST - len(head) - len(tail)) + tail
    assert len(line) == MAX_REQUEST
    [answer] = await raw_exchange(sock_path, line, 1)
    assert answer["ok"] is True


# --- handler failures -------------------------------------------------------------------------------


async def test_handler_exception_is_an_error_and_logged(
    server: ControlServer, sock_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="test.control"):
        resp = await ask(sock_path, ["boom"])
    assert resp["ok"] is False
    assert resp["error"] == "internal error in 'boom': RuntimeError: kaputt (details in the daemon log)"
    [record] = [r for r in caplog.records if r.name == "test.control"]
    assert "control command failed command=boom" in record.getMessage() and record.exc_info is not None
    assert (await ask(sock_path, ["ping"]))["ok"] is True


@pytest.mark.parametrize(
    ("command", "error"), [("refuse", "no vrf 'blue'"), ("value", "no neighbor 10.0.0.9")]
)
async def test_operator_errors_pass_through_verbatim(
    server: ControlServer, sock_path: str, command: str, error: str
) -> None:
    assert await ask(sock_path, [command]) == {"ok": False, "error": error}


@pytest.mark.parametrize("command", ["list", "nan", "object"])
async def test_bad_answers_become_errors(server: ControlServer, sock_path: str, command: str) -> None:
    resp = await ask(sock_path, [command])
    assert resp["ok"] is False and resp["error"].startswith(f"internal error in '{command}'")
    assert (await ask(sock_path, ["ping"]))["ok"] is True


async def test_error_messages_are_one_line(sock_path: str) -> None:
    async def multiline(command: list[str], args: dict[str, Any]) -> dict[str, Any]:
        raise CommandError("first\nsecond")

    srv = ControlServer(sock_path, multiline)
    await srv.start()
    try:
        assert (await ask(sock_path, ["x"]))["error"] == "first second"
    finally:
        await srv.close()


# --- socket file life cycle -------------------------------------------------------------------------


async def test_close_removes_the_socket(sock_path: str) -> None:
    srv = ControlServer(sock_path, echo)
    await srv.start()
    assert os.path.exists(sock_path)
    await srv.close()
    assert not os.path.exists(sock_path)
    await srv.close()  # twice is harmless


async def test_close_leaves_a_replaced_socket_alone(sock_path: str) -> None:
    srv = ControlServer(sock_path, echo)
    await srv.start()
    os.unlink(sock_path)
    other = socket.socket(socket.AF_UNIX)
    other.bind(sock_path)  # another daemon's socket now
    try:
        await srv.close()
        assert os.path.exists(sock_path)
    finally:
        other.close()


async def test_stale_socket_file_is_replaced(sock_path: str) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(sock_path)
    dead.close()  # a crashed daemon leaves the file behind
    srv = ControlServer(sock_path, echo)
    await srv.start()
    try:
        assert (await ask(sock_path, ["ping"]))["ok"] is True
    finally:
        await srv.close()


async def test_refuses_when_another_daemon_answers(server: ControlServer, sock_path: str) -> None:
    second = ControlServer(sock_path, echo)
    with pytest.raises(ControlSocketError, match="another bgpd is already answering"):
        await second.start()
    assert (await ask(sock_path, ["ping"]))["ok"] is True  # the first one is untouched


async def test_refuses_to_replace_a_regular_file(sock_path: str) -> None:
    Path(sock_path).write_text("precious")
    with pytest.raises(ControlSocketError, match="exists and is not a socket"):
        await ControlServer(sock_path, echo).start()
    assert Path(sock_path).read_text() == "precious"


async def test_creates_the_parent_directory(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "bgpd" / "s.sock")
    srv = ControlServer(path, echo)
    await srv.start()
    try:
        assert (await ask(path, ["ping"]))["ok"] is True
    finally:
        await srv.close()


async def test_group_ownership(sock_path: str) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    srv = ControlServer(sock_path, echo, group=group)
    await srv.start()
    try:
        assert os.stat(sock_path).st_gid == os.getgid()
    finally:
        await srv.close()


async def test_unknown_group(sock_path: str) -> None:
    with pytest.raises(ControlSocketError, match="no such group 'no-such-group-x'"):
        await ControlServer(sock_path, echo, group="no-such-group-x").start()
    assert not os.path.exists(sock_path)


async def test_path_too_long(tmp_path: Path) -> None:
    with pytest.raises(ControlSocketError, match="limit of a Unix socket"):
        await ControlServer("/tmp/" + "x" * 120, echo).start()


async def test_close_with_a_command_in_flight(sock_path: str) -> None:
    srv = ControlServer(sock_path, echo)
    await srv.start()
    reader, writer = await asyncio.open_unix_connection(sock_path)
    writer.write(b'{"command": ["slow"], "args": {"s": 30}}\n')
    await writer.drain()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(srv.close(), 2)
    assert await reader.read() == b""
    writer.close()


# --- client errors ----------------------------------------------------------------------------------


def test_client_no_socket(sock_path: str) -> None:
    with pytest.raises(ControlUnreachable) as info:
        request(sock_path, ["show", "vrfs"], {})
    assert str(info.value) == f"cannot reach bgpd at {sock_path}: no such socket (is the daemon running?)"


def test_client_connection_refused(sock_path: str) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(sock_path)
    dead.close()
    with pytest.raises(ControlUnreachable, match="connection refused"):
        request(sock_path, ["show", "vrfs"], {})


async def test_client_timeout(server: ControlServer, sock_path: str) -> None:
    with pytest.raises(ControlUnreachable, match=r"no answer within 0.2 s"):
        await ask(sock_path, ["slow"], {"s": 5}, timeout=0.2)


async def test_client_rejects_garbage_answers(sock_path: str) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"this is not json\n")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_unix_server(garbage, path=sock_path)
    try:
        with pytest.raises(ControlProtocolError, match="not valid JSON"):
            await ask(sock_path, ["x"])
    finally:
        srv.close()


async def test_client_server_hangs_up(sock_path: str) -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    srv = await asyncio.start_unix_server(rude, path=sock_path)
    try:
        with pytest.raises(ControlProtocolError, match="closed the connection without answering"):
            await ask(sock_path, ["x"])
    finally:
        srv.close()
