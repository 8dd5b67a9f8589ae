"""Stale paths of a restarting neighbour (RFC 4724 4.2, the helper role): pure RIB logic.

When a session that negotiated graceful restart ends without a NOTIFICATION, its paths stay
in the Loc-RIB (and so in the kernel and at the other peers) under the old ``Source``, and
the prefixes move from the channel's Adj-RIB-In to ``Channel.stale``. When the neighbour
comes back, its new session reuses that ``Source``: a route it sends again simply replaces
the stale path (an identical one changes nothing at all, so the kernel and the other peers
see no churn), and is dropped from ``stale``. What is left at its End-of-RIB (or when a
timer in bgpd/ runs out) is swept: withdrawn like any withdrawal. Every step here costs per
stale route, never per table. Timers and the decision when to sweep live in bgpd/graceful.py.

Paths received with ADD-PATH path ids (RFC 7911) are kept the same way, each under its
per-path-id source (``Source.for_path_id`` of the session's): ``Channel.stale_paths`` records
them per (family, path id, prefix) and ``Channel.stale_path_sources`` keeps those sources,
which the new session's ``Channel.path_source`` hands out again, so the paths a route
reflector sends again per path id replace their stale ones as plain routes do. A restarted
speaker may number its paths anew (FRR does: the ids follow the order its own peers came back
in), so a path id sent again with other attributes does not replace its stale path: that one
moves to a source of its own (``Channel.stale_displaced``) and stays until the sweep, so an
ECMP route never loses a next hop while the ids are shuffled.

Stale paths are not depreferenced in the decision process (RFC 4724 and FRR; only the
long-lived variant, RFC 9494, depreferences): the point of the restart is that nothing moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat

from rib.attrs import PathAttrs
from rib.channel import Channel
from rib.engine import Rib, _path_of
from rib.prefix import Afi, PrefixKey
from rib.route import Path, Source
from rib.table import Dest


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
    _retain_paths(ch)
    if ch.lean:
        _retain_lean(rib, ch, source)
        ch.adj_in = {}
        ch.clear()
        rib.dirty.discard(ch)
        return stale_count(ch)
    imp = ch.import_attrs
    for afi, routes in ch.adj_in.items():
        held = ch.stale.setdefault(afi, {})
        # Only what the import policy let into the Loc-RIB is stale (O(the peer's routes), as
        # a session going down always costs; the import cache answers per attribute set).
        held.update({p: a for p, a in routes.items() if imp(afi, p, a) is not None})
        if not held:
            del ch.stale[afi]
    ch.adj_in = {}  # handed over to ``stale``: clear() must not empty it
    ch.clear()
    rib.dirty.discard(ch)
    return stale_count(ch)


def _retain_lean(rib: Rib, ch: Channel, source: Source) -> None:
    """``retain`` for a lean channel: its accepted routes are exactly its paths in the Loc-RIB
    (with the attributes as received), so one pass over the table finds them, with no second
    import check and no rebuilt Adj-RIB-In (a full table: ~2x faster)."""
    vrf = ch.settings.vrf
    for afi in {*ch.adj_in, *ch.afis}:
        held = ch.stale.setdefault(afi, {})
        # What an UPDATE's prefixes store is shared: look each stored object up once.
        seen: dict[int, tuple[object, PathAttrs | None]] = {}  # id -> (it, its received attrs)
        for prefix, cur in rib.table(vrf, afi).dests.items():
            hit = seen.get(id(cur))
            if hit is None:
                path = _path_of(cur, source)
                hit = (cur, None if path is None else path.received_attrs)
                if type(cur) is not Dest:  # a Dest is one prefix's own, never shared
                    seen[id(cur)] = hit
            if hit[1] is not None:
                held[prefix] = hit[1]
        if not held:
            del ch.stale[afi]


def _retain_paths(ch: Channel) -> None:
    """The ADD-PATH part of ``retain``: each path id's accepted paths stay under its source."""
    imp = ch.import_attrs
    for afi, by_id in ch.adj_in_paths.items():
        kept = ch.stale_paths.setdefault(afi, {})
        for path_id, routes in by_id.items():
            src = ch.path_sources.get(path_id)
            if src is None or not routes:
                continue
            ch.stale_path_sources[path_id] = src  # the same object, or the one it came from
            accepted = {p: a for p, a in routes.items() if imp(afi, p, a) is not None}
            if accepted:
                kept.setdefault(path_id, {}).update(accepted)
        if not kept:
            del ch.stale_paths[afi]
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


