"""The TOML configuration file (INTERFACE.md) -> ``Config``.

Every problem in the file is collected and raised together in one ``ConfigError``: an operator fixing a
file one error per run is exactly what this avoids. Each issue names the file, the key path
(``neighbor[2].hold_time``, 0-based array indexes in file order) and a plain reason.

Validation happens in two passes: each section is checked on its own (types, ranges, unknown keys),
then names are cross-checked (a neighbor's VRF, template and policies must exist). A value that failed
its own check is simply left out, so one mistake is reported once, not again by every key that uses it.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable, Iterable
from typing import Any, Literal, cast

from bgpd.config.errors import ConfigError, ConfigIssue
from bgpd.config.model import (
    DEFAULT_RULE_PRIORITY,
    MAIN_TABLE,
    MAIN_VRF,
    Config,
    ControlConfig,
    KernelConfig,
    LogConfig,
    MetricsConfig,
    NeighborConfig,
    NetworkConfig,
    PolicyConfig,
    PolicyTerm,
    RedistributeConfig,
    RouterConfig,
    VrfConfig,
    VrfRule,
)
from policy.filters import MATCH_KEYS as POLICY_MATCH_KEYS
from policy.filters import SET_KEYS as POLICY_SET_KEYS
from policy.filters import check_match, check_set
from rib.attrs import parse_community
from rib.prefix import AFI_BY_NAME, Afi, IPAddress, IPNetwork, key_from_network

__all__ = ["load_config", "parse_config", "parse_prefix_match", "summarize"]

U32_MAX = 0xFFFFFFFF
# Linux reserves these routing tables: 0 unspec, 253 default, 254 main, 255 local.
RESERVED_TABLES = {0: "unspec", 253: "default", 254: "main", 255: "local"}
# rtm_protocol values 0..4 are the kernel's own (unspec, redirect, kernel, boot, static).
RESERVED_PROTOCOLS = 4
MAX_UNIX_PATH = 107  # sun_path is 108 bytes including the terminating NUL
MAX_MD5_KEY = 80  # TCP_MD5SIG_MAXKEYLEN
FILTER_KEYWORDS = ("all", "none")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


# --- value checks -----------------------------------------------------------------------------------


class _Bad(Exception):
    """A value failed its check. ``problems`` are (sub-path, reason): a list reports each bad item."""

    def __init__(self, reason: str = "", sub: str = "", problems: list[tuple[str, str]] | None = None):
        super().__init__(reason)
        self.problems = problems if problems is not None else [(sub, reason)]


Check = Callable[[Any], Any]


def _describe(v: object) -> str:
    """``a string ("90")``: the TOML type of a value, with the value when it is short."""
    if isinstance(v, bool):
        return f"a boolean ({'true' if v else 'false'})"
    if isinstance(v, int):
        return f"an integer ({v})"
    if isinstance(v, float):
        return f"a float ({v})"
    if isinstance(v, str):
        shown = v if len(v) <= 40 else v[:37] + "..."
        return f'a string ("{shown}")'
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    return f"a date/time ({v})"


def _int(v: object) -> int:
    # bool is an int subclass in Python; TOML's true/false is never a number.
    if isinstance(v, bool) or not isinstance(v, int):
        hint = " (write numbers without quotes)" if isinstance(v, str) and v.strip().isdigit() else ""
        raise _Bad(f"expected an integer, got {_describe(v)}{hint}")
    return v


def int_range(lo: int, hi: int, what: str = "") -> Check:
    def check(v: object) -> int:
        n = _int(v)
        if not lo <= n <= hi:
            raise _Bad(f"{what + ' ' if what else ''}{n} is out of range ({lo}..{hi})")
        return n

    return check


def _bool(v: object) -> bool:
    if not isinstance(v, bool):
        hint = " (write true or false without quotes)" if v in ("true", "false") else ""
        raise _Bad(f"expected true or false, got {_describe(v)}{hint}")
    return v


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise _Bad(f"expected a string, got {_describe(v)}")
    return v


def _nonempty(v: object) -> str:
    s = _str(v)
    if not s:
        raise _Bad("must not be empty")
    return s


def one_of(*choices: str) -> Check:
    def check(v: object) -> str:
        s = _str(v)
        if s not in choices:
            raise _Bad(f'"{s}" is not one of {", ".join(choices)}')
        return s

    return check


def _ip(v: object) -> IPAddress:
    s = _str(v)
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        raise _Bad(f'"{s}" is not a valid IPv4 or IPv6 address') from None


def _ip_text(v: object) -> str:
    return str(_ip(v))


def _peer_ip(v: object) -> IPAddress:
    addr = _ip(v)
    if addr.is_unspecified or addr.is_multicast:
        raise _Bad(f"{addr} cannot be a neighbor address (unspecified or multicast)")
    return addr


def _router_id(v: object) -> str:
    s = _str(v)
    try:
        rid = ipaddress.IPv4Address(s)
    except ValueError:
        raise _Bad(f'"{s}" is not a dotted-quad IPv4 address (e.g. "10.0.0.1")') from None
    if int(rid) == 0:
        raise _Bad("0.0.0.0 is not a valid router id (RFC 6286: it must be non-zero)")
    return str(rid)


def _hold_time(v: object) -> int:
    n = _int(v)
    if n != 0 and not 3 <= n <= 65535:
        raise _Bad(f"{n} is not a valid hold time (0 = no keepalives, or 3..65535 seconds)")
    return n


def _seconds(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad(f"expected a number of seconds, got {_describe(v)}")
    if not 0 < v <= 65535:
        raise _Bad(f"{v} is out of range (more than 0, at most 65535 seconds)")
    return float(v)


def _password(v: object) -> str:
    s = _nonempty(v)
    if len(s.encode()) > MAX_MD5_KEY:
        raise _Bad(f"longer than {MAX_MD5_KEY} bytes, the limit of a TCP MD5 key")
    return s


def _protocol(v: object) -> int:
    n = _int(v)
    if not 1 <= n <= 255:
        raise _Bad(f"{n} is out of range (1..255)")
    if n <= RESERVED_PROTOCOLS:
        raise _Bad(f"{n} is reserved for the kernel's own routes (0..4); use 5..255, e.g. 186")
    return n


def _socket_path(v: object) -> str:
    s = _nonempty(v)
    if len(s.encode()) > MAX_UNIX_PATH:
        raise _Bad(f"longer than {MAX_UNIX_PATH} bytes, the limit of a Unix socket path")
    return s


def list_of(item: Check, *, nonempty: bool = False, unique: bool = False) -> Check:
    def check(v: object) -> list[Any]:
        if not isinstance(v, list):
            raise _Bad(f"expected an array, got {_describe(v)}")
        if nonempty and not v:
            raise _Bad("must not be empty")
        out: list[Any] = []
        problems: list[tuple[str, str]] = []
        for i, x in enumerate(v):
            try:
                value = item(x)
            except _Bad as e:
                problems.extend((f"[{i}]{sub}", reason) for sub, reason in e.problems)
                continue
            if unique and value in out:
                problems.append((f"[{i}]", f"{x} is listed twice"))
                continue
            out.append(value)
        if problems:
            raise _Bad(problems=problems)
        return out

    return check


def one_or_list(item: Check) -> Check:
    """A single value or a non-empty array of them (policy keys take either); kept as written."""
    many = list_of(item, nonempty=True)

    def check(v: object) -> object:
        if isinstance(v, list):
            many(v)
        else:
            item(v)
        return v

    return check


def _afi(v: object) -> Afi:
    s = one_of(*AFI_BY_NAME)(v)
    return AFI_BY_NAME[s]


def _community(v: object) -> str:
    """Checked but kept as written: policies store values as given."""
    s = _str(v)
    try:
        parse_community(s)
    except ValueError as e:
        raise _Bad(str(e) if "community" in str(e) else f'"{s}" is not a community (ASN:VALUE)') from None
    return s


def _community_value(v: object) -> int:
    return parse_community(_community(v))


def parse_prefix_match(text: str) -> tuple[IPNetwork, int, int]:
    """Parse a policy prefix match: ``10.0.0.0/8``, ``10.0.0.0/8 le 24``, ``10.0.0.0/8 ge 16 le 24``.

    Returns (network, ge, le): the matched prefix lengths are ge..le (both the prefix's own length
    when neither is given). Raises ValueError with a plain reason.
    """
    words = text.split()
    if not words:
        raise ValueError("empty prefix")
    try:
        net = ipaddress.ip_network(words[0], strict=True)
    except ValueError as e:
        raise ValueError(_prefix_reason(words[0], e)) from None
    ge = le = None
    rest = words[1:]
    if len(rest) % 2:
        raise ValueError(f'"{text}": expected PREFIX [ge N] [le N]')
    for op, num in zip(rest[::2], rest[1::2], strict=True):
        if op not in ("ge", "le") or not num.isdigit():
            raise ValueError(f'"{text}": expected PREFIX [ge N] [le N]')
        n = int(num)
        if not net.prefixlen <= n <= net.max_prefixlen:
            raise ValueError(f'"{text}": {op} {n} is out of range ({net.prefixlen}..{net.max_prefixlen})')
        if op == "ge":
            if ge is not None:
                raise ValueError(f'"{text}": ge given twice')
            ge = n
        else:
            if le is not None:
                raise ValueError(f'"{text}": le given twice')
            le = n
    lo = ge if ge is not None else net.prefixlen
    # "ge N" alone means N..max (as in FRR prefix lists); nothing means exactly this length.
    hi = le if le is not None else (net.max_prefixlen if ge is not None else net.prefixlen)
    if lo > hi:
        raise ValueError(f'"{text}": ge {lo} is greater than le {hi}')
    return net, lo, hi


def _prefix_reason(text: str, err: ValueError) -> str:
    if "host bits set" in str(err):
        fixed = ipaddress.ip_network(text, strict=False)
        return f'"{text}" has host bits set (did you mean "{fixed}"?)'
    return f'"{text}" is not a valid prefix (e.g. "10.0.0.0/8" or "2001:db8::/32")'


def _prefix_match(v: object) -> str:
    s = _str(v)
    try:
        parse_prefix_match(s)
    except ValueError as e:
        raise _Bad(str(e)) from None
    return s


def _network(v: object) -> IPNetwork:
    s = _str(v)
    try:
        return ipaddress.ip_network(s, strict=True)
    except ValueError as e:
        raise _Bad(_prefix_reason(s, e)) from None


# --- field specifications ---------------------------------------------------------------------------

ROUTER_FIELDS: dict[str, Check] = {
    "asn": int_range(1, U32_MAX, "ASN"),
    "router_id": _router_id,
    "listen": list_of(_ip_text, unique=True),
    "port": int_range(1, 65535, "port"),
    "multipath_relax": _bool,
    "always_compare_med": _bool,
    "prefer_older": _bool,
    "cluster_id": _router_id,
    "graceful_restart": _bool,
}
CONTROL_FIELDS: dict[str, Check] = {"socket": _socket_path, "group": _nonempty}


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:9179`` or ``[::1]:9179`` -> (address, port). Raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError("expected ADDRESS:PORT")
    host = host.strip("[]")
    ipaddress.ip_address(host)
    p = int(port)
    if not 0 < p < 65536:
        raise ValueError(f"port {p} outside 1..65535")
    return host, p


def _hostport(v: object) -> str:
    text = _nonempty(v)
    try:
        parse_listen(text)
    except ValueError as e:
        raise _Bad(f'{_describe(v)} is not ADDRESS:PORT (e.g. "127.0.0.1:9179"): {e}') from None
    return text


METRICS_FIELDS: dict[str, Check] = {"listen": _hostport}
LOG_FIELDS: dict[str, Check] = {"level": one_of("debug", "info", "warning", "error")}
KERNEL_FIELDS: dict[str, Check] = {
    "enabled": _bool,
    "protocol": _protocol,
    "ecmp": int_range(1, 256),
    "persist": _bool,
    "resolve_next_hops": _bool,
}
MAX_IFNAME = 15  # IFNAMSIZ less the terminating NUL
RULE_SELECTORS = ("from", "iif", "fwmark")


def _ifname(v: object) -> str:
    s = _nonempty(v)
    if len(s) > MAX_IFNAME or "/" in s or any(c.isspace() for c in s) or s in (".", ".."):
        raise _Bad(f'"{s}" is not a valid interface name (1..{MAX_IFNAME} characters, no "/" or spaces)')
    return s


RULE_FIELDS: dict[str, Check] = {
    "from": _network,
    "iif": _ifname,
    "fwmark": int_range(0, U32_MAX, "fwmark"),
    # 0 is the kernel's `local` rule, 32766 `main`, 32767 `default`.
    "priority": int_range(1, 32765, "priority"),
}


def _rule(v: object) -> dict[str, Any]:
    """One steering rule: a table of selectors (every one given must match) and an optional priority."""
    if not isinstance(v, dict):
        raise _Bad(f'expected a table such as {{from = "10.10.0.0/16"}}, got {_describe(v)}')
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, value in v.items():
        check = RULE_FIELDS.get(key)
        if check is None:
            problems.append((f".{key}", f"unknown key (known: {', '.join(RULE_FIELDS)})"))
            continue
        try:
            out[key] = check(value)
        except _Bad as e:
            problems.extend((f".{key}{sub}", reason) for sub, reason in e.problems)
    if not problems and not any(k in out for k in RULE_SELECTORS):
        problems.append(("", "a rule needs from, iif or fwmark (without one it would take all traffic)"))
    if problems:
        raise _Bad(problems=problems)
    return out


VRF_FIELDS: dict[str, Check] = {
    "table": int_range(1, U32_MAX, "table"),
    "rules": list_of(_rule, unique=True),
    "rule_priority": int_range(1, 32765, "rule priority"),
    "device": _ifname,
}
NEIGHBOR_FIELDS: dict[str, Check] = {
    "address": _peer_ip,
    "asn": int_range(1, U32_MAX, "ASN"),
    "template": _nonempty,
    "vrf": _nonempty,
    "description": _str,
    "source_address": _ip,
    "passive": _bool,
    "port": int_range(1, 65535, "port"),
    "hold_time": _hold_time,
    "connect_retry": _seconds,
    "password": _password,
    "ttl_security": _bool,
    "multihop": int_range(1, 255, "TTL"),
    "import": _nonempty,
    "export": _nonempty,
    "next_hop_self": _bool,
    "max_prefixes": int_range(0, U32_MAX),
    "max_prefixes_restart": int_range(0, 86400),
    "address_families": list_of(_afi, nonempty=True, unique=True),
    "graceful_restart": _bool,
    "graceful_notification": _bool,  # RFC 8538
    "restart_time": int_range(0, 4095),  # a 12-bit field in the capability (RFC 4724)
    "stale_time": int_range(1, 86400),
    "send_hold_time": int_range(0, 86400),  # RFC 9687; 0: off
    "add_path": one_of("off", "receive", "send", "both"),
    "route_reflector_client": _bool,
    "allow_local_as": int_range(0, 255),
    "enforce_first_as": _bool,
    "next_hop_keep": _bool,
}
TEMPLATE_FIELDS = {k: v for k, v in NEIGHBOR_FIELDS.items() if k not in ("address", "template")}
NETWORK_FIELDS: dict[str, Check] = {
    "prefix": _network,
    "vrf": _nonempty,
    "communities": list_of(_community_value),
    "med": int_range(0, U32_MAX),
    "blackhole": _bool,
}
TERM_FIELDS = ("match", "action", "set")
# rtm_protocol names as /etc/iproute2/rt_protos gives them (`ip route ... proto NAME`).
RT_PROTOS = {
    "redirect": 1, "kernel": 2, "boot": 3, "static": 4, "gated": 8, "ra": 9, "mrt": 10, "zebra": 11,
    "bird": 12, "dnrouted": 13, "xorp": 14, "ntk": 15, "dhcp": 16, "keepalived": 18, "babel": 42,
    "openr": 99, "bgp": 186, "isis": 187, "ospf": 188, "rip": 189, "eigrp": 192,
}  # fmt: skip


def _rt_proto(v: object) -> int:
    if isinstance(v, str):
        if v in RT_PROTOS:
            return RT_PROTOS[v]
        raise _Bad(f"unknown protocol name {v!r} (known: {', '.join(RT_PROTOS)}; or a number 0..255)")
    n = _int(v)
    if not 0 <= n <= 255:
        raise _Bad(f"{n} is out of range (0..255)")
    return n


def _rt_protos(v: object) -> list[int]:
    return list_of(_rt_proto, nonempty=True)(v) if isinstance(v, list) else [_rt_proto(v)]


REDISTRIBUTE_FIELDS: dict[str, Check] = {
    "vrf": _nonempty,
    "kernel_table": int_range(1, 0xFFFFFFFF),
    "protocol": _rt_protos,
    "connected": _bool,
    "policy": _nonempty,
}


def _policy_check(check: Callable[[str, object], None], key: str) -> Check:
    """A check that runs the policy engine's own compiler: config and policy/ never drift apart."""

    def run(v: object) -> object:
        try:
            check(key, v)
        except ValueError as e:
            raise _Bad(str(e)) from None
        return v

    return run


