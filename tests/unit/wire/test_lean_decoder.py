"""Memory of a full table on the decoding side (issue #6 point 7).

The decoder shares one int object per ASN and community value between the sets (and the
sessions) that carry it, in a bounded dict; its cache of raw attribute blocks is bounded; and
the daemon fixes glibc's mmap threshold so that freed big tables go back to the system.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from bgpd.connection import DECODER_CACHE
from bgpd.wire import UpdateDecoder
from bgpd.wire import update as update_mod
from rib.attrs import PathAttrs
from tests.unit.wire.build import as_path, attr, body, communities, med, next_hop, origin, v4, v6

BIG = (4_200_000_001, 3_000_000_007, 2_999_999_999)  # ints >= 2**30: one object each unless shared
COMMS = (0xFDE80001, 0xFDE80002)


def _ints(n: int) -> tuple[int, ...]:
    """Equal values as distinct int objects (as struct.unpack makes them)."""
    return tuple(int(str(v)) for v in range(n, n + 3))


def _announced(b: bytes, dec: UpdateDecoder) -> PathAttrs:
    upd = dec.decode(b)
    assert not upd.errors
    return upd.announce[0][1]


def test_sets_and_sessions_share_asn_and_community_ints() -> None:
    a = _announced(
        body(origin() + as_path(*BIG) + next_hop() + med(1) + communities(*COMMS), v4("10.0.0.0/24")),
        UpdateDecoder(four_octet=True, ebgp=True),
    )
    # Another session, another set (MED differs): the same value objects.
    b = _announced(
        body(origin() + as_path(*BIG) + next_hop() + med(2) + communities(*COMMS), v4("10.0.1.0/24")),
        UpdateDecoder(four_octet=True, ebgp=True),
    )
    assert a is not b
    assert a.as_path == b.as_path == ((2, BIG),)
    assert all(x is y for x, y in zip(a.as_path[0][1], b.as_path[0][1], strict=True))
    assert a.communities == b.communities == COMMS
    assert all(x is y for x, y in zip(a.communities, b.communities, strict=True))


def test_general_and_mp_paths_share_them_too() -> None:
    # An AS_SET segment and an unknown attribute take the general decoder; MP_REACH the MP path.
    unknown = attr(0xC0, 99, b"x")
    seg_set = attr(
        0x40,
        2,
        bytes((2, 3))
        + b"".join(n.to_bytes(4, "big") for n in BIG)
        + bytes((1, 1))
        + BIG[0].to_bytes(4, "big"),
    )
    dec = UpdateDecoder(four_octet=True, ebgp=True)
    general = _announced(
        body(origin() + seg_set + next_hop() + communities(*COMMS) + unknown, v4("10.2.0.0/24")), dec
    )
    nh6 = bytes.fromhex("20010db8000000000000000000000001")
    reach = attr(0x90, 14, b"\x00\x02\x01" + bytes((16,)) + nh6 + b"\x00" + v6("2001:db8:1::/48"))
    mp = _announced(body(origin() + as_path(*BIG) + communities(*COMMS) + reach), dec)
    fast = _announced(
        body(origin() + as_path(*BIG) + next_hop() + communities(*COMMS), v4("10.3.0.0/24")), dec
    )
    assert general.as_path == ((2, BIG), (1, (BIG[0],)))
    for attrs in (general, mp):
        assert all(x is y for x, y in zip(attrs.as_path[0][1], fast.as_path[0][1], strict=True))
        assert all(x is y for x, y in zip(attrs.communities, fast.communities, strict=True))
    assert general.as_path[1][1][0] is fast.as_path[0][1][0]


def test_shared_ints_stay_bounded() -> None:
    update_mod._INTS.clear()
    for start in range(0, update_mod._INTS_MAX + 10_000, 3):
        values = _ints(1 << 31 | start)
        shared = update_mod._shared_ints(values)
        assert shared == values
        # Checked before each tuple: at most one tuple (255 values) past the bound.
        assert len(update_mod._INTS) <= update_mod._INTS_MAX + 255
    # Cleared when full, and sharing again right after.
    assert len(update_mod._INTS) < update_mod._INTS_MAX
    again = update_mod._shared_ints(_ints(1 << 31 | start))
    assert all(x is y for x, y in zip(again, update_mod._shared_ints(_ints(1 << 31 | start)), strict=True))


def test_decoder_cache_is_bounded_and_still_hits() -> None:
    dec = UpdateDecoder(four_octet=True, ebgp=True, cache_size=4)
    for i in range(10):
        blk = origin() + as_path(65001, 4_000_000_000 + i) + next_hop()
        first = _announced(body(blk, v4("10.0.0.0/24")), dec)
        assert len(dec._cache) <= 4
        # The next UPDATE with the same block (a set over several messages) is a cache hit.
        assert dec._cache.get(blk) is first
        assert _announced(body(blk, v4("10.0.1.0/24")), dec) is first
    assert 1000 <= DECODER_CACHE <= 65_536  # sessions get a bounded cache, not one per table set


_PROBE = textwrap.dedent(
    """
    import sys
    from bgpd.allocator import tune_malloc

    def rss():
        return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

    if sys.argv[1] == "tuned":
        assert tune_malloc()
    a = bytearray(16 << 20)  # freed: glibc raises its mmap threshold to this size
    del a
    b = bytearray(12 << 20)  # a big table's block, now from the heap unless tuned
    c = [bytearray(2000) for _ in range(20000)]  # later allocations above it
    before = rss()
    del b
    print(before - rss())
    """
)


def test_tuned_malloc_gives_freed_big_blocks_back() -> None:
    root = Path(__file__).resolve().parents[3]

    def freed(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, mode], cwd=root, capture_output=True, text=True, check=True
        )
        return int(out.stdout)

    assert freed("tuned") >= 11  # MiB: the 12 MiB block went back to the system
    assert freed("default") <= 2  # the case it is for: glibc alone keeps it
