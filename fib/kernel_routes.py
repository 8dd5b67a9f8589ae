"""Other protocols' kernel routes and the interface addresses, over rtnetlink (read only).

Feeds ``fib.kernel_view.KernelView``: a dump at start (``dump``) and change notifications
afterwards (``KernelWatch.read``). Our own BGP routes (a full table, written by the FIB
writer) are dropped in the kernel by a classic BPF filter on rtm_protocol, so a million of
our writes cost this socket nothing, and next hops are never resolved through BGP routes.
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
import socket
import struct
import sys

from fib.kernel_view import (
    AddrChange,
    KernelAddr,
    KernelChange,
    KernelRoute,
    LinkDown,
    Overrun,
    RouteChange,
)
from fib.netlink import (
    IFF_UP,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTA_DST,
    RTA_MULTIPATH,
    RTA_OIF,
    RTA_TABLE,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    BpfInsn,
    open_monitor_socket,
    read_notifications,
)
from rib.prefix import Afi, IPAddress, make_key

RTM_GETADDR = 22
RTA_PRIORITY = 6
IFA_ADDRESS, IFA_LOCAL = 1, 2
RT_TABLE_LOCAL = 255  # local and broadcast addresses: never a way to a next hop, never redistributed

_HDR = struct.Struct("=IHHII")  # nlmsghdr
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_IFADDR = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_ATTR = struct.Struct("=HH")
_RTNH = struct.Struct("=HBBi")
_U32 = struct.Struct("=I")
_AFI = {socket.AF_INET: Afi.IPV4, socket.AF_INET6: Afi.IPV6}


def _attrs(buf: bytes | bytearray, at: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while at + 4 <= end:
        alen, atype = _ATTR.unpack_from(buf, at)
        if alen < 4:
            break
        out[atype & 0x3FFF] = bytes(buf[at + 4 : at + alen])
        at += (alen + 3) & ~3
    return out


def parse_route(buf: bytes | bytearray, pos: int, end: int) -> KernelRoute | None:
    """One RTM_NEWROUTE/RTM_DELROUTE; None for source-specific, local-table or other families."""
    family, dst_len, src_len, _tos, table, protocol, _scope, rtype, _flags = _RTMSG.unpack_from(buf, pos + 16)
    afi = _AFI.get(family)
    if afi is None or src_len:
        return None
    a = _attrs(buf, pos + 28, end)
    if RTA_TABLE in a:
        table = _U32.unpack(a[RTA_TABLE][:4])[0]
    if table == RT_TABLE_LOCAL:
        return None
    metric = _U32.unpack(a[RTA_PRIORITY][:4])[0] if RTA_PRIORITY in a else 0
    ifindexes: list[int] = []
    if RTA_OIF in a:
        ifindexes.append(_U32.unpack(a[RTA_OIF][:4])[0])
    mp = a.get(RTA_MULTIPATH)
    if mp:
        at = 0
        while at + 8 <= len(mp):
            nh_len, _fl, _hops, index = _RTNH.unpack_from(mp, at)
            if nh_len < 8:
                break
            ifindexes.append(index)
            at += (nh_len + 3) & ~3
    dst = a.get(RTA_DST, b"")
    return KernelRoute(table, afi, make_key(dst_len, dst), metric, protocol, rtype, tuple(ifindexes))


def parse_addr(buf: bytes | bytearray, pos: int, end: int) -> KernelAddr | None:
    family, plen, _flags, _scope, index = _IFADDR.unpack_from(buf, pos + 16)
    if family not in _AFI:
        return None
    a = _attrs(buf, pos + 24, end)
    raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
    if raw is None:
        return None
    addr: IPAddress = ipaddress.ip_address(raw)
    network = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
    return KernelAddr(index, addr, network)


def _protocol_filter(protocol: int) -> list[BpfInsn]:
    """Classic BPF: drop route notifications whose rtm_protocol is ``protocol`` (ours)."""
    type_off = 4 if sys.byteorder == "little" else 5  # nlmsg_type is host order; types are < 256
    return [
        (0x30, 0, 0, type_off),  # 0: ldb [type]
        (0x15, 1, 0, RTM_NEWROUTE),  # 1: jeq NEWROUTE -> 3
        (0x15, 0, 3, RTM_DELROUTE),  # 2: jeq DELROUTE -> 3, else -> 6
        (0x30, 0, 0, 21),  # 3: ldb [rtm_protocol]
        (0x15, 2, 0, protocol),  # 4: jeq ours -> 7 (drop)
        (0x06, 0, 0, 0xFFFFFFFF),  # 5: accept
        (0x06, 0, 0, 0xFFFFFFFF),  # 6: accept
        (0x06, 0, 0, 0),  # 7: drop
    ]


class KernelWatch:
    """A monitor socket (opened first, so nothing is missed between it and the dump) and dumps."""

    def __init__(self, protocol: int, rcvbuf: int = 8 << 20) -> None:
        self.protocol = protocol
        self._sock = open_monitor_socket(rcvbuf, _protocol_filter(protocol))
        self._buf = bytearray(1 << 16)
        self._seq = 1

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    # --- notifications ------------------------------------------------------------------------

    def read(self) -> list[KernelChange]:
        """Every queued notification, without blocking."""
        return read_notifications(self._sock, self._buf, self._decode, Overrun)

    def _decode(self, buf: bytearray, pos: int, end: int, mtype: int) -> KernelChange | None:
        if mtype in (RTM_NEWROUTE, RTM_DELROUTE) and end - pos >= 28:
            route = parse_route(buf, pos, end)
            if route is None or route.protocol == self.protocol:
                return None
            return RouteChange(route, mtype == RTM_NEWROUTE)
        if mtype in (RTM_NEWADDR, RTM_DELADDR) and end - pos >= 24:
            addr = parse_addr(buf, pos, end)
            return None if addr is None else AddrChange(addr, mtype == RTM_NEWADDR)
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and end - pos >= 32:
            _fam, _type, index, flags, _change = _IFINFO.unpack_from(buf, pos + 16)
            if mtype == RTM_DELLINK or not flags & IFF_UP:
                return LinkDown(index)
        return None

    # --- dumps --------------------------------------------------------------------------------

    def dump(self) -> tuple[list[KernelRoute], list[KernelAddr]]:
        """Every route of another protocol (all tables but local) and every address, both families.

        On its own blocking socket, so the monitor's queue is left alone; retried while the
        kernel says the dump was interrupted by a change.
        """
        with socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        ) as s:
            s.bind((0, 0))
            for _attempt in range(5):
                routes: list[KernelRoute] = []
                addrs: list[KernelAddr] = []
                ok = True
                for family in (socket.AF_INET, socket.AF_INET6):
                    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
                    for msg in self._dump(s, RTM_GETROUTE, body):
                        if msg is None:
                            ok = False
                            continue
                        route = parse_route(msg, 0, len(msg))
                        if route is not None and route.protocol != self.protocol:
                            routes.append(route)
                    for msg in self._dump(s, RTM_GETADDR, _IFADDR.pack(family, 0, 0, 0, 0)):
                        if msg is None:
                            ok = False
                            continue
                        addr = parse_addr(msg, 0, len(msg))
                        if addr is not None:
                            addrs.append(addr)
                if ok:
                    break
        return routes, addrs

    def _dump(self, s: socket.socket, mtype: int, body: bytes) -> list[bytes | None]:
        """The messages of one dump (None marks an interrupted one)."""
        seq = self._seq = self._seq % 0xFFFFFFF + 1
        s.send(_HDR.pack(16 + len(body), mtype, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
        out: list[bytes | None] = []
        buf = bytearray(1 << 16)
        want = mtype - 2  # RTM_GETROUTE -> RTM_NEWROUTE, RTM_GETADDR -> RTM_NEWADDR
        while True:
            nbytes = s.recv_into(buf)
            pos = 0
            while pos + 16 <= nbytes:
                mlen, rtype, flags, mseq, _pid = _HDR.unpack_from(buf, pos)
                if mlen < 16 or pos + mlen > nbytes:
                    break
                if mseq == seq:
                    if rtype == NLMSG_DONE:
                        return out
                    if rtype == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", buf, pos + 16)[0]
                        if err:
                            raise OSError(err, f"rtnetlink dump: {errno_mod.errorcode.get(err, err)}")
                        return out
                    if flags & NLM_F_DUMP_INTR:
                        out.append(None)
                    # Our own routes (a full table, maybe) are skipped before any copy.
                    if rtype == want and not (rtype == RTM_NEWROUTE and buf[pos + 21] == self.protocol):
                        out.append(bytes(buf[pos : pos + mlen]))
                pos += (mlen + 3) & ~3