def refresh(
    rib: Rib,
    ch: Channel,
    announce: Iterable[tuple[Afi, PathAttrs, list[PrefixKey]]],
    withdraw: Iterable[tuple[Afi, list[PrefixKey]]],
    announce_ids: Iterable[list[int] | None] | None = None,
    withdraw_ids: Iterable[list[int] | None] | None = None,
) -> None:
    """One UPDATE of a neighbour with stale routes: what it announces again is no longer
    stale (the announcement replaces the path), what it withdraws goes now. O(its prefixes).

    ``announce_ids``/``withdraw_ids`` are the UPDATE's ADD-PATH path ids, paired with its
    groups as ``Rib.receive`` pairs them: a group with ids refreshes ``stale_paths`` only
    (its paths are of per-path-id sources), one without refreshes ``stale`` only.
    """
    stale = ch.stale
    source = ch.stale_source
    rx = ch.add_path_rx
    a_ids, w_ids = iter(announce_ids or ()), iter(withdraw_ids or ())
    touched: set[tuple[Afi, int]] = set()
    vrf = ch.settings.vrf
    for afi, attrs, prefixes in announce:
        ids = next(a_ids, None) if prefixes else None
        if ids is not None and afi in rx:
            by_id = ch.stale_paths.get(afi)
            if by_id:
                moved: dict[int, dict[PrefixKey, PathAttrs]] = {}
                for prefix, path_id in zip(prefixes, ids, strict=False):
                    held_id = by_id.get(path_id)
                    old = held_id.pop(prefix, None) if held_id is not None else None
                    if old is None:
                        continue
                    touched.add((afi, path_id))
                    if old is not attrs:  # attributes are interned: another path under that id
                        moved.setdefault(path_id, {})[prefix] = old
                for path_id, routes in moved.items():
                    _displace(rib, ch, afi, path_id, routes)
            continue
        held = stale.get(afi)
        if held:
            pop = held.pop
            for prefix in prefixes:
                pop(prefix, None)
    for afi, prefixes in withdraw:
        ids = next(w_ids, None) if prefixes else None
        if ids is not None and afi in rx:
            by_id = ch.stale_paths.get(afi)
            if by_id:
                live = ch.adj_in_paths.get(afi, {})
                gone: dict[int, list[PrefixKey]] = {}
                for prefix, path_id in zip(prefixes, ids, strict=False):
                    held_id = by_id.get(path_id)
                    if held_id is None or held_id.pop(prefix, None) is None:
                        continue
                    touched.add((afi, path_id))
                    if prefix not in live.get(path_id, ()):  # else the UPDATE itself withdraws it
                        gone.setdefault(path_id, []).append(prefix)
                for path_id, keys in gone.items():
                    _withdraw(rib, vrf, afi, ch.stale_path_sources[path_id], keys)
            continue
        held = stale.get(afi)
        if not held or source is None:
            continue
        plain = [p for p in prefixes if held.pop(p, None) is not None and p not in ch.adj_in.get(afi, ())]
        if plain:
            _withdraw(rib, vrf, afi, source, plain)
    for afi, path_id in touched:
        by_id = ch.stale_paths.get(afi)
        if by_id is not None and not by_id.get(path_id, True):
            del by_id[path_id]
            if not by_id:
                del ch.stale_paths[afi]
    for afi in [a for a, held in stale.items() if not held]:
        del stale[afi]
    if not has_stale(ch) and ch.source is not None:
        _forget(ch)


