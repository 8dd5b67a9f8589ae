"""Fuzzing: whatever bytes arrive, the codec yields messages or raises BgpError, nothing else."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpd.wire import (
    BgpError,
    MessageFramer,
    UpdateDecoder,
    UpdateEncoder,
    decode_message,
    encode_keepalive,
    encode_message,
    encode_notification,
    encode_open,
    encode_route_refresh,
)
from rib.attrs import PathAttrs, intern
from rib.prefix import Afi, parse_prefix
from tests.unit.wire import build


def _seed_messages() -> list[bytes]:
    enc4, enc2 = UpdateEncoder(four_octet=True), UpdateEncoder(four_octet=False)
    a4 = intern(
        PathAttrs(
            as_path=((3, (65000,)), (2, (65001, 4200000001)), (1, (1, 2))),
            next_hop=IPv4Address("192.0.2.1"),
            med=1,
            local_pref=2,
            atomic_aggregate=True,
            aggregator=(4200000001, "10.0.0.1"),
            communities=(1, 2),
            ext_communities=(b"\x00\x02\x00\x01\x00\x00\x00\x01",),
            large_communities=((1, 2, 3),),
            originator_id="10.0.0.2",
            cluster_list=("10.0.0.3",),
            unknown=((0xE0, 99, b"xyz"),),
        )
    )
    a6 = a4.with_(next_hop=IPv6Address("2001:db8::1"), next_hop_ll=IPv6Address("fe80::1"))
    k4 = [parse_prefix(p)[1] for p in ("10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/13")]
    k6 = [parse_prefix(p)[1] for p in ("2001:db8::/32", "2001:db8:8000::/33")]
    mp4 = build.mp_reach(build.v4("10.0.0.0/8"), b"\x0a\x00\x00\x01", afi=1)
    return [
        encode_open(4200000001, 90, "192.0.2.1", [(1, 1), (2, 1)]),
        encode_keepalive(),
        encode_notification(6, 2, b"bye"),
        encode_route_refresh(2, 1),
        *enc4.announce(Afi.IPV4, a4, k4),
        *enc4.announce(Afi.IPV6, a6, k6),
        *enc2.announce(Afi.IPV4, a4, k4),
        *enc4.withdraw(Afi.IPV4, k4),
        *enc4.withdraw(Afi.IPV6, k6),
        enc4.end_of_rib(Afi.IPV6),
        # IPv4 NLRI both in MP_REACH_NLRI and in the NLRI field.
        encode_message(2, build.body(build.mandatory() + mp4, build.v4("11.0.0.0/8"))),
    ]


SEEDS = _seed_messages()
DECODERS = [UpdateDecoder(four_octet=f, ebgp=e) for f in (True, False) for e in (True, False)]


def run(data: bytes, chunk: int, dec: UpdateDecoder) -> None:
    framer = MessageFramer()
    try:
        for i in range(0, len(data), chunk):
            for msg_type, body in framer.feed(data[i : i + chunk]):
                decode_message(msg_type, body, dec)
    except BgpError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), chunk=st.integers(1, 700), which=st.integers(0, 3))
def test_random_bytes(data: bytes, chunk: int, which: int) -> None:
    run(data, chunk, DECODERS[which])
    # With a valid header in front, so the body parsers see the junk too.
    for msg_type in (1, 2, 3, 4, 5):
        body = data[:4077]
        run(encode_message(msg_type, body), chunk, DECODERS[which])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    msg = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 3))
        pos = draw(st.integers(0, max(0, len(msg) - 1)))
        if kind == 0 and msg:
            msg[pos] = draw(st.integers(0, 255))  # replace a byte
        elif kind == 1 and pos > 19:
            del msg[pos : pos + draw(st.integers(1, 8))]  # cut bytes out
        elif kind == 2:
            msg[pos:pos] = draw(st.binary(min_size=1, max_size=8))  # insert bytes
        elif pos >= 19:
            msg[pos] ^= 1 << draw(st.integers(0, 7))  # flip a bit
    if draw(st.booleans()) and len(msg) >= 19:
        # Keep the header consistent so the UPDATE/OPEN parsers get the damaged body.
        msg[16:18] = min(len(msg), 0xFFFF).to_bytes(2, "big")
    return bytes(msg)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=mutated(), which=st.integers(0, 3), chunk=st.sampled_from([1, 7, 4096]))
def test_mutated_messages(msg: bytes, which: int, chunk: int) -> None:
    run(msg, chunk, DECODERS[which])


def test_seeds_decode_cleanly() -> None:
    """The seeds are valid (the 2-octet encoded one for a 2-octet session)."""
    for seed in SEEDS:
        for msg_type, body in MessageFramer().feed(seed):
            results = [
                decode_message(msg_type, body, UpdateDecoder(four, ebgp=False)) for four in (True, False)
            ]
            assert any(not getattr(msg, "errors", None) for msg in results), results
