"""The sans-IO core of one BGP connection (h11/aioquic style).

``BgpConnection`` owns everything about one TCP connection except the socket and the clock:
bytes go in through ``receive_data``, bytes come out of ``data_to_send``, time is passed in as
``now`` (monotonic seconds) and timers are polled through ``next_deadline``/``handle_timer``.
Every call returns the events it produced (past-tense dataclasses). The state machine itself
is the table in ``bgpd.fsm``; this module interprets its actions.

Errors: every ``BgpError`` raised by the codec becomes the NOTIFICATION it names, followed by
``SessionClosed``. Any other exception from the codec is a bug in our code and deliberately
propagates (tests must see it); the asyncio layer catches it, logs it with a traceback and
closes the connection with a Cease (see ``bgpd.session``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from bgpd.fsm import Action, FsmEvent, State, Transition, step
from bgpd.wire import (
    MessageFramer,
    UpdateDecoder,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_keepalive,
    encode_notification,
    encode_open,
    encode_route_refresh,
)
from bgpd.wire.errors import ERROR_NAMES, BgpError, CeaseSub, ErrCode, OpenSub, describe_error
from bgpd.wire.messages import (
    EXTENDED_MAX_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
    AddPathMode,
    Capabilities,
    GracefulRestart,
    MsgType,
    Open,
    RefreshSubtype,
    Update,
)
from rib.prefix import Afi, Safi

HOLD_GRACE = 1.0  # seconds a hold timer is extended while the peer's bytes wait unread
OPEN_HOLD_TIME = 240.0  # hold timer while waiting for the peer's OPEN (RFC 4271 8.2.2 "large value")
SEND_HOLD_MIN = 480  # RFC 9687: the default send hold time is max(8 min, 2 x the hold time)
# Cease subcodes sent as a Hard Reset when the N bit was negotiated (RFC 8538 5: required for
# maximum prefixes, shutdown, de-configured and Hard Reset itself; Administrative Reset is the
# implementation's choice, and a reset is meant to clear the peer's state, as FRR does).
HARD_CEASES = frozenset(
    (CeaseSub.MAX_PREFIXES, CeaseSub.ADMIN_SHUTDOWN, CeaseSub.PEER_DECONFIGURED, CeaseSub.ADMIN_RESET)
)
DECODER_CACHE = 8192  # raw attribute blocks each session's decoder remembers (see ESTABLISH)


@dataclass(slots=True)
class ConnParams:
    local_asn: int
    router_id: str
    peer_asn: int
    hold_time: int
    afis: list[Afi]
    peer_address: str = ""
    # Optional capabilities we advertise (RFC 4724, RFC 7911, RFC 8654, RFC 7313, RFC 8950, FQDN).
    graceful_restart: bool = False
    restart_time: int = 120
    # RFC 8538 N bit: a NOTIFICATION other than Cease/Hard Reset also starts a graceful restart.
    graceful_notification: bool = True
    # Our own restart (bgpd/graceful.py): R bit while we recover, F bit for these families.
    restart_state: bool = False
    forwarding: frozenset[Afi] = frozenset()
    add_path: str = "off"  # "off" | "receive" | "send" | "both"
    extended_message: bool = True
    enhanced_route_refresh: bool = True
    extended_next_hop: bool | None = None  # None: for IPv4 when the session runs over IPv6
    hostname: str | None = None
    # RFC 9687: seconds our output may make no progress before we give up on the peer
    # (None: max(SEND_HOLD_MIN, 2 x the negotiated hold time); 0: never).
    send_hold_time: int | None = None
    ebgp: bool = field(init=False)

    def __post_init__(self) -> None:
        self.ebgp = self.peer_asn != self.local_asn

    def capabilities(self) -> Capabilities:
        """The optional capabilities of our OPEN (MP, route refresh and 4-octet AS are always sent)."""
        caps = Capabilities(
            extended_message=self.extended_message, enhanced_route_refresh=self.enhanced_route_refresh
        )
        ext_nh = self.extended_next_hop
        if ext_nh is None:
            ext_nh = ":" in self.peer_address
        if ext_nh and Afi.IPV4 in self.afis:
            caps.extended_next_hop = [(int(Afi.IPV4), int(Safi.UNICAST), int(Afi.IPV6))]
        if self.graceful_restart:
            # R: we restarted and are recovering; F: our kernel kept that family's routes (RFC 4724 3).
            caps.graceful_restart = GracefulRestart(
                (0x8 if self.restart_state else 0) | (0x4 if self.graceful_notification else 0),
                min(self.restart_time, 0xFFF),
                [(int(a), int(Safi.UNICAST), 0x80 if a in self.forwarding else 0) for a in self.afis],
            )
        mode = _ADD_PATH_MODES.get(self.add_path)
        if mode:
            caps.add_path = [(int(a), int(Safi.UNICAST), mode) for a in self.afis]
        if self.hostname:
            # Kept short so the OPEN never needs RFC 9072 extended parameters just for a name
            # (peers without RFC 9072 would reject it).
            host, _, domain = self.hostname.partition(".")
            caps.hostname, caps.domain = host[:64], domain[:64]
        return caps


_ADD_PATH_MODES = {"receive": AddPathMode.RECEIVE, "send": AddPathMode.SEND, "both": AddPathMode.BOTH}


@dataclass(slots=True)
class Negotiated:
    peer_router_id: str
    peer_asn: int
    hold_time: int  # 0: no hold timer and no keepalives
    keepalive: int  # seconds between our KEEPALIVEs (0 with hold_time 0)
    four_octet: bool
    afis: list[Afi]  # ours intersected with the peer's (unicast only)
    route_refresh: bool
    peer_capabilities: Capabilities
    enhanced_route_refresh: bool = False
    extended_message: bool = False  # both sides: messages up to 65535 bytes (RFC 8654)
    max_message_len: int = MAX_MESSAGE_LEN
    # AFIs whose NLRI may come with an IPv6 next hop (RFC 8950, both sides advertised it).
    extended_next_hop: list[Afi] = field(default_factory=list)
    add_path_rx: list[Afi] = field(default_factory=list)  # we receive path identifiers (RFC 7911)
    add_path_tx: list[Afi] = field(default_factory=list)  # we send path identifiers
    graceful_restart: bool = False  # both sides advertised RFC 4724
    graceful_notification: bool = False  # and both set the N bit (RFC 8538)
    local_capabilities: Capabilities | None = None  # what we advertised

    def capabilities_json(self) -> dict[str, object]:
        """The negotiated and the peer's capabilities, for `show neighbors`."""
        peer = self.peer_capabilities
        gr = peer.graceful_restart
        return {
            "extended_message": self.extended_message,
            "enhanced_route_refresh": self.enhanced_route_refresh,
            "extended_next_hop": [a.name_lower for a in self.extended_next_hop],
            "add_path": {
                "receive": [a.name_lower for a in self.add_path_rx],
                "send": [a.name_lower for a in self.add_path_tx],
            },
            "graceful_restart": self.graceful_restart,
            "graceful_notification": self.graceful_notification,
            "peer": {
                "multiprotocol": [list(t) for t in peer.multiprotocol],
                "route_refresh": peer.route_refresh,
                "enhanced_route_refresh": peer.enhanced_route_refresh,
                "four_octet_as": peer.four_octet_as,
                "extended_message": peer.extended_message,
                "extended_next_hop": [list(t) for t in peer.extended_next_hop],
                "graceful_restart": None
                if gr is None
                else {
                    "restart_flags": gr.flags,
                    "restart_time": gr.time,
                    "families": [list(f) for f in gr.families],
                },
                "long_lived_graceful_restart": None
                if peer.llgr is None
                else [[f.afi, f.safi, f.flags, f.stale_time] for f in peer.llgr],
                "add_path": [list(t) for t in peer.add_path],
                "hostname": peer.hostname,
                "domain": peer.domain,
                "unknown": [{"code": code, "value": value.hex()} for code, value in peer.unknown],
            },
        }