# The policy language proper lives in policy/ (policy.match, policy.actions): every key it
# knows is valid here, checked by its compiler; prefix/community keep the friendlier messages.
MATCH_FIELDS: dict[str, Check] = {
    **{k: _policy_check(check_match, k) for k in sorted(POLICY_MATCH_KEYS)},
    "prefix": one_or_list(_prefix_match),
    "community": one_or_list(_policy_check(check_match, "community")),
}
SET_FIELDS: dict[str, Check] = {
    **{k: _policy_check(check_set, k) for k in sorted(POLICY_SET_KEYS)},
    "local_pref": int_range(0, U32_MAX),
    "med": int_range(0, U32_MAX),
    "community_add": one_or_list(_community),
}
ACTIONS = ("accept", "reject", "next")
TOP_LEVEL = (
    "router", "control", "log", "kernel", "metrics", "vrf", "template", "neighbor", "network", "policy",
    "redistribute",
)  # fmt: skip
# What BIRD/FRR users reach for, mapped to our key, for "did you mean" when spelling is not the problem.
_HABITS = {
    "remote_as": "asn",
    "remote-as": "asn",
    "peer_as": "asn",
    "neighbor_as": "asn",
    "update_source": "source_address",
    "update-source": "source_address",
    "local_address": "source_address",
    "md5": "password",
    "ebgp_multihop": "multihop",
    "table_id": "table",
}
# The model calls it import_ (a Python keyword otherwise).
_FIELD_NAME = {"import": "import_"}


