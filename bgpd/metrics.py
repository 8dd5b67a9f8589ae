"""Prometheus metrics: an optional HTTP endpoint (`[metrics] listen = "127.0.0.1:9179"`).

Figures are read from the daemon when scraped (a custom collector), so the per-route hot
path carries no metric updates at all. The endpoint is served on the event loop, where the
daemon's state lives, so a scrape never races with route processing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bgpd.config.toml import parse_listen
from rib.prefix import Afi

if TYPE_CHECKING:
    from bgpd.daemon import Daemon

STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established")


class DaemonCollector(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        labels = ["neighbor", "asn", "vrf"]
        state = GaugeMetricFamily(
            "bgpd_neighbor_state", "1 for the neighbor's current FSM state", labels=[*labels, "state"]
        )
        up = GaugeMetricFamily("bgpd_neighbor_up", "1 when the session is Established", labels=labels)
        uptime = GaugeMetricFamily("bgpd_neighbor_uptime_seconds", "Seconds since Established", labels=labels)
        prefixes = {
            k: GaugeMetricFamily(f"bgpd_neighbor_prefixes_{k}", f"Prefixes {k}", labels=labels)
            for k in ("received", "accepted", "advertised")
        }
        counters = {
            k: CounterMetricFamily(f"bgpd_neighbor_{k}", f"BGP {k.replace('_', ' ')}", labels=labels)
            for k in ("updates_in", "updates_out", "notifications_in", "notifications_out", "flaps")
        }
        now = time.monotonic()
        for peer in list(d.peers.values()):
            s, ch, cfg = peer.session, peer.channel, peer.cfg
            lv = [cfg.key, str(cfg.asn), cfg.vrf]
            for name in STATES:
                state.add_metric([*lv, name], 1.0 if s.state.value == name else 0.0)
            up.add_metric(lv, 1.0 if s.state.value == "Established" else 0.0)
            uptime.add_metric(lv, now - s.established_at if s.established_at is not None else 0.0)
            prefixes["received"].add_metric(lv, ch.received())
            prefixes["accepted"].add_metric(lv, ch.accepted)
            prefixes["advertised"].add_metric(lv, ch.advertised())
            for k, fam in counters.items():
                fam.add_metric(lv, float(getattr(s, k, 0)))
        yield from (state, up, uptime, *prefixes.values(), *counters.values())

        routes = GaugeMetricFamily("bgpd_rib_routes", "Prefixes in the Loc-RIB", labels=["vrf", "afi"])
        paths = GaugeMetricFamily("bgpd_rib_paths", "Paths in the Loc-RIB", labels=["vrf", "afi"])
        for vrf in d.config.vrfs:
            for afi in Afi:
                t = d.rib.table(vrf, afi)
                routes.add_metric([vrf, afi.name_lower], len(t))
                paths.add_metric([vrf, afi.name_lower], t.path_count)
        yield routes
        yield paths

        if d.fib is not None:
            fib = d.fib
            yield GaugeMetricFamily(
                "bgpd_fib_routes", "Routes installed in the kernel", value=fib.installed_count()
            )
            yield GaugeMetricFamily("bgpd_fib_pending", "Kernel changes queued", value=fib.pending_count())
            yield GaugeMetricFamily(
                "bgpd_fib_backlog", "Routes queued or being written to the kernel", value=fib.backlog
            )
            yield CounterMetricFamily(
                "bgpd_fib_input_pauses",
                "Times received input was paused while routes queued behind the kernel",
                value=fib.input_pauses,
            )
            yield CounterMetricFamily("bgpd_fib_operations", "Kernel route operations", value=fib.ops_total)
            yield CounterMetricFamily(
                "bgpd_fib_errors", "Kernel route operations that failed", value=fib.errors_total
            )


def make_registry(daemon: Daemon) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(DaemonCollector(daemon))
    ProcessCollector(registry=reg)  # CPU seconds, resident memory, open fds of the daemon
    return reg


class MetricsServer:
    """A minimal HTTP/1.0 responder for GET /metrics on the event loop."""

    def __init__(self, listen: str, registry: CollectorRegistry, log: object = None) -> None:
        self.host, self.port = parse_listen(listen)
        self.registry = registry
        self.log = log
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] in (b"/metrics", b"/"):
                body = generate_latest(self.registry)
                status = b"200 OK"
                ctype = b"text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, ctype = b"not found: try GET /metrics\n", b"404 Not Found", b"text/plain"
            writer.write(
                b"HTTP/1.0 " + status + b"\r\nContent-Type: " + ctype
                + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
        writer.close()