@dataclass(slots=True)
class ConnStats:
    messages_in: int = 0
    messages_out: int = 0
    updates_in: int = 0
    updates_out: int = 0
    notifications_in: int = 0
    notifications_out: int = 0

    def add(self, other: ConnStats) -> None:
        self.messages_in += other.messages_in
        self.messages_out += other.messages_out
        self.updates_in += other.updates_in
        self.updates_out += other.updates_out
        self.notifications_in += other.notifications_in
        self.notifications_out += other.notifications_out


# --- events --------------------------------------------------------------------------------


@dataclass(slots=True)
class OpenReceived:
    """The peer's OPEN passed every check (the session uses it for collision detection)."""

    open: Open


@dataclass(slots=True)
class SessionEstablished:
    negotiated: Negotiated


@dataclass(slots=True)
class UpdateReceived:
    update: Update

    @property
    def errors(self) -> list[str]:
        """RFC 7606 repairs the decoder made (treat-as-withdraw, attribute discard), for the log."""
        return self.update.errors


@dataclass(slots=True)
class RouteRefreshReceived:
    afi: Afi
    safi: int


@dataclass(slots=True)
class RouteRefreshMarker:
    """An RFC 7313 BoRR (subtype 1) or EoRR (subtype 2) from a peer that negotiated it."""

    afi: Afi
    safi: int
    subtype: int


