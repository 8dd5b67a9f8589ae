"""Packing a channel's pending changes into UPDATE messages (BIRD's buckets).

Announcements are grouped by their interned attribute set, so one UPDATE carries as many
prefixes as fit; withdrawals are packed together. Pure: bytes out, no I/O.
"""

from __future__ import annotations

from bgpd.wire import UpdateEncoder
from rib.attrs import PathAttrs
from rib.prefix import Afi, PrefixKey


def pack_pending(
    encoder: UpdateEncoder,
    pending: dict[Afi, dict[PrefixKey, PathAttrs | None]],
    eor: set[Afi],
) -> list[bytes]:
    msgs: list[bytes] = []
    for afi, changes in pending.items():
        withdrawn: list[PrefixKey] = []
        buckets: dict[int, tuple[PathAttrs, list[PrefixKey]]] = {}
        for prefix, attrs in changes.items():
            if attrs is None:
                withdrawn.append(prefix)
                continue
            bucket = buckets.get(id(attrs))
            if bucket is None:
                buckets[id(attrs)] = (attrs, [prefix])
            else:
                bucket[1].append(prefix)
        if withdrawn:
            msgs.extend(encoder.withdraw(afi, withdrawn))
        for attrs, prefixes in buckets.values():
            msgs.extend(encoder.announce(afi, attrs, prefixes))
    for afi in sorted(eor):
        msgs.append(encoder.end_of_rib(afi))
    return msgs
