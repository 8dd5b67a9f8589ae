"""The BGP decision process (RFC 4271 9.1.2.2), one small function per step.

Each step returns <0 when ``a`` is better, >0 when ``b`` is better, 0 on a tie. ``compare``
runs them in order and names the step that decided, so `show routes --all` can say why a
path lost. ECMP candidates are the paths that tie with the best on every step before the
oldest-path/router-id steps (BIRD's "mergable", FRR's multipath), with a distinct next hop.

Options that change the process (``always_compare_med``, ``prefer_older``, the next-hop
resolver) travel in a ``Decision``: the RIB stays pure, the daemon injects what it knows of
the IGP (the kernel's routes) through ``resolve``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from rib.prefix import IPAddress
from rib.route import Path, SourceKind

DEFAULT_LOCAL_PREF = 100

# Next hop -> IGP cost to reach it, or None when it is unreachable.
Resolver = Callable[[IPAddress], int | None]


@dataclass(frozen=True, slots=True)
class Decision:
    always_compare_med: bool = False
    prefer_older: bool = False
    resolve: Resolver | None = None  # None: every next hop is resolvable at cost 0

    def cost(self, p: Path) -> int | None:
        """IGP cost to the path's next hop; None when unresolvable. Local paths cost 0."""
        nh = p.attrs.next_hop
        if self.resolve is None or nh is None or p.source.kind == SourceKind.LOCAL:
            return 0
        return self.resolve(nh)


DEFAULT = Decision()


def _local_pref(p: Path) -> int:
    lp = p.attrs.local_pref
    return DEFAULT_LOCAL_PREF if lp is None else lp


def step_next_hop(a: Path, b: Path, d: Decision) -> int:
    if d.resolve is None:
        return 0
    return (d.cost(a) is None) - (d.cost(b) is None)


def step_local_pref(a: Path, b: Path, d: Decision) -> int:
    return _local_pref(b) - _local_pref(a)


def step_locally_originated(a: Path, b: Path, d: Decision) -> int:
    return (a.source.kind != SourceKind.LOCAL) - (b.source.kind != SourceKind.LOCAL)


def step_as_path_len(a: Path, b: Path, d: Decision) -> int:
    return a.attrs.as_path_len() - b.attrs.as_path_len()


def step_origin(a: Path, b: Path, d: Decision) -> int:
    return a.attrs.origin - b.attrs.origin


def step_med(a: Path, b: Path, d: Decision) -> int:
    """Lower MED wins, between paths from the same neighbour AS unless always_compare_med.

    A missing MED counts as 0 (RFC 4271 9.1.2.2 c).
    """
    if not d.always_compare_med and a.attrs.neighbor_as() != b.attrs.neighbor_as():
        return 0
    return (a.attrs.med or 0) - (b.attrs.med or 0)


def step_ebgp_over_ibgp(a: Path, b: Path, d: Decision) -> int:
    ka, kb = a.source.kind, b.source.kind
    if ka == kb:
        return 0
    return -1 if ka == SourceKind.EBGP else (1 if kb == SourceKind.EBGP else 0)


def step_igp_cost(a: Path, b: Path, d: Decision) -> int:
    if d.resolve is None:
        return 0
    ca, cb = d.cost(a), d.cost(b)
    if ca is None or cb is None:
        return 0  # unresolvable paths were decided by the first step
    return ca - cb


def step_older(a: Path, b: Path, d: Decision) -> int:
    """RFC 5004: between two eBGP paths the older one stays best (less churn), if enabled."""
    if not d.prefer_older or a.source.kind != SourceKind.EBGP or b.source.kind != SourceKind.EBGP:
        return 0
    return (a.since > b.since) - (a.since < b.since)


@functools.lru_cache(maxsize=4096)
def _oid_int(oid: str) -> int:
    """An ORIGINATOR_ID as an integer: few distinct ones, parsed once each (an IPv4Address per
    comparison made deciding among reflected paths ~1.8x slower: bench/gr_add_path.py)."""
    return int(IPv4Address(oid))


