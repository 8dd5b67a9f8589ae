"""C allocator settings for a daemon that holds a full table.

A full table lives in a few very large dict tables (Loc-RIB, the FIB's installed state) and,
while the kernel lags behind the RIB, in the FIB writer's pending dicts, all of which grow by
allocating a table twice the size and freeing the old one. glibc serves such blocks from
mmap only above a threshold that it raises to the largest block freed so far (up to 32 MiB),
so after the first few resizes the big tables come from the heap, where a freed one is not
given back to the system while anything lives above it, and the writer thread's own arena
keeps its share likewise. A fixed threshold keeps every block of 128 KiB or more in its own
mapping, returned when freed: a 1M-prefix load peaks ~35 MiB lower and ends ~50 MiB lower
(bench/rib_import.py --wire --fib-rate 70000). Small objects are pymalloc's, unaffected.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's own default, but no longer raised dynamically


def tune_malloc() -> bool:
    """Fix glibc's mmap threshold. False where that is not possible (another libc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
