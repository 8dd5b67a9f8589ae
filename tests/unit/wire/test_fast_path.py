"""The decoder's fast path for common attribute blocks agrees with the general decoder.

``UpdateDecoder._decode_common`` handles the usual well-formed layout and returns None for
anything else; whenever it answers, the general decoder (``_decode_block``, with the RFC 7606
handling) must accept the same bytes without any remark and build the same interned set, for
valid and corrupted blocks alike.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgpd.wire import UpdateDecoder
from bgpd.wire.attrs import encode_attrs
from bgpd.wire.update import _Decoded
from rib.attrs import PathAttrs
from tests.unit.wire.build import as_path, attr, communities, mandatory, med, next_hop, origin

u32 = st.integers(0, 0xFFFFFFFF)
ipv4_str = st.builds(lambda n: str(IPv4Address(n)), u32)
nh4 = st.builds(IPv4Address, st.integers(0x01000000, 0xDFFFFFFF)).filter(lambda a: a.packed[0] != 127)


@st.composite
def common_attrs(draw: st.DrawFn, four_octet: bool, ibgp: bool) -> PathAttrs:
    """Attribute sets in the layouts the fast path is for (and some it declines)."""
    asn = st.integers(1, 0xFFFFFFFF if four_octet else 0xFFFF)
    return PathAttrs(
        origin=draw(st.integers(0, 2)),
        as_path=((2, tuple(draw(st.lists(asn, min_size=1, max_size=70)))),),
        next_hop=draw(nh4),
        med=draw(st.none() | u32),
        local_pref=draw(st.none() | u32) if ibgp else None,
        atomic_aggregate=draw(st.booleans()),
        aggregator=draw(st.none() | st.tuples(asn, ipv4_str)),
        communities=tuple(draw(st.lists(u32, max_size=70))),
        ext_communities=tuple(draw(st.lists(st.binary(min_size=8, max_size=8), max_size=4))),
        large_communities=tuple(draw(st.lists(st.tuples(u32, u32, u32), max_size=25))),
    )


def agree(raw: bytes, four_octet: bool, ebgp: bool) -> bool:
    """Check the two paths agree on ``raw``; True when the fast path answered."""
    dec = UpdateDecoder(four_octet=four_octet, ebgp=ebgp)
    fast = dec._decode_common(raw)
    if fast is None:
        return False
    full = dec._decode_block(raw, False, None)
    # The fast path answers only for blocks the general decoder accepts without any remark.
    assert full == _Decoded(fast, None, (), "", "", False)
    assert full.attrs is fast  # both interned
    return True


@settings(max_examples=300, deadline=None)
@given(st.data(), st.booleans(), st.booleans())
def test_fast_path_equals_general_decoder(data: st.DataObject, four_octet: bool, ibgp: bool) -> None:
    attrs = data.draw(common_attrs(four_octet, ibgp))
    raw = encode_attrs(attrs, four_octet, True)
    took = agree(raw, four_octet, not ibgp)
    if took:
        dec = UpdateDecoder(four_octet=four_octet, ebgp=not ibgp)
        assert dec._decode_common(raw) == attrs


@settings(max_examples=500, deadline=None)
@given(st.data(), st.booleans(), st.booleans())
def test_fast_path_on_corrupted_blocks(data: st.DataObject, four_octet: bool, ibgp: bool) -> None:
    attrs = data.draw(common_attrs(four_octet, ibgp))
    raw = bytearray(encode_attrs(attrs, four_octet, True))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    agree(bytes(raw[:cut]), four_octet, not ibgp)
    agree(bytes(raw), four_octet, not ibgp)


def test_fast_path_takes_the_usual_blocks() -> None:
    """So that the equivalence tests above cannot pass with a fast path that never answers."""
    assert agree(mandatory(3356, 65001) + med(10) + communities(1, 2), True, True)
    assert agree(mandatory(3356) + communities(0xFFFF029A), True, False)
    big = PathAttrs(
        as_path=((2, (174, 4200000123)),),
        next_hop=IPv4Address("192.0.2.7"),
        med=0,
        local_pref=200,
        atomic_aggregate=True,
        aggregator=(174, "10.0.0.1"),
        communities=(1, 2, 3),
        ext_communities=(b"\x00\x02\x00\x01\x00\x00\x00\x02",),
        large_communities=((65000, 1, 2),),
    )
    assert agree(encode_attrs(big, True, True), True, False)
    two = PathAttrs(as_path=((2, (65001, 65002)),), next_hop=IPv4Address("192.0.2.7"), med=5)
    assert agree(encode_attrs(two, False, True), False, True)


@pytest.mark.parametrize(
    ("raw", "ebgp"),
    [
        # Repeated and out-of-order attributes: the general decoder reports them.
        (mandatory() + med(1) + med(2), True),
        (mandatory() + communities(1) + med(2), True),
        # LOCAL_PREF from an eBGP peer is discarded with an error entry.
        (mandatory() + attr(0x40, 5, struct.pack(">I", 100)), True),
        # Partial bit, Extended Length bit: valid, but not the canonical flags.
        (mandatory() + attr(0xE0, 8, struct.pack(">I", 1)), True),
        (mandatory() + attr(0xD0, 8, struct.pack(">I", 1)), True),
        # Not an AS_SEQUENCE alone; AS 0; a bad next hop; a bad origin; an unknown attribute.
        (origin() + as_path(65001, seg_type=1) + next_hop(), True),
        (origin() + as_path(65001, 0) + next_hop(), True),
        (origin() + as_path(65001) + next_hop("127.0.0.1"), True),
        (origin(3) + as_path(65001) + next_hop(), True),
        (mandatory() + attr(0xC0, 99, b"x"), True),
        # An attribute overrunning the block.
        (mandatory() + med(1)[:-1], True),
    ],
)
def test_fast_path_declines_the_rest(raw: bytes, ebgp: bool) -> None:
    dec = UpdateDecoder(four_octet=True, ebgp=ebgp)
    assert dec._decode_common(raw) is None
    assert dec._decode_block(raw, False, None) is not None
