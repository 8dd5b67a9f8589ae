"""Stale paths of a restarting neighbour (RFC 4724 4.2, the helper role): pure RIB logic.

When a session that negotiated graceful restart ends without a NOTIFICATION, its paths stay
in the Loc-RIB (and so in the kernel and at the other peers) under the old ``Source``, and
the prefixes move from the channel's Adj-RIB-In to ``Channel.stale``. When the neighbour
comes back, its new session reuses that ``Source``: a route it sends again simply replaces
the stale path (an identical one changes nothing at all, so the kernel and the other peers
see no churn), and is dropped from ``stale``. What is left at its End-of-RIB (or when a
timer in bgpd/ runs out) is swept: withdrawn like any withdrawal. Every step here costs per
stale route, never per table. Timers and the decision when to sweep live in bgpd/graceful.py.

Stale paths are not depreferenced in the decision process (RFC 4724 and FRR; only the
long-lived variant, RFC 9494, depreferences): the point of the restart is that nothing moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat

from rib.attrs import PathAttrs
from rib.channel import Channel
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey
from rib.route import Change, Source


def retain(rib: Rib, ch: Channel) -> int:
    """The session went down gracefully: keep its paths, marked stale. Returns the stale count.

    A second loss before the sweep (RFC 4724 4.2: the restarting peer fails again) keeps
    both the older stale routes and what the last session re-sent.
    """
    source = ch.source
    if source is None:
        return stale_count(ch)
    if ch.stale_source is not None and ch.stale_source is not source:
        sweep(rib, ch)  # stale paths of an older source cannot be refreshed by this one
    ch.stale_source = source
    _drop_add_path(rib, ch)
    rib.unlean(ch)  # a lean channel's accepted routes are in the Loc-RIB only: the whole dict
    for afi, routes in ch.adj_in.items():
        held = ch.stale.setdefault(afi, {})
        # Only what the import policy let into the Loc-RIB is stale (O(the peer's routes), as
        # a session going down always costs; the import cache answers per attribute set).
        imp = ch.import_attrs
        held.update({p: a for p, a in routes.items() if imp(afi, p, a) is not None})
        if not held:
            del ch.stale[afi]
    ch.adj_in = {}  # handed over to ``stale``: clear() must not empty it
    ch.clear()
    rib.dirty.discard(ch)
    return stale_count(ch)


def _drop_add_path(rib: Rib, ch: Channel) -> None:
    """Paths received with ADD-PATH path ids are not kept over a restart (their per-id sources
    die with the session): withdrawn now, as a session without graceful restart would."""
    vrf = ch.settings.vrf
    for afi, by_id in ch.adj_in_paths.items():
        table = rib.table(vrf, afi)
        for path_id, routes in by_id.items():
            src = ch.path_sources.get(path_id)
            if src is not None and routes:
                changes = [c for c in map(table.withdraw, routes, repeat(src)) if c is not None]
                rib._propagate_many(vrf, afi, changes)
    ch.adj_in_paths.clear()


def resume(ch: Channel, source: Source) -> Source:
    """The source a new session of ``ch``'s neighbour should use: the stale one when it is the
    same speaker (so its routes replace the stale paths), else ``source`` (sweep first)."""
    old = ch.stale_source
    if old is None:
        return source
    same = (old.kind, old.peer, old.asn, old.router_id) == (
        source.kind,
        source.peer,
        source.asn,
        source.router_id,
    )
    return old if same else source


def refresh(rib: Rib, ch: Channel, announce: Iterable[tuple[Afi, PathAttrs, list[PrefixKey]]],
            withdraw: Iterable[tuple[Afi, list[PrefixKey]]]) -> None:  # fmt: skip
    """One UPDATE of a neighbour with stale routes: what it announces again is no longer
    stale (the announcement replaces the path), what it withdraws goes now. O(its prefixes)."""
    stale = ch.stale
    source = ch.stale_source
    for afi, _attrs, prefixes in announce:
        held = stale.get(afi)
        if held:
            pop = held.pop
            for prefix in prefixes:
                pop(prefix, None)
    for afi, prefixes in withdraw:
        held = stale.get(afi)
        if not held or source is None:
            continue
        gone = [p for p in prefixes if held.pop(p, None) is not None and p not in ch.adj_in.get(afi, ())]
        if gone:
            table = rib.table(ch.settings.vrf, afi)
            changes = [c for c in map(table.withdraw, gone, repeat(source)) if c is not None]
            rib._propagate_many(ch.settings.vrf, afi, changes)
    for afi in [a for a, held in stale.items() if not held]:
        del stale[afi]
    if not stale and ch.source is not None:
        ch.stale_source = None


def sweep(rib: Rib, ch: Channel, afis: Iterable[Afi] | None = None) -> int:
    """Withdraw the stale paths left (all families, or ``afis``). Returns how many went."""
    source = ch.stale_source
    if source is None:
        ch.stale.clear()
        return 0
    vrf = ch.settings.vrf
    swept = 0
    for afi in list(ch.stale) if afis is None else list(afis):
        held = ch.stale.pop(afi, None)
        if not held:
            continue
        table = rib.table(vrf, afi)
        changes: list[Change] = [c for c in map(table.withdraw, held, repeat(source)) if c is not None]
        swept += len(held)
        rib._propagate_many(vrf, afi, changes)
    if not ch.stale:
        ch.stale_source = None
    return swept


def stale_count(ch: Channel) -> int:
    return sum(len(held) for held in ch.stale.values())


def is_stale(ch: Channel, afi: Afi, prefix: PrefixKey, source: Source) -> bool:
    return source is ch.stale_source and prefix in ch.stale.get(afi, ())
