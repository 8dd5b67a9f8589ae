"""Backpressure from the kernel writer to the sessions' input, on a whole daemon over real TCP.

A daemon built in-process (its FIB a slow in-memory kernel) takes a 200k-route table from a
plain-socket peer in a thread (real loopback TCP, hold time 3 s). The routes queued behind
the kernel never exceed high water plus one UPDATE's routes; the kernel stalls for 5 s
(longer than the hold time) in the middle and the session stays Established, our KEEPALIVEs
go on and the control socket answers meanwhile; in the end every route is in the kernel.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from bgpd.config.toml import load_config
from bgpd.daemon import Daemon
from bgpd.wire import MessageFramer, UpdateEncoder, encode_keepalive, encode_open
from fib.memory import MemoryFib
from fib.model import FibError, FibOps
from fib.sync import HIGH_WATER, LOW_WATER
from rib.prefix import Afi
from tests.pair.test_pair_tcp import attrs, until

ROUTES = 200_000
PEER = "127.0.0.2"  # the peer's source address: our neighbour (all of 127/8 is loopback)
HOLD = 3
STALL = 5.0
RATE = 40_000  # the slow kernel's routes per second (decoding here: 100k/s and more)


class SlowKernel(MemoryFib):
    """Writes ``RATE`` routes a second; ``hold`` (cleared) stalls it."""

    def apply(self, table: int, afi: Afi, ops: FibOps) -> list[FibError]:
        n = len(ops) if isinstance(ops, Mapping) else len(list(ops))
        time.sleep(n / RATE)
        return super().apply(table, afi, ops)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table() -> tuple[bytes, int]:
    """The peer's UPDATEs (4 KiB each, as a full table's) and the most routes one carries."""
    enc = UpdateEncoder(four_octet=True)
    keys = [bytes([24]) + ((20 << 24) + (i << 8)).to_bytes(4, "big")[:3] for i in range(ROUTES)]
    msgs = enc.announce(Afi.IPV4, attrs(65001), keys)
    framer = MessageFramer()
    most = max((len(body) - 4 - 60) // 4 + 1 for m in msgs for _t, body in framer.feed(m))
    return b"".join(msgs), most


class Peer:
    """AS 65001 from 127.0.0.2: OPEN, the table, a KEEPALIVE every half second (behind the table
    in the stream once TCP pushes back, as a real speaker's); counts the bytes we send it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.bind((PEER, 0))
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.received = 0  # bytes from the daemon after the handshake (its KEEPALIVEs)
        self.sent_all = threading.Event()

    def start(self, data: bytes) -> None:
        s = self.sock
        s.sendall(encode_open(65001, HOLD, "10.0.0.2", [(1, 1)]))
        framer, seen = MessageFramer(), 0
        while seen < 2:  # its OPEN and KEEPALIVE
            chunk = s.recv(4096)
            assert chunk, "closed during OPEN"
            seen += len(framer.feed(chunk))
        s.sendall(encode_keepalive())
        for target in (self._drain, self._keepalives):
            threading.Thread(target=target, daemon=True).start()
        threading.Thread(target=self._send, args=(data,), daemon=True).start()

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for pos in range(0, len(data), 65536):
                with self.lock:
                    self.sock.sendall(view[pos : pos + 65536])
        except OSError:
            return
        self.sent_all.set()

    def _drain(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += len(chunk)
        except OSError:
            pass
        self.done.set()

    def _keepalives(self) -> None:
        while not self.done.wait(0.5):
            try:
                with self.lock:
                    self.sock.sendall(encode_keepalive())
            except OSError:
                return

    def close(self) -> None:
        self.done.set()
        self.sock.close()


def cli(sock: str, *args: str) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "bgpd.cli", "--socket", sock, "--json", *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return time.monotonic() - t0, json.loads(out.stdout)


async def test_input_waits_for_a_slow_kernel_and_the_session_survives_a_stall(tmp_path: Path) -> None:
    port = free_port()
    sock = str(tmp_path / "bgpd.sock")
    conf = tmp_path / "bgpd.toml"
    conf.write_text(
        f"""
[router]
asn = 65010
router_id = "10.0.0.1"
listen = ["127.0.0.1"]
port = {port}

[control]
socket = "{sock}"

[[neighbor]]
address = "{PEER}"
asn = 65001
passive = true
hold_time = {HOLD}
import = "all"
export = "none"
"""
    )
    kernel = SlowKernel()
    d = Daemon(load_config(str(conf)), fib_backend=kernel)
    assert d.fib is not None
    fib = d.fib
    data, per_update = table()
    await d.start()
    peer = Peer(port)
    loop = asyncio.get_running_loop()
    samples: list[int] = []
    states: list[str] = []
    gaps: list[float] = []
    stop = threading.Event()

    def sample() -> None:  # from another thread, lock-free, as often as it can
        while not stop.wait(0.0005):
            samples.append(fib.backlog)

    async def watch() -> None:  # on the loop: the session's state and the loop's turns
        last = time.monotonic()
        while True:
            states.append(d.peers[PEER].session.state.value)
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    sampler = threading.Thread(target=sample, daemon=True)
    watcher: asyncio.Task[None] | None = None
    try:
        await loop.run_in_executor(None, peer.start, data)
        await until(lambda: d.peers[PEER].session.state.value == "Established", "established")
        sampler.start()
        watcher = asyncio.create_task(watch())
        await until(lambda: fib.input_pauses >= 1, "input paused", timeout=30)
        # The kernel stalls for longer than the hold time, with the gate closed.
        kernel.hold.clear()
        stalled_at, received = time.monotonic(), peer.received
        await asyncio.sleep(1.0)
        took, shown = await loop.run_in_executor(None, cli, sock, "show", "neighbors")
        assert took < 3.0, f"the control socket took {took:.1f} s while input was paused"
        assert "Established" in json.dumps(shown)
        await asyncio.sleep(STALL - (time.monotonic() - stalled_at))
        assert fib.input_blocked(), "the gate should still be closed: the kernel is stalled"
        assert peer.received - received >= 19 * 3, "our KEEPALIVEs stopped while input was paused"
        kernel.hold.set()
        await until(
            lambda: len(kernel.table(0, Afi.IPV4)) + len(kernel.table(254, Afi.IPV4)) == ROUTES,
            "every route in the kernel",
            timeout=60,
        )
        assert peer.sent_all.is_set()
        # Taken now: the shutdown's withdrawals are not input, and rightly not held back.
        stop.set()
        peak = fib.backlog_peak
        flaps = d.peers[PEER].session.flaps  # before the shutdown closes the session
    finally:
        stop.set()
        if watcher is not None:
            watcher.cancel()
        peer.close()
        await d.shutdown()
    # Never more queued than high water plus the routes of the UPDATE that crossed it.
    assert peak <= HIGH_WATER + per_update, (peak, per_update)
    assert max(samples) <= HIGH_WATER + per_update, max(samples)
    assert max(samples) > HIGH_WATER // 2  # the sampler saw the queue build up
    assert fib.input_pauses >= 2  # paused, resumed at low water, paused again
    assert set(states) == {"Established"}, sorted(set(states))
    assert flaps == 0
    assert max(gaps) < 1.0, f"the loop stalled for {max(gaps):.2f} s"
    assert LOW_WATER < HIGH_WATER
