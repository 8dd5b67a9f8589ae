"""The routing engine: Loc-RIBs per VRF and family, channels, and the flow between them.

UPDATE -> channel Adj-RIB-In -> import filter -> Loc-RIB (best + ECMP) -> Change ->
subscribers (the kernel writer) and every other up channel of the same VRF (export filter
-> Adj-RIB-Out -> pending). Everything here is per route: no work proportional to the
table size happens for one UPDATE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rib.attrs import PathAttrs
from rib.channel import Channel, ChannelSettings
from rib.decision import DEFAULT, Decision
from rib.prefix import Afi, PrefixKey
from rib.route import Change, Path, Source, SourceKind
from rib.table import LocRib

Subscriber = Callable[[Change], None]
_NONE: dict[PrefixKey, PathAttrs] = {}


class Rib:
    def __init__(
        self,
        local_asn: int,
        router_id: int,
        ecmp: int = 8,
        multipath_relax: bool = False,
        decision: Decision = DEFAULT,
    ) -> None:
        self.local_asn = local_asn
        self.ecmp = ecmp
        self.multipath_relax = multipath_relax
        self.decision = decision
        self.tables: dict[tuple[str, Afi], LocRib] = {}
        self.channels: dict[str, Channel] = {}
        self.subscribers: list[Subscriber] = []
        self.local_source = Source(SourceKind.LOCAL, None, local_asn, router_id, "local")
        # Channels with output waiting; the session layer drains them.
        self.dirty: set[Channel] = set()

    # --- structure ------------------------------------------------------------------------------

    def add_vrf(self, vrf: str) -> None:
        for afi in Afi:
            if (vrf, afi) not in self.tables:
                self.tables[(vrf, afi)] = LocRib(vrf, afi, self.ecmp, self.multipath_relax, self.decision)

    def table(self, vrf: str, afi: Afi) -> LocRib:
        return self.tables[(vrf, afi)]

    def vrfs(self) -> list[str]:
        return sorted({v for v, _ in self.tables})

    def add_channel(self, ch: Channel) -> None:
        self.add_vrf(ch.settings.vrf)
        self.channels[ch.name] = ch

    def remove_channel(self, ch: Channel) -> None:
        self.channel_down(ch)
        self.channels.pop(ch.name, None)

    def _peers_of(self, vrf: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.settings.vrf == vrf and c.up]

    # --- sessions -------------------------------------------------------------------------------

    def channel_up(self, ch: Channel, source: Source, afis: Iterable[Afi]) -> None:
        """The session is Established: queue the whole VRF table for it, then End-of-RIB."""
        ch.source = source
        ch.afis = frozenset(afis)
        vrf = ch.settings.vrf
        for afi in ch.afis:
            for prefix, dest in self.table(vrf, afi).items():
                if dest.selected:
                    ch.queue_export(afi, prefix, dest.selected[0])
        ch.eor_pending = set(ch.afis)
        self.dirty.add(ch)

    def channel_down(self, ch: Channel) -> None:
        """The session ended: its paths leave the Loc-RIB (and so the kernel and other peers)."""
        source = ch.source
        if source is not None:
            vrf = ch.settings.vrf
            for afi, routes in ch.adj_in.items():
                table = self.table(vrf, afi)
                for prefix in routes:
                    change = table.withdraw(prefix, source)
                    if change is not None:
                        self._propagate(change)
        ch.clear()
        self.dirty.discard(ch)

    # --- routes ---------------------------------------------------------------------------------

    def receive(
        self,
        ch: Channel,
        announce: Iterable[tuple[Afi, PathAttrs, list[PrefixKey]]],
        withdraw: Iterable[tuple[Afi, list[PrefixKey]]],
        now: float,
    ) -> None:
        """Apply one decoded UPDATE from ``ch``'s neighbour (withdrawals first, as on the wire)."""
        source = ch.source
        if source is None:
            return
        vrf = ch.settings.vrf
        for afi, prefixes in withdraw:
            adj = ch.adj_in.get(afi)
            if not adj:
                continue
            table = self.table(vrf, afi)
            for prefix in prefixes:
                old = adj.pop(prefix, None)
                if old is None:
                    continue
                if ch.import_attrs(afi, prefix, old) is not None:
                    ch.accepted -= 1
                change = table.withdraw(prefix, source)
                if change is not None:
                    self._propagate(change)
        for afi, attrs, prefixes in announce:
            if afi not in ch.afis:
                continue
            if not prefixes:
                continue
            adj = ch.adj_in.setdefault(afi, {})
            table = self.table(vrf, afi)
            # Unless the import policy looks at prefixes, every prefix of the UPDATE gets the
            # same result: import once, and share one Path (paths are never mutated).
            per_prefix = ch.settings.import_filter.per_prefix
            import_attrs, update, propagate = ch.import_attrs, table.update, self._propagate
            if not per_prefix:
                self._receive_shared(ch, source, table, adj, attrs, prefixes, now)
                continue
            for prefix in prefixes:
                old = adj.get(prefix)
                adj[prefix] = attrs
                if old is not None and import_attrs(afi, prefix, old) is not None:
                    ch.accepted -= 1
                if per_prefix:
                    imported = import_attrs(afi, prefix, attrs)
                    path = None if imported is None else Path(source, imported, now)
                if path is None:
                    change = table.withdraw(prefix, source)
                else:
                    ch.accepted += 1
                    change = update(prefix, path)
                if change is not None:
                    propagate(change)

    def _receive_shared(
        self,
        ch: Channel,
        source: Source,
        table: LocRib,
        adj: dict[PrefixKey, PathAttrs],
        attrs: PathAttrs,
        prefixes: list[PrefixKey],
        now: float,
    ) -> None:
        """The prefixes of one UPDATE when the import policy ignores prefixes (the usual case).

        Every prefix gets the same import result: import once, and share one Path (paths are
        never mutated), and let the Loc-RIB take the whole batch in one call.
        """
        afi = table.afi
        imported = ch.import_attrs(afi, prefixes[0], attrs)
        adj_get, import_attrs = adj.get, ch.import_attrs
        replaced = 0
        for prefix in prefixes:
            old = adj_get(prefix)
            adj[prefix] = attrs
            if old is not None and import_attrs(afi, prefix, old) is not None:
                replaced += 1
        ch.accepted -= replaced
        if imported is None:
            changes = [c for c in (table.withdraw(p, source) for p in prefixes) if c is not None]
        else:
            ch.accepted += len(prefixes)
            changes = table.update_many(prefixes, Path(source, imported, now))
        propagate = self._propagate
        for change in changes:
            propagate(change)

    def originate(self, vrf: str, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, now: float) -> None:
        """A locally originated route (a configured `network`)."""
        self.add_vrf(vrf)
        change = self.table(vrf, afi).update(prefix, Path(self.local_source, attrs, now))
        if change is not None:
            self._propagate(change)

    def withdraw_local(self, vrf: str, afi: Afi, prefix: PrefixKey) -> None:
        change = self.table(vrf, afi).withdraw(prefix, self.local_source)
        if change is not None:
            self._propagate(change)

    def _propagate(self, change: Change) -> None:
        for sub in self.subscribers:
            sub(change)
        best = change.best[0] if change.best else None
        src = best.source if best is not None else None
        for ch in self.channels.values():
            if ch.source is not None and ch.settings.vrf == change.vrf:
                if ch.source is src and change.prefix not in ch.adj_out.get(change.afi, _NONE):
                    continue  # its own route, never sent back, and nothing to withdraw there
                ch.queue_export(change.afi, change.prefix, best)
                if ch.pending:
                    self.dirty.add(ch)

    def next_hops_changed(self) -> None:
        """The IGP changed (a resolver answer differs now): recompute every selection.

        O(table) by nature, like BIRD's next-hop tracking on a kernel table change; it runs
        on IGP events, never per UPDATE.
        """
        for table in self.tables.values():
            for change in table.reselect_all():
                self._propagate(change)

    def take_dirty(self) -> list[Channel]:
        dirty = [c for c in self.dirty if c.has_pending()]
        self.dirty.clear()
        return dirty

    def reconfigure(self, ch: Channel, settings: ChannelSettings, now: float) -> None:
        """New filters or export settings for a running channel: soft reconfiguration.

        The Adj-RIB-In (kept before import policy) is run through the new import filter, and
        every selected route of the VRF is re-exported, so the peer is sent only what changed.
        O(table) by nature; it runs on a config reload, never per UPDATE.
        """
        ch.settings = settings
        ch._import_cache.clear()
        ch._export_cache.clear()
        source = ch.source
        if source is None:
            return
        vrf = settings.vrf
        now_accepted = 0
        for afi, routes in ch.adj_in.items():
            table = self.table(vrf, afi)
            for prefix, attrs in routes.items():
                imported = ch.import_attrs(afi, prefix, attrs)
                if imported is None:
                    change = table.withdraw(prefix, source)
                else:
                    now_accepted += 1
                    dest = table.get(prefix)
                    old = next((p for p in dest.paths if p.source is source), None) if dest else None
                    if old is not None and old.attrs is imported:
                        continue
                    change = table.update(prefix, Path(source, imported, old.since if old else now))
                if change is not None:
                    self._propagate(change)
        ch.accepted = now_accepted
        for afi in ch.afis:
            for prefix, dest in self.table(vrf, afi).items():
                ch.queue_export(afi, prefix, dest.selected[0] if dest.selected else None)
        if ch.has_pending():
            self.dirty.add(ch)
