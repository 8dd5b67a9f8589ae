"""Splitting a TCP byte stream into BGP messages (RFC 4271 4.1), sans-IO.

The framer validates the 19-byte header as soon as it is complete, so a bogus
length is reported before the body arrives and at most one (max-length) message
is ever held in the buffer.
"""

from __future__ import annotations

from bgpd.wire.errors import BgpError, ErrCode, HeaderSub
from bgpd.wire.messages import HEADER_LEN, MARKER, MAX_MESSAGE_LEN, MsgType

# Per type: (minimum, maximum) total message length (RFC 4271 4.2-4.5, RFC 2918 3).
# The maximum None means "up to the negotiated max_len".
_LEN_RULES: dict[int, tuple[int, int | None]] = {
    MsgType.OPEN: (29, None),
    MsgType.UPDATE: (23, None),
    MsgType.NOTIFICATION: (21, None),
    MsgType.KEEPALIVE: (19, 19),
    # Any length reaches the decoder: RFC 7313 5 answers a bad one with ROUTE-REFRESH Message
    # Error / Invalid Message Length carrying the whole message, not a header error.
    MsgType.ROUTE_REFRESH: (HEADER_LEN, None),
}


def encode_message(msg_type: int, body: bytes) -> bytes:
    """Prefix ``body`` with the marker, length and type."""
    length = HEADER_LEN + len(body)
    if length > 0xFFFF:
        raise ValueError(f"BGP message of {length} bytes is too long")
    return MARKER + bytes((length >> 8, length & 0xFF, msg_type)) + body


class MessageFramer:
    """Feed bytes in, get complete ``(msg_type, body)`` pairs out.

    Raises :class:`BgpError` (code 1) on a header error; the session must then send that
    NOTIFICATION and close, so the framer's state after an error does not matter. Messages
    completed earlier in the same ``feed`` call are not returned in that case.
    """

    __slots__ = ("_buf", "_need", "max_len")

    def __init__(self, max_len: int = MAX_MESSAGE_LEN) -> None:
        # Public so the session can raise it to 65535 after negotiating RFC 8654.
        self.max_len = max_len
        self._buf = bytearray()
        # Bytes the buffer must hold before parsing can make progress (avoids re-copying
        # a partial message on every small read).
        self._need = HEADER_LEN

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        """Add received bytes; return the messages they complete, in order."""
        buf = self._buf
        if buf:
            if len(buf) + len(data) < self._need:
                buf += data
                return []
            # Join the pending partial message with the new data (one copy), then parse
            # immutable bytes so each body is a single slice copy.
            buf += data
            data = bytes(buf)
            buf.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        end = len(data)
        pos = 0
        out: list[tuple[int, bytes]] = []
        max_len = self.max_len
        rules = _LEN_RULES
        while end - pos >= HEADER_LEN:
            if not data.startswith(MARKER, pos):
                raise BgpError(ErrCode.MESSAGE_HEADER, HeaderSub.CONNECTION_NOT_SYNCHRONIZED)
            length = (data[pos + 16] << 8) | data[pos + 17]
            msg_type = data[pos + 18]
            if length < HEADER_LEN or length > max_len:
                raise _bad_length(data, pos, f"message length {length} outside 19..{max_len}")
            rule = rules.get(msg_type)
            if rule is None:
                raise BgpError(
                    ErrCode.MESSAGE_HEADER,
                    HeaderSub.BAD_MESSAGE_TYPE,
                    bytes((msg_type,)),
                    f"unknown message type {msg_type}",
                )
            lo, hi = rule
            if length < lo or (hi is not None and length > hi):
                raise _bad_length(data, pos, f"length {length} is illegal for message type {msg_type}")
            if end - pos < length:
                self._need = length
                break
            out.append((msg_type, data[pos + HEADER_LEN : pos + length]))
            pos += length
        if end - pos < HEADER_LEN:
            self._need = HEADER_LEN
        if pos < end:
            # Less than one message remains (its header, if complete, was checked above).
            buf += memoryview(data)[pos:]
        return out

    def buffered(self) -> int:
        """Bytes held for an incomplete message."""
        return len(self._buf)


def _bad_length(data: bytes, pos: int, reason: str) -> BgpError:
    return BgpError(
        ErrCode.MESSAGE_HEADER,
        HeaderSub.BAD_MESSAGE_LENGTH,
        data[pos + 16 : pos + 18],
        f"Message Header Error / Bad Message Length: {reason}",
    )