@dataclass(slots=True)
class NotificationReceived:
    code: int
    subcode: int
    data: bytes

    @property
    def text(self) -> str:
        return describe_notification(self.code, self.subcode, self.data)


@dataclass(slots=True)
class SessionClosed:
    reason: str
    notification_sent: tuple[int, int, bytes] | None = None
    notification_received: tuple[int, int, bytes] | None = None
    graceful_notification: bool = False  # the session had negotiated RFC 8538's N bit
    # The message that caused a protocol error (header or body as received), for a hex excerpt in the log.
    offending: bytes = b""


Event = (
    OpenReceived
    | SessionEstablished
    | UpdateReceived
    | RouteRefreshReceived
    | RouteRefreshMarker
    | NotificationReceived
    | SessionClosed
)


# --- helpers -------------------------------------------------------------------------------


def shutdown_communication(message: str) -> bytes:
    """NOTIFICATION data for Cease/Administrative Shutdown or Reset (RFC 9003): length + UTF-8."""
    raw = message.encode("utf-8")[:255]
    # Do not cut a multi-byte character in half.
    raw = raw.decode("utf-8", "ignore").encode("utf-8")
    return bytes((len(raw),)) + raw if raw else b""


def describe_notification(code: int, subcode: int, data: bytes) -> str:
    """Human-readable NOTIFICATION, with the RFC 9003 shutdown communication when present."""
    # Subcode 0 is "unspecific" for codes without subcodes (Hold Timer Expired): just the name.
    text = ERROR_NAMES.get(code, "") if subcode == 0 else ""
    text = text or describe_error(code, subcode)
    if code == ErrCode.CEASE and subcode == CeaseSub.HARD_RESET and len(data) >= 2:
        # RFC 8538 3: the data is the NOTIFICATION the Hard Reset stands for.
        return f"{text} ({describe_notification(data[0], data[1], data[2:])})"
    if code == ErrCode.CEASE and subcode in (CeaseSub.ADMIN_SHUTDOWN, CeaseSub.ADMIN_RESET) and data:
        n = data[0]
        if 0 < n <= len(data) - 1:
            msg = data[1 : 1 + n].decode("utf-8", "replace")
            text += f': "{msg}"'
    return text


def _router_id_int(rid: str) -> int:
    return int(ipaddress.IPv4Address(rid))


# --- the connection ------------------------------------------------------------------------


