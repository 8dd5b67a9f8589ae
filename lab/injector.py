"""Many BGP speakers in one process, each sending its own table: the load tests' traffic source.

    python -m lab.injector --to 10.70.0.1 --peers 50 --prefixes 10000 --hold 9 \
        [--stall-hold 6] [--go FILE] [--faults 1=reset,2=garbage,3=stall]

Peer ``i`` binds 10.70.1.(i+1), speaks AS 65100+i and announces 10 distinct /32s per UPDATE
(``11.0.0.0`` + i * prefixes onwards, 10 per attribute set, like a real table), then
End-of-RIB. Tables are encoded once (``bgpd.wire.UpdateEncoder``) and kept for reconnects.

The first connections wait for each other (a barrier) so every table flows at once: the
worst burst for the receiver. A session that ends (reset, hold timer, NOTIFICATION) is
reconnected after a second and its table sent again, as a real speaker would, unless its
peer has played its fault. Faults wait for ``--go`` to exist: ``reset`` sends half an UPDATE
and a TCP RST, ``garbage`` a broken header, ``stall`` stops the KEEPALIVEs and leaves the
connection open (so the receiver's hold timer, ``--stall-hold`` s, must end it).

The table goes out in chunks of whole messages with the send lock released in between, so a
KEEPALIVE is never stuck behind a slow receiver's window. Output lines (stdout) say what each
peer did, with a monotonic timestamp.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from bgpd.wire import MessageFramer, encode_keepalive, encode_open
from bgpd.wire.update import UpdateEncoder
from rib.attrs import PathAttrs
from rib.prefix import Afi

CHUNK = 16 * 1024  # bytes of the table sent under the lock at once
RECONNECT_AFTER = 1.0


def peer_address(i: int) -> str:
    return f"10.70.1.{i + 1}"


def table(i: int, n_prefixes: int) -> list[bytes]:
    """Peer ``i``'s UPDATEs (and End-of-RIB): n_prefixes /32s, 10 per attribute set."""
    enc = UpdateEncoder(four_octet=True)
    nh = ipaddress.ip_address(peer_address(i))
    base = (11 << 24) + i * n_prefixes
    msgs: list[bytes] = []
    for g in range(0, n_prefixes, 10):
        attrs = PathAttrs(origin=0, as_path=((2, (65100 + i, 64512 + g % 1000)),), next_hop=nh)
        keys = [bytes([32]) + (base + j).to_bytes(4, "big") for j in range(g, min(g + 10, n_prefixes))]
        msgs += enc.announce(Afi.IPV4, attrs, keys)
    msgs.append(enc.end_of_rib(Afi.IPV4))
    return msgs


def chunks(msgs: list[bytes], size: int = CHUNK) -> list[bytes]:
    """The messages joined into pieces of about ``size`` bytes, cut between messages."""
    out: list[bytes] = []
    cur: list[bytes] = []
    n = 0
    for m in msgs:
        cur.append(m)
        n += len(m)
        if n >= size:
            out.append(b"".join(cur))
            cur, n = [], 0
    if cur:
        out.append(b"".join(cur))
    return out


def say(text: str) -> None:
    print(f"{time.monotonic():.3f} {text}", flush=True)


