"""Property tests: encode -> frame -> decode gives back what went in."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bgpd.wire import AS_TRANS, MessageFramer, Update, UpdateDecoder, UpdateEncoder, decode_message
from bgpd.wire.attrs import ATTR_NAMES
from rib.attrs import PathAttrs, SegType, intern
from rib.prefix import Afi, PrefixKey, make_key

u32 = st.integers(0, 0xFFFFFFFF)
asn = st.integers(1, 0xFFFFFFFF)
small_asn = st.integers(1, 0xFFFF)
ipv4_str = st.builds(lambda n: str(IPv4Address(n)), u32)
# Next hops that pass the decoder's sanity check (unicast host addresses).
nh4 = st.builds(IPv4Address, st.integers(0x01000000, 0xDFFFFFFF)).filter(lambda a: a.packed[0] != 127)
nh6 = st.builds(lambda n: IPv6Address((0x2001_0DB8 << 96) | n), st.integers(1, (1 << 96) - 1))
ll6 = st.builds(lambda n: IPv6Address((0xFE80 << 112) | n), st.integers(1, (1 << 64) - 1))
UNKNOWN_CODES = [c for c in range(19, 256) if c not in ATTR_NAMES]


def segments(four_octet: bool, confed: bool) -> st.SearchStrategy[tuple[tuple[int, tuple[int, ...]], ...]]:
    body = st.lists(
        st.tuples(
            st.sampled_from([SegType.AS_SEQUENCE, SegType.AS_SET]), st.lists(asn, min_size=1, max_size=12)
        ),
        max_size=4,
    )
    # Confederation segments lead the path; with 2-octet peers their members must fit 16 bits
    # (RFC 6793 keeps them out of AS4_PATH).
    lead = st.lists(
        st.tuples(
            st.sampled_from([SegType.AS_CONFED_SEQUENCE, SegType.AS_CONFED_SET]),
            st.lists(asn if four_octet else small_asn, min_size=1, max_size=5),
        ),
        max_size=2 if confed else 0,
    )
    return st.builds(
        lambda a, b: tuple((int(t), tuple(x)) for t, x in a + b),
        lead,
        body,
    )


@st.composite
def path_attrs(draw: st.DrawFn, afi: Afi, four_octet: bool, ibgp: bool) -> PathAttrs:
    unknown_codes = draw(st.lists(st.sampled_from(UNKNOWN_CODES), unique=True, max_size=3))
    unknown = tuple(sorted((0xE0, c, draw(st.binary(max_size=300))) for c in unknown_codes))
    if afi is Afi.IPV4:
        next_hop, ll = draw(nh4), None
    else:
        next_hop, ll = draw(nh6), draw(st.none() | ll6)
    aggregator = draw(st.none() | st.tuples(asn, ipv4_str))
    attrs = PathAttrs(
        origin=draw(st.integers(0, 2)),
        as_path=draw(segments(four_octet, confed=ibgp)),
        next_hop=next_hop,
        next_hop_ll=ll,
        med=draw(st.none() | u32),
        local_pref=draw(st.none() | u32) if ibgp else None,
        atomic_aggregate=draw(st.booleans()),
        aggregator=aggregator,
        communities=tuple(draw(st.lists(u32, max_size=70))),
        ext_communities=tuple(draw(st.lists(st.binary(min_size=8, max_size=8), max_size=5))),
        large_communities=tuple(draw(st.lists(st.tuples(u32, u32, u32), max_size=25))),
        originator_id=draw(st.none() | ipv4_str) if ibgp else None,
        cluster_list=tuple(draw(st.lists(ipv4_str, max_size=4))) if ibgp else (),
        unknown=unknown,
    )
    if not four_octet:
        # RFC 6793 4.2.3: an AGGREGATOR that is not AS_TRANS makes the receiver drop AS4_PATH,
        # so a path needing AS4_PATH cannot survive next to a 16-bit aggregator.
        big = any(a > 0xFFFF for _t, asns in attrs.as_path for a in asns)
        assume(not (big and aggregator is not None and aggregator[0] <= 0xFFFF and aggregator[0] != AS_TRANS))
    return attrs


def prefix_keys(afi: Afi) -> st.SearchStrategy[list[PrefixKey]]:
    width = afi.addr_len
    key = st.builds(make_key, st.integers(0, afi.max_plen), st.binary(min_size=width, max_size=width))
    return st.lists(key, min_size=1, max_size=40)


def decode_all(messages: list[bytes], dec: UpdateDecoder) -> list[Update]:
    framer = MessageFramer()
    out = []
    for m in messages:
        assert len(m) <= 4096
        for t, b in framer.feed(m):
            msg = decode_message(t, b, dec)
            assert isinstance(msg, Update)
            out.append(msg)
    return out


CASES = [
    pytest.param(
        afi, four, ibgp, id=f"{afi.name_lower}-{'as4' if four else 'as2'}-{'ibgp' if ibgp else 'ebgp'}"
    )
    for afi in Afi
    for four in (True, False)
    for ibgp in (True, False)
]


@pytest.mark.parametrize(("afi", "four_octet", "ibgp"), CASES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_announce_round_trip(afi: Afi, four_octet: bool, ibgp: bool, data: st.DataObject) -> None:
    attrs = intern(data.draw(path_attrs(afi, four_octet, ibgp)))
    keys = data.draw(prefix_keys(afi))
    messages = UpdateEncoder(four_octet=four_octet).announce(afi, attrs, keys)
    updates = decode_all(messages, UpdateDecoder(four_octet=four_octet, ebgp=not ibgp))
    got_keys = []
    for upd in updates:
        assert upd.errors == [] and upd.withdraw == []
        ((got_afi, got_attrs, ks),) = upd.announce
        assert got_afi is afi
        assert got_attrs == attrs
        assert got_attrs is attrs  # interned
        got_keys.extend(ks)
    assert got_keys == keys


@pytest.mark.parametrize("afi", list(Afi))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_withdraw_round_trip(afi: Afi, data: st.DataObject) -> None:
    keys = data.draw(prefix_keys(afi))
    updates = decode_all(UpdateEncoder(four_octet=True).withdraw(afi, keys), UpdateDecoder(True, True))
    got = []
    for upd in updates:
        assert upd.announce == [] and upd.errors == []
        for a, ks in upd.withdraw:
            assert a is afi
            got.extend(ks)
    assert got == keys


@pytest.mark.parametrize("afi", list(Afi))
def test_many_prefixes_split_across_messages(afi: Afi) -> None:
    width = afi.addr_len
    keys = [make_key(afi.max_plen, i.to_bytes(width, "big")) for i in range(3000)]
    attrs = intern(
        PathAttrs(
            as_path=((2, (65001,)),),
            next_hop=IPv4Address("10.0.0.1") if afi is Afi.IPV4 else IPv6Address("2001:db8::1"),
            communities=tuple(range(200)),
        )
    )
    enc = UpdateEncoder(four_octet=True)
    messages = enc.announce(afi, attrs, iter(keys))  # any iterable
    assert len(messages) > 1
    assert all(len(m) <= 4096 for m in messages)
    # Packed: every message but the last is nearly full.
    assert all(len(m) > 4096 - afi.addr_len - 1 for m in messages[:-1])
    updates = decode_all(messages, UpdateDecoder(True, True))
    assert [k for u in updates for _a, _at, ks in u.announce for k in ks] == keys
    withdrawals = enc.withdraw(afi, keys)
    assert all(len(m) <= 4096 for m in withdrawals) and len(withdrawals) > 1
    updates = decode_all(withdrawals, UpdateDecoder(True, True))
    assert [k for u in updates for _a, ks in u.withdraw for k in ks] == keys


def test_max_len_extended_messages() -> None:
    keys = [make_key(32, i.to_bytes(4, "big")) for i in range(20000)]
    attrs = intern(PathAttrs(as_path=((2, (65001,)),), next_hop=IPv4Address("10.0.0.1")))
    messages = UpdateEncoder(four_octet=True, max_len=65535).announce(Afi.IPV4, attrs, keys)
    assert len(messages) == 2 and all(len(m) <= 65535 for m in messages)


def test_long_as_path_segments_are_split() -> None:
    path = ((2, tuple(range(1, 600))),)
    attrs = intern(PathAttrs(as_path=path, next_hop=IPv4Address("10.0.0.1")))
    (msg,) = UpdateEncoder(four_octet=True).announce(Afi.IPV4, attrs, [b"\x00"])
    (upd,) = decode_all([msg], UpdateDecoder(True, True))
    got = upd.announce[0][1].as_path
    assert [len(a) for _t, a in got] == [255, 255, 89]
    assert upd.announce[0][1].as_path_flat() == list(range(1, 600))


def test_two_octet_encoding_uses_as_trans_and_as4_path() -> None:
    attrs = intern(
        PathAttrs(
            as_path=((2, (65001, 4200000001, 65002)),),
            next_hop=IPv4Address("10.0.0.1"),
            aggregator=(4200000005, "10.0.0.9"),
        )
    )
    (msg,) = UpdateEncoder(four_octet=False).announce(Afi.IPV4, attrs, [b"\x00"])
    # An OLD speaker sees AS_TRANS in AS_PATH and AGGREGATOR.
    body = msg[19:]
    assert bytes.fromhex("40020802 03 fde9 5ba0 fdea") in body
    assert bytes.fromhex("c00706 5ba0 0a000009") in body
    assert bytes.fromhex("c0110e 0203 0000fde9 fa56ea01 0000fdea") in body
    assert bytes.fromhex("c01208 fa56ea05 0a000009") in body
    (upd,) = decode_all([msg], UpdateDecoder(four_octet=False, ebgp=True))
    assert upd.announce[0][1] is attrs


def test_unknown_attributes_are_written_in_type_order() -> None:
    attrs = intern(
        PathAttrs(
            as_path=((2, (65001,)),),
            next_hop=IPv4Address("10.0.0.1"),
            communities=(1,),
            large_communities=((1, 2, 3),),
            unknown=((0xE0, 20, b"a"), (0xE0, 40, b"b" * 300)),
        )
    )
    (msg,) = UpdateEncoder(four_octet=True).announce(Afi.IPV4, attrs, [b"\x00"])
    body = msg[23:-1]
    codes = []
    pos = 0
    while pos < len(body):
        flags, code = body[pos], body[pos + 1]
        if flags & 0x10:
            ln, pos = int.from_bytes(body[pos + 2 : pos + 4], "big"), pos + 4
        else:
            ln, pos = body[pos + 2], pos + 3
        codes.append((code, flags))
        pos += ln
    assert [c for c, _f in codes] == [1, 2, 3, 8, 20, 32, 40]
    assert dict(codes)[40] == 0xF0  # extended length for the 300-byte value


def test_encoder_cache_is_per_attrs() -> None:
    enc = UpdateEncoder(four_octet=True)
    a = intern(PathAttrs(as_path=((2, (65001,)),), next_hop=IPv4Address("10.0.0.1")))
    b = a.with_(med=5)
    m1 = enc.announce(Afi.IPV4, a, [b"\x00"])
    m2 = enc.announce(Afi.IPV4, b, [b"\x00"])
    assert m1 != m2
    assert enc.announce(Afi.IPV4, a, [b"\x00"]) == m1


def test_announce_needs_next_hop() -> None:
    attrs = intern(PathAttrs(as_path=((2, (65001,)),)))
    with pytest.raises(ValueError):
        UpdateEncoder(four_octet=True).announce(Afi.IPV4, attrs, [b"\x00"])
    with pytest.raises(ValueError):
        UpdateEncoder(four_octet=True).announce(Afi.IPV6, attrs, [b"\x00"])


def test_empty_announce_and_withdraw() -> None:
    attrs = intern(PathAttrs(as_path=((2, (65001,)),), next_hop=IPv4Address("10.0.0.1")))
    enc = UpdateEncoder(four_octet=True)
    assert enc.announce(Afi.IPV4, attrs, []) == []
    assert enc.withdraw(Afi.IPV6, []) == []


def test_ipv4_over_ipv6_next_hop_round_trip() -> None:
    attrs = intern(PathAttrs(as_path=((2, (65001,)),), next_hop=IPv6Address("2001:db8::5")))
    msgs = UpdateEncoder(four_octet=True).announce(Afi.IPV4, attrs, [b"\x08\x0a"])
    (upd,) = decode_all(msgs, UpdateDecoder(True, True))
    assert upd.announce == [(Afi.IPV4, attrs, [b"\x08\x0a"])]
