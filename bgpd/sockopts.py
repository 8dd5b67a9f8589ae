"""Linux socket options for BGP connections: TOS, TTL / GTSM (RFC 5082) and TCP MD5 (RFC 2385),
and the normalisation of socket addresses.

The constants Python's ``socket`` module lacks on Linux are spelled out here.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

IP_MINTTL = 21  # <linux/in.h>
IPV6_MINHOPCOUNT = 73  # <linux/in6.h>
TCP_MD5SIG = 14  # <linux/tcp.h>
TCP_MD5SIG_MAXKEYLEN = 80
_SOCKADDR_STORAGE = 128
TOS_INTERNETWORK_CONTROL = 0xC0  # precedence 6 / CS6, as routers mark routing traffic

SockLike = Any  # socket.socket or asyncio's TransportSocket (same setsockopt surface)


def normalise_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A socket address as an IP address: IPv4-mapped IPv6 unwrapped, zone index dropped."""
    addr = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _is_v6(sock: SockLike) -> bool:
    return bool(sock.family == socket.AF_INET6)


def set_tos(sock: SockLike, tos: int = TOS_INTERNETWORK_CONTROL) -> None:
    if _is_v6(sock):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)


def set_ttl(sock: SockLike, ttl: int) -> None:
    if _is_v6(sock):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def set_min_ttl(sock: SockLike, ttl: int) -> None:
    """Drop received segments with a smaller TTL / hop limit (GTSM)."""
    if _is_v6(sock):
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, ttl)


def apply_ttl_policy(sock: SockLike, *, ebgp: bool, multihop: int | None, ttl_security: bool) -> None:
    """BIRD's rules: GTSM sends 255 and requires 256 - hops; otherwise eBGP is direct (TTL 1)
    unless ``multihop`` is set, and iBGP keeps the system default unless ``multihop`` is set."""
    hops = multihop or 1
    if ttl_security:
        set_ttl(sock, 255)
        set_min_ttl(sock, 256 - hops)
    elif multihop:
        set_ttl(sock, multihop)
    elif ebgp:
        set_ttl(sock, 1)


def md5sig_struct(peer: str, key: bytes) -> bytes:
    """``struct tcp_md5sig`` for ``peer`` (an empty key removes it)."""
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP MD5 key longer than {TCP_MD5SIG_MAXKEYLEN} bytes")
    addr = ipaddress.ip_address(peer.split("%", 1)[0])
    if addr.version == 4:
        sa = struct.pack("=HH4s", socket.AF_INET, 0, addr.packed)
    else:
        sa = struct.pack("=HHI16sI", socket.AF_INET6, 0, 0, addr.packed, 0)
    sa = sa.ljust(_SOCKADDR_STORAGE, b"\0")
    return sa + struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\0")


def set_md5(sock: SockLike, peer: str, password: str | None) -> None:
    """Install (or with None remove) the TCP MD5 key for ``peer``; on a listening socket it
    applies to connections accepted from that address. For IPv4 peers on an IPv6 socket the
    IPv4-mapped address is used."""
    if _is_v6(sock) and ipaddress.ip_address(peer.split("%", 1)[0]).version == 4:
        peer = f"::ffff:{peer}"
    key = password.encode("utf-8") if password else b""
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig_struct(peer, key))


def bind_to_device(sock: SockLike, device: str) -> None:
    """SO_BINDTODEVICE: the socket's routes and packets are those of ``device`` only (for an l3mdev
    VRF device, the VRF's table). Needs CAP_NET_RAW; ENODEV if there is no such device."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())


def bound_device(sock: SockLike) -> str | None:
    """The device a socket is bound to (an accepted one inherits it from the listener or, with
    net.ipv4.tcp_l3mdev_accept=1, from the VRF the connection came in through); None if unbound."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16)  # IFNAMSIZ
    name = bytes(raw).split(b"\0", 1)[0].decode(errors="replace")
    return name or None
