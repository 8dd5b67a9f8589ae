"""The JSON views the control socket answers with (shapes fixed by INTERFACE.md)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rib.attrs import ORIGIN_NAMES, Origin, format_community
from rib.decision import DEFAULT, Decision, loss_reason
from rib.prefix import Afi, PrefixKey, key_to_network, make_key, parse_prefix
from rib.route import Path
from rib.table import Dest, LocRib

REDISTRIBUTED = ("kernel", "connected")  # names of the redistribution sources (bgpd.redistribute)
UNUSABLE = "next hop unresolvable"


def _redistributed(path: Path) -> bool:
    return path.source.peer is None and path.source.name in REDISTRIBUTED


def _reason(best: Path, p: Path, decision: Decision) -> str:
    if decision.resolve is not None and decision.cost(p) is None:
        return UNUSABLE
    return loss_reason(best, p, decision)


def path_json(path: Path, best: bool, ecmp: bool, now: float, reason: str | None = None) -> dict[str, Any]:
    a = path.attrs
    out: dict[str, Any] = {
        "best": best,
        "ecmp": ecmp,
        "peer": path.source.peer_str,
        "next_hop": str(a.next_hop) if a.next_hop is not None else None,
        "as_path": a.as_path_flat(),
        "origin": ORIGIN_NAMES.get(Origin(a.origin), str(a.origin))
        if a.origin in (0, 1, 2)
        else str(a.origin),
        "local_pref": a.local_pref,
        "med": a.med,
        "communities": [format_community(c) for c in a.communities],
        "large_communities": [f"{x}:{y}:{z}" for x, y, z in a.large_communities],
        # A redistributed route is local with its source named: "kernel" or "connected".
        "source": path.source.name if _redistributed(path) else path.source.kind.label,
        "age_s": round(max(0.0, now - path.since), 1),
    }
    if path.source.base is not None:  # one of the peer's ADD-PATH paths: its path id (RFC 7911)
        out["path_id"] = path.source.path_id
    if reason is not None:
        out["reason"] = reason
    return out


def dest_json(
    vrf: str,
    table_id: int,
    afi: Afi,
    prefix: PrefixKey,
    dest: Dest,
    show_all: bool,
    now: float,
    decision: Decision = DEFAULT,
) -> dict[str, Any]:
    selected = dest.selected
    paths = [path_json(p, i == 0, len(selected) > 1, now) for i, p in enumerate(selected)]
    if show_all and selected:
        chosen = {id(p) for p in selected}
        for p in dest.paths:
            if id(p) not in chosen:
                paths.append(path_json(p, False, False, now, _reason(selected[0], p, decision)))
    elif show_all:  # no usable path at all: every next hop is unresolvable
        paths.extend(path_json(p, False, False, now, UNUSABLE) for p in dest.paths)
    return {"vrf": vrf, "table": table_id, "prefix": str(key_to_network(afi, prefix)), "paths": paths}


def _sort_key(afi: Afi, prefix: PrefixKey) -> tuple[bytes, int]:
    body = prefix[1:]
    return body + bytes(afi.addr_len - len(body)), prefix[0]


def lookup(table: LocRib, query: str) -> list[tuple[PrefixKey, Dest]]:
    """A prefix is matched exactly; an address by longest match."""
    if "/" in query:
        afi, key = parse_prefix(query)
        if afi != table.afi:
            return []
        dest = table.get(key)
        return [(key, dest)] if dest is not None else []
    addr = ipaddress.ip_address(query)
    if (addr.version == 4) != (table.afi == Afi.IPV4):
        return []
    packed = addr.packed
    for plen in range(table.afi.max_plen, -1, -1):
        key = make_key(plen, packed)
        dest = table.get(key)
        if dest is not None:
            return [(key, dest)]
    return []


FibStatus = Callable[[int, Afi, PrefixKey], tuple[str | None, str | None]]
"""(kernel table, family, prefix) -> (where the route stands in the kernel, why it is not there)."""
StaleCheck = Callable[[Afi, PrefixKey, Path], bool]
"""(family, prefix, path) -> whether the path is a restarting neighbour's stale one (RFC 4724)."""


def routes_json(
    tables: Iterable[tuple[str, int, LocRib]],
    prefix: str | None,
    show_all: bool,
    now: float,
    fib_status: FibStatus | None = None,
    stale: StaleCheck | None = None,
) -> dict[str, Any]:
    return {"routes": list(iter_routes_json(tables, prefix, show_all, now, fib_status, stale))}


def iter_routes_json(
    tables: Iterable[tuple[str, int, LocRib]],
    prefix: str | None,
    show_all: bool,
    now: float,
    fib_status: FibStatus | None = None,
    stale: StaleCheck | None = None,
) -> Iterator[dict[str, Any]]:
    """The entries of ``routes_json``, one at a time (the daemon takes a big table in slices).

    A whole table is sorted by key only (bytes: nothing for the cyclic GC to walk) and each
    route read when its turn comes: one that left the table meanwhile is skipped.
    """
    for vrf, table_id, table in tables:
        items: Iterable[tuple[PrefixKey, Dest | None]]
        if prefix is not None:
            items = lookup(table, prefix)
        else:
            afi = table.afi
            keys = sorted(table.dests, key=lambda k: _sort_key(afi, k))
            items = zip(keys, map(table.get, keys), strict=True)
        for key, dest in items:
            if dest is not None and (dest.selected or (show_all and dest.paths)):
                entry = dest_json(vrf, table_id, table.afi, key, dest, show_all, now, table.decision)
                if fib_status is not None:
                    # "installed" | "unresolved" | "failed" | "pending" | null (not for the kernel)
                    entry["fib"], reason = fib_status(table_id, table.afi, key)
                    if reason is not None:
                        entry["fib_error"] = reason
                if stale is not None:
                    # dest_json lists the selected paths first, then (with --all) the others in order.
                    chosen = {id(p) for p in dest.selected}
                    ordered = [*dest.selected, *(p for p in dest.paths if id(p) not in chosen)]
                    for pj, path in zip(entry["paths"], ordered, strict=False):
                        pj["stale"] = stale(table.afi, key, path)
                yield entry


def counts_json(tables: Iterable[tuple[str, int, LocRib]]) -> dict[str, Any]:
    return {
        "counts": [
            {"vrf": vrf, "afi": t.afi.name_lower, "routes": len(t), "paths": t.path_count}
            for vrf, _tid, t in tables
        ]
    }
