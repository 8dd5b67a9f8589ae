"""A peer that stops reading costs a bounded amount of memory, and nobody else waits for it.

    feed (BIRD, AS 65001) 10.72.0.2 -- 200k /32, 12.5k attribute sets --> us (bgpd, AS 65010)
    us 10.72.1.1 --> sink (BIRD, iBGP) 10.72.1.2: gets the whole table
    us 10.72.2.1 --> stalled speaker (iBGP) 10.72.2.2: Established, then never reads again

Our send buffers in "us" are small, so the stalled peer's kernel socket fills at once; from
then on the daemon holds at most ``out_queue_cap`` bytes for it (`show neighbors ADDRESS`:
``out_queue_bytes``, ``out_queue_peak``), the rest waits in its channel coalesced per prefix
(``out_pending`` never exceeds the table, however much churn), the sink gets every route and
the CLI answers at once. When the stalled speaker also stops sending (SIGSTOP), the hold timer
resets its session.

The feed and the sink have a long hold time: this is about the output cap, and on a loaded
machine the import of 200k routes has delayed our KEEPALIVEs to BIRD past 9 s.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lab.feed_sink import US_ASN, FeedSinkLab, FeedSinkSpec
from lab.netns import run
from lab.peers import Process, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

FEED_ROUTES = 200_000
US_STALL, STALL = "10.72.2.1", "10.72.2.2"
STALL_ASN = US_ASN  # iBGP, like the sink: the export path without eBGP rewriting
SPEC = FeedSinkSpec(
    "10.72",
    FEED_ROUTES,
    sink_asn=US_ASN,
    sink_hold=240,
    kernel=False,
    extra_neighbors=f"""
[[neighbor]]
address = "{STALL}"
asn = {STALL_ASN}
import = "none"
export = "all"
passive = true
hold_time = 9
""",
)
FEED, SINK = SPEC.feed, SPEC.sink

# Completes OPEN/KEEPALIVE, then never reads again (a 4 KiB receive buffer that stays full),
# while sending KEEPALIVEs so our hold timer does not fire until it is SIGSTOPped.
STALLED_SPEAKER = """
import socket, sys, time
from bgpd.wire import MessageFramer, encode_keepalive, encode_open
src, dst, asn = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind((src, 0))
for _ in range(100):
    try:
        s.connect((dst, 179))
        break
    except OSError:
        time.sleep(0.3)
s.sendall(encode_open(asn, 9, src, [(1, 1)]))
framer = MessageFramer()
seen = 0
while seen < 2:  # OPEN and KEEPALIVE
    data = s.recv(4096)
    if not data:
        sys.exit("closed before established")
    seen += len(list(framer.feed(data)))
s.sendall(encode_keepalive())
print("established, no longer reading", flush=True)
while True:
    time.sleep(2)
    s.sendall(encode_keepalive())
