"""The TCP listener: accepts BGP connections and hands them to the configured peer's session.

One asyncio server per listen address. Sockets are made here rather than by asyncio so that
``::`` is explicitly IPv6-only (it then coexists with ``0.0.0.0`` on the same port) and so that
TCP MD5 keys can be installed on them before the first SYN arrives. A connection from an
address that is not a configured, enabled neighbor is closed at once and never reaches a FSM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from structlog.typing import FilteringBoundLogger

from bgpd import sockopts

if TYPE_CHECKING:
    from bgpd.session import PeerSession


class ListenerError(Exception):
    """A listen address could not be bound (the message says which and why)."""


def normalise_peer(host: str) -> str:
    """The peer's address as a neighbor key: IPv4-mapped IPv6 unwrapped, zone index dropped."""
    return str(sockopts.normalise_address(host))


class Listener:
    def __init__(
        self,
        addresses: list[str],
        port: int,
        lookup: Callable[[str], PeerSession | None],
        log: FilteringBoundLogger,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        self.addresses = addresses
        self.port = port
        self.lookup = lookup
        self._log = log
        self._passwords = dict(passwords or {})  # peer address -> TCP MD5 key
        self._servers: list[asyncio.Server] = []

    @property
    def bound(self) -> list[tuple[str, int]]:
        """(address, port) actually listened on (port 0 in the config picks a free one)."""
        out: list[tuple[str, int]] = []
        for server in self._servers:
            for sock in server.sockets:
                name = sock.getsockname()
                out.append((name[0], name[1]))
        return out

    async def start(self) -> None:
        for address in self.addresses:
            try:
                sock = self._make_socket(address)
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                self._log.error("cannot listen", address=address, port=self.port, error=reason)
                await self.close()
                raise ListenerError(f"cannot listen on [{address}]:{self.port}: {reason}") from exc
            server = await asyncio.start_server(self._accepted, sock=sock)
            self._servers.append(server)
            self._log.info("listening", address=address, port=sock.getsockname()[1])

    def set_passwords(self, passwords: Mapping[str, str]) -> None:
        """Install new, changed and removed TCP MD5 keys on the live listening sockets (reload)."""
        new = dict(passwords)
        for peer in set(self._passwords) | set(new):
            if self._passwords.get(peer) == new.get(peer):
                continue
            version = ipaddress.ip_address(peer.split("%", 1)[0]).version
            for server in self._servers:
                for sock in server.sockets:
                    if (sock.family == socket.AF_INET6) == (version == 6):
                        try:
                            sockopts.set_md5(sock, peer, new.get(peer))
                        except OSError as exc:
                            self._log.error("cannot set TCP MD5 key", peer=peer, error=str(exc))
        self._passwords = new

    async def close(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    def _make_socket(self, address: str) -> socket.socket:
        addr = ipaddress.ip_address(address)
        family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for peer, password in self._passwords.items():
                if ipaddress.ip_address(peer.split("%", 1)[0]).version == addr.version:
                    sockopts.set_md5(sock, peer, password)
            sock.bind((address, self.port))
            sock.listen(64)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        try:
            peer = normalise_peer(peername[0])
        except (TypeError, ValueError, IndexError):
            writer.close()
            return
        session = self.lookup(peer)
        if session is None:
            self._log.warning("connection from unknown peer refused", peer=peer)
            writer.close()
            return
        if not session.accepting:
            self._log.warning("connection from disabled peer refused", peer=peer)
            writer.close()
            return
        session.accept(reader, writer)