def _router_id(p: Path) -> int:
    """The ORIGINATOR_ID of a reflected path stands in for the peer's router id (RFC 4456 9)."""
    oid = p.attrs.originator_id
    return _oid_int(oid) if oid is not None else p.source.router_id


def step_router_id(a: Path, b: Path, d: Decision) -> int:
    ra, rb = _router_id(a), _router_id(b)
    return (ra > rb) - (ra < rb)


def step_cluster_list(a: Path, b: Path, d: Decision) -> int:
    return len(a.attrs.cluster_list) - len(b.attrs.cluster_list)


def step_peer_address(a: Path, b: Path, d: Decision) -> int:
    pa, pb = a.source.peer, b.source.peer
    if pa is None or pb is None:
        return (pa is not None) - (pb is not None)
    ka, kb = (pa.version, int(pa)), (pb.version, int(pb))
    return (ka > kb) - (ka < kb)


def step_path_id(a: Path, b: Path, d: Decision) -> int:
    """Two ADD-PATH paths of one peer: the lower received path id wins. FRR and BIRD end at
    the peer address and keep the order of arrival; an id makes the choice deterministic."""
    ia, ib = a.source.path_id, b.source.path_id
    return (ia > ib) - (ia < ib)


Step = Callable[[Path, Path, Decision], int]

STEPS: tuple[tuple[str, Step], ...] = (
    ("next hop unreachable", step_next_hop),
    ("local-pref", step_local_pref),
    ("locally originated", step_locally_originated),
    ("AS path length", step_as_path_len),
    ("origin", step_origin),
    ("MED", step_med),
    ("eBGP over iBGP", step_ebgp_over_ibgp),
    ("IGP cost", step_igp_cost),
    ("older path", step_older),
    ("router id", step_router_id),
    ("cluster list length", step_cluster_list),
    ("peer address", step_peer_address),
    ("path id", step_path_id),
)

# Index of the first tie-breaking step: paths equal before it may share ECMP.
ECMP_STEPS = 8


def compare(a: Path, b: Path, d: Decision = DEFAULT) -> tuple[int, str]:
    """(<0 if a is better, >0 if b is better, 0 if equal), and the name of the deciding step."""
    for name, step in STEPS:
        r = step(a, b, d)
        if r:
            return r, name
    return 0, ""


def _decide_steps(a: Path, b: Path, d: Decision) -> tuple[int, int]:
    """``compare`` giving the index of the deciding step (``len(STEPS)`` on a full tie)."""
    for i, (_name, step) in enumerate(STEPS):
        r = step(a, b, d)
        if r:
            return r, i
    return 0, len(STEPS)


_SEQ = 2  # SegType.AS_SEQUENCE


