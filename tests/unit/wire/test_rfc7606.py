"""RFC 7606 reactions, one test per case: treat-as-withdraw, attribute discard or session reset."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from bgpd.wire import BgpError, Update, UpdateDecoder
from rib.prefix import Afi
from tests.unit.wire.build import (
    as_path,
    attr,
    body,
    communities,
    decode,
    local_pref,
    mandatory,
    med,
    mp_reach,
    mp_unreach,
    next_hop,
    origin,
    v4,
    v6,
)

NLRI = v4("10.0.0.0/8", "192.168.1.0/24")
KEYS = [b"\x08\x0a", b"\x18\xc0\xa8\x01"]
NH6 = IPv6Address("2001:db8::1").packed


def assert_withdrawn(upd: Update, fragment: str) -> None:
    assert upd.announce == []
    assert upd.withdraw == [(Afi.IPV4, KEYS)]
    assert any(fragment in e and "treat-as-withdraw" in e for e in upd.errors), upd.errors


def assert_reset(b: bytes, code: int, subcode: int, **kw: bool) -> BgpError:
    with pytest.raises(BgpError) as exc:
        decode(b, **kw)
    assert (exc.value.code, exc.value.subcode) == (code, subcode)
    return exc.value


def announced(upd: Update):  # type: ignore[no-untyped-def]
    assert len(upd.announce) == 1, upd
    afi, attrs, keys = upd.announce[0]
    assert afi is Afi.IPV4 and keys == KEYS
    return attrs


def test_sane_update_is_announced() -> None:
    attrs = announced(decode(body(mandatory(65001, 65002) + med(5), NLRI)))
    assert attrs.as_path == ((2, (65001, 65002)),)
    assert attrs.next_hop == IPv4Address("192.0.2.1")
    assert attrs.med == 5


# --- treat-as-withdraw ------------------------------------------------------------------------


def test_bad_origin_value() -> None:
    assert_withdrawn(decode(body(origin(3) + as_path(65001) + next_hop(), NLRI)), "ORIGIN value 3")


def test_origin_wrong_length() -> None:
    bad = attr(0x40, 1, b"\x00\x00")
    assert_withdrawn(decode(body(bad + as_path(65001) + next_hop(), NLRI)), "ORIGIN length 2")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"\x05\x01\x00\x00\xfd\xe9", "segment type 5"),
        (b"\x00\x01\x00\x00\xfd\xe9", "segment type 0"),
        (b"\x02\x02\x00\x00\xfd\xe9", "overruns"),
        (b"\x02\x00", "empty segment"),
        (b"\x02\x01\x00\x00\xfd\xe9\x02", "truncated"),
        (b"\x02\x02\x00\x00\xfd\xe9\x00\x00\x00\x00", "AS 0"),
    ],
)
def test_malformed_as_path(value: bytes, why: str) -> None:
    upd = decode(body(origin() + attr(0x40, 2, value) + next_hop(), NLRI))
    assert_withdrawn(upd, "AS_PATH")
    assert any(why in e for e in upd.errors), upd.errors


def test_as_path_2_octet_width_mismatch() -> None:
    """A 4-octet path parsed as 2-octet has the wrong segment length: malformed."""
    upd = decode(body(origin() + as_path(65001, 65002) + next_hop(), NLRI), four_octet=False)
    assert_withdrawn(upd, "AS_PATH")


@pytest.mark.parametrize("length", [0, 3, 5, 16])
def test_next_hop_wrong_length(length: int) -> None:
    upd = decode(body(origin() + as_path(65001) + attr(0x40, 3, bytes(range(1, length + 1))), NLRI))
    assert_withdrawn(upd, f"NEXT_HOP length {length}")


@pytest.mark.parametrize("ip", ["0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255"])
def test_next_hop_not_a_host(ip: str) -> None:
    assert_withdrawn(decode(body(origin() + as_path(65001) + next_hop(ip), NLRI)), "NEXT_HOP")


def test_med_wrong_length() -> None:
    assert_withdrawn(
        decode(body(mandatory() + attr(0x80, 4, b"\x00\x00\x01"), NLRI)), "MULTI_EXIT_DISC length 3"
    )


def test_local_pref_wrong_length_ibgp() -> None:
    upd = decode(body(mandatory() + attr(0x40, 5, b"\x00\x01"), NLRI), ebgp=False)
    assert_withdrawn(upd, "LOCAL_PREF length 2")


@pytest.mark.parametrize("length", [0, 3, 6])
def test_communities_not_multiple_of_4(length: int) -> None:
    upd = decode(body(mandatory() + attr(0xC0, 8, bytes(length)), NLRI))
    assert_withdrawn(upd, "COMMUNITIES length")


@pytest.mark.parametrize("length", [0, 8, 13])
def test_large_community_not_multiple_of_12(length: int) -> None:
    upd = decode(body(mandatory() + attr(0xC0, 32, bytes(length)), NLRI))
    assert_withdrawn(upd, "LARGE_COMMUNITY length")


@pytest.mark.parametrize("length", [0, 4, 9])
def test_ext_communities_not_multiple_of_8(length: int) -> None:
    upd = decode(body(mandatory() + attr(0xC0, 16, bytes(length)), NLRI))
    assert_withdrawn(upd, "EXTENDED_COMMUNITIES length")


@pytest.mark.parametrize(
    "bad",
    [
        attr(0xC0, 1, b"\x00"),  # ORIGIN marked optional
        attr(0x00, 1, b"\x00"),  # ORIGIN not transitive
        attr(0xC0, 4, b"\x00\x00\x00\x01"),  # MED marked transitive
        attr(0x40, 8, b"\x00\x00\x00\x01"),  # COMMUNITIES marked well-known
    ],
)
def test_flags_error_on_known_attribute(bad: bytes) -> None:
    attrs = mandatory() if bad[1] != 1 else as_path(65001) + next_hop()
    upd = decode(body(bad + attrs, NLRI))
    assert_withdrawn(upd, "flags")


def test_partial_bit_on_well_known_is_tolerated() -> None:
    """RFC 7606 3.c only checks the Optional and Transitive bits."""
    attrs = announced(decode(body(attr(0x60, 1, b"\x02") + as_path(65001) + next_hop(), NLRI)))
    assert attrs.origin == 2


def test_extended_length_on_short_attribute_is_fine() -> None:
    attrs = announced(decode(body(attr(0x50, 1, b"\x01") + as_path(65001) + next_hop(), NLRI)))
    assert attrs.origin == 1


@pytest.mark.parametrize("missing", ["ORIGIN", "AS_PATH", "NEXT_HOP"])
def test_missing_mandatory(missing: str) -> None:
    parts = {"ORIGIN": origin(), "AS_PATH": as_path(65001), "NEXT_HOP": next_hop()}
    del parts[missing]
    upd = decode(body(b"".join(parts.values()), NLRI))
    assert_withdrawn(upd, f"missing {missing}")


def test_missing_attributes_without_nlri_is_fine() -> None:
    upd = decode(body(med(1), b"", withdrawn=v4("10.0.0.0/8")))
    assert upd.withdraw == [(Afi.IPV4, [b"\x08\x0a"])]
    assert upd.errors == [] and upd.announce == []


def test_attributes_without_any_nlri_are_fine() -> None:
    upd = decode(body(mandatory() + med(1)))
    assert upd == Update()


def test_nlri_without_attributes() -> None:
    assert_withdrawn(decode(body(b"", NLRI)), "without path attributes")


def test_next_hop_not_needed_for_mp_only() -> None:
    upd = decode(body(mp_reach(v6("2001:db8::/32"), NH6) + origin() + as_path(65001)))
    assert [(a, k) for a, _attrs, k in upd.announce] == [(Afi.IPV6, [b"\x20\x20\x01\x0d\xb8"])]
    assert upd.errors == []


def test_confed_segments_from_ebgp() -> None:
    path = as_path(65001, seg_type=3) + as_path(65002)[3:]
    upd = decode(body(origin() + attr(0x40, 2, path[3:]) + next_hop(), NLRI), ebgp=True)
    assert_withdrawn(upd, "confederation")


def test_confed_segments_from_ibgp_accepted() -> None:
    value = b"\x03\x01\x00\x00\xfd\xe9\x02\x01\x00\x00\xfd\xea"
    attrs = announced(decode(body(origin() + attr(0x40, 2, value) + next_hop(), NLRI), ebgp=False))
    assert attrs.as_path == ((3, (65001,)), (2, (65002,)))


def test_treat_as_withdraw_covers_mp_reach_nlri() -> None:
    b = body(mp_reach(v6("2001:db8::/32"), NH6) + origin(7) + as_path(65001) + next_hop(), NLRI)
    upd = decode(b)
    assert upd.announce == []
    assert (Afi.IPV6, [b"\x20\x20\x01\x0d\xb8"]) in upd.withdraw
    assert (Afi.IPV4, KEYS) in upd.withdraw


def test_mp_reach_bad_next_hop_value() -> None:
    upd = decode(body(mp_reach(v6("2001:db8::/32"), b"\xff" + bytes(15)) + origin() + as_path(65001)))
    assert upd.announce == [] and upd.withdraw == [(Afi.IPV6, [b"\x20\x20\x01\x0d\xb8"])]
    assert any("next hop" in e for e in upd.errors)


def test_originator_and_cluster_list_bad_length_ibgp() -> None:
    assert_withdrawn(
        decode(body(mandatory() + attr(0x80, 9, b"\x01\x02"), NLRI), ebgp=False), "ORIGINATOR_ID"
    )
    assert_withdrawn(
        decode(body(mandatory() + attr(0x80, 10, b"\x01\x02"), NLRI), ebgp=False), "CLUSTER_LIST"
    )


def test_attribute_overrun_with_nlri_is_treat_as_withdraw() -> None:
    # The MED claims 9 bytes where 4 remain: NLRI are still found via the total length.
    attrs = mandatory() + b"\x80\x04\x09\x00\x00\x00\x01"
    assert_withdrawn(decode(body(attrs, NLRI)), "overruns")


def test_attribute_header_truncated_with_nlri() -> None:
    assert_withdrawn(decode(body(mandatory() + b"\x80\x04", NLRI)), "overruns")


# --- attribute discard ------------------------------------------------------------------------


def test_atomic_aggregate_wrong_length_discarded() -> None:
    upd = decode(body(mandatory() + attr(0x40, 6, b"\x01"), NLRI))
    attrs = announced(upd)
    assert attrs.atomic_aggregate is False
    assert any("ATOMIC_AGGREGATE" in e and "discarded" in e for e in upd.errors)


@pytest.mark.parametrize("length", [4, 6, 7, 9])
def test_aggregator_wrong_length_discarded(length: int) -> None:
    upd = decode(body(mandatory() + attr(0xC0, 7, bytes(range(1, length + 1))), NLRI))
    assert announced(upd).aggregator is None
    assert any("AGGREGATOR" in e and "discarded" in e for e in upd.errors)


def test_aggregator_as_zero_discarded() -> None:
    upd = decode(body(mandatory() + attr(0xC0, 7, bytes(4) + b"\x0a\x00\x00\x01"), NLRI))
    assert announced(upd).aggregator is None


def test_aggregator_two_octet_peer() -> None:
    aggr = attr(0xC0, 7, b"\xfd\xe9\x0a\x00\x00\x01")
    upd = decode(body(origin() + as_path(65001, four=False) + next_hop() + aggr, NLRI), four_octet=False)
    assert announced(upd).aggregator == (65001, "10.0.0.1")


def test_local_pref_from_ebgp_discarded() -> None:
    upd = decode(body(mandatory() + local_pref(300), NLRI), ebgp=True)
    assert announced(upd).local_pref is None
    assert any("LOCAL_PREF" in e and "discarded" in e for e in upd.errors)
    assert announced(decode(body(mandatory() + local_pref(300), NLRI), ebgp=False)).local_pref == 300


def test_originator_id_and_cluster_list_from_ebgp_discarded() -> None:
    extra = attr(0x80, 9, b"\x0a\x00\x00\x01") + attr(0x80, 10, b"\x0a\x00\x00\x02")
    attrs = announced(decode(body(mandatory() + extra, NLRI), ebgp=True))
    assert attrs.originator_id is None and attrs.cluster_list == ()
    attrs = announced(decode(body(mandatory() + extra, NLRI), ebgp=False))
    assert attrs.originator_id == "10.0.0.1" and attrs.cluster_list == ("10.0.0.2",)


def test_duplicate_attribute_keeps_first() -> None:
    upd = decode(body(mandatory() + med(1) + med(2) + communities(5) + communities(6), NLRI))
    attrs = announced(upd)
    assert attrs.med == 1 and attrs.communities == (5,)
    assert sum("repeated" in e for e in upd.errors) == 2


def test_duplicate_bad_attribute_does_not_override() -> None:
    upd = decode(body(mandatory() + origin(2), NLRI))
    assert announced(upd).origin == 0


def test_unknown_optional_transitive_kept_with_partial() -> None:
    attrs = announced(decode(body(mandatory() + attr(0xC0, 99, b"xyz"), NLRI)))
    assert attrs.unknown == ((0xE0, 99, b"xyz"),)


def test_unknown_optional_non_transitive_dropped() -> None:
    upd = decode(body(mandatory() + attr(0x80, 99, b"xyz"), NLRI))
    assert announced(upd).unknown == ()
    assert upd.errors == []


def test_corrupted_bgp_ls_attribute_never_resets() -> None:
    """Type 29 (BGP-LS) is optional non-transitive: whatever it holds, it is dropped."""
    for junk in (b"", b"\xff", bytes(300), b"\x04\x00\x00\x05garbage"):
        flags = 0x90 if len(junk) > 255 else 0x80
        attrs = announced(decode(body(mandatory() + attr(flags, 29, junk), NLRI)))
        assert attrs.unknown == ()


def test_unknown_well_known_resets() -> None:
    err = assert_reset(body(mandatory() + attr(0x40, 99, b"ab"), NLRI), 3, 2)
    assert err.data == b"\x40\x63\x02ab"


def test_as4_path_from_four_octet_peer_ignored() -> None:
    as4 = attr(0xC0, 17, b"\x02\x01\x00\x00\x00\x07")
    upd = decode(body(mandatory(65001) + as4, NLRI), four_octet=True)
    assert announced(upd).as_path == ((2, (65001,)),)


def test_as4_path_merged_from_two_octet_peer() -> None:
    # AS_PATH 65001 23456 23456 ; AS4_PATH 4200000001 4200000002: one leading AS is kept.
    as4 = attr(0xC0, 17, struct.pack(">BBII", 2, 2, 4200000001, 4200000002))
    b = body(origin() + as_path(65001, 23456, 23456, four=False) + next_hop() + as4, NLRI)
    attrs = announced(decode(b, four_octet=False))
    assert attrs.as_path == ((2, (65001, 4200000001, 4200000002)),)


def test_as4_path_longer_than_as_path_ignored() -> None:
    as4 = attr(0xC0, 17, struct.pack(">BBIII", 2, 3, 1, 2, 3))
    b = body(origin() + as_path(65001, 23456, four=False) + next_hop() + as4, NLRI)
    assert announced(decode(b, four_octet=False)).as_path == ((2, (65001, 23456)),)


def test_malformed_as4_path_discarded() -> None:
    as4 = attr(0xC0, 17, b"\x02\x05\x00\x00")
    b = body(origin() + as_path(65001, 23456, four=False) + next_hop() + as4, NLRI)
    upd = decode(b, four_octet=False)
    assert announced(upd).as_path == ((2, (65001, 23456)),)
    assert any("AS4_PATH" in e and "discarded" in e for e in upd.errors)


def test_as4_path_with_confed_discarded() -> None:
    as4 = attr(0xC0, 17, struct.pack(">BBI", 3, 1, 4200000001))
    b = body(origin() + as_path(23456, four=False) + next_hop() + as4, NLRI)
    upd = decode(b, four_octet=False)
    assert announced(upd).as_path == ((2, (23456,)),)


def test_as4_aggregator() -> None:
    aggr = attr(0xC0, 7, struct.pack(">H4s", 23456, b"\x0a\x00\x00\x01"))
    as4_aggr = attr(0xC0, 18, struct.pack(">I4s", 4200000001, b"\x0a\x00\x00\x01"))
    as4 = attr(0xC0, 17, struct.pack(">BBI", 2, 1, 4200000001))
    b = body(origin() + as_path(23456, four=False) + next_hop() + aggr + as4 + as4_aggr, NLRI)
    attrs = announced(decode(b, four_octet=False))
    assert attrs.aggregator == (4200000001, "10.0.0.1")
    assert attrs.as_path == ((2, (4200000001,)),)


def test_as4_ignored_when_aggregator_is_not_as_trans() -> None:
    aggr = attr(0xC0, 7, struct.pack(">H4s", 65009, b"\x0a\x00\x00\x01"))
    as4 = attr(0xC0, 17, struct.pack(">BBI", 2, 1, 4200000001))
    b = body(origin() + as_path(23456, four=False) + next_hop() + aggr + as4, NLRI)
    attrs = announced(decode(b, four_octet=False))
    assert attrs.as_path == ((2, (23456,)),)
    assert attrs.aggregator == (65009, "10.0.0.1")


def test_as4_aggregator_wrong_length_discarded() -> None:
    aggr = attr(0xC0, 7, struct.pack(">H4s", 23456, b"\x0a\x00\x00\x01"))
    b = body(origin() + as_path(65001, four=False) + next_hop() + aggr + attr(0xC0, 18, b"\x00" * 6), NLRI)
    upd = decode(b, four_octet=False)
    assert announced(upd).aggregator == (23456, "10.0.0.1")
    assert any("AS4_AGGREGATOR length" in e for e in upd.errors)


# --- session reset ----------------------------------------------------------------------------


def test_attribute_overrun_without_nlri_resets() -> None:
    assert_reset(body(mandatory() + b"\x80\x04\x09\x00\x00\x00\x01"), 3, 1)


def test_total_attribute_length_overrun_resets() -> None:
    b = b"\x00\x00\x00\x40" + mandatory()
    assert_reset(b, 3, 1)


def test_withdrawn_length_overrun_resets() -> None:
    assert_reset(b"\x00\x10\x08\x0a\x00\x00", 3, 1)


def test_body_too_short_resets() -> None:
    assert_reset(b"\x00\x00\x00", 3, 1)


@pytest.mark.parametrize(
    "mp",
    [
        attr(0x80, 14, b"\x00\x02\x01"),  # shorter than AFI+SAFI+NH length+reserved
        attr(0x80, 14, b"\x00\x02\x01\x10" + bytes(10)),  # next hop overruns
        attr(0x80, 14, b"\x00\x02\x01\x04\x0a\x00\x00\x01\x00"),  # 4-byte next hop for IPv6
        attr(0x80, 14, b"\x00\x01\x01\x05\x0a\x00\x00\x01\x00\x00"),  # 5-byte next hop for IPv4
        attr(0x80, 15, b"\x00\x02"),  # MP_UNREACH shorter than AFI+SAFI
        attr(0xC0, 14, b"\x00\x02\x01\x10" + NH6 + b"\x00"),  # flags: transitive
        attr(0x40, 15, b"\x00\x02\x01"),  # flags: well-known
    ],
)
def test_malformed_mp_attribute_resets(mp: bytes) -> None:
    assert_reset(body(mp + origin() + as_path(65001)), 3, 1)


def test_duplicate_mp_reach_resets() -> None:
    mp = mp_reach(v6("2001:db8::/32"), NH6)
    assert_reset(body(mp + mp + origin() + as_path(65001)), 3, 1)


def test_duplicate_mp_unreach_resets() -> None:
    mp = mp_unreach(v6("2001:db8::/32"))
    assert_reset(body(mp + mp), 3, 1)


@pytest.mark.parametrize(
    "nlri",
    [
        b"\x21\x0a\x00\x00\x00\x00",  # /33
        b"\x18\x0a\x00",  # /24 with two octets
        b"\x08",  # length without its octet
        b"\x08\x0a\xff",  # plen 255 after a good prefix
    ],
)
def test_invalid_ipv4_nlri_resets(nlri: bytes) -> None:
    assert_reset(body(mandatory(), nlri), 3, 10)


def test_invalid_withdrawn_resets() -> None:
    assert_reset(body(b"", b"", withdrawn=b"\x21" + bytes(5)), 3, 10)


@pytest.mark.parametrize("nlri", [b"\x81" + bytes(17), b"\x40\x20\x01"])
def test_invalid_ipv6_nlri_resets(nlri: bytes) -> None:
    assert_reset(body(mp_reach(nlri, NH6) + origin() + as_path(65001)), 3, 10)
    assert_reset(body(mp_unreach(nlri)), 3, 10)


# --- MP details -------------------------------------------------------------------------------


def test_unknown_afi_in_mp_reach_is_ignored() -> None:
    mp = attr(0x80, 14, b"\x00\x19\x41\x04\x0a\x00\x00\x01\x00" + b"\x01\x02\x03")  # L2VPN VPLS
    upd = decode(body(mp + mandatory(), NLRI))
    announced(upd)
    assert any("AFI 25 SAFI 65 ignored" in e for e in upd.errors)


def test_unknown_safi_in_mp_unreach_is_ignored() -> None:
    upd = decode(body(attr(0x80, 15, b"\x00\x01\x80" + bytes(12))))
    assert upd.withdraw == [] and upd.end_of_rib is None
    assert any("SAFI 128 ignored" in e for e in upd.errors)


def test_ipv4_nlri_in_mp_reach() -> None:
    upd = decode(body(mp_reach(NLRI, b"\x0a\x00\x00\x01", afi=1) + origin() + as_path(65001)))
    ((afi, attrs, keys),) = upd.announce
    assert afi is Afi.IPV4 and keys == KEYS and attrs.next_hop == IPv4Address("10.0.0.1")


def test_ipv4_nlri_over_ipv6_next_hop() -> None:
    upd = decode(body(mp_reach(NLRI, NH6, afi=1) + origin() + as_path(65001)))
    ((afi, attrs, _keys),) = upd.announce
    assert afi is Afi.IPV4 and attrs.next_hop == IPv6Address("2001:db8::1")


def test_mp_and_ipv4_nlri_in_one_update() -> None:
    upd = decode(body(mp_reach(v6("2001:db8::/32"), NH6) + mandatory(), NLRI))
    by_afi = {afi: (attrs, keys) for afi, attrs, keys in upd.announce}
    assert by_afi[Afi.IPV4][0].next_hop == IPv4Address("192.0.2.1")
    assert by_afi[Afi.IPV6][0].next_hop == IPv6Address("2001:db8::1")
    assert by_afi[Afi.IPV4][0].as_path == by_afi[Afi.IPV6][0].as_path


def test_link_local_next_hop_zero_is_dropped() -> None:
    upd = decode(body(mp_reach(v6("::/0"), NH6 + bytes(16)) + origin() + as_path(65001)))
    assert upd.announce[0][1].next_hop_ll is None


def test_mp_unreach_withdraws_and_eor() -> None:
    upd = decode(body(mp_unreach(v6("2001:db8::/32", "::/0"))))
    assert upd.withdraw == [(Afi.IPV6, [b"\x20\x20\x01\x0d\xb8", b"\x00"])]
    assert upd.end_of_rib is None
    upd = decode(body(mp_unreach(b"", afi=1)))
    assert upd.end_of_rib is Afi.IPV4


def test_empty_mp_unreach_with_other_attributes_is_not_eor() -> None:
    upd = decode(body(mp_unreach(b"") + origin()))
    assert upd.end_of_rib is None


def test_host_bits_are_cleared() -> None:
    upd = decode(body(mandatory(), b"\x17\x0a\x00\x01"))  # 10.0.1.0/23 -> 10.0.0.0/23
    assert upd.announce[0][2] == [b"\x17\x0a\x00\x00"]


# --- caching ----------------------------------------------------------------------------------


def test_identical_blocks_share_one_decoded_set() -> None:
    dec = UpdateDecoder(four_octet=True, ebgp=True)
    a = dec.decode(body(mandatory() + med(1), v4("10.0.0.0/8")))
    b = dec.decode(body(mandatory() + med(1), v4("11.0.0.0/8")))
    assert a.announce[0][1] is b.announce[0][1]


def test_mp_blocks_share_one_decoded_set() -> None:
    dec = UpdateDecoder(four_octet=True, ebgp=True)
    a = dec.decode(body(mp_reach(v6("2001:db8::/32"), NH6) + origin() + as_path(65001)))
    b = dec.decode(body(mp_reach(v6("2001:db9::/32", "::/0"), NH6) + origin() + as_path(65001)))
    assert a.announce[0][1] is b.announce[0][1]
    assert b.announce[0][2] == [b"\x20\x20\x01\x0d\xb9", b"\x00"]
    c = dec.decode(
        body(mp_reach(v6("2001:db8::/32"), IPv6Address("2001:db8::2").packed) + origin() + as_path(65001))
    )
    assert c.announce[0][1].next_hop == IPv6Address("2001:db8::2")


def test_cached_errors_are_reported_every_time() -> None:
    dec = UpdateDecoder(four_octet=True, ebgp=True)
    b = body(origin(5) + as_path(65001) + next_hop(), NLRI)
    for _ in range(2):
        upd = dec.decode(b)
        assert upd.withdraw == [(Afi.IPV4, KEYS)]
        assert upd.errors


def test_cache_is_bounded() -> None:
    dec = UpdateDecoder(four_octet=True, ebgp=True, cache_size=10)
    for i in range(50):
        dec.decode(body(mandatory() + med(i), NLRI))
    assert len(dec._cache) <= 10


def test_overrun_reset_also_on_cache_hit() -> None:
    dec = UpdateDecoder(four_octet=True, ebgp=True)
    attrs = mandatory() + b"\x80\x04\x09\x00"
    dec.decode(body(attrs, NLRI))  # cached as treat-as-withdraw
    with pytest.raises(BgpError):
        dec.decode(body(attrs))