class BgpConnection:
    """One BGP conversation over one TCP connection, from TCP up until it ends (state Idle)."""

    def __init__(
        self, params: ConnParams, now: float, *, open_hook: Callable[[Open], bool] | None = None
    ) -> None:
        self.params = params
        # Called with the peer's OPEN once it passed every check, before we answer it: returning
        # False dumps this connection with Cease/7 (collision resolution, RFC 4271 6.8, is done by
        # the owner of both connections).
        self.open_hook = open_hook
        self.state = State.CONNECT
        self.negotiated: Negotiated | None = None
        self.peer_open: Open | None = None
        self.stats = ConnStats()
        self.created_at = now
        self._now = now
        self._out = bytearray()
        self._framer = MessageFramer()
        self._decoder: UpdateDecoder | None = None
        self._hold_deadline: float | None = None
        self._keepalive_deadline: float | None = None
        # RFC 9687 send hold timer: armed while our output waits, pushed back on progress.
        self._send_hold_deadline: float | None = None
        self._taken = 0  # the owner's count of bytes the peer has taken, as last reported
        self._events: list[Event] = []
        self._notif_sent: tuple[int, int, bytes] | None = None
        self._notif_received: tuple[int, int, bytes] | None = None

    # --- public API --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.state is State.IDLE

    def connection_made(self, now: float) -> list[Event]:
        """TCP is up (either direction): send our OPEN and wait in OpenSent."""
        self._now = now
        self._input(FsmEvent.TCP_CONNECTION_CONFIRMED, now)
        return self._take_events()

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if self.closed:
            return []  # after a close only the queued NOTIFICATION matters
        self._now = now
        try:
            frames = self._framer.feed(data)
        except BgpError as err:
            self._error(FsmEvent.BGP_HEADER_ERR, err, now, offending=data[:64])
            return self._take_events()
        for msg_type, body in frames:
            if self.closed:
                break  # ignore whatever followed the message that ended the session
            self.stats.messages_in += 1
            self._dispatch(msg_type, body, now)
        return self._take_events()

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def pending_output(self) -> int:
        """Bytes queued but not yet taken by ``data_to_send``."""
        return len(self._out)

    def next_deadline(self) -> float | None:
        if self.closed:
            return None
        timers = (self._hold_deadline, self._keepalive_deadline, self._send_hold_deadline)
        deadlines = [d for d in timers if d is not None]
        return min(deadlines) if deadlines else None

    @property
    def send_hold_time(self) -> int:
        """RFC 9687's send hold time of this session (0: none)."""
        sh = self.params.send_hold_time
        if sh is not None:
            return sh
        neg = self.negotiated
        return max(SEND_HOLD_MIN, 2 * neg.hold_time) if neg is not None else SEND_HOLD_MIN

    def handle_timer(
        self, now: float, input_pending: bool = False, output: tuple[int, bool] | None = None
    ) -> list[Event]:
        """Run the timers due at ``now``. ``input_pending``: the peer's bytes wait unread on our
        side (we were busy), so an expired hold timer is our delay, not the peer's silence: it
        gets HOLD_GRACE more, as BIRD gives one when its socket has data (bgp_hold_timeout).
        ``output``: the owner's count of bytes the peer has taken so far (acknowledged) and
        whether any still wait to go; a change of the count is progress for the send hold
        timer (RFC 9687), nothing waiting stops it. Without it the timer runs unchecked."""
        self._now = now
        if output is not None and self._send_hold_deadline is not None:
            taken, waiting = output
            if not waiting:
                self._send_hold_deadline = None
            elif taken != self._taken:
                self._send_hold_deadline = now + self.send_hold_time
            self._taken = taken
        elif output is not None:
            self._taken = output[0]
        if self._send_hold_deadline is not None and now >= self._send_hold_deadline:
            sh = self.send_hold_time
            err = BgpError(ErrCode.SEND_HOLD_TIMER_EXPIRED, 0)
            reason = f"send hold timer expired ({sh:g} s): the peer took none of our output"
            self._input(FsmEvent.MANUAL_STOP, now, error=err, reason=reason)
            return self._take_events()
        if self._hold_deadline is not None and now >= self._hold_deadline and input_pending:
            self._hold_deadline = now + HOLD_GRACE
        if self._hold_deadline is not None and now >= self._hold_deadline:
            hold = self.negotiated.hold_time if self.negotiated else OPEN_HOLD_TIME
            self._input(FsmEvent.HOLD_TIMER_EXPIRES, now, reason=f"hold timer expired ({hold:g} s)")
        if not self.closed and self._keepalive_deadline is not None and now >= self._keepalive_deadline:
            self._input(FsmEvent.KEEPALIVE_TIMER_EXPIRES, now)
        return self._take_events()

    def send_update_bytes(self, msgs: list[bytes], now: float | None = None) -> bool:
        """Queue fully encoded UPDATE messages. Only in Established; returns False (dropping them)
        otherwise, since whatever was not sent is re-sent from the RIB on the next session."""
        if self.state is not State.ESTABLISHED:
            return False
        for m in msgs:
            self._out += m
        n = len(msgs)
        self.stats.messages_out += n
        self.stats.updates_out += n
        if n:
            self._restart_keepalive(self._now if now is None else now)
            self._arm_send_hold(self._now if now is None else now)
        return True

    def send_route_refresh(self, afi: Afi, safi: int = Safi.UNICAST, subtype: int = 0) -> bool:
        """Ask the peer to re-send its routes (RFC 2918), or with ``subtype`` BORR/EORR mark the
        start/end of our re-advertisement (RFC 7313); False when not negotiated for ``afi``."""
        neg = self.negotiated
        if self.state is not State.ESTABLISHED or neg is None or not neg.route_refresh or afi not in neg.afis:
            return False
        if subtype and not neg.enhanced_route_refresh:
            return False
        self._out += encode_route_refresh(afi, safi, subtype)
        self.stats.messages_out += 1
        self._arm_send_hold(self._now)
        return True

    def close(
        self, now: float, code: int = ErrCode.CEASE, subcode: int = CeaseSub.ADMIN_SHUTDOWN, data: bytes = b""
    ) -> list[Event]:
        """End the connection with NOTIFICATION(code, subcode, data) (none before OpenSent)."""
        if self.closed:
            return []
        self._now = now
        err = BgpError(code, subcode, data)
        collision = (code, subcode) == (ErrCode.CEASE, CeaseSub.CONNECTION_COLLISION)
        event = FsmEvent.OPEN_COLLISION_DUMP if collision else FsmEvent.MANUAL_STOP
        reason = f"closed locally: {describe_notification(code, subcode, data)}"
        self._input(event, now, error=err, reason=reason)
        return self._take_events()

    def connection_lost(self, now: float, reason: str = "connection closed by peer") -> list[Event]:
        """TCP ended (also our own close without NOTIFICATION: a graceful restart, RFC 4724)."""
        if self.closed:
            return []
        self._now = now
        self._input(FsmEvent.TCP_CONNECTION_FAILS, now, reason=reason)
        return self._take_events()

    # --- message dispatch --------------------------------------------------------------

    def _dispatch(self, msg_type: int, body: bytes, now: float) -> None:
        if msg_type == MsgType.KEEPALIVE:
            self._input(FsmEvent.KEEPALIVE_MSG, now)
        elif msg_type == MsgType.UPDATE:
            self._on_update(body, now)
        elif msg_type == MsgType.OPEN:
            self._on_open(body, now)
        elif msg_type == MsgType.NOTIFICATION:
            self._on_notification(body, now)
        elif msg_type == MsgType.ROUTE_REFRESH:
            self._on_route_refresh(body, now)
        else:  # the framer rejects unknown types; keep the FSM total anyway
            err = BgpError(ErrCode.MESSAGE_HEADER, 3, bytes((msg_type,)))
            self._error(FsmEvent.BGP_HEADER_ERR, err, now, offending=body[:64])

    def _on_update(self, body: bytes, now: float) -> None:
        if self.state is not State.ESTABLISHED or self._decoder is None:
            self._input(FsmEvent.UPDATE_MSG, now, msg_name="UPDATE")  # an FSM error
            return
        try:
            update = self._decoder.decode(body)
        except BgpError as err:
            self._error(FsmEvent.UPDATE_MSG_ERR, err, now, offending=body)
            return
        self.stats.updates_in += 1
        self._input(FsmEvent.UPDATE_MSG, now, payload=UpdateReceived(update))

    def _on_open(self, body: bytes, now: float) -> None:
        if self.state is not State.OPENSENT:
            self._input(FsmEvent.BGP_OPEN, now, msg_name="OPEN")  # an FSM error
            return
        try:
            peer = decode_open(body)
            self._check_open(peer)
        except BgpError as err:
            self._error(FsmEvent.BGP_OPEN_MSG_ERR, err, now, offending=body)
            return
        self.peer_open = peer
        if self.open_hook is not None and not self.open_hook(peer):
            dump = BgpError(ErrCode.CEASE, CeaseSub.CONNECTION_COLLISION)
            reason = "connection collision: the other connection with this peer was kept"
            self._input(FsmEvent.OPEN_COLLISION_DUMP, now, error=dump, reason=reason)
            return
        self._input(FsmEvent.BGP_OPEN, now)

    def _on_notification(self, body: bytes, now: float) -> None:
        self.stats.notifications_in += 1
        try:
            n = decode_notification(body)
            code, subcode, data = n.code, n.subcode, n.data
        except BgpError:
            # Never answer a NOTIFICATION with one (RFC 4271 6.4); keep what can be read.
            code, subcode, data = body[0] if body else 0, body[1] if len(body) > 1 else 0, body[2:]
        self._notif_received = (code, subcode, data)
        ev = NotificationReceived(code, subcode, data)
        self._input(FsmEvent.NOTIF_MSG, now, payload=ev, reason=f"received NOTIFICATION: {ev.text}")

    def _on_route_refresh(self, body: bytes, now: float) -> None:
        if self.state is not State.ESTABLISHED:
            self._input(FsmEvent.ROUTE_REFRESH_MSG, now, msg_name="ROUTE-REFRESH")  # an FSM error
            return
        try:
            rr = decode_route_refresh(body)
        except BgpError as err:
            self._error(FsmEvent.ROUTE_REFRESH_MSG_ERR, err, now, offending=body)
            return
        neg = self.negotiated
        payload: Event | None = None
        # RFC 2918 4 / RFC 7313 5: ignore AFI/SAFIs not negotiated and unknown subtypes; BoRR and
        # EoRR only mean something once enhanced route refresh was negotiated.
        wanted = neg is not None and rr.afi in {a.value for a in neg.afis} and rr.safi == Safi.UNICAST
        if wanted and rr.subtype == RefreshSubtype.NORMAL:
            payload = RouteRefreshReceived(Afi(rr.afi), rr.safi)
        elif (
            wanted
            and neg is not None
            and neg.enhanced_route_refresh
            and rr.subtype in (RefreshSubtype.BORR, RefreshSubtype.EORR)
        ):
            payload = RouteRefreshMarker(Afi(rr.afi), rr.safi, rr.subtype)
        self._input(FsmEvent.ROUTE_REFRESH_MSG, now, payload=payload)

    # --- OPEN validation and negotiation -----------------------------------------------

    def _check_open(self, peer: Open) -> None:
        p = self.params
        if peer.peer_asn != p.peer_asn:
            raise BgpError(
                ErrCode.OPEN_MESSAGE,
                OpenSub.BAD_PEER_AS,
                (peer.asn & 0xFFFF).to_bytes(2, "big"),
                reason=f"Bad Peer AS: peer says AS{peer.peer_asn}, configured AS{p.peer_asn}",
            )
        if peer.hold_time in (1, 2):  # RFC 4271 4.2: zero or at least three seconds
            raise BgpError(
                ErrCode.OPEN_MESSAGE,
                OpenSub.UNACCEPTABLE_HOLD_TIME,
                reason=f"Unacceptable Hold Time: {peer.hold_time} s",
            )
        try:
            rid = _router_id_int(peer.router_id)
        except ValueError:
            rid = 0
        # RFC 6286 2.2: zero is never valid; our own identifier only from an external peer.
        if rid == 0 or (not p.ebgp and rid == _router_id_int(p.router_id)):
            raise BgpError(
                ErrCode.OPEN_MESSAGE,
                OpenSub.BAD_BGP_IDENTIFIER,
                reason=f"Bad BGP Identifier: {peer.router_id}",
            )

    def _negotiate(self, peer: Open) -> Negotiated:
        caps = peer.capabilities
        hold = min(self.params.hold_time, peer.hold_time)
        # RFC 4760 8: a peer without any multiprotocol capability speaks IPv4 unicast only.
        ipv4_unicast = (Afi.IPV4.value, Safi.UNICAST.value)
        peer_families = set(caps.multiprotocol) if caps.multiprotocol else {ipv4_unicast}
        afis = [a for a in self.params.afis if (a.value, Safi.UNICAST.value) in peer_families]
        ours = self.params.capabilities()
        uni = int(Safi.UNICAST)
        # RFC 7911 4: we receive path ids where we said receive and the peer said send.
        our_ap = {(afi, safi): mode for afi, safi, mode in ours.add_path}
        peer_ap = {(afi, safi): mode for afi, safi, mode in caps.add_path}
        add_rx = [
            a
            for a in afis
            if our_ap.get((a, uni), 0) & AddPathMode.RECEIVE and peer_ap.get((a, uni), 0) & AddPathMode.SEND
        ]
        add_tx = [
            a
            for a in afis
            if our_ap.get((a, uni), 0) & AddPathMode.SEND and peer_ap.get((a, uni), 0) & AddPathMode.RECEIVE
        ]
        ext_nh = [
            a
            for a in afis
            if (int(a), uni, int(Afi.IPV6)) in ours.extended_next_hop
            and (int(a), uni, int(Afi.IPV6)) in caps.extended_next_hop
        ]
        ext_msg = ours.extended_message and caps.extended_message
        return Negotiated(
            peer_router_id=peer.router_id,
            peer_asn=peer.peer_asn,
            hold_time=hold,
            keepalive=max(1, hold // 3) if hold else 0,
            four_octet=caps.four_octet_as is not None,
            afis=afis,
            route_refresh=caps.route_refresh,
            peer_capabilities=caps,
            enhanced_route_refresh=ours.enhanced_route_refresh and caps.enhanced_route_refresh,
            extended_message=ext_msg,
            max_message_len=EXTENDED_MAX_MESSAGE_LEN if ext_msg else MAX_MESSAGE_LEN,
            extended_next_hop=ext_nh,
            add_path_rx=add_rx,
            add_path_tx=add_tx,
            graceful_restart=ours.graceful_restart is not None and caps.graceful_restart is not None,
            graceful_notification=ours.graceful_restart is not None
            and ours.graceful_restart.notification
            and caps.graceful_restart is not None
            and caps.graceful_restart.notification,
            local_capabilities=ours,
        )

    # --- the FSM interpreter -----------------------------------------------------------

    def _error(self, event: FsmEvent, err: BgpError, now: float, offending: bytes = b"") -> None:
        name = describe_error(err.code, err.subcode)
        reason = f"sent NOTIFICATION: {name}"
        if err.reason and err.reason != name:
            reason += f" ({err.reason})"
        self._input(event, now, error=err, reason=reason, offending=offending)

    def _input(
        self,
        event: FsmEvent,
        now: float,
        *,
        error: BgpError | None = None,
        payload: Event | None = None,
        reason: str = "",
        offending: bytes = b"",
        msg_name: str = "",
    ) -> None:
        old = self.state
        tr: Transition = step(old, event)
        if tr.fsm_error:
            what = f"{msg_name} message" if msg_name else event.value
            reason = f"FSM error: unexpected {what} in {old.value}"
        self.state = tr.next_state
        for action in tr.actions:
            self._run(action, tr, now, error=error, payload=payload, reason=reason, offending=offending)

    def _run(
        self,
        action: Action,
        tr: Transition,
        now: float,
        *,
        error: BgpError | None,
        payload: Event | None,
        reason: str,
        offending: bytes,
    ) -> None:
        p = self.params
        if action is Action.SEND_OPEN:
            families = [(int(a), int(Safi.UNICAST)) for a in p.afis]
            self._out += encode_open(
                p.local_asn, p.hold_time, p.router_id, families, capabilities=p.capabilities()
            )
            self.stats.messages_out += 1
        elif action is Action.START_OPEN_HOLD_TIMER:
            self._hold_deadline = now + OPEN_HOLD_TIME
        elif action is Action.ACCEPT_OPEN:
            assert self.peer_open is not None
            self.negotiated = self._negotiate(self.peer_open)
            self._events.append(OpenReceived(self.peer_open))
            self._restart_hold(now)
        elif action is Action.SEND_KEEPALIVE:
            self._out += encode_keepalive()
            self.stats.messages_out += 1
            self._arm_send_hold(now)
        elif action is Action.START_KEEPALIVE_TIMER:
            self._restart_keepalive(now)
        elif action is Action.RESTART_HOLD_TIMER:
            self._restart_hold(now)
        elif action is Action.ESTABLISH:
            neg = self.negotiated
            assert neg is not None
            self._decoder = UpdateDecoder(
                four_octet=neg.four_octet,
                ebgp=p.ebgp,
                local_asn=p.local_asn,
                # A table's sets repeat in nearby UPDATEs (a set split over several messages):
                # a few thousand recent blocks get those hits; 200k would keep ~12 MiB of raw
                # blocks per session after the load, for a re-send the session never makes.
                cache_size=DECODER_CACHE,
                families=[int(a) for a in neg.afis],
                add_path_rx=[int(a) for a in neg.add_path_rx],
            )
            # RFC 8654: from now on the peer may send up to 65535 bytes (OPEN was at most 4096).
            self._framer.max_len = neg.max_message_len
            self._events.append(SessionEstablished(neg))
        elif action in (Action.DELIVER_UPDATE, Action.DELIVER_REFRESH, Action.DELIVER_NOTIFICATION):
            if payload is not None:
                self._events.append(payload)
        elif action is Action.SEND_NOTIFICATION:
            if tr.notification is not None:
                code, subcode, data = tr.notification[0], tr.notification[1], b""
            elif error is not None:
                code, subcode, data = error.code, error.subcode, error.data
            else:  # cannot happen with the table as written; be total anyway
                code, subcode, data = ErrCode.CEASE, 0, b""
            n_bit = self.negotiated is not None and self.negotiated.graceful_notification
            if n_bit and code == ErrCode.CEASE and subcode in HARD_CEASES:
                # RFC 8538 5: with the N bit, these must end the peer's copy of our routes too.
                code, subcode, data = ErrCode.CEASE, CeaseSub.HARD_RESET, bytes((code, subcode)) + data
            # Data echoing a whole message (RFC 7313 5, unrecognized attributes) is cut so the
            # NOTIFICATION itself stays within 4096 bytes, which any peer accepts.
            data = data[: MAX_MESSAGE_LEN - 21]
            self._out += encode_notification(code, subcode, data)
            self.stats.messages_out += 1
            self.stats.notifications_out += 1
            self._notif_sent = (int(code), int(subcode), data)
            if tr.fsm_error:
                reason = f"{reason}; sent NOTIFICATION: {describe_error(code, subcode)}"
        elif action is Action.CLOSE:
            self._hold_deadline = self._keepalive_deadline = self._send_hold_deadline = None
            self._decoder = None
            self._events.append(
                SessionClosed(
                    reason=reason or "closed",
                    notification_sent=self._notif_sent,
                    notification_received=self._notif_received,
                    graceful_notification=bool(self.negotiated and self.negotiated.graceful_notification),
                    offending=offending,
                )
            )
        # INITIATE_TCP / START_/STOP_CONNECT_RETRY belong to the session (no connection yet).

    def _restart_hold(self, now: float) -> None:
        neg = self.negotiated
        if neg is not None:
            self._hold_deadline = now + neg.hold_time if neg.hold_time else None

    def _arm_send_hold(self, now: float) -> None:
        """Output was queued: from now on it must make progress within the send hold time."""
        if self._send_hold_deadline is None and self.state is State.ESTABLISHED:
            sh = self.send_hold_time
            self._send_hold_deadline = now + sh if sh else None

    def _restart_keepalive(self, now: float) -> None:
        neg = self.negotiated
        if neg is not None:
            self._keepalive_deadline = now + neg.keepalive if neg.keepalive else None

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events
