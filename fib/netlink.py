"""Kernel routes over a raw rtnetlink socket, in bulk.

A full table is about a million routes, so the write path avoids per-route syscalls and
objects: RTM_NEWROUTE / RTM_DELROUTE messages are struct-packed straight into one buffer
and sent a few hundred KiB at a time. rtnetlink handles every message of a send in the
sender's context, so when ``send`` returns all acknowledgements are queued on our socket;
each carries the request's sequence number, which is how a failure is pinned to its prefix.
They are read with recvmmsg (hundreds per syscall), and while one batch is in the kernel the
next is encoded on another thread (``send`` does not hold the GIL).

Routes carry our protocol number (``proto 186``): dumps are filtered on it and deletes
match on it, so other daemons' and static routes are never deleted. (A create-or-replace
does take over a route of the same prefix and metric, as in any routing daemon.) Tables
above 255 go in RTA_TABLE (``rtm_table`` is one octet), which is also read back on dumps.

Not thread-safe: one thread (the FIB writer) uses an instance at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_mod
import ipaddress
import os
import queue
import select
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any, TypeVar

import structlog

from fib.model import (
    EV_ADDR,
    EV_LINK,
    EV_OVERRUN,
    EV_ROUTE_DEL,
    EV_ROUTE_NEW,
    OP_REPLACE,
    FibBackend,
    FibError,
    FibOps,
    KernelEvent,
    NextHops,
    RuleSpec,
    op_name,
)
from rib.prefix import Afi, IPAddress, PrefixKey, make_key

log = structlog.get_logger()

# linux/netlink.h
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_DUMP = 0x300
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # in an NLMSG_ERROR: the request's payload is not echoed back
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

# linux/rtnetlink.h
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_MULTIPATH = 9
RTA_TABLE = 15
RTA_VIA = 18
RTN_UNICAST = 1
RTM_F_FIB_MATCH = 0x2000
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_NOWHERE = 255

NEW_FLAGS = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
DEL_FLAGS = NLM_F_REQUEST | NLM_F_ACK

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_ATTR = struct.Struct("=HH")
_RTNH = struct.Struct("=HBBi")  # rtnexthop: len, flags, hops, ifindex
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_U16 = struct.Struct("=H")
_ACK = struct.Struct("=IHHIIi")  # nlmsghdr + nlmsgerr.error

_FAMILY = {Afi.IPV4: socket.AF_INET, Afi.IPV6: socket.AF_INET6}
# nlmsghdr + rtmsg + RTA_TABLE + RTA_DST with the full-width address ("4s" pads the key's octets).
_HEAD = {afi: struct.Struct(f"=IHHIIBBBBBBBBIHHIHH{afi.addr_len}s") for afi in Afi}

# Fast path of IPv4 dumps: rtmsg, RTA_TABLE, RTA_DST first (as the kernel writes them); each
# attribute header (u16 length, u16 type) is read as one u32 and compared to _TL_TABLE / _TL_DST4.
_FAST4 = struct.Struct("=BBBBBBBBI" + "II" + "I4s")
_FAST4_END = 16 + _FAST4.size
_TL_TABLE = int.from_bytes(_ATTR.pack(8, RTA_TABLE), sys.byteorder)
_TL_DST4 = int.from_bytes(_ATTR.pack(8, RTA_DST), sys.byteorder)
_PLEN = [bytes((n,)) for n in range(129)]

_ACK_COST = 1280  # receive-buffer bytes one queued acknowledgement may take (skb overhead included)
_RESENDS = 12  # halving the batch each time: from 60,000 ops down to a few
_ACK_WAIT = 2.0  # seconds to wait for acknowledgements that are not queued yet (normally none)
_GONE = (errno_mod.ESRCH, errno_mod.ENOENT)


def _attr(atype: int, body: bytes) -> bytes:
    n = 4 + len(body)
    return _ATTR.pack(n, atype) + body + bytes(-n & 3)


def _ifindex(gw: IPAddress) -> int:
    """The interface a scoped (link-local) gateway names: ``fe80::1%eth0`` or ``fe80::1%7``."""
    scope = getattr(gw, "scope_id", None)
    if not scope:
        return 0
    return int(scope) if scope.isdigit() else socket.if_nametoindex(scope)


def _gateway_attr(afi: Afi, gw: IPAddress) -> bytes:
    if gw.version == (4 if afi is Afi.IPV4 else 6):
        return _attr(RTA_GATEWAY, gw.packed)
    # A gateway of the other family (IPv4 over an IPv6 next hop, RFC 8950) needs RTA_VIA.
    family = socket.AF_INET if gw.version == 4 else socket.AF_INET6
    return _attr(RTA_VIA, _U16.pack(family) + gw.packed)


def encode_nexthops(afi: Afi, nexthops: NextHops) -> bytes:
    """The route attributes that carry the gateways (RTA_GATEWAY, or RTA_MULTIPATH for ECMP)."""
    hops = tuple(dict.fromkeys(nexthops))  # IPv6 refuses duplicate ECMP members outright
    if len(hops) == 1:
        gw = hops[0]
        out = _gateway_attr(afi, gw)
        index = _ifindex(gw)
        return out + _attr(RTA_OIF, _I32.pack(index)) if index else out
    body = bytearray()
    for gw in hops:
        gw_attr = _gateway_attr(afi, gw)
        body += _RTNH.pack(8 + len(gw_attr), 0, 0, _ifindex(gw)) + gw_attr  # hops = weight - 1 = 0
    return _attr(RTA_MULTIPATH, bytes(body))


class _NextHopCache:
    """Encoded gateway attributes per next-hop set: BGP has few distinct sets, routes share them."""

    __slots__ = ("_afi", "_by_id", "_by_value")

    def __init__(self, afi: Afi) -> None:
        self._afi = afi
        self._by_id: dict[tuple[int, ...], tuple[NextHops, bytes]] = {}
        self._by_value: dict[NextHops, bytes] = {}

    def get(self, nexthops: NextHops) -> bytes:
        # Keyed first by the gateways' identities: hashing ipaddress objects runs Python code,
        # and the RIB shares address objects. The entry holds the objects, so ids cannot be reused.
        ids = tuple(map(id, nexthops))
        hit = self._by_id.get(ids)
        if hit is not None:
            return hit[1]
        blob = self._by_value.get(nexthops)
        if blob is None:
            if len(self._by_value) >= 65536:
                self._by_value.clear()
            blob = self._by_value[nexthops] = encode_nexthops(self._afi, nexthops)
        if len(self._by_id) >= 4096:
            self._by_id.clear()
        self._by_id[ids] = (nexthops, blob)
        return blob


class _Gateways:
    """Decodes gateway octets to (shared) address objects; link-local ones get their interface."""

    __slots__ = ("_cache", "_names", "by_attrs")

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, int], IPAddress] = {}
        self._names: dict[int, str] = {}
        # Decoded next hops by (route type, the attribute bytes after RTA_DST): see _decode_route.
        self.by_attrs: dict[tuple[int, bytes], NextHops] = {}

    def get(self, packed: bytes, ifindex: int) -> IPAddress:
        scoped = len(packed) == 16 and packed[0] == 0xFE and packed[1] & 0xC0 == 0x80 and ifindex
        key = (packed, ifindex if scoped else 0)
        addr = self._cache.get(key)
        if addr is None:
            if len(packed) == 4:
                addr = ipaddress.IPv4Address(packed)
            elif scoped:
                addr = ipaddress.IPv6Address(f"{ipaddress.IPv6Address(packed)}%{self._name(ifindex)}")
            else:
                addr = ipaddress.IPv6Address(packed)
            self._cache[key] = addr
        return addr

    def _name(self, ifindex: int) -> str:
        name = self._names.get(ifindex)
        if name is None:
            try:
                name = socket.if_indextoname(ifindex)
            except OSError:
                name = str(ifindex)
            self._names[ifindex] = name
        return name


def _gateway_at(buf: bytes | bytearray, start: int, end: int, atype: int) -> bytes:
    if atype == RTA_VIA:
        start += 2  # struct rtvia: u16 family, then the address
    return bytes(buf[start:end])


def parse_route(
    buf: bytes | bytearray, pos: int, end: int, gateways: _Gateways
) -> tuple[int, int, int, int, PrefixKey, NextHops] | None:
    """Decode one RTM_NEWROUTE at ``buf[pos:end]``: (family, table, protocol, type, prefix, gateways).

    None for source-specific routes, which are never ours.
    """
    family, dst_len, src_len, _tos, table, protocol, _scope, rtype, _flags = _RTMSG.unpack_from(buf, pos + 16)
    if src_len:
        return None
    dst = b""
    oif = 0
    gws: list[tuple[bytes, int]] = []
    at = pos + 28
    while at + 4 <= end:
        alen, atype = _ATTR.unpack_from(buf, at)
        if alen < 4:
            break
        atype &= 0x3FFF  # drop NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if atype == RTA_TABLE:
            table = _U32.unpack_from(buf, at + 4)[0]
        elif atype == RTA_DST:
            dst = bytes(buf[at + 4 : at + alen])
        elif atype in (RTA_GATEWAY, RTA_VIA):
            gws.append((_gateway_at(buf, at + 4, at + alen, atype), -1))
        elif atype == RTA_OIF:
            oif = _I32.unpack_from(buf, at + 4)[0]
        elif atype == RTA_MULTIPATH:
            nh = at + 4
            while nh + 8 <= at + alen:
                nh_len, _nh_flags, _hops, nh_index = _RTNH.unpack_from(buf, nh)
                if nh_len < 8:
                    break
                sub = nh + 8
                while sub + 4 <= nh + nh_len:
                    slen, stype = _ATTR.unpack_from(buf, sub)
                    if slen < 4:
                        break
                    if stype in (RTA_GATEWAY, RTA_VIA):
                        gws.append((_gateway_at(buf, sub + 4, sub + slen, stype), nh_index))
                    sub += (slen + 3) & ~3
                nh += (nh_len + 3) & ~3
        at += (alen + 3) & ~3
    nexthops = (
        tuple(gateways.get(g, oif if index < 0 else index) for g, index in gws)
        if rtype == RTN_UNICAST
        else ()
    )
    return family, table, protocol, rtype, make_key(dst_len, dst), nexthops


def _decode_route(
    buf: bytes | bytearray, pos: int, end: int, gateways: _Gateways
) -> tuple[int, PrefixKey, NextHops] | None:
    """(table, prefix, gateways) of a dumped route; None if source-specific."""
    if end - pos > _FAST4_END and buf[pos + 16] == socket.AF_INET:
        # A full table is mostly routes that differ only in their destination: the attributes after
        # RTA_DST (gateways, device, metric) repeat byte for byte, so they are decoded once and the
        # next-hop tuple is shared. The kernel clears host bits, so the key is a slice of RTA_DST.
        _fam, plen, src_len, _tos, _t8, _proto, _scope, rtype, _fl, tl_t, table, tl_d, dst = (
            _FAST4.unpack_from(buf, pos + 16)
        )
        if tl_t == _TL_TABLE and tl_d == _TL_DST4 and not src_len:
            rest = bytes(buf[pos + _FAST4_END : end])
            nexthops = gateways.by_attrs.get((rtype, rest))
            if nexthops is None:
                parsed = parse_route(buf, pos, end, gateways)
                if parsed is None:
                    return None
                nexthops = parsed[5]
                if len(gateways.by_attrs) < 4096:
                    gateways.by_attrs[(rtype, rest)] = nexthops
            return table, _PLEN[plen] + dst[: (plen + 7) >> 3], nexthops
    parsed = parse_route(buf, pos, end, gateways)
    return None if parsed is None else (parsed[1], parsed[4], parsed[5])


def _error_reason(buf: bytearray, pos: int, mlen: int, mflags: int, err: int) -> str:
    """The kernel's extended-ack text for an NLMSG_ERROR, else the errno text."""
    at = pos + 20
    if at + 16 <= pos + mlen:
        inner_len = _U32.unpack_from(buf, at)[0]
        at += 16 if mflags & NLM_F_CAPPED else max(16, (inner_len + 3) & ~3)
        while at + 4 <= pos + mlen:
            alen, atype = _ATTR.unpack_from(buf, at)
            if alen < 4:
                break
            if atype == NLMSGERR_ATTR_MSG:
                text = bytes(buf[at + 4 : at + alen]).split(b"\0", 1)[0].decode(errors="replace")
                if text:
                    return text
            at += (alen + 3) & ~3
    return os.strerror(err)


