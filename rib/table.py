"""Loc-RIB of one VRF and address family: every usable path per prefix and the selection.

Most prefixes of a full table have one path. Such a prefix is stored as that ``Path`` alone
(it is its own selection). Where every path is selected (two peers sending the same route:
ECMP), the prefix is stored as the selection, a tuple of all its paths best first, shared by
the prefixes of one UPDATE. A ``Dest`` with the path list and the selection exists only
otherwise (some path not selected, or none usable). ``get`` and ``items`` always hand out a
``Dest``, so readers never see the difference. This halves the memory per route, and a
second peer costs no per-prefix object at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from itertools import repeat

from rib.decision import DEFAULT, Decision, select
from rib.prefix import Afi, IPAddress, PrefixKey
from rib.route import Change, Path, Source


class Dest:
    """All paths for one prefix and the currently selected ones (best first, then ECMP).

    Both are tuples (smaller than lists; a prefix has few paths), and ``selected`` is the very
    ``paths`` object when every path is selected in that order (two equal ECMP paths).
    """

    __slots__ = ("paths", "selected")

    def __init__(self) -> None:
        self.paths: tuple[Path, ...] = ()
        self.selected: tuple[Path, ...] = ()

    @classmethod
    def single(cls, path: Path) -> Dest:
        d = cls()
        d.paths = d.selected = (path,)
        return d

    @classmethod
    def of(cls, paths: tuple[Path, ...], selected: tuple[Path, ...]) -> Dest:
        d = cls()
        d.paths, d.selected = paths, selected
        return d


# What the table stores per prefix: a Path (alone, selected), a tuple of paths (all selected,
# in that order) or a Dest.
Stored = Path | tuple[Path, ...] | Dest
_new_change = tuple.__new__  # Change(...) without the named tuple's Python-level __new__


def _as_dest(cur: Stored) -> Dest:
    t = type(cur)
    if t is Dest:
        return cur  # type: ignore[return-value]
    if t is tuple:
        return Dest.of(cur, cur)  # type: ignore[arg-type]
    return Dest.single(cur)  # type: ignore[arg-type]


def _compact(dest: Dest) -> Stored:
    """The smallest form that stores ``dest``."""
    paths, selected = dest.paths, dest.selected
    if len(selected) == len(paths):  # every path selected: the selection holds them all
        return paths[0] if len(paths) == 1 else selected
    return dest


def _same_selection(a: tuple[Path, ...], b: tuple[Path, ...]) -> bool:
    if len(a) != len(b):
        return False
    return all(x.source is y.source and x.attrs is y.attrs for x, y in zip(a, b, strict=True))


class LocRib:
    def __init__(
        self, vrf: str, afi: Afi, ecmp: int = 8, multipath_relax: bool = False, decision: Decision = DEFAULT
    ) -> None:
        self.vrf = vrf
        self.afi = afi
        self.ecmp = ecmp
        self.multipath_relax = multipath_relax
        self.decision = decision
        self.dests: dict[PrefixKey, Stored] = {}
        self.path_count = 0
        # Path objects are shared by the prefixes of one UPDATE, so the same contest (these
        # paths, this previous selection) repeats for each of them: decide it once. Keyed by
        # ids; the value holds the paths themselves so the ids stay theirs while it lives.
        self._decided: dict[tuple[int, ...], tuple[tuple[Path, ...], tuple[Path, ...]]] = {}
        self._pairs: dict[tuple[int, int], tuple[Path, Path]] = {}

    def __len__(self) -> int:
        return len(self.dests)

    def items(self) -> Iterator[tuple[PrefixKey, Dest]]:
        for prefix, d in self.dests.items():
            yield prefix, _as_dest(d)

    def get(self, prefix: PrefixKey) -> Dest | None:
        d = self.dests.get(prefix)
        return None if d is None else _as_dest(d)

    def candidates(self, prefix: PrefixKey) -> tuple[Path, ...]:
        """The usable paths of ``prefix``, the selected ones first: what ADD-PATH sends."""
        cur = self.dests.get(prefix)
        if cur is None:
            return ()
        t = type(cur)
        if t is Path:
            return (cur,)  # type: ignore[return-value]  # stored alone only when selected
        if t is tuple:
            return cur  # type: ignore[return-value]  # all selected
        dest: Dest = cur  # type: ignore[assignment]
        selected = dest.selected
        if len(selected) == len(dest.paths):
            return selected
        d = self.decision
        rest = tuple(
            p
            for p in dest.paths
            if all(p is not s for s in selected) and (d.resolve is None or d.cost(p) is not None)
        )
        return selected + rest

    def _alone(self, path: Path) -> bool:
        """Whether ``path`` may be stored alone: as the only path it is selected if usable."""
        d = self.decision
        return d.resolve is None or d.cost(path) is not None

    def _pair(self, a: Path, b: Path) -> tuple[Path, Path]:
        """The tuple (a, b), shared by every prefix that gets the same second path (one UPDATE)."""
        key = (id(a), id(b))
        pair = self._pairs.get(key)
        if pair is None:
            if len(self._pairs) > 50_000:
                self._pairs.clear()
            pair = self._pairs[key] = (a, b)  # holds a and b: their ids stay theirs
        return pair

    def update(self, prefix: PrefixKey, path: Path) -> Change | None:
        """Add or replace the path of ``path.source`` for ``prefix``."""
        dests = self.dests
        cur = dests.get(prefix)
        if cur is None:
            self.path_count += 1
            if self._alone(path):
                dests[prefix] = path
                return Change(self.vrf, self.afi, prefix, (path,))
            dest = dests[prefix] = Dest()
            dest.paths = (path,)
            return self._reselect(prefix, dest)
        if type(cur) is Path:
            if cur.source is path.source:
                if cur.attrs is path.attrs and cur.received is path.received:
                    return None  # an identical re-announcement changes nothing
                if self._alone(path):
                    dests[prefix] = path
                    return Change(self.vrf, self.afi, prefix, (path,))
                dest = dests[prefix] = Dest.single(cur)
                dest.paths = (path,)
                return self._reselect(prefix, dest)
            dest = Dest.single(cur)
            dest.paths = self._pair(cur, path)
            self.path_count += 1
            change = self._reselect(prefix, dest)
            dests[prefix] = _compact(dest)
            return change
        dest = _as_dest(cur)
        paths = dest.paths
        for i, p in enumerate(paths):
            if p.source is path.source:
                if p.attrs is path.attrs and p.received is path.received:
                    return None
                dest.paths = (*paths[:i], path, *paths[i + 1 :])
                break
        else:
            dest.paths = (*paths, path)
            self.path_count += 1
        change = self._reselect(prefix, dest)
        dests[prefix] = _compact(dest)
        return change

    def update_many(self, prefixes: list[PrefixKey], path: Path) -> list[Change]:
        """``update`` for each prefix with the same path (one UPDATE's NLRI), in one call.

        The two cases of a table load are inlined: a new prefix (the path alone is its
        selection) and a prefix held by one other source's path (the second peer: ECMP). The
        contest of ``path`` against one such path is decided once per UPDATE, and the
        resulting tuple of paths is shared by every prefix it decides.
        """
        dests = self.dests
        if self.decision.resolve is not None and self.decision.cost(path) is None:
            # Not usable: it cannot be stored alone as its prefixes' selection.
            return [c for c in (self.update(p, path) for p in prefixes) if c is not None]
        out: list[Change] = []
        append = out.append
        vrf, afi = self.vrf, self.afi
        single = (path,)
        src, attrs, received = path.source, path.attrs, path.received
        if len(prefixes) > 1 and len(set(prefixes)) != len(prefixes):
            prefixes = list(dict.fromkeys(prefixes))  # a repeat changes nothing more
        # One probe of the large (cache-cold) dict per prefix: setdefault stores ``path`` for
        # a new prefix (alone, it is the selection) and hands back what a known one holds.
        before = len(dests)
        curs = list(map(dests.setdefault, prefixes, repeat(path)))
        added = len(dests) - before
        self.path_count += added
        if added == len(prefixes):  # all new: the bulk of a table load
            return [_new_change(Change, (vrf, afi, p, single)) for p in prefixes]
        first = curs[0]
        if not added and type(first) is Path and first.source is not src and len(set(map(id, curs))) == 1:
            # Every prefix held one other source's same path (a second peer sending the table
            # as the first did: ECMP): one contest, and when both paths are selected in order
            # the pair itself is the stored selection, shared, written in one C-level update.
            _cur, pair, new, changed = self._contest(first, path)
            if len(new) == 2:  # both selected, in either order: ``new`` stores them, shared
                dests.update(zip(prefixes, repeat(new)))
                self.path_count += len(prefixes)
                return [_new_change(Change, (vrf, afi, p, new)) for p in prefixes] if changed else []
        elif not added and type(first) is tuple and len(set(map(id, curs))) == 1:
            # Likewise a third (fourth...) peer meeting the same shared ECMP set everywhere.
            _held, paths, new, changed = self._contest_many(first, path)
            if paths and len(new) == len(paths):
                dests.update(zip(prefixes, repeat(new)))
                self.path_count += len(prefixes)
                return [_new_change(Change, (vrf, afi, p, new)) for p in prefixes] if changed else []
        # id of a held path -> (it, the pair, the new selection, whether it changed)
        contests: dict[int, tuple[Path, tuple[Path, Path], tuple[Path, ...], bool]] = {}
        # id of a held tuple of selected paths -> (it, the paths with ``path``, the new selection,
        # whether it changed); no paths when ``path``'s source is among them (a replacement).
        contests_many: dict[int, tuple[tuple[Path, ...], tuple[Path, ...], tuple[Path, ...], bool]] = {}
        for prefix, cur in zip(prefixes, curs, strict=True):
            if cur is path:  # new: stored above
                append(_new_change(Change, (vrf, afi, prefix, single)))
                continue
            if type(cur) is Path:
                if cur.source is not src:
                    hit = contests.get(id(cur))
                    if hit is None:
                        hit = contests[id(cur)] = self._contest(cur, path)
                    _cur, pair, new, changed = hit
                    # A Dest is updated in place by withdraw: one per prefix, never shared.
                    # Both selected (either order): the selection itself, shared, stores them.
                    dests[prefix] = new if len(new) == 2 else Dest.of(pair, new)
                    self.path_count += 1
                    if changed:
                        append(_new_change(Change, (vrf, afi, prefix, new)))
                    continue
                if cur.attrs is attrs and cur.received is received:
                    continue  # an identical re-announcement changes nothing
            elif type(cur) is tuple:
                # Several paths, all selected, shared by the prefixes of earlier UPDATEs (an
                # ECMP set): a third peer's path meets the same set for each of its prefixes.
                many = contests_many.get(id(cur))
                if many is None:
                    many = contests_many[id(cur)] = self._contest_many(cur, path)
                if many[1]:
                    _held, paths, new, changed = many
                    dests[prefix] = new if len(new) == len(paths) else Dest.of(paths, new)
                    self.path_count += 1
                    if changed:
                        append(_new_change(Change, (vrf, afi, prefix, new)))
                    continue
            change = self.update(prefix, path)
            if change is not None:
                append(change)
        return out

    def _contest(self, cur: Path, path: Path) -> tuple[Path, tuple[Path, Path], tuple[Path, ...], bool]:
        """``path`` joins ``cur`` (another source's, alone and selected): the pair, the new
        selection (the pair itself when both are selected in that order), and whether the
        selection differs from ``(cur,)``. The same contest as ``update`` decides."""
        pair = self._pair(cur, path)
        previous = (cur,)
        new = select(pair, self.ecmp, self.multipath_relax, self.decision, previous)
        if len(new) == 2 and new[0] is cur and new[1] is path:
            new = pair
        return cur, pair, new, not _same_selection(new, previous)

    def _contest_many(
        self, cur: tuple[Path, ...], path: Path
    ) -> tuple[tuple[Path, ...], tuple[Path, ...], tuple[Path, ...], bool]:
        """``path`` joins ``cur`` (paths of other sources, all selected): the paths, the new
        selection (stored as the paths themselves when every one is selected, in its order),
        and whether it differs from ``cur``. The same contest as ``update`` decides."""
        src = path.source
        if any(p.source is src for p in cur):
            return cur, (), (), False
        paths = (*cur, path)
        new = select(paths, self.ecmp, self.multipath_relax, self.decision, cur)
        if len(new) == len(paths) and all(a is b for a, b in zip(new, paths, strict=True)):
            new = paths
        return cur, paths, new, not _same_selection(new, cur)

    def withdraw(self, prefix: PrefixKey, source: Source) -> Change | None:
        dests = self.dests
        cur = dests.get(prefix)
        if cur is None:
            return None
        if type(cur) is Path:
            if cur.source is not source:
                return None
            del dests[prefix]
            self.path_count -= 1
            return Change(self.vrf, self.afi, prefix, ())
        dest = _as_dest(cur)
        paths = dest.paths
        for i, p in enumerate(paths):
            if p.source is source:
                paths = dest.paths = paths[:i] + paths[i + 1 :]
                self.path_count -= 1
                break
        else:
            return None
        if not paths:
            del dests[prefix]
            dest.selected = ()
            return Change(self.vrf, self.afi, prefix, ())
        change = self._reselect(prefix, dest)
        if self.decision.resolve is None:
            dests[prefix] = _compact(dest)
        elif len(paths) == 1 and dest.selected and dest.selected[0] is paths[0]:
            dests[prefix] = paths[0]  # back to the compact form
        else:
            dests[prefix] = dest
        return change

    def _reselect(self, prefix: PrefixKey, dest: Dest) -> Change | None:
        paths = dest.paths
        d = self.decision
        if len(paths) == 1 and (d.resolve is None or d.cost(paths[0]) is not None):
            new: tuple[Path, ...] = (paths[0],)
        else:
            # The resolver's answers only change with a reselect (which clears the memo).
            key = (*map(id, paths), 0, *map(id, dest.selected))
            hit = self._decided.get(key)
            if hit is not None:
                new = hit[1]
            else:
                new = select(paths, self.ecmp, self.multipath_relax, d, dest.selected)
                if len(self._decided) > 50_000:
                    self._decided.clear()
                self._decided[key] = ((*paths, *dest.selected), new)
        if len(new) == len(paths) and all(a is b for a, b in zip(new, paths, strict=True)):
            new = paths  # one tuple for both
        if _same_selection(new, dest.selected):
            dest.selected = new  # same sources and attrs: keep the newest objects, report nothing
            return None
        dest.selected = new
        return Change(self.vrf, self.afi, prefix, new)

    def _via(self, next_hops: Collection[IPAddress]) -> list[tuple[PrefixKey, Stored]]:
        """The prefixes holding a path via one of ``next_hops``. A Path or tuple of paths is
        shared by the prefixes of one UPDATE: each is looked at once."""
        seen: dict[int, bool] = {}  # id of what a prefix stores -> via one of them (all alive here)
        out = []
        for prefix, cur in self.dests.items():
            hit = seen.get(id(cur))
            if hit is None:
                t = type(cur)
                held: tuple[Path, ...] = (
                    (cur,) if t is Path else cur if t is tuple else cur.paths  # type: ignore[assignment,union-attr]
                )
                hit = any(p.attrs.next_hop in next_hops for p in held if p.attrs.next_hop is not None)
                if t is not Dest:  # a Dest is one prefix's own
                    seen[id(cur)] = hit
            if hit:
                out.append((prefix, cur))
        return out

    def forget_decisions(self) -> None:
        """The resolver answers differently now: contests decided before no longer hold."""
        self._decided.clear()

    def reselect_via(self, prefixes: Iterable[PrefixKey], next_hops: Collection[IPAddress]) -> list[Change]:
        """Decide again those of ``prefixes`` still held that have a path via one of
        ``next_hops``: one slice of a re-evaluation after an IGP change (rib/reselect.py)."""
        dests = self.dests
        seen: dict[int, bool] = {}  # id of what a prefix stores -> via one of them
        hits = []  # (prefix, what it stores): holds them, so the ids in ``seen`` stay theirs
        for prefix in prefixes:
            cur = dests.get(prefix)
            if cur is None:
                continue  # withdrawn since the re-evaluation began
            hit = seen.get(id(cur))
            if hit is None:
                t = type(cur)
                held: tuple[Path, ...] = (
                    (cur,) if t is Path else cur if t is tuple else cur.paths  # type: ignore[assignment,union-attr]
                )
                hit = seen[id(cur)] = any(p.attrs.next_hop in next_hops for p in held)
            if hit:
                hits.append((prefix, cur))
        changes = []
        for prefix, cur in hits:
            dest = _as_dest(cur)
            ch = self._reselect(prefix, dest)
            dests[prefix] = _compact(dest)
            if ch is not None:
                changes.append(ch)
        return changes

    def reselect_all(self, next_hops: Collection[IPAddress] | None = None) -> list[Change]:
        """Recompute every selection (after an ECMP, multipath or IGP/next-hop change).

        With ``next_hops`` (those the IGP now resolves differently) only the prefixes with a
        path via one of them: they are decided again, the others are only looked at.
        O(table): for configuration and IGP events, never per UPDATE.
        """
        self._decided.clear()  # decided under the old settings
        changes = []
        items = list(self.dests.items()) if next_hops is None else self._via(next_hops)
        for prefix, cur in items:
            dest = _as_dest(cur)
            ch = self._reselect(prefix, dest)
            self.dests[prefix] = _compact(dest)
            if ch is not None:
                changes.append(ch)
        return changes
