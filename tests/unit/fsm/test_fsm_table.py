"""The FSM table: every row, and every pair the table does not know."""

from __future__ import annotations

import itertools

import pytest

from bgpd.fsm import TABLE, Action, FsmEvent, State, Transition, fsm_error_subcode, step

S, E, A = State, FsmEvent, Action

# Every row of the table with its expected next state: a row added or removed must show up here.
EXPECTED_NEXT: dict[tuple[State, FsmEvent], State] = {
    (S.IDLE, E.MANUAL_START): S.CONNECT,
    (S.IDLE, E.MANUAL_START_PASSIVE): S.ACTIVE,
    (S.IDLE, E.MANUAL_STOP): S.IDLE,
    (S.CONNECT, E.MANUAL_STOP): S.IDLE,
    (S.CONNECT, E.CONNECT_RETRY_EXPIRES): S.CONNECT,
    (S.CONNECT, E.TCP_CONNECTION_CONFIRMED): S.OPENSENT,
    (S.CONNECT, E.TCP_CONNECTION_FAILS): S.ACTIVE,
    (S.ACTIVE, E.MANUAL_STOP): S.IDLE,
    (S.ACTIVE, E.CONNECT_RETRY_EXPIRES): S.CONNECT,
    (S.ACTIVE, E.TCP_CONNECTION_CONFIRMED): S.OPENSENT,
    (S.ACTIVE, E.TCP_CONNECTION_FAILS): S.ACTIVE,
    (S.OPENSENT, E.BGP_OPEN): S.OPENCONFIRM,
    (S.OPENCONFIRM, E.KEEPALIVE_MSG): S.ESTABLISHED,
    (S.OPENCONFIRM, E.KEEPALIVE_TIMER_EXPIRES): S.OPENCONFIRM,
    (S.ESTABLISHED, E.KEEPALIVE_MSG): S.ESTABLISHED,
    (S.ESTABLISHED, E.UPDATE_MSG): S.ESTABLISHED,
    (S.ESTABLISHED, E.ROUTE_REFRESH_MSG): S.ESTABLISHED,
    (S.ESTABLISHED, E.KEEPALIVE_TIMER_EXPIRES): S.ESTABLISHED,
    (S.ESTABLISHED, E.UPDATE_MSG_ERR): S.IDLE,
    (S.ESTABLISHED, E.ROUTE_REFRESH_MSG_ERR): S.IDLE,
}
for _st in (S.OPENSENT, S.OPENCONFIRM, S.ESTABLISHED):
    for _ev in (
        E.MANUAL_STOP,
        E.OPEN_COLLISION_DUMP,
        E.HOLD_TIMER_EXPIRES,
        E.BGP_HEADER_ERR,
        E.BGP_OPEN_MSG_ERR,
        E.NOTIF_MSG,
        E.TCP_CONNECTION_FAILS,
    ):
        EXPECTED_NEXT[(_st, _ev)] = S.IDLE

ALL_PAIRS = list(itertools.product(State, FsmEvent))
UNKNOWN = [p for p in ALL_PAIRS if p not in TABLE]


def test_state_display_values() -> None:
    assert [str(s) for s in State] == ["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"]


def test_table_rows_are_exactly_the_expected_ones() -> None:
    assert set(TABLE) == set(EXPECTED_NEXT)


def _row_key(pair: tuple[State, FsmEvent]) -> tuple[str, str]:
    return pair[0].value, pair[1].value


ROWS: list[tuple[State, FsmEvent]] = sorted(EXPECTED_NEXT, key=_row_key)


@pytest.mark.parametrize(("state", "event"), ROWS)
def test_every_row(state: State, event: FsmEvent) -> None:
    tr = step(state, event)
    assert tr is TABLE[(state, event)]
    assert not tr.fsm_error
    assert tr.next_state is EXPECTED_NEXT[(state, event)]
    # Leaving a BGP conversation always releases the connection; staying never does.
    if state in (S.OPENSENT, S.OPENCONFIRM, S.ESTABLISHED):
        assert (A.CLOSE in tr.actions) == (tr.next_state is S.IDLE)
    # A NOTIFICATION is sent only where there is a peer to send it to, and never in answer to one.
    if A.SEND_NOTIFICATION in tr.actions:
        assert state in (S.OPENSENT, S.OPENCONFIRM, S.ESTABLISHED)
        assert event not in (E.NOTIF_MSG, E.TCP_CONNECTION_FAILS)


def test_key_actions() -> None:
    assert step(S.IDLE, E.MANUAL_START).actions == (A.START_CONNECT_RETRY, A.INITIATE_TCP)
    assert step(S.CONNECT, E.TCP_CONNECTION_CONFIRMED).actions == (
        A.STOP_CONNECT_RETRY,
        A.SEND_OPEN,
        A.START_OPEN_HOLD_TIMER,
    )
    assert step(S.OPENSENT, E.BGP_OPEN).actions == (A.ACCEPT_OPEN, A.SEND_KEEPALIVE, A.START_KEEPALIVE_TIMER)
    assert step(S.OPENCONFIRM, E.KEEPALIVE_MSG).actions == (A.RESTART_HOLD_TIMER, A.ESTABLISH)
    assert step(S.ESTABLISHED, E.UPDATE_MSG).actions == (A.RESTART_HOLD_TIMER, A.DELIVER_UPDATE)
    for st in (S.OPENSENT, S.OPENCONFIRM, S.ESTABLISHED):
        hold = step(st, E.HOLD_TIMER_EXPIRES)
        assert hold.notification == (4, 0)
        assert hold.actions == (A.SEND_NOTIFICATION, A.CLOSE)
        assert step(st, E.NOTIF_MSG).actions == (A.DELIVER_NOTIFICATION, A.CLOSE)
        assert step(st, E.TCP_CONNECTION_FAILS).actions == (A.CLOSE,)


@pytest.mark.parametrize(("state", "event"), UNKNOWN)
def test_unknown_pairs_are_fsm_errors(state: State, event: FsmEvent) -> None:
    tr = step(state, event)  # never raises
    assert isinstance(tr, Transition)
    assert tr.fsm_error
    if state is S.IDLE:
        assert tr == Transition(S.IDLE, (), None, True)  # ignored (RFC 4271 8.2.2)
    elif state in (S.CONNECT, S.ACTIVE):
        assert tr.next_state is S.IDLE
        assert A.CLOSE in tr.actions
        assert tr.notification is None
    else:
        assert tr.next_state is S.IDLE
        assert tr.actions == (A.SEND_NOTIFICATION, A.CLOSE)
        assert tr.notification == (5, {S.OPENSENT: 1, S.OPENCONFIRM: 2, S.ESTABLISHED: 3}[state])


def test_fsm_error_subcodes() -> None:
    assert [fsm_error_subcode(s) for s in State] == [0, 0, 0, 1, 2, 3]


def test_some_unknown_pairs_that_matter() -> None:
    # A KEEPALIVE before the OPEN, an UPDATE before Established, an OPEN twice.
    assert step(S.OPENSENT, E.KEEPALIVE_MSG).notification == (5, 1)
    assert step(S.OPENSENT, E.UPDATE_MSG).notification == (5, 1)
    assert step(S.OPENCONFIRM, E.UPDATE_MSG).notification == (5, 2)
    assert step(S.OPENCONFIRM, E.BGP_OPEN).notification == (5, 2)
    assert step(S.ESTABLISHED, E.BGP_OPEN).notification == (5, 3)
