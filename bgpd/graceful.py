"""Graceful restart (RFC 4724): the timers and decisions of both roles; the RIB work is rib/stale.py.

Helper: a session that negotiated graceful restart and ends without a NOTIFICATION (a TCP
failure), or, when both sides set RFC 8538's N bit, with any NOTIFICATION but a Cease/Hard Reset
(the hold timer's included), keeps its routes, marked stale, for the peer's restart time.
When the peer is back, the families whose F bit its new OPEN clears are swept at once, the
others at its End-of-RIB per family, or after ``stale_time`` without one.

Restarting speaker (``[router] graceful_restart``): ``Recovery`` tracks our own restart. At
start the kernel's routes of ours are kept (FibSync.adopt); our OPENs carry R and, per family
with routes kept, F; our updates to the peers are held until every graceful-restart neighbour
has sent End-of-RIB (RFC 4724 4.1, deferred selection) or our restart time has passed; then
the kernel is reconciled (the leftovers deleted) and everyone gets our table and End-of-RIB.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from bgpd.connection import Negotiated, SessionClosed
from bgpd.wire.errors import CeaseSub, ErrCode
from bgpd.wire.messages import GracefulRestart
from rib.channel import Channel
from rib.engine import Rib
from rib.prefix import Afi, PrefixKey, Safi
from rib.route import Path, Source
from rib.stale import has_stale, is_stale, resume, retain, stale_count, stale_families, sweep

F_BIT = 0x80


class Timer(Protocol):
    def cancel(self) -> None: ...


# (seconds, callback) -> a handle to cancel: the daemon's event loop (asyncio stays out of here).
CallLater = Callable[[float, Callable[[], None]], Timer]


def forwarding_families(cap: GracefulRestart | None) -> set[Afi]:
    """The families whose forwarding state the speaker says it kept (F bit set)."""
    if cap is None:
        return set()
    return {Afi(a) for a, s, flags in cap.families if s == Safi.UNICAST and flags & F_BIT and a in (1, 2)}


def listed_families(cap: GracefulRestart | None) -> set[Afi]:
    """The families the speaker's capability lists (RFC 4724 4.2: the ones a helper retains)."""
    if cap is None:
        return set()
    return {Afi(a) for a, s, _flags in cap.families if s == Safi.UNICAST and a in (1, 2)}


def ends_gracefully(closed: SessionClosed | None) -> bool:
    """Whether the end of a session starts a restart: a TCP failure (RFC 4724) or, when both sides
    set RFC 8538's N bit, any NOTIFICATION but a Cease/Hard Reset, sent or received."""
    if closed is None:
        return False
    sent, received = closed.notification_sent, closed.notification_received
    if sent is None and received is None:
        return True
    if not closed.graceful_notification:
        return False
    hard = (ErrCode.CEASE, CeaseSub.HARD_RESET)
    return not any(n is not None and (n[0], n[1]) == hard for n in (sent, received))


@dataclass(slots=True)
class _Restart:
    """One neighbour's restart as we help it: stale routes and the deadline of the current wait."""

    phase: str  # "restarting" (waiting for the session) | "waiting_eor" (back, stale routes left)
    deadline: float  # monotonic
    handle: Timer | None = None


