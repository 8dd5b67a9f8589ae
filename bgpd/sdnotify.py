"""systemd's notify protocol (sd_notify): READY, STOPPING, WATCHDOG, STATUS over a datagram socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket


class Notifier:
    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace socket
        self.addr = addr
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and (not pid or pid == str(os.getpid())) else 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.addr)

    def send(self, *fields: str) -> None:
        if not self.addr:
            return
        # systemd gone (OSError): nothing to tell.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
            s.sendto("\n".join(fields).encode(), self.addr)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def start_watchdog(self) -> None:
        """Ping from the event loop itself, so a stuck loop stops the pings and systemd restarts us."""
        if self.watchdog_s and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watchdog())

    async def _watchdog(self) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / 2)

    def stop_watchdog(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
