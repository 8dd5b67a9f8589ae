"""Re-deciding the prefixes whose next hops the IGP now resolves differently, a slice at a time.

A kernel change can move the next hop of a full table (1M prefixes, ~3 s of decisions): done
in one go it would hold the event loop, so the CLI and the keepalives would wait. Each VRF and
family gets a pass over a snapshot of its prefixes, and the daemon runs one slice (a bounded
number of prefixes looked at) per event-loop turn.

The result is the one a single pass would give. The resolver answers anew from the moment of
the change, so an UPDATE handled between slices is decided with the new answers; a prefix
added after the snapshot was decided that way, one withdrawn is skipped. A further change
while a pass runs widens the rest of that pass to its next hops and queues another pass over
the whole table for them (the prefixes already passed). Each prefix is decided once per pass
with the answers of that moment, so the kernel sees no intermediate state.

A change no path can feel (no interned attribute set carries the next hop) costs no pass.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from rib.attrs import next_hop_in_use
from rib.engine import Rib
from rib.prefix import Afi, IPAddress, PrefixKey

SLICE = 1024  # prefixes looked at per slice: ~10-15 ms when each is decided again and exported


@dataclass(slots=True)
class _Pass:
    keys: list[PrefixKey]
    next_hops: set[IPAddress]
    pos: int = 0
    again: set[IPAddress] = field(default_factory=set)  # changed during the pass: one more after it


class Reselector:
    def __init__(self, rib: Rib, slice_size: int = SLICE) -> None:
        self.rib = rib
        self.slice_size = slice_size
        self.passes: dict[tuple[str, Afi], _Pass] = {}
        self.decided = 0  # prefixes looked at (figures for the log, tests and benchmarks)
        self.slices = 0

    @property
    def busy(self) -> bool:
        return bool(self.passes)

    def changed(self, vrf: str, next_hops: Collection[IPAddress]) -> None:
        """The resolver of ``vrf`` answers differently for ``next_hops`` from now on."""
        used = {nh for nh in next_hops if next_hop_in_use(nh)}
        for key, table in list(self.rib.tables.items()):
            if key[0] != vrf:
                continue
            table.forget_decisions()  # memoised contests were decided with the old answers
            if not used or not table.dests:
                continue
            running = self.passes.get(key)
            if running is None:
                self.passes[key] = _Pass(list(table.dests), set(used))
            else:
                running.next_hops |= used
                running.again |= used

    def step(self) -> bool:
        """One slice: at most ``slice_size`` prefixes looked at. True while work remains."""
        budget = self.slice_size
        self.slices += 1
        for key, run in list(self.passes.items()):
            if budget <= 0:
                break
            table = self.rib.tables.get(key)
            if table is None:  # the VRF went away
                del self.passes[key]
                continue
            end = min(run.pos + budget, len(run.keys))
            self.rib.reselect_via(key[0], key[1], run.keys[run.pos : end], run.next_hops)
            budget -= end - run.pos
            self.decided += end - run.pos
            run.pos = end
            if end == len(run.keys):
                if run.again and table.dests:
                    self.passes[key] = _Pass(list(table.dests), run.again)
                else:
                    del self.passes[key]
        return bool(self.passes)

    def run(self) -> None:
        """Everything at once (start-up, tests)."""
        while self.step():
            pass