def _decide(a: Path, b: Path, d: Decision) -> tuple[int, int]:
    """``_decide_steps`` with the steps up to the router id written out for the usual case
    (both next hops resolvable, no older-path rule, AS paths of one sequence or empty): a second peer's
    path meets the first once per UPDATE of a full table, and ten step calls cost more than
    the rest of it. Any other case, and every step from the router id on, goes through the
    steps."""
    if d.prefer_older:
        return _decide_steps(a, b, d)
    ca = cb = 0
    if d.resolve is not None:
        ca_, cb_ = d.cost(a), d.cost(b)
        if ca_ is None or cb_ is None:
            return _decide_steps(a, b, d)  # decided by reachability, or neither is usable
        ca, cb = ca_, cb_
    aa, ba = a.attrs, b.attrs
    lpa, lpb = aa.local_pref, ba.local_pref
    r = (DEFAULT_LOCAL_PREF if lpb is None else lpb) - (DEFAULT_LOCAL_PREF if lpa is None else lpa)
    if r:
        return r, 1
    ka, kb = a.source.kind, b.source.kind
    r = (ka != SourceKind.LOCAL) - (kb != SourceKind.LOCAL)
    if r:
        return r, 2
    # One AS_SEQUENCE, or none at all (iBGP within the AS: a reflector's clients, a Calico mesh).
    pa, pb = aa.as_path, ba.as_path
    if pa:
        if len(pa) != 1 or pa[0][0] != _SEQ:
            return _decide_steps(a, b, d)
        sa = pa[0][1]
    else:
        sa = ()
    if pb:
        if len(pb) != 1 or pb[0][0] != _SEQ:
            return _decide_steps(a, b, d)
        sb = pb[0][1]
    else:
        sb = ()
    r = len(sa) - len(sb)
    if r:
        return r, 3
    r = aa.origin - ba.origin
    if r:
        return r, 4
    if d.always_compare_med or (sa[0] if sa else None) == (sb[0] if sb else None):
        r = (aa.med or 0) - (ba.med or 0)
        if r:
            return r, 5
    if ka != kb:
        r = -1 if ka == SourceKind.EBGP else (1 if kb == SourceKind.EBGP else 0)
        if r:
            return r, 6
    r = ca - cb  # IGP cost (0 without a resolver); older path: off here
    if r:
        return r, 7
    for i in range(9, len(STEPS)):
        r = STEPS[i][1](a, b, d)
        if r:
            return r, i
    return 0, len(STEPS)


def better(a: Path, b: Path, d: Decision = DEFAULT) -> bool:
    return compare(a, b, d)[0] < 0


def best_of(paths: Sequence[Path], d: Decision = DEFAULT) -> Path:
    best = paths[0]
    for p in paths[1:]:
        if compare(p, best, d)[0] < 0:
            best = p
    return best


def ecmp_equal(best: Path, other: Path, multipath_relax: bool, d: Decision = DEFAULT) -> bool:
    """Whether ``other`` may share forwarding with ``best``.

    Without ``multipath_relax`` both must come from the same neighbour AS; with it, paths
    from different ASes share when they tie on everything before the tie-breakers (which
    includes an equal AS-path length): the anycast VIP announced by many nodes.
    """
    if other.source.kind == SourceKind.LOCAL or best.source.kind == SourceKind.LOCAL:
        return False
    if not multipath_relax and best.attrs.neighbor_as() != other.attrs.neighbor_as():
        return False
    return all(step(best, other, d) == 0 for _name, step in STEPS[:ECMP_STEPS])


def _peer_order(p: Path) -> tuple[int, int, int]:
    src = p.source
    peer = src.peer
    return (peer.version, int(peer), src.path_id) if peer is not None else (0, 0, 0)


def select(
    paths: Sequence[Path],
    ecmp: int,
    multipath_relax: bool,
    d: Decision = DEFAULT,
    previous: Sequence[Path] = (),
) -> tuple[Path, ...]:
    """The best path first, then up to ``ecmp - 1`` equal-cost paths with distinct next hops.

    Paths with an unresolvable next hop are not candidates at all (RFC 4271 9.1.2): with none
    left the selection is empty. The extra paths are ordered by peer address; members of the
    ``previous`` selection that are still eligible keep their place when the set is full, so
    a newcomer never displaces a working next hop (no kernel churn that is not needed).
    """
    if (
        len(paths) == 2
        and ecmp > 1
        and (d.resolve is None or None not in (d.cost(paths[0]), d.cost(paths[1])))
    ):
        return _select_two(paths[0], paths[1], multipath_relax, d)
    return _select_many(paths, ecmp, multipath_relax, d, previous)


