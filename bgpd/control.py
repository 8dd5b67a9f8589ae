"""The control socket shared by the daemon (asyncio server) and ``bgpd-cli`` (blocking client).

Newline-delimited JSON over a Unix stream socket; a connection may carry several requests, each
answered in turn::

    request   {"command": ["show", "routes"], "args": {"vrf": "red", "all": false, "prefix": null}}
    response  {"ok": true, "data": {...}}   or   {"ok": false, "error": "one line reason"}

The commands ``bgpd-cli`` sends (the daemon's handler gives them meaning; data shapes: INTERFACE.md):

    ["show", "routes"]     {"vrf": str | None, "all": bool, "prefix": str | None, "count": bool}
    ["show", "neighbors"]  {"address": str | None}
    ["show", "vrfs"]       {}
    ["reload"]             {}
    ["neighbor", ADDRESS, ACTION]  {"address": ADDRESS}   ACTION: reset | disable | enable | refresh

Addresses and prefixes arrive normalised (``str(ipaddress.ip_address(...))``), validated client-side.
A handler raises ``CommandError`` (or ``ValueError``) for an answer the operator should read (unknown
VRF, no such neighbor): its message becomes the error as is. Any other exception is logged with its
traceback and answered as an internal error; the server goes on either way.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

# The server's methods import asyncio themselves: bgpd-cli imports this module for the client,
# and asyncio would double its start-up time (~0.13 s of ~0.25 s on a busy 2-core machine).
if TYPE_CHECKING:
    import asyncio

__all__ = [
    "MAX_REQUEST",
    "CommandError",
    "ControlClientError",
    "ControlProtocolError",
    "ControlServer",
    "ControlSocketError",
    "ControlUnreachable",
    "Encoded",
    "request",
]

MAX_REQUEST = 64 * 1024  # bytes in one request line; requests are tiny, so more is a mistake or abuse
MAX_UNIX_PATH = 107  # sun_path is 108 bytes with the terminating NUL
SOCKET_MODE = 0o660


class Encoded:
    """A handler's answer already encoded: the JSON text of its ``data`` object. A big answer
    (a full table) is encoded in slices by the handler, so the loop is never held for long."""

    __slots__ = ("json",)

    def __init__(self, json: bytes) -> None:
        self.json = json


Handler = Callable[[list[str], dict[str, Any]], Awaitable[dict[str, Any] | Encoded]]


class CommandError(ValueError):
    """Raised by a handler: the message goes to the operator as the error (one line)."""


class ControlSocketError(Exception):
    """The control socket cannot be set up (in use by another daemon, bad path, unknown group)."""


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"


def _encode(obj: dict[str, Any]) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON and would break strict clients.
    return json.dumps(obj, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def _error(reason: str) -> bytes:
    return _encode({"ok": False, "error": _one_line(reason)})


def _parse_request(line: bytes) -> tuple[list[str], dict[str, Any]] | str:
    """The command and args of a request line, or the reason it is malformed."""
    try:
        req = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return "malformed request: not valid JSON"
    if not isinstance(req, dict):
        return "malformed request: expected a JSON object"
    command = req.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(w, str) for w in command):
        return 'malformed request: "command" must be a non-empty list of strings'
    args = req.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return 'malformed request: "args" must be an object'
    return command, args


class ControlServer:
    """Serves control requests on a Unix socket; one bad request or failing command never stops it."""

    def __init__(
        self,
        path: str,
        handler: Handler,
        group: str | None = None,
        log: Any = None,  # a structlog logger (event + key/values) or a stdlib logging.Logger
    ) -> None:
        self.path = path
        self._handler = handler
        self._group = group
        self._log = log if log is not None else logging.getLogger(__name__)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._inode: tuple[int, int] | None = None

    async def start(self) -> None:
        """Create the socket. Raises ControlSocketError (with a one-line reason) if it cannot."""
        import asyncio  # here, not at the top: see the imports

        path = self.path
        if len(os.fsencode(path)) > MAX_UNIX_PATH:
            raise ControlSocketError(f"{path}: longer than {MAX_UNIX_PATH} bytes, the limit of a Unix socket")
        gid = self._group_id()
        parent = os.path.dirname(path)
        if parent:
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise ControlSocketError(f"cannot create {parent}: {e.strerror or e}") from None
        await self._clear_stale(path)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=path, limit=MAX_REQUEST)
        except OSError as e:
            raise ControlSocketError(f"cannot listen on {path}: {e.strerror or e}") from None
        try:
            # Narrow the mode right away (bind used the umask); the group, if any, may then connect.
            os.chmod(path, SOCKET_MODE)
            if gid is not None:
                os.chown(path, -1, gid)
            st = os.stat(path)
        except OSError as e:
            await self.close()
            raise ControlSocketError(f"cannot set owner/mode of {path}: {e.strerror or e}") from None
        self._inode = (st.st_dev, st.st_ino)
        self._emit("info", "control socket listening", path=path)

    def _emit(self, level: str, event: str, **kv: Any) -> None:
        """Log through structlog (key/values kept) or stdlib logging (key/values folded into the text)."""
        method = getattr(self._log, level)
        if isinstance(self._log, logging.Logger | logging.LoggerAdapter):
            method(" ".join([event, *(f"{k}={v}" for k, v in kv.items())]))
        else:
            method(event, **kv)

    def _group_id(self) -> int | None:
        if self._group is None:
            return None
        try:
            return grp.getgrnam(self._group).gr_gid
        except KeyError:
            raise ControlSocketError(f"control.group: no such group '{self._group}'") from None

    async def _clear_stale(self, path: str) -> None:
        """Remove a socket file left by a dead daemon; refuse if a live one answers on it."""
        import asyncio  # here, not at the top: see the imports

        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(f"{path} exists and is not a socket; not touching it")
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 2.0)
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # nobody listens: stale
        except (TimeoutError, OSError) as e:
            reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
            raise ControlSocketError(f"{path} exists and cannot be checked: {reason}") from None
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            raise ControlSocketError(f"another bgpd is already answering on {path}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._emit("info", "removed a stale control socket", path=path)

    async def close(self) -> None:
        """Stop listening, drop open connections and remove the socket file (if it is still ours)."""
        import asyncio  # here, not at the top: see the imports

        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await server.wait_closed()
        # Only unlink our own socket: a newer daemon may have replaced the file meanwhile.
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        self._inode = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio  # here, not at the top: see the imports

        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                last = False
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as e:
                    # EOF: a final request without its newline is still answered.
                    if not e.partial.strip():
                        break
                    line, last = e.partial, True
                except asyncio.LimitOverrunError:
                    # The rest of the line cannot be told apart from a new request: answer and hang up.
                    writer.write(_error(f"request too long (limit {MAX_REQUEST // 1024} KiB)"))
                    await writer.drain()
                    break
                if line.strip():
                    writer.write(await self._respond(line))
                    await writer.drain()
                if last:
                    break
        except (ConnectionError, OSError):
            pass  # the client went away mid-answer: nothing to tell anyone
        except asyncio.CancelledError:
            pass  # close(): this connection ends with the server
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, line: bytes) -> bytes:
        parsed = _parse_request(line)
        if isinstance(parsed, str):
            self._emit("warning", "control request refused", reason=parsed)
            return _error(parsed)
        command, args = parsed
        name = " ".join(command)
        try:
            data = await self._handler(command, args)
            if isinstance(data, Encoded):
                return b'{"ok":true,"data":' + data.json + b"}\n"
        except ValueError as e:  # CommandError and the like: the operator's mistake, not ours
            self._emit("info", "control command refused", command=name, reason=str(e))
            return _error(str(e))
        except Exception as e:
            self._emit("exception", "control command failed", command=name)
            return _error(f"internal error in '{name}': {type(e).__name__}: {e} (details in the daemon log)")
        if not isinstance(data, dict):
            self._emit("error", "control command answered a non-dict", command=name, type=type(data).__name__)
            return _error(f"internal error in '{name}': bad answer (details in the daemon log)")
        try:
            return _encode({"ok": True, "data": data})
        except (TypeError, ValueError) as e:
            self._emit("error", "control answer not JSON-serialisable", command=name, reason=str(e))
            return _error(f"internal error in '{name}': answer not serialisable (details in the daemon log)")


# --- client (blocking: bgpd-cli needs nothing more) --------------------------------------------------


class ControlClientError(Exception):
    """The daemon could not be asked or its answer could not be read; str() is one line."""


class ControlUnreachable(ControlClientError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot reach bgpd at {path}: {reason}")


class ControlProtocolError(ControlClientError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"bad answer from bgpd at {path}: {reason}")


def _connect_reason(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "no such socket (is the daemon running?)"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused (is the daemon running?)"
    if isinstance(err, PermissionError):
        return "permission denied (is your user in the control socket's group?)"
    return err.strerror or str(err)


def request(path: str, command: list[str], args: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request and return the response object ({"ok": ..., "data"/"error": ...}).

    Raises ControlUnreachable when the daemon cannot be reached or does not answer in ``timeout``
    seconds, ControlProtocolError when the answer is not a valid response.
    """
    payload = _encode({"command": command, "args": args})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except TimeoutError:
            raise ControlUnreachable(path, f"no answer within {timeout:g} s") from None
        except OSError as e:
            raise ControlUnreachable(path, _connect_reason(e)) from None
        chunks: list[bytes] = []
        try:
            sock.sendall(payload)
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise ControlProtocolError(path, "the daemon closed the connection without answering")
                chunks.append(chunk)
                if b"\n" in chunk:
                    break
        except TimeoutError:
            raise ControlUnreachable(path, f"no answer within {timeout:g} s (is the daemon busy?)") from None
        except ConnectionError:
            raise ControlProtocolError(path, "the daemon closed the connection without answering") from None
        except OSError as e:
            raise ControlUnreachable(path, f"connection lost: {e.strerror or e}") from None
    line = b"".join(chunks).split(b"\n", 1)[0]
    try:
        resp = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ControlProtocolError(path, "not valid JSON") from None
    if not isinstance(resp, dict) or not isinstance(resp.get("ok"), bool):
        raise ControlProtocolError(path, 'expected an object with "ok"')
    if resp["ok"] and not isinstance(resp.get("data"), dict):
        raise ControlProtocolError(path, '"data" is missing or not an object')
    if not resp["ok"] and not isinstance(resp.get("error"), str):
        resp["error"] = "the daemon reported an error without a reason"
    return resp
