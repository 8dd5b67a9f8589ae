from __future__ import annotations

import pytest

from bgpd.wire import (
    BgpError,
    MessageFramer,
    decode_message,
    encode_keepalive,
    encode_message,
    encode_notification,
    encode_open,
    encode_route_refresh,
)

MARKER = b"\xff" * 16


def header(length: int, msg_type: int) -> bytes:
    return MARKER + length.to_bytes(2, "big") + bytes((msg_type,))


def stream() -> bytes:
    return b"".join(
        [
            encode_open(65001, 90, "192.0.2.1", [(1, 1)]),
            encode_keepalive(),
            encode_message(2, b"\x00\x00\x00\x00"),
            encode_route_refresh(1, 1),
            encode_notification(6, 2, b"x" * 100),
        ]
    )


EXPECTED_TYPES = [1, 4, 2, 5, 3]


def test_encode_message() -> None:
    assert encode_message(4, b"") == header(19, 4)
    assert encode_message(2, b"abcd") == header(23, 2) + b"abcd"
    with pytest.raises(ValueError):
        encode_message(2, bytes(70000))


def test_whole_stream_at_once() -> None:
    msgs = MessageFramer().feed(stream())
    assert [t for t, _b in msgs] == EXPECTED_TYPES
    assert msgs[2] == (2, b"\x00\x00\x00\x00")
    assert msgs[4] == (3, b"\x06\x02" + b"x" * 100)


def test_byte_by_byte() -> None:
    framer = MessageFramer()
    got = []
    for i, byte in enumerate(stream()):
        got.extend(framer.feed(bytes((byte,))))
        assert framer.buffered() <= 4096, i
    assert got == MessageFramer().feed(stream())
    assert framer.buffered() == 0


@pytest.mark.parametrize("chunk", [2, 3, 7, 18, 19, 20, 22, 50, 1000])
def test_arbitrary_chunks(chunk: int) -> None:
    data = stream() * 3
    framer = MessageFramer()
    got = []
    for i in range(0, len(data), chunk):
        got.extend(framer.feed(data[i : i + chunk]))
    assert [t for t, _b in got] == EXPECTED_TYPES * 3
    assert framer.buffered() == 0


def test_accepts_bytearray_and_memoryview() -> None:
    data = stream()
    framer = MessageFramer()
    got = framer.feed(bytearray(data[:30])) + framer.feed(memoryview(data)[30:])
    assert [t for t, _b in got] == EXPECTED_TYPES
    assert all(type(b) is bytes for _t, b in got)


def test_partial_header_waits() -> None:
    framer = MessageFramer()
    assert framer.feed(MARKER[:10]) == []
    assert framer.feed(MARKER[10:] + b"\x00") == []
    assert framer.feed(b"\x13\x04") == [(4, b"")]


def test_bad_marker() -> None:
    bad = b"\xff" * 15 + b"\xfe" + b"\x00\x13\x04"
    with pytest.raises(BgpError) as exc:
        MessageFramer().feed(bad)
    assert (exc.value.code, exc.value.subcode) == (1, 1)


def test_bad_marker_detected_after_good_message() -> None:
    framer = MessageFramer()
    assert framer.feed(encode_keepalive()) == [(4, b"")]
    with pytest.raises(BgpError) as exc:
        framer.feed(b"\x00" * 19)
    assert (exc.value.code, exc.value.subcode) == (1, 1)


@pytest.mark.parametrize("length", [0, 18, 4097, 65535])
def test_bad_length(length: int) -> None:
    with pytest.raises(BgpError) as exc:
        MessageFramer().feed(header(length, 2))
    assert (exc.value.code, exc.value.subcode) == (1, 2)
    assert exc.value.data == length.to_bytes(2, "big")


@pytest.mark.parametrize(
    ("msg_type", "length"),
    [(1, 28), (4, 20), (4, 4096), (3, 20), (2, 22)],
)
def test_length_illegal_for_type(msg_type: int, length: int) -> None:
    with pytest.raises(BgpError) as exc:
        MessageFramer().feed(header(length, msg_type))
    assert (exc.value.code, exc.value.subcode, exc.value.data) == (1, 2, length.to_bytes(2, "big"))


@pytest.mark.parametrize("length", [19, 22, 24])
def test_route_refresh_bad_length_is_rfc7313_error(length: int) -> None:
    """RFC 7313 5: ROUTE-REFRESH Message Error / Invalid Message Length, data = the message."""
    msg = header(length, 5) + bytes(length - 19)
    frames = MessageFramer().feed(msg)
    assert frames == [(5, bytes(length - 19))]
    with pytest.raises(BgpError) as exc:
        decode_message(5, frames[0][1], None)
    assert (exc.value.code, exc.value.subcode, exc.value.data) == (7, 1, msg)


@pytest.mark.parametrize(("msg_type", "length"), [(1, 29), (4, 19), (3, 21), (2, 23), (5, 23), (2, 4096)])
def test_smallest_and_largest_legal(msg_type: int, length: int) -> None:
    data = header(length, msg_type) + bytes(length - 19)
    assert MessageFramer().feed(data) == [(msg_type, bytes(length - 19))]


@pytest.mark.parametrize("msg_type", [0, 6, 255])
def test_bad_type(msg_type: int) -> None:
    with pytest.raises(BgpError) as exc:
        MessageFramer().feed(header(19, msg_type))
    assert (exc.value.code, exc.value.subcode, exc.value.data) == (1, 3, bytes((msg_type,)))


def test_length_65535_is_rejected_before_buffering() -> None:
    """A huge announced length must fail on the header, not after waiting for 64 KiB."""
    framer = MessageFramer()
    with pytest.raises(BgpError) as exc:
        framer.feed(header(65535, 2) + b"\x00" * 10)
    assert (exc.value.code, exc.value.subcode) == (1, 2)


def test_large_max_len_after_extended_messages() -> None:
    framer = MessageFramer(max_len=65535)
    body = bytes(65535 - 19)
    data = encode_message(2, body)
    got = []
    for i in range(0, len(data), 1000):
        got.extend(framer.feed(data[i : i + 1000]))
        assert framer.buffered() <= 65535
    assert got == [(2, body)]


def test_buffer_bounded_by_one_message() -> None:
    """What stays buffered after a feed is always less than one message."""
    framer = MessageFramer()
    data = stream() * 20
    step = 4093
    for i in range(0, len(data), step):
        framer.feed(data[i : i + step])
        assert framer.buffered() < 4096