def _join(path: str, key: str) -> str:
    shown = key if _BARE_KEY.match(key) else f'"{key}"'
    return f"{path}.{shown}" if path else shown


# --- the checker ------------------------------------------------------------------------------------


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[ConfigIssue] = []

    def err(self, key: str, reason: str) -> None:
        self.issues.append(ConfigIssue(self.source, key, reason))

    def table(self, v: object, path: str) -> dict[str, Any] | None:
        if isinstance(v, dict):
            return v
        self.err(path, f"expected a table, got {_describe(v)}")
        return None

    def array_of_tables(self, v: object, path: str) -> list[object]:
        if isinstance(v, list):
            return v
        self.err(path, f"expected an array of tables ([[{path}]]), got {_describe(v)}")
        return []

    def unknown(self, key: str, path: str, valid: Iterable[str], why: dict[str, str] | None = None) -> None:
        if why and key in why:
            self.err(_join(path, key), why[key])
            return
        valid = list(valid)
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        if path and key in TOP_LEVEL:
            # `kernel = ...` written below a [table] header lands inside that table in TOML.
            hint = f" (top-level '{key}' must come before the first [table] header, or be a [{key}] table)"
        elif close:
            hint = f" (did you mean '{close[0]}'?)"
        elif _HABITS.get(key) in valid:
            hint = f" (did you mean '{_HABITS[key]}'?)"
        elif len(valid) <= 10:
            hint = f" (valid keys: {', '.join(valid)})"
        else:
            hint = ""
        self.err(_join(path, key), f"unknown key{hint}")

    def fields(
        self,
        tbl: dict[str, Any],
        spec: dict[str, Check],
        path: str,
        required: Iterable[str] = (),
        why: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Check each key of ``tbl`` against ``spec``; returns the keys whose values passed, converted."""
        out: dict[str, Any] = {}
        for key, value in tbl.items():
            check = spec.get(key)
            if check is None:
                self.unknown(key, path, spec, why)
                continue
            try:
                out[key] = check(value)
            except _Bad as e:
                for sub, reason in e.problems:
                    self.err(_join(path, key) + sub, reason)
        for key in required:
            if key not in tbl:
                self.err(_join(path, key), "missing (required)")
        return out

    # --- sections ---

    def section(
        self, doc: dict[str, Any], name: str, spec: dict[str, Check], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        raw = doc.get(name, {})
        tbl = self.table(raw, name)
        if tbl is None:
            # Still report what would be missing: the operator needs to know both.
            for key in required:
                self.err(_join(name, key), "missing (required)")
            return {}
        return self.fields(tbl, spec, name, required)

    def vrfs(self, doc: dict[str, Any]) -> tuple[dict[str, VrfConfig], set[str]]:
        """The VRFs that are fully valid, and every VRF name given (for reference checks)."""
        vrfs = {MAIN_VRF: VrfConfig(MAIN_VRF, MAIN_TABLE)}
        names = {MAIN_VRF}
        raw = self.table(doc.get("vrf", {}), "vrf")
        if raw is None:
            return vrfs, names
        used: dict[int, str] = {MAIN_TABLE: MAIN_VRF}
        for name, body in raw.items():
            path = _join("vrf", name)
            names.add(name)
            if not _NAME.match(name):
                self.err(path, f'"{name}" is not a valid VRF name (letters, digits, "_", "-", ".")')
            tbl = self.table(body, path)
            if tbl is None:
                continue
            vals = self.fields(tbl, VRF_FIELDS, path, required=("table",))
            table = vals.get("table")
            if table is None:
                continue
            tpath = _join(path, "table")
            if name == MAIN_VRF:
                if table != MAIN_TABLE:
                    self.err(tpath, f"the main VRF is always kernel table {MAIN_TABLE} (got {table})")
                for key in ("rules", "rule_priority"):
                    if key in vals:
                        self.err(_join(path, key), "the main VRF is the main table: nothing to steer")
                if "device" in vals:
                    self.err(
                        _join(path, "device"), "the main VRF has no VRF device: its sessions stay unbound"
                    )
                continue
            if table in RESERVED_TABLES:
                self.err(tpath, f"table {table} is reserved by the kernel ({RESERVED_TABLES[table]})")
                continue
            if table in used:
                self.err(tpath, f"table {table} is already used by vrf '{used[table]}'")
                continue
            used[table] = name
            priority = vals.get("rule_priority", DEFAULT_RULE_PRIORITY)
            rules = [
                VrfRule(
                    r.get("priority", priority),
                    str(r["from"]) if "from" in r else None,
                    r.get("iif"),
                    r.get("fwmark"),
                )
                for r in vals.get("rules", [])
            ]
            vrfs[name] = VrfConfig(name, table, rules, vals.get("device"))
        return vrfs, names

    def policies(self, doc: dict[str, Any]) -> tuple[dict[str, PolicyConfig], set[str]]:
        policies: dict[str, PolicyConfig] = {}
        names: set[str] = set()
        raw = self.table(doc.get("policy", {}), "policy")
        if raw is None:
            return policies, names
        for name, body in raw.items():
            path = _join("policy", name)
            names.add(name)
            ok = True
            if name in FILTER_KEYWORDS:
                self.err(path, f'"{name}" is a keyword of import/export and cannot name a policy')
                ok = False
            tbl = self.table(body, path)
            if tbl is None:
                continue
            for key in tbl:
                if key != "term":
                    self.unknown(key, path, ("term",))
                    ok = False
            terms: list[PolicyTerm] = []
            for i, t in enumerate(self.array_of_tables(tbl.get("term", []), _join(path, "term"))):
                term = self.term(t, f"{_join(path, 'term')}[{i}]")
                if term is None:
                    ok = False
                else:
                    terms.append(term)
            if ok:
                policies[name] = PolicyConfig(name, terms)
        return policies, names

    def term(self, raw: object, path: str) -> PolicyTerm | None:
        tbl = self.table(raw, path)
        if tbl is None:
            return None
        before = len(self.issues)
        match: dict[str, object] = {}
        sets: dict[str, object] = {}
        action = None
        for key, value in tbl.items():
            kpath = _join(path, key)
            if key == "action":
                try:
                    action = one_of(*ACTIONS)(value)
                except _Bad as e:
                    self.err(kpath, e.problems[0][1])
            elif key in ("match", "set"):
                sub = self.table(value, kpath)
                if sub is not None:
                    spec = MATCH_FIELDS if key == "match" else SET_FIELDS
                    self.fields(sub, spec, kpath)
                    # Stored as written: interpreting them is the policy engine's business.
                    (match if key == "match" else sets).update(sub)
            else:
                self.unknown(key, path, TERM_FIELDS)
        if "action" not in tbl:
            self.err(_join(path, "action"), f"missing (required: {', '.join(ACTIONS)})")
        if len(self.issues) != before or action is None:
            return None
        return PolicyTerm(match=match, action=cast(Literal["accept", "reject", "next"], action), set=sets)

    def references(
        self, vals: dict[str, Any], path: str, vrf_names: set[str], policy_names: set[str]
    ) -> None:
        """Names a neighbor or template refers to must exist (checked where the value was written)."""
        vrf = vals.get("vrf")
        if vrf is not None and vrf not in vrf_names:
            self.err(_join(path, "vrf"), f"no vrf '{vrf}'{_known(vrf_names)}")
        for key in ("import", "export"):
            spec = vals.get(key)
            if spec is not None and spec not in FILTER_KEYWORDS and spec not in policy_names:
                self.err(
                    _join(path, key),
                    f'"{spec}" is neither all, none nor a defined policy{_known(policy_names, "policies")}',
                )

    def templates(
        self, doc: dict[str, Any], vrf_names: set[str], policy_names: set[str]
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        raw = self.table(doc.get("template", {}), "template")
        if raw is None:
            return out
        why = {
            "address": "not allowed in a template (each neighbor gives its own address)",
            "template": "not allowed in a template (templates do not nest)",
        }
        for name, body in raw.items():
            path = _join("template", name)
            tbl = self.table(body, path)
            if tbl is None:
                out[name] = {}
                continue
            vals = self.fields(tbl, TEMPLATE_FIELDS, path, why=why)
            self.references(vals, path, vrf_names, policy_names)
            out[name] = vals
        return out

    def neighbors(
        self,
        doc: dict[str, Any],
        router_asn: int | None,
        templates: dict[str, dict[str, Any]],
        vrf_names: set[str],
        policy_names: set[str],
    ) -> list[NeighborConfig]:
        out: list[NeighborConfig] = []
        seen: dict[IPAddress, int] = {}
        for i, body in enumerate(self.array_of_tables(doc.get("neighbor", []), "neighbor")):
            path = f"neighbor[{i}]"
            tbl = self.table(body, path)
            if tbl is None:
                continue
            before = len(self.issues)
            own = self.fields(tbl, NEIGHBOR_FIELDS, path, required=("address",))
            self.references(own, path, vrf_names, policy_names)
            tmpl_name = own.get("template")
            tmpl: dict[str, Any] = {}
            if tmpl_name is not None:
                if tmpl_name in templates:
                    tmpl = templates[tmpl_name]
                else:
                    self.err(_join(path, "template"), f"no template '{tmpl_name}'{_known(set(templates))}")
            raw_tmpl = _raw_template(doc, tmpl_name)
            if "asn" not in tbl and "asn" not in raw_tmpl:
                via = f"; not in template '{tmpl_name}' either" if tmpl_name in templates else ""
                self.err(_join(path, "asn"), f"missing (required{via})")
            vals = {**tmpl, **own}  # the neighbor's own keys override its template's
            addr = own.get("address")
            if addr is not None:
                if addr in seen:
                    self.err(_join(path, "address"), f"{addr} is already neighbor[{seen[addr]}]")
                else:
                    seen[addr] = i
                src = vals.get("source_address")
                if src is not None and src.version != addr.version:
                    where = "" if "source_address" in own else f" (from template '{tmpl_name}')"
                    reason = f"{src} is IPv{src.version} but the neighbor address {addr} is IPv{addr.version}"
                    self.err(_join(path, "source_address"), reason + where)
            if vals.get("ttl_security") and vals.get("multihop") is not None:
                self.err(_join(path, "ttl_security"), "cannot be combined with multihop (GTSM needs TTL 255)")
            if len(self.issues) != before or addr is None or "asn" not in vals or router_asn is None:
                continue
            out.append(_neighbor(vals, router_asn))
        return out

    def networks(self, doc: dict[str, Any], vrf_names: set[str]) -> list[NetworkConfig]:
        out: list[NetworkConfig] = []
        seen: dict[tuple[str, IPNetwork], int] = {}
        for i, body in enumerate(self.array_of_tables(doc.get("network", []), "network")):
            path = f"network[{i}]"
            tbl = self.table(body, path)
            if tbl is None:
                continue
            before = len(self.issues)
            vals = self.fields(tbl, NETWORK_FIELDS, path, required=("prefix",))
            vrf = vals.get("vrf", MAIN_VRF)
            if vrf not in vrf_names:
                self.err(_join(path, "vrf"), f"no vrf '{vrf}'{_known(vrf_names)}")
            net = vals.get("prefix")
            if net is not None:
                if (vrf, net) in seen:
                    reason = f"{net} in vrf '{vrf}' is already network[{seen[vrf, net]}]"
                    self.err(_join(path, "prefix"), reason)
                else:
                    seen[vrf, net] = i
            if len(self.issues) != before or net is None:
                continue
            out.append(
                NetworkConfig(
                    afi=Afi.IPV4 if net.version == 4 else Afi.IPV6,
                    prefix=key_from_network(net),
                    text=str(net),
                    vrf=vrf,
                    communities=vals.get("communities", []),
                    med=vals.get("med"),
                    blackhole=vals.get("blackhole", False),
                )
            )
        return out

    def redistribute(
        self, doc: dict[str, Any], vrf_names: set[str], policy_names: set[str], protocol: int
    ) -> list[RedistributeConfig]:
        out: list[RedistributeConfig] = []
        seen: dict[RedistributeConfig, int] = {}
        for i, body in enumerate(self.array_of_tables(doc.get("redistribute", []), "redistribute")):
            path = f"redistribute[{i}]"
            tbl = self.table(body, path)
            if tbl is None:
                continue
            before = len(self.issues)
            vals = self.fields(tbl, REDISTRIBUTE_FIELDS, path)
            vrf = vals.get("vrf", MAIN_VRF)
            if vrf not in vrf_names:
                self.err(_join(path, "vrf"), f"no vrf '{vrf}'{_known(vrf_names)}")
            policy = vals.get("policy", "all")
            if policy not in FILTER_KEYWORDS and policy not in policy_names:
                reason = (
                    f'"{policy}" is neither all, none nor a defined policy{_known(policy_names, "policies")}'
                )
                self.err(_join(path, "policy"), reason)
            table, connected = vals.get("kernel_table"), vals.get("connected", False)
            if "kernel_table" in tbl and "connected" in tbl and connected:
                self.err(_join(path, "connected"), "give either kernel_table or connected = true, not both")
            elif "kernel_table" not in tbl and not connected and len(self.issues) == before:
                self.err(_join(path, "kernel_table"), "missing (required unless connected = true)")
            protocols = tuple(vals.get("protocol", []))
            if protocols and "kernel_table" not in tbl:
                self.err(
                    _join(path, "protocol"), "only with kernel_table (connected routes have no protocol)"
                )
            if protocol in protocols:
                self.err(
                    _join(path, "protocol"), f"{protocol} is our own ([kernel] protocol): never redistributed"
                )
            if table == 255:
                self.err(_join(path, "kernel_table"), "255 is the kernel's local table (our own addresses)")
            if len(self.issues) != before:
                continue
            entry = RedistributeConfig(vrf, table, tuple(sorted(set(protocols))), bool(connected), policy)
            if entry in seen:
                self.err(path, f"the same as redistribute[{seen[entry]}]")
                continue
            seen[entry] = i
            out.append(entry)
        return out

    def sort_issues(self, sections: list[str]) -> None:
        """Sections are checked in dependency order; report them in the order the file has them."""
        rank = {name: i for i, name in enumerate(sections)}

        def key(issue: ConfigIssue) -> int:
            top = re.split(r"[.\[]", issue.key, maxsplit=1)[0]
            return rank.get(top, len(rank) + TOP_LEVEL.index(top) if top in TOP_LEVEL else len(rank))

        self.issues.sort(key=key)  # stable: within a section the order stays as checked

    # --- the whole file ---

    def config(self, doc: dict[str, Any]) -> Config | None:
        for key in doc:
            if key not in TOP_LEVEL:
                self.unknown(key, "", TOP_LEVEL)
        router = self.section(doc, "router", ROUTER_FIELDS, required=("asn", "router_id"))
        control = self.section(doc, "control", CONTROL_FIELDS)
        log = self.section(doc, "log", LOG_FIELDS)
        kernel = self.section(doc, "kernel", KERNEL_FIELDS)
        metrics = self.section(doc, "metrics", METRICS_FIELDS)
        vrfs, vrf_names = self.vrfs(doc)
        policies, policy_names = self.policies(doc)
        templates = self.templates(doc, vrf_names, policy_names)
        neighbors = self.neighbors(doc, router.get("asn"), templates, vrf_names, policy_names)
        networks = self.networks(doc, vrf_names)
        redistribute = self.redistribute(doc, vrf_names, policy_names, kernel.get("protocol", 186))
        if self.issues:
            self.sort_issues(list(doc))
            return None
        return Config(
            router=RouterConfig(**router),
            control=ControlConfig(**control),
            log=LogConfig(**log),
            kernel=KernelConfig(**kernel),
            metrics=MetricsConfig(**metrics),
            vrfs=vrfs,
            neighbors=neighbors,
            networks=networks,
            redistribute=redistribute,
            policies=policies,
            source=self.source,
        )


def _known(names: set[str], what: str = "defined") -> str:
    if not names:
        return f" (none {what})" if what == "defined" else f" (no {what} defined)"
    return f" ({what}: {', '.join(sorted(names))})"


def _raw_template(doc: dict[str, Any], name: str | None) -> dict[str, Any]:
    tmpls = doc.get("template")
    if name is None or not isinstance(tmpls, dict):
        return {}
    body = tmpls.get(name)
    return body if isinstance(body, dict) else {}


def _neighbor(vals: dict[str, Any], router_asn: int) -> NeighborConfig:
    kwargs = {_FIELD_NAME.get(k, k): v for k, v in vals.items()}
    ebgp = vals["asn"] != router_asn
    # RFC 8212: without an explicit policy an eBGP session exchanges nothing; iBGP keeps the old default.
    for key, flag in (("import", "import_defaulted"), ("export", "export_defaulted")):
        if key not in vals:
            kwargs[_FIELD_NAME.get(key, key)] = "none" if ebgp else "all"
            kwargs[flag] = ebgp
    return NeighborConfig(**kwargs)


# --- entry points -----------------------------------------------------------------------------------


def parse_config(text: str, source: str) -> Config:
    """Parse and validate configuration text; ``source`` names it in messages. Raises ConfigError."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([ConfigIssue(source, "(syntax)", str(e))]) from None
    checker = _Checker(source)
    config = checker.config(doc)
    if config is None:
        raise ConfigError(checker.issues)
    return config


def load_config(path: str) -> Config:
    """Read and validate a configuration file. Raises ConfigError (also for an unreadable file)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(path, "(file)", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(path, "(file)", "is a directory, not a file")]) from None
    except PermissionError:
        raise ConfigError([ConfigIssue(path, "(file)", "permission denied")]) from None
    except OSError as e:
        raise ConfigError([ConfigIssue(path, "(file)", f"cannot read: {e.strerror or e}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(path, "(file)", f"not valid UTF-8 (line {line})")]) from None
    return parse_config(text, path)


def summarize(config: Config) -> str:
    """One line for ``bgpd --check-config``."""

    def n(count: int, one: str, many: str) -> str:
        return f"{count} {one if count == 1 else many}"

    return (
        f"{config.source or 'config'}: OK: AS {config.router.asn}, router id {config.router.router_id}, "
        f"{n(len(config.neighbors), 'neighbor', 'neighbors')}, {n(len(config.vrfs), 'VRF', 'VRFs')}, "
        f"{n(len(config.networks), 'network', 'networks')}, {n(len(config.policies), 'policy', 'policies')}"
    )
