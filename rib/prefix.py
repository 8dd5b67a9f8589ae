"""Address families and the compact prefix key used everywhere in the RIB.

A prefix is kept in its BGP NLRI encoding: one length octet followed by the
significant address octets (RFC 4271 4.3). That is exactly what the wire
carries, so the decoder can slice keys out of an UPDATE without building
address objects, and it is small (a /24 is a 4-byte ``bytes``). The address
family is not part of the key: every table is per family.
"""

from __future__ import annotations

import ipaddress
from enum import IntEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PrefixKey = bytes


class Afi(IntEnum):
    IPV4 = 1
    IPV6 = 2

    @property
    def name_lower(self) -> str:
        return "ipv4" if self is Afi.IPV4 else "ipv6"

    @property
    def addr_len(self) -> int:
        return 4 if self is Afi.IPV4 else 16

    @property
    def max_plen(self) -> int:
        return 32 if self is Afi.IPV4 else 128


class Safi(IntEnum):
    UNICAST = 1


AFI_BY_NAME = {"ipv4": Afi.IPV4, "ipv6": Afi.IPV6}


def afi_of(addr: IPAddress | IPNetwork) -> Afi:
    return Afi.IPV4 if addr.version == 4 else Afi.IPV6


def make_key(plen: int, addr_bytes: bytes) -> PrefixKey:
    """Build a canonical key from a prefix length and (at least) its significant octets.

    Host bits in the last octet are cleared so that equal prefixes have equal keys.
    """
    n = (plen + 7) >> 3
    body = addr_bytes[:n]
    rem = plen & 7
    if rem and body:
        last = body[-1] & (0xFF << (8 - rem)) & 0xFF
        if last != body[-1]:
            body = body[:-1] + bytes((last,))
    return bytes((plen,)) + body


def key_from_network(net: IPNetwork) -> PrefixKey:
    return make_key(net.prefixlen, net.network_address.packed)


def parse_prefix(text: str) -> tuple[Afi, PrefixKey]:
    """Parse ``10.0.0.0/8`` or ``2001:db8::/32`` (host bits must be zero). Raises ValueError."""
    net = ipaddress.ip_network(text, strict=True)
    return afi_of(net), key_from_network(net)


def key_addr_bytes(afi: Afi, key: PrefixKey) -> bytes:
    """The full-width network address of a key (padded with zeros)."""
    body = key[1:]
    return body + bytes(afi.addr_len - len(body))


def key_plen(key: PrefixKey) -> int:
    return key[0]


def key_to_network(afi: Afi, key: PrefixKey) -> IPNetwork:
    addr = key_addr_bytes(afi, key)
    if afi is Afi.IPV4:
        return ipaddress.IPv4Network((addr, key[0]))
    return ipaddress.IPv6Network((addr, key[0]))


def key_to_str(afi: Afi, key: PrefixKey) -> str:
    return str(key_to_network(afi, key))


def key_contains(afi: Afi, key: PrefixKey, addr: IPAddress) -> bool:
    return addr in key_to_network(afi, key)
