"""BGP error codes (RFC 4271 section 4.5 and later RFCs) and the exception the codec raises."""

from __future__ import annotations

from enum import IntEnum


class ErrCode(IntEnum):
    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH = 7
    SEND_HOLD_TIMER_EXPIRED = 8  # RFC 9687


class HeaderSub(IntEnum):
    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSub(IntEnum):
    UNSUPPORTED_VERSION = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7
    ROLE_MISMATCH = 11


class UpdateSub(IntEnum):
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN_ATTRIBUTE = 6
    INVALID_NEXT_HOP_ATTRIBUTE = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class FsmSub(IntEnum):
    UNSPECIFIED = 0
    UNEXPECTED_IN_OPENSENT = 1
    UNEXPECTED_IN_OPENCONFIRM = 2
    UNEXPECTED_IN_ESTABLISHED = 3


class CeaseSub(IntEnum):
    MAX_PREFIXES = 1
    ADMIN_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMIN_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIG_CHANGE = 6
    CONNECTION_COLLISION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9


ERROR_NAMES: dict[int, str] = {
    1: "Message Header Error",
    2: "OPEN Message Error",
    3: "UPDATE Message Error",
    4: "Hold Timer Expired",
    5: "Finite State Machine Error",
    6: "Cease",
    7: "ROUTE-REFRESH Message Error",
    8: "Send Hold Timer Expired",
}

SUBCODE_NAMES: dict[int, dict[int, str]] = {
    1: {1: "Connection Not Synchronized", 2: "Bad Message Length", 3: "Bad Message Type"},
    2: {
        1: "Unsupported Version Number",
        2: "Bad Peer AS",
        3: "Bad BGP Identifier",
        4: "Unsupported Optional Parameter",
        6: "Unacceptable Hold Time",
        7: "Unsupported Capability",
    },
    3: {
        1: "Malformed Attribute List",
        2: "Unrecognized Well-known Attribute",
        3: "Missing Well-known Attribute",
        4: "Attribute Flags Error",
        5: "Attribute Length Error",
        6: "Invalid ORIGIN Attribute",
        8: "Invalid NEXT_HOP Attribute",
        9: "Optional Attribute Error",
        10: "Invalid Network Field",
        11: "Malformed AS_PATH",
    },
    5: {
        1: "Unexpected Message in OpenSent",
        2: "Unexpected Message in OpenConfirm",
        3: "Unexpected Message in Established",
    },
    6: {
        1: "Maximum Number of Prefixes Reached",
        2: "Administrative Shutdown",
        3: "Peer De-configured",
        4: "Administrative Reset",
        5: "Connection Rejected",
        6: "Other Configuration Change",
        7: "Connection Collision Resolution",
        8: "Out of Resources",
        9: "Hard Reset",
    },
}


def describe_error(code: int, subcode: int) -> str:
    name = ERROR_NAMES.get(code, f"error {code}")
    sub = SUBCODE_NAMES.get(code, {}).get(subcode)
    return f"{name} / {sub}" if sub else f"{name} (subcode {subcode})"


class BgpError(Exception):
    """A protocol error that ends the session with a NOTIFICATION(code, subcode, data)."""

    def __init__(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        self.code = code
        self.subcode = subcode
        self.data = data
        self.reason = reason or describe_error(code, subcode)
        super().__init__(self.reason)
