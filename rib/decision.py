"""The BGP decision process (RFC 4271 9.1.2.2), one small function per step.

Each step returns <0 when ``a`` is better, >0 when ``b`` is better, 0 on a tie. ``compare``
runs them in order and names the step that decided, so `show routes --all` can say why a
path lost. ECMP candidates are the paths that tie with the best on every step before the
router-id step (BIRD's "mergable", FRR's multipath), with a usable, distinct next hop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rib.route import Path, SourceKind

DEFAULT_LOCAL_PREF = 100


def _local_pref(p: Path) -> int:
    lp = p.attrs.local_pref
    return DEFAULT_LOCAL_PREF if lp is None else lp


def step_local_pref(a: Path, b: Path) -> int:
    return _local_pref(b) - _local_pref(a)


def step_locally_originated(a: Path, b: Path) -> int:
    return (a.source.kind != SourceKind.LOCAL) - (b.source.kind != SourceKind.LOCAL)


def step_as_path_len(a: Path, b: Path) -> int:
    return a.attrs.as_path_len() - b.attrs.as_path_len()


def step_origin(a: Path, b: Path) -> int:
    return a.attrs.origin - b.attrs.origin


def step_med(a: Path, b: Path) -> int:
    """Lower MED wins, but only between paths from the same neighbour AS (missing MED = 0)."""
    if a.attrs.neighbor_as() != b.attrs.neighbor_as():
        return 0
    return (a.attrs.med or 0) - (b.attrs.med or 0)


def step_ebgp_over_ibgp(a: Path, b: Path) -> int:
    ka, kb = a.source.kind, b.source.kind
    if ka == kb:
        return 0
    return -1 if ka == SourceKind.EBGP else (1 if kb == SourceKind.EBGP else 0)


def step_router_id(a: Path, b: Path) -> int:
    return (a.source.router_id > b.source.router_id) - (a.source.router_id < b.source.router_id)


def step_peer_address(a: Path, b: Path) -> int:
    pa, pb = a.source.peer, b.source.peer
    if pa is None or pb is None:
        return (pa is not None) - (pb is not None)
    ka, kb = (pa.version, int(pa)), (pb.version, int(pb))
    return (ka > kb) - (ka < kb)


Step = Callable[[Path, Path], int]

STEPS: tuple[tuple[str, Step], ...] = (
    ("local-pref", step_local_pref),
    ("locally originated", step_locally_originated),
    ("AS path length", step_as_path_len),
    ("origin", step_origin),
    ("MED", step_med),
    ("eBGP over iBGP", step_ebgp_over_ibgp),
    ("router id", step_router_id),
    ("peer address", step_peer_address),
)

# Index of the first tie-breaking step: paths equal before it may share ECMP.
ECMP_STEPS = 6


def compare(a: Path, b: Path) -> tuple[int, str]:
    """(<0 if a is better, >0 if b is better, 0 if equal), and the name of the deciding step."""
    for name, step in STEPS:
        r = step(a, b)
        if r:
            return r, name
    return 0, ""


def better(a: Path, b: Path) -> bool:
    return compare(a, b)[0] < 0


def best_of(paths: Sequence[Path]) -> Path:
    best = paths[0]
    for p in paths[1:]:
        if compare(p, best)[0] < 0:
            best = p
    return best


def ecmp_equal(best: Path, other: Path, multipath_relax: bool) -> bool:
    """Whether ``other`` may share forwarding with ``best``."""
    if other.source.kind == SourceKind.LOCAL or best.source.kind == SourceKind.LOCAL:
        return False
    if not multipath_relax and best.attrs.neighbor_as() != other.attrs.neighbor_as():
        return False
    return all(step(best, other) == 0 for _name, step in STEPS[:ECMP_STEPS])


def select(paths: Sequence[Path], ecmp: int, multipath_relax: bool) -> tuple[Path, ...]:
    """The best path first, then up to ``ecmp - 1`` equal-cost paths with distinct next hops.

    The extra paths are ordered by peer address so the set is stable (no kernel churn when
    an unrelated path changes).
    """
    if not paths:
        return ()
    best = best_of(paths)
    if ecmp <= 1 or len(paths) == 1:
        return (best,)
    seen = {best.attrs.next_hop}
    extra = []
    for p in paths:
        if p is best or p.attrs.next_hop is None or p.attrs.next_hop in seen:
            continue
        if ecmp_equal(best, p, multipath_relax):
            seen.add(p.attrs.next_hop)
            extra.append(p)
    if not extra:
        return (best,)
    extra.sort(key=lambda p: (p.source.peer.version, int(p.source.peer)) if p.source.peer else (0, 0))
    return (best, *extra[: ecmp - 1])


def loss_reason(best: Path, other: Path) -> str:
    """Why ``other`` is not the best path (for `show routes --all`)."""
    r, name = compare(other, best)
    if r == 0:
        return "equal to best"
    return f"lost on {name}"
