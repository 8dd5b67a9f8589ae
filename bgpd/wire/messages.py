"""Decoded BGP messages: plain data, produced and consumed by the codec (sans-IO)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from rib.attrs import PathAttrs
from rib.prefix import Afi, PrefixKey

MARKER = b"\xff" * 16
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096
AS_TRANS = 23456
BGP_VERSION = 4


class MsgType(IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class CapCode(IntEnum):
    MULTIPROTOCOL = 1
    ROUTE_REFRESH = 2
    FOUR_OCTET_AS = 65


@dataclass(slots=True)
class Capabilities:
    # (afi, safi) pairs from the multiprotocol capability; afi/safi as ints so unknown ones survive.
    multiprotocol: list[tuple[int, int]] = field(default_factory=list)
    route_refresh: bool = False
    four_octet_as: int | None = None  # our/their real ASN when the capability is present
    unknown: list[tuple[int, bytes]] = field(default_factory=list)  # (code, value) kept for `show`


@dataclass(slots=True)
class Open:
    asn: int  # the 2-octet My Autonomous System field (AS_TRANS for a large ASN)
    hold_time: int
    router_id: str  # dotted quad
    capabilities: Capabilities
    version: int = BGP_VERSION

    @property
    def peer_asn(self) -> int:
        """The real ASN: from the 4-octet AS capability when present."""
        if self.capabilities.four_octet_as is not None:
            return self.capabilities.four_octet_as
        return self.asn


@dataclass(slots=True)
class Keepalive:
    pass


@dataclass(slots=True)
class Notification:
    code: int
    subcode: int
    data: bytes = b""


@dataclass(slots=True)
class RouteRefresh:
    afi: int
    safi: int
    subtype: int = 0


@dataclass(slots=True)
class Update:
    """One UPDATE as the RIB needs it.

    ``announce`` holds (afi, attrs, prefixes) groups: IPv4 NLRI carry the NEXT_HOP attribute in
    ``attrs.next_hop``; MP_REACH NLRI carry the MP next hop there. Attribute sets are interned.
    RFC 7606 treat-as-withdraw has already moved affected prefixes to ``withdraw``; ``errors``
    describes what was repaired or discarded (for the log).
    """

    announce: list[tuple[Afi, PathAttrs, list[PrefixKey]]] = field(default_factory=list)
    withdraw: list[tuple[Afi, list[PrefixKey]]] = field(default_factory=list)
    end_of_rib: Afi | None = None
    errors: list[str] = field(default_factory=list)


Message = Open | Update | Notification | Keepalive | RouteRefresh
