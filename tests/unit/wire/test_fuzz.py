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


# --- the session core: after an OPEN exchange, any bytes give events or a NOTIFICATION ----------


def _established_conn(extended: bool) -> object:
    from bgpd.connection import BgpConnection, ConnParams

    conn = BgpConnection(
        ConnParams(65001, "10.0.0.1", 65002, 90, [Afi.IPV4, Afi.IPV6], "192.0.2.2", add_path="both"), 0.0
    )
    conn.connection_made(0.0)
    from bgpd.wire.messages import Capabilities

    caps = Capabilities(extended_message=extended, add_path=[(1, 1, 3)] if extended else [])
    conn.receive_data(encode_open(65002, 90, "10.0.0.2", [(1, 1), (2, 1)], capabilities=caps), 0.0)
    conn.receive_data(encode_keepalive(), 0.0)
    conn.data_to_send()
    return conn


def _feed_session(data: bytes, chunk: int, extended: bool) -> None:
    from bgpd.connection import BgpConnection, NotificationReceived, SessionClosed
    from bgpd.fsm import State

    conn = _established_conn(extended)
    assert isinstance(conn, BgpConnection) and conn.state is State.ESTABLISHED
    limit = 65535 if extended else 4096
    closed = peer_notified = False
    for i in range(0, len(data), chunk):
        # Anything but a BgpError-turned-NOTIFICATION would propagate and fail the test.
        events = conn.receive_data(data[i : i + chunk], 1.0)
        closed = closed or any(isinstance(e, SessionClosed) for e in events)
        peer_notified = peer_notified or any(isinstance(e, NotificationReceived) for e in events)
        # Bounded memory: never more than one (maximum-size) message held.
        assert conn._framer.buffered() < limit
    if conn.closed:
        assert closed
        out = [t for t, _b in MessageFramer().feed(conn.data_to_send())]
        # The peer's NOTIFICATION ends the session quietly; any other close caused by the
        # input is announced with exactly one NOTIFICATION of ours.
        assert out.count(3) == (0 if peer_notified else 1), out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), chunk=st.integers(1, 700), extended=st.booleans())
def test_session_core_random_bytes(data: bytes, chunk: int, extended: bool) -> None:
    _feed_session(data, chunk, extended)
    for msg_type in (1, 2, 3, 4, 5):
        _feed_session(encode_message(msg_type, data[:4077]), chunk, extended)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    msgs=st.lists(mutated(), min_size=1, max_size=4),
    chunk=st.sampled_from([1, 7, 4096]),
    extended=st.booleans(),
)
def test_session_core_mutated_messages(msgs: list[bytes], chunk: int, extended: bool) -> None:
    _feed_session(b"".join(msgs), chunk, extended)


def test_session_core_huge_length_is_not_buffered() -> None:
    """A header announcing 65535 bytes without extended messages: NOTIFICATION at once."""
    from bgpd.connection import SessionClosed

    conn = _established_conn(False)
    events = conn.receive_data(b"\xff" * 16 + b"\xff\xff\x02" + bytes(100), 1.0)  # type: ignore[attr-defined]
    assert any(isinstance(e, SessionClosed) for e in events)
    assert conn._framer.buffered() == 0  # type: ignore[attr-defined]
    out = MessageFramer().feed(conn.data_to_send())  # type: ignore[attr-defined]
    assert out == [(3, b"\x01\x02\xff\xff")]
