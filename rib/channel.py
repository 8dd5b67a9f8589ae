"""A channel joins one BGP neighbour to one VRF (BIRD's idea).

It owns the neighbour's Adj-RIB-In (as received, before import policy, so a policy change
can be re-applied without asking the peer), its import and export filters, and its
Adj-RIB-Out with the pending changes not yet sent. Pure logic: no sockets, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policy.filters import ACCEPT_ALL, Filter
from rib.attrs import PathAttrs
from rib.prefix import Afi, IPAddress, PrefixKey
from rib.route import Path, Source, SourceKind

# (id of the attributes, source kind, family) -> (those attributes, result).
_AttrCache = dict[tuple[int, int, int], tuple[PathAttrs, PathAttrs | None]]


@dataclass(slots=True)
class ChannelSettings:
    name: str  # the neighbour's address as text: the channel's key
    vrf: str
    local_asn: int
    peer_asn: int
    next_hop_self: bool = False
    import_filter: Filter = ACCEPT_ALL
    export_filter: Filter = ACCEPT_ALL

    @property
    def ebgp(self) -> bool:
        return self.local_asn != self.peer_asn


# eq=False: channels are compared and hashed by identity (the engine keeps a set of them).
@dataclass(slots=True, eq=False)
class Channel:
    settings: ChannelSettings
    source: Source | None = None  # set while the session is Established
    afis: frozenset[Afi] = frozenset()
    # Our own address on the session, per family: the next hop we announce as "self".
    local_addrs: dict[Afi, IPAddress] = field(default_factory=dict)
    adj_in: dict[Afi, dict[PrefixKey, PathAttrs]] = field(default_factory=dict)
    adj_out: dict[Afi, dict[PrefixKey, PathAttrs]] = field(default_factory=dict)
    # prefix -> attributes to announce, or None to withdraw; drained by the session layer.
    pending: dict[Afi, dict[PrefixKey, PathAttrs | None]] = field(default_factory=dict)
    accepted: int = 0
    # Families whose initial table dump still needs an End-of-RIB after the pending routes.
    eor_pending: set[Afi] = field(default_factory=set)
    _import_cache: _AttrCache = field(default_factory=dict)
    _export_cache: _AttrCache = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def up(self) -> bool:
        return self.source is not None

    def received(self) -> int:
        return sum(len(t) for t in self.adj_in.values())

    def advertised(self) -> int:
        return sum(len(t) for t in self.adj_out.values())

    def has_pending(self) -> bool:
        return any(self.pending.values()) or bool(self.eor_pending)

    # --- import ------------------------------------------------------------------------------

    def import_attrs(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs) -> PathAttrs | None:
        """The attributes after import policy, or None when rejected."""
        flt = self.settings.import_filter
        assert self.source is not None
        if flt.per_prefix:
            return flt.apply(afi, prefix, attrs, self.source)
        key = (id(attrs), 0, 0)
        hit = self._import_cache.get(key)
        if hit is not None:
            return hit[1]
        out = flt.apply(afi, prefix, attrs, self.source)
        if len(self._import_cache) > 100_000:
            self._import_cache.clear()
        # The cache holds ``attrs`` itself so its id cannot be reused while the entry lives.
        self._import_cache[key] = (attrs, out)
        return out

    # --- export ------------------------------------------------------------------------------

    def export_attrs(self, afi: Afi, prefix: PrefixKey, path: Path) -> PathAttrs | None:
        """What this neighbour should be sent for ``path``, or None to send nothing."""
        src = path.source
        if src is self.source:
            return None  # never back to the neighbour it came from
        s = self.settings
        if src.kind == SourceKind.IBGP and not s.ebgp:
            return None  # iBGP-learnt routes go to eBGP peers only (no route reflection yet)
        flt = s.export_filter
        attrs = path.attrs
        if flt.per_prefix:
            filtered = flt.apply(afi, prefix, attrs, src)
            return None if filtered is None else self._transform(afi, filtered, src.kind)
        # The family is part of the key: the same attributes (e.g. of a `network` in both
        # families) get a different "self" next hop per family.
        key = (id(attrs), src.kind, afi)
        hit = self._export_cache.get(key)
        if hit is not None:
            return hit[1]
        filtered = flt.apply(afi, prefix, attrs, src)
        out = None if filtered is None else self._transform(afi, filtered, src.kind)
        if len(self._export_cache) > 100_000:
            self._export_cache.clear()
        self._export_cache[key] = (attrs, out)
        return out

    def _transform(self, afi: Afi, attrs: PathAttrs, kind: SourceKind) -> PathAttrs | None:
        """The protocol's own export rules (RFC 4271 5.1): AS_PATH, NEXT_HOP, LOCAL_PREF, MED."""
        s = self.settings
        self_nh = self.local_addrs.get(afi)
        if s.ebgp:
            if self_nh is None:
                return None  # no address of this family on the session to announce as next hop
            return attrs.prepend(s.local_asn).with_(
                next_hop=self_nh,
                next_hop_ll=None,
                local_pref=None,
                # A MED learnt from one AS is not passed on to another (RFC 4271 5.1.4).
                med=attrs.med if kind == SourceKind.LOCAL else None,
                originator_id=None,
                cluster_list=(),
            )
        nh = attrs.next_hop
        if s.next_hop_self or kind == SourceKind.LOCAL or nh is None:
            if self_nh is None:
                return None
            nh = self_nh
        lp = 100 if attrs.local_pref is None else attrs.local_pref
        return attrs.with_(next_hop=nh, next_hop_ll=None, local_pref=lp)

    def queue_export(self, afi: Afi, prefix: PrefixKey, path: Path | None) -> None:
        """Record that ``prefix`` should now be announced for ``path`` (or withdrawn: None)."""
        if afi not in self.afis:
            return
        out = None if path is None else self.export_attrs(afi, prefix, path)
        adj = self.adj_out.setdefault(afi, {})
        if out is None:
            if adj.pop(prefix, None) is not None:
                self.pending.setdefault(afi, {})[prefix] = None
            return
        if adj.get(prefix) is out:
            return
        adj[prefix] = out
        self.pending.setdefault(afi, {})[prefix] = out

    def take_pending(self) -> tuple[dict[Afi, dict[PrefixKey, PathAttrs | None]], set[Afi]]:
        """Hand the pending changes (and End-of-RIB markers) to the sender, leaving none."""
        pending, self.pending = self.pending, {}
        eor, self.eor_pending = self.eor_pending, set()
        return pending, eor

    def clear(self) -> None:
        """The session went down: forget what was exchanged."""
        self.source = None
        self.afis = frozenset()
        self.adj_in.clear()
        self.adj_out.clear()
        self.pending.clear()
        self.eor_pending.clear()
        self.accepted = 0
        self._import_cache.clear()
        self._export_cache.clear()