@dataclass(slots=True)
class Helper:
    """The helper role for every neighbour (the daemon calls it around the RIB's session events)."""

    rib: Rib
    log: FilteringBoundLogger
    changed: Callable[[], None]  # the RIB changed outside an UPDATE: flush the output
    call_later: CallLater
    clock: Callable[[], float] = time.monotonic
    caps: dict[str, GracefulRestart | None] = field(default_factory=dict)  # peer's, last session
    restarts: dict[str, _Restart] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)  # id(stale source) -> its channel

    def session_up(self, key: str, ch: Channel, source: Source, neg: Negotiated, stale_time: int) -> Source:
        """Before ``Rib.channel_up``: the source the session should use (the stale one to refresh)."""
        cap = neg.peer_capabilities.graceful_restart if neg.graceful_restart else None
        self.caps[key] = cap
        if not has_stale(ch):
            self._finish(key)
            return source
        use = resume(ch, source)
        if use is not ch.stale_source:  # another speaker: its routes cannot refresh these
            n = self._sweep(key, ch, None)
            self.log.info(
                "graceful restart: peer came back as another speaker, stale routes swept", peer=key, swept=n
            )
            self._finish(key)
            return source
        keep = forwarding_families(cap) & set(neg.afis)
        gone = [a for a in stale_families(ch) if a not in keep]
        if gone:
            n = self._sweep(key, ch, gone)
            self.log.info(
                "graceful restart: F bit clear or no capability, stale routes swept",
                peer=key,
                families=[a.name_lower for a in gone],
                swept=n,
            )
        if not has_stale(ch):
            self._finish(key)
            return use
        self._arm(key, ch, "waiting_eor", stale_time)
        self.log.info("graceful restart: peer back, waiting for End-of-RIB", peer=key, stale=stale_count(ch))
        return use

    def session_down(self, key: str, ch: Channel, closed: SessionClosed | None, enabled: bool) -> bool:
        """Instead of ``Rib.channel_down`` when it returns True: the routes were kept, stale."""
        cap = self.caps.get(key)
        if cap is None or not enabled or not ends_gracefully(closed) or ch.source is None:
            if has_stale(ch):
                self.log.info(
                    "graceful restart ended by the session closing",
                    peer=key,
                    swept=self._sweep(key, ch, None),
                )
            self._finish(key)
            return False
        src = ch.source
        listed = listed_families(cap)
        n = retain(self.rib, ch)
        self.channels[id(src)] = ch
        unlisted = [a for a in stale_families(ch) if a not in listed]
        if unlisted:
            self._sweep(key, ch, unlisted)
        if not has_stale(ch) or cap.time == 0:
            self._sweep(key, ch, None)
            self._finish(key)
            self.changed()
            return True
        self._arm(key, ch, "restarting", cap.time)
        self.log.info(
            "graceful restart: peer restarting, routes kept as stale",
            peer=key,
            stale=n,
            restart_time=cap.time,
        )
        self.changed()
        return True

    def end_of_rib(self, key: str, ch: Channel, afi: Afi) -> None:
        if key not in self.restarts:
            return
        n = self._sweep(key, ch, [afi]) if afi in stale_families(ch) else 0
        self.log.info(
            "graceful restart: End-of-RIB, stale routes swept", peer=key, afi=afi.name_lower, swept=n
        )
        if not has_stale(ch):
            self.log.info("graceful restart: peer recovered", peer=key)
            self._finish(key)
        if n:
            self.changed()

    def forget(self, key: str, ch: Channel) -> None:
        """The neighbour is de-configured: nothing of it may stay."""
        self._sweep(key, ch, None)
        self._finish(key)
        self.caps.pop(key, None)

    def is_stale(self, afi: Afi, prefix: PrefixKey, path: Path) -> bool:
        src = path.source
        # An ADD-PATH path's source is per path id; its ``base`` is the session's source.
        ch = self.channels.get(id(src.base if src.base is not None else src))
        return ch is not None and is_stale(ch, afi, prefix, src)

    def json(self, key: str, ch: Channel, configured: bool) -> dict[str, Any]:
        cap = self.caps.get(key)
        r = self.restarts.get(key)
        return {
            "enabled": configured,
            "peer_restart_time": cap.time if cap is not None else None,
            "peer_forwarding": sorted(a.name_lower for a in forwarding_families(cap)),
            "state": r.phase if r is not None else "none",
            "stale": stale_count(ch),
            "time_left_s": round(max(0.0, r.deadline - self.clock()), 1) if r is not None else None,
        }

    # --- internals ------------------------------------------------------------------------

    def _sweep(self, key: str, ch: Channel, afis: list[Afi] | None) -> int:
        src = ch.stale_source
        n = sweep(self.rib, ch, afis)
        if ch.stale_source is None and src is not None:
            self.channels.pop(id(src), None)
        return n

    def _arm(self, key: str, ch: Channel, phase: str, seconds: float) -> None:
        r = self.restarts.get(key)
        if r is not None and r.handle is not None:
            r.handle.cancel()
        r = self.restarts[key] = _Restart(phase, self.clock() + seconds)
        r.handle = self.call_later(seconds, lambda: self._expired(key, ch))

    def _expired(self, key: str, ch: Channel) -> None:
        r = self.restarts.get(key)
        phase = r.phase if r is not None else "?"
        n = self._sweep(key, ch, None)
        what = "restart time" if phase == "restarting" else "stale time"
        self.log.warning(f"graceful restart: {what} expired, stale routes swept", peer=key, swept=n)
        self._finish(key)
        self.changed()

    def _finish(self, key: str) -> None:
        r = self.restarts.pop(key, None)
        if r is not None and r.handle is not None:
            r.handle.cancel()


@dataclass(slots=True)
class Recovery:
    """Our own restart (restarting-speaker role): who we still wait for, and until when."""

    waiting: set[str]  # graceful-restart neighbours that have not sent End-of-RIB yet
    families: dict[str, set[Afi]]  # neighbour -> families still without End-of-RIB
    forwarding: frozenset[Afi]  # families whose kernel routes we kept
    deadline: float  # monotonic
    active: bool = True
    held: set[Channel] = field(default_factory=set)  # channels whose output waits for the end

    def session_up(self, key: str, afis: list[Afi], negotiated_gr: bool) -> None:
        if key not in self.waiting:
            return
        if not negotiated_gr or not afis:
            self.waiting.discard(key)  # RFC 4724 4.1: only graceful-restart peers are waited for
        else:
            self.families[key] = set(afis)

    def end_of_rib(self, key: str, afi: Afi) -> None:
        fams = self.families.get(key)
        if fams is None:
            return
        fams.discard(afi)
        if not fams:
            self.waiting.discard(key)

    def done(self, now: float) -> bool:
        return not self.waiting or now >= self.deadline
