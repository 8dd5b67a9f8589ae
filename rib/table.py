"""Loc-RIB of one VRF and address family: every usable path per prefix and the selection."""

from __future__ import annotations

from collections.abc import Iterator

from rib.decision import select
from rib.prefix import Afi, PrefixKey
from rib.route import Change, Path, Source


class Dest:
    """All paths for one prefix and the currently selected ones (best first, then ECMP)."""

    __slots__ = ("paths", "selected")

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.selected: tuple[Path, ...] = ()


def _same_selection(a: tuple[Path, ...], b: tuple[Path, ...]) -> bool:
    if len(a) != len(b):
        return False
    return all(x.source is y.source and x.attrs is y.attrs for x, y in zip(a, b, strict=True))


class LocRib:
    def __init__(self, vrf: str, afi: Afi, ecmp: int = 8, multipath_relax: bool = False) -> None:
        self.vrf = vrf
        self.afi = afi
        self.ecmp = ecmp
        self.multipath_relax = multipath_relax
        self.dests: dict[PrefixKey, Dest] = {}
        self.path_count = 0

    def __len__(self) -> int:
        return len(self.dests)

    def items(self) -> Iterator[tuple[PrefixKey, Dest]]:
        return iter(self.dests.items())

    def get(self, prefix: PrefixKey) -> Dest | None:
        return self.dests.get(prefix)

    def update(self, prefix: PrefixKey, path: Path) -> Change | None:
        """Add or replace the path of ``path.source`` for ``prefix``."""
        dest = self.dests.get(prefix)
        if dest is None:
            dest = self.dests[prefix] = Dest()
        paths = dest.paths
        for i, p in enumerate(paths):
            if p.source is path.source:
                if p.attrs is path.attrs:
                    return None  # an identical re-announcement changes nothing
                paths[i] = path
                break
        else:
            paths.append(path)
            self.path_count += 1
        return self._reselect(prefix, dest)

    def withdraw(self, prefix: PrefixKey, source: Source) -> Change | None:
        dest = self.dests.get(prefix)
        if dest is None:
            return None
        paths = dest.paths
        for i, p in enumerate(paths):
            if p.source is source:
                del paths[i]
                self.path_count -= 1
                break
        else:
            return None
        if not paths:
            del self.dests[prefix]
            dest.selected = ()
            return Change(self.vrf, self.afi, prefix, ())
        return self._reselect(prefix, dest)

    def _reselect(self, prefix: PrefixKey, dest: Dest) -> Change | None:
        paths = dest.paths
        new = (paths[0],) if len(paths) == 1 else select(paths, self.ecmp, self.multipath_relax)
        if _same_selection(new, dest.selected):
            dest.selected = new  # same sources and attrs: keep the newest objects, report nothing
            return None
        dest.selected = new
        return Change(self.vrf, self.afi, prefix, new)

    def reselect_all(self) -> list[Change]:
        """Recompute every selection (after an ECMP or multipath setting changed)."""
        changes = []
        for prefix, dest in self.dests.items():
            ch = self._reselect(prefix, dest)
            if ch is not None:
                changes.append(ch)
        return changes