def _displace(rib: Rib, ch: Channel, afi: Afi, path_id: int, routes: dict[PrefixKey, PathAttrs]) -> None:
    """The returning peer sent ``path_id`` again for ``routes`` with other attributes: their
    stale paths move to the path id's displaced source (the announcement then takes the id's
    own source over), stale until the sweep. O(the routes)."""
    old_src = ch.stale_path_sources[path_id]
    src = ch.stale_displaced_sources.get(path_id)
    if src is None:
        assert ch.stale_source is not None
        src = ch.stale_displaced_sources[path_id] = ch.stale_source.for_path_id(path_id)
    vrf = ch.settings.vrf
    table = rib.table(vrf, afi)
    held = ch.stale_displaced.setdefault(afi, {}).setdefault(path_id, {})
    changes = []
    # One moved Path per moved one: the prefixes of an UPDATE shared it, and sharing its copy
    # lets the Loc-RIB decide their contests once (its memo is keyed by the paths' ids).
    copies: dict[int, tuple[Path, Path]] = {}  # id(old path) -> (it, its copy): ids stay theirs
    for prefix, attrs in routes.items():
        path = _path_of(table.dests.get(prefix), old_src)
        if path is None:
            continue
        held[prefix] = attrs
        hit = copies.get(id(path))
        if hit is None:
            hit = copies[id(path)] = (path, Path(src, path.attrs, path.since, path.received))
        change = table.update(prefix, hit[1])
        if change is not None:
            changes.append(change)
    if not held:
        del ch.stale_displaced[afi][path_id]
        if not ch.stale_displaced[afi]:
            del ch.stale_displaced[afi]
    rib._propagate_many(vrf, afi, changes)
    if rib.path_senders:
        rib._touch_paths(vrf, afi, list(routes))


def sweep(rib: Rib, ch: Channel, afis: Iterable[Afi] | None = None) -> int:
    """Withdraw the stale paths left (all families, or ``afis``), through ``Rib.drain``: at
    once when few, else a slice per ``Rib.drain_step``. Returns how many go."""
    source = ch.stale_source
    if source is None:
        ch.stale.clear()
        ch.stale_paths.clear()
        ch.stale_displaced.clear()
        _forget(ch)
        return 0
    vrf = ch.settings.vrf
    swept = 0
    for afi in stale_families(ch) if afis is None else list(afis):
        # A slice per loop turn beyond a few thousand (rib/drain.py): a full table's sweep
        # would otherwise hold the event loop for seconds. What the source announces again
        # meanwhile is kept.
        held = ch.stale.pop(afi, None)
        if held:
            swept += len(held)
            rib.drain(vrf, afi, source, held)
        for by_id, sources in (
            (ch.stale_paths, ch.stale_path_sources),
            (ch.stale_displaced, ch.stale_displaced_sources),
        ):
            for path_id, routes in (by_id.pop(afi, None) or {}).items():
                swept += len(routes)
                rib.drain(vrf, afi, sources[path_id], routes)
    if not has_stale(ch):
        _forget(ch)
    return swept


def _forget(ch: Channel) -> None:
    """Nothing stale is left: the restart is over for the RIB."""
    live = ch.source
    if live is not None:  # the new session goes on with the per-path-id sources it took over
        for path_id, src in ch.stale_path_sources.items():
            if src.base is live:
                ch.path_sources.setdefault(path_id, src)
    ch.stale_source = None
    ch.stale_path_sources.clear()
    ch.stale_displaced_sources.clear()


def _withdraw(rib: Rib, vrf: str, afi: Afi, source: Source, prefixes: list[PrefixKey]) -> None:
    """Withdraw ``source``'s paths of ``prefixes`` and tell the kernel and the peers."""
    table = rib.table(vrf, afi)
    rib._propagate_many(vrf, afi, [c for c in map(table.withdraw, prefixes, repeat(source)) if c is not None])
    if rib.path_senders:  # ADD-PATH peers were sent every path, not only the selected ones
        rib._touch_paths(vrf, afi, prefixes)


def stale_families(ch: Channel) -> list[Afi]:
    """The families with stale paths (plain or ADD-PATH)."""
    return list(dict.fromkeys([*ch.stale, *ch.stale_paths, *ch.stale_displaced]))


def has_stale(ch: Channel) -> bool:
    return bool(ch.stale or ch.stale_paths or ch.stale_displaced)


def stale_count(ch: Channel) -> int:
    n = sum(len(held) for held in ch.stale.values())
    for paths in (ch.stale_paths, ch.stale_displaced):
        n += sum(len(held) for by_id in paths.values() for held in by_id.values())
    return n


def is_stale(ch: Channel, afi: Afi, prefix: PrefixKey, source: Source) -> bool:
    old = ch.stale_source
    if old is None:
        return False
    if source is old:
        return prefix in ch.stale.get(afi, ())
    if source.base is old:  # an ADD-PATH path of the restarting session
        path_id = source.path_id
        displaced = source is ch.stale_displaced_sources.get(path_id)
        held = (ch.stale_displaced if displaced else ch.stale_paths).get(afi, {}).get(path_id)
        return held is not None and prefix in held
    return False
