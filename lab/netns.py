"""Network namespaces for tests and the lab: hosts made with `ip netns add` + veth.

Every name carries a per-run tag so parallel or leftover runs never collide, and teardown
deletes exactly the namespaces this object created (also when the test failed).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from dataclasses import dataclass, field


def run(*args: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = list(args)
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


@dataclass
class Lab:
    """A set of namespaces joined by veth pairs. Use as a context manager or call ``close``."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    namespaces: list[str] = field(default_factory=list)
    prefix: str = "t"

    def ns(self, name: str) -> str:
        full = f"{self.prefix}{self.tag}-{name}"
        run("ip", "netns", "add", full)
        self.namespaces.append(full)
        run("ip", "link", "set", "lo", "up", ns=full)
        # Forwarding on, so a namespace can act as a router; DAD off, so IPv6 addresses work at once.
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=full)
        run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=full)
        run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", ns=full)
        run("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", ns=full)
        return full

    def link(
        self, ns_a: str, ns_b: str, addrs_a: list[str], addrs_b: list[str], name: str | None = None
    ) -> tuple[str, str]:
        """A veth pair between two namespaces with addresses (``10.0.0.1/24``, ``fd00::1/64``)."""
        base = name or uuid.uuid4().hex[:5]
        if_a, if_b = f"{base}a", f"{base}b"
        run("ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        for ns, ifname, addrs in ((ns_a, if_a, addrs_a), (ns_b, if_b, addrs_b)):
            for a in addrs:
                run("ip", "addr", "add", a, "dev", ifname, *(["nodad"] if ":" in a else []), ns=ns)
            run("ip", "link", "set", ifname, "up", ns=ns)
        return if_a, if_b

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            # Processes left inside would keep the namespace alive: kill only those in our namespaces.
            pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            run("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
