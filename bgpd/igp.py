"""The kernel as the IGP: next-hop resolution, connected prefixes and redistribution.

Joins ``fib.kernel_routes`` (netlink: a dump, then notifications), ``fib.kernel_view`` (other
protocols' routes and the addresses), the RIB's per-VRF resolver and ``bgpd.redistribute``.
Blocking only in ``dump`` (the daemon runs it on a worker thread); the daemon's event loop
calls ``read`` when the socket is readable and ``settle`` a moment later, so a burst of
kernel changes (a link going down takes many routes) is one re-evaluation, then
``reselect_step`` once per loop turn until it returns False (rib/reselect.py).
"""

from __future__ import annotations

import time
from typing import Any

from bgpd.config.model import Config
from bgpd.redistribute import Announce, Redistributor
from fib.kernel_routes import KernelWatch
from fib.kernel_view import MAIN_TABLE, KernelAddr, KernelRoute, KernelView, NextHopResolver, Touched
from policy.filters import Filter
from rib.channel import Channel
from rib.engine import Rib
from rib.prefix import Afi, IPAddress
from rib.reselect import Reselector


class KernelIgp:
    def __init__(self, config: Config, rib: Rib, router_id: int, log: Any) -> None:
        self.rib = rib
        self.log = log
        self.watch = KernelWatch(config.kernel.protocol)  # first: nothing is missed after the dump
        self.view = KernelView()
        self.resolver = NextHopResolver(self.view)
        self.redistributor = Redistributor(config.router.asn, router_id, config.kernel.protocol)
        self.resolve = config.kernel.resolve_next_hops
        self.pending = Touched()
        self.config = config
        self.filters: dict[str, Filter] = {}
        self.settles = 0  # re-evaluations done (a figure for tests and logs)
        # The prefixes via next hops that resolve differently are decided again a slice per
        # event-loop turn (``reselect_step``), never the whole table in one turn.
        self.reselect = Reselector(rib)

    # --- blocking (worker thread) -------------------------------------------------------------

    def dump(self) -> tuple[list[KernelRoute], list[KernelAddr]]:
        return self.watch.dump()

    # --- event loop -----------------------------------------------------------------------------

    def load(self, dump: tuple[list[KernelRoute], list[KernelAddr]]) -> None:
        """A dump taken: the view is replaced, everything is re-evaluated in the next settle."""
        routes, addrs = dump
        touched = self.view.load(routes, addrs)
        self.pending.routes |= touched.routes
        self.pending.addrs = True
        self.log.info("kernel routes loaded", routes=len(routes), addresses=len(addrs))

    def configure(self, config: Config, filters: dict[str, Filter]) -> None:
        """Start or reload: per-VRF lookup tables, directly connected neighbours, redistribution."""
        self.config, self.filters = config, filters
        own = config.router.asn
        tables: dict[str, tuple[int, ...]] = {}
        for name, v in config.vrfs.items():
            # A VRF without its own device has its sessions (and the ways to its next hops) in main.
            tables[name] = (v.table,) if v.device or v.table == MAIN_TABLE else (v.table, MAIN_TABLE)
        direct: dict[str, set[IPAddress]] = {name: set() for name in config.vrfs}
        for n in config.neighbors:
            if n.asn != own and (n.multihop or 1) == 1:
                direct.setdefault(n.vrf, set()).add(n.address)
        changed = self.resolver.configure(tables, {k: frozenset(v) for k, v in direct.items()})
        if self.resolve:
            for name in config.vrfs:
                if self.rib.tables.get((name, Afi.IPV4)) is None or (
                    self.rib.table(name, Afi.IPV4).decision.resolve is None
                ):
                    self.rib.set_resolver(name, self.resolver.resolver(name))
            for vrf, nhs in changed.items():
                self.reselect.changed(vrf, nhs)
        self._redistribute(self.redistributor.configure(config.redistribute, filters, self.view))

    def read(self) -> bool:
        """The monitor socket is readable: take the notifications. True when a settle is due."""
        changes = self.watch.read()
        if not changes:
            return False
        touched = self.view.apply(changes)
        self.pending.routes |= touched.routes
        self.pending.addrs = self.pending.addrs or touched.addrs
        self.pending.resync = self.pending.resync or touched.resync
        return bool(touched)

    def settle(self, channels: list[Channel]) -> bool:
        """Re-evaluate after changes: next hops resolving differently, redistributed routes,
        the channels' connected prefixes. Returns True when a new dump is needed (lost
        notifications) instead."""
        pending, self.pending = self.pending, Touched()
        if pending.resync:
            self.log.warning("kernel notifications lost (ENOBUFS): dumping the kernel routes again")
            return True
        self.settles += 1
        if self.resolve:
            for vrf, nhs in self.resolver.refresh().items():
                self.log.info(
                    "next hops resolve differently",
                    vrf=vrf,
                    next_hops={str(nh): self.resolver.known(vrf).get(nh) for nh in sorted(nhs, key=str)[:10]},
                )
                self.reselect.changed(vrf, nhs)
        self._redistribute(self.redistributor.changed(self.view, pending.routes, pending.addrs))
        if pending.addrs:
            for ch in channels:
                self.set_connected(ch)
        return False

    def reselect_step(self) -> bool:
        """One slice of the pending re-evaluation; True while more remains."""
        return self.reselect.step()

    def set_connected(self, ch: Channel) -> None:
        """The connected prefix of each of the session's local addresses (third-party next hops)."""
        connected = {}
        for afi, local in ch.local_addrs.items():
            net = self.view.connected_prefix(local)
            if net is not None:
                connected[afi] = net
        ch.connected = connected

    def _redistribute(self, diff: list[Any]) -> None:
        if not diff:
            return
        now = time.monotonic()
        announced = 0
        for d in diff:
            if isinstance(d, Announce):
                announced += 1
                self.rib.originate(d.vrf, d.afi, d.prefix, d.attrs, now, d.source)
            else:
                self.rib.withdraw_local(d.vrf, d.afi, d.prefix, d.source)
        self.log.info("redistributed routes changed", announced=announced, withdrawn=len(diff) - announced)

    def close(self) -> None:
        self.watch.close()
