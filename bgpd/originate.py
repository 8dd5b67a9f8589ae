"""Kernel blackhole routes for originated networks with ``blackhole = true``.

As Calico does for its address blocks: the node announces the whole block and holds a
blackhole route for it, so traffic to addresses of the block that no more-specific route
covers is dropped here instead of looping back to the router that sent it. I/O (pyroute2);
the daemon calls ``sync`` from a worker thread at start, on reload and at shutdown.

The routes carry protocol ``static`` (4), not the daemon's BGP protocol number: the FIB
writer owns every route of that protocol in the VRF tables and would remove these.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

RTPROT_STATIC = 4

# (kernel table, prefix as text)
Blackhole = tuple[int, str]


@dataclass(slots=True)
class BlackholeRoutes:
    installed: set[Blackhole] = field(default_factory=set)

    def sync(self, wanted: set[Blackhole]) -> list[str]:
        """Install what is wanted and missing, remove what we installed and is no longer wanted.

        Returns one message per failure (the rest still happens).
        """
        add, remove = wanted - self.installed, self.installed - wanted
        if not add and not remove:
            return []
        from pyroute2 import IPRoute  # imported here: only a daemon with blackholes needs it

        errors = []
        with IPRoute() as ipr:
            for table, prefix in sorted(add):
                try:
                    ipr.route("replace", dst=prefix, table=table, type="blackhole", proto=RTPROT_STATIC)
                    self.installed.add((table, prefix))
                except Exception as e:  # NetlinkError and friends: report, keep going
                    errors.append(f"blackhole {prefix} table {table}: {e}")
            for table, prefix in sorted(remove):
                with contextlib.suppress(Exception):  # already gone is fine
                    ipr.route("del", dst=prefix, table=table, type="blackhole", proto=RTPROT_STATIC)
                self.installed.discard((table, prefix))
        return errors