@dataclass
class Peer:
    i: int
    us: str
    hold: int
    fault: str
    go: str
    first_up: threading.Barrier
    msgs: list[bytes] = field(default_factory=list)
    faulted: bool = False

    def run(self) -> None:
        pieces = chunks(self.msgs)
        first = True
        while True:
            s = self._connect()
            conn = self._open(s)
            if conn is None:
                time.sleep(RECONNECT_AFTER)
                continue
            alive, lock, quiet = conn
            if first:
                first = False
                with contextlib.suppress(threading.BrokenBarrierError):
                    self.first_up.wait(120)  # every session is up before the tables flow
            try:
                for piece in pieces:
                    with lock:
                        s.sendall(piece)
                say(f"peer {self.i}: table sent ({len(self.msgs)} messages)")
                if self.fault and not self.faulted:
                    while not os.path.exists(self.go) and not alive.is_set():
                        time.sleep(0.1)
                    if not alive.is_set():
                        self._play_fault(s, lock, quiet)
            except OSError as exc:
                say(f"peer {self.i}: send failed: {exc}")
            alive.wait()
            s.close()
            if self.faulted:
                return  # a faulty peer stays down: only its own session may suffer
            say(f"peer {self.i}: session lost, reconnecting")
            time.sleep(RECONNECT_AFTER)

    def _connect(self) -> socket.socket:
        while True:
            s = socket.socket()
            s.bind((peer_address(self.i), 0))
            try:
                s.connect((self.us, 179))
                return s
            except OSError:
                s.close()
                time.sleep(0.5)

    def _open(self, s: socket.socket) -> tuple[threading.Event, threading.Lock, threading.Event] | None:
        """OPEN, wait for the receiver's OPEN and KEEPALIVE, then keep the session alive."""
        src = peer_address(self.i)
        try:
            s.sendall(encode_open(65100 + self.i, self.hold, src, [(1, 1)]))
            framer = MessageFramer()
            seen: list[tuple[int, bytes]] = []
            while len(seen) < 2:
                data = s.recv(4096)
                if not data:
                    say(f"peer {self.i}: closed during OPEN")
                    s.close()
                    return None
                seen += list(framer.feed(data))
            s.sendall(encode_keepalive())
        except OSError as exc:
            say(f"peer {self.i}: OPEN failed: {exc}")
            s.close()
            return None
        alive = threading.Event()  # set when the connection ends
        lock = threading.Lock()
        quiet = threading.Event()  # set: no more KEEPALIVEs (the stall fault)

        def reader() -> None:
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
            alive.set()

        def keepalives() -> None:
            while not alive.wait(max(1.0, self.hold / 3)):
                if quiet.is_set():
                    continue
                try:
                    with lock:
                        s.sendall(encode_keepalive())
                except OSError:
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=keepalives, daemon=True).start()
        say(f"peer {self.i}: established")
        return alive, lock, quiet

    def _play_fault(self, s: socket.socket, lock: threading.Lock, quiet: threading.Event) -> None:
        self.faulted = True
        if self.fault == "reset":
            with lock:
                s.sendall(self.msgs[0][: len(self.msgs[0]) // 2])  # half an UPDATE, then a TCP reset
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
        elif self.fault == "garbage":
            with lock:
                s.sendall(b"\x00" * 16 + b"\x00\x13\x04")  # a broken marker
        elif self.fault == "stall":
            quiet.set()  # no KEEPALIVE any more, connection left open
        say(f"peer {self.i}: fault {self.fault} done")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--to", required=True, help="the receiver's address (port 179)")
    ap.add_argument("--peers", type=int, required=True)
    ap.add_argument("--prefixes", type=int, required=True)
    ap.add_argument("--hold", type=int, default=90)
    ap.add_argument("--stall-hold", type=int, default=6, help="hold time the stalling peer offers")
    ap.add_argument("--go", default="", help="faults are played once this file exists")
    ap.add_argument("--faults", default="", help="peer=fault,... (reset, garbage, stall)")
    args = ap.parse_args(argv)
    faults = {int(k): v for k, v in (kv.split("=") for kv in args.faults.split(",") if kv)}
    first_up = threading.Barrier(args.peers)
    peers = [
        Peer(
            i,
            args.to,
            args.stall_hold if faults.get(i) == "stall" else args.hold,
            faults.get(i, ""),
            args.go,
            first_up,
        )
        for i in range(args.peers)
    ]
    t0 = time.monotonic()
    for p in peers:
        p.msgs = table(p.i, args.prefixes)
    say(f"tables encoded in {time.monotonic() - t0:.1f}s")
    threads = [threading.Thread(target=p.run, daemon=True) for p in peers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
