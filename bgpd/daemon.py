"""The daemon: wires config, sessions, the RIB, the kernel writer and the control socket.

Data flows one way: session -> Rib.receive -> Change -> (kernel writer, other channels'
Adj-RIB-Out) -> outbound packing -> session. This module is the only one that knows all
the parts; the parts know nothing of each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from bgpd.allocator import tune_malloc
from bgpd.config.errors import ConfigError
from bgpd.config.model import Config, NeighborConfig, NetworkConfig
from bgpd.config.toml import load_config
from bgpd.control import ControlServer, Encoded
from bgpd.graceful import Helper, Recovery
from bgpd.igp import KernelIgp
from bgpd.listener import Listener
from bgpd.log import get_logger
from bgpd.originate import BlackholeRoutes
from bgpd.outbound import pack_pending, take_batch
from bgpd.sdnotify import Notifier
from bgpd.session import OUT_QUEUE_CAP, OUT_QUEUE_HEADROOM, PeerSession
from bgpd.views import counts_json, iter_routes_json, routes_json
from bgpd.wire import UpdateEncoder
from bgpd.wire.messages import Update
from fib.model import FibBackend, NextHops, RuleSpec
from fib.sync import FibSync
from policy.filters import ACCEPT_ALL, REJECT_ALL, Filter, Policy, compile_term
from rib.attrs import PathAttrs, intern
from rib.channel import Channel, ChannelSettings
from rib.decision import Decision
from rib.engine import Rib
from rib.prefix import Afi, IPAddress, PrefixKey
from rib.route import Change, Path, Source, SourceKind

if TYPE_CHECKING:
    from bgpd.metrics import MetricsServer
    from fib.netlink import RuleWriter


# Neighbour keys that only the filters use: changing them needs no new session.
_FILTER_KEYS = ("import_", "export", "next_hop_self", "import_defaulted", "export_defaulted", "description")


# Seconds to let a burst of kernel route changes gather before re-evaluating the next hops.
IGP_SETTLE = 0.05
# Routes of a table dump (a session coming up) queued per loop turn: a few ms of work.
DUMP_SLICE = 2000
# `show routes` of more routes than SLICED_ROUTES is built and encoded ROUTES_SLICE per loop turn.
SLICED_ROUTES = 10_000
ROUTES_SLICE = 1000
# UPDATE packing per loop turn, all peers together (seconds), and changes per turn shared by
# the peers waiting (at least SEND_MIN_SHARE each): a peer that reads fast could otherwise take
# a whole table (seconds) in one turn and starve the KEEPALIVEs, the timers, the CLI and the
# other peers. Every waiting peer gets one batch per turn, so on a slow machine the first peer
# cannot use up the turn; those cut short go last in the next turn.
SEND_TURN = 0.010
SEND_PER_TURN = 8192
SEND_MIN_SHARE = 256


def _same_session(old: NeighborConfig, new: NeighborConfig) -> bool:
    """Whether the running session can be kept (only filter-related keys differ)."""
    return all(
        getattr(old, f.name) == getattr(new, f.name) for f in fields(old) if f.name not in _FILTER_KEYS
    )


def router_id_int(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def build_filters(config: Config) -> dict[str, Filter]:
    """Compile the named policies. Raises ConfigError naming the policy key at fault."""
    from bgpd.config.errors import ConfigIssue

    filters: dict[str, Filter] = {"all": ACCEPT_ALL, "none": REJECT_ALL}
    issues = []
    for name, pol in config.policies.items():
        terms = []
        for i, term in enumerate(pol.terms):
            try:
                terms.append(compile_term(dict(term.match), term.action, dict(term.set), config.router.asn))
            except (ValueError, TypeError) as e:
                issues.append(ConfigIssue(config.source, f"policy.{name}.term[{i}]", str(e)))
        filters[name] = Policy(name, terms)
    if issues:
        raise ConfigError(issues)
    return filters


@dataclass(slots=True)
class Peer:
    cfg: NeighborConfig
    channel: Channel
    session: PeerSession
    encoder: UpdateEncoder | None = None
    out_queue_peak: int = 0  # the most bytes queued for the peer in this session


# Next-hop sets handed to the FIB, each kept once (see Daemon._kernel_nexthops).
_NEXTHOPS: dict[NextHops, NextHops] = {}


class Daemon:
    def __init__(self, config: Config, fib_backend: FibBackend | None = None) -> None:
        self.config = config
        self.log = get_logger()
        self.filters = build_filters(config)
        rid = router_id_int(config.router.router_id)
        # The next-hop resolver stays the default ("resolvable, cost 0") until the daemon tracks
        # the IGP; Rib.next_hops_changed() re-runs the selection when it does.
        decision = Decision(config.router.always_compare_med, config.router.prefer_older)
        self.rib = Rib(config.router.asn, rid, config.kernel.ecmp, config.router.multipath_relax, decision)
        for vrf in config.vrfs:
            self.rib.add_vrf(vrf)
        # VRF -> kernel table, as the kernel writer uses it (kept apart from the config so a
        # reload can move a VRF's routes before switching).
        self.vrf_tables = {name: v.table for name, v in config.vrfs.items()}
        self.fib: FibSync | None = None
        self.rules: RuleWriter | None = None  # the VRFs' steering `ip rule`s (real kernel only)
        # Other protocols' kernel routes and the addresses (real kernel only): next-hop
        # resolution and IGP cost, connected prefixes, redistribution (bgpd/igp.py).
        self.igp: KernelIgp | None = None
        self._igp_timer: asyncio.TimerHandle | None = None
        self._reselect_handle: asyncio.Handle | None = None  # the next re-evaluation slice
        self._reselect_began = (0.0, 0, 0)  # (monotonic time, prefixes looked at, slices) then
        # Sessions gone down: their paths are withdrawn a slice per turn (rib/drain.py), paused
        # while the kernel writer is behind (the next slice, or the wait for the writer).
        self._drain_handle: asyncio.Handle | None = None
        self._drain_wait: asyncio.Future[None] | None = None
        self._drain_began = (0.0, 0)  # (monotonic time, slices) of the current run
        self._drain_slices = 0
        self._shutting_down = False  # no more drain slices: the kernel flush removes everything
        self._igp_redumping: asyncio.Future[None] | None = None
        if config.kernel.enabled:
            fib_log = self.log.bind(component="fib")
            monitor = None
            if fib_backend is None:
                from fib.netlink import NetlinkFib, RuleWriter, missing_net_admin

                fib_backend = NetlinkFib(protocol=config.kernel.protocol)
                # Routes changed by others (ip route, a link going down) are seen and repaired.
                monitor = fib_backend.open_monitor()
                self.rules = RuleWriter(config.kernel.protocol)
                self.igp = self._open_igp(config, rid)
                if missing_net_admin():
                    fib_log.error(
                        "kernel routes cannot be written: this process lacks CAP_NET_ADMIN "
                        "(run as root or grant it, e.g. AmbientCapabilities=CAP_NET_ADMIN); "
                        "sessions and the RIB run on, every route shows fib=failed"
                    )
            self.fib = FibSync(fib_backend, fib_log, monitor=monitor, protocol=config.kernel.protocol)
            self.rib.batch_subscribers.append(self._to_kernel_many)
        self.peers: dict[str, Peer] = {}
        # Graceful restart (bgpd/graceful.py): the helper role for every neighbour, and our own
        # recovery after a restart with [router] graceful_restart.
        self.graceful = Helper(
            self.rib,
            self.log.bind(component="graceful"),
            self._schedule_flush,
            lambda seconds, fn: asyncio.get_running_loop().call_later(seconds, fn),
        )
        self.recovery: Recovery | None = None
        self._recovery_timer: asyncio.TimerHandle | None = None
        self._recovery_task: asyncio.Future[None] | None = None
        self._graceful_stop = False
        self.blackholes = BlackholeRoutes()
        self.listener: Listener | None = None
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None
        self._stop = asyncio.Event()
        self._flush_scheduled = False
        self._send_queue: list[Channel] = []  # channels whose packing the last turn cut short
        self._routes_since_freeze = 0  # see _freeze_loaded
        self.started_at = time.monotonic()
        self.notifier = Notifier()

    # --- kernel ---------------------------------------------------------------------------------

    @staticmethod
    def _kernel_nexthops(best: tuple[Path, ...]) -> NextHops:
        if not best or best[0].source.kind == SourceKind.LOCAL:
            return ()
        nh = tuple(p.attrs.next_hop for p in best if p.attrs.next_hop is not None)
        # Interned: a full table has a handful of next-hop sets, and the FIB keeps one per
        # route (its installed state); one shared tuple each instead of one per UPDATE.
        shared = _NEXTHOPS.setdefault(nh, nh)
        if shared is nh and len(_NEXTHOPS) > 65_536:
            _NEXTHOPS.clear()  # pathological churn of next hops: the routes keep their tuples
        return shared

    def _to_kernel_many(self, changes: list[Change]) -> None:
        """One UPDATE's changes (the RIB batches them by VRF and family): one FIB submission."""
        assert self.fib is not None
        if self.recovery is not None and self.recovery.active:
            return  # our graceful restart: the kernel keeps the old state until one reconcile at the end
        first = changes[0]
        nexthops = self._kernel_nexthops
        # The prefixes of one UPDATE share their selection tuple: build its next hops once, so
        # the FIB's per-route state shares one tuple too (a full table: ~50 MiB less).
        routes: dict[PrefixKey, NextHops] = {}
        last: tuple[Path, ...] | None = None
        nh: NextHops = ()
        for c in changes:
            if c.best is not last:
                last = c.best
                nh = nexthops(last)
            routes[c.prefix] = nh
        self.fib.submit_many(self.vrf_tables[first.vrf], first.afi, routes)

    def _move_vrf_tables(self, old: Config, new: Config) -> int:
        """VRFs added, or moved to another kernel table, by a reload. Returns routes moved."""
        moved = 0
        for name, vrf in new.vrfs.items():
            before = old.vrfs.get(name)
            self.rib.add_vrf(name)
            self.vrf_tables[name] = vrf.table
            if before is None or before.table == vrf.table or self.fib is None:
                continue
            for afi in Afi:
                for prefix, dest in self.rib.table(name, afi).items():
                    nexthops = self._kernel_nexthops(dest.selected)
                    if nexthops:
                        self.fib.submit(before.table, afi, prefix, ())
                        self.fib.submit(vrf.table, afi, prefix, nexthops)
                        moved += 1
            self.log.info("vrf moved", vrf=name, old_table=before.table, table=vrf.table)
        return moved

    async def _write_rules(self, start: bool) -> None:
        """Create the VRFs' steering rules (replacing ours left by an earlier run), or remove them."""
        rules = self.rules
        assert rules is not None
        specs = [
            RuleSpec(v.table, r.priority, None, r.source, r.iif, r.fwmark)
            for v in self.config.vrfs.values()
            for r in v.rules
        ]
        loop = asyncio.get_running_loop()
        try:
            if start:
                errors = await loop.run_in_executor(None, rules.sync, specs)
            else:
                errors = await loop.run_in_executor(None, rules.remove_all)
        except OSError as exc:  # no rtnetlink at all: sessions and routes go on regardless
            errors = [f"ip rule: {exc}"]
        for error in errors:
            self.log.error("vrf steering rule not written", error=error)
        if start and specs:
            self.log.info("vrf steering rules", rules=[s.describe() for s in specs], failed=len(errors))

    # --- the kernel as IGP: resolution, connected prefixes, redistribution ----------------------

    def _open_igp(self, config: Config, rid: int) -> KernelIgp | None:
        try:
            return KernelIgp(config, self.rib, rid, self.log.bind(component="igp"))
        except OSError as exc:
            self.log.error(
                "kernel routes cannot be watched: every next hop counts as resolvable, "
                "nothing is redistributed",
                error=str(exc),
            )
            return None

    async def _start_igp(self) -> None:
        """Dump the kernel (before any session is up), then follow its notifications."""
        igp = self.igp
        if igp is None:
            return
        loop = asyncio.get_running_loop()
        try:
            igp.load(await loop.run_in_executor(None, igp.dump))
        except OSError as exc:
            self.log.error("kernel routes could not be dumped", error=str(exc))
            igp.close()
            self.igp = None
            return
        igp.configure(self.config, self.filters)
        self._kick_reselect()
        loop.add_reader(igp.watch.fileno(), self._igp_readable)

    def _igp_readable(self) -> None:
        igp = self.igp
        if igp is None:
            return
        try:
            due = igp.read()
        except OSError as exc:  # the socket broke: stop following (the last view stays in force)
            self.log.error(
                "kernel route monitor failed; kernel changes are no longer followed", error=str(exc)
            )
            asyncio.get_running_loop().remove_reader(igp.watch.fileno())
            return
        if due and self._igp_timer is None:
            # A burst (a link down takes many routes) is re-evaluated once, a moment later.
            self._igp_timer = asyncio.get_running_loop().call_later(IGP_SETTLE, self._igp_settle)

    def _igp_settle(self) -> None:
        self._igp_timer = None
        igp = self.igp
        if igp is None:
            return
        if igp.settle([p.channel for p in self.peers.values() if p.channel.up]):
            self._igp_redumping = asyncio.ensure_future(self._igp_redump())
        self._kick_reselect()
        self._schedule_flush()

    def _kick_reselect(self) -> None:
        """Next hops resolve differently: their prefixes are decided again a slice per turn."""
        if self._reselect_handle is None and self.igp is not None and self.igp.reselect.busy:
            r = self.igp.reselect
            self._reselect_began = (time.monotonic(), r.decided, r.slices)
            self._reselect_handle = asyncio.get_running_loop().call_soon(self._reselect_slice)

    def _reselect_slice(self) -> None:
        self._reselect_handle = None
        igp = self.igp
        if igp is None:
            return
        before = igp.reselect.decided
        more = igp.reselect_step()
        if igp.reselect.decided // 100_000 != before // 100_000:
            # Deciding a table again makes a new object per prefix, as loading it does: out of
            # the collector's way likewise (see _freeze_loaded), or one turn walks them all.
            gc.collect(1)
            gc.freeze()
        self._schedule_flush()  # this slice's changes to the kernel and the peers
        if more:  # call_soon: what is ready (sessions, timers, the CLI) runs before the next slice
            self._reselect_handle = asyncio.get_running_loop().call_soon(self._reselect_slice)
            return
        began, decided, slices = self._reselect_began
        self.log.info(
            "next hops re-evaluated",
            prefixes=igp.reselect.decided - decided,
            slices=igp.reselect.slices - slices,
            seconds=round(time.monotonic() - began, 3),
        )

    async def _igp_redump(self) -> None:
        igp = self.igp
        if igp is None:
            return
        try:
            igp.load(await asyncio.get_running_loop().run_in_executor(None, igp.dump))
        except OSError as exc:
            self.log.error("kernel routes could not be dumped", error=str(exc))
            return
        self._igp_settle()

    # --- peers ----------------------------------------------------------------------------------

    def _channel_settings(self, cfg: NeighborConfig) -> ChannelSettings:
        return ChannelSettings(
            name=cfg.key,
            vrf=cfg.vrf,
            local_asn=self.config.router.asn,
            peer_asn=cfg.asn,
            next_hop_self=cfg.next_hop_self,
            import_filter=self.filters[cfg.import_],
            export_filter=self.filters[cfg.export],
            router_id=router_id_int(self.config.router.router_id),
            cluster_id=self.config.router.cluster_id,
            rr_client=cfg.route_reflector_client,
            allow_local_as=cfg.allow_local_as,
            enforce_first_as=cfg.enforce_first_as,
            next_hop_keep=cfg.next_hop_keep,
        )

    def _make_peer(self, cfg: NeighborConfig) -> Peer:
        channel = Channel(self._channel_settings(cfg))
        self.rib.add_channel(channel)
        log = self.log.bind(peer=cfg.key, asn=cfg.asn, vrf=cfg.vrf)
        vrf = self.config.vrfs.get(cfg.vrf)
        device = vrf.device if vrf is not None else None  # the VRF's l3mdev device, if it names one
        session = PeerSession(cfg, self.config.router.asn, self.config.router.router_id, self, log, device)
        # Backpressure: received bytes wait while many routes queue behind the kernel (fib/sync.py).
        session.input_gate = self.fib
        rec = self.recovery
        if rec is not None and rec.active and cfg.graceful_restart:
            session._params.restart_state = True  # R bit: we restarted (RFC 4724 4.1)
        if rec is not None and cfg.graceful_restart:
            session._params.forwarding = rec.forwarding  # F bit: the kernel kept these families
        if cfg.import_defaulted or cfg.export_defaulted:
            log.warning(
                "ebgp neighbor without import/export policy exchanges no routes there (RFC 8212)",
                import_=cfg.import_,
                export=cfg.export,
            )
        return Peer(cfg, channel, session)

    def _peer_of(self, session: PeerSession) -> Peer:
        return self.peers[session.key]

    def session_up(self, session: PeerSession) -> None:
        peer = self._peer_of(session)
        neg = session.negotiated
        assert neg is not None
        kind = SourceKind.EBGP if peer.cfg.asn != self.config.router.asn else SourceKind.IBGP
        source = Source(
            kind,
            peer.cfg.address,
            neg.peer_asn,
            router_id_int(neg.peer_router_id),
            peer.cfg.description,
            rr_client=peer.cfg.route_reflector_client and kind == SourceKind.IBGP,
        )
        ch = peer.channel
        ch.local_addrs = self._local_addrs(session)
        if self.igp is not None:
            self.igp.set_connected(ch)  # the session's subnet: third-party next hops
        peer.encoder = UpdateEncoder(
            neg.four_octet, max_len=neg.max_message_len, add_path_tx=[int(a) for a in neg.add_path_tx]
        )
        peer.out_queue_peak = 0
        ch.add_path_rx = frozenset(neg.add_path_rx)  # a path per path id (RFC 7911)
        ch.add_path_tx = frozenset(neg.add_path_tx)  # every path that passes export
        # A restarting peer's new session takes over its stale routes (or sweeps them).
        source = self.graceful.session_up(peer.cfg.key, ch, source, neg, peer.cfg.stale_time)
        afis = [a for a in neg.afis if a in peer.cfg.address_families]
        if not self.rib.channel_up(ch, source, afis, DUMP_SLICE):
            asyncio.get_running_loop().call_soon(self._dump_slice, ch)
        rec = self.recovery
        if rec is not None and rec.active:
            rec.session_up(peer.cfg.key, afis, neg.graceful_restart)
            rec.held.add(ch)  # our table and End-of-RIB wait for the end of our recovery
            self._check_recovery()
        self._schedule_flush()

    def _local_addrs(self, session: PeerSession) -> dict[Afi, IPAddress]:
        """Addresses we can announce as next hop: the session's own, and source_address."""
        out: dict[Afi, IPAddress] = {}
        for addr in (session.cfg.source_address, getattr(session, "local_address", None)):
            if addr is not None:
                out[Afi.IPV4 if addr.version == 4 else Afi.IPV6] = addr
        return out

    def session_down(self, session: PeerSession, reason: str) -> None:
        peer = self.peers.get(session.cfg.key)
        if peer is None:
            return
        peer.encoder = None
        if self._graceful_stop:
            return  # our own graceful restart: the RIB dies with us, nothing is withdrawn anywhere
        if self.recovery is not None:
            self.recovery.held.discard(peer.channel)
        kept = self.graceful.session_down(session.cfg.key, peer.channel, session.last_close, session.enabled)
        if not kept:
            self.rib.channel_down(peer.channel)
            left = self.rib.drains.left(peer.cfg.vrf, peer.cfg.address)
            if left:
                self.log.info(
                    "session down: its paths leave a slice per loop turn", peer=peer.cfg.key, prefixes=left
                )
            self._drain_started()
        self._schedule_flush()

    def update_received(self, session: PeerSession, update: Update) -> None:
        peer = self._peer_of(session)
        self.rib.receive(
            peer.channel,
            update.announce,
            update.withdraw,
            time.monotonic(),
            update.announce_path_ids,
            update.withdraw_path_ids,
        )
        if update.end_of_rib is not None:
            self.graceful.end_of_rib(peer.cfg.key, peer.channel, update.end_of_rib)
            if self.recovery is not None and self.recovery.active:
                self.recovery.end_of_rib(peer.cfg.key, update.end_of_rib)
                self._check_recovery()
        self._freeze_loaded(update)
        limit = peer.cfg.max_prefixes
        if limit and update.announce and (received := peer.channel.received()) > limit:
            # Counted as received (FRR's maximum-prefix): one compare per UPDATE, O(families).
            session.prefix_limit_exceeded(update.announce[-1][0], limit, received)
        if self.rib.dirty:
            self._schedule_flush()

    def _freeze_loaded(self, update: Update) -> None:
        """Move a loaded table out of the cyclic garbage collector's way.

        The collector walks its oldest generation again each time that grew by a quarter, so
        a table being loaded is walked several times over. Frozen objects are never walked
        again (gc.freeze is O(1)) and still die by reference counting; only a reference cycle
        among them would outlive its use, and the RIB makes none. Done at End-of-RIB and every
        100k routes received (peers that send no End-of-RIB, or a table that keeps growing).
        """
        n = self._routes_since_freeze
        for _afi, _attrs, prefixes in update.announce:
            n += len(prefixes)
        if update.end_of_rib is None and n < 100_000:
            self._routes_since_freeze = n
            return
        self._routes_since_freeze = 0
        gc.collect(1)  # the young generations first: their garbage cycles are freed, not frozen
        gc.freeze()

    def refresh_requested(self, session: PeerSession, afi: Afi) -> None:
        peer = self._peer_of(session)
        ch = peer.channel
        if not ch.up or afi not in ch.afis:
            return
        adj = ch.adj_out.get(afi, {})
        ch.pending.setdefault(afi, {}).update(adj)
        ch.eor_pending.add(afi)
        self.rib.dirty.add(ch)
        self._schedule_flush()

    def _dump_slice(self, ch: Channel) -> None:
        """The next slice of a table dump to a new session: one per loop turn, so the other
        sessions' reads, timers and the control socket run in between."""
        if not self.rib.continue_dump(ch, DUMP_SLICE):
            asyncio.get_running_loop().call_soon(self._dump_slice, ch)
        self._schedule_flush()

    def _drain_started(self) -> None:
        """A session's paths were captured to be withdrawn (rib/drain.py): out of the cyclic
        collector's way (a 1M snapshot walked per full pass costs ~20 ms), then a slice per turn."""
        if self.rib.draining:
            gc.freeze()
            self._kick_drain()

    def _kick_drain(self) -> None:
        """Paths of sessions gone down wait to be withdrawn: a slice per loop turn from now."""
        if self._drain_handle is not None or self._drain_wait is not None or self._shutting_down:
            return
        if self.rib.draining:
            self._drain_began = (time.monotonic(), self._drain_slices)
            self._drain_handle = asyncio.get_running_loop().call_soon(self._drain_slice)

    def _drain_slice(self) -> None:
        """One slice of withdrawals (rib/drain.py), unless the kernel writer is behind: then
        wait until it caught up (as the sessions' input does), so the backlog stays bounded."""
        self._drain_handle = None
        fib = self.fib
        if fib is not None and fib.input_blocked():
            self._drain_wait = asyncio.ensure_future(self._drain_resume(fib))
            return
        more = self.rib.drain_step(self.rib.drain_slice)
        self._drain_slices += 1
        self._schedule_flush()  # this slice's withdrawals to the peers
        if more:  # call_soon: what is ready (sessions, timers, the CLI) runs before the next slice
            self._drain_handle = asyncio.get_running_loop().call_soon(self._drain_slice)
            return
        began, slices = self._drain_began
        self.log.info(
            "withdrawals done",
            slices=self._drain_slices - slices,
            seconds=round(time.monotonic() - began, 3),
        )

    async def _drain_resume(self, fib: FibSync) -> None:
        try:
            while fib.input_blocked():
                fut = fib.when_input_open()
                if fut is not None:  # the writer resolves it; a poll notices a writer that died
                    await asyncio.wait((fut,), timeout=0.25)
        finally:
            self._drain_wait = None
        if not self._shutting_down:
            self._drain_handle = asyncio.get_running_loop().call_soon(self._drain_slice)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send every channel's pending changes, packed into as few UPDATEs as possible: each
        waiting peer gets its share of SEND_PER_TURN changes per loop turn, at least one batch,
        more only while the turn's SEND_TURN seconds last; then another turn with call_soon."""
        self._flush_scheduled = False
        self._kick_drain()  # whoever started a drain (graceful restart's sweeps too) flushes
        held = self.recovery.held if self.recovery is not None else ()
        queue = self._send_queue
        queued = set(queue)
        queue.extend(ch for ch in self.rib.take_dirty() if ch not in queued)
        self._send_queue = []
        again: list[Channel] = []
        share = max(SEND_MIN_SHARE, SEND_PER_TURN // max(1, len(queue)))
        deadline = time.monotonic() + SEND_TURN
        for ch in queue:
            if ch in held:
                continue  # deferred until our recovery ends (its pending stays in the channel)
            peer = self.peers.get(ch.name)
            if peer is None or peer.encoder is None or peer.channel is not ch:
                ch.take_pending()
                continue
            if not self._send_pending(peer, deadline, share):
                again.append(ch)
        self._send_queue = again
        if again:
            self._schedule_flush()

    def _send_pending(self, peer: Peer, deadline: float = float("inf"), limit: int = SEND_PER_TURN) -> bool:
        """Pack and queue ``peer``'s pending changes while its output queue is under the cap:
        one batch, then more up to ``limit`` changes and until ``deadline`` (monotonic). False
        when cut short by those (the caller comes back next turn), True otherwise.

        Batches are sized from the bytes per change of the previous one (256 at first), so the
        queue stays under ``OUT_QUEUE_CAP`` (UPDATEs under it by ``OUT_QUEUE_HEADROOM``). At the
        cap the rest stays in the channel, where newer changes replace older ones per prefix,
        and the session calls ``output_drained`` once the peer has read what is queued.
        """
        ch, session, encoder = peer.channel, peer.session, peer.encoder
        assert encoder is not None
        per_change = 256
        sent = 0
        while ch.has_pending():
            if sent >= limit or (sent and time.monotonic() >= deadline):
                return False
            room = OUT_QUEUE_CAP - OUT_QUEUE_HEADROOM - session.output_backlog
            if room < per_change:
                session.notify_when_drained()
                return True
            pending, eor = take_batch(ch, max(1, min(room // per_change, limit - sent)))
            msgs = pack_pending(encoder, pending, eor)
            n = sum(len(v) for v in pending.values())
            size = sum(map(len, msgs))
            self.log.debug(
                "sending updates",
                peer=ch.name,
                changes=n,
                end_of_rib=[a.name_lower for a in eor],
                messages=len(msgs),
                bytes=size,
            )
            if not msgs or not session.send_updates(msgs):
                ch.take_pending()  # not Established (any more): the next session gets the table
                return True
            peer.out_queue_peak = max(peer.out_queue_peak, session.output_backlog)
            sent += max(1, n)
            if n:
                per_change = max(1, -(-size // n))
        return True

    def output_drained(self, session: PeerSession) -> None:
        """A peer's output queue drained: go on with what waits in its channel."""
        peer = self.peers.get(session.cfg.key)
        if peer is not None and peer.channel.has_pending():
            self.rib.dirty.add(peer.channel)
            self._schedule_flush()

    # --- origination ----------------------------------------------------------------------------

    def _network_attrs(self, net: NetworkConfig) -> PathAttrs:
        return intern(PathAttrs(med=net.med, communities=tuple(net.communities)))

    async def _sync_blackholes(self, wanted: set[tuple[int, str]] | None = None) -> None:
        """Kernel blackhole routes for `network`s with blackhole = true (bgpd.originate)."""
        if wanted is None:
            if not self.config.kernel.enabled:
                return
            wanted = {(self.config.vrf_table(n.vrf), n.text) for n in self.config.networks if n.blackhole}
        if not wanted and not self.blackholes.installed:
            return
        loop = asyncio.get_running_loop()
        for error in await loop.run_in_executor(None, self.blackholes.sync, wanted):
            self.log.error("blackhole route not written", error=error)

    def originate_networks(self) -> None:
        now = time.monotonic()
        for net in self.config.networks:
            self.rib.originate(net.vrf, net.afi, net.prefix, self._network_attrs(net), now)

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> int:
        tune_malloc()  # big tables back to the system when freed (bgpd/allocator.py)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self._reload_on_signal()))
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()
        return 0

    async def start(self) -> None:
        cfg = self.config
        self.log.info(
            "starting",
            asn=cfg.router.asn,
            router_id=cfg.router.router_id,
            neighbors=len(cfg.neighbors),
            vrfs={v.name: v.table for v in cfg.vrfs.values()},
        )
        if self.fib is not None:
            tables = [(v.table, afi) for v in cfg.vrfs.values() for afi in Afi]
            try:
                if cfg.router.graceful_restart:
                    self._begin_recovery(await self.fib.adopt(tables))
                else:
                    await self.fib.reconcile({}, tables)
            except OSError as exc:  # the RIB and sessions still run; routes are written as they come
                self.log.error("kernel tables could not be reconciled at start", error=str(exc))
        if self.rules is not None:
            await self._write_rules(start=True)
        self.originate_networks()
        await self._start_igp()
        await self._sync_blackholes()
        for ncfg in cfg.neighbors:
            self.peers[ncfg.key] = self._make_peer(ncfg)
        self.control = ControlServer(cfg.control.socket, self.handle_command, cfg.control.group, self.log)
        await self.control.start()
        if cfg.metrics.listen:
            from bgpd.metrics import MetricsServer, make_registry

            self.metrics = MetricsServer(cfg.metrics.listen, make_registry(self), self.log)
            await self.metrics.start()
            self.log.info("metrics listening", listen=cfg.metrics.listen)
        if cfg.router.listen:
            self.listener = Listener(
                cfg.router.listen, cfg.router.port, self._lookup_session, self.log, self._passwords(cfg)
            )
            await self.listener.start()
        for peer in self.peers.values():
            peer.session.start()
        self.log.info("ready", control=cfg.control.socket)
        self.notifier.ready(f"{len(self.peers)} neighbors configured")
        self.notifier.start_watchdog()

    @staticmethod
    def _passwords(cfg: Config) -> dict[str, str]:
        """TCP MD5 keys the listening sockets need for passive (inbound) sessions."""
        return {n.key: n.password for n in cfg.neighbors if n.password}

    def _lookup_session(self, address: str) -> PeerSession | None:
        peer = self.peers.get(str(ipaddress.ip_address(address)))
        return peer.session if peer is not None else None

    def stop(self) -> None:
        self._stop.set()

    # --- our own graceful restart (restarting speaker) -------------------------------------------

    def _begin_recovery(self, found: dict[tuple[int, Afi], int]) -> None:
        """Kernel routes of ours were kept by the previous run: recover gracefully (RFC 4724 4.1)."""
        forwarding = frozenset(afi for (_t, afi), n in found.items() if n)
        if not forwarding:
            self.log.info("graceful restart: no kernel routes kept, a fresh start")
            return
        gr = [n for n in self.config.neighbors if n.graceful_restart]
        wait = max((n.restart_time for n in gr), default=0)
        self.recovery = Recovery({n.key for n in gr}, {}, forwarding, time.monotonic() + wait)
        self._recovery_timer = asyncio.get_running_loop().call_later(wait, self._recovery_expired)
        self.log.info(
            "graceful restart: recovering, kernel routes kept until the peers' End-of-RIB",
            kept=sum(found.values()),
            families=sorted(a.name_lower for a in forwarding),
            waiting=sorted(n.key for n in gr),
            deadline_s=wait,
        )

    def _recovery_expired(self) -> None:
        if self.recovery is not None:
            self.recovery.deadline = 0.0  # the timer may run a clock tick early: it decides
        self._check_recovery()

    def _check_recovery(self) -> None:
        rec = self.recovery
        if rec is not None and rec.active and rec.done(time.monotonic()):
            rec.active = False
            self._recovery_task = asyncio.ensure_future(self._end_recovery(rec))

    def _kernel_desired(self) -> dict[tuple[int, Afi], dict[PrefixKey, NextHops]]:
        """What the RIB selects for the kernel, every table: O(table), once per recovery."""
        out: dict[tuple[int, Afi], dict[PrefixKey, NextHops]] = {}
        for name, table_id in self.vrf_tables.items():
            for afi in Afi:
                routes = out.setdefault((table_id, afi), {})
                for prefix, dest in self.rib.table(name, afi).items():
                    nexthops = self._kernel_nexthops(dest.selected)
                    if nexthops:
                        routes[prefix] = nexthops
        return out

    async def _end_recovery(self, rec: Recovery) -> None:
        """Every graceful-restart peer sent End-of-RIB (or our restart time ran out): delete the
        kernel routes no peer gave back, then send everyone our table and End-of-RIB."""
        if self._recovery_timer is not None:
            self._recovery_timer.cancel()
            self._recovery_timer = None
        self.log.info(
            "graceful restart: recovery done", timed_out=bool(rec.waiting), waiting=sorted(rec.waiting)
        )
        for peer in self.peers.values():
            peer.session._params.restart_state = False
        if self.fib is not None and not self._graceful_stop:
            tables = [(v.table, afi) for v in self.config.vrfs.values() for afi in Afi]
            try:
                await self.fib.reconcile(self._kernel_desired(), tables)
            except (OSError, RuntimeError) as exc:
                self.log.error("kernel tables could not be reconciled after graceful restart", error=str(exc))
        for ch in rec.held:
            if ch.up:
                self.rib.dirty.add(ch)
        rec.held.clear()
        self._schedule_flush()

    async def shutdown(self) -> None:
        self.log.info("stopping")
        self._shutting_down = True
        self.notifier.stopping()
        self.notifier.stop_watchdog()
        if self.listener is not None:
            await self.listener.close()
        # Graceful restart ([router] graceful_restart): the kernel keeps our routes and the
        # sessions end without NOTIFICATION, so the peers keep forwarding to us (RFC 4724).
        graceful = self.fib is not None and self.config.router.graceful_restart
        keep = self.config.kernel.persist or graceful
        if self.fib is not None and keep:
            # Sessions that ended before still have paths to withdraw: the kernel must not keep
            # those (all at once now; without persist the flush below removes everything).
            self.rib.drain_step(None)
            # Persist: the kernel keeps what it has now, so the withdrawals that closing the
            # sessions makes in the RIB must not reach it.
            with contextlib.suppress(ValueError):
                self.rib.batch_subscribers.remove(self._to_kernel_many)
        if self._recovery_timer is not None:
            self._recovery_timer.cancel()
        if graceful:
            self._graceful_stop = True
            stops = [p.session.stop_graceful() for p in self.peers.values()]
        else:
            stops = [p.session.stop(2, "daemon shutting down") for p in self.peers.values()]
        await asyncio.gather(*stops, return_exceptions=True)
        if self.fib is not None:
            if keep:
                await self.fib.wait_idle()
            else:
                await self.fib.flush_all()
            await self.fib.close()
        if self.rules is not None:
            if not keep:  # persisted routes keep their steering
                await self._write_rules(start=False)
            self.rules.close()
        if self.metrics is not None:
            await self.metrics.close()
        if not keep:
            await self._sync_blackholes(set())
        if self._reselect_handle is not None:
            self._reselect_handle.cancel()
            self._reselect_handle = None
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        if self._drain_wait is not None:
            self._drain_wait.cancel()
        if self.igp is not None:
            asyncio.get_running_loop().remove_reader(self.igp.watch.fileno())
            self.igp.close()
            self.igp = None
        if self.control is not None:
            await self.control.close()
        self.log.info("stopped")

    async def _reload_on_signal(self) -> None:
        try:
            result = await self.reload()
        except ValueError as e:
            self.log.error("reload failed", reason=str(e))
        else:
            self.log.info("reload done", result=result["message"])

    async def reload(self) -> dict[str, Any]:
        """Re-read the config. A bad file changes nothing. Changed neighbours are reset."""
        path = self.config.source
        try:
            new = load_config(path)
            filters = build_filters(new)
        except ConfigError as e:
            self.log.error("reload rejected", errors=[str(i) for i in e.issues])
            raise ValueError(f"config not reloaded: {e}") from None
        old = self.config
        if (new.router, new.kernel, new.control) != (old.router, old.kernel, old.control):
            raise ValueError("config not reloaded: changes to [router], [kernel] or [control] need a restart")
        self.config, self.filters = new, filters
        moved = self._move_vrf_tables(old, new)
        old_n = {n.key: n for n in old.neighbors}
        new_n = {n.key: n for n in new.neighbors}
        changed_policies = {
            name
            for name in set(old.policies) | set(new.policies)
            if old.policies.get(name) != new.policies.get(name)
        }
        added = removed = restarted = refiltered = 0
        # A VRF whose device changed: its sessions' sockets are bound to the old one
        # (SO_BINDTODEVICE), so they are reset (Cease 6) and come back bound to the new one.
        rebound = {
            name for name, v in new.vrfs.items() if name in old.vrfs and old.vrfs[name].device != v.device
        }
        if rebound:
            self.log.info(
                "vrf device changed: its sessions restart",
                vrfs={name: [old.vrfs[name].device, new.vrfs[name].device] for name in sorted(rebound)},
            )
        for key, ncfg in old_n.items():
            fresh = new_n.get(key)
            if fresh is not None and _same_session(ncfg, fresh) and fresh.vrf not in rebound:
                peer = self.peers[key]
                peer.cfg = fresh
                peer.session.cfg = fresh
                filters_of = (ncfg.import_, ncfg.export, ncfg.next_hop_self)
                if filters_of != (fresh.import_, fresh.export, fresh.next_hop_self) or (
                    {fresh.import_, fresh.export} & changed_policies
                ):
                    # Soft reconfiguration: re-run the Adj-RIB-In through the new import filter and
                    # re-diff the Adj-RIB-Out; the session is not touched (no reset).
                    self.rib.reconfigure(peer.channel, self._channel_settings(fresh), time.monotonic())
                    refiltered += 1
                continue
            peer = self.peers.pop(key)
            await peer.session.stop(3 if fresh is None else 6, "configuration changed")
            self.graceful.forget(key, peer.channel)
            self.rib.remove_channel(peer.channel)
            self._drain_started()
            removed += fresh is None
            restarted += fresh is not None
        for key, ncfg in new_n.items():
            if key not in self.peers:
                self.peers[key] = self._make_peer(ncfg)
                self.peers[key].session.start()
                added += key not in old_n
        if self.listener is not None:
            self.listener.set_passwords(self._passwords(new))
        old_nets = {(n.vrf, n.afi, n.prefix): n for n in old.networks}
        new_nets = {(n.vrf, n.afi, n.prefix): n for n in new.networks}
        now = time.monotonic()
        for k in old_nets:
            if k not in new_nets:
                self.rib.withdraw_local(*k)
        for k, net in new_nets.items():
            if old_nets.get(k) != net:
                self.rib.originate(net.vrf, net.afi, net.prefix, self._network_attrs(net), now)
        await self._sync_blackholes()
        if self.igp is not None:  # new VRFs' resolvers, direct neighbours, redistribute entries
            self.igp.configure(new, filters)
            self._kick_reselect()
        for name in set(old.vrfs) - set(new.vrfs):
            # Its neighbours and networks are gone by now, and so are its routes: what still
            # drains goes now, while its kernel table is known.
            self.rib.drain_vrf_now(name)
            self.vrf_tables.pop(name, None)
        self._schedule_flush()
        msg = (
            f"reloaded: {added} neighbors added, {removed} removed, {restarted} restarted, "
            f"{refiltered} re-filtered without reset, {moved} routes moved to another table"
        )
        self.log.info("reloaded", added=added, removed=removed, restarted=restarted, refiltered=refiltered)
        return {"message": msg}

    # --- control socket -------------------------------------------------------------------------

    def _tables(self, vrf: str | None) -> list[tuple[str, int, Any]]:
        if vrf is not None and vrf not in self.config.vrfs:
            raise ValueError(f"no VRF named {vrf!r} (known: {', '.join(sorted(self.config.vrfs))})")
        return [
            (name, v.table, self.rib.table(name, afi))
            for name, v in sorted(self.config.vrfs.items())
            if vrf is None or name == vrf
            for afi in Afi
        ]

    async def _routes_sliced(self, view: Iterator[dict[str, Any]]) -> Encoded:
        """`show routes` of a big table, encoded ROUTES_SLICE routes per loop turn: a full table
        takes seconds to build and encode, and the sessions and other requests go on meanwhile."""
        encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
        parts: list[bytes] = []
        chunk: list[dict[str, Any]] = []
        for entry in view:
            chunk.append(entry)
            if len(chunk) == ROUTES_SLICE:
                parts.append(encode(chunk)[1:-1].encode())
                chunk = []
                await asyncio.sleep(0)
        if chunk:
            parts.append(encode(chunk)[1:-1].encode())
        return Encoded(b'{"routes":[' + b",".join(parts) + b"]}")

    def neighbor_json(self, peer: Peer) -> dict[str, Any]:
        s, ch, cfg = peer.session, peer.channel, peer.cfg
        now = time.monotonic()
        up = s.established_at
        neg = s.negotiated
        out: dict[str, Any] = {
            "address": cfg.key,
            "asn": cfg.asn,
            "vrf": cfg.vrf,
            "state": s.state.value,
            "uptime_s": round(time.monotonic() - up, 1) if up is not None else None,
            "received": ch.received(),
            "accepted": ch.accepted,
            "advertised": ch.advertised(),
            "last_error": s.last_error or None,
            "enabled": s.enabled,
            "description": cfg.description,
            "last_notification": s.last_notification,
            "flaps": s.flaps,
            "updates_in": s.updates_in,
            "updates_out": s.updates_out,
            "messages_in": s.messages_in,
            "messages_out": s.messages_out,
            "notifications_in": s.notifications_in,
            "notifications_out": s.notifications_out,
            "import": cfg.import_,
            "export": cfg.export,
            # Output backpressure: bytes queued for the peer now (at most out_queue_cap), the
            # most in this session, and changes waiting in the channel (coalesced per prefix).
            "out_queue_bytes": s.output_backlog,
            "out_queue_peak": peer.out_queue_peak,
            "out_queue_cap": OUT_QUEUE_CAP,
            "out_pending": sum(len(v) for v in ch.pending.values()),
            # Prefixes of its ended sessions not yet looked at by the slice-wise withdrawal.
            "withdrawing": self.rib.drains.left(cfg.vrf, cfg.address),
            "graceful_restart": self.graceful.json(cfg.key, ch, cfg.graceful_restart),
        }
        rec = self.recovery
        if rec is not None and cfg.graceful_restart:
            out["graceful_restart"]["our_restart"] = {
                "recovering": rec.active,
                "waiting_end_of_rib": cfg.key in rec.waiting if rec.active else False,
                "forwarding": sorted(a.name_lower for a in rec.forwarding),
                "time_left_s": round(max(0.0, rec.deadline - now), 1) if rec.active else None,
            }
        if neg is not None and ch.up:
            out["negotiated"] = {
                "router_id": neg.peer_router_id,
                "hold_time": neg.hold_time,
                "keepalive": neg.keepalive,
                "four_octet_as": neg.four_octet,
                "route_refresh": neg.route_refresh,
                "families": [a.name_lower for a in neg.afis],
            }
            # Negotiated optional capabilities and everything the peer advertised (unknown
            # capabilities included, as code + hex value).
            out["negotiated"]["capabilities"] = neg.capabilities_json()
        return out

    async def handle_command(self, command: list[str], args: dict[str, Any]) -> dict[str, Any] | Encoded:
        now = time.monotonic()
        match command:
            case ["show", "routes"]:
                tables = self._tables(args.get("vrf"))
                if args.get("count"):
                    return counts_json(tables)
                prefix = args.get("prefix")
                if prefix is not None:
                    try:
                        ipaddress.ip_network(prefix, strict=False)
                    except ValueError:
                        raise ValueError(f"{prefix!r} is not an address or prefix") from None
                fib_status = self.fib.status_detail if self.fib is not None else None
                stale = self.graceful.is_stale
                if prefix is None and sum(len(t) for _v, _id, t in tables) > SLICED_ROUTES:
                    view = iter_routes_json(tables, None, bool(args.get("all")), now, fib_status, stale)
                    return await self._routes_sliced(view)
                return routes_json(tables, prefix, bool(args.get("all")), now, fib_status, stale)
            case ["show", "neighbors" | "protocols"]:
                addr = args.get("address")
                peers = list(self.peers.values())
                if addr is not None:
                    peers = [p for p in peers if p.cfg.key == str(ipaddress.ip_address(addr))]
                    if not peers:
                        raise ValueError(f"no neighbor {addr}")
                return {"neighbors": [self.neighbor_json(p) for p in peers]}
            case ["show", "vrfs"]:
                return {
                    "vrfs": [
                        {
                            "name": name,
                            "table": v.table,
                            "routes_ipv4": len(self.rib.table(name, Afi.IPV4)),
                            "routes_ipv6": len(self.rib.table(name, Afi.IPV6)),
                            "neighbors": sorted(p.cfg.key for p in self.peers.values() if p.cfg.vrf == name),
                        }
                        for name, v in sorted(self.config.vrfs.items())
                    ]
                }
            case ["reload"]:
                return await self.reload()
            case ["neighbor", address, ("reset" | "disable" | "enable" | "refresh") as action]:
                try:
                    key = str(ipaddress.ip_address(address))
                except ValueError:
                    raise ValueError(f"{address!r} is not an address") from None
                peer = self.peers.get(key)
                if peer is None:
                    raise ValueError(f"no neighbor {address}")
                if action == "reset":
                    peer.session.reset()
                elif action == "disable":
                    peer.session.disable()
                elif action == "enable":
                    peer.session.enable()
                else:
                    if peer.session.state.value != "Established":
                        raise ValueError(f"neighbor {key} is not Established")
                    for afi in peer.channel.afis:
                        peer.session.request_refresh(afi)
                return {"message": f"neighbor {key}: {action} done"}
        raise ValueError(f"unknown command: {' '.join(command)}")


async def run_daemon(config: Config) -> int:
    daemon = Daemon(config)
    with contextlib.suppress(asyncio.CancelledError):
        return await daemon.run()
    return 0
