"""The routing engine: Loc-RIBs per VRF and family, channels, and the flow between them.

UPDATE -> channel Adj-RIB-In -> import filter -> Loc-RIB (best + ECMP) -> Change ->
subscribers (the kernel writer) and every other up channel of the same VRF (export filter
-> Adj-RIB-Out -> pending). Everything here is per route: no work proportional to the
table size happens for one UPDATE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import repeat

from rib.attrs import PathAttrs
from rib.channel import Channel, ChannelSettings
from rib.decision import DEFAULT, Decision
from rib.prefix import Afi, PrefixKey
from rib.route import Change, Path, Source, SourceKind
from rib.table import LocRib

Subscriber = Callable[[Change], None]
# Takes the changes of one UPDATE (or one other event) at once: the per-route cost of a call
# through the subscriber list is paid once per batch.
BatchSubscriber = Callable[[list[Change]], None]
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
        self.batch_subscribers: list[BatchSubscriber] = []
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
                withdraw = table.withdraw
                changes = [c for c in map(withdraw, routes, repeat(source)) if c is not None]
                self._propagate_many(vrf, afi, changes)
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
        """Apply one decoded UPDATE from ``ch``'s neighbour (withdrawals first, as on the wire).

        The changes are collected per family and handed on in one batch per UPDATE.
        """
        source = ch.source
        if source is None:
            return
        vrf = ch.settings.vrf
        changes: dict[Afi, list[Change]] = {}
        for afi, prefixes in withdraw:
            adj = ch.adj_in.get(afi)
            if not adj:
                continue
            table = self.table(vrf, afi)
            out = changes.setdefault(afi, [])
            for prefix in prefixes:
                old = adj.pop(prefix, None)
                if old is None:
                    continue
                if ch.import_attrs(afi, prefix, old) is not None:
                    ch.accepted -= 1
                change = table.withdraw(prefix, source)
                if change is not None:
                    out.append(change)
        for afi, attrs, prefixes in announce:
            if afi not in ch.afis or not prefixes:
                continue
            adj = ch.adj_in.setdefault(afi, {})
            table = self.table(vrf, afi)
            out = changes.setdefault(afi, [])
            if ch.settings.import_filter.per_prefix:
                self._receive_each(ch, source, table, adj, attrs, prefixes, now, out)
            else:
                self._receive_shared(ch, source, table, adj, attrs, prefixes, now, out)
        for afi, out in changes.items():
            if out:
                self._propagate_many(vrf, afi, out)

    def _receive_each(
        self,
        ch: Channel,
        source: Source,
        table: LocRib,
        adj: dict[PrefixKey, PathAttrs],
        attrs: PathAttrs,
        prefixes: list[PrefixKey],
        now: float,
        out: list[Change],
    ) -> None:
        """The prefixes of one UPDATE when the import policy looks at each prefix.

        A policy changes one attribute set the same way wherever it accepts it, so the
        prefixes are grouped by their import result: one shared Path per result.
        """
        afi = table.afi
        import_attrs = ch.import_attrs
        groups: dict[int, tuple[PathAttrs, list[PrefixKey]]] = {}
        rejected: list[PrefixKey] = []
        accepted = ch.accepted
        for prefix in prefixes:
            old = adj.get(prefix)
            adj[prefix] = attrs
            if old is not None and import_attrs(afi, prefix, old) is not None:
                accepted -= 1
            imported = import_attrs(afi, prefix, attrs)
            if imported is None:
                rejected.append(prefix)
                continue
            accepted += 1
            group = groups.get(id(imported))
            if group is None:
                groups[id(imported)] = (imported, [prefix])
            else:
                group[1].append(prefix)
        ch.accepted = accepted
        for prefix in rejected:
            change = table.withdraw(prefix, source)
            if change is not None:
                out.append(change)
        for imported, group_prefixes in groups.values():
            out.extend(table.update_many(group_prefixes, Path(source, imported, now)))

    def _receive_shared(
        self,
        ch: Channel,
        source: Source,
        table: LocRib,
        adj: dict[PrefixKey, PathAttrs],
        attrs: PathAttrs,
        prefixes: list[PrefixKey],
        now: float,
        out: list[Change],
    ) -> None:
        """The prefixes of one UPDATE when the import policy ignores prefixes (the usual case).

        Every prefix gets the same import result: import once, and share one Path (paths are
        never mutated), and let the Loc-RIB take the whole batch in one call.
        """
        afi = table.afi
        import_attrs = ch.import_attrs
        imported = import_attrs(afi, prefixes[0], attrs)
        if len(prefixes) > 1 and len(set(prefixes)) != len(prefixes):
            prefixes = list(dict.fromkeys(prefixes))  # a repeat changes nothing more
        # One probe of the large (cache-cold) dict per prefix: setdefault stores a new prefix
        # and hands back what a known one had.
        before = len(adj)
        olds = list(map(adj.setdefault, prefixes, repeat(attrs)))
        replaced = 0
        if len(adj) - before != len(prefixes):  # some were known
            for prefix, old in zip(prefixes, olds, strict=True):
                if old is attrs:
                    continue
                adj[prefix] = attrs
                if import_attrs(afi, prefix, old) is not None:
                    replaced += 1
            if imported is not None:
                # The rest of the known ones were re-announced as they were.
                replaced += len(prefixes) - (len(adj) - before) - sum(o is not attrs for o in olds)
        if imported is None:
            ch.accepted -= replaced
            withdraw = table.withdraw
            out.extend(c for c in map(withdraw, prefixes, repeat(source)) if c is not None)
        else:
            ch.accepted += len(prefixes) - replaced
            out.extend(table.update_many(prefixes, Path(source, imported, now)))

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
        for bsub in self.batch_subscribers:
            bsub([change])
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

    def _propagate_many(self, vrf: str, afi: Afi, changes: list[Change]) -> None:
        """``_propagate`` for the changes of one VRF and family at once (one UPDATE's)."""
        if not changes:
            return
        for bsub in self.batch_subscribers:
            bsub(changes)
        for sub in self.subscribers:
            for change in changes:
                sub(change)
        for ch in self.channels.values():
            if ch.source is not None and ch.settings.vrf == vrf and afi in ch.afis:
                ch.queue_export_many(afi, changes)
                if ch.pending:
                    self.dirty.add(ch)

    def next_hops_changed(self) -> None:
        """The IGP changed (a resolver answer differs now): recompute every selection.

        O(table) by nature, like BIRD's next-hop tracking on a kernel table change; it runs
        on IGP events, never per UPDATE.
        """
        for table in self.tables.values():
            self._propagate_many(table.vrf, table.afi, table.reselect_all())

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
            changes: list[Change] = []
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
                    changes.append(change)
            self._propagate_many(vrf, afi, changes)
        ch.accepted = now_accepted
        for afi in ch.afis:
            for prefix, dest in self.table(vrf, afi).items():
                ch.queue_export(afi, prefix, dest.selected[0] if dest.selected else None)
        if ch.has_pending():
            self.dirty.add(ch)
