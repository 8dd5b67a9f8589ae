"""KEEPALIVE, NOTIFICATION and ROUTE-REFRESH (RFC 4271 4.4/4.5, RFC 2918, RFC 7313), and dispatch."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from bgpd.wire.errors import BgpError, ErrCode, FsmSub, HeaderSub
from bgpd.wire.framing import encode_message
from bgpd.wire.messages import HEADER_LEN, Keepalive, Message, MsgType, Notification, RouteRefresh
from bgpd.wire.open import decode_open

if TYPE_CHECKING:
    from bgpd.wire.update import UpdateDecoder

_KEEPALIVE = encode_message(MsgType.KEEPALIVE, b"")
_RR = struct.Struct(">HBB")

# RFC 7313 7: ROUTE-REFRESH Message Error / Invalid Message Length.
RR_INVALID_LENGTH = 1


def encode_keepalive() -> bytes:
    return _KEEPALIVE


def encode_notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return encode_message(MsgType.NOTIFICATION, bytes((code, subcode)) + data)


def decode_notification(body: bytes) -> Notification:
    if len(body) < 2:
        # Never answered with a NOTIFICATION (RFC 4271 6.4); the caller just closes.
        raise BgpError(ErrCode.MESSAGE_HEADER, HeaderSub.BAD_MESSAGE_LENGTH, _len_field(body))
    return Notification(body[0], body[1], body[2:])


def encode_route_refresh(afi: int, safi: int, subtype: int = 0) -> bytes:
    """ROUTE-REFRESH; ``subtype`` 1/2 are the RFC 7313 BoRR/EoRR markers."""
    return encode_message(MsgType.ROUTE_REFRESH, _RR.pack(afi, subtype, safi))


def decode_route_refresh(body: bytes) -> RouteRefresh:
    if len(body) != _RR.size:
        raise BgpError(
            ErrCode.ROUTE_REFRESH,
            RR_INVALID_LENGTH,
            encode_message(MsgType.ROUTE_REFRESH, body),
            f"ROUTE-REFRESH of {len(body)} body bytes",
        )
    afi, subtype, safi = _RR.unpack(body)
    return RouteRefresh(afi, safi, subtype)


def _len_field(body: bytes) -> bytes:
    return (HEADER_LEN + len(body)).to_bytes(2, "big")


def decode_message(msg_type: int, body: bytes, update_decoder: UpdateDecoder | None) -> Message:
    """Decode one framed message. ``update_decoder`` is None before the session is established,
    where an UPDATE is a Finite State Machine Error."""
    if msg_type == MsgType.UPDATE:
        if update_decoder is None:
            raise BgpError(ErrCode.FSM, FsmSub.UNSPECIFIED, b"", "UPDATE before the session is established")
        return update_decoder.decode(body)
    if msg_type == MsgType.KEEPALIVE:
        if body:
            raise BgpError(
                ErrCode.MESSAGE_HEADER,
                HeaderSub.BAD_MESSAGE_LENGTH,
                _len_field(body),
                f"KEEPALIVE with {len(body)} body bytes",
            )
        return Keepalive()
    if msg_type == MsgType.OPEN:
        return decode_open(body)
    if msg_type == MsgType.NOTIFICATION:
        return decode_notification(body)
    if msg_type == MsgType.ROUTE_REFRESH:
        return decode_route_refresh(body)
    raise BgpError(
        ErrCode.MESSAGE_HEADER,
        HeaderSub.BAD_MESSAGE_TYPE,
        bytes((msg_type & 0xFF,)),
        f"unknown message type {msg_type}",
    )
