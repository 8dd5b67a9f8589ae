"""The asyncio layer of one configured neighbor: sockets, timers and reconnecting.

A ``PeerSession`` runs the part of the RFC 4271 FSM before a TCP connection exists (Idle ->
Connect <-> Active, table rows in ``bgpd.fsm``) and owns up to two live connections (``_Link``:
one we initiated, one the peer initiated) while a collision is being resolved. Everything about
a connection once TCP is up is the sans-IO ``BgpConnection``; this module only moves its bytes,
arms one timer per connection from ``next_deadline()`` and dispatches its events to the
``SessionHandler`` (synchronously, on the loop).

Reconnecting: the RFC's ConnectRetryTimer plays two roles, the pause between attempts (starting
at ``cfg.connect_retry``) and the connect timeout (that pause, but at least ``CONNECT_TIMEOUT``).
Every failed attempt, and every session that ends without having been Established for more
than ``STABLE_AFTER`` seconds, doubles the pause up to ``MAX_RETRY`` (never below the configured
start); a session that was up longer resets it to the start value. Pauses get RFC 4271 10
jitter (x 0.75-1.0). After a session ends the session waits in Idle for the current pause
(IdleHoldTimer, RFC 4271 8.1.1), then connects again; inbound connections are accepted in
every state except when disabled or stopped.

Collisions (RFC 4271 6.8): both connections are kept until an OPEN arrives on one of them
while the other is in OpenSent/OpenConfirm; then the one initiated by the speaker with the
higher BGP identifier survives and the other gets Cease/7 (before we answer its OPEN). A new
inbound connection while Established gets Cease/7 at once; a newer inbound connection replaces
an older one that is not Established.

Each connection has a writer task: ``send_updates`` only appends to the connection's buffer
and wakes it, and the writer awaits ``drain()``, so a slow peer slows down nobody else.
``output_backlog`` lets the producer see how far behind a peer is.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import random
import socket
import struct
import termios
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Protocol

from structlog.typing import FilteringBoundLogger

from bgpd import sockopts
from bgpd.config.model import NeighborConfig
from bgpd.connection import (
    BgpConnection,
    ConnParams,
    ConnStats,
    Event,
    Negotiated,
    NotificationReceived,
    OpenReceived,
    RouteRefreshReceived,
    SessionClosed,
    SessionEstablished,
    UpdateReceived,
    describe_notification,
    shutdown_communication,
)
from bgpd.fsm import Action, FsmEvent, State, step
from bgpd.wire import encode_notification
from bgpd.wire.errors import CeaseSub, ErrCode
from bgpd.wire.messages import Open, Update
from rib.prefix import Afi, IPAddress

READ_SIZE = 65536
# Fairness: one loop serves every peer, the timers and the control socket. Received bytes go to
# their connection FEED_SIZE at a time, a piece per connection in turn, for at most LOOP_ROUND
# seconds per loop turn (``_Feeder``).
FEED_SIZE = 2048
LOOP_ROUND = 0.01
# How often input held back by an InputGate is looked at again even without the gate's word
# (a connection closed meanwhile is let go, a gate whose writer died is noticed).
GATE_POLL = 0.25
MAX_RETRY = 60.0  # cap of the reconnect back-off (seconds)
STABLE_AFTER = 60.0  # a session up longer than this resets the back-off
CONNECT_TIMEOUT = 10.0  # minimum time a connect attempt is given
FLUSH_TIMEOUT = 2.0  # how long a closing connection may take to send its NOTIFICATION
HEX_EXCERPT = 64  # bytes of an offending message shown in the log
# Bytes queued for one peer (ours and the transport's, not the kernel's socket buffer) beyond
# which the daemon packs no more UPDATEs for it until the queue drains: a peer that stops
# reading costs at most this much, while its unsent changes wait in its channel, coalesced
# per prefix (O(table), never O(changes)). UPDATEs stop OUT_QUEUE_HEADROOM short of the cap:
# room for a NOTIFICATION and the KEEPALIVEs (19 bytes an interval) of a peer that keeps its
# session up without reading (RFC 9687's send hold timer would end that; not done yet).
OUT_QUEUE_CAP = 1 << 20
OUT_QUEUE_HEADROOM = 4096
# Internal errors (a bug in the codec or a handler) end the session with a bare Cease: the peer
# did nothing wrong, and the reconnect makes it re-send everything.
_INTERNAL_ERROR = (ErrCode.CEASE, 0)

_STATE_ORDER = {s: i for i, s in enumerate(State)}


class SessionHandler(Protocol):
    """What the daemon does with a session's news (called synchronously on the loop)."""

    def session_up(self, session: PeerSession) -> None: ...

    def session_down(self, session: PeerSession, reason: str) -> None: ...

    def update_received(self, session: PeerSession, update: Update) -> None: ...

    def refresh_requested(self, session: PeerSession, afi: Afi) -> None: ...

    def output_drained(self, session: PeerSession) -> None: ...