def _select_many(
    paths: Sequence[Path],
    ecmp: int,
    multipath_relax: bool,
    d: Decision = DEFAULT,
    previous: Sequence[Path] = (),
) -> tuple[Path, ...]:
    """``_select_steps`` with the written-out comparison (a third peer's path, an ADD-PATH
    reflector's several: ~5x fewer calls). ``_decide`` gives the deciding step's index, so
    whether another path may share with the best is one comparison too (equal up to the
    tie-breakers exactly when the deciding step is one of them, as in ``_select_two``)."""
    paths = _usable(paths, d)
    if not paths:
        return ()
    best = paths[0]
    for p in paths[1:]:
        if _decide(p, best, d)[0] < 0:
            best = p
    if ecmp <= 1 or len(paths) == 1 or best.source.kind == SourceKind.LOCAL:
        return (best,)
    nas = None if multipath_relax else best.attrs.neighbor_as()
    seen = {best.attrs.next_hop}
    extra = []
    for p in paths:
        nh = p.attrs.next_hop
        if p is best or nh is None or nh in seen or p.source.kind == SourceKind.LOCAL:
            continue
        if nas is not None and p.attrs.neighbor_as() != nas:
            continue
        if _decide(best, p, d)[1] >= ECMP_STEPS:
            seen.add(nh)
            extra.append(p)
    return _with_extra(best, extra, ecmp, previous)


def _select_steps(
    paths: Sequence[Path],
    ecmp: int,
    multipath_relax: bool,
    d: Decision = DEFAULT,
    previous: Sequence[Path] = (),
) -> tuple[Path, ...]:
    """``select`` through the steps, for any number of paths (the reference the written-out
    ``_select_many`` and ``_select_two`` are tested against)."""
    paths = _usable(paths, d)
    if not paths:
        return ()
    best = best_of(paths, d)
    if ecmp <= 1 or len(paths) == 1:
        return (best,)
    seen = {best.attrs.next_hop}
    extra = []
    for p in paths:
        if p is best or p.attrs.next_hop is None or p.attrs.next_hop in seen:
            continue
        if ecmp_equal(best, p, multipath_relax, d):
            seen.add(p.attrs.next_hop)
            extra.append(p)
    return _with_extra(best, extra, ecmp, previous)


def _usable(paths: Sequence[Path], d: Decision) -> Sequence[Path]:
    """The candidates: a path whose next hop does not resolve is none (RFC 4271 9.1.2)."""
    return paths if d.resolve is None else [p for p in paths if d.cost(p) is not None]


def _with_extra(best: Path, extra: list[Path], ecmp: int, previous: Sequence[Path]) -> tuple[Path, ...]:
    """The best path and at most ``ecmp - 1`` of the paths that may share with it, ordered by
    peer address; when there are more, members of ``previous`` keep their place."""
    if not extra:
        return (best,)
    if len(extra) >= ecmp and previous:
        # Full set: sources already forwarding come first, then newcomers, each by peer address.
        kept = {id(p.source) for p in previous}
        extra.sort(key=lambda p: (id(p.source) not in kept, _peer_order(p)))
        extra = extra[: ecmp - 1]
    extra.sort(key=_peer_order)
    return (best, *extra[: ecmp - 1])


def _select_two(a: Path, b: Path, multipath_relax: bool, d: Decision) -> tuple[Path, ...]:
    """``select`` of two paths, both next hops resolvable, room for both (a second peer's path
    joining the first: once per UPDATE of a full table). One comparison decides both the best
    and whether the other may share: every step is antisymmetric, and the other is equal up to
    the tie-breakers exactly when the deciding step is one of them."""
    r, i = _decide(a, b, d)
    best, other = (b, a) if r > 0 else (a, b)  # a tie keeps the first, as best_of does
    nh = other.attrs.next_hop
    if nh is None or i < ECMP_STEPS or nh is best.attrs.next_hop or nh == best.attrs.next_hop:
        return (best,)
    if other.source.kind == SourceKind.LOCAL or best.source.kind == SourceKind.LOCAL:
        return (best,)
    if not multipath_relax and best.attrs.neighbor_as() != other.attrs.neighbor_as():
        return (best,)
    return (best, other)


def loss_reason(best: Path, other: Path, d: Decision = DEFAULT) -> str:
    """Why ``other`` is not the best path (for `show routes --all`)."""
    r, name = compare(other, best, d)
    if r == 0:
        return "equal to best"
    return f"lost on {name}"
