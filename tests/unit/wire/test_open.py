from __future__ import annotations

import struct

import pytest

from bgpd.wire import (
    BgpError,
    Keepalive,
    MessageFramer,
    Notification,
    RouteRefresh,
    UpdateDecoder,
    decode_message,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_capability,
    encode_keepalive,
    encode_notification,
    encode_open,
    encode_route_refresh,
)


def open_body(
    version: int = 4,
    asn: int = 65001,
    hold: int = 90,
    rid: bytes = b"\xc0\x00\x02\x01",
    params: bytes = b"",
    opt_len: int | None = None,
) -> bytes:
    n = len(params) if opt_len is None else opt_len
    return struct.pack(">BHH4sB", version, asn, hold, rid, n) + params


def caps_param(*caps: bytes) -> bytes:
    value = b"".join(caps)
    return bytes((2, len(value))) + value


def body_of(msg: bytes) -> bytes:
    return msg[19:]


def test_round_trip() -> None:
    msg = decode_open(body_of(encode_open(65001, 180, "10.1.2.3", [(1, 1), (2, 1)])))
    assert msg.asn == 65001 and msg.peer_asn == 65001
    assert msg.hold_time == 180
    assert msg.router_id == "10.1.2.3"
    assert msg.capabilities.multiprotocol == [(1, 1), (2, 1)]
    assert msg.capabilities.route_refresh
    assert msg.capabilities.four_octet_as == 65001


def test_no_optional_capabilities() -> None:
    msg = decode_open(body_of(encode_open(65001, 0, "10.1.2.3", [], route_refresh=False, four_octet=False)))
    assert msg.capabilities.multiprotocol == []
    assert not msg.capabilities.route_refresh
    assert msg.capabilities.four_octet_as is None
    assert msg.hold_time == 0


def test_extra_capabilities_and_unknown_kept() -> None:
    gr = b"\x00\x78"  # graceful restart, restart time 120, no AFIs
    msg = decode_open(
        body_of(encode_open(65001, 90, "10.0.0.1", [(1, 1)], extra_caps=[(64, gr), (200, b"")]))
    )
    # Graceful restart is understood now (RFC 4724); code 200 is kept as unknown.
    assert msg.capabilities.graceful_restart is not None
    assert (msg.capabilities.graceful_restart.time, msg.capabilities.graceful_restart.families) == (120, [])
    assert msg.capabilities.unknown == [(200, b"")]


def test_capabilities_in_separate_parameters() -> None:
    """FRR style: one capability per optional parameter."""
    params = caps_param(encode_capability(1, b"\x00\x02\x00\x01")) + caps_param(encode_capability(2))
    params += caps_param(encode_capability(65, struct.pack(">I", 4200000001)))
    msg = decode_open(open_body(asn=23456, params=params))
    assert msg.capabilities.multiprotocol == [(2, 1)]
    assert msg.capabilities.route_refresh
    assert msg.peer_asn == 4200000001


def test_many_capabilities() -> None:
    afis = [(1, s) for s in range(1, 40)]
    msg = decode_open(body_of(encode_open(65001, 90, "10.0.0.1", afis)))
    assert msg.capabilities.multiprotocol == afis
    # More than 253 bytes of capabilities: sent with RFC 9072 extended parameters.
    many = [(1, s) for s in range(1, 50)]
    wide = encode_open(65001, 90, "10.0.0.1", many)
    assert wide[19 + 9] == 255 and wide[19 + 10] == 255
    assert decode_open(body_of(wide)).capabilities.multiprotocol == many


def test_rfc9072_extended_parameters() -> None:
    caps = encode_capability(1, b"\x00\x01\x00\x01") + encode_capability(2)
    params = b"\xff" + struct.pack(">H", 3 + len(caps)) + b"\x02" + struct.pack(">H", len(caps)) + caps
    msg = decode_open(open_body(params=params, opt_len=255))
    assert msg.capabilities.multiprotocol == [(1, 1)]
    assert msg.capabilities.route_refresh


