"""Packing a channel's pending changes into UPDATE messages (BIRD's buckets).

Announcements are grouped by their interned attribute set, so one UPDATE carries as many
prefixes as fit; withdrawals are packed together. Pure: bytes out, no I/O.

For a family sent with ADD-PATH the channel's keys are our 4-byte path id + the prefix (see
``rib.channel``); they are split here into the encoder's prefixes and path ids.
"""

from __future__ import annotations

from itertools import islice

from bgpd.wire import UpdateEncoder
from rib.attrs import PathAttrs
from rib.channel import Channel
from rib.prefix import Afi, PrefixKey


def pack_pending(
    encoder: UpdateEncoder,
    pending: dict[Afi, dict[PrefixKey, PathAttrs | None]],
    eor: set[Afi],
) -> list[bytes]:
    msgs: list[bytes] = []
    for afi, changes in pending.items():
        if encoder.add_path_tx and afi in encoder.add_path_tx:
            msgs.extend(_pack_paths(encoder, afi, changes))
            continue
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


def _pack_paths(encoder: UpdateEncoder, afi: Afi, changes: dict[bytes, PathAttrs | None]) -> list[bytes]:
    """``pack_pending`` for one ADD-PATH family: keys are path id (4 bytes) + prefix."""
    msgs: list[bytes] = []
    withdrawn: list[bytes] = []
    buckets: dict[int, tuple[PathAttrs, list[bytes]]] = {}
    for k, attrs in changes.items():
        if attrs is None:
            withdrawn.append(k)
            continue
        bucket = buckets.get(id(attrs))
        if bucket is None:
            buckets[id(attrs)] = (attrs, [k])
        else:
            bucket[1].append(k)
    if withdrawn:
        msgs.extend(encoder.withdraw(afi, [k[4:] for k in withdrawn], [_path_id(k) for k in withdrawn]))
    for attrs, keys in buckets.values():
        msgs.extend(encoder.announce(afi, attrs, [k[4:] for k in keys], [_path_id(k) for k in keys]))
    return msgs


def _path_id(k: bytes) -> int:
    return int.from_bytes(k[:4], "big")


def take_batch(ch: Channel, limit: int) -> tuple[dict[Afi, dict[PrefixKey, PathAttrs | None]], set[Afi]]:
    """Up to ``limit`` of ``ch``'s pending changes, oldest first, and its End-of-RIB markers
    once nothing else is left: the rest stays pending (the sender is at its output cap)."""
    out: dict[Afi, dict[PrefixKey, PathAttrs | None]] = {}
    n = 0
    pending = ch.pending
    for afi in list(pending):
        changes = pending[afi]
        room = limit - n
        if room <= 0:
            break
        if len(changes) <= room:
            out[afi] = changes
            del pending[afi]
            n += len(changes)
        else:
            part = out[afi] = dict(islice(changes.items(), room))
            for k in part:
                del changes[k]
            n += room
    eor: set[Afi] = set()
    if not any(pending.values()):
        pending.clear()
        eor, ch.eor_pending = ch.eor_pending, set()
    return out, eor
