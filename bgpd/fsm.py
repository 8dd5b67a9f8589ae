"""The BGP finite state machine (RFC 4271 section 8) as data.

``TABLE`` maps (state, event) to a ``Transition``: the next state and the actions to run, in
order. Interpreting the actions is left to the caller: ``bgpd.connection`` runs the part of a
single TCP connection (Connect/Active -> OpenSent -> OpenConfirm -> Established -> Idle) and
``bgpd.session`` the part before a connection exists (Idle -> Connect <-> Active).

Simplifications (documented so the table can be read against the RFC):

* No DelayOpen, no peer-oscillation damping, no optional session attributes (8.1.1): the
  optional events that only exist for them are left out.
* A connection that ends always goes to Idle; reconnecting (Connect/Active with the connect
  retry timer and back-off) is the session's business, not the connection's.
* A failed TCP connect in Connect goes to Active (retry timer running, inbound connections
  accepted) rather than Idle + automatic restart: the observable behaviour is the same.
* An OPEN in OpenConfirm or Established is an FSM error here; connection collisions are
  detected by the session, which owns both connections, and it closes the loser with
  ``OPEN_COLLISION_DUMP``.
* ROUTE-REFRESH (RFC 2918) has no event number in RFC 4271; it is handled like an UPDATE.

A (state, event) pair missing from the table is an FSM error (``step`` never raises): from
OpenSent, OpenConfirm and Established it sends NOTIFICATION 5 with the RFC 6608 subcode of the
state and goes to Idle; in Connect/Active it drops the connection (no BGP conversation exists
yet to send a NOTIFICATION on); in Idle the event is ignored, as RFC 4271 8.2.2 says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bgpd.wire.errors import ErrCode, FsmSub


class State(Enum):
    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPENSENT = "OpenSent"
    OPENCONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"

    def __str__(self) -> str:
        return self.value


class FsmEvent(Enum):
    """Inputs of the FSM; the RFC 4271 8.1 event number is in the comment."""

    MANUAL_START = "ManualStart"  # 1
    MANUAL_STOP = "ManualStop"  # 2
    MANUAL_START_PASSIVE = "ManualStart_with_PassiveTcpEstablishment"  # 4
    CONNECT_RETRY_EXPIRES = "ConnectRetryTimer_Expires"  # 9
    HOLD_TIMER_EXPIRES = "HoldTimer_Expires"  # 10
    KEEPALIVE_TIMER_EXPIRES = "KeepaliveTimer_Expires"  # 11
    TCP_CONNECTION_CONFIRMED = "TcpConnectionConfirmed"  # 16/17 (our connect or an accept)
    TCP_CONNECTION_FAILS = "TcpConnectionFails"  # 18
    BGP_OPEN = "BGPOpen"  # 19 (an OPEN that passed every check)
    BGP_HEADER_ERR = "BGPHeaderErr"  # 21
    BGP_OPEN_MSG_ERR = "BGPOpenMsgErr"  # 22
    OPEN_COLLISION_DUMP = "OpenCollisionDump"  # 23
    NOTIF_MSG = "NotifMsg"  # 24/25 (version errors need no special treatment without DelayOpen)
    KEEPALIVE_MSG = "KeepAliveMsg"  # 26
    UPDATE_MSG = "UpdateMsg"  # 27
    UPDATE_MSG_ERR = "UpdateMsgErr"  # 28
    ROUTE_REFRESH_MSG = "RouteRefreshMsg"  # RFC 2918
    ROUTE_REFRESH_MSG_ERR = "RouteRefreshMsgErr"  # RFC 7313 5: a malformed ROUTE-REFRESH


class Action(Enum):
    # session level (no connection yet)
    INITIATE_TCP = "initiate TCP connection"
    START_CONNECT_RETRY = "start ConnectRetryTimer"
    STOP_CONNECT_RETRY = "stop ConnectRetryTimer"
    # connection level
    SEND_OPEN = "send OPEN"
    START_OPEN_HOLD_TIMER = "start HoldTimer (large value, OpenSent)"
    ACCEPT_OPEN = "record peer OPEN, negotiate, set HoldTimer"  # also restarts the hold timer
    SEND_KEEPALIVE = "send KEEPALIVE"
    START_KEEPALIVE_TIMER = "(re)start KeepaliveTimer"
    RESTART_HOLD_TIMER = "restart HoldTimer"
    ESTABLISH = "session established"
    DELIVER_UPDATE = "deliver UPDATE"
    DELIVER_REFRESH = "deliver ROUTE-REFRESH"
    DELIVER_NOTIFICATION = "deliver NOTIFICATION"
    SEND_NOTIFICATION = "send NOTIFICATION"  # code from Transition.notification or the event's error
    CLOSE = "release resources, drop TCP connection"


@dataclass(frozen=True, slots=True)
class Transition:
    next_state: State
    actions: tuple[Action, ...] = ()
    # A fixed NOTIFICATION (code, subcode) for SEND_NOTIFICATION; None = the error the event carried.
    notification: tuple[int, int] | None = None
    fsm_error: bool = False  # synthesized by ``step`` for a pair the table does not know


S = State
E = FsmEvent
A = Action

_OPEN_STATES = (S.OPENSENT, S.OPENCONFIRM, S.ESTABLISHED)
_SEND_AND_CLOSE = (A.SEND_NOTIFICATION, A.CLOSE)
_CONNECTED = Transition(S.OPENSENT, (A.STOP_CONNECT_RETRY, A.SEND_OPEN, A.START_OPEN_HOLD_TIMER))

TABLE: dict[tuple[State, FsmEvent], Transition] = {
    # Idle: only a start leaves it; everything else is ignored (8.2.2).
    (S.IDLE, E.MANUAL_START): Transition(S.CONNECT, (A.START_CONNECT_RETRY, A.INITIATE_TCP)),
    (S.IDLE, E.MANUAL_START_PASSIVE): Transition(S.ACTIVE),
    (S.IDLE, E.MANUAL_STOP): Transition(S.IDLE),
    # Connect: our TCP connect is in progress.
    (S.CONNECT, E.MANUAL_STOP): Transition(S.IDLE, (A.STOP_CONNECT_RETRY, A.CLOSE)),
    (S.CONNECT, E.CONNECT_RETRY_EXPIRES): Transition(
        S.CONNECT, (A.CLOSE, A.START_CONNECT_RETRY, A.INITIATE_TCP)
    ),
    (S.CONNECT, E.TCP_CONNECTION_CONFIRMED): _CONNECTED,
    (S.CONNECT, E.TCP_CONNECTION_FAILS): Transition(S.ACTIVE, (A.START_CONNECT_RETRY,)),
    # Active: waiting for the retry timer, accepting inbound connections.
    (S.ACTIVE, E.MANUAL_STOP): Transition(S.IDLE, (A.STOP_CONNECT_RETRY, A.CLOSE)),
    (S.ACTIVE, E.CONNECT_RETRY_EXPIRES): Transition(S.CONNECT, (A.START_CONNECT_RETRY, A.INITIATE_TCP)),
    (S.ACTIVE, E.TCP_CONNECTION_CONFIRMED): _CONNECTED,
    (S.ACTIVE, E.TCP_CONNECTION_FAILS): Transition(S.ACTIVE, (A.START_CONNECT_RETRY,)),
    # OpenSent: our OPEN is out, waiting for theirs.
    (S.OPENSENT, E.BGP_OPEN): Transition(
        S.OPENCONFIRM, (A.ACCEPT_OPEN, A.SEND_KEEPALIVE, A.START_KEEPALIVE_TIMER)
    ),
    # OpenConfirm: both OPENs exchanged, waiting for the first KEEPALIVE.
    (S.OPENCONFIRM, E.KEEPALIVE_MSG): Transition(S.ESTABLISHED, (A.RESTART_HOLD_TIMER, A.ESTABLISH)),
    (S.OPENCONFIRM, E.KEEPALIVE_TIMER_EXPIRES): Transition(
        S.OPENCONFIRM, (A.SEND_KEEPALIVE, A.START_KEEPALIVE_TIMER)
    ),
    # Established
    (S.ESTABLISHED, E.KEEPALIVE_MSG): Transition(S.ESTABLISHED, (A.RESTART_HOLD_TIMER,)),
    (S.ESTABLISHED, E.UPDATE_MSG): Transition(S.ESTABLISHED, (A.RESTART_HOLD_TIMER, A.DELIVER_UPDATE)),
    (S.ESTABLISHED, E.ROUTE_REFRESH_MSG): Transition(
        S.ESTABLISHED, (A.RESTART_HOLD_TIMER, A.DELIVER_REFRESH)
    ),
    (S.ESTABLISHED, E.KEEPALIVE_TIMER_EXPIRES): Transition(
        S.ESTABLISHED, (A.SEND_KEEPALIVE, A.START_KEEPALIVE_TIMER)
    ),
    (S.ESTABLISHED, E.UPDATE_MSG_ERR): Transition(S.IDLE, _SEND_AND_CLOSE),
    (S.ESTABLISHED, E.ROUTE_REFRESH_MSG_ERR): Transition(S.IDLE, _SEND_AND_CLOSE),
}

# Rows shared by every state with a BGP conversation.
for _st in _OPEN_STATES:
    TABLE[(_st, E.MANUAL_STOP)] = Transition(S.IDLE, _SEND_AND_CLOSE)
    TABLE[(_st, E.OPEN_COLLISION_DUMP)] = Transition(S.IDLE, _SEND_AND_CLOSE)
    TABLE[(_st, E.HOLD_TIMER_EXPIRES)] = Transition(
        S.IDLE, _SEND_AND_CLOSE, notification=(ErrCode.HOLD_TIMER_EXPIRED, 0)
    )
    TABLE[(_st, E.BGP_HEADER_ERR)] = Transition(S.IDLE, _SEND_AND_CLOSE)
    TABLE[(_st, E.BGP_OPEN_MSG_ERR)] = Transition(S.IDLE, _SEND_AND_CLOSE)
    # Never answer a NOTIFICATION with one (RFC 4271 6.4 last paragraph)...
    TABLE[(_st, E.NOTIF_MSG)] = Transition(S.IDLE, (A.DELIVER_NOTIFICATION, A.CLOSE))
    # ... nor a lost connection.
    TABLE[(_st, E.TCP_CONNECTION_FAILS)] = Transition(S.IDLE, (A.CLOSE,))
del _st

_FSM_SUBCODE = {
    S.OPENSENT: FsmSub.UNEXPECTED_IN_OPENSENT,
    S.OPENCONFIRM: FsmSub.UNEXPECTED_IN_OPENCONFIRM,
    S.ESTABLISHED: FsmSub.UNEXPECTED_IN_ESTABLISHED,
}


def fsm_error_subcode(state: State) -> int:
    """RFC 6608 subcode for an unexpected event in ``state`` (0 = unspecific)."""
    return int(_FSM_SUBCODE.get(state, FsmSub.UNSPECIFIED))


def step(state: State, event: FsmEvent) -> Transition:
    """The transition for ``event`` in ``state``; unknown pairs become FSM errors (see module doc)."""
    tr = TABLE.get((state, event))
    if tr is not None:
        return tr
    if state is S.IDLE:
        return Transition(S.IDLE, fsm_error=True)
    if state in (S.CONNECT, S.ACTIVE):
        return Transition(S.IDLE, (A.STOP_CONNECT_RETRY, A.CLOSE), fsm_error=True)
    return Transition(
        S.IDLE,
        _SEND_AND_CLOSE,
        notification=(ErrCode.FSM, fsm_error_subcode(state)),
        fsm_error=True,
    )
