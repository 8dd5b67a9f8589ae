"""Netlink route-event counter for one kernel table: the benchmark's clock for "in the kernel".

Runs inside the daemon's namespace (bench/run starts it with ``ip netns exec``). It dumps the
table once, then follows RTM_NEWROUTE/RTM_DELROUTE notifications and keeps, per prefix of the
given table and protocol, the number of next hops. No whole-table polling: the cost is one
parse per route event. If the kernel drops notifications (ENOBUFS), it re-dumps the table
and says so in its replies (``resyncs``).

JSON lines on stdin, replies on stdout (times are ``time.monotonic()``):

    {"op": "wait", "name": "x", "routes": N, "multi": M, "empty": false}
        -> {"event": "reached", "name": "x", "t": .., ...}  as soon as at least N routes
           (and at least M of them with 2+ next hops; or, with "empty", no route) are present
    {"op": "status"}              -> {"event": "status", "routes": .., "multi": .., "resyncs": ..}
    {"op": "record", "on": true}  -> start keeping (t, "add"|"del", key hex) per event
    {"op": "dump", "file": F}     -> write the recorded events to F, reply {"event": "dumped"}
"""

from __future__ import annotations

import argparse
import errno
import json
import socket
import struct
import sys
import threading
import time
from typing import Any

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300
RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE = 0x40, 0x400
RTA_DST, RTA_GATEWAY, RTA_MULTIPATH, RTA_TABLE = 1, 5, 9, 15
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5

_NLH = struct.Struct("=IHHII")
_RTM = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")


class Monitor:
    def __init__(self, table: int, family: int, proto: int | None) -> None:
        self.table = table
        self.family = socket.AF_INET6 if family == 6 else socket.AF_INET
        self.proto = proto
        self.routes: dict[bytes, int] = {}  # NLRI-form key -> next hops
        self.multi = 0
        self.resyncs = 0
        self.lock = threading.Lock()
        self.waits: list[dict[str, Any]] = []
        self.recording = False
        self.events: list[tuple[float, str, str]] = []
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 << 20)
        groups = RTMGRP_IPV6_ROUTE if family == 6 else RTMGRP_IPV4_ROUTE
        self.sock.bind((0, groups))

    # --- parsing -------------------------------------------------------------------------

    def _apply(self, data: bytes, now: float) -> None:
        """Apply every route message in ``data`` to the state."""
        pos, end = 0, len(data)
        routes = self.routes
        while pos + 16 <= end:
            mlen, mtype, _flags, _seq, _pid = _NLH.unpack_from(data, pos)
            if mlen < 16:
                break
            nxt = pos + ((mlen + 3) & ~3)
            if mtype in (RTM_NEWROUTE, RTM_DELROUTE):
                fam, dst_len, _s, _tos, tbl, proto, _sc, rtype, _f = _RTM.unpack_from(data, pos + 16)
                if fam == self.family and rtype == 1 and (self.proto is None or proto == self.proto):
                    dst = b""
                    nh = 1
                    a = pos + 28
                    stop = pos + mlen
                    while a + 4 <= stop:
                        alen, atype = _RTA.unpack_from(data, a)
                        if alen < 4:
                            break
                        if atype == RTA_DST:
                            dst = data[a + 4 : a + alen]
                        elif atype == RTA_TABLE:
                            tbl = _U32.unpack_from(data, a + 4)[0]
                        elif atype == RTA_MULTIPATH:
                            nh, p = 0, a + 4
                            while p + 8 <= a + alen:
                                nh += 1
                                p += (data[p] | data[p + 1] << 8) + 3 & ~3 or 8
                        a += (alen + 3) & ~3
                    if tbl == self.table:
                        key = bytes((dst_len,)) + dst[: (dst_len + 7) >> 3]
                        old = routes.get(key, 0)
                        if mtype == RTM_NEWROUTE:
                            routes[key] = nh
                            self.multi += (nh >= 2) - (old >= 2)
                            op = "add"
                        else:
                            if old:
                                del routes[key]
                                self.multi -= old >= 2
                            op = "del"
                        if self.recording:
                            self.events.append((now, op, key.hex()))
            pos = nxt

    def resync(self) -> None:
        """Dump the table into fresh state (at start and after the kernel dropped events)."""
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        req = _NLH.pack(28, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + _RTM.pack(
            self.family, 0, 0, 0, 0, 0, 0, 0, 0
        )
        s.send(req)
        saved, self.recording = self.recording, False
        with self.lock:
            self.routes.clear()
            self.multi = 0
            done = False
            while not done:
                data = s.recv(1 << 20)
                pos = 0
                while pos + 16 <= len(data):
                    mlen, mtype = _NLH.unpack_from(data, pos)[:2]
                    if mtype in (NLMSG_DONE, NLMSG_ERROR):
                        done = True
                        break
                    pos += (mlen + 3) & ~3
                self._apply(data, time.monotonic())
        self.recording = saved
        s.close()

    # --- loops ---------------------------------------------------------------------------

    def run(self) -> None:
        self.resync()
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.resyncs += 1
                self.resync()
                self._check(time.monotonic())
                continue
            now = time.monotonic()
            with self.lock:
                self._apply(data, now)
                if self.waits:
                    self._check(now)

    def _check(self, now: float) -> None:
        n, m = len(self.routes), self.multi
        for w in list(self.waits):
            ok = n == 0 if w.get("empty") else n >= int(w.get("routes", 0)) and m >= int(w.get("multi", 0))
            if ok:
                self.waits.remove(w)
                emit({"event": "reached", "name": w.get("name"), "t": now, "routes": n, "multi": m,
                      "resyncs": self.resyncs})  # fmt: skip

    def commands(self) -> None:
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd["op"]
            with self.lock:
                if op == "wait":
                    self.waits.append(cmd)
                    self._check(time.monotonic())
                elif op == "status":
                    emit({"event": "status", "routes": len(self.routes), "multi": self.multi,
                          "resyncs": self.resyncs})  # fmt: skip
                elif op == "record":
                    self.recording = bool(cmd.get("on", True))
                    if self.recording:
                        self.events = []
                elif op == "dump":
                    with open(cmd["file"], "w") as f:
                        json.dump(self.events, f)
                    emit({"event": "dumped", "events": len(self.events)})


_out_lock = threading.Lock()


def emit(obj: dict[str, object]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", type=int, required=True)
    ap.add_argument("--family", type=int, choices=(4, 6), default=4)
    ap.add_argument("--proto", type=int, default=None, help="only routes of this rtm_protocol")
    args = ap.parse_args()
    mon = Monitor(args.table, args.family, args.proto)
    threading.Thread(target=mon.run, daemon=True).start()
    emit({"event": "started"})
    mon.commands()
    return 0


if __name__ == "__main__":
    sys.exit(main())
