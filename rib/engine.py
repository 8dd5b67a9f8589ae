"""The routing engine: Loc-RIBs per VRF and family, channels, and the flow between them.

UPDATE -> channel Adj-RIB-In -> import filter -> Loc-RIB (best + ECMP) -> Change ->
subscribers (the kernel writer) and every other up channel of the same VRF (export filter
-> Adj-RIB-Out -> pending). Everything here is per route: no work proportional to the
table size happens for one UPDATE.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import replace
from itertools import repeat

from policy.filters import PrefixPlan
from rib.attrs import PathAttrs
from rib.channel import Channel, ChannelSettings
from rib.decision import DEFAULT, Decision, Resolver
from rib.drain import SLICE, DrainJob, Drains
from rib.prefix import Afi, IPAddress, PrefixKey
from rib.route import Change, Path, Source, SourceKind
from rib.table import LocRib, Stored

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
        lean_min: int = 65_536,
        drain_slice: int = SLICE,
    ) -> None:
        self.local_asn = local_asn
        # A session's paths leave the Loc-RIB this many per ``drain_step`` (rib/drain.py); fewer
        # go at once, in ``channel_down`` itself.
        self.drain_slice = drain_slice
        self.drains = Drains()
        # A channel with at least this many routes accepted keeps no separate copy of
        # what it accepted: see ``_go_lean``.
        self.lean_min = lean_min
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
        # Up channels that send with ADD-PATH: told of every path change, not only of a new
        # selection (a path that is not the best is advertised to them too).
        self.path_senders: set[Channel] = set()
        # Table dumps in progress (``channel_up`` with a limit): per family, the prefixes to
        # send and how many are queued already.
        self._dumps: dict[Channel, list[tuple[Afi, list[PrefixKey], int]]] = {}

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
        vrf = ch.settings.vrf
        ch.paths_of = lambda afi: self.tables[(vrf, afi)].candidates

    def remove_channel(self, ch: Channel) -> None:
        self.channel_down(ch)
        self.channels.pop(ch.name, None)

    def _peers_of(self, vrf: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.settings.vrf == vrf and c.up]

    # --- sessions -------------------------------------------------------------------------------

    def channel_up(
        self, ch: Channel, source: Source, afis: Iterable[Afi], dump_limit: int | None = None
    ) -> bool:
        """The session is Established: queue the whole VRF table for it, then End-of-RIB.

        With ``dump_limit`` at most that many routes are queued now and ``continue_dump``
        queues the rest, so a big table never holds the caller's event loop. Returns whether
        the dump is complete (End-of-RIB queued).
        """
        ch.source = source
        ch.afis = frozenset(afis)
        vrf = ch.settings.vrf
        # A snapshot of the prefixes (one C-level copy): routes that change meanwhile reach the
        # channel through _propagate as for any up channel, and the dump re-reads each prefix's
        # current selection, so both orders end in the same Adj-RIB-Out.
        self._dumps[ch] = [
            (afi, list(self.table(vrf, afi).dests), 0) for afi in ch.afis if not ch.exports_none(afi)
        ]
        if ch.add_path_tx:
            self.path_senders.add(ch)
        return self.continue_dump(ch, dump_limit)

    def continue_dump(self, ch: Channel, limit: int | None = None) -> bool:
        """Queue up to ``limit`` (None: all) more routes of ``ch``'s table dump; True when done."""
        todo = self._dumps.get(ch)
        if todo is None:
            return True
        if ch.source is None:  # went down meanwhile
            del self._dumps[ch]
            return True
        left = limit
        vrf = ch.settings.vrf
        while todo:
            afi, keys, pos = todo[-1]
            end = len(keys) if left is None else min(len(keys), pos + left)
            ch.queue_export_table(afi, keys[pos:end], self.table(vrf, afi).get)
            if left is not None:
                left -= end - pos
            if end < len(keys):
                todo[-1] = (afi, keys, end)
                self.dirty.add(ch)
                return False
            todo.pop()
        del self._dumps[ch]
        ch.eor_pending = set(ch.afis)
        self.dirty.add(ch)
        return True

    def channel_down(self, ch: Channel) -> None:
        """The session ended: its paths leave the Loc-RIB (and so the kernel and other peers).

        The channel is cleared at once (its counters say 0, a new session starts clean); the
        paths are withdrawn by ``drain_step``, a slice at a time, unless there are few of them
        (rib/drain.py).
        """
        self.path_senders.discard(ch)
        self._dumps.pop(ch, None)
        jobs = self._paths_down(ch) if ch.adj_in_paths else []
        source = ch.source
        if source is not None:
            vrf = ch.settings.vrf
            if ch.lean:
                # The accepted routes are in the Loc-RIB only: a snapshot of the table's
                # prefixes (one C-level copy) instead of a pass over it here; withdrawing one
                # ``source`` does not hold costs a dict probe in ``drain_step``.
                for afi in {*ch.adj_in, *ch.afis}:
                    jobs.append(DrainJob(vrf, afi, source, tuple(self.table(vrf, afi).dests)))
            else:
                jobs.extend(DrainJob(vrf, afi, source, tuple(routes)) for afi, routes in ch.adj_in.items())
        ch.clear()
        self.dirty.discard(ch)
        for job in jobs:
            self._drain(job)

    def _paths_down(self, ch: Channel) -> list[DrainJob]:
        """The drain jobs of a channel's ADD-PATH paths (one per path id: each its own source)."""
        vrf = ch.settings.vrf
        jobs = [
            DrainJob(vrf, afi, ch.path_source(path_id), tuple(routes))
            for afi, by_id in ch.adj_in_paths.items()
            for path_id, routes in by_id.items()
            if routes
        ]
        ch.adj_in_paths.clear()
        return jobs

    def drain(self, vrf: str, afi: Afi, source: Source, prefixes: Iterable[PrefixKey]) -> None:
        """Withdraw ``source``'s paths of ``prefixes``: at once if at most ``drain_slice``, else
        by ``drain_step``. What ``source`` announces again meanwhile is kept (a live source:
        a graceful-restart sweep), as is anything of another source."""
        self._drain(DrainJob(vrf, afi, source, tuple(prefixes)))

    def _drain(self, job: DrainJob) -> None:
        if not job.prefixes:
            return
        if len(job.prefixes) <= self.drain_slice:
            job.pos = len(job.prefixes)
            self._withdraw_drained(job, job.prefixes)
        else:
            self.drains.add(job)

    @property
    def draining(self) -> bool:
        return bool(self.drains)

    def drain_step(self, limit: int | None = None) -> bool:
        """Withdraw (and propagate) up to ``limit`` (None: all) more prefixes of the drain
        jobs, oldest first. True while work remains."""
        for job, keys in self.drains.take(limit):
            self._withdraw_drained(job, keys)
        return bool(self.drains)

    def drain_vrf_now(self, vrf: str) -> None:
        """Finish the drains of ``vrf`` at once (it is being removed: its kernel table with it)."""
        for job, keys in self.drains.take_vrf(vrf):
            self._withdraw_drained(job, keys)

    def _withdraw_drained(self, job: DrainJob, keys: Sequence[PrefixKey]) -> None:
        table = self.tables.get((job.vrf, job.afi))
        if table is None:
            return
        if job.revived:
            revived = job.revived
            keys = [k for k in keys if k not in revived]
        source = job.source
        if not self.path_senders:
            changes = [c for c in map(table.withdraw, keys, repeat(source)) if c is not None]
            self._propagate_many(job.vrf, job.afi, changes)
            return
        # ADD-PATH peers were sent every path: one that goes without changing the selection
        # must be withdrawn from them too (not every key held one: a lean snapshot's).
        changes, touched = [], []
        withdraw = table.withdraw
        for key in keys:
            held = table.path_count
            change = withdraw(key, source)
            if change is not None:
                changes.append(change)
            elif table.path_count != held:
                touched.append(key)
        self._propagate_many(job.vrf, job.afi, changes)
        self._touch_paths(job.vrf, job.afi, touched)

    def _supersede(
        self,
        ch: Channel,
        source: Source,
        announce: list[tuple[Afi, PathAttrs, list[PrefixKey]]],
        announce_ids: list[list[int] | None],
    ) -> dict[Afi, list[Change]]:
        """An UPDATE of a neighbour whose earlier paths are still draining: what it announces
        now takes the prefix over. A previous session's paths of those prefixes go at once
        (before the new ones are added, in the same batch: the kernel and the peers see only
        the end state); a path the live session itself sends again (its source, or with
        ADD-PATH the source of that path id: a graceful-restart sweep running) is no longer
        to be drained."""
        vrf = ch.settings.vrf
        jobs = self.drains.of_peer(vrf, source.peer)
        changes: dict[Afi, list[Change]] = {}
        ids_of = iter(announce_ids)
        for afi, _attrs, prefixes in announce:
            if not prefixes:
                continue
            ids = next(ids_of, None)  # the decoder lists ids only for groups with prefixes
            if afi not in ch.add_path_rx:
                ids = None
            for job in jobs:
                if job.afi != afi:
                    continue
                old = job.source
                if old is source:  # the live plain source
                    if ids is None:
                        job.revived.update(prefixes)
                    continue
                if old.base is source:  # one of the live session's path ids
                    if ids is not None:
                        job.revived.update(p for p, i in zip(prefixes, ids, strict=True) if i == old.path_id)
                    continue
                table = self.table(vrf, afi)
                out = changes.setdefault(afi, [])
                out.extend(c for c in map(table.withdraw, prefixes, repeat(old)) if c is not None)
        return changes

    def _touch_paths(self, vrf: str, afi: Afi, prefixes: list[PrefixKey]) -> None:
        """Paths of ``prefixes`` changed (the selection maybe not): re-export to ADD-PATH senders."""
        for ch in self.path_senders:
            if ch.settings.vrf == vrf and afi in ch.add_path_tx and prefixes:
                ch.queue_export_paths(afi, prefixes)
                if ch.pending:
                    self.dirty.add(ch)

    # --- routes ---------------------------------------------------------------------------------

    def receive(
        self,
        ch: Channel,
        announce: Iterable[tuple[Afi, PathAttrs, list[PrefixKey]]],
        withdraw: Iterable[tuple[Afi, list[PrefixKey]]],
        now: float,
        announce_ids: list[list[int] | None] | None = None,
        withdraw_ids: list[list[int] | None] | None = None,
    ) -> None:
        """Apply one decoded UPDATE from ``ch``'s neighbour (withdrawals first, as on the wire).

        The changes are collected per family and handed on in one batch per UPDATE. With
        ADD-PATH receive, ``announce_ids``/``withdraw_ids`` hold the path ids (``Update``'s
        ``announce_path_ids``/``withdraw_path_ids``).
        """
        source = ch.source
        if source is None:
            return
        vrf = ch.settings.vrf
        if ch.stale or ch.stale_paths:  # a restarting neighbour's: what it sends is no longer stale
            from rib.stale import refresh

            announce, withdraw = list(announce), list(withdraw)
            refresh(self, ch, announce, withdraw, announce_ids, withdraw_ids)
        changes: dict[Afi, list[Change]] = {}
        if self.drains.by_peer and (vrf, source.peer) in self.drains.by_peer:
            announce = list(announce)
            changes = self._supersede(ch, source, announce, announce_ids or [])
        senders = self.path_senders
        touched: list[tuple[Afi, list[PrefixKey]]] = []
        if senders or announce_ids or withdraw_ids:
            announce, withdraw = list(announce), list(withdraw)
            if senders:  # the prefixes whose paths may change, whatever the selection does
                touched = [(afi, p) for afi, p in withdraw] + [(afi, p) for afi, _a, p in announce]
            if announce_ids or withdraw_ids:
                announce, withdraw = self._receive_path_ids(
                    ch, announce, withdraw, announce_ids or [], withdraw_ids or [], now, changes
                )
        lean = ch.lean
        for afi, prefixes in withdraw:
            adj = ch.adj_in.get(afi)
            if not adj and not lean:
                continue
            table = self.table(vrf, afi)
            out = changes.setdefault(afi, [])
            held = table.path_count
            for prefix in prefixes:
                # Lean: what the Adj-RIB-In holds apart from the Loc-RIB is only what import
                # rejected, so every withdrawn prefix is tried on the Loc-RIB (one dict probe).
                if (adj.pop(prefix, None) if adj else None) is None and not lean:
                    continue
                change = table.withdraw(prefix, source)
                if change is not None:
                    out.append(change)
            # The Loc-RIB holds the neighbour's path exactly where import accepted it: what left
            # it is what was accepted, with no import check re-run per withdrawn prefix.
            ch.accepted -= held - table.path_count
        for afi, attrs, prefixes in announce:
            if afi not in ch.afis or not prefixes:
                continue
            adj = ch.adj_in.setdefault(afi, {})
            table = self.table(vrf, afi)
            out = changes.setdefault(afi, [])
            self._receive(ch, source, table, adj, attrs, prefixes, now, out)
        for afi, out in changes.items():
            if out:
                self._propagate_many(vrf, afi, out)
        for afi, prefixes in touched:
            done = changes.get(afi)
            if done:  # a new selection was exported by _propagate_many already
                seen = {c.prefix for c in done}
                prefixes = [p for p in prefixes if p not in seen]
            self._touch_paths(vrf, afi, prefixes)
        if not lean and ch.accepted >= self.lean_min:
            self._go_lean(ch)

    def _receive_path_ids(
        self,
        ch: Channel,
        announce: list[tuple[Afi, PathAttrs, list[PrefixKey]]],
        withdraw: list[tuple[Afi, list[PrefixKey]]],
        announce_ids: list[list[int] | None],
        withdraw_ids: list[list[int] | None],
        now: float,
        changes: dict[Afi, list[Change]],
    ) -> tuple[list[tuple[Afi, PathAttrs, list[PrefixKey]]], list[tuple[Afi, list[PrefixKey]]]]:
        """The groups of one UPDATE that carry ADD-PATH ids: each path id is a peer of its own
        (its source, its Adj-RIB-In), handled by the same code as a plain UPDATE. Returns the
        groups without ids. The id lists pair with the groups that have prefixes (the decoder
        lists ids only for those)."""
        vrf = ch.settings.vrf
        w_ids, a_ids = iter(withdraw_ids), iter(announce_ids)
        plain_w: list[tuple[Afi, list[PrefixKey]]] = []
        for afi, prefixes in withdraw:
            ids = next(w_ids, None) if prefixes else None
            if ids is None or afi not in ch.add_path_rx:
                plain_w.append((afi, prefixes))
                continue
            by_id = ch.adj_in_paths.get(afi)
            if not by_id:
                continue
            table = self.table(vrf, afi)
            out = changes.setdefault(afi, [])
            for prefix, path_id in zip(prefixes, ids, strict=True):
                adj = by_id.get(path_id)
                old = adj.pop(prefix, None) if adj else None
                if old is None:
                    continue
                if ch.import_attrs(afi, prefix, old) is not None:
                    ch.accepted -= 1
                change = table.withdraw(prefix, ch.path_source(path_id))
                if change is not None:
                    out.append(change)
                if not adj:  # a path id with no prefix left: forget it (and its source)
                    del by_id[path_id]
                    ch.path_sources.pop(path_id, None)
        plain_a: list[tuple[Afi, PathAttrs, list[PrefixKey]]] = []
        for afi, attrs, prefixes in announce:
            ids = next(a_ids, None) if prefixes else None
            if ids is None or afi not in ch.add_path_rx:
                plain_a.append((afi, attrs, prefixes))
                continue
            if afi not in ch.afis:
                continue
            groups: dict[int, list[PrefixKey]] = {}
            if len(ids) != len(prefixes):
                raise ValueError(f"{len(ids)} path ids for {len(prefixes)} prefixes")
            if ids.count(ids[0]) == len(ids):  # one path id for the whole group: no loop
                groups[ids[0]] = prefixes
            else:
                for prefix, path_id in zip(prefixes, ids, strict=True):
                    group = groups.get(path_id)
                    if group is None:
                        groups[path_id] = [prefix]
                    else:
                        group.append(prefix)
            by_id = ch.adj_in_paths.setdefault(afi, {})
            table = self.table(vrf, afi)
            out = changes.setdefault(afi, [])
            for path_id, group in groups.items():
                adj = by_id.setdefault(path_id, {})
                self._receive(ch, ch.path_source(path_id), table, adj, attrs, group, now, out)
        return plain_a, plain_w

    def _receive(
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
        """The prefixes of one UPDATE (one attribute set): import once for the set, then per
        prefix only where the policy's prefix lists are left to test."""
        outcome = ch.import_outcome(table.afi, attrs)
        if isinstance(outcome, PrefixPlan):
            self._receive_each(ch, source, table, adj, attrs, outcome, prefixes, now, out)
        else:
            self._receive_shared(ch, source, table, adj, attrs, outcome, prefixes, now, out)

    def _receive_each(
        self,
        ch: Channel,
        source: Source,
        table: LocRib,
        adj: dict[PrefixKey, PathAttrs],
        attrs: PathAttrs,
        plan: PrefixPlan,
        prefixes: list[PrefixKey],
        now: float,
        out: list[Change],
    ) -> None:
        """The prefixes of one UPDATE when the import policy's prefix lists decide per prefix.

        A policy changes one attribute set the same way wherever it accepts it, so the
        prefixes are grouped by their import result: one shared Path per result.
        """
        afi = table.afi
        result = plan.result
        groups: dict[int, tuple[PathAttrs, list[PrefixKey]]] = {}
        rejected: list[PrefixKey] = []
        lean = ch.lean and source is ch.source
        if lean:  # see _receive_shared
            if adj and not adj.keys().isdisjoint(prefixes):  # rejected before (rare)
                pop = adj.pop
                for prefix in prefixes:
                    pop(prefix, None)
            held = table.path_count
            for imported, group_prefixes in plan.partition(afi, prefixes):
                if imported is None:
                    rejected = group_prefixes
                else:
                    groups[id(imported)] = (imported, group_prefixes)
            if rejected:
                adj.update(dict.fromkeys(rejected, attrs))
        else:
            import_attrs = ch.import_attrs
            accepted = ch.accepted
            for prefix in prefixes:
                old = adj.get(prefix)
                adj[prefix] = attrs
                if old is not None and import_attrs(afi, prefix, old) is not None:
                    accepted -= 1
                imported = result(afi, prefix)
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
            path = Path(source, imported, now, None if imported is attrs else attrs)
            out.extend(table.update_many(group_prefixes, path))
        if lean:
            ch.accepted += table.path_count - held

    def _receive_shared(
        self,
        ch: Channel,
        source: Source,
        table: LocRib,
        adj: dict[PrefixKey, PathAttrs],
        attrs: PathAttrs,
        imported: PathAttrs | None,
        prefixes: list[PrefixKey],
        now: float,
        out: list[Change],
    ) -> None:
        """The prefixes of one UPDATE when every one gets the same import result (the usual
        case): share one Path (paths are never mutated), and let the Loc-RIB take the whole
        batch in one call.
        """
        afi = table.afi
        import_attrs = ch.import_attrs
        if len(prefixes) > 1 and len(set(prefixes)) != len(prefixes):
            prefixes = list(dict.fromkeys(prefixes))  # a repeat changes nothing more
        if ch.lean and source is ch.source:
            # Lean (see _go_lean): an accepted route lives in the Loc-RIB only (its Path keeps
            # the attributes as received); the dict keeps what import rejected. The Loc-RIB's
            # path count says how many were new.
            if adj and not adj.keys().isdisjoint(prefixes):  # rejected before (rare)
                pop = adj.pop
                for prefix in prefixes:
                    pop(prefix, None)
            held = table.path_count
            if imported is None:
                adj.update(dict.fromkeys(prefixes, attrs))
                out.extend(c for c in map(table.withdraw, prefixes, repeat(source)) if c is not None)
            else:
                path = Path(source, imported, now, None if imported is attrs else attrs)
                out.extend(table.update_many(prefixes, path))
            ch.accepted += table.path_count - held
            return
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
            path = Path(source, imported, now, None if imported is attrs else attrs)
            out.extend(table.update_many(prefixes, path))

    # --- lean Adj-RIB-In ---------------------------------------------------------------------------

    def _go_lean(self, ch: Channel) -> None:
        """Stop keeping a second copy of the routes a channel accepted.

        The Loc-RIB holds each accepted route with the attributes received (``Path.received``
        where import policy changed them, one per UPDATE), so a full table's Adj-RIB-In dict
        (~40 MiB per 1M routes) repeats it: from here on the dict keeps only what import
        rejected (loops, policy), and ``adj_rib_in`` gives the whole
        Adj-RIB-In back from the Loc-RIB when a reload or a graceful restart needs it. Once per
        session, O(the peer's routes). A peer below ``lean_min`` routes keeps the plain dict, so
        that its session ending costs per route of its own, not per route of the table.
        """
        source = ch.source
        if source is None or ch.stale or ch.add_path_rx:
            return
        vrf = ch.settings.vrf
        for afi, adj in list(ch.adj_in.items()):
            get = self.table(vrf, afi).dests.get
            # A new dict: a dict never shrinks by deleting from it.
            ch.adj_in[afi] = {p: a for p, a in adj.items() if not _holds(get(p), source)}
        ch.lean = True

    def adj_rib_in(self, ch: Channel) -> dict[Afi, dict[PrefixKey, PathAttrs]]:
        """The channel's whole Adj-RIB-In, also when lean (then O(the VRF's table))."""
        source = ch.source
        if not ch.lean or source is None:
            return ch.adj_in
        vrf = ch.settings.vrf
        out: dict[Afi, dict[PrefixKey, PathAttrs]] = {}
        for afi in {*ch.adj_in, *ch.afis}:
            routes = dict(ch.adj_in.get(afi, _NONE))
            for prefix, cur in self.table(vrf, afi).dests.items():
                path = _path_of(cur, source)
                if path is not None:
                    routes[prefix] = path.received_attrs
            if routes:
                out[afi] = routes
        return out

    def unlean(self, ch: Channel) -> None:
        """Give a lean channel its whole Adj-RIB-In dict back (before a reload re-imports it,
        or a graceful restart hands it over as stale)."""
        if ch.lean:
            ch.adj_in = self.adj_rib_in(ch)
            ch.lean = False

    def originate(
        self,
        vrf: str,
        afi: Afi,
        prefix: PrefixKey,
        attrs: PathAttrs,
        now: float,
        source: Source | None = None,
    ) -> None:
        """A locally originated route (a configured `network`; ``source``: a redistributed one)."""
        self.add_vrf(vrf)
        change = self.table(vrf, afi).update(prefix, Path(source or self.local_source, attrs, now))
        if change is not None:
            self._propagate(change)
        self._touch_paths(vrf, afi, [prefix])

    def withdraw_local(self, vrf: str, afi: Afi, prefix: PrefixKey, source: Source | None = None) -> None:
        change = self.table(vrf, afi).withdraw(prefix, source or self.local_source)
        if change is not None:
            self._propagate(change)
        self._touch_paths(vrf, afi, [prefix])

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

    def next_hops_changed(
        self, vrf: str | None = None, next_hops: Collection[IPAddress] | None = None
    ) -> None:
        """The IGP changed (a resolver answer differs now): recompute the selections.

        Only in ``vrf`` and of the prefixes with a path via one of ``next_hops`` when given.
        O(table) by nature, like BIRD's next-hop tracking on a kernel table change; it runs
        on IGP events, never per UPDATE.
        """
        for table in list(self.tables.values()):
            if vrf is None or table.vrf == vrf:
                self._propagate_many(table.vrf, table.afi, table.reselect_all(next_hops))

    def reselect_via(
        self, vrf: str, afi: Afi, prefixes: Iterable[PrefixKey], next_hops: Collection[IPAddress]
    ) -> None:
        """One slice of a re-evaluation after an IGP change (rib/reselect.py drives it)."""
        table = self.tables.get((vrf, afi))
        if table is not None:
            self._propagate_many(vrf, afi, table.reselect_via(prefixes, next_hops))

    def set_resolver(self, vrf: str, resolve: Resolver | None) -> None:
        """The IGP view of one VRF (the daemon's kernel next-hop resolver); reselects its routes."""
        self.add_vrf(vrf)
        decision = replace(self.decision, resolve=resolve)
        for afi in Afi:
            table = self.table(vrf, afi)
            table.decision = decision
            self._propagate_many(vrf, afi, table.reselect_all())

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
        self.unlean(ch)  # re-imported in full below; lean again after if still eligible
        ch.settings = settings
        ch._import_cache.clear()
        ch._export_cache.clear()
        source = ch.source
        if source is None:
            return
        vrf = settings.vrf
        now_accepted = 0
        # The plain Adj-RIB-In under the session's source, each ADD-PATH path id's under its own.
        ribs_in = [(afi, routes, source) for afi, routes in ch.adj_in.items()]
        for afi, by_id in ch.adj_in_paths.items():
            ribs_in.extend((afi, routes, ch.path_source(path_id)) for path_id, routes in by_id.items())
        for afi, routes, src in ribs_in:
            table = self.table(vrf, afi)
            changes: list[Change] = []
            for prefix, attrs in routes.items():
                imported = ch.import_attrs(afi, prefix, attrs)
                if imported is None:
                    change = table.withdraw(prefix, src)
                else:
                    now_accepted += 1
                    dest = table.get(prefix)
                    old = next((p for p in dest.paths if p.source is src), None) if dest else None
                    if old is not None and old.attrs is imported:
                        continue
                    received = None if imported is attrs else attrs
                    change = table.update(prefix, Path(src, imported, old.since if old else now, received))
                if change is not None:
                    changes.append(change)
            self._propagate_many(vrf, afi, changes)
            if self.path_senders:
                self._touch_paths(vrf, afi, list(routes))
        ch.accepted = now_accepted
        if now_accepted >= self.lean_min:
            self._go_lean(ch)
        for afi in ch.afis:
            for prefix, dest in self.table(vrf, afi).items():
                ch.queue_export(afi, prefix, dest.selected[0] if dest.selected else None)
        if ch.has_pending():
            self.dirty.add(ch)


def _path_of(cur: Stored | None, source: Source) -> Path | None:
    """The path of ``source`` in what the Loc-RIB stores for one prefix."""
    if cur is None:
        return None
    t = type(cur)
    if t is Path:
        return cur if cur.source is source else None  # type: ignore[return-value,union-attr]
    for p in cur if t is tuple else cur.paths:  # type: ignore[union-attr]
        if p.source is source:
            return p
    return None


def _holds(cur: Stored | None, source: Source) -> bool:
    return _path_of(cur, source) is not None