class InputGate(Protocol):
    """Something downstream of the sessions (the kernel writer) that received bytes must wait for.

    While ``input_blocked()`` the feeder gives a connection no more of its bytes: they stay in the
    socket, TCP flow control slows the peer down, and timers, sending and the control socket run
    on. ``when_input_open()`` is a future done when input may go on (None: it may now).
    """

    def input_blocked(self) -> bool: ...

    def when_input_open(self) -> asyncio.Future[None] | None: ...


def _excerpt(data: bytes) -> str:
    text = data[:HEX_EXCERPT].hex()
    return text + "..." if len(data) > HEX_EXCERPT else text


class _Link:
    """One TCP connection of a session with its sans-IO core and its two tasks."""

    __slots__ = (
        "abort_handle",
        "conn",
        "drained",
        "finished",
        "inbound",
        "inbox",
        "inbox_pos",
        "reader",
        "session",
        "timer",
        "wake",
        "writer",
        "written",
    )

    def __init__(
        self,
        session: PeerSession,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        inbound: bool,
        now: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.inbound = inbound
        self.session = session
        self.conn = BgpConnection(session._params, now, open_hook=self._open_hook)
        self.timer: asyncio.TimerHandle | None = None
        self.abort_handle: asyncio.TimerHandle | None = None
        self.wake = asyncio.Event()
        self.finished = False  # the BgpConnection ended (transport may still be flushing)
        self.written = 0  # bytes handed to the transport (for the send hold timer's progress)
        # Received bytes not yet given to ``conn`` (from ``inbox_pos`` on); ``drained`` is set
        # when the feeder has given them all, and the reader reads on.
        self.inbox = b""
        self.inbox_pos = 0
        self.drained = asyncio.Event()

    def _open_hook(self, peer_open: Open) -> bool:
        return self.session._resolve_collision(self, peer_open)

    @property
    def direction(self) -> str:
        return "inbound" if self.inbound else "outbound"


class _Feeder:
    """Gives the received bytes of every connection on one loop to their ``BgpConnection``, a
    piece (FEED_SIZE) per connection in turn, for at most LOOP_ROUND seconds per loop turn.

    Fifty peers sending their tables at once then delay the timers (KEEPALIVEs, hold timers)
    and the control socket by one round, not by a pass over everybody's input; and each
    reader reads on only once its bytes are through (TCP pushes back on a fast sender). A
    connection whose session's ``input_gate`` is closed is held, unfed, until the gate opens.
    """

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Feeder]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.queue: deque[_Link] = deque()
        self.task: asyncio.Task[None] | None = None
        # Connections whose session's input gate is closed, by gate, and the tasks waiting for it.
        self.held: dict[InputGate, deque[_Link]] = {}
        self.releasers: set[asyncio.Task[None]] = set()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Feeder:
        feeder = cls._by_loop.get(loop)
        if feeder is None:
            feeder = cls._by_loop[loop] = cls()
        return feeder

    def submit(self, link: _Link) -> None:
        self.queue.append(link)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        queue = self.queue
        try:
            while queue:
                start = time.perf_counter()
                while queue and time.perf_counter() - start < LOOP_ROUND:
                    link = queue.popleft()
                    gate = link.session.input_gate
                    if gate is not None and not link.finished and gate.input_blocked():
                        self._hold(link, gate)
                        continue
                    if link.session._feed_piece(link):
                        queue.append(link)
                    else:
                        link.drained.set()
                await asyncio.sleep(0)
        finally:
            self.task = None
            for link in queue:  # cancelled (the loop is closing): let the readers end
                link.drained.set()
            queue.clear()

    def _hold(self, link: _Link, gate: InputGate) -> None:
        held = self.held.get(gate)
        if held is None:
            held = self.held[gate] = deque()
            task = asyncio.get_running_loop().create_task(self._release(gate, held))
            self.releasers.add(task)
            task.add_done_callback(self.releasers.discard)
        held.append(link)

    async def _release(self, gate: InputGate, held: deque[_Link]) -> None:
        """Wait until ``gate`` opens, then queue its connections again, in their order."""
        resumed = False
        try:
            while gate.input_blocked():
                for link in [lk for lk in held if lk.finished]:  # closed meanwhile: let its reader end
                    held.remove(link)
                    link.inbox, link.inbox_pos = b"", 0
                    link.drained.set()
                fut = gate.when_input_open()
                if fut is not None:
                    await asyncio.wait((fut,), timeout=GATE_POLL)
            resumed = True
        finally:
            del self.held[gate]
            if resumed:
                self.queue.extend(held)
                if held and self.task is None:
                    self.task = asyncio.get_running_loop().create_task(self._run())
            else:  # cancelled (the loop is closing)
                for link in held:
                    link.drained.set()


