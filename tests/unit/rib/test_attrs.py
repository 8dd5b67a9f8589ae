from __future__ import annotations

import gc

import pytest

from rib.attrs import (
    ORIGIN_CODES,
    ORIGIN_NAMES,
    Origin,
    PathAttrs,
    SegType,
    format_community,
    intern,
    interned_count,
    parse_community,
    parse_large_community,
    sweep,
)
from tests.unit.rib.helpers import ip

SEQ, SET = SegType.AS_SEQUENCE, SegType.AS_SET
CSEQ, CSET = SegType.AS_CONFED_SEQUENCE, SegType.AS_CONFED_SET


# --- interning -------------------------------------------------------------------------------------


def test_intern_returns_the_same_object_for_equal_sets() -> None:
    a = intern(PathAttrs(as_path=((SEQ, (65001, 65002)),), next_hop=ip("192.0.2.1"), med=10))
    b = intern(PathAttrs(as_path=((SEQ, (65001, 65002)),), next_hop=ip("192.0.2.1"), med=10))
    assert a is b
    # An equal but not yet interned object maps to the registered one.
    fresh = PathAttrs(as_path=((SEQ, (65001, 65002)),), next_hop=ip("192.0.2.1"), med=10)
    assert fresh is not a and intern(fresh) is a


def test_intern_keeps_different_sets_apart() -> None:
    a = intern(PathAttrs(med=10))
    b = intern(PathAttrs(med=11))
    c = intern(PathAttrs(med=10, communities=(1,)))
    assert a is not b and a is not c and b is not c
    assert a != b
    assert hash(a) == hash(PathAttrs(med=10))


def test_with_and_prepend_return_interned_objects() -> None:
    a = intern(PathAttrs(med=1))
    assert a.with_(med=2) is intern(PathAttrs(med=2))
    assert a.with_(med=1) is a
    assert a.prepend(65000) is intern(PathAttrs(med=1, as_path=((SEQ, (65000,)),)))


def test_interned_sets_are_released_when_unused() -> None:
    """The intern table must not keep attribute sets alive (a full table churns through many).

    Unused sets are dropped by a sweep (run automatically as the table grows); sets still in
    use survive it.
    """
    gc.collect()
    sweep()
    before = interned_count()
    a = intern(PathAttrs(med=987_654_321, communities=(42,)))
    kept = intern(PathAttrs(med=123_456_789))
    assert interned_count() == before + 2
    del a
    assert sweep() == 1
    assert interned_count() == before + 1
    assert intern(PathAttrs(med=123_456_789)) is kept
    # And interning again after release works (a new instance is registered).
    b = intern(PathAttrs(med=987_654_321, communities=(42,)))
    assert intern(PathAttrs(med=987_654_321, communities=(42,))) is b


def test_attrs_are_frozen() -> None:
    a = intern(PathAttrs(med=5))
    with pytest.raises(AttributeError):
        a.med = 6  # type: ignore[misc]


# --- AS path -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_path", "length"),
    [
        ((), 0),
        (((SEQ, (1, 2, 3)),), 3),
        (((SEQ, (1, 2)), (SET, (3, 4, 5))), 3),  # an AS_SET counts 1 however many members
        (((SET, (3, 4, 5)),), 1),
        (((CSEQ, (64512, 64513)), (SEQ, (1, 2))), 2),  # confederation segments count 0
        (((CSET, (64512, 64513)), (SEQ, (1,))), 1),
        (((CSEQ, (64512,)),), 0),
    ],
)
def test_as_path_len(as_path: tuple[tuple[int, tuple[int, ...]], ...], length: int) -> None:
    assert PathAttrs(as_path=as_path).as_path_len() == length


@pytest.mark.parametrize(
    ("as_path", "neighbor"),
    [
        ((), None),
        (((SEQ, (65001, 65002)),), 65001),
        (((SET, (65001, 65002)),), None),  # an aggregate's AS_SET names no neighbour
        (((CSEQ, (64512,)), (SEQ, (65001,))), 65001),  # confederation segments are skipped
        (((CSET, (64512,)), (CSEQ, (64513,)), (SEQ, (65009, 1))), 65009),
        (((CSEQ, (64512,)),), None),
        (((SEQ, ()),), None),
    ],
)
def test_neighbor_as(as_path: tuple[tuple[int, tuple[int, ...]], ...], neighbor: int | None) -> None:
    assert PathAttrs(as_path=as_path).neighbor_as() == neighbor


