"""RFC 9687 send hold timer in the sans-IO connection, with a fake clock.

The owner (bgpd/session.py) reports at each timer how many of our bytes the peer has taken and
whether any still wait; a count that does not move for the send hold time ends the session
with NOTIFICATION 8 ("Send Hold Timer Expired"), however many KEEPALIVEs the peer sends.
"""

from __future__ import annotations

from bgpd.connection import SEND_HOLD_MIN, BgpConnection, SessionClosed
from bgpd.fsm import State
from bgpd.wire import Notification, encode_keepalive
from bgpd.wire.messages import Keepalive

from .util import T0, established, peer_open, sent


def run(conn: BgpConnection, until: float, taken: list[int] | None, waiting: bool = True) -> list[object]:
    """Drive the timers to ``until`` with the peer sending a KEEPALIVE every second (its hold
    timer never runs out); ``taken`` (None: not reported) grows by one byte per tick when it
    has two elements [count, step]."""
    events: list[object] = []
    t = T0
    while t < until and not conn.closed:
        t = min(until, t + 1.0)
        events += conn.receive_data(encode_keepalive(), t)
        output = None
        if taken is not None:
            taken[0] += taken[1]
            output = (taken[0], waiting)
        events += conn.handle_timer(t, output=output)
    return events


def notifications(conn: BgpConnection) -> list[tuple[int, int]]:
    return [(m.code, m.subcode) for _t, m in sent(conn) if isinstance(m, Notification)]


def test_default_send_hold_time_is_rfc_9687s() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9)
    assert conn.send_hold_time == SEND_HOLD_MIN == 480  # max(8 min, 2 x 9 s)
    conn, _ = established(open_msg=peer_open(hold=300), hold_time=300)
    assert conn.send_hold_time == 600  # max(8 min, 2 x 300 s)
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9, send_hold_time=30)
    assert conn.send_hold_time == 30


def test_a_peer_that_takes_nothing_gets_notification_8() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9, send_hold_time=20)
    # Our first KEEPALIVE (at T0 + 3) arms it; the peer's KEEPALIVEs keep its hold timer alive
    # but nothing we queue is ever taken.
    events = run(conn, T0 + 24, [0, 0])
    closed = [e for e in events if isinstance(e, SessionClosed)]
    assert len(closed) == 1
    assert "send hold timer expired (20 s)" in closed[0].reason
    assert closed[0].notification_sent is not None and closed[0].notification_sent[:2] == (8, 0)
    assert conn.state is State.IDLE
    assert notifications(conn) == [(8, 0)]


def test_expiry_comes_at_the_send_hold_time_after_output_was_queued() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9, send_hold_time=20)
    run(conn, T0 + 3, [0, 0])  # our first KEEPALIVE at T0 + 3: the first byte that waits
    assert conn.next_deadline() == T0 + 6  # the next KEEPALIVE first...
    run(conn, T0 + 22, [0, 0])
    assert conn.state is State.ESTABLISHED  # ... still up 19 s after the first stalled byte
    events = run(conn, T0 + 23, [0, 0])
    assert any(isinstance(e, SessionClosed) for e in events)
    assert notifications(conn)[-1:] == [(8, 0)]


def test_progress_keeps_the_session() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9, send_hold_time=20)
    run(conn, T0 + 100, [0, 1])  # a slow reader: one byte a second
    assert conn.state is State.ESTABLISHED
    kinds = {type(m) for _t, m in sent(conn)}
    assert kinds == {Keepalive}


def test_nothing_waiting_stops_the_timer() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9, send_hold_time=20)
    run(conn, T0 + 100, [0, 0], waiting=False)  # everything we queued was taken
    assert conn.state is State.ESTABLISHED


def test_zero_turns_it_off() -> None:
    conn, _ = established(open_msg=peer_open(hold=9), hold_time=9, send_hold_time=0)
    run(conn, T0 + 1000, [0, 0])
    assert conn.state is State.ESTABLISHED
