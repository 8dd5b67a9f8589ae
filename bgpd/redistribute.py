"""Redistribution: kernel routes of other protocols and connected subnets as local BGP routes.

BIRD's ``protocol kernel { learn; }`` and ``protocol direct``; Calico announces its per-node
pod blocks this way. Pure: the kernel's state comes in a ``fib.kernel_view.KernelView``, and
what changed comes as the route keys it touched, so an ``ip route add`` costs the work of
that one prefix. The result is a diff (announce, withdraw) the daemon applies to the RIB.
The routes are local (next hop self towards peers) and never go back into the kernel.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from bgpd.config.model import RedistributeConfig
from fib.kernel_view import KernelView, RouteKey
from policy.filters import Filter
from rib.attrs import Origin, PathAttrs, intern
from rib.prefix import Afi, PrefixKey, key_from_network
from rib.route import Source, SourceKind

KERNEL = "kernel"
CONNECTED = "connected"
RTPROT_KERNEL = 2  # the kernel's own routes (connected subnets): `redistribute connected` gives those

# (vrf, family, prefix, KERNEL | CONNECTED)
Key = tuple[str, Afi, PrefixKey, str]


@dataclass(frozen=True, slots=True)
class Announce:
    vrf: str
    afi: Afi
    prefix: PrefixKey
    attrs: PathAttrs
    source: Source


@dataclass(frozen=True, slots=True)
class Withdraw:
    vrf: str
    afi: Afi
    prefix: PrefixKey
    source: Source


def _skip_address(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Loopback and link-local subnets are never announced."""
    return net.is_loopback or net.is_link_local


class Redistributor:
    def __init__(self, local_asn: int, router_id: int, protocol: int) -> None:
        self.protocol = protocol  # ours: never redistributed (the view never holds them anyway)
        self.sources = {
            kind: Source(SourceKind.LOCAL, None, local_asn, router_id, kind) for kind in (KERNEL, CONNECTED)
        }
        self.entries: list[RedistributeConfig] = []
        self.filters: dict[str, Filter] = {}
        self.current: dict[Key, PathAttrs] = {}
        # Redistributed attributes: origin incomplete, as BIRD and FRR give redistributed routes.
        self._base = intern(PathAttrs(origin=Origin.INCOMPLETE))

    def configure(
        self, entries: list[RedistributeConfig], filters: dict[str, Filter], view: KernelView
    ) -> list[Announce | Withdraw]:
        """New entries or policies (start, reload): everything is looked at again."""
        self.entries, self.filters = list(entries), filters
        return self.full(view)

    def full(self, view: KernelView) -> list[Announce | Withdraw]:
        keys: set[Key] = set(self.current)
        for e in self.entries:
            if e.kernel_table is not None:
                keys.update((e.vrf, afi, p, KERNEL) for _t, afi, p in view.table_keys(e.kernel_table))
        keys.update(self._connected_keys(view))
        return self._diff(keys, view)

    def changed(self, view: KernelView, routes: Iterable[RouteKey], addrs: bool) -> list[Announce | Withdraw]:
        """After kernel changes: only the prefixes they touched (and the subnets, if addresses did)."""
        keys: set[Key] = set()
        tables: dict[int, list[str]] = {}
        for e in self.entries:
            if e.kernel_table is not None:
                tables.setdefault(e.kernel_table, []).append(e.vrf)
        if tables:
            for table, afi, prefix in routes:
                for vrf in tables.get(table, ()):
                    keys.add((vrf, afi, prefix, KERNEL))
        if addrs:
            keys.update(k for k in self.current if k[3] == CONNECTED)
            keys.update(self._connected_keys(view))
        return self._diff(keys, view) if keys else []

    def _connected_keys(self, view: KernelView) -> set[Key]:
        vrfs = [e.vrf for e in self.entries if e.connected]
        if not vrfs:
            return set()
        keys: set[Key] = set()
        for a in view.connected():
            if _skip_address(a.network):
                continue
            for vrf in vrfs:
                keys.add((vrf, a.afi, key_from_network(a.network), CONNECTED))
        return keys

    def _diff(self, keys: Iterable[Key], view: KernelView) -> list[Announce | Withdraw]:
        out: list[Announce | Withdraw] = []
        connected: set[tuple[Afi, PrefixKey]] | None = None
        for key in keys:
            vrf, afi, prefix, kind = key
            if kind == CONNECTED and connected is None:
                connected = {
                    (a.afi, key_from_network(a.network))
                    for a in view.connected()
                    if not _skip_address(a.network)
                }
            new = self._wanted(key, view, connected or set())
            old = self.current.get(key)
            if new is old:
                continue
            source = self.sources[kind]
            if new is None:
                del self.current[key]
                out.append(Withdraw(vrf, afi, prefix, source))
            else:
                self.current[key] = new
                out.append(Announce(vrf, afi, prefix, new, source))
        return out

    def _wanted(self, key: Key, view: KernelView, connected: set[tuple[Afi, PrefixKey]]) -> PathAttrs | None:
        """The attributes ``key`` should be announced with (the first entry that gives it), or None."""
        vrf, afi, prefix, kind = key
        source = self.sources[kind]
        for e in self.entries:
            if e.vrf != vrf:
                continue
            if kind == KERNEL:
                if e.kernel_table is None or not any(
                    self._protocol_ok(e, r.protocol) for r in view.routes(e.kernel_table, afi, prefix)
                ):
                    continue
            elif not e.connected or (afi, prefix) not in connected:
                continue
            f = self.filters.get(e.policy)
            if f is None:
                continue
            attrs = f.apply(afi, prefix, self._base, source, vrf)
            if attrs is not None:
                return intern(attrs)
        return None

    def _protocol_ok(self, e: RedistributeConfig, protocol: int) -> bool:
        if protocol == self.protocol:
            return False
        if e.protocols:
            return protocol in e.protocols
        return protocol != RTPROT_KERNEL  # BIRD's `learn`: not the kernel's own (connected) routes
