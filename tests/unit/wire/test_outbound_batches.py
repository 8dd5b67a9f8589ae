"""Packing a channel's pending changes in batches (output cap) and with ADD-PATH path ids."""

from __future__ import annotations

from bgpd.outbound import pack_pending, take_batch
from bgpd.wire import UpdateDecoder, UpdateEncoder
from bgpd.wire.framing import MessageFramer
from rib.channel import Channel, ChannelSettings
from rib.prefix import Afi
from tests.unit.rib.helpers import attrs, key

V4, V6 = Afi.IPV4, Afi.IPV6


def channel() -> Channel:
    return Channel(ChannelSettings("10.0.0.2", "main", 65000, 65000))


def test_take_batch_takes_the_oldest_and_end_of_rib_last() -> None:
    ch = channel()
    a = attrs(path=(), nh="10.0.0.1")
    ch.pending = {V4: {key(f"10.1.{i}.0/24"): a for i in range(5)}, V6: {key("2001:db8::/32"): None}}
    ch.eor_pending = {V4, V6}
    part, eor = take_batch(ch, 3)
    assert list(part) == [V4] and list(part[V4]) == [key(f"10.1.{i}.0/24") for i in range(3)]
    assert not eor and ch.has_pending()
    part, eor = take_batch(ch, 3)
    assert list(part[V4]) == [key("10.1.3.0/24"), key("10.1.4.0/24")] and part[V6] == {
        key("2001:db8::/32"): None
    }
    assert eor == {V4, V6}
    assert not ch.has_pending() and not ch.pending
    # A change that comes while a batch waits replaces the older one of its prefix.
    ch.pending = {V4: {key("10.1.0.0/24"): a, key("10.1.1.0/24"): a}}
    take_batch(ch, 1)
    ch.pending[V4][key("10.1.1.0/24")] = None
    part, _ = take_batch(ch, 10)
    assert part == {V4: {key("10.1.1.0/24"): None}}


def decode_all(msgs: list[bytes], add_path: bool) -> list[tuple[str, list[int], list[bytes]]]:
    dec = UpdateDecoder(True, False, add_path_rx=[int(V4)] if add_path else [])
    framer = MessageFramer()
    out = []
    for m in msgs:
        for _type, body in framer.feed(m):
            upd = dec.decode(body)
            for i, (_afi, _a, keys) in enumerate(upd.announce):
                out.append(("announce", upd.announce_path_ids[i] or [], keys))
            for i, (_afi, keys) in enumerate(upd.withdraw):
                out.append(("withdraw", upd.withdraw_path_ids[i] or [], keys))
    return out


def test_add_path_keys_go_out_as_path_id_and_prefix() -> None:
    a = attrs(path=(), nh="10.0.0.1", local_pref=100)
    p, q = key("10.77.0.0/24"), key("10.78.0.0/24")
    pending = {
        V4: {(7).to_bytes(4, "big") + p: a, (9).to_bytes(4, "big") + p: a, (7).to_bytes(4, "big") + q: None}
    }
    msgs = pack_pending(UpdateEncoder(True, add_path_tx=[int(V4)]), pending, set())  # type: ignore[arg-type]
    got = decode_all(msgs, add_path=True)
    assert ("withdraw", [7], [q]) in got
    assert ("announce", [7, 9], [p, p]) in got


def test_add_path_ipv6_goes_out_in_mp_reach_with_path_ids() -> None:
    a = attrs(path=(), nh="2001:db8::1", local_pref=100)
    p = key("2001:db8:77::/48")
    pending = {V6: {(3).to_bytes(4, "big") + p: a, (4).to_bytes(4, "big") + p: None}}
    msgs = pack_pending(UpdateEncoder(True, add_path_tx=[int(V6)]), pending, set())  # type: ignore[arg-type]
    dec = UpdateDecoder(True, False, add_path_rx=[int(V6)])
    got = []
    for m in msgs:
        for _type, body in MessageFramer().feed(m):
            upd = dec.decode(body)
            got += [
                ("a", ids, keys)
                for (_f, _a, keys), ids in zip(upd.announce, upd.announce_path_ids, strict=True)
            ]
            got += [
                ("w", ids, keys) for (_f, keys), ids in zip(upd.withdraw, upd.withdraw_path_ids, strict=True)
            ]
    assert sorted(got) == [("a", [3], [p]), ("w", [4], [p])]