class PeerSession:
    def __init__(
        self,
        cfg: NeighborConfig,
        local_asn: int,
        router_id: str,
        handler: SessionHandler,
        log: FilteringBoundLogger,
        device: str | None = None,
    ) -> None:
        self.cfg = cfg
        self._key = cfg.key
        # The VRF's l3mdev device: outgoing connections bind to it, inbound ones must come through it.
        self.device = device
        self.local_asn = local_asn
        self.router_id = router_id
        self.handler = handler
        self._log = log
        self._params = ConnParams(
            local_asn=local_asn,
            router_id=router_id,
            peer_asn=cfg.asn,
            hold_time=cfg.hold_time,
            afis=list(cfg.address_families),
            peer_address=str(cfg.address),
            graceful_restart=cfg.graceful_restart,
            graceful_notification=cfg.graceful_notification,
            restart_time=cfg.restart_time,
            add_path=cfg.add_path,
            send_hold_time=cfg.send_hold_time,
            hostname=socket.gethostname() or None,
        )
        # public, read-only for the CLI
        self.established_at: float | None = None  # time.monotonic()
        self.last_error = ""
        self.last_notification: str | None = None
        self.negotiated: Negotiated | None = None
        self.last_close: SessionClosed | None = None  # how the last session ended (graceful restart)
        self.flaps = 0
        # internals
        self._base_state = State.IDLE  # the session-level FSM state (no connection yet)
        self._shown_state = State.IDLE  # last state logged
        self._links: list[_Link] = []
        self._established: _Link | None = None
        self._stats_done = ConnStats()  # counters of connections that have ended
        self._tasks: set[asyncio.Task[None]] = set()
        self._connect_task: asyncio.Task[None] | None = None
        self._retry_handle: asyncio.TimerHandle | None = None
        self._retry_start = max(cfg.connect_retry, 0.0)
        self._delay = self._retry_start
        self._connect_failures = 0
        self._started = False
        self._stopped = False
        self._enabled = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit_handle: asyncio.TimerHandle | None = None  # max_prefixes restart timer
        self._limit_down = False  # disabled by max_prefixes (reset brings it back, like enable)
        self._drain_wanted = False  # the handler waits for our output queue to drain
        # Set by the daemon (its kernel writer): received bytes wait while it is closed.
        self.input_gate: InputGate | None = None

    # --- read-only views -------------------------------------------------------------------

    @property
    def key(self) -> str:
        # The neighbour's address as text, made once: the daemon looks its peer up by it per
        # UPDATE (str() of an address is Python code). A session's address never changes.
        return self._key

    @property
    def peer_asn(self) -> int:
        return self.cfg.asn

    @property
    def ebgp(self) -> bool:
        return self._params.ebgp

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def accepting(self) -> bool:
        """Whether an inbound connection from this peer may reach the FSM."""
        return self._started and self._enabled and not self._stopped

    @property
    def state(self) -> State:
        if self._established is not None:
            return State.ESTABLISHED
        live = [link.conn.state for link in self._links if not link.finished]
        if live:
            return max(live, key=_STATE_ORDER.__getitem__)
        return self._base_state

    def _stats(self) -> ConnStats:
        total = ConnStats()
        total.add(self._stats_done)
        for link in self._links:
            total.add(link.conn.stats)
        return total

    @property
    def updates_in(self) -> int:
        return self._stats().updates_in

    @property
    def updates_out(self) -> int:
        return self._stats().updates_out

    @property
    def messages_in(self) -> int:
        return self._stats().messages_in

    @property
    def messages_out(self) -> int:
        return self._stats().messages_out

    @property
    def notifications_in(self) -> int:
        return self._stats().notifications_in

    @property
    def notifications_out(self) -> int:
        return self._stats().notifications_out

    @property
    def local_address(self) -> IPAddress | None:
        """Our address on the established connection (a next hop we can announce)."""
        link = self._established
        if link is None:
            return None
        name = link.writer.get_extra_info("sockname")
        return sockopts.normalise_address(name[0]) if name else None

    def notify_when_drained(self) -> None:
        """Call ``handler.output_drained`` once everything queued so far has gone to the kernel."""
        link = self._established
        if link is not None:
            self._drain_wanted = True
            link.wake.set()

    @property
    def output_backlog(self) -> int:
        """Bytes queued towards the peer and not yet accepted by the kernel (0 when down)."""
        link = self._established
        if link is None:
            return 0
        return link.conn.pending_output + link.writer.transport.get_write_buffer_size()

    # --- control ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting (or, for a passive neighbor, accepting). Must run on the loop."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        if self._enabled:
            self._auto_start()

    async def stop(self, subcode: int = CeaseSub.ADMIN_SHUTDOWN, message: str = "") -> None:
        """Send Cease(subcode) on every connection, close them and never reconnect."""
        self._stopped = True
        if self._limit_handle is not None:
            self._limit_handle.cancel()
            self._limit_handle = None
        self._shutdown(subcode, message)
        await self._wait_tasks()

    async def stop_graceful(self) -> None:
        """Close every connection without a NOTIFICATION and never reconnect: a peer that
        negotiated graceful restart keeps our routes as the helper (RFC 4724 4.2, as BIRD's
        `graceful restart` does). Peers without it see a TCP close and withdraw."""
        self._stopped = True
        if self._limit_handle is not None:
            self._limit_handle.cancel()
            self._limit_handle = None
        self._cancel_retry()
        self._cancel_connect()
        if self._loop is not None:
            now = self._now()
            for link in list(self._links):
                if not link.finished:
                    reason = "closed locally without NOTIFICATION (graceful restart)"
                    self._after(link, link.conn.connection_lost(now, reason))
        self._base_state = State.IDLE
        self._note_state()
        await self._wait_tasks()

    def disable(self, message: str = "") -> None:
        """Administrative shutdown until ``enable()``: Cease/2, no reconnect, inbound refused."""
        if self._limit_handle is not None:  # an operator's disable outlasts the prefix-limit timer
            self._limit_handle.cancel()
            self._limit_handle = None
        self._limit_down = False
        if not self._enabled:
            return
        self._enabled = False
        self._shutdown(CeaseSub.ADMIN_SHUTDOWN, message)

    def enable(self) -> None:
        if self._limit_handle is not None:
            self._limit_handle.cancel()
            self._limit_handle = None
        self._limit_down = False
        if self._enabled:
            return
        self._enabled = True
        self._delay = self._retry_start
        if self._started and not self._stopped and not self._links:
            self._base_state = State.IDLE
            self._auto_start()

    def reset(self, message: str = "") -> None:
        """Cease/4 (administrative reset), then reconnect as usual (also after a prefix limit)."""
        if self._limit_down:
            self.enable()
            return
        if not self.accepting:
            return
        self._delay = self._retry_start
        if self._links:
            self._close_all(CeaseSub.ADMIN_RESET, message)
        else:  # nothing to reset: restart connecting now
            self._cancel_retry()
            self._cancel_connect()
            self._base_state = State.IDLE
            self._auto_start()

    def prefix_limit_exceeded(self, afi: Afi, limit: int, received: int) -> None:
        """``max_prefixes`` hit: Cease/1 with the RFC 4486 data (AFI, SAFI, limit), then stay down
        for ``max_prefixes_restart`` seconds (0: until ``enable()`` or ``reset()``)."""
        if not self._enabled or self._loop is None:
            return
        restart = self.cfg.max_prefixes_restart
        self._log.warning(
            "prefix limit exceeded, closing session",
            afi=afi.name_lower,
            limit=limit,
            received=received,
            restart_in=restart or None,
        )
        self._enabled = False  # no reconnect and inbound refused until the restart timer or enable
        self._limit_down = True
        self._cancel_retry()
        self._cancel_connect()
        data = struct.pack("!HBI", int(afi), 1, limit)  # SAFI 1: unicast
        now = self._now()
        for link in list(self._links):
            if not link.finished:
                self._after(link, link.conn.close(now, ErrCode.CEASE, CeaseSub.MAX_PREFIXES, data))
        self._base_state = State.IDLE
        self.last_error = f"prefix limit {limit} exceeded ({received} received)"
        if restart > 0:
            self._limit_handle = self._loop.call_later(restart, self._limit_restart)
        self._note_state()

    def _limit_restart(self) -> None:
        self._limit_handle = None
        if not self._stopped:
            self._log.info("prefix limit restart timer expired, reconnecting")
            self.enable()

    def send_updates(self, msgs: list[bytes]) -> bool:
        """Queue encoded UPDATE messages for the established connection (dropped when down:
        returns False)."""
        link = self._established
        if link is None or not msgs:
            return False
        if link.conn.send_update_bytes(msgs, self._now()):
            self._after(link, [])
            return True
        return False

    def request_refresh(self, afi: Afi) -> bool:
        """Send ROUTE-REFRESH for ``afi``; False when down or not negotiated."""
        link = self._established
        if link is None or not link.conn.send_route_refresh(afi):
            return False
        self._after(link, [])
        return True

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """An inbound TCP connection from this peer (the listener checked ``accepting``)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if not self.accepting:
            writer.close()
            return
        if self.device is not None and not self._through_device(writer):
            writer.close()
            return
        if self._established is not None:
            # RFC 4271 6.8: a collision with an Established connection closes the new one.
            self._log.info("inbound connection refused: session already established")
            writer.write(encode_notification(ErrCode.CEASE, CeaseSub.CONNECTION_COLLISION))
            writer.close()
            return
        now = self._now()
        for old in [link for link in self._links if link.inbound and not link.finished]:
            # The peer has only one connection towards us at a time: it gave up the old one.
            self._log.info("new inbound connection replaces the previous one")
            self._after(old, old.conn.close(now, ErrCode.CEASE, CeaseSub.CONNECTION_COLLISION))
        if self._base_state in (State.CONNECT, State.ACTIVE):
            self._session_event(FsmEvent.TCP_CONNECTION_CONFIRMED)
        else:
            self._cancel_retry()
            self._base_state = State.OPENSENT
        self._start_link(reader, writer, inbound=True)

    def _through_device(self, writer: asyncio.StreamWriter) -> bool:
        """Whether an inbound connection came through our VRF device: the peer's address may be
        reachable in several VRFs, and a connection from another one is not this session's."""
        sock = writer.get_extra_info("socket")
        try:
            got = sockopts.bound_device(sock) if sock is not None else None
        except OSError:
            got = None
        if got == self.device:
            return True
        self._log.warning(
            "inbound connection refused: not through the vrf's device",
            device=self.device,
            came_through=got or "(no device: the main table)",
        )
        return False

    # --- session-level FSM -----------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _auto_start(self) -> None:
        self._session_event(FsmEvent.MANUAL_START_PASSIVE if self.cfg.passive else FsmEvent.MANUAL_START)

    def _session_event(self, event: FsmEvent) -> None:
        tr = step(self._base_state, event)
        self._base_state = tr.next_state
        for action in tr.actions:
            if action is Action.INITIATE_TCP:
                self._cancel_connect()
                self._connect_task = self._spawn(self._connect())
            elif action is Action.START_CONNECT_RETRY:
                # In Connect the timer bounds the attempt: give a lost SYN time to be retransmitted.
                connecting = tr.next_state is State.CONNECT
                self._arm_retry(max(self._delay, CONNECT_TIMEOUT) if connecting else self._delay)
            elif action is Action.STOP_CONNECT_RETRY:
                self._cancel_retry()
            elif action is Action.CLOSE:
                self._cancel_connect()
            # SEND_OPEN / START_OPEN_HOLD_TIMER: done by the BgpConnection of the new link.
        self._note_state()

    def _arm_retry(self, delay: float) -> None:
        self._cancel_retry()
        assert self._loop is not None
        self._retry_handle = self._loop.call_later(delay * random.uniform(0.75, 1.0), self._on_retry)

    def _cancel_retry(self) -> None:
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None

    def _cancel_connect(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None

    def _backoff(self) -> None:
        self._delay = min(self._delay * 2, max(MAX_RETRY, self._retry_start))

    def _on_retry(self) -> None:
        self._retry_handle = None
        if not self.accepting or self._links:
            return  # a connection is being negotiated: no second attempt
        if self._base_state is State.IDLE:
            self._auto_start()
        else:
            if self._base_state is State.CONNECT:
                self._note_connect_failure("connect timed out")
                self._backoff()
            self._session_event(FsmEvent.CONNECT_RETRY_EXPIRES)

    async def _connect(self) -> None:
        cfg = self.cfg
        family = socket.AF_INET6 if cfg.address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if self.device is not None:
                try:
                    sockopts.bind_to_device(sock, self.device)  # before connect: it picks the route
                except OSError as exc:
                    raise OSError(exc.errno, f"vrf device {self.device}: {exc.strerror}") from exc
            self._socket_options(sock, connecting=True)
            if cfg.source_address is not None:
                sock.bind((str(cfg.source_address), 0))
            assert self._loop is not None
            await self._loop.sock_connect(sock, (str(cfg.address), cfg.port))
            reader, writer = await asyncio.open_connection(sock=sock)
        except asyncio.CancelledError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            if self._connect_task is asyncio.current_task():
                self._connect_task = None
            self._connect_failed(exc.strerror or str(exc))
            return
        if self._connect_task is asyncio.current_task():
            self._connect_task = None
        self._connect_failures = 0
        if not self.accepting or self._established is not None:
            writer.close()  # came too late: stopped, or the peer's connection won meanwhile
            return
        if self._base_state in (State.CONNECT, State.ACTIVE):
            self._session_event(FsmEvent.TCP_CONNECTION_CONFIRMED)
        self._start_link(reader, writer, inbound=False)

    def _connect_failed(self, reason: str) -> None:
        self._note_connect_failure(reason)
        if self._base_state is State.CONNECT and self.accepting:
            self._session_event(FsmEvent.TCP_CONNECTION_FAILS)  # -> Active, retry timer armed
            self._backoff()

    def _note_connect_failure(self, reason: str) -> None:
        self._connect_failures += 1
        self.last_error = f"connect failed: {reason}"
        # The first failure in a row is worth a warning, the repeats are not.
        log = self._log.warning if self._connect_failures == 1 else self._log.debug
        log("connect failed", reason=reason, retry_in=round(self._delay, 1))

    def _socket_options(self, sock: sockopts.SockLike, connecting: bool) -> None:
        cfg = self.cfg
        try:
            sockopts.set_tos(sock)
            sockopts.apply_ttl_policy(
                sock, ebgp=self.ebgp, multihop=cfg.multihop, ttl_security=cfg.ttl_security
            )
            if connecting and cfg.password:
                sockopts.set_md5(sock, str(cfg.address), cfg.password)
        except OSError as exc:
            self._log.warning("cannot set socket options", error=str(exc))

    # --- connections -----------------------------------------------------------------------

    def _start_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, inbound: bool) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and inbound:
            self._socket_options(sock, connecting=False)
        if sock is not None:
            with contextlib.suppress(OSError):  # small messages should not wait for Nagle
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        now = self._now()
        link = _Link(self, reader, writer, inbound, now)
        self._links.append(link)
        self._log.debug("connection up", direction=link.direction, peername=writer.get_extra_info("peername"))
        self._spawn(self._write_loop(link))
        self._spawn(self._read_loop(link))
        self._after(link, link.conn.connection_made(now))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _read_loop(self, link: _Link) -> None:
        while not link.finished:
            try:
                data = await link.reader.read(READ_SIZE)
            except (ConnectionError, OSError) as exc:
                self._after(link, link.conn.connection_lost(self._now()), lost_reason=str(exc))
                return
            if not data:
                self._after(link, link.conn.connection_lost(self._now()))
                return
            link.inbox, link.inbox_pos = data, 0
            link.drained.clear()
            assert self._loop is not None
            _Feeder.of(self._loop).submit(link)
            await link.drained.wait()

    def _feed_piece(self, link: _Link) -> bool:
        """Give the connection the next piece of ``link.inbox``; True while some are left."""
        if not link.finished:
            pos = link.inbox_pos
            piece = link.inbox[pos : pos + FEED_SIZE]
            link.inbox_pos = pos + len(piece)
            now = self._now()
            try:
                events = link.conn.receive_data(piece, now)
            except Exception:  # a codec bug: the peer's bytes are not to blame
                self._log.exception("internal error while decoding", data=_excerpt(piece))
                events = link.conn.close(now, *_INTERNAL_ERROR)
            try:
                self._after(link, events)
            except Exception:  # a bug here must not stop the feeder, which serves every peer
                self._log.exception("internal error while handling received messages")
                if not link.finished:
                    self._after(link, link.conn.close(now, *_INTERNAL_ERROR))
            if not link.finished and link.inbox_pos < len(link.inbox):
                return True
        link.inbox, link.inbox_pos = b"", 0
        return False

    @staticmethod
    def _input_pending(link: _Link) -> bool:
        """Whether bytes from the peer wait on our side: in the reader's hands, in the stream's
        buffer or in the socket. A hold timer running out then is our delay, not its silence."""
        if link.inbox_pos < len(link.inbox) or getattr(link.reader, "_buffer", None):  # no public size
            return True
        sock = link.writer.get_extra_info("socket")
        if sock is None:
            return False
        try:
            queued = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return False
        return struct.unpack("i", queued)[0] > 0

    @staticmethod
    def _output_progress(link: _Link) -> tuple[int, bool]:
        """For the send hold timer (RFC 9687): how many of our bytes the peer has acknowledged
        (written, less what waits in the transport and unacknowledged in the kernel: a peer
        that keeps a zero window takes none) and whether any still wait."""
        transport = link.writer.transport
        waiting = link.conn.pending_output + transport.get_write_buffer_size()
        sock = link.writer.get_extra_info("socket")
        if sock is not None:
            try:
                queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                waiting += struct.unpack("i", queued)[0]
            except OSError:
                pass
        return link.written + link.conn.pending_output - waiting, waiting > 0

    async def _write_loop(self, link: _Link) -> None:
        try:
            while True:
                data = link.conn.data_to_send()
                if data:
                    link.written += len(data)
                    link.writer.write(data)
                    await link.writer.drain()
                    continue
                if link.finished:
                    break
                if self._drain_wanted and link is self._established:
                    self._drain_wanted = False
                    self._call(link, self.handler.output_drained)
                    continue
                link.wake.clear()
                await link.wake.wait()
        except (ConnectionError, OSError) as exc:
            self._after(link, link.conn.connection_lost(self._now()), lost_reason=str(exc))
        finally:
            link.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.writer.wait_closed(), FLUSH_TIMEOUT)
            if link.abort_handle is not None:
                link.abort_handle.cancel()

    def _on_timer(self, link: _Link, deadline: float) -> None:
        link.timer = None
        # asyncio may run a timer a clock tick early; the connection must see its deadline reached.
        now = max(self._now(), deadline)
        events = link.conn.handle_timer(
            now, input_pending=self._input_pending(link), output=self._output_progress(link)
        )
        self._after(link, events)

    def _after(self, link: _Link, events: list[Event], lost_reason: str = "") -> None:
        """Dispatch a connection's events, wake its writer, re-arm its timer."""
        for ev in events:
            if link.finished and not isinstance(ev, SessionClosed):
                continue  # the connection was dumped while its batch was being dispatched
            self._dispatch(link, ev, lost_reason)
        link.wake.set()
        if link.timer is not None:
            link.timer.cancel()
            link.timer = None
        deadline = link.conn.next_deadline()
        if deadline is not None and not link.finished:
            assert self._loop is not None
            link.timer = self._loop.call_at(deadline, self._on_timer, link, deadline)
        self._note_state()

    def _dispatch(self, link: _Link, ev: Event, lost_reason: str) -> None:
        if isinstance(ev, UpdateReceived):
            if ev.errors:
                self._log.warning("UPDATE repaired (RFC 7606)", errors=ev.errors)
            self._call(link, self.handler.update_received, ev.update)
        elif isinstance(ev, RouteRefreshReceived):
            self._call(link, self.handler.refresh_requested, ev.afi)
        elif isinstance(ev, SessionEstablished):
            self._established = link
            self.negotiated = ev.negotiated
            self.established_at = time.monotonic()
            self.last_error = ""
            self._connect_failures = 0
            self._cancel_connect()  # a late outbound connection would only collide
            self._cancel_retry()
            neg = ev.negotiated
            self._log.info(
                "session established",
                direction=link.direction,
                peer_router_id=neg.peer_router_id,
                hold_time=neg.hold_time,
                afis=[a.name_lower for a in neg.afis],
                four_octet=neg.four_octet,
                route_refresh=neg.route_refresh,
            )
            self._note_state()
            self._call(link, self.handler.session_up)
        elif isinstance(ev, OpenReceived):
            self._log.debug("OPEN received", direction=link.direction, router_id=ev.open.router_id)
        elif isinstance(ev, NotificationReceived):
            self._log.warning("NOTIFICATION received", notification=ev.text, data=ev.data.hex())
        elif isinstance(ev, SessionClosed):
            self._closed(link, ev, lost_reason)

    def _call(self, link: _Link, fn: Callable[..., None], *args: object) -> None:
        """Run a handler callback; a failing handler resets the session (so the RIB resyncs)."""
        try:
            fn(self, *args)
        except Exception:
            self._log.exception("session handler failed", callback=getattr(fn, "__name__", str(fn)))
            if not link.finished:
                self._after(link, link.conn.close(self._now(), *_INTERNAL_ERROR))

    def _resolve_collision(self, link: _Link, peer_open: Open) -> bool:
        """RFC 4271 6.8, called from ``link``'s connection with a valid OPEN: keep it or dump it."""
        others = [o for o in self._links if o is not link and not o.finished]
        if any(o.conn.state is State.ESTABLISHED for o in others):
            return False
        rivals = [o for o in others if o.conn.state in (State.OPENSENT, State.OPENCONFIRM)]
        if not rivals:
            return True
        local_id = int(ipaddress.IPv4Address(self.router_id))
        peer_id = int(ipaddress.IPv4Address(peer_open.router_id))
        # The connection initiated by the higher identifier survives (RFC 6286 3: on a tie, the
        # higher AS number).
        we_win = local_id > peer_id if local_id != peer_id else self.local_asn > peer_open.peer_asn
        keep_link = link.inbound != we_win
        self._log.info(
            "connection collision",
            keep="outbound" if we_win else "inbound",
            local_id=self.router_id,
            peer_id=peer_open.router_id,
        )
        if keep_link:
            now = self._now()
            for o in rivals:
                self._after(o, o.conn.close(now, ErrCode.CEASE, CeaseSub.CONNECTION_COLLISION))
        return keep_link

    def _closed(self, link: _Link, ev: SessionClosed, lost_reason: str) -> None:
        link.finished = True
        if link in self._links:
            self._links.remove(link)
        self._stats_done.add(link.conn.stats)
        if link.timer is not None:
            link.timer.cancel()
            link.timer = None
        assert self._loop is not None
        # A peer that does not read must not keep the NOTIFICATION (and the socket) pending forever.
        link.abort_handle = self._loop.call_later(FLUSH_TIMEOUT, link.writer.transport.abort)
        link.wake.set()

        reason = ev.reason if not lost_reason else f"{ev.reason} ({lost_reason})"
        was_up = link is self._established
        matters = was_up or not self._links  # a collision loser beside a live connection is noise
        if matters:
            self.last_error = reason
            if ev.notification_received is not None:
                self.last_notification = "received " + describe_notification(*ev.notification_received)
            elif ev.notification_sent is not None:
                self.last_notification = "sent " + describe_notification(*ev.notification_sent)
        fields: dict[str, object] = {"reason": reason, "direction": link.direction}
        if ev.offending:
            fields["message"] = _excerpt(ev.offending)
        local_stop = self._stopped or not self._enabled
        if not matters or (local_stop and ev.notification_received is None and not ev.offending):
            self._log.info("connection closed", **fields)
        else:
            self._log.warning("session closed" if was_up else "connection closed", **fields)

        stable = False
        if was_up:
            self._established = None
            self.negotiated = None
            stable = self.established_at is not None and time.monotonic() - self.established_at > STABLE_AFTER
            self.established_at = None
            self.flaps += 1
            self.last_close = ev
            self._call(link, self.handler.session_down, reason)
        if not self._links:
            self._links_gone(stable)

    def _links_gone(self, stable: bool) -> None:
        """The last connection ended: wait in Idle, then start over (unless disabled/stopped)."""
        self._cancel_connect()
        self._cancel_retry()
        self._base_state = State.IDLE
        if self.accepting:
            if stable:
                self._delay = self._retry_start
            if self.cfg.passive:
                self._auto_start()
            else:
                self._arm_retry(self._delay)  # IdleHoldTimer; fires _auto_start
                self._backoff()
        self._note_state()

    def _close_all(self, subcode: int, message: str) -> None:
        with_text = subcode in (CeaseSub.ADMIN_SHUTDOWN, CeaseSub.ADMIN_RESET)
        data = shutdown_communication(message) if with_text else b""
        now = self._now()
        for link in list(self._links):
            if not link.finished:
                self._after(link, link.conn.close(now, ErrCode.CEASE, subcode, data))

    def _shutdown(self, subcode: int, message: str) -> None:
        self._cancel_retry()
        self._cancel_connect()
        if self._loop is not None:
            self._close_all(subcode, message)
        self._base_state = State.IDLE
        self._note_state()

    async def _wait_tasks(self) -> None:
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current and not t.done()]
        if pending:
            _done, still = await asyncio.wait(pending, timeout=FLUSH_TIMEOUT + 1.0)
            for t in still:
                t.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)

    def _note_state(self) -> None:
        st = self.state
        if st is not self._shown_state:
            self._log.info("state changed", old=str(self._shown_state), new=str(st))
            self._shown_state = st
