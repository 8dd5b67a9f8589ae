"""Small builders shared by the RIB and policy unit tests."""

from __future__ import annotations

import ipaddress
from typing import Any

from rib.attrs import Origin, PathAttrs, SegType, intern
from rib.prefix import Afi, PrefixKey, parse_prefix
from rib.route import Path, Source, SourceKind

LOCAL_AS = 65000
ip = ipaddress.ip_address


def key(text: str) -> PrefixKey:
    return parse_prefix(text)[1]


def afi_key(text: str) -> tuple[Afi, PrefixKey]:
    return parse_prefix(text)


def seq(*asns: int) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """An AS_PATH of one AS_SEQUENCE (empty path for no ASNs)."""
    return ((SegType.AS_SEQUENCE, asns),) if asns else ()


def attrs(path: tuple[int, ...] | None = None, nh: str | None = None, **kw: Any) -> PathAttrs:
    """Interned attributes; ``path`` is a flat AS_SEQUENCE, ``nh`` a next hop text."""
    if path is not None:
        kw["as_path"] = seq(*path)
    if nh is not None:
        kw["next_hop"] = ip(nh)
    return intern(PathAttrs(**kw))


def source(kind: SourceKind, peer: str | None, asn: int, rid: int, name: str = "") -> Source:
    return Source(kind, ip(peer) if peer is not None else None, asn, rid, name)


def ebgp(peer: str, asn: int, rid: int = 0) -> Source:
    return source(SourceKind.EBGP, peer, asn, rid or int(ip(peer)) & 0xFFFFFFFF)


def ibgp(peer: str, rid: int = 0) -> Source:
    return source(SourceKind.IBGP, peer, LOCAL_AS, rid or int(ip(peer)) & 0xFFFFFFFF)


def local_source(rid: int = 1) -> Source:
    return Source(SourceKind.LOCAL, None, LOCAL_AS, rid, "local")


def path(src: Source, a: PathAttrs | None = None, since: float = 0.0, **kw: Any) -> Path:
    return Path(src, a if a is not None else attrs(**kw), since)


__all__ = [
    "LOCAL_AS",
    "Origin",
    "afi_key",
    "attrs",
    "ebgp",
    "ibgp",
    "ip",
    "key",
    "local_source",
    "path",
    "seq",
    "source",
]
