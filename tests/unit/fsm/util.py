"""Helpers for the sans-IO connection tests: build peer messages, read what we sent."""

from __future__ import annotations

from bgpd.connection import BgpConnection, ConnParams, Event
from bgpd.wire import (
    MessageFramer,
    decode_message,
    encode_keepalive,
    encode_open,
)
from bgpd.wire.messages import Message, MsgType
from rib.prefix import Afi

LOCAL_ASN = 65001
PEER_ASN = 65002
LOCAL_ID = "10.0.0.1"
PEER_ID = "10.0.0.2"
T0 = 1000.0


def params(**kw: object) -> ConnParams:
    base: dict[str, object] = {
        "local_asn": LOCAL_ASN,
        "router_id": LOCAL_ID,
        "peer_asn": PEER_ASN,
        "hold_time": 90,
        "afis": [Afi.IPV4, Afi.IPV6],
        "peer_address": "192.0.2.2",
    }
    base.update(kw)
    return ConnParams(**base)  # type: ignore[arg-type]


def peer_open(
    asn: int = PEER_ASN,
    hold: int = 90,
    rid: str = PEER_ID,
    afis: list[tuple[int, int]] | None = None,
    route_refresh: bool = True,
    four_octet: bool = True,
) -> bytes:
    fams = [(1, 1), (2, 1)] if afis is None else afis
    return encode_open(asn, hold, rid, fams, route_refresh=route_refresh, four_octet=four_octet)


def sent(conn: BgpConnection) -> list[tuple[int, Message | bytes]]:
    """Decode everything the connection queued: (type, message); UPDATEs stay raw bodies."""
    out: list[tuple[int, Message | bytes]] = []
    for msg_type, body in MessageFramer().feed(conn.data_to_send()):
        if msg_type == MsgType.UPDATE:
            out.append((msg_type, body))
        else:
            out.append((msg_type, decode_message(msg_type, body, None)))
    return out


def sent_types(conn: BgpConnection) -> list[int]:
    return [t for t, _m in sent(conn)]


def opensent(now: float = T0, **kw: object) -> BgpConnection:
    conn = BgpConnection(params(**kw), now)
    conn.connection_made(now)
    conn.data_to_send()
    return conn


def established(
    now: float = T0, open_msg: bytes | None = None, **kw: object
) -> tuple[BgpConnection, list[Event]]:
    conn = opensent(now, **kw)
    events = conn.receive_data(open_msg if open_msg is not None else peer_open(), now)
    events += conn.receive_data(encode_keepalive(), now)
    conn.data_to_send()
    return conn, events