def test_as_path_flat_and_contains() -> None:
    a = PathAttrs(as_path=((SEQ, (1, 2)), (SET, (3, 4))))
    assert a.as_path_flat() == [1, 2, 3, 4]
    assert a.contains_as(4) and a.contains_as(1)
    assert not a.contains_as(5)


def test_prepend_extends_the_leading_sequence() -> None:
    a = intern(PathAttrs(as_path=((SEQ, (65001, 65002)), (SET, (7, 8)))))
    b = a.prepend(65000)
    assert b.as_path == ((SEQ, (65000, 65001, 65002)), (SET, (7, 8)))
    assert a.as_path == ((SEQ, (65001, 65002)), (SET, (7, 8)))  # unchanged
    assert a.prepend(65000, times=3).as_path == ((SEQ, (65000, 65000, 65000, 65001, 65002)), (SET, (7, 8)))
    assert b.as_path_len() == a.as_path_len() + 1


def test_prepend_to_empty_path() -> None:
    assert PathAttrs().prepend(65000).as_path == ((SEQ, (65000,)),)
    assert PathAttrs().prepend(65000, 2).as_path == ((SEQ, (65000, 65000)),)


def test_prepend_starts_a_new_segment_before_an_as_set() -> None:
    a = PathAttrs(as_path=((SET, (1, 2)),))
    assert a.prepend(65000).as_path == ((SEQ, (65000,)), (SET, (1, 2)))


def test_prepend_starts_a_new_segment_before_confed_segments() -> None:
    a = PathAttrs(as_path=((CSEQ, (64512,)), (SEQ, (1,))))
    assert a.prepend(65000).as_path == ((SEQ, (65000,)), (CSEQ, (64512,)), (SEQ, (1,)))


def test_prepend_starts_a_new_segment_when_the_first_is_full() -> None:
    full = tuple(range(1, 256))  # 255 ASNs: the most one segment can hold
    a = PathAttrs(as_path=((SEQ, full),))
    assert a.prepend(65000).as_path == ((SEQ, (65000,)), (SEQ, full))
    almost = PathAttrs(as_path=((SEQ, full[:254]),))
    assert almost.prepend(65000).as_path == ((SEQ, (65000, *full[:254])),)
    # Prepending several that would overflow also opens a new segment.
    assert almost.prepend(65000, 2).as_path == ((SEQ, (65000, 65000)), (SEQ, full[:254]))


# --- communities and origin ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("65010:100", (65010 << 16) | 100),
        ("0:0", 0),
        ("65535:65535", 0xFFFFFFFF),
        ("no_export", 0xFFFFFF01),
        ("NO_EXPORT", 0xFFFFFF01),
        ("no_advertise", 0xFFFFFF02),
        ("no_export_subconfed", 0xFFFFFF03),
        ("no_peer", 0xFFFFFF04),
        ("blackhole", 0xFFFF029A),
        ("graceful_shutdown", 0xFFFF0000),
        (" no_export ", 0xFFFFFF01),
    ],
)
def test_parse_community(text: str, value: int) -> None:
    assert parse_community(text) == value


@pytest.mark.parametrize(
    "text", ["", "65010", "65536:1", "1:65536", "-1:5", "a:b", "1:2:3", "no-export", "x"]
)
def test_parse_community_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_community(text)


def test_format_community_round_trip() -> None:
    assert format_community((65010 << 16) | 100) == "65010:100"
    for text in ("0:0", "65535:65535", "1:2"):
        assert format_community(parse_community(text)) == text


def test_parse_large_community() -> None:
    assert parse_large_community("65000:1:2") == (65000, 1, 2)
    assert parse_large_community("4294967295:0:4294967295") == (0xFFFFFFFF, 0, 0xFFFFFFFF)
    for bad in ("1:2", "1:2:3:4", "4294967296:0:0", "a:b:c", "-1:0:0"):
        with pytest.raises(ValueError):
            parse_large_community(bad)


def test_origin_tables() -> None:
    assert Origin.IGP < Origin.EGP < Origin.INCOMPLETE
    assert ORIGIN_CODES == {"i": Origin.IGP, "e": Origin.EGP, "?": Origin.INCOMPLETE}
    assert ORIGIN_NAMES[Origin.INCOMPLETE] == "incomplete"
    assert PathAttrs().origin == Origin.IGP