"""


@dataclass
class CapLab(FeedSinkLab):
    stall: Process | None = None

    def build(self, *extra: str) -> CapLab:
        super().build("s", *extra)
        us = self.ns["us"]
        # Small send buffers, so the stalled peer's socket is full after ~64 KiB and everything
        # else stays in the daemon (the kernel's autotuning would absorb megabytes).
        run("sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 65536", ns=us)
        self.lab.link(us, self.ns["s"], [f"{US_STALL}/24"], [f"{STALL}/24"], name="vs")
        return self

    def neighbor(self, address: str) -> dict[str, Any]:
        # Through bgpd-cli, as an operator asks: its time is what the test bounds.
        assert self.bgpd is not None
        return self.bgpd.cli_json("show", "neighbors", address)["neighbors"][0]  # type: ignore[no-any-return]

    def sink_routes(self) -> int:
        return self.sink_protocol()[2]


@pytest.fixture(scope="module")
def cap(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[CapLab]:
    need_root()
    lab = CapLab(tmp_path_factory.mktemp("outcap"), SPEC)
    try:
        lab.build()
        lab.start_bgpd()
        lab.stall = Process(lab.ns["s"], lab.workdir / "s", "stall")
        lab.others.append(lab.stall)
        lab.stall._spawn([sys.executable, "-c", STALLED_SPEAKER, STALL, US_STALL, str(STALL_ASN)])
        wait_for("stalled speaker Established", lambda: lab.neighbor(STALL)["state"] == "Established", 30)
        lab.start_sink()
        # The table arrives only now: everything we send the stalled peer is for a full socket.
        lab.start_feed()
        yield lab
    finally:
        lab.close(any(getattr(i, "rep_call", None) and i.rep_call.failed for i in request.session.items))


def test_a_stalled_peer_stays_under_the_cap_while_others_get_the_table(cap: CapLab) -> None:
    samples: list[dict[str, Any]] = []
    slowest = 0.0

    def sample() -> dict[str, Any]:
        nonlocal slowest
        t = time.monotonic()
        n = cap.neighbor(STALL)
        slowest = max(slowest, time.monotonic() - t)
        samples.append(n)
        return n

    t0 = time.monotonic()
    wait_for("the feed's table", lambda: sample() and cap.neighbor(FEED)["received"] == FEED_ROUTES, 180)
    wait_for("the sink gets every route", lambda: sample() and cap.sink_routes() == FEED_ROUTES, 180)
    took = time.monotonic() - t0
    n = sample()
    # The stalled session is up, its queue is full up to the cap and no further.
    assert n["state"] == "Established"
    limit = n["out_queue_cap"]
    assert limit == 1 << 20
    assert all(s["out_queue_bytes"] <= limit for s in samples), max(s["out_queue_bytes"] for s in samples)
    assert n["out_queue_peak"] <= limit
    assert n["out_queue_bytes"] > limit // 2, n  # it really is stuck, not drained
    # What it did not get waits in its channel, one entry per prefix at most.
    assert 0 < n["out_pending"] <= FEED_ROUTES, n
    assert slowest < 1.0, f"a show neighbors took {slowest:.2f}s"
    print(f"200k routes to the sink in {took:.1f}s; stalled peer: {n['out_queue_bytes']} bytes queued")


def test_churn_for_a_stalled_peer_is_coalesced_per_prefix(cap: CapLab) -> None:
    assert cap.feed is not None
    wait_for("the sink gets every route", lambda: cap.sink_routes() == FEED_ROUTES, 180)
    for _ in range(2):  # withdraw the whole table and announce it again, twice
        cap.feed.birdc("disable", "us1")
        wait_for("the table withdrawn", lambda: cap.neighbor(FEED)["received"] == 0, 120)
        n = cap.neighbor(STALL)
        assert n["out_pending"] <= FEED_ROUTES and n["out_queue_bytes"] <= n["out_queue_cap"], n
        cap.feed.birdc("enable", "us1")
        wait_for("the table back", lambda: cap.neighbor(FEED)["received"] == FEED_ROUTES, 180)
        n = cap.neighbor(STALL)
        assert n["out_pending"] <= FEED_ROUTES and n["out_queue_bytes"] <= n["out_queue_cap"], n
        assert n["out_queue_peak"] <= n["out_queue_cap"]
    wait_for("the sink has the table again", lambda: cap.sink_routes() == FEED_ROUTES, 180)
    assert cap.neighbor(STALL)["state"] == "Established"


def test_a_stalled_peer_that_goes_silent_is_reset_by_the_hold_timer(cap: CapLab) -> None:
    assert cap.stall is not None
    flaps = cap.neighbor(STALL)["flaps"]
    cap.stall.signal(signal.SIGSTOP)  # no KEEPALIVE from now on
    try:
        n = wait_for("hold timer reset", lambda: (n := cap.neighbor(STALL))["flaps"] > flaps and n, 30)
    finally:
        cap.stall.signal(signal.SIGCONT)
    assert "hold timer expired" in (n["last_error"] or ""), n
    assert n["out_queue_bytes"] == 0 and n["out_pending"] == 0, n
    # Nobody else noticed.
    assert cap.sink_routes() == FEED_ROUTES
    assert cap.neighbor(SINK)["state"] == "Established"
