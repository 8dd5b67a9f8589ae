"""Routes as the RIB holds them: a path is (source, interned attributes, since)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from rib.attrs import PathAttrs
from rib.prefix import Afi, IPAddress, PrefixKey


class SourceKind(IntEnum):
    LOCAL = 0  # originated here (a configured `network`)
    EBGP = 1
    IBGP = 2

    @property
    def label(self) -> str:
        return ("local", "ebgp", "ibgp")[self]


@dataclass(frozen=True, slots=True, eq=False)
class Source:
    """Where a path came from: one per peer session (or the local origin).

    Compared by identity: a new session of the same peer is a new source.
    """

    kind: SourceKind
    peer: IPAddress | None  # None for locally originated routes
    asn: int  # the peer's ASN (our own for LOCAL)
    router_id: int  # the peer's BGP identifier as an integer (tie-breaker)
    name: str = ""  # neighbor description or "local"
    rr_client: bool = False  # the peer is our route-reflector client (RFC 4456)

    @property
    def peer_str(self) -> str:
        return str(self.peer) if self.peer is not None else "local"


@dataclass(slots=True)
class Path:
    source: Source
    attrs: PathAttrs
    since: float  # time the path was learnt (monotonic seconds, passed in)


class Change(NamedTuple):
    """The selected paths of one prefix changed. ``best`` is empty when the prefix is gone.

    ``best[0]`` is the best path; all of ``best`` form the ECMP set. A named tuple: one is
    made per route change, and a frozen dataclass costs several times as much to build.
    """

    vrf: str
    afi: Afi
    prefix: PrefixKey
    best: tuple[Path, ...]
