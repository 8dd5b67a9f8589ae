"""Text rendering of the daemon's answers for ``bgpd-cli``, in the birdc habits operators know.

Pure functions from the JSON data (INTERFACE.md shapes) to text; stdlib only. Optional keys may be
missing or null everywhere: a newer or older daemon must still render.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "fmt_duration",
    "render",
    "render_counts",
    "render_message",
    "render_neighbors",
    "render_routes",
    "render_vrfs",
]

ORIGIN_CODE = {"igp": "i", "egp": "e", "incomplete": "?"}
PREFIX_WIDTH = 20  # birdc pads the prefix column to 20 characters


def fmt_duration(seconds: float | None) -> str:
    """``00:00:12`` below a day, ``3d04h05m`` above (FRR's Up/Down habit); ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _table(headers: Sequence[str], rows: list[list[str]], right: Sequence[int] = ()) -> list[str]:
    """Columns two spaces apart; the columns in ``right`` (numbers) right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = []
    for row in [list(headers), *rows]:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return out


def _num(v: object) -> str:
    return "-" if v is None else str(v)


def _count(v: object) -> str:
    """A number, or the length of a list (the daemon may list the members)."""
    return str(len(v)) if isinstance(v, list) else _num(v)


def _value(v: object) -> str:
    """A JSON value as one readable line (for the free-form neighbor details)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v) or "-"
    if isinstance(v, dict):
        parts = []
        for k, x in v.items():
            # Lists inside a mapping are space-separated so the commas still separate the entries.
            shown = " ".join(_value(i) for i in x) if isinstance(x, list) else _value(x)
            parts.append(f"{k}={shown}")
        return ", ".join(parts) or "-"
    return str(v)


# --- show routes ------------------------------------------------------------------------------------


def _community(c: object) -> str:
    """birdc writes standard communities as ``(65010,100)``; accepts the int or "A:B" form."""
    if isinstance(c, int) and not isinstance(c, bool):
        return f"({c >> 16},{c & 0xFFFF})"
    text = str(c)
    hi, sep, lo = text.partition(":")
    return f"({hi},{lo})" if sep and hi.isdigit() and lo.isdigit() else text


def _large_community(c: object) -> str:
    parts = [str(x) for x in c] if isinstance(c, list | tuple) else str(c).split(":")
    return f"({', '.join(parts)})" if len(parts) == 3 else str(c)


def _as_path_tail(path: dict[str, Any]) -> str:
    """``[AS64512i]``: the origin AS and the origin code, as birdc shows them."""
    code = ORIGIN_CODE.get(str(path.get("origin")), "?")
    as_path = path.get("as_path") or []
    last = as_path[-1] if as_path else None
    if isinstance(last, list):  # an AS_SET: no single origin AS
        last = last[-1] if last else None
    return f"[AS{last}{code}]" if last is not None else f"[{code}]"


def _path_lines(prefix: str, path: dict[str, Any], multipath: bool) -> list[str]:
    peer = path.get("peer") or path.get("source") or "local"
    if path.get("path_id") is not None:  # one of the peer's ADD-PATH paths
        peer = f"{peer} id {path['path_id']}"
    best, ecmp = bool(path.get("best")), bool(path.get("ecmp"))
    line = f"{prefix:<{PREFIX_WIDTH}} unicast [{peer} {fmt_duration(path.get('age_s'))}]"
    if best or ecmp:
        line += " *"
        # Only worth saying when the route really has several next hops installed.
        if ecmp and multipath:
            line += " ecmp"
    if path.get("local_pref") is not None:
        line += f" ({path['local_pref']})"
    line += f" {_as_path_tail(path)}"
    out = [line]
    if path.get("next_hop"):
        out.append(f"\tvia {path['next_hop']}")
    if path.get("med") is not None:
        out.append(f"\tBGP.med: {path['med']}")
    if path.get("communities"):
        out.append("\tBGP.community: " + " ".join(_community(c) for c in path["communities"]))
    if path.get("large_communities"):
        large = " ".join(_large_community(c) for c in path["large_communities"])
        out.append(f"\tBGP.large_community: {large}")
    if path.get("reason") and not best:
        out.append(f"\tnot best: {path['reason']}")
    return out


def render_routes(data: dict[str, Any]) -> str:
    routes = data.get("routes") or []
    if not routes:
        return "No routes."
    lines: list[str] = []
    table = None
    for route in routes:
        here = (route.get("vrf"), route.get("table"))
        if here != table:
            if lines:
                lines.append("")
            table = here
            kernel = f" (kernel table {here[1]})" if here[1] is not None else ""
            lines.append(f"Table {here[0]}{kernel}:")
        paths = route.get("paths") or []
        multipath = sum(1 for p in paths if p.get("ecmp") or p.get("best")) > 1
        prefix = str(route.get("prefix"))
        if not paths:
            lines.append(f"{prefix:<{PREFIX_WIDTH}} (no paths)")
        for i, path in enumerate(paths):
            lines.extend(_path_lines(prefix if i == 0 else "", path, multipath))
    return "\n".join(lines)


def render_counts(data: dict[str, Any]) -> str:
    counts = data.get("counts") or []
    if not counts:
        return "No routes."
    rows = [
        [str(c.get("vrf")), str(c.get("afi")), _num(c.get("routes")), _num(c.get("paths"))] for c in counts
    ]
    if len(rows) > 1:
        total_routes = sum(int(c.get("routes") or 0) for c in counts)
        total_paths = sum(int(c.get("paths") or 0) for c in counts)
        rows.append(["Total", "", str(total_routes), str(total_paths)])
    return "\n".join(_table(["VRF", "AFI", "Routes", "Paths"], rows, right=(2, 3)))


