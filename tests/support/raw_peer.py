"""A plain-socket BGP speaker in threads, for whole-daemon and session tests over real loopback TCP.

OPEN, then what it is given to send (in 64 KiB pieces), and a KEEPALIVE every ``every`` seconds
(behind its data in the stream once TCP pushes back, as a real speaker's); it reads everything
we send and counts the bytes.
"""

from __future__ import annotations

import socket
import threading

from bgpd.wire import MessageFramer, encode_keepalive, encode_open


class RawPeer:
    def __init__(
        self,
        port: int,
        *,
        source: str | None = None,
        asn: int = 65001,
        hold: int = 3,
        router_id: str = "10.0.0.1",
        every: float = 0.5,
        timeout: float = 30.0,
    ) -> None:
        bind = (source, 0) if source is not None else None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout, source_address=bind)
        self.asn = asn
        self.hold = hold
        self.router_id = router_id
        self.every = every  # read at each KEEPALIVE: a test may make the peer go silent
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.received = 0  # bytes from the daemon after the handshake (its KEEPALIVEs)
        self.sent_all = threading.Event()

    def start(self, data: bytes = b"") -> RawPeer:
        """The handshake (blocking: call it in an executor), then ``data`` and KEEPALIVEs in threads."""
        s = self.sock
        s.sendall(encode_open(self.asn, self.hold, self.router_id, [(1, 1)]))
        framer, seen = MessageFramer(), 0
        while seen < 2:  # its OPEN and KEEPALIVE
            chunk = s.recv(4096)
            assert chunk, "closed during OPEN"
            seen += len(framer.feed(chunk))
        s.sendall(encode_keepalive())
        for target in (self._drain, self._keepalives):
            threading.Thread(target=target, daemon=True).start()
        if data:
            threading.Thread(target=self._send, args=(data,), daemon=True).start()
        return self

    def send(self, data: bytes | memoryview) -> None:
        with self.lock:
            self.sock.sendall(data)

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for pos in range(0, len(data), 65536):
                self.send(view[pos : pos + 65536])
        except OSError:
            return
        self.sent_all.set()

    def _drain(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += len(chunk)
        except OSError:
            pass
        self.done.set()

    def _keepalives(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.send(encode_keepalive())
            except OSError:
                return

    def close(self) -> None:
        self.done.set()
        self.sock.close()
