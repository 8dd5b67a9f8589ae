"""Route feed: a fast injector that plays an eBGP peer and sends a synthetic table.

The table (N unique prefixes, about N/10 distinct attribute sets with AS paths of length 3-7
and some communities) is encoded with our own codec (bgpd.wire.UpdateEncoder) into full
UPDATEs *before* the session comes up, so the feed is never the bottleneck: sending is a
series of ``sendall`` calls on pre-built chunks that end at message boundaries.

Run by bench/run inside the injector's namespace, one process per peer, and driven by JSON
lines on stdin (commands) and stdout (replies, every one with ``time.monotonic()`` stamps,
which are comparable across processes of the machine):

    {"op": "announce"}            -> {"event": "announced", "t0": .., "t1": ..}  (table + End-of-RIB)
    {"op": "withdraw"}            -> {"event": "withdrawn", "t0": .., "t1": ..}  (every prefix)
    {"op": "churn", "rate": 1000, "seconds": 60, "log": FILE}
                                  -> {"event": "churned", "changes": .., "t0": .., "t1": ..}
    {"op": "quit"}

Standalone: ``python bench/feed.py --selftest --prefixes 1000000`` measures building the
stream and pushing it through a local socket pair to a reader that discards it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bgpd.wire import MessageFramer, MsgType, UpdateEncoder, encode_keepalive, encode_open
from lab.injector import chunks
from rib.attrs import PathAttrs
from rib.prefix import Afi, PrefixKey

# Rough shape of the real tables: IPv4 mostly /24, some /16-/23; IPv6 mostly /48, some /32-/44.
PLEN4 = {24: 850, 23: 50, 22: 50, 21: 20, 20: 15, 19: 8, 18: 4, 17: 2, 16: 1}
PLEN6 = {48: 800, 44: 60, 40: 50, 36: 30, 32: 60}
CHUNK = 256 * 1024  # bytes per sendall: a keepalive can slip in between chunks


@dataclass(slots=True)
class Table:
    afi: Afi
    groups: list[tuple[PathAttrs, list[PrefixKey]]]

    @property
    def n(self) -> int:
        return sum(len(k) for _a, k in self.groups)


def make_prefixes(afi: Afi, n: int, rng: random.Random) -> list[PrefixKey]:
    """``n`` unique, non-overlapping prefixes, allocated upwards from 11.0.0.0 (IPv4) or 2400::
    (IPv6), each aligned to its own size; 127/8 is skipped and nothing reaches 224/8."""
    weights = PLEN4 if afi is Afi.IPV4 else PLEN6
    width = 32 if afi is Afi.IPV4 else 128
    plens = rng.choices(list(weights), list(weights.values()), k=n)
    cursor = 11 << 24 if afi is Afi.IPV4 else 0x2400 << 112
    limit = 224 << 24 if afi is Afi.IPV4 else 0x3000 << 112
    nbytes = width // 8
    keys: list[PrefixKey] = []
    append = keys.append
    for plen in plens:
        size = 1 << (width - plen)
        cursor = (cursor + size - 1) & ~(size - 1)
        if afi is Afi.IPV4 and cursor >> 24 == 127:
            cursor = 128 << 24
        append(bytes((plen,)) + cursor.to_bytes(nbytes, "big")[: (plen + 7) >> 3])
        cursor += size
    if cursor > limit:
        raise ValueError(f"{n} prefixes do not fit in the synthetic address range")
    return keys


def make_table(afi: Afi, n: int, peer_asn: int, next_hop: str, seed: int = 1) -> Table:
    """The same ``seed`` gives the same prefixes and AS paths (two peers for ECMP differ only
    in ``next_hop``)."""
    rng = random.Random(seed)
    keys = make_prefixes(afi, n, rng)
    nh = ipaddress.ip_address(next_hop)
    groups: list[tuple[PathAttrs, list[PrefixKey]]] = []
    pos = 0
    i = 0
    while pos < n:
        size = rng.randint(1, 19)  # mean 10: about n/10 distinct attribute sets
        length = rng.randint(3, 7)
        path = (peer_asn, *(rng.randrange(1, 400_000) for _ in range(length - 2)), 4_100_000_000 + i)
        comms = tuple(
            sorted(
                {
                    (peer_asn & 0xFFFF) << 16 | rng.randrange(1, 1000)
                    for _ in range(rng.choice((0, 0, 1, 2, 3)))
                }
            )
        )
        attrs = PathAttrs(
            origin=rng.choice((0, 0, 0, 2)),
            as_path=((2, path),),
            next_hop=nh,
            med=rng.choice((None, None, 0, 100)),
            communities=comms,
        )
        groups.append((attrs, keys[pos : pos + size]))
        pos += size
        i += 1
    return Table(afi, groups)


def encode_table(table: Table) -> tuple[list[bytes], list[bytes]]:
    """(announce chunks incl. End-of-RIB, withdraw chunks)."""
    enc = UpdateEncoder(four_octet=True)
    msgs = [m for attrs, keys in table.groups for m in enc.announce(table.afi, attrs, keys)]
    msgs.append(enc.end_of_rib(table.afi))
    all_keys = [k for _a, keys in table.groups for k in keys]
    return chunks(msgs, CHUNK), chunks(enc.withdraw(table.afi, all_keys), CHUNK)


@dataclass
class Session:
    """One BGP session, already past OPEN; thread-safe sending, a reader thread that drains."""

    sock: socket.socket
    hold_time: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: threading.Event = field(default_factory=threading.Event)
    error: str = ""

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def send_chunks(self, chunks: list[bytes]) -> None:
        for c in chunks:
            self.send(c)

    def start_threads(self) -> None:
        threading.Thread(target=self._reader, daemon=True).start()
        threading.Thread(target=self._keepalives, daemon=True).start()

    def _reader(self) -> None:
        framer = MessageFramer()
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    self.error = self.error or "peer closed the connection"
                    break
                for mtype, body in framer.feed(data):
                    if mtype == MsgType.NOTIFICATION:
                        self.error = f"NOTIFICATION {body[:2].hex()} {body[2:].hex()}"
                    elif mtype == MsgType.KEEPALIVE:
                        pass  # our own keepalives run on their timer; the peer only needs those
        except OSError as e:
            self.error = self.error or str(e)
        self.closed.set()
        emit({"event": "closed", "error": self.error})

    def _keepalives(self) -> None:
        ka = encode_keepalive()
        interval = max(1.0, self.hold_time / 3) if self.hold_time else 30.0
        while not self.closed.wait(interval):
            try:
                self.send(ka)
            except OSError:
                return


def read_message(
    sock: socket.socket, framer: MessageFramer, pending: list[tuple[int, bytes]]
) -> tuple[int, bytes]:
    while not pending:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("peer closed during OPEN")
        pending.extend(framer.feed(data))
    return pending.pop(0)


def establish(sock: socket.socket, asn: int, router_id: str, afi: Afi, hold_time: int) -> Session:
    framer = MessageFramer()
    pending: list[tuple[int, bytes]] = []
    mtype, body = read_message(sock, framer, pending)
    if mtype != MsgType.OPEN:
        raise ConnectionError(f"expected OPEN, got type {mtype}")
    their_hold = struct.unpack_from(">H", body, 3)[0]
    sock.sendall(encode_open(asn, hold_time, router_id, [(int(afi), 1)]) + encode_keepalive())
    while True:
        mtype, body = read_message(sock, framer, pending)
        if mtype == MsgType.KEEPALIVE:
            break
        if mtype == MsgType.NOTIFICATION:
            raise ConnectionError(f"NOTIFICATION {body[:2].hex()} during OPEN")
    hold = min(hold_time, their_hold)
    return Session(sock, hold)


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def churn(sess: Session, table: Table, rate: int, seconds: float, log: str, seed: int) -> dict[str, object]:
    """``rate`` prefix changes per second for ``seconds``: withdraw a prefix, re-announce it
    about a second later (half of the changes each way in steady state); every prefix is back
    at the end. Logs ``[t_sent, "del"|"add", key hex]`` per change."""
    rng = random.Random(seed)
    attrs_of = {k: a for a, keys in table.groups for k in keys}
    pool = rng.sample(list(attrs_of), min(len(attrs_of), rate * 4))
    enc = UpdateEncoder(four_octet=True)
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    down: deque[tuple[float, PrefixKey]] = deque()
    up_cycle = 0
    records: list[tuple[float, str, str]] = []
    t0 = time.monotonic()
    next_t = t0
    while True:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        if now < next_t:
            time.sleep(next_t - now)
        next_t += tick
        adds: list[PrefixKey] = []
        dels: list[PrefixKey] = []
        for _ in range(per_tick):
            if down and now - down[0][0] >= 1.0:
                adds.append(down.popleft()[1])
            else:
                k = pool[up_cycle % len(pool)]
                up_cycle += 1
                dels.append(k)
                down.append((now, k))
        msgs = enc.withdraw(table.afi, dels) if dels else []
        for k in adds:
            msgs.extend(enc.announce(table.afi, attrs_of[k], [k]))
        ts = time.monotonic()
        sess.send(b"".join(msgs))
        records.extend((ts, "del", k.hex()) for k in dels)
        records.extend((ts, "add", k.hex()) for k in adds)
    # Put every prefix back so that the table is whole again, after the same second down (a
    # re-announce right behind its withdraw may be coalesced by the daemon: no kernel change).
    if down:
        time.sleep(max(0.0, down[-1][0] + 1.0 - time.monotonic()))
    rest = [k for _t, k in down]
    msgs = [m for k in rest for m in enc.announce(table.afi, attrs_of[k], [k])]
    ts = time.monotonic()
    if msgs:
        sess.send(b"".join(msgs))
    records.extend((ts, "add", k.hex()) for k in rest)
    Path(log).write_text(json.dumps(records))
    return {"event": "churned", "changes": len(records), "t0": t0, "t1": time.monotonic()}


def serve(args: argparse.Namespace) -> int:
    afi = Afi.IPV6 if args.afi == "ipv6" else Afi.IPV4
    tb = time.monotonic()
    table = make_table(afi, args.prefixes, args.asn, args.next_hop, args.seed)
    announce, withdraw = encode_table(table)
    emit(
        {
            "event": "ready",
            "build_s": time.monotonic() - tb,
            "prefixes": table.n,
            "attr_sets": len(table.groups),
            "bytes": sum(map(len, announce)),
        }
    )
    fam = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.listen, args.port))
    srv.listen(1)
    conn, peer = srv.accept()
    srv.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sess = establish(conn, args.asn, args.router_id, afi, args.hold_time)
    sess.start_threads()
    emit({"event": "established", "peer": peer[0], "t": time.monotonic()})
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "announce":
                t0 = time.monotonic()
                sess.send_chunks(announce)
                emit({"event": "announced", "t0": t0, "t1": time.monotonic()})
            elif op == "withdraw":
                t0 = time.monotonic()
                sess.send_chunks(withdraw)
                emit({"event": "withdrawn", "t0": t0, "t1": time.monotonic()})
            elif op == "churn":
                emit(churn(sess, table, int(cmd["rate"]), float(cmd["seconds"]), cmd["log"], args.seed + 7))
            elif op == "quit":
                break
        except OSError as e:
            emit({"event": "error", "op": op, "error": str(e)})
    conn.close()
    return 0


def selftest(args: argparse.Namespace) -> int:
    """Build the stream, then push it through a socket pair to a reader that discards it."""
    afi = Afi.IPV6 if args.afi == "ipv6" else Afi.IPV4
    nh = args.next_hop if afi is Afi.IPV4 or ":" in args.next_hop else "2001:db8::1"
    t0 = time.perf_counter()
    table = make_table(afi, args.prefixes, args.asn, nh, args.seed)
    t1 = time.perf_counter()
    announce, _withdraw = encode_table(table)
    t2 = time.perf_counter()
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)

    def drain() -> None:
        while b.recv(1 << 20):
            pass

    reader = threading.Thread(target=drain)
    reader.start()
    t3 = time.perf_counter()
    for c in announce:
        a.sendall(c)
    a.close()
    reader.join()  # until the reader has every byte
    t4 = time.perf_counter()
    size = sum(map(len, announce))
    print(
        f"{table.n:,} {afi.name_lower} prefixes, {len(table.groups):,} attribute sets, "
        f"{size / 1e6:.1f} MB in {len(announce)} chunks\n"
        f"  generate table   {t1 - t0:6.3f} s\n"
        f"  encode UPDATEs   {t2 - t1:6.3f} s\n"
        f"  push to a socket {t4 - t3:6.3f} s  ({table.n / (t4 - t3):,.0f} prefixes/s)"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=100_000)
    ap.add_argument("--afi", choices=("ipv4", "ipv6"), default="ipv4")
    ap.add_argument("--asn", type=int, default=4_200_000_001, help="our ASN (4-octet by default)")
    ap.add_argument("--router-id", default="10.255.255.1")
    ap.add_argument("--next-hop", default="10.0.1.2")
    ap.add_argument("--listen", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=179)
    ap.add_argument("--hold-time", type=int, default=180)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    return selftest(args) if args.selftest else serve(args)


if __name__ == "__main__":
    sys.exit(main())