# --- show neighbors ---------------------------------------------------------------------------------

_ROW_KEYS = {"address", "asn", "vrf", "state", "uptime_s", "received", "accepted", "advertised", "last_error"}
# Optional details shown after the standard ones, in this order; any other key follows, labelled by its name.
_DETAIL_LABELS = {
    "hold_time": "Hold time",
    "last_notification": "Last notification",
    "flaps": "Flaps",
    "capabilities": "Capabilities",
}


def _proto_state(n: dict[str, Any]) -> str:
    """birdc's State column: up, start (trying) or down (disabled by the operator)."""
    state = str(n.get("state") or "").lower()
    if state == "established":
        return "up"
    if state in ("disabled", "down", "admin down", "shutdown"):
        return "down"
    if n.get("enabled") is False or n.get("disabled"):
        return "down"
    return "start"


def _info(n: dict[str, Any]) -> str:
    state = str(n.get("state") or "-")
    if state.lower() == "established":
        counts = "/".join(_num(n.get(k)) for k in ("received", "accepted", "advertised"))
        return f"{state}  rcvd/acc/adv {counts}"
    gr = n.get("graceful_restart")
    if isinstance(gr, dict) and gr.get("state") == "restarting":  # we keep its routes as helper
        left = _num(gr.get("time_left_s"))
        return f"{state}  graceful restart: {_num(gr.get('stale'))} stale, {left}s left"
    info = f"{state}  {n['last_error']}" if n.get("last_error") else state
    if n.get("withdrawing"):  # its last session's paths still leaving, a slice per loop turn
        info += f"  (withdrawing {_num(n['withdrawing'])} prefixes)"
    return info


def _details(n: dict[str, Any]) -> list[str]:
    counts = [_num(n.get(k)) for k in ("received", "accepted", "advertised")]
    items: list[tuple[str, object]] = []
    if "description" in n:
        items.append(("Description", n["description"]))
    items.append(("Prefixes", f"{counts[0]} received, {counts[1]} accepted, {counts[2]} advertised"))
    items.append(("Last error", n.get("last_error")))
    items.extend((label, n[key]) for key, label in _DETAIL_LABELS.items() if key in n)
    skip = _ROW_KEYS | _DETAIL_LABELS.keys() | {"description"}
    items.extend((key.replace("_", " ").capitalize(), v) for key, v in n.items() if key not in skip)
    width = max(20, max(len(label) for label, _v in items) + 2)  # aligned across neighbors
    lines: list[str] = []
    for label, v in items:
        lines.extend(_detail_lines(label, v, 2, width))
    return lines


def _detail_lines(label: str, v: object, indent: int, width: int) -> list[str]:
    """One ``Label: value`` line, or for a mapping a heading with its keys indented below
    (as birdc's `show protocols all` nests channel details)."""
    pad = " " * indent
    if isinstance(v, dict) and v and (indent > 2 or any(isinstance(x, dict) for x in v.values())):
        out = [f"{pad}{label}:"]
        inner = max(width - 2, max(len(str(k)) for k in v) + 2)
        for k, x in v.items():
            out.extend(_detail_lines(str(k).replace("_", " "), x, indent + 2, inner))
        return out
    return [f"{pad}{label + ':':<{width}}{_value(v)}"]


def render_neighbors(data: dict[str, Any], detail: bool = False) -> str:
    neighbors = data.get("neighbors") or []
    if not neighbors:
        return "No neighbors."
    rows = [
        [
            str(n.get("address")),
            _num(n.get("asn")),
            str(n.get("vrf") or "main"),
            _proto_state(n),
            fmt_duration(n.get("uptime_s")),
            _info(n),
        ]
        for n in neighbors
    ]
    lines = _table(["Address", "AS", "VRF", "State", "Since", "Info"], rows, right=(1,))
    if not detail:
        return "\n".join(lines)
    out = [lines[0]]
    for i, n in enumerate(neighbors):
        if i:
            out.append("")
        out.append(lines[i + 1])
        out.extend(_details(n))
    return "\n".join(out)


# --- show vrfs, messages ----------------------------------------------------------------------------


def render_vrfs(data: dict[str, Any]) -> str:
    vrfs = data.get("vrfs") or []
    if not vrfs:
        return "No VRFs."
    rows = [
        [
            str(v.get("name")),
            _num(v.get("table")),
            _num(v.get("routes_ipv4")),
            _num(v.get("routes_ipv6")),
            _count(v.get("neighbors")),
        ]
        for v in vrfs
    ]
    headers = ["Name", "Table", "IPv4 routes", "IPv6 routes", "Neighbors"]
    return "\n".join(_table(headers, rows, right=(1, 2, 3, 4)))


def render_message(data: dict[str, Any]) -> str:
    return str(data.get("message") or "OK")


def render(view: str, data: dict[str, Any], detail: bool = False) -> str:
    """Dispatch on the view the CLI chose for its command."""
    if view == "routes":
        return render_routes(data)
    if view == "counts":
        return render_counts(data)
    if view == "neighbors":
        return render_neighbors(data, detail)
    if view == "vrfs":
        return render_vrfs(data)
    return render_message(data)