class _MultiRecv:
    """recvmmsg(2) through ctypes: a batch's acknowledgements (one datagram each) in few syscalls.

    Reading a million acks one ``recv`` at a time costs more than the kernel's route updates.
    Datagram ``i`` lands at ``data[i * SLOT:]``.
    """

    VLEN = 512
    SLOT = 1024  # an ack is 36 bytes; an error with the kernel's text well under this

    def __init__(self, fd: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.recvmmsg
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        fn.restype = ctypes.c_int
        self._fn = fn
        self._fd = fd
        self.data = bytearray(self.VLEN * self.SLOT)
        self._hsize = ctypes.sizeof(_MMsgHdr)
        self._hdrs = bytearray(self.VLEN * self._hsize)
        self._len_at = _MMsgHdr.msg_len.offset
        self._iovs = (_IoVec * self.VLEN)()
        # The ctypes views keep both bytearrays exported (pinned) for the object's lifetime.
        self._data_view = (ctypes.c_char * len(self.data)).from_buffer(self.data)
        self._hdr_view = (_MMsgHdr * self.VLEN).from_buffer(self._hdrs)
        data_at = ctypes.addressof(self._data_view)
        iov_at = ctypes.addressof(self._iovs)
        for i in range(self.VLEN):
            self._iovs[i].iov_base = data_at + i * self.SLOT
            self._iovs[i].iov_len = self.SLOT
            self._hdr_view[i].msg_hdr.msg_iov = ctypes.cast(
                iov_at + i * ctypes.sizeof(_IoVec), ctypes.POINTER(_IoVec)
            )
            self._hdr_view[i].msg_hdr.msg_iovlen = 1
        self._hdrs_at = ctypes.addressof(self._hdr_view)
        self._hdr_u32 = memoryview(self._hdrs).cast("I")
        self._u32 = memoryview(self.data).cast("I")
        self._i32 = memoryview(self.data).cast("i")
        self._u16 = memoryview(self.data).cast("H")

    def recv(self, flags: int) -> int:
        """Datagrams received (at least one); raises OSError (BlockingIOError when none are queued)."""
        n: int = self._fn(self._fd, self._hdrs_at, self.VLEN, flags, None)
        if n < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return n

    def columns(self, m: int) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
        """For datagrams ``0..m-1``, as lists built in C: datagram length and the first message's
        nlmsg_len, nlmsg_type, nlmsg_seq and (for an NLMSG_ERROR) error."""
        w = self.SLOT // 4
        return (
            self._hdr_u32[self._len_at // 4 :: self._hsize // 4][:m].tolist(),
            self._u32[0::w][:m].tolist(),
            self._u16[2 :: 2 * w][:m].tolist(),
            self._u32[2::w][:m].tolist(),
            self._i32[4::w][:m].tolist(),
        )


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _spread(ops: list[_T]) -> list[_T]:
    """Interleave the prefixes (stride 7) instead of walking them in order.

    Deleting neighbouring prefixes one after another is the LC-trie's worst case (each removal
    shrinks the same node again): in sorted order IPv4 deletes cost the kernel ~5x more.
    """
    if len(ops) < 64:
        return ops
    return list(chain.from_iterable([ops[start::_STRIDE] for start in range(_STRIDE)]))


_STRIDE = 7
_T = TypeVar("_T")

_Batch = tuple[int, bytes, list[PrefixKey]]  # first sequence number, the messages, their prefixes


class NetlinkFib(FibBackend):
    """Writes our routes into kernel tables. ``batch`` is the most bytes sent per ``send``.

    ``apply`` takes each prefix at most once per call: it may reorder the ops. It works on a
    prefix -> next hops mapping and lists of prefixes, never a tuple per route: at a million
    routes, allocating that many container objects costs more in the cyclic GC than the encoding.
    """

    def __init__(self, protocol: int = 186, batch: int = 256 * 1024, rcvbuf: int = 32 << 20) -> None:
        if not 0 < protocol < 256:
            raise ValueError(f"route protocol must be 1..255, not {protocol}")
        self.protocol = protocol
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            sock.bind((0, 0))
            # Root may exceed net.core.{r,w}mem_max: a batch's acknowledgements must all fit.
            _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, max(2 * batch, 1 << 20))
            _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
            sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            rcv = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            # Acks without the request echoed (small), with the kernel's error text: best effort.
            for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                _try_setsockopt(sock, opt)
            # Kernel-side dump filtering by table and protocol (4.20+); we filter again anyway.
            _try_setsockopt(sock, NETLINK_GET_STRICT_CHK)
            self._mrecv: _MultiRecv | None
            try:
                self._mrecv = _MultiRecv(sock.fileno())
            except (OSError, AttributeError):  # no recvmmsg in this libc: one recv per ack
                self._mrecv = None
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._batch = max(4096, min(batch, sndbuf - 1024))  # netlink refuses a send > sndbuf - 32
        self._max_ops = max(64, min(60_000, rcv // _ACK_COST))
        self._buf = bytearray(1 << 20)
        self._seq = 1
        self._nh_cache = {afi: _NextHopCache(afi) for afi in Afi}
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    # --- writes ------------------------------------------------------------------------------

    def apply(self, table: int, afi: Afi, ops: FibOps) -> list[FibError]:
        errors: list[FibError] = []
        wanted: Mapping[PrefixKey, NextHops] = ops if isinstance(ops, Mapping) else dict(ops)
        # Prefixes and next hops as two lists in the same (spread) order: the encoder walks them
        # in step, where a lookup per route in a big dict would miss the CPU caches each time.
        todo = _spread(list(wanted))
        hops = _spread(list(wanted.values())) if len(todo) == len(wanted) else [wanted[p] for p in todo]
        for _attempt in range(_RESENDS + 1):
            lost = self._exchange(table, afi, wanted, todo, hops, errors)
            if not lost:
                return errors
            # Acks are only lost when our receive buffer overflows: use smaller batches from now
            # on and resend the unacknowledged ops (all idempotent).
            self._max_ops = max(1, self._max_ops // 2)
            log.warning(
                "netlink acknowledgements lost, resending in smaller batches",
                table=table,
                afi=afi.name_lower,
                ops=len(lost),
                batch_ops=self._max_ops,
            )
            todo = lost
            hops = [wanted[p] for p in lost]
        reason = "acknowledgement lost (netlink receive buffer overrun)"
        errors.extend(FibError(table, afi, p, op_name(wanted[p]), errno_mod.ENOBUFS, reason) for p in todo)
        return errors

    def _exchange(
        self,
        table: int,
        afi: Afi,
        wanted: Mapping[PrefixKey, NextHops],
        ops: list[PrefixKey],
        hops: list[NextHops],
        errors: list[FibError],
    ) -> list[PrefixKey]:
        """Send ``ops`` in batches and read every acknowledgement; return the ops never acknowledged.

        With more than one batch, a helper thread sends and reads acks while this one encodes the
        next batch: ``send`` runs the kernel's route updates without the GIL, so on a multi-core
        machine the Python encoding and the kernel work overlap instead of adding up.
        """
        lost: list[PrefixKey] = []
        batches = self._batches(table, afi, ops, hops, errors)
        first = next(batches, None)
        second = next(batches, None) if first is not None else None
        if second is None:
            if first is not None:
                self._send_batch(table, afi, wanted, first, errors, lost)
            return lost
        work: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        failure: list[BaseException] = []

        def sender() -> None:
            while (batch := work.get()) is not None:
                if failure:
                    continue  # keep draining so the producer never blocks
                try:
                    self._send_batch(table, afi, wanted, batch, errors, lost)
                except BaseException as exc:
                    failure.append(exc)

        thread = threading.Thread(target=sender, name="fib-netlink-send", daemon=True)
        thread.start()
        try:
            work.put(first)
            work.put(second)
            for batch in batches:
                if failure:
                    break
                work.put(batch)
        finally:
            work.put(None)
            thread.join()
        if failure:
            raise failure[0]
        return lost

    def _batches(
        self,
        table: int,
        afi: Afi,
        ops: list[PrefixKey],
        hops: list[NextHops],
        errors: list[FibError],
    ) -> Iterator[_Batch]:
        """Encode ``ops`` into sends of at most ``batch`` bytes / ``max_ops`` messages."""
        # This loop runs once per route of a full table: locals only, one pack per message.
        pack = _HEAD[afi].pack
        hsize = _HEAD[afi].size
        family, table8, alen4 = _FAMILY[afi], (table if table < 256 else 0), 4 + afi.addr_len
        protocol = self.protocol
        nh_cache = self._nh_cache[afi]
        last_nh: NextHops = ()
        last_attrs = b""
        n = len(ops)
        i = 0
        while i < n:
            if self._seq > 0xFFFF0000:  # keep a batch's sequence numbers from wrapping
                self._seq = 1
            base = seq = self._seq
            parts: list[bytes] = []
            skipped: list[PrefixKey] = []
            first = i
            size = 0
            stop = min(n, i + self._max_ops)
            while i < stop and size < self._batch:
                prefix = ops[i]
                nexthops = hops[i]
                i += 1
                if nexthops:
                    # Consecutive routes mostly share a next-hop set; != is C-fast when the gateways
                    # are the same objects (ipaddress's own __eq__ is Python).
                    if nexthops is not last_nh and nexthops != last_nh:
                        try:
                            last_attrs = nh_cache.get(nexthops)
                        except (OSError, ValueError) as exc:  # e.g. an unknown interface in fe80::1%eth9
                            errno = getattr(exc, "errno", None) or errno_mod.EINVAL
                            errors.append(
                                FibError(table, afi, prefix, OP_REPLACE, errno, f"bad next hop: {exc}")
                            )
                            skipped.append(prefix)
                            continue
                        last_nh = nexthops
                    msg_len = hsize + len(last_attrs)
                    parts.append(pack(
                        msg_len, RTM_NEWROUTE, NEW_FLAGS, seq, 0,
                        family, prefix[0], 0, 0, table8, protocol, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0,
                        8, RTA_TABLE, table, alen4, RTA_DST, prefix[1:],
                    ))  # fmt: skip
                    parts.append(last_attrs)
                else:
                    msg_len = hsize
                    parts.append(pack(
                        msg_len, RTM_DELROUTE, DEL_FLAGS, seq, 0,
                        family, prefix[0], 0, 0, table8, protocol, RT_SCOPE_NOWHERE, 0, 0,
                        8, RTA_TABLE, table, alen4, RTA_DST, prefix[1:],
                    ))  # fmt: skip
                size += msg_len
                seq += 1
            self._seq = seq
            sent = ops[first:i]  # the prefixes of this send, in sequence-number order
            if skipped:
                gone = set(skipped)
                sent = [p for p in sent if p not in gone]
            if sent:
                yield base, b"".join(parts), sent

    def _send_batch(
        self,
        table: int,
        afi: Afi,
        wanted: Mapping[PrefixKey, NextHops],
        batch: _Batch,
        errors: list[FibError],
        lost: list[PrefixKey],
    ) -> None:
        base, data, sent = batch
        try:
            self._sock.sendto(data, (0, 0))
        except OSError as exc:
            errno = exc.errno or errno_mod.EIO
            errors.extend(
                FibError(table, afi, p, op_name(wanted[p]), errno, f"netlink send: {os.strerror(errno)}")
                for p in sent
            )
            return
        acked = self._read_acks(table, afi, wanted, base, sent, errors)
        if acked is not None:
            lost.extend(p for k, p in enumerate(sent) if not acked[k])

    def _read_acks(
        self,
        table: int,
        afi: Afi,
        wanted: Mapping[PrefixKey, NextHops],
        base: int,
        sent: list[PrefixKey],
        errors: list[FibError],
    ) -> bytearray | None:
        """Match acknowledgements to ``sent`` by sequence number. None when all were acknowledged."""
        count = len(sent)
        acked = bytearray(count)
        remaining = count
        overrun = False
        mrecv = self._mrecv
        while remaining:
            try:
                if mrecv is None:
                    nbytes = self._sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT)
                    remaining -= self._take_acks(
                        self._buf, 0, nbytes, base, acked, wanted, sent, table, afi, errors
                    )
                    continue
                m = mrecv.recv(socket.MSG_DONTWAIT)
            except BlockingIOError:
                # Normally unreachable: every ack is queued before send returns. After an
                # overrun the missing ones are gone for good; otherwise give the kernel a moment.
                if overrun or not self._poll.poll(_ACK_WAIT * 1000):
                    return acked
                continue
            except OSError as exc:
                if exc.errno == errno_mod.ENOBUFS:  # overrun: some acks were dropped
                    overrun = True
                    continue
                raise
            lengths, mlens, types, seqs, errs = mrecv.columns(m)
            k0 = (seqs[0] - base) & 0xFFFFFFFF
            if (
                k0 + m <= count
                and lengths == mlens
                and types.count(NLMSG_ERROR) == m
                and seqs == list(range(seqs[0], seqs[0] + m))
                and acked.find(1, k0, k0 + m) < 0
            ):
                # The usual case, checked in C: m single-message acks for consecutive requests.
                acked[k0 : k0 + m] = b"\x01" * m
                remaining -= m
                if any(errs):
                    for d, err in enumerate(errs):
                        if err:
                            prefix = sent[k0 + d]
                            self._ack_error(
                                mrecv.data,
                                d * mrecv.SLOT,
                                lengths[d],
                                prefix,
                                wanted[prefix],
                                table,
                                afi,
                                errors,
                            )
            else:
                for d in range(m):
                    pos = d * mrecv.SLOT
                    remaining -= self._take_acks(
                        mrecv.data,
                        pos,
                        pos + min(lengths[d], mrecv.SLOT),
                        base,
                        acked,
                        wanted,
                        sent,
                        table,
                        afi,
                        errors,
                    )
        return None

    def _take_acks(
        self,
        buf: bytearray,
        pos: int,
        end: int,
        base: int,
        acked: bytearray,
        wanted: Mapping[PrefixKey, NextHops],
        sent: list[PrefixKey],
        table: int,
        afi: Afi,
        errors: list[FibError],
    ) -> int:
        """Account for the acks in one datagram ``buf[pos:end]``; return how many were new."""
        new = 0
        count = len(sent)
        while pos + 20 <= end:
            mlen, mtype, _flags, mseq, _pid, err = _ACK.unpack_from(buf, pos)
            if mlen < 16:
                break
            if mtype == NLMSG_ERROR:
                k = (mseq - base) & 0xFFFFFFFF
                if k < count and not acked[k]:
                    acked[k] = 1
                    new += 1
                    if err:
                        prefix = sent[k]
                        self._ack_error(
                            buf, pos, min(mlen, end - pos), prefix, wanted[prefix], table, afi, errors
                        )
            pos += (mlen + 3) & ~3
        return new

    @staticmethod
    def _ack_error(
        buf: bytearray,
        pos: int,
        mlen: int,
        prefix: PrefixKey,
        nexthops: NextHops,
        table: int,
        afi: Afi,
        errors: list[FibError],
    ) -> None:
        err = -_I32.unpack_from(buf, pos + 16)[0]
        if not nexthops and err in _GONE:
            return  # deleting a route that is already gone
        flags = _HDR.unpack_from(buf, pos)[2]
        errors.append(
            FibError(table, afi, prefix, op_name(nexthops), err, _error_reason(buf, pos, mlen, flags, err))
        )

    # --- reads -------------------------------------------------------------------------------

    def resolve(self, table: int, afi: Afi, gateway: IPAddress) -> NextHops | None:
        """The gateways through which ``gateway`` is reached (a recursive next hop, as iBGP has).

        Looked up as ``ip route get GATEWAY fibmatch`` does, through the policy rules (so the
        main table, where an IGP or static routes put the ways to the peers' loopbacks): rtnetlink
        cannot look up in one table above 255. The matching route's own gateways (all of an ECMP
        route); ``(gateway,)`` when it is on a connected subnet; None when no usable route covers it.
        A default route does not count (as in FRR without `resolve-via-default`): a peer whose link
        went down must not be "reached" through whatever the default points at.
        """
        reply = self._get_route(afi, gateway)
        if reply is None:
            return None
        rtype, plen, nexthops = reply
        if rtype != RTN_UNICAST or plen == 0:
            return None  # blackhole, unreachable, local, default: not a way to the next hop
        return nexthops if nexthops else (gateway,)

    def _get_route(self, afi: Afi, addr: IPAddress) -> tuple[int, int, NextHops] | None:
        """RTM_GETROUTE for one address, answering the matched route itself (RTM_F_FIB_MATCH)."""
        if (addr.version == 4) != (afi is Afi.IPV4):
            return None
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFFFFFF or 1
        packed = addr.packed
        body = _RTMSG.pack(_FAMILY[afi], len(packed) * 8, 0, 0, 0, 0, 0, 0, RTM_F_FIB_MATCH) + _attr(
            RTA_DST, packed
        )
        self._sock.sendto(_HDR.pack(16 + len(body), RTM_GETROUTE, NLM_F_REQUEST, seq, 0) + body, (0, 0))
        buf = self._buf
        while True:
            nbytes = self._sock.recv_into(buf)
            pos = 0
            while pos + 16 <= nbytes:
                mlen, mtype, _flags, mseq, _pid = _HDR.unpack_from(buf, pos)
                if mlen < 16 or pos + mlen > nbytes:
                    break
                if mseq == seq:
                    if mtype == NLMSG_ERROR:
                        return None  # ENETUNREACH & co: nothing covers it
                    if mtype == RTM_NEWROUTE:
                        parsed = parse_route(buf, pos, pos + mlen, _Gateways())
                        return None if parsed is None else (parsed[3], parsed[4][0], parsed[5])
                pos += (mlen + 3) & ~3

    def dump(self, table: int, afi: Afi) -> dict[PrefixKey, NextHops]:
        for _attempt in range(5):
            routes, consistent = self._dump_once(table, afi)
            if consistent:
                return routes
        # The table kept changing under the dump (another writer); the last one is close enough.
        log.warning("route dump interrupted repeatedly", table=table, afi=afi.name_lower)
        return routes

    def _dump_once(self, table: int, afi: Afi) -> tuple[dict[PrefixKey, NextHops], bool]:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFFFFFF
        family = _FAMILY[afi]
        req = (
            _HDR.pack(16 + 12 + 8, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
            + _RTMSG.pack(family, 0, 0, 0, table if table < 256 else 0, self.protocol, 0, 0, 0)
            + _attr(RTA_TABLE, _U32.pack(table))
        )
        self._sock.sendto(req, (0, 0))
        routes: dict[PrefixKey, NextHops] = {}
        gateways = _Gateways()
        consistent = True
        buf, protocol = self._buf, self.protocol
        while True:
            nbytes = self._sock.recv_into(buf)
            pos = 0
            while pos + 16 <= nbytes:
                mlen, mtype, mflags, mseq, _pid = _HDR.unpack_from(buf, pos)
                if mlen < 16 or pos + mlen > nbytes:
                    break
                if mseq == seq:
                    if mflags & NLM_F_DUMP_INTR:
                        consistent = False
                    if mtype == NLMSG_DONE:
                        err = -_I32.unpack_from(buf, pos + 16)[0] if mlen >= 20 else 0
                        if err and err != errno_mod.ENOENT:  # ENOENT: the table does not exist (yet)
                            raise OSError(err, f"route dump of table {table}: {os.strerror(err)}")
                        return routes, consistent
                    if mtype == NLMSG_ERROR:
                        err = -_I32.unpack_from(buf, pos + 16)[0]
                        if err:
                            reason = _error_reason(buf, pos, mlen, mflags, err)
                            raise OSError(err, f"route dump of table {table}: {reason}")
                    elif mtype == RTM_NEWROUTE and buf[pos + 21] == protocol and buf[pos + 16] == family:
                        route = _decode_route(buf, pos, pos + mlen, gateways)
                        if route is not None and route[0] == table:
                            _table, prefix, nexthops = route
                            old = routes.setdefault(prefix, nexthops)
                            if old is not nexthops:
                                # Some kernels dump each IPv6 ECMP member as its own route: merge them.
                                routes[prefix] = tuple(dict.fromkeys(old + nexthops))
                pos += (mlen + 3) & ~3

    @property
    def port_id(self) -> int:
        """Our socket's netlink port id: the kernel stamps it on the notifications our writes cause."""
        port: int = self._sock.getsockname()[0]
        return port

    def open_monitor(self) -> RouteMonitor:
        """A monitor of this network namespace that does not see this writer's own changes."""
        return RouteMonitor(ignore_port=self.port_id)

    def close(self) -> None:
        self._sock.close()


# Multicast groups (linux/rtnetlink.h RTMGRP_*) and interface flags (linux/if.h).
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
SO_ATTACH_FILTER = 26
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_AFI_OF: dict[int, Afi] = {int(socket.AF_INET): Afi.IPV4, int(socket.AF_INET6): Afi.IPV6}


MONITOR_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
BpfInsn = tuple[int, int, int, int]  # code, jt, jf, k


def open_monitor_socket(rcvbuf: int, bpf: Sequence[BpfInsn] = ()) -> socket.socket:
    """A non-blocking rtnetlink socket on the link, address and route groups, with an optional
    classic BPF filter (so unwanted notifications are dropped in the kernel, before any copy)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    try:
        _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
        if bpf:
            code = b"".join(struct.pack("=HBBI", *insn) for insn in bpf)
            prog = ctypes.create_string_buffer(code, len(code))
            fprog = struct.pack("@HP", len(bpf), ctypes.addressof(prog))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.bind((0, MONITOR_GROUPS))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def read_notifications(
    sock: socket.socket,
    buf: bytearray,
    decode: Callable[[bytearray, int, int, int], _T | None],
    overrun: Callable[[], _T],
) -> list[_T]:
    """Every queued notification of a monitor socket, decoded (``decode(buf, pos, end, type)``,
    None to skip), without blocking; a lost batch (ENOBUFS) becomes ``overrun()``."""
    out: list[_T] = []
    while True:
        try:
            nbytes = sock.recv_into(buf)
        except BlockingIOError:
            return out
        except OSError as exc:
            if exc.errno == errno_mod.ENOBUFS:
                out.append(overrun())
                continue
            raise
        pos = 0
        while pos + 16 <= nbytes:
            mlen, mtype = _HDR.unpack_from(buf, pos)[:2]
            if mlen < 16 or pos + mlen > nbytes:
                break
            item = decode(buf, pos, pos + mlen, mtype)
            if item is not None:
                out.append(item)
            pos += (mlen + 3) & ~3


class RouteMonitor:
    """Route, link and address notifications of the namespace, as KernelEvents.

    A classic BPF filter drops, in the kernel, every notification whose nlmsg_pid is the
    writer's port id: the kernel stamps a change's notification with the port of the socket
    that asked for it, so a million routes written by us cost the monitor nothing, and what is
    left is what someone else (``ip route``, the kernel flushing a link's routes) did.
    A lost notification (ENOBUFS) is reported as an EV_OVERRUN event: the caller resyncs.
    """

    def __init__(self, ignore_port: int = 0, rcvbuf: int = 4 << 20) -> None:
        self._sock = open_monitor_socket(rcvbuf, _port_filter(ignore_port) if ignore_port else ())
        self._buf = bytearray(1 << 16)
        self._gateways = _Gateways()

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> list[KernelEvent]:
        return read_notifications(self._sock, self._buf, self._decode, _overrun_event)

    def _decode(self, buf: bytearray, pos: int, end: int, mtype: int) -> KernelEvent | None:
        if mtype in (RTM_NEWROUTE, RTM_DELROUTE) and end - pos >= 28:
            parsed = parse_route(buf, pos, end, self._gateways)
            if parsed is None:
                return None
            family, table, protocol, _rtype, prefix, nexthops = parsed
            afi = _AFI_OF.get(family)
            if afi is None:
                return None
            kind = EV_ROUTE_NEW if mtype == RTM_NEWROUTE else EV_ROUTE_DEL
            return KernelEvent(kind, table, afi, prefix, protocol, nexthops)
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and end - pos >= 32:
            _fam, _type, index, flags, _change = _IFINFO.unpack_from(buf, pos + 16)
            up = mtype == RTM_NEWLINK and flags & (IFF_UP | IFF_LOWER_UP) == IFF_UP | IFF_LOWER_UP
            self._gateways = _Gateways()  # interface names may have changed
            return KernelEvent(EV_LINK, ifindex=index, up=bool(up))
        if mtype in (RTM_NEWADDR, RTM_DELADDR) and end - pos >= 24:
            family, _plen, _flags, _scope, index = _IFADDR.unpack_from(buf, pos + 16)
            up = mtype == RTM_NEWADDR
            return KernelEvent(EV_ADDR, afi=_AFI_OF.get(family, Afi.IPV4), ifindex=index, up=up)
        return None

    def close(self) -> None:
        self._sock.close()


CAP_NET_ADMIN = 12


def missing_net_admin() -> bool:
    """True when this process may not change routes (no CAP_NET_ADMIN in its effective set)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return not int(line.split()[1], 16) >> CAP_NET_ADMIN & 1
    except (OSError, ValueError):
        pass
    return False  # cannot tell: the kernel's EPERM per route will say so


def _overrun_event() -> KernelEvent:
    return KernelEvent(EV_OVERRUN)


def _port_filter(port: int) -> list[BpfInsn]:
    """Classic BPF: drop a message whose nlmsghdr.nlmsg_pid (offset 12) is ``port``."""
    # BPF loads words big-endian; nlmsg_pid is in host order.
    k = int.from_bytes(_U32.pack(port), "big")
    return [
        (0x20, 0, 0, 12),  # ld [12]
        (0x15, 1, 0, k),  # jeq #k -> drop, else accept
        (0x06, 0, 0, 0xFFFFFFFF),  # ret #all: accept
        (0x06, 0, 0, 0),  # ret #0: drop
    ]


def _set_buffer(sock: socket.socket, force_opt: int, opt: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, opt, size)  # capped by net.core.*mem_max


def _try_setsockopt(sock: socket.socket, opt: int) -> bool:
    try:
        sock.setsockopt(SOL_NETLINK, opt, 1)
    except OSError:
        return False
    return True


_RuleKey = tuple[
    int, int, int, str | None, int, str | None, int | None
]  # family, table, pref, src, len, iif, mark


class RuleWriter:
    """Our `ip rule`s, through pyroute2 (a handful, written at start and stop: no need for speed).

    They carry our protocol number (FRA_PROTOCOL, `ip rule ... protocol 186`), so rules left by an
    earlier run are recognised and replaced, and other rules are never touched. pyroute2's
    synchronous API runs an event loop of its own, so each call opens and closes its socket, in
    the calling thread (the daemon calls from an executor thread, never from its loop).
    """

    def __init__(self, protocol: int = 186) -> None:
        self.protocol = protocol
        self._ipr: Any = None

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        from pyroute2 import IPRoute

        self._ipr = IPRoute()
        try:
            yield
        finally:
            self._ipr.close()
            self._ipr = None

    @staticmethod
    def keys(spec: RuleSpec) -> list[_RuleKey]:
        src: str | None = None
        plen = 0
        families = [socket.AF_INET, socket.AF_INET6]
        if spec.source is not None:
            net = ipaddress.ip_network(spec.source)
            src, plen = str(net.network_address), net.prefixlen
            families = [socket.AF_INET if net.version == 4 else socket.AF_INET6]
        elif spec.afi is not None:
            families = [_FAMILY[spec.afi]]
        return [(int(f), spec.table, spec.priority, src, plen, spec.iif, spec.fwmark) for f in families]

    def ours(self) -> list[_RuleKey]:
        with self._session():
            return self._ours()

    def _ours(self) -> list[_RuleKey]:
        out: list[_RuleKey] = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in self._ipr.get_rules(family=family):
                if r.get("FRA_PROTOCOL") != self.protocol:
                    continue
                out.append((
                    int(family),
                    r.get("FRA_TABLE") or r["table"],
                    r.get("FRA_PRIORITY") or 0,
                    r.get("FRA_SRC"),
                    r["src_len"],
                    r.get("FRA_IIFNAME"),
                    r.get("FRA_FWMARK"),
                ))  # fmt: skip
        return out

    def _call(self, cmd: str, key: _RuleKey) -> None:
        family, table, priority, src, plen, iif, mark = key
        kwargs: dict[str, object] = {"family": family, "table": table, "priority": priority}
        kwargs["protocol"] = self.protocol
        if src is not None:
            kwargs.update(src=src, src_len=plen)
        if iif is not None:
            kwargs["iifname"] = iif
        if mark is not None:
            kwargs["fwmark"] = mark
        self._ipr.rule(cmd, **kwargs)

    def sync(self, specs: Sequence[RuleSpec]) -> list[str]:
        """Make our rules exactly ``specs``; returns one message per rule the kernel refused."""
        wanted = {k: spec for spec in specs for k in self.keys(spec)}
        errors: list[str] = []
        with self._session():
            current = set(self._ours())
            for key in current - wanted.keys():
                errors += self._try("del", key, "stale rule")
            for key, spec in wanted.items():
                if key not in current:
                    errors += self._try("add", key, spec.describe())
        return errors

    def remove_all(self) -> list[str]:
        errors: list[str] = []
        with self._session():
            for key in self._ours():
                errors += self._try("del", key, "rule")
        return errors

    def _try(self, cmd: str, key: _RuleKey, what: str) -> list[str]:
        try:
            self._call(cmd, key)
        except Exception as exc:  # pyroute2's NetlinkError carries the errno in .code
            err = getattr(exc, "code", None) or getattr(exc, "errno", None) or errno_mod.EIO
            if (cmd, err) in (("add", errno_mod.EEXIST), ("del", errno_mod.ENOENT)):
                return []
            family = "ipv4" if key[0] == socket.AF_INET else "ipv6"
            return [f"ip rule {cmd} ({family}) {what}: {os.strerror(err)}"]
        return []

    def close(self) -> None:
        """Nothing held between calls; kept for symmetry with the other writers."""
