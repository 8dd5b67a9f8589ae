"""Socket option helpers (run on unconnected sockets; no traffic)."""

from __future__ import annotations

import socket
import struct

import pytest

from bgpd import sockopts


def test_md5sig_struct_layout() -> None:
    raw = sockopts.md5sig_struct("192.0.2.1", b"key")
    assert len(raw) == 128 + 8 + 80  # sockaddr_storage, flags/prefixlen/keylen/ifindex, key
    family, port, addr = struct.unpack_from("=HH4s", raw)
    assert (family, port, addr) == (socket.AF_INET, 0, bytes([192, 0, 2, 1]))
    assert struct.unpack_from("=BBHi", raw, 128) == (0, 0, 3, 0)
    assert raw[136:139] == b"key" and not any(raw[139:])
    raw6 = sockopts.md5sig_struct("2001:db8::1%eth0", b"")
    assert struct.unpack_from("=H", raw6)[0] == socket.AF_INET6
    with pytest.raises(ValueError):
        sockopts.md5sig_struct("192.0.2.1", b"x" * 81)


def test_ttl_policy() -> None:
    with socket.socket() as s:
        sockopts.apply_ttl_policy(s, ebgp=True, multihop=None, ttl_security=False)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 1
        sockopts.apply_ttl_policy(s, ebgp=True, multihop=4, ttl_security=False)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 4
    with socket.socket() as s:
        default = s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
        sockopts.apply_ttl_policy(s, ebgp=False, multihop=None, ttl_security=False)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == default
        sockopts.apply_ttl_policy(s, ebgp=True, multihop=None, ttl_security=True)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 255
        assert s.getsockopt(socket.IPPROTO_IP, sockopts.IP_MINTTL) == 255


def test_tos() -> None:
    with socket.socket() as s:
        sockopts.set_tos(s)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 0xC0