def expect(body: bytes, code: int, subcode: int) -> BgpError:
    with pytest.raises(BgpError) as exc:
        decode_open(body)
    assert (exc.value.code, exc.value.subcode) == (code, subcode)
    return exc.value


def test_bad_version() -> None:
    err = expect(open_body(version=3), 2, 1)
    assert err.data == b"\x00\x04"


@pytest.mark.parametrize("hold", [1, 2])
def test_bad_hold_time(hold: int) -> None:
    expect(open_body(hold=hold), 2, 6)


@pytest.mark.parametrize("hold", [0, 3, 65535])
def test_good_hold_time(hold: int) -> None:
    assert decode_open(open_body(hold=hold)).hold_time == hold


def test_zero_router_id() -> None:
    expect(open_body(rid=b"\x00\x00\x00\x00"), 2, 3)


def test_unsupported_optional_parameter() -> None:
    expect(open_body(params=b"\x01\x02\x00\x00"), 2, 4)


@pytest.mark.parametrize(
    "body",
    [
        open_body()[:9],  # truncated fixed part
        open_body(params=caps_param(encode_capability(2)), opt_len=5),  # opt len too long
        open_body(params=caps_param(encode_capability(2)), opt_len=1),  # opt len too short
        open_body(params=b"\x02\x05\x02\x00"),  # parameter overruns
        open_body(params=b"\x02"),  # truncated parameter header
        open_body(params=caps_param(b"\x02\x03\x00")),  # capability overruns its parameter
        open_body(params=caps_param(b"\x02")),  # truncated capability
        open_body(params=caps_param(encode_capability(1, b"\x00\x01\x01"))),  # MP cap length 3
        open_body(params=caps_param(encode_capability(65, b"\x00\x01"))),  # AS4 cap length 2
    ],
)
def test_malformed_is_unspecific_open_error(body: bytes) -> None:
    expect(body, 2, 0)


def test_peer_as_is_not_checked_here() -> None:
    assert decode_open(open_body(asn=0)).asn == 0


def test_keepalive() -> None:
    assert decode_message(4, b"", None) == Keepalive()
    with pytest.raises(BgpError) as exc:
        decode_message(4, b"\x00", None)
    assert (exc.value.code, exc.value.subcode, exc.value.data) == (1, 2, b"\x00\x14")
    assert encode_keepalive() == b"\xff" * 16 + b"\x00\x13\x04"


def test_notification() -> None:
    wire = encode_notification(3, 1, b"abc")
    assert MessageFramer().feed(wire) == [(3, b"\x03\x01abc")]
    assert decode_notification(b"\x03\x01abc") == Notification(3, 1, b"abc")
    with pytest.raises(BgpError):
        decode_notification(b"\x03")


def test_route_refresh() -> None:
    assert decode_route_refresh(body_of(encode_route_refresh(2, 1, 2))) == RouteRefresh(2, 1, 2)
    with pytest.raises(BgpError) as exc:
        decode_route_refresh(b"\x00\x01\x00")
    assert (exc.value.code, exc.value.subcode) == (7, 1)


def test_decode_message_dispatch() -> None:
    data = encode_open(65001, 90, "10.0.0.1", [(1, 1)]) + encode_keepalive()
    data += encode_route_refresh(1, 1) + encode_notification(6, 4)
    got = [decode_message(t, b, None) for t, b in MessageFramer().feed(data)]
    assert [type(m).__name__ for m in got] == ["Open", "Keepalive", "RouteRefresh", "Notification"]


def test_update_before_established_is_fsm_error() -> None:
    with pytest.raises(BgpError) as exc:
        decode_message(2, b"\x00\x00\x00\x00", None)
    assert exc.value.code == 5
    upd = decode_message(2, b"\x00\x00\x00\x00", UpdateDecoder(True, True))
    assert upd.end_of_rib == 1


def test_decode_message_unknown_type() -> None:
    with pytest.raises(BgpError) as exc:
        decode_message(9, b"", None)
    assert (exc.value.code, exc.value.subcode, exc.value.data) == (1, 3, b"\x09")
