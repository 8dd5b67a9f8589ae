"""UPDATE packing is bounded per loop turn and shared round robin between peers.

Two peers that read as fast as we write (their output queue is always empty) get a 60k table
each: no loop turn packs more than SEND_PER_TURN changes for a peer, both peers are served from
the first turn on (neither waits for the other's whole table), other callbacks run between the
turns, and in the end each peer got every route exactly once, then End-of-RIB. The same holds
on a machine so slow that one batch outlasts the whole turn (a clock that jumps a second per
reading): the first peer cannot use up the turn, every waiting peer gets a batch each turn.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import types
from pathlib import Path

import pytest

from bgpd import daemon as daemon_mod
from bgpd.config.toml import load_config
from bgpd.daemon import Daemon
from bgpd.wire import MessageFramer, UpdateDecoder, UpdateEncoder
from rib.attrs import PathAttrs, intern
from rib.prefix import Afi
from rib.route import Source, SourceKind

ROUTES = 60_000
PEERS = ("10.0.0.2", "10.0.0.3")


class FastSession:
    """Stands in for a PeerSession whose peer reads everything at once."""

    def __init__(self) -> None:
        self.turns: list[int] = []  # changes packed per _flush call, appended by the test
        self.msgs: list[bytes] = []
        self.output_backlog = 0

    def send_updates(self, msgs: list[bytes]) -> bool:
        self.msgs.extend(msgs)
        return True

    def notify_when_drained(self) -> None:
        raise AssertionError("never at the cap: the queue is always empty")


def make_daemon(tmp_path: Path) -> Daemon:
    conf = tmp_path / "bgpd.toml"
    neighbors = "".join(
        f'\n[[neighbor]]\naddress = "{a}"\nasn = 65020\nimport = "none"\nexport = "all"\n' for a in PEERS
    )
    conf.write_text(
        f"""
[router]
asn = 65010
router_id = "10.0.0.1"

[control]
socket = "{tmp_path}/bgpd.sock"

[kernel]
enabled = false
{neighbors}"""
    )
    d = Daemon(load_config(str(conf)))
    for i in range(ROUTES):
        key = bytes([32]) + ((10 << 24) + i).to_bytes(4, "big")
        # 1,000 attribute sets, so UPDATEs carry many prefixes as a real table's do.
        d.rib.originate("main", Afi.IPV4, key, intern(PathAttrs(med=i % 1000)), 0.0)
    return d


def announced(msgs: list[bytes]) -> tuple[list[bytes], int]:
    dec = UpdateDecoder(four_octet=True, ebgp=True, local_asn=65020, families=[1])
    keys: list[bytes] = []
    eor = 0
    for _t, body in MessageFramer().feed(b"".join(msgs)):
        upd = dec.decode(body)
        if upd.end_of_rib is not None:
            eor += 1
        keys.extend(k for _f, _a, ks in upd.announce for k in ks)
    return keys, eor


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow-machine"])
async def test_packing_is_bounded_per_turn_and_round_robin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: bool
) -> None:
    d = make_daemon(tmp_path)
    if slow:
        ticks = itertools.count(0.0, 1.0)
        monkeypatch.setattr(daemon_mod, "time", types.SimpleNamespace(monotonic=lambda: next(ticks)))
    sessions: dict[str, FastSession] = {}
    for i, addr in enumerate(PEERS):
        peer = d.peers.get(addr)
        if peer is None:  # the peers are made by start(): make them the same way
            ncfg = next(n for n in d.config.neighbors if n.key == addr)
            peer = d.peers[addr] = d._make_peer(ncfg)
        fake = sessions[addr] = FastSession()
        peer.session = fake  # type: ignore[assignment]
        peer.encoder = UpdateEncoder(four_octet=True)
        src = Source(SourceKind.EBGP, ipaddress.ip_address(addr), 65020, i + 2, addr)
        peer.channel.local_addrs = {Afi.IPV4: ipaddress.ip_address("10.0.0.1")}
        assert d.rib.channel_up(peer.channel, src, [Afi.IPV4])  # the whole dump at once
        d.rib.dirty.add(peer.channel)

    per_turn: list[dict[str, int]] = []
    other_callbacks = 0
    flush = d._flush

    def counted_flush() -> None:
        before = {a: len(s.msgs) for a, s in sessions.items()}
        flush()
        counts = {a: len(announced(s.msgs[before[a] :])[0]) for a, s in sessions.items()}
        per_turn.append(counts)

    d._flush = counted_flush  # type: ignore[method-assign]

    async def ticker() -> None:
        nonlocal other_callbacks
        while any(ch.has_pending() for ch in (d.peers[a].channel for a in PEERS)):
            other_callbacks += 1
            await asyncio.sleep(0)

    d._schedule_flush()
    await asyncio.wait_for(ticker(), 60)
    await asyncio.sleep(0)
    assert all(max(t.values()) <= daemon_mod.SEND_PER_TURN for t in per_turn), per_turn
    assert len(per_turn) >= ROUTES // daemon_mod.SEND_PER_TURN
    assert all(n > 0 for n in per_turn[0].values()), per_turn[0]  # both served in the first turn
    if slow:  # every turn served both (until one is done) with one batch each
        assert all(min(t.values()) > 0 for t in per_turn[:-2]), per_turn
    assert other_callbacks >= len(per_turn) - 1  # the loop turned between the slices
    for addr, s in sessions.items():
        keys, eor = announced(s.msgs)
        assert len(keys) == len(set(keys)) == ROUTES, addr
        assert eor == 1, addr
