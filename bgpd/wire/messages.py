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
    EXTENDED_NEXT_HOP = 5  # RFC 8950
    EXTENDED_MESSAGE = 6  # RFC 8654
    GRACEFUL_RESTART = 64  # RFC 4724
    FOUR_OCTET_AS = 65  # RFC 6793
    ADD_PATH = 69  # RFC 7911
    ENHANCED_ROUTE_REFRESH = 70  # RFC 7313
    LLGR = 71  # RFC 9494 long-lived graceful restart
    FQDN = 73  # draft-walton-bgp-hostname-capability


EXTENDED_MAX_MESSAGE_LEN = 65535  # RFC 8654


class AddPathMode(IntEnum):
    """RFC 7911 Send/Receive field."""

    RECEIVE = 1
    SEND = 2
    BOTH = 3


class RefreshSubtype(IntEnum):
    """ROUTE-REFRESH message subtypes (RFC 7313 3)."""

    NORMAL = 0
    BORR = 1  # Beginning of Route Refresh
    EORR = 2  # End of Route Refresh


@dataclass(slots=True)
class GracefulRestart:
    """RFC 4724 3: restart flags (R = 0x8, N = 0x4 per RFC 8538), time, per-family forwarding flag."""

    flags: int = 0  # the 4 high bits of the first octet
    time: int = 0  # 12 bits, seconds
    families: list[tuple[int, int, int]] = field(default_factory=list)  # (afi, safi, flags; 0x80 = F)

    @property
    def restarting(self) -> bool:
        return bool(self.flags & 0x8)

    @property
    def notification(self) -> bool:
        """RFC 8538 N bit: the speaker keeps the graceful-restart procedures over a NOTIFICATION."""
        return bool(self.flags & 0x4)


@dataclass(slots=True)
class LlgrFamily:
    """One RFC 9494 LLGR tuple: AFI, SAFI, flags (0x80 = F) and the 24-bit long-lived stale time."""

    afi: int
    safi: int
    flags: int
    stale_time: int


@dataclass(slots=True)
class Capabilities:
    # (afi, safi) pairs from the multiprotocol capability; afi/safi as ints so unknown ones survive.
    multiprotocol: list[tuple[int, int]] = field(default_factory=list)
    route_refresh: bool = False
    four_octet_as: int | None = None  # our/their real ASN when the capability is present
    enhanced_route_refresh: bool = False
    extended_message: bool = False
    # RFC 8950: (NLRI afi, NLRI safi, next hop afi) the speaker accepts.
    extended_next_hop: list[tuple[int, int, int]] = field(default_factory=list)
    graceful_restart: GracefulRestart | None = None
    llgr: list[LlgrFamily] | None = None
    add_path: list[tuple[int, int, int]] = field(default_factory=list)  # (afi, safi, AddPathMode)
    hostname: str | None = None  # FQDN capability: host name and domain name
    domain: str | None = None
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
    describes what was repaired or discarded (for the log): each entry names the case and ends
    with a hex excerpt of the offending bytes.

    ADD-PATH (RFC 7911): prefix keys stay plain NLRI bytes, so when receive was negotiated for a
    family its path identifiers come in ``announce_path_ids``/``withdraw_path_ids``, lists
    parallel to ``announce``/``withdraw``: entry i is None (no ADD-PATH for that group) or a list
    of path ids parallel to the group's prefixes.
    """

    announce: list[tuple[Afi, PathAttrs, list[PrefixKey]]] = field(default_factory=list)
    withdraw: list[tuple[Afi, list[PrefixKey]]] = field(default_factory=list)
    end_of_rib: Afi | None = None
    errors: list[str] = field(default_factory=list)
    announce_path_ids: list[list[int] | None] = field(default_factory=list)
    withdraw_path_ids: list[list[int] | None] = field(default_factory=list)


Message = Open | Update | Notification | Keepalive | RouteRefresh
