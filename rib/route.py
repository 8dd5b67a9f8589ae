"""Routes as the RIB holds them: a path is (source, interned attributes, since)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from itertools import count
from typing import NamedTuple

from rib.attrs import PathAttrs
from rib.prefix import Afi, IPAddress, PrefixKey

_TX_IDS = count(1)


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
    # ADD-PATH (RFC 7911): each path id a peer sends is a source of its own, so the RIB keeps
    # one path per (peer, path id) with no change to its per-source logic; ``base`` is the
    # session's own source (what export compares to never send a path back to its peer).
    path_id: int = 0
    base: Source | None = None
    # The path id we send for this source's paths to ADD-PATH peers: unique per source, so
    # unique per prefix, and stable while the source lives (RFC 7911 needs no more).
    tx_id: int = field(default_factory=lambda: next(_TX_IDS))

    @property
    def peer_str(self) -> str:
        return str(self.peer) if self.peer is not None else "local"

    def for_path_id(self, path_id: int) -> Source:
        """The source of this session's ADD-PATH path ``path_id``."""
        return Source(
            self.kind, self.peer, self.asn, self.router_id, self.name, self.rr_client, path_id, self
        )


@dataclass(slots=True)
class Path:
    source: Source
    attrs: PathAttrs
    since: float  # time the path was learnt (monotonic seconds, passed in)
    # The attributes as received when import policy changed them (None: ``attrs`` are those):
    # a lean Adj-RIB-In (rib/engine.py) gives them back from here for soft reconfiguration.
    received: PathAttrs | None = None

    @property
    def received_attrs(self) -> PathAttrs:
        return self.attrs if self.received is None else self.received


class Change(NamedTuple):
    """The selected paths of one prefix changed. ``best`` is empty when the prefix is gone.

    ``best[0]`` is the best path; all of ``best`` form the ECMP set. A named tuple: one is
    made per route change, and a frozen dataclass costs several times as much to build.
    """

    vrf: str
    afi: Afi
    prefix: PrefixKey
    best: tuple[Path, ...]
