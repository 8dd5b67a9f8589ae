"""Policy actions (`set.*`): each key compiles to a change of the attribute set.

Keys: local_pref, med, next_hop ("self" or an address), origin, community_add,
community_remove, community_set, community_delete (patterns with ``*``), the same four for
large_community, and prepend (our own AS, n times).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from policy.match import (
    ORIGIN_BY_NAME,
    _int,
    _text,
    community_pattern,
    large_community_pattern,
)
from rib.attrs import PathAttrs, parse_community, parse_large_community

# Attribute changes are collected in a dict and applied with one ``with_`` (one intern).
Setter = Callable[[PathAttrs, dict[str, Any]], None]

# `set.next_hop = "self"` is carried as the unspecified address of the family; the channel
# replaces it (export: our session address; import: the neighbour's).
SELF_V4 = ipaddress.IPv4Address(0)
SELF_V6 = ipaddress.IPv6Address(0)


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


def _current(attrs: PathAttrs, ch: dict[str, Any], name: str) -> Any:
    return ch[name] if name in ch else getattr(attrs, name)


def _s_local_pref(value: object, local_asn: int) -> Setter:
    n = _int(value)
    return lambda a, ch: ch.__setitem__("local_pref", n)


def _s_med(value: object, local_asn: int) -> Setter:
    n = _int(value)
    return lambda a, ch: ch.__setitem__("med", n)


def _s_origin(value: object, local_asn: int) -> Setter:
    name = _text(value)
    if name not in ORIGIN_BY_NAME:
        raise ValueError(f'"{name}" is not one of igp, egp, incomplete')
    code = ORIGIN_BY_NAME[name]
    return lambda a, ch: ch.__setitem__("origin", code)


def _s_next_hop(value: object, local_asn: int) -> Setter:
    text = _text(value)
    if text == "self":

        def set_self(a: PathAttrs, ch: dict[str, Any]) -> None:
            cur = _current(a, ch, "next_hop")
            ch["next_hop"] = SELF_V6 if cur is not None and cur.version == 6 else SELF_V4
            ch["next_hop_ll"] = None

        return set_self
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f'"{text}" is not "self" or an address') from None
    if addr.is_unspecified or addr.is_multicast:
        raise ValueError(f"{addr} cannot be a next hop")

    def set_addr(a: PathAttrs, ch: dict[str, Any]) -> None:
        ch["next_hop"] = addr
        ch["next_hop_ll"] = None

    return set_addr


def _s_prepend(value: object, local_asn: int) -> Setter:
    n = _int(value, 1, 32)

    def prepend(a: PathAttrs, ch: dict[str, Any]) -> None:
        # Applied to the path as changed so far: build it with the attrs' own prepend logic.
        path = _current(a, ch, "as_path")
        ch["as_path"] = PathAttrs(as_path=path).prepend(local_asn, n).as_path

    return prepend


def _community_setters(
    field: str, parse: Callable[[str], Any], pattern: Callable[[str], Any]
) -> dict[str, Any]:
    def add(value: object, local_asn: int) -> Setter:
        vals = tuple(parse(_text(v)) for v in _list(value))

        def f(a: PathAttrs, ch: dict[str, Any]) -> None:
            ch[field] = tuple(dict.fromkeys(_current(a, ch, field) + vals))

        return f

    def remove(value: object, local_asn: int) -> Setter:
        vals = {parse(_text(v)) for v in _list(value)}

        def f(a: PathAttrs, ch: dict[str, Any]) -> None:
            ch[field] = tuple(c for c in _current(a, ch, field) if c not in vals)

        return f

    def set_(value: object, local_asn: int) -> Setter:
        vals = tuple(dict.fromkeys(parse(_text(v)) for v in _list(value)))
        return lambda a, ch: ch.__setitem__(field, vals)

    def delete(value: object, local_asn: int) -> Setter:
        pats = [pattern(_text(v)) for v in _list(value)]

        def f(a: PathAttrs, ch: dict[str, Any]) -> None:
            ch[field] = tuple(c for c in _current(a, ch, field) if not any(p(c) for p in pats))

        return f

    return {"add": add, "remove": remove, "set": set_, "delete": delete}


SETTERS: dict[str, Callable[[object, int], Setter]] = {
    "local_pref": _s_local_pref,
    "med": _s_med,
    "origin": _s_origin,
    "next_hop": _s_next_hop,
    "prepend": _s_prepend,
}
for _op, _f in _community_setters("communities", parse_community, community_pattern).items():
    SETTERS[f"community_{_op}"] = _f
_LARGE = _community_setters("large_communities", parse_large_community, large_community_pattern)
for _op, _f in _LARGE.items():
    SETTERS[f"large_community_{_op}"] = _f
SET_KEYS = frozenset(SETTERS)
