from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rib.prefix import (
    AFI_BY_NAME,
    Afi,
    afi_of,
    key_addr_bytes,
    key_contains,
    key_from_network,
    key_plen,
    key_to_network,
    key_to_str,
    make_key,
    parse_prefix,
)


@pytest.mark.parametrize(
    ("text", "afi", "key"),
    [
        ("0.0.0.0/0", Afi.IPV4, b"\x00"),
        ("128.0.0.0/1", Afi.IPV4, b"\x01\x80"),
        ("254.0.0.0/7", Afi.IPV4, b"\x07\xfe"),
        ("10.0.0.0/8", Afi.IPV4, b"\x08\x0a"),
        ("192.0.2.0/24", Afi.IPV4, b"\x18\xc0\x00\x02"),
        ("10.1.128.0/17", Afi.IPV4, b"\x11\x0a\x01\x80"),
        ("192.0.2.1/32", Afi.IPV4, b"\x20\xc0\x00\x02\x01"),
        ("::/0", Afi.IPV6, b"\x00"),
        ("fe00::/7", Afi.IPV6, b"\x07\xfe"),
        ("2001:db8::/32", Afi.IPV6, b"\x20\x20\x01\x0d\xb8"),
        ("2001:db8:1::/48", Afi.IPV6, b"\x30\x20\x01\x0d\xb8\x00\x01"),
        ("2001:db8::1/128", Afi.IPV6, b"\x80" + ipaddress.IPv6Address("2001:db8::1").packed),
    ],
)
def test_parse_and_format_round_trip(text: str, afi: Afi, key: bytes) -> None:
    assert parse_prefix(text) == (afi, key)
    assert key_to_str(afi, key) == text
    assert key_to_network(afi, key) == ipaddress.ip_network(text)
    assert key_plen(key) == ipaddress.ip_network(text).prefixlen
    # The key is the NLRI encoding: length octet plus only the significant octets.
    assert len(key) == 1 + (key_plen(key) + 7) // 8


def test_parse_rejects_host_bits_and_garbage() -> None:
    for bad in ("10.0.0.1/8", "2001:db8::1/32", "10.0.0.0/33", "nonsense", "10.0.0.0/-1", ""):
        with pytest.raises(ValueError):
            parse_prefix(bad)


def test_make_key_clears_host_bits() -> None:
    # /7 keeps only the top 7 bits of the first octet.
    assert make_key(7, b"\xff\xff\xff\xff") == b"\x07\xfe"
    # /17 keeps the first bit of the third octet, drops the rest and the fourth octet.
    assert make_key(17, bytes([10, 1, 0xFF, 0xFF])) == bytes([17, 10, 1, 0x80])
    # Octet-aligned lengths just truncate.
    assert make_key(24, bytes([192, 0, 2, 99])) == bytes([24, 192, 0, 2])
    assert make_key(0, bytes([1, 2, 3, 4])) == b"\x00"
    assert make_key(32, bytes([1, 2, 3, 4])) == bytes([32, 1, 2, 3, 4])
    # Already-canonical input gives an equal key (and longer input is fine).
    assert make_key(17, bytes([10, 1, 0x80])) == make_key(17, bytes([10, 1, 0xC0, 7]))


def test_key_to_network_and_addr_bytes() -> None:
    k = make_key(20, bytes([172, 16, 0xFF, 1]))
    assert key_to_network(Afi.IPV4, k) == ipaddress.IPv4Network("172.16.240.0/20")
    assert key_addr_bytes(Afi.IPV4, k) == bytes([172, 16, 240, 0])
    k6 = parse_prefix("2001:db8::/32")[1]
    assert key_addr_bytes(Afi.IPV6, k6) == ipaddress.IPv6Address("2001:db8::").packed
    assert isinstance(key_to_network(Afi.IPV6, k6), ipaddress.IPv6Network)
    # The family is not in the key: the same bytes read as v4 or v6.
    assert key_to_str(Afi.IPV4, b"\x08\x0a") == "10.0.0.0/8"
    assert key_to_str(Afi.IPV6, b"\x08\x0a") == "a00::/8"


def test_key_contains() -> None:
    k = parse_prefix("10.0.0.0/8")[1]
    assert key_contains(Afi.IPV4, k, ipaddress.ip_address("10.255.0.1"))
    assert not key_contains(Afi.IPV4, k, ipaddress.ip_address("11.0.0.1"))
    assert key_contains(Afi.IPV4, b"\x00", ipaddress.ip_address("203.0.113.9"))


def test_afi_helpers() -> None:
    assert afi_of(ipaddress.ip_address("192.0.2.1")) is Afi.IPV4
    assert afi_of(ipaddress.ip_network("2001:db8::/32")) is Afi.IPV6
    assert AFI_BY_NAME == {"ipv4": Afi.IPV4, "ipv6": Afi.IPV6}
    assert (Afi.IPV4.name_lower, Afi.IPV4.addr_len, Afi.IPV4.max_plen) == ("ipv4", 4, 32)
    assert (Afi.IPV6.name_lower, Afi.IPV6.addr_len, Afi.IPV6.max_plen) == ("ipv6", 16, 128)
    assert int(Afi.IPV4) == 1 and int(Afi.IPV6) == 2


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    v6 = draw(st.booleans())
    bits = 128 if v6 else 32
    plen = draw(st.integers(0, bits))
    addr = draw(st.integers(0, 2**bits - 1))
    cls = ipaddress.IPv6Network if v6 else ipaddress.IPv4Network
    return cls((addr, plen), strict=False)


@given(networks())
def test_round_trip_property(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    afi, k = parse_prefix(str(net))
    assert afi is afi_of(net)
    assert k == key_from_network(net)
    assert key_to_network(afi, k) == net
    assert key_to_str(afi, k) == str(net)
    assert len(k) == 1 + (net.prefixlen + 7) // 8


@given(st.booleans(), st.data())
def test_make_key_matches_ipaddress_masking(v6: bool, data: st.DataObject) -> None:
    width = 16 if v6 else 4
    raw = data.draw(st.binary(min_size=width, max_size=width))
    plen = data.draw(st.integers(0, width * 8))
    afi = Afi.IPV6 if v6 else Afi.IPV4
    expected = ipaddress.ip_network((raw, plen), strict=False)
    k = make_key(plen, raw)
    assert key_to_network(afi, k) == expected
    assert k == key_from_network(expected)
