"""The error table of docs/wire-errors.md: one test per row, each with its own assertions.

Every row is a function registered in ``ROWS`` under the name the table's "test" column gives
(``test_error_table[NAME]``); ``test_table_matches_docs`` keeps the two in step. UPDATE cases
go through the decoder the session uses; message and OPEN cases through the sans-IO session
core (``BgpConnection``), so the reaction checked is the NOTIFICATION actually queued.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from bgpd.connection import (
    BgpConnection,
    RouteRefreshMarker,
    RouteRefreshReceived,
    SessionClosed,
    SessionEstablished,
    UpdateReceived,
)
from bgpd.fsm import State
from bgpd.wire import BgpError, Notification, Update, UpdateDecoder, encode_message, encode_route_refresh
from bgpd.wire.messages import Capabilities, CapCode
from bgpd.wire.open import encode_capability
from rib.prefix import Afi
from tests.unit.fsm.util import T0, established, opensent, peer_open, sent
from tests.unit.wire.build import (
    as_path,
    attr,
    body,
    communities,
    local_pref,
    mandatory,
    med,
    mp_reach,
    next_hop,
    origin,
    v4,
    v6,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "wire-errors.md"
NLRI = v4("10.0.0.0/8", "192.168.1.0/24")
KEYS = [b"\x08\x0a", b"\x18\xc0\xa8\x01"]
NH6 = bytes.fromhex("20010db8000000000000000000000001")
HEX = re.compile(r"\[hex [0-9a-f]+(\.\.\.)?\]$")

ROWS: dict[str, Callable[[], None]] = {}


def row(fn: Callable[[], None]) -> Callable[[], None]:
    ROWS[fn.__name__] = fn
    return fn


# --- helpers -----------------------------------------------------------------------------------


def dec(b: bytes, *, ebgp: bool = True, four: bool = True, **kw: object) -> Update:
    return UpdateDecoder(four_octet=four, ebgp=ebgp, **kw).decode(b)  # type: ignore[arg-type]


def logged(upd: Update, fragment: str) -> None:
    """The case is named and ends with a hex excerpt (what the session logs with the peer)."""
    hits = [e for e in upd.errors if fragment in e]
    assert hits, upd.errors
    assert all(HEX.search(e) for e in hits), hits


def withdrawn(upd: Update, fragment: str) -> None:
    assert upd.announce == []
    assert upd.withdraw == [(Afi.IPV4, KEYS)]
    logged(upd, fragment)
    assert any("treat-as-withdraw" in e for e in upd.errors)


def announced(upd: Update):  # type: ignore[no-untyped-def]
    assert len(upd.announce) == 1, upd
    afi, attrs, keys = upd.announce[0]
    assert afi is Afi.IPV4 and keys == KEYS
    return attrs


def reset(b: bytes, code: int, subcode: int, *, ebgp: bool = True, **kw: object) -> BgpError:
    with pytest.raises(BgpError) as exc:
        dec(b, ebgp=ebgp, **kw)
    assert (exc.value.code, exc.value.subcode) == (code, subcode)
    return exc.value


def notified(conn: BgpConnection, events: list[object], code: int, subcode: int) -> bytes:
    """The connection closed after queueing NOTIFICATION(code, subcode); returns its data."""
    assert conn.closed
    assert any(isinstance(e, SessionClosed) for e in events), events
    notes = [m for _t, m in sent(conn) if isinstance(m, Notification)]
    assert [(n.code, n.subcode) for n in notes] == [(code, subcode)], notes
    return notes[0].data


def open_body(version: int = 4, asn: int = 65002, hold: int = 90, rid: bytes = b"\x0a\x00\x00\x02") -> bytes:
    caps = encode_capability(1, b"\x00\x01\x00\x01") + encode_capability(65, struct.pack(">I", asn))
    params = bytes((2, len(caps))) + caps
    return struct.pack(">BHH4sB", version, asn, hold, rid, len(params)) + params


def in_opensent(msg: bytes) -> tuple[BgpConnection, list[object]]:
    conn = opensent()
    return conn, list(conn.receive_data(msg, T0))


def in_established(msg: bytes, **kw: object) -> tuple[BgpConnection, list[object]]:
    conn, _ = established(**kw)
    return conn, list(conn.receive_data(msg, T0 + 1))


# --- message header (RFC 4271 6.1) -------------------------------------------------------------


@row
def header_bad_marker() -> None:
    conn, ev = in_established(b"\x00" * 16 + b"\x00\x13\x04")
    notified(conn, ev, 1, 1)


@row
def header_length_below_19() -> None:
    conn, ev = in_established(b"\xff" * 16 + b"\x00\x12\x04")
    assert notified(conn, ev, 1, 2) == b"\x00\x12"


@row
def header_length_over_4096() -> None:
    conn, ev = in_established(b"\xff" * 16 + b"\xff\xff\x02")
    assert notified(conn, ev, 1, 2) == b"\xff\xff"
    assert conn._framer.buffered() == 0  # nothing waits for the 65535 announced bytes


@row
def header_extended_message_accepted() -> None:
    """RFC 8654: once both sides advertised it, a 65535-byte UPDATE is legal."""
    caps_open = encode_message(1, _open_with_extended())
    conn, _ = established(open_msg=caps_open)
    assert conn.negotiated is not None and conn.negotiated.extended_message
    nlri = v4(*(f"10.{i // 256}.{i % 256}.0/24" for i in range(16000)))
    msg = encode_message(2, body(mandatory(), nlri))
    assert len(msg) > 4096
    ev = conn.receive_data(msg, T0 + 1)
    assert not conn.closed
    [upd] = [e for e in ev if isinstance(e, UpdateReceived)]
    assert len(upd.update.announce[0][2]) == 16000


def _open_with_extended() -> bytes:
    caps = (
        encode_capability(1, b"\x00\x01\x00\x01")
        + encode_capability(65, struct.pack(">I", 65002))
        + encode_capability(CapCode.EXTENDED_MESSAGE)
    )
    params = bytes((2, len(caps))) + caps
    return struct.pack(">BHH4sB", 4, 65002, 90, b"\x0a\x00\x00\x02", len(params)) + params


@row
def header_bad_type() -> None:
    conn, ev = in_established(b"\xff" * 16 + b"\x00\x13\x09")
    assert notified(conn, ev, 1, 3) == b"\x09"


@row
def header_keepalive_with_body() -> None:
    conn, ev = in_established(encode_message(4, b"x"))
    assert notified(conn, ev, 1, 2) == b"\x00\x14"


@row
def header_open_too_short() -> None:
    conn, ev = in_opensent(b"\xff" * 16 + b"\x00\x1c\x01" + bytes(9))
    assert notified(conn, ev, 1, 2) == b"\x00\x1c"


@row
def route_refresh_bad_length() -> None:
    msg = encode_message(5, b"\x00\x01\x00\x01\x00")
    conn, ev = in_established(msg)
    assert notified(conn, ev, 7, 1) == msg


@row
def route_refresh_too_long_for_notification() -> None:
    """The echoed message is cut so that our NOTIFICATION fits in 4096 bytes."""
    msg = encode_message(5, bytes(4077))
    conn, ev = in_established(msg)
    data = notified(conn, ev, 7, 1)
    assert data == msg[: 4096 - 21]


@row
def notification_too_short() -> None:
    """A header error (RFC 4271 6.1 names the NOTIFICATION minimum length), answered as one."""
    conn, ev = in_established(encode_message(3, b"\x06"))
    assert notified(conn, ev, 1, 2) == b"\x00\x14"


@row
def update_before_established() -> None:
    conn, ev = in_opensent(encode_message(2, body()))
    notified(conn, ev, 5, 1)


# --- OPEN (RFC 4271 6.2, RFC 5492) ---------------------------------------------------------------


@row
def open_bad_version() -> None:
    conn, ev = in_opensent(encode_message(1, open_body(version=3)))
    assert notified(conn, ev, 2, 1) == b"\x00\x04"


@row
def open_bad_peer_as() -> None:
    conn, ev = in_opensent(peer_open(asn=65099))
    assert notified(conn, ev, 2, 2) == (65099).to_bytes(2, "big")


@row
def open_bad_bgp_identifier() -> None:
    conn, ev = in_opensent(encode_message(1, open_body(rid=bytes(4))))
    notified(conn, ev, 2, 3)


@row
def open_unsupported_optional_parameter() -> None:
    b = struct.pack(">BHH4sB", 4, 65002, 90, b"\x0a\x00\x00\x02", 4) + b"\x01\x02ab"
    conn, ev = in_opensent(encode_message(1, b))
    notified(conn, ev, 2, 4)


@row
def open_unacceptable_hold_time() -> None:
    conn, ev = in_opensent(encode_message(1, open_body(hold=2)))
    notified(conn, ev, 2, 6)


@row
def open_malformed_parameters() -> None:
    b = open_body()
    conn, ev = in_opensent(encode_message(1, b[:-1]))  # capability overruns its parameter
    notified(conn, ev, 2, 0)


@row
def open_unknown_capability_kept() -> None:
    caps = Capabilities(unknown=[(200, b"\x01\x02")])
    msg = encode_message(1, _open_with(caps))
    conn, ev = established(open_msg=msg)
    assert not conn.closed and any(isinstance(e, SessionEstablished) for e in ev)
    assert conn.negotiated is not None
    assert conn.negotiated.peer_capabilities.unknown == [(200, b"\x01\x02")]
    assert conn.negotiated.capabilities_json()["peer"]["unknown"] == [{"code": 200, "value": "0102"}]  # type: ignore[index]


@row
def open_malformed_optional_capability_kept() -> None:
    """A graceful-restart capability of an impossible length is not fatal: kept raw, shown."""
    caps = Capabilities(unknown=[(CapCode.GRACEFUL_RESTART, b"\x00\x78\x00")])
    conn, _ev = established(open_msg=encode_message(1, _open_with(caps)))
    assert conn.state is State.ESTABLISHED
    assert conn.negotiated is not None
    assert conn.negotiated.peer_capabilities.graceful_restart is None
    assert conn.negotiated.peer_capabilities.unknown == [(64, b"\x00\x78\x00")]


def _open_with(caps: Capabilities) -> bytes:
    from bgpd.wire.open import encode_open

    return encode_open(65002, 90, "10.0.0.2", [(1, 1), (2, 1)], capabilities=caps)[19:]


# --- UPDATE structure (RFC 7606 4, 5) ----------------------------------------------------------


@row
def update_withdrawn_length_overrun() -> None:
    reset(b"\x00\x10\x00\x00", 3, 1)


@row
def update_attribute_length_overrun() -> None:
    reset(b"\x00\x00\x00\x40" + mandatory(), 3, 1)


@row
def update_nlri_overruns_message() -> None:
    reset(body(mandatory(), v4("10.0.0.0/8") + b"\x18\x0a\x00"), 3, 10)


@row
def update_prefix_length_too_long() -> None:
    reset(body(mandatory(), b"\x21" + bytes(5)), 3, 10)


@row
def update_withdrawn_prefix_invalid() -> None:
    reset(body(withdrawn=b"\x40" + bytes(8)), 3, 10)


@row
def update_attribute_overruns_block_with_nlri() -> None:
    bad = mandatory() + b"\x40\x05\x09\x00"  # LOCAL_PREF claims 9 bytes, 1 left
    withdrawn(dec(body(bad, NLRI)), "overruns")


@row
def update_attribute_overruns_block_without_nlri() -> None:
    reset(body(mandatory() + b"\x40\x05\x09\x00"), 3, 1)


@row
def update_nlri_without_attributes() -> None:
    withdrawn(dec(body(b"", NLRI)), "without path attributes")


# --- attribute flags, duplicates, presence (RFC 7606 3) -----------------------------------------


@row
def flags_error_well_known() -> None:
    withdrawn(dec(body(attr(0xC0, 1, b"\x00") + as_path(65001) + next_hop(), NLRI)), "ORIGIN flags")


@row
def flags_error_optional() -> None:
    withdrawn(dec(body(mandatory() + attr(0x40, 4, b"\x00\x00\x00\x01"), NLRI)), "MULTI_EXIT_DISC flags")


@row
def flags_error_as4_path() -> None:
    upd = dec(
        body(
            origin() + as_path(65001, four=False) + next_hop() + attr(0x80, 17, b"\x02\x01\x00\x01\x00\x00"),
            NLRI,
        ),
        four=False,
    )
    announced(upd)
    logged(upd, "AS4_PATH flags 0x80: attribute discarded")


@row
def duplicate_attribute() -> None:
    upd = dec(body(mandatory() + med(5) + med(7), NLRI))
    assert announced(upd).med == 5
    logged(upd, "repeated MULTI_EXIT_DISC discarded")


@row
def duplicate_mp_reach() -> None:
    one = mp_reach(v6("2001:db8::/32"), NH6)
    reset(body(origin() + as_path(65001) + one + one), 3, 1)


@row
def missing_well_known() -> None:
    for attrs, name in (
        (as_path(65001) + next_hop(), "ORIGIN"),
        (origin() + next_hop(), "AS_PATH"),
        (origin() + as_path(65001), "NEXT_HOP"),
    ):
        withdrawn(dec(body(attrs, NLRI)), f"missing {name}")


@row
def missing_attributes_without_nlri() -> None:
    upd = dec(body(med(1), withdrawn=v4("10.0.0.0/8")))
    assert upd.withdraw == [(Afi.IPV4, [b"\x08\x0a"])] and upd.errors == []


@row
def unrecognized_well_known() -> None:
    err = reset(body(mandatory() + attr(0x40, 99, b"ab"), NLRI), 3, 2)
    assert err.data == b"\x40\x63\x02ab"


@row
def unknown_optional_transitive() -> None:
    attrs = announced(dec(body(mandatory() + attr(0xC0, 99, b"xyz"), NLRI)))
    assert attrs.unknown == ((0xE0, 99, b"xyz"),)  # Partial set


@row
def unknown_optional_non_transitive() -> None:
    upd = dec(body(mandatory() + attr(0x80, 99, b"xyz"), NLRI))
    assert announced(upd).unknown == () and upd.errors == []


# --- per attribute (RFC 7606 7) ----------------------------------------------------------------


@row
def origin_bad_value() -> None:
    withdrawn(dec(body(origin(3) + as_path(65001) + next_hop(), NLRI)), "ORIGIN value 3")


@row
def origin_bad_length() -> None:
    withdrawn(dec(body(attr(0x40, 1, b"\x00\x00") + as_path(65001) + next_hop(), NLRI)), "ORIGIN length 2")


@row
def as_path_malformed() -> None:
    bad = attr(0x40, 2, b"\x02\x03\x00\x00\xfd\xe9")  # 3 ASNs announced, 1 present
    withdrawn(dec(body(origin() + bad + next_hop(), NLRI)), "AS_PATH is malformed")


@row
def as_path_zero_asn() -> None:
    withdrawn(dec(body(origin() + as_path(0) + next_hop(), NLRI)), "AS 0")


@row
def as_path_confed_from_ebgp() -> None:
    path = as_path(65001, seg_type=3)
    withdrawn(dec(body(origin() + path + next_hop(), NLRI), ebgp=True), "confederation segments")


@row
def as_path_confed_from_ibgp() -> None:
    path = as_path(65001, seg_type=3)
    attrs = announced(dec(body(origin() + path + next_hop(), NLRI), ebgp=False))
    assert attrs.as_path == ((3, (65001,)),)


@row
def next_hop_bad_length() -> None:
    withdrawn(
        dec(body(origin() + as_path(65001) + attr(0x40, 3, b"\x0a\x00\x00"), NLRI)), "NEXT_HOP length 3"
    )


@row
def next_hop_not_a_host() -> None:
    withdrawn(dec(body(origin() + as_path(65001) + next_hop("224.0.0.5"), NLRI)), "not a host address")


@row
def med_bad_length() -> None:
    withdrawn(dec(body(mandatory() + attr(0x80, 4, b"\x00\x01"), NLRI)), "MULTI_EXIT_DISC length 2")


@row
def local_pref_from_ebgp() -> None:
    upd = dec(body(mandatory() + local_pref(200), NLRI), ebgp=True)
    assert announced(upd).local_pref is None
    logged(upd, "LOCAL_PREF from an eBGP peer discarded")


@row
def local_pref_bad_length() -> None:
    withdrawn(dec(body(mandatory() + attr(0x40, 5, b"\x00"), NLRI), ebgp=False), "LOCAL_PREF length 1")


@row
def atomic_aggregate_bad_length() -> None:
    upd = dec(body(mandatory() + attr(0x40, 6, b"\x01"), NLRI))
    assert announced(upd).atomic_aggregate is False
    logged(upd, "ATOMIC_AGGREGATE length 1: attribute discarded")


@row
def aggregator_bad_length() -> None:
    upd = dec(body(mandatory() + attr(0xC0, 7, bytes(7)), NLRI))
    assert announced(upd).aggregator is None
    logged(upd, "AGGREGATOR length 7: attribute discarded")


@row
def communities_bad_length() -> None:
    withdrawn(dec(body(mandatory() + attr(0xC0, 8, bytes(6)), NLRI)), "COMMUNITIES length 6")


@row
def originator_id_bad_length() -> None:
    withdrawn(dec(body(mandatory() + attr(0x80, 9, bytes(3)), NLRI), ebgp=False), "ORIGINATOR_ID length 3")


@row
def cluster_list_bad_length() -> None:
    withdrawn(dec(body(mandatory() + attr(0x80, 10, bytes(5)), NLRI), ebgp=False), "CLUSTER_LIST length 5")


@row
def ext_communities_bad_length() -> None:
    withdrawn(dec(body(mandatory() + attr(0xC0, 16, bytes(9)), NLRI)), "EXTENDED_COMMUNITIES length 9")


@row
def large_community_bad_length() -> None:
    withdrawn(dec(body(mandatory() + attr(0xC0, 32, bytes(13)), NLRI)), "LARGE_COMMUNITY length 13")


@row
def as4_path_malformed() -> None:
    upd = dec(
        body(origin() + as_path(65001, four=False) + next_hop() + attr(0xC0, 17, b"\x02\x02\x00\x00"), NLRI),
        four=False,
    )
    assert announced(upd).as_path == ((2, (65001,)),)
    logged(upd, "AS4_PATH is malformed")


@row
def as4_aggregator_bad_length() -> None:
    upd = dec(
        body(origin() + as_path(65001, four=False) + next_hop() + attr(0xC0, 18, bytes(5)), NLRI), four=False
    )
    announced(upd)
    logged(upd, "AS4_AGGREGATOR length 5: attribute discarded")


@row
def as4_path_from_four_octet_peer() -> None:
    upd = dec(body(mandatory(65001) + attr(0xC0, 17, b"\x02\x01\x00\x01\x00\x00"), NLRI), four=True)
    assert announced(upd).as_path == ((2, (65001,)),)
    logged(upd, "AS4_PATH from a 4-octet AS peer discarded")


@row
def bgp_ls_corrupted_value() -> None:
    """Type 29 with the right flags but garbage inside: ours to drop, never a reset."""
    upd = dec(body(mandatory() + attr(0x80, 29, b"\x04\x00\x00\x05garbage"), NLRI))
    assert announced(upd).unknown == ()


@row
def bgp_ls_flagged_transitive() -> None:
    """The 2023 incident: type 29 arriving optional transitive is discarded, not propagated."""
    upd = dec(body(mandatory() + attr(0xC0, 29, b"\x04\x00\x00\x05garbage"), NLRI))
    assert announced(upd).unknown == ()
    logged(upd, "BGP-LS flags 0xc0: attribute discarded")


@row
def bgp_ls_flagged_well_known() -> None:
    upd = dec(body(mandatory() + attr(0x40, 29, b"\xff"), NLRI))
    assert announced(upd).unknown == ()
    logged(upd, "BGP-LS flags 0x40: attribute discarded")


# --- MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760, RFC 7606 7.11) ---------------------------------


@row
def mp_reach_unknown_afi() -> None:
    upd = dec(body(origin() + as_path(65001) + mp_reach(b"\x08\x0a", b"\x0a\x00\x00\x01", afi=25)))
    assert upd.announce == [] and upd.withdraw == []
    logged(upd, "MP_REACH_NLRI for AFI 25 SAFI 1 ignored")


@row
def mp_reach_family_not_negotiated() -> None:
    upd = dec(body(origin() + as_path(65001) + mp_reach(v6("2001:db8::/32"), NH6)), families=[1])
    assert upd.announce == [] and upd.withdraw == []
    logged(upd, "MP_REACH_NLRI for AFI 2 SAFI 1 ignored")


@row
def mp_reach_bad_next_hop_length() -> None:
    reset(body(origin() + as_path(65001) + mp_reach(v6("2001:db8::/32"), NH6[:8])), 3, 1)


@row
def mp_reach_flags_error() -> None:
    bad = attr(0xD0, 14, struct.pack(">HBB", 2, 1, 16) + NH6 + b"\x00" + v6("2001:db8::/32"))
    reset(body(origin() + as_path(65001) + bad), 3, 1)


@row
def mp_reach_next_hop_multicast() -> None:
    upd = dec(body(origin() + as_path(65001) + mp_reach(v6("2001:db8::/32"), b"\xff\x02" + bytes(14))))
    assert upd.announce == [] and upd.withdraw == [(Afi.IPV6, [b"\x20\x20\x01\x0d\xb8"])]
    logged(upd, "not a unicast address")


@row
def mp_unreach_too_short() -> None:
    reset(body(attr(0x90, 15, b"\x00\x02")), 3, 1)


@row
def mp_reach_nlri_invalid() -> None:
    reset(body(origin() + as_path(65001) + mp_reach(b"\x81" + bytes(17), NH6)), 3, 10)


@row
def add_path_nlri_truncated() -> None:
    reset(body(mandatory(), b"\x00\x00\x00\x01\x18\x0a"), 3, 10, add_path_rx=[1])


# --- attributes and messages where they do not belong -------------------------------------------


@row
def next_hop_in_mp_only_update() -> None:
    """RFC 4760 3: NEXT_HOP without IPv4 NLRI is ignored (even a bad one)."""
    attrs = origin() + as_path(65001) + attr(0x40, 3, b"\x00\x00") + mp_reach(v6("2001:db8::/32"), NH6)
    upd = dec(body(attrs))
    assert [(a, k) for a, _at, k in upd.announce] == [(Afi.IPV6, [b"\x20\x20\x01\x0d\xb8"])]


@row
def attributes_in_withdraw_only_update() -> None:
    upd = dec(body(communities(1) + med(2), withdrawn=v4("10.0.0.0/8")))
    assert upd.announce == [] and upd.withdraw == [(Afi.IPV4, [b"\x08\x0a"])]


@row
def ibgp_attributes_from_ebgp() -> None:
    attrs = mandatory() + attr(0x80, 9, b"\x0a\x00\x00\x09") + attr(0x80, 10, b"\x0a\x00\x00\x0a")
    upd = dec(body(attrs, NLRI), ebgp=True)
    got = announced(upd)
    assert got.originator_id is None and got.cluster_list == ()
    logged(upd, "ORIGINATOR_ID from an eBGP peer discarded")
    logged(upd, "CLUSTER_LIST from an eBGP peer discarded")


@row
def route_refresh_family_not_negotiated() -> None:
    conn, ev = in_established(encode_route_refresh(2, 1), open_msg=peer_open(afis=[(1, 1)]))
    assert not conn.closed and not any(isinstance(e, RouteRefreshReceived) for e in ev)


@row
def route_refresh_unknown_subtype() -> None:
    conn, ev = in_established(encode_route_refresh(1, 1, 7))
    assert not conn.closed and ev == []


@row
def borr_without_enhanced_route_refresh() -> None:
    conn, ev = in_established(encode_route_refresh(1, 1, 1), open_msg=peer_open())
    assert not conn.closed
    assert not any(isinstance(e, RouteRefreshMarker) for e in ev)


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ROWS))
def test_error_table(name: str) -> None:
    ROWS[name]()


def test_table_matches_docs() -> None:
    """Every row of docs/wire-errors.md names one of these tests, and every test has a row."""
    names = re.findall(r"`test_error_table\[([a-z0-9_]+)\]`", DOC.read_text())
    assert len(names) == len(set(names)), "a test is named by two rows"
    assert sorted(names) == sorted(ROWS)
