"""The daemon: wires config, sessions, the RIB, the kernel writer and the control socket.

Data flows one way: session -> Rib.receive -> Change -> (kernel writer, other channels'
Adj-RIB-Out) -> outbound packing -> session. This module is the only one that knows all
the parts; the parts know nothing of each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import time
from dataclasses import dataclass
from typing import Any

from bgpd.config.errors import ConfigError
from bgpd.config.model import Config, NeighborConfig, NetworkConfig
from bgpd.config.toml import load_config
from bgpd.control import ControlServer
from bgpd.listener import Listener
from bgpd.log import get_logger
from bgpd.outbound import pack_pending
from bgpd.sdnotify import Notifier
from bgpd.session import PeerSession
from bgpd.views import counts_json, routes_json
from bgpd.wire import UpdateEncoder
from bgpd.wire.messages import Update
from fib.model import FibBackend, NextHops
from fib.sync import FibSync
from policy.filters import ACCEPT_ALL, REJECT_ALL, Filter, Policy, compile_term
from rib.attrs import PathAttrs, intern
from rib.channel import Channel, ChannelSettings
from rib.engine import Rib
from rib.prefix import Afi, IPAddress
from rib.route import Change, Source, SourceKind


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
                terms.append(compile_term(dict(term.match), term.action, dict(term.set)))
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


class Daemon:
    def __init__(self, config: Config, fib_backend: FibBackend | None = None) -> None:
        self.config = config
        self.log = get_logger()
        self.filters = build_filters(config)
        rid = router_id_int(config.router.router_id)
        self.rib = Rib(config.router.asn, rid, config.kernel.ecmp, config.router.multipath_relax)
        for vrf in config.vrfs:
            self.rib.add_vrf(vrf)
        self.fib: FibSync | None = None
        if config.kernel.enabled:
            if fib_backend is None:
                from fib.netlink import NetlinkFib

                fib_backend = NetlinkFib(protocol=config.kernel.protocol)
            self.fib = FibSync(fib_backend, self.log.bind(component="fib"))
            self.rib.subscribers.append(self._to_kernel)
        self.peers: dict[str, Peer] = {}
        self.listener: Listener | None = None
        self.control: ControlServer | None = None
        self._stop = asyncio.Event()
        self._flush_scheduled = False
        self.started_at = time.monotonic()
        self.notifier = Notifier()

    # --- kernel ---------------------------------------------------------------------------------

    def _to_kernel(self, change: Change) -> None:
        assert self.fib is not None
        table = self.config.vrfs[change.vrf].table
        nexthops: NextHops = ()
        if change.best and change.best[0].source.kind != SourceKind.LOCAL:
            nexthops = tuple(p.attrs.next_hop for p in change.best if p.attrs.next_hop is not None)
        self.fib.submit(table, change.afi, change.prefix, nexthops)

    # --- peers ----------------------------------------------------------------------------------

    def _make_peer(self, cfg: NeighborConfig) -> Peer:
        settings = ChannelSettings(
            name=cfg.key,
            vrf=cfg.vrf,
            local_asn=self.config.router.asn,
            peer_asn=cfg.asn,
            next_hop_self=cfg.next_hop_self,
            import_filter=self.filters[cfg.import_],
            export_filter=self.filters[cfg.export],
        )
        channel = Channel(settings)
        self.rib.add_channel(channel)
        log = self.log.bind(peer=cfg.key, asn=cfg.asn, vrf=cfg.vrf)
        session = PeerSession(cfg, self.config.router.asn, self.config.router.router_id, self, log)
        if cfg.import_defaulted or cfg.export_defaulted:
            log.warning(
                "ebgp neighbor without import/export policy exchanges no routes there (RFC 8212)",
                import_=cfg.import_,
                export=cfg.export,
            )
        return Peer(cfg, channel, session)

    def _peer_of(self, session: PeerSession) -> Peer:
        return self.peers[session.cfg.key]

    def session_up(self, session: PeerSession) -> None:
        peer = self._peer_of(session)
        neg = session.negotiated
        assert neg is not None
        kind = SourceKind.EBGP if peer.cfg.asn != self.config.router.asn else SourceKind.IBGP
        source = Source(
            kind, peer.cfg.address, neg.peer_asn, router_id_int(neg.peer_router_id), peer.cfg.description
        )
        ch = peer.channel
        ch.local_addrs = self._local_addrs(session)
        peer.encoder = UpdateEncoder(neg.four_octet)
        self.rib.channel_up(ch, source, [a for a in neg.afis if a in peer.cfg.address_families])
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
        self.rib.channel_down(peer.channel)
        peer.encoder = None
        self._schedule_flush()

    def update_received(self, session: PeerSession, update: Update) -> None:
        peer = self._peer_of(session)
        self.rib.receive(peer.channel, update.announce, update.withdraw, time.monotonic())
        if self.rib.dirty:
            self._schedule_flush()

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

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send every channel's pending changes, packed into as few UPDATEs as possible."""
        self._flush_scheduled = False
        for ch in self.rib.take_dirty():
            peer = self.peers.get(ch.name)
            pending, eor = ch.take_pending()
            if peer is None or peer.encoder is None:
                continue
            msgs = pack_pending(peer.encoder, pending, eor)
            self.log.debug(
                "sending updates",
                peer=ch.name,
                changes=sum(len(v) for v in pending.values()),
                end_of_rib=[a.name_lower for a in eor],
                messages=len(msgs),
            )
            if msgs:
                peer.session.send_updates(msgs)

    # --- origination ----------------------------------------------------------------------------

    def _network_attrs(self, net: NetworkConfig) -> PathAttrs:
        return intern(PathAttrs(med=net.med, communities=tuple(net.communities)))

    def originate_networks(self) -> None:
        now = time.monotonic()
        for net in self.config.networks:
            self.rib.originate(net.vrf, net.afi, net.prefix, self._network_attrs(net), now)

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
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
            await self.fib.reconcile({}, tables)
        self.originate_networks()
        for ncfg in cfg.neighbors:
            self.peers[ncfg.key] = self._make_peer(ncfg)
        self.control = ControlServer(cfg.control.socket, self.handle_command, cfg.control.group, self.log)
        await self.control.start()
        if cfg.router.listen:
            self.listener = Listener(cfg.router.listen, cfg.router.port, self._lookup_session, self.log)
            await self.listener.start()
        for peer in self.peers.values():
            peer.session.start()
        self.log.info("ready", control=cfg.control.socket)
        self.notifier.ready(f"{len(self.peers)} neighbors configured")
        self.notifier.start_watchdog()

    def _lookup_session(self, address: str) -> PeerSession | None:
        peer = self.peers.get(str(ipaddress.ip_address(address)))
        return peer.session if peer is not None else None

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        self.log.info("stopping")
        self.notifier.stopping()
        self.notifier.stop_watchdog()
        if self.listener is not None:
            await self.listener.close()
        await asyncio.gather(
            *(p.session.stop(2, "daemon shutting down") for p in self.peers.values()), return_exceptions=True
        )
        if self.fib is not None:
            if self.config.kernel.persist:
                await self.fib.wait_idle()
            else:
                await self.fib.flush_all()
            await self.fib.close()
        if self.control is not None:
            await self.control.close()
        self.log.info("stopped")

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
        if (new.router, new.kernel, new.vrfs, new.control) != (old.router, old.kernel, old.vrfs, old.control):
            raise ValueError(
                "config not reloaded: changes to [router], [kernel], [control] or VRFs need a restart"
            )
        self.config, self.filters = new, filters
        old_n = {n.key: n for n in old.neighbors}
        new_n = {n.key: n for n in new.neighbors}
        added = removed = changed = 0
        for key, ncfg in old_n.items():
            if key not in new_n or new_n[key] != ncfg or old.policies != new.policies:
                peer = self.peers.pop(key)
                subcode = 3 if key not in new_n else 6
                await peer.session.stop(subcode, "configuration changed")
                self.rib.remove_channel(peer.channel)
                removed += key not in new_n
                changed += key in new_n
        for key, ncfg in new_n.items():
            if key not in self.peers:
                self.peers[key] = self._make_peer(ncfg)
                self.peers[key].session.start()
                added += key not in old_n
        old_nets = {(n.vrf, n.afi, n.prefix): n for n in old.networks}
        new_nets = {(n.vrf, n.afi, n.prefix): n for n in new.networks}
        now = time.monotonic()
        for k in old_nets:
            if k not in new_nets:
                self.rib.withdraw_local(*k)
        for k, net in new_nets.items():
            if old_nets.get(k) != net:
                self.rib.originate(net.vrf, net.afi, net.prefix, self._network_attrs(net), now)
        self._schedule_flush()
        msg = f"reloaded: {added} neighbors added, {removed} removed, {changed} restarted"
        self.log.info("reloaded", added=added, removed=removed, restarted=changed)
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

    def neighbor_json(self, peer: Peer) -> dict[str, Any]:
        s, ch, cfg = peer.session, peer.channel, peer.cfg
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
            "flaps": getattr(s, "flaps", 0),
            "import": cfg.import_,
            "export": cfg.export,
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
        return out

    async def handle_command(self, command: list[str], args: dict[str, Any]) -> dict[str, Any]:
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
                return routes_json(tables, prefix, bool(args.get("all")), now)
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
