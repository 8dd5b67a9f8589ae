"""A whole Daemon in the test's process: its config, a slow in-memory kernel and what to watch.

For tests that drive the daemon over real loopback TCP (tests/pair/) or call into it directly
(tests/unit/): one config header (AS 65010, router id 10.0.0.1, the control socket next to it),
a kernel that writes ``RATE`` routes a second, and a ``LoadWatch`` that samples the kernel
writer's backlog from a thread and a session's state and the loop's turns from the loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from fib.memory import MemoryFib
from fib.model import FibError, FibOps
from fib.sync import FibSync
from rib.prefix import Afi

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


def cli(sock: str, *args: str) -> tuple[float, dict[str, object]]:
    """``bgpd-cli --json ARGS`` as the operator runs it: (seconds it took, its answer)."""
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "bgpd.cli", "--socket", sock, "--json", *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return time.monotonic() - t0, json.loads(out.stdout)


def write_config(tmp_path: Path, tail: str = "", *, listen: str = "[]", port: int | None = None) -> Path:
    """``tmp_path/bgpd.toml``: AS 65010, control socket ``tmp_path/bgpd.sock``, then ``tail``."""
    conf = tmp_path / "bgpd.toml"
    conf.write_text(
        f"""
[router]
asn = 65010
router_id = "10.0.0.1"
listen = {listen}
{"" if port is None else f"port = {port}"}

[control]
socket = "{tmp_path / "bgpd.sock"}"
{tail}"""
    )
    return conf


class LoadWatch:
    """``samples``: the FIB backlog from another thread, lock-free, as often as it can;
    ``states`` and ``gaps``: on the loop, ``state()`` and the time between the loop's turns."""

    def __init__(self, fib: FibSync, state: Callable[[], str]) -> None:
        self.fib = fib
        self.state = state
        self.samples: list[int] = []
        self.states: list[str] = []
        self.gaps: list[float] = []
        self.stop = threading.Event()  # ends the sampler (and any thread the test adds)
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        threading.Thread(target=self._sample, daemon=True).start()
        self._watcher = asyncio.create_task(self._watch())

    def _sample(self) -> None:
        while not self.stop.wait(0.0005):
            self.samples.append(self.fib.backlog)

    async def _watch(self) -> None:
        last = time.monotonic()
        while True:
            self.states.append(self.state())
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.gaps.append(now - last)
            last = now

    def close(self) -> None:
        self.stop.set()
        if self._watcher is not None:
            self._watcher.cancel()
