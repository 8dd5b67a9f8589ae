"""Withdrawing a session's paths a slice at a time (BIRD prunes a table in chunks likewise).

A full table's session going down means 1M withdrawals: ~2 s of one event-loop turn, and 1M
deletes queued at once behind the kernel. So ``Rib.channel_down`` only captures what must go,
a ``DrainJob`` per (VRF, family, source): the prefixes and the source that held them; it clears
the channel at once (a new session has a new ``Source``, and the Loc-RIB withdraws by source
identity, so what it sends is never touched), and ``Rib.drain_step`` withdraws and propagates
the captured prefixes a bounded number per call. The daemon runs a step per loop turn while
the kernel writer keeps up (bgpd/daemon.py).

Until drained, the old paths are still in the Loc-RIB (``show routes`` lists them, as BIRD's
do until its prune), but nobody's counters hold them. What the same neighbour announces
meanwhile (a new session, or the same live source after a graceful-restart sweep began)
takes the prefix over at once: ``Drains.of_peer`` finds the jobs of a neighbour in O(1), and
``Rib.receive`` pays that lookup only while some drain runs.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rib.prefix import Afi, IPAddress, PrefixKey
from rib.route import Source

# Prefixes looked at per step: withdrawing and propagating one costs ~1.5-3 us (more with
# peers to tell), so a step is a few ms; a job no bigger goes at once, as before slicing.
SLICE = 4096


@dataclass(slots=True, eq=False)
class DrainJob:
    vrf: str
    afi: Afi
    source: Source
    # A snapshot: what ``source`` held (a lean channel's: the table's prefixes). A tuple: one of
    # bytes only is untracked by the cyclic GC, which would walk a 1M list at every full pass.
    prefixes: tuple[PrefixKey, ...]
    pos: int = 0  # prefixes before it are done
    # The live source itself announced these again since (a graceful-restart sweep running while
    # the restarted session sends): theirs now, not to be withdrawn.
    revived: set[PrefixKey] = field(default_factory=set)

    @property
    def left(self) -> int:
        return len(self.prefixes) - self.pos

    @property
    def peer_key(self) -> tuple[str, IPAddress | None]:
        return (self.vrf, self.source.peer)


@dataclass(slots=True)
class Drains:
    """The jobs in order (oldest first), and by neighbour: (VRF, peer address) -> its jobs."""

    jobs: deque[DrainJob] = field(default_factory=deque)
    by_peer: dict[tuple[str, IPAddress | None], list[DrainJob]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.jobs)

    def add(self, job: DrainJob) -> None:
        self.jobs.append(job)
        self.by_peer.setdefault(job.peer_key, []).append(job)

    def of_peer(self, vrf: str, peer: IPAddress | None) -> list[DrainJob]:
        return self.by_peer.get((vrf, peer), [])

    def left(self, vrf: str | None = None, peer: IPAddress | None = None) -> int:
        """Prefixes still to look at (of one neighbour's jobs when ``vrf``/``peer`` given)."""
        jobs = self.jobs if vrf is None else self.of_peer(vrf, peer)
        return sum(j.left for j in jobs)

    def take(self, limit: int | None) -> list[tuple[DrainJob, tuple[PrefixKey, ...]]]:
        """The next ``limit`` (None: all) prefixes to withdraw, oldest job first; finished jobs
        leave the queue."""
        out: list[tuple[DrainJob, tuple[PrefixKey, ...]]] = []
        budget = limit
        jobs = self.jobs
        while jobs and (budget is None or budget > 0):
            job = jobs[0]
            end = len(job.prefixes) if budget is None else min(len(job.prefixes), job.pos + budget)
            out.append((job, job.prefixes[job.pos : end]))
            if budget is not None:
                budget -= end - job.pos
            job.pos = end
            if end == len(job.prefixes):
                self._done(jobs.popleft())
        return out

    def take_vrf(self, vrf: str) -> list[tuple[DrainJob, tuple[PrefixKey, ...]]]:
        """Everything left of ``vrf``'s jobs (the VRF is going away), out of the queue."""
        out = [(j, j.prefixes[j.pos :]) for j in self.jobs if j.vrf == vrf]
        for job, _keys in out:
            self.jobs.remove(job)
            job.pos = len(job.prefixes)
            self._done(job)
        return out

    def _done(self, job: DrainJob) -> None:
        key = job.peer_key
        jobs = self.by_peer.get(key)
        if jobs is not None:
            jobs.remove(job)
            if not jobs:
                del self.by_peer[key]
