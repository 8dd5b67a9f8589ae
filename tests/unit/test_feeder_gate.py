"""The feeder's input gate: a connection whose session's gate is closed gets no more of its
bytes until the gate opens, while connections behind another gate (or none) go on; a
connection closed meanwhile is let go at once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bgpd import session as session_mod
from bgpd.session import _Feeder


class Gate:
    def __init__(self) -> None:
        self.blocked = False
        self.fut: asyncio.Future[None] | None = None
        self.asked = 0

    def input_blocked(self) -> bool:
        self.asked += 1
        return self.blocked

    def when_input_open(self) -> asyncio.Future[None] | None:
        if not self.blocked:
            return None
        if self.fut is None or self.fut.done():
            self.fut = asyncio.get_running_loop().create_future()
        return self.fut

    def open(self) -> None:
        self.blocked = False
        if self.fut is not None and not self.fut.done():
            self.fut.set_result(None)


def link(gate: Gate | None, pieces: int) -> Any:
    """A connection with ``pieces`` pieces of input; its session counts what it was fed."""
    lk: Any = SimpleNamespace(finished=False, drained=asyncio.Event(), fed=0, inbox=b"x", inbox_pos=0)

    def feed_piece(_link: Any) -> bool:
        if lk.finished:
            return False
        lk.fed += 1
        return lk.fed < pieces

    lk.session = SimpleNamespace(input_gate=gate, _feed_piece=feed_piece)
    return lk


async def test_a_closed_gate_holds_its_connections_only() -> None:
    feeder = _Feeder()
    ours, other = Gate(), Gate()
    a, b, c = link(ours, 5), link(ours, 5), link(other, 5)
    d = link(None, 5)  # no gate (kernel writes off)
    ours.blocked = True
    for lk in (a, b, c, d):
        feeder.submit(lk)
    await asyncio.wait_for(asyncio.gather(c.drained.wait(), d.drained.wait()), 5)
    assert (a.fed, b.fed, c.fed, d.fed) == (0, 0, 5, 5)
    assert not a.drained.is_set() and not b.drained.is_set()
    ours.open()
    await asyncio.wait_for(asyncio.gather(a.drained.wait(), b.drained.wait()), 5)
    assert (a.fed, b.fed) == (5, 5)
    assert not feeder.held


async def test_the_gate_is_asked_before_every_piece() -> None:
    feeder = _Feeder()
    gate = Gate()
    lk = link(gate, 1000)
    feed = lk.session._feed_piece

    def feed_and_close(lk_: Any) -> bool:  # the 10th piece fills the kernel's queue
        more: bool = feed(lk_)
        if lk.fed == 10:
            gate.blocked = True
        return more

    lk.session._feed_piece = feed_and_close
    feeder.submit(lk)
    await asyncio.sleep(0.05)
    assert lk.fed == 10  # not one piece more while closed, though all fit in one round
    gate.open()
    await asyncio.wait_for(lk.drained.wait(), 5)
    assert lk.fed == 1000


def held(monkeypatch: Any, pieces: int) -> tuple[_Feeder, Gate, Any]:
    """A feeder holding one connection of ``pieces`` pieces at a closed gate (polled often)."""
    monkeypatch.setattr(session_mod, "GATE_POLL", 0.02)
    feeder = _Feeder()
    gate = Gate()
    gate.blocked = True
    lk = link(gate, pieces)
    feeder.submit(lk)
    return feeder, gate, lk


async def test_a_connection_closed_while_held_is_let_go(monkeypatch: Any) -> None:
    feeder, gate, lk = held(monkeypatch, 5)
    await asyncio.sleep(0.01)
    lk.finished = True
    await asyncio.wait_for(lk.drained.wait(), 1)  # the gate is still closed
    assert lk.fed == 0 and lk.inbox == b""
    gate.open()
    await asyncio.sleep(0.05)
    assert not feeder.held


async def test_a_gate_that_opens_without_word_is_noticed(monkeypatch: Any) -> None:
    """The writer may be gone without resolving its future: the feeder asks again anyway."""
    _feeder, gate, lk = held(monkeypatch, 3)
    await asyncio.sleep(0.05)
    gate.blocked = False  # no future resolved
    await asyncio.wait_for(lk.drained.wait(), 1)
    assert lk.fed == 3
