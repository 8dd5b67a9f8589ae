"""The JSON views the control socket answers with (shapes fixed by INTERFACE.md)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from rib.attrs import ORIGIN_NAMES, Origin, format_community
from rib.decision import DEFAULT, Decision, loss_reason
from rib.prefix import Afi, PrefixKey, key_to_network, make_key, parse_prefix
from rib.route import Path
from rib.table import Dest, LocRib


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
        "source": path.source.kind.label,
        "age_s": round(max(0.0, now - path.since), 1),
    }
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
                paths.append(path_json(p, False, False, now, loss_reason(selected[0], p, decision)))
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


def routes_json(
    tables: Iterable[tuple[str, int, LocRib]],
    prefix: str | None,
    show_all: bool,
    now: float,
    fib_status: FibStatus | None = None,
) -> dict[str, Any]:
    routes = []
    for vrf, table_id, table in tables:
        if prefix is not None:
            items = lookup(table, prefix)
        else:
            afi = table.afi
            items = sorted(table.items(), key=lambda kv: _sort_key(afi, kv[0]))
        for key, dest in items:
            if dest.selected:
                entry = dest_json(vrf, table_id, table.afi, key, dest, show_all, now, table.decision)
                if fib_status is not None:
                    # "installed" | "unresolved" | "failed" | "pending" | null (not for the kernel)
                    entry["fib"], reason = fib_status(table_id, table.afi, key)
                    if reason is not None:
                        entry["fib_error"] = reason
                routes.append(entry)
    return {"routes": routes}


def counts_json(tables: Iterable[tuple[str, int, LocRib]]) -> dict[str, Any]:
    return {
        "counts": [
            {"vrf": vrf, "afi": t.afi.name_lower, "routes": len(t), "paths": t.path_count}
            for vrf, _tid, t in tables
        ]
    }
