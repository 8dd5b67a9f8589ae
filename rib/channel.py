"""A channel joins one BGP neighbour to one VRF (BIRD's idea).

It owns the neighbour's Adj-RIB-In (as received, before import policy, so a policy change
can be re-applied without asking the peer), its import and export filters, and its
Adj-RIB-Out with the pending changes not yet sent. Pure logic: no sockets, no clock.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from policy.filters import (
    ACCEPT_ALL,
    REJECT_ALL,
    AcceptAll,
    Filter,
    Outcome,
    Policy,
    PrefixPlan,
    is_self_next_hop,
)
from rib.attrs import AsPath, PathAttrs, SegType
from rib.prefix import Afi, IPAddress, IPNetwork, PrefixKey
from rib.route import Change, Path, Source, SourceKind
from rib.table import Dest

# (id of the attributes, family) -> (those attributes, result).
_ImportCache = dict[tuple[int, int], tuple[PathAttrs, Outcome]]
# (id of the attributes, id of the source, family) -> (attributes, source, result): holding
# both keeps their ids from being reused while the entry lives.
_ExportCache = dict[tuple[int, int, int], tuple[PathAttrs, Source, PathAttrs | None]]
# Bounded small: routes arrive (and are dumped, withdrawn, re-imported) grouped by attribute
# set, so a few thousand recent sets give nearly every hit, while one entry per set of a full
# table (~100k) would cost ~20 MiB per channel for hits that never come.
_CACHE_MAX = 16_384

NO_EXPORT = 0xFFFFFF01
NO_ADVERTISE = 0xFFFFFF02
NO_EXPORT_SUBCONFED = 0xFFFFFF03  # no confederations here: the same as NO_EXPORT


@dataclass(slots=True)
class ChannelSettings:
    name: str  # the neighbour's address as text: the channel's key
    vrf: str
    local_asn: int
    peer_asn: int
    next_hop_self: bool = False
    import_filter: Filter = ACCEPT_ALL
    export_filter: Filter = ACCEPT_ALL
    router_id: int = 0  # ours: a path carrying it as ORIGINATOR_ID is our own, reflected back
    cluster_id: str | None = None  # route-reflector cluster id (default: our router id)
    rr_client: bool = False  # the neighbour is our route-reflector client (RFC 4456)
    allow_local_as: int = 0  # accept paths with our ASN up to this many times (BIRD)
    enforce_first_as: bool = True  # eBGP: the first AS must be the peer's, else treat-as-withdraw
    next_hop_keep: bool = False  # eBGP: pass the next hop on unchanged (BIRD's next hop keep)

    @property
    def ebgp(self) -> bool:
        return self.local_asn != self.peer_asn

    @property
    def cluster(self) -> str:
        return self.cluster_id or _rid_text(self.router_id)


def _shared_subnet(peer: IPAddress, local: IPAddress) -> IPNetwork | None:
    """Without the interface's connected prefix: the /24 (IPv4) or /64 (IPv6) of both ends,
    or None when they do not share it."""
    plen = 24 if peer.version == 4 else 64
    net = ipaddress.ip_network(f"{peer}/{plen}", strict=False)
    return net if local in net else None


@functools.lru_cache(maxsize=1024)
def _rid_text(router_id: int) -> str:
    """A router id as ORIGINATOR_ID/CLUSTER_LIST text: few distinct ones, formatted once each."""
    return str(ipaddress.IPv4Address(router_id))


def _prepended(path: AsPath, asn: int) -> AsPath:
    """``path`` with ``asn`` in front, as ``PathAttrs.prepend`` does it."""
    if path and path[0][0] == SegType.AS_SEQUENCE and len(path[0][1]) < 255:
        return ((SegType.AS_SEQUENCE, (asn, *path[0][1])), *path[1:])
    return ((SegType.AS_SEQUENCE, (asn,)), *path)


# eq=False: channels are compared and hashed by identity (the engine keeps a set of them).
@dataclass(slots=True, eq=False)
class Channel:
    settings: ChannelSettings
    source: Source | None = None  # set while the session is Established
    afis: frozenset[Afi] = frozenset()
    # Our own address on the session, per family: the next hop we announce as "self".
    local_addrs: dict[Afi, IPAddress] = field(default_factory=dict)
    # The connected prefix of the session's interface, per family, when the daemon knows it:
    # a next hop inside it is valid for the peer as is (third-party next hop, RFC 4271 5.1.3).
    connected: dict[Afi, IPNetwork] = field(default_factory=dict)
    adj_in: dict[Afi, dict[PrefixKey, PathAttrs]] = field(default_factory=dict)
    adj_out: dict[Afi, dict[PrefixKey, PathAttrs]] = field(default_factory=dict)
    # prefix -> attributes to announce, or None to withdraw; drained by the session layer.
    pending: dict[Afi, dict[PrefixKey, PathAttrs | None]] = field(default_factory=dict)
    # ADD-PATH (RFC 7911), per family as negotiated. Received: one Adj-RIB-In per path id, each
    # with a source of its own (``path_source``). Sent: every path that passes export, keyed in
    # ``adj_out``/``pending`` by our 4-byte path id + the prefix (the NLRI as it goes on the
    # wire), with ``adj_out_ids`` listing each prefix's keys so a change is diffed per path.
    # ``paths_of`` (set by the engine) gives, per family, the lookup of a prefix's usable paths.
    # A neighbour without ADD-PATH leaves all of this empty and pays one set test per batch.
    add_path_rx: frozenset[Afi] = frozenset()
    add_path_tx: frozenset[Afi] = frozenset()
    adj_in_paths: dict[Afi, dict[int, dict[PrefixKey, PathAttrs]]] = field(default_factory=dict)
    path_sources: dict[int, Source] = field(default_factory=dict)
    adj_out_ids: dict[Afi, dict[PrefixKey, tuple[bytes, ...]]] = field(default_factory=dict)
    paths_of: Callable[[Afi], Callable[[PrefixKey], tuple[Path, ...]]] | None = None
    accepted: int = 0
    # Families whose initial table dump still needs an End-of-RIB after the pending routes.
    eor_pending: set[Afi] = field(default_factory=set)
    # Graceful restart (rib/stale.py): a restarting neighbour's paths kept in the Loc-RIB under
    # its old source until refreshed or swept, by family (as received); clear() keeps them.
    stale: dict[Afi, dict[PrefixKey, PathAttrs]] = field(default_factory=dict)
    stale_source: Source | None = None
    # The ADD-PATH paths kept stale, by family and path id (as received), and the per-path-id
    # sources that hold them in the Loc-RIB: ``path_source`` gives the new session these same
    # objects, so a path sent again replaces its stale one with no change anywhere.
    stale_paths: dict[Afi, dict[int, dict[PrefixKey, PathAttrs]]] = field(default_factory=dict)
    stale_path_sources: dict[int, Source] = field(default_factory=dict)
    # Stale ADD-PATH paths whose path id the returning peer reused for other attributes (FRR
    # numbers its paths anew after a restart): kept under a source of their own until swept.
    stale_displaced: dict[Afi, dict[int, dict[PrefixKey, PathAttrs]]] = field(default_factory=dict)
    stale_displaced_sources: dict[int, Source] = field(default_factory=dict)
    # Lean Adj-RIB-In (Rib._go_lean): the table is big, so the accepted routes are kept in the
    # Loc-RIB only (with their attributes as received) and ``adj_in`` holds what import rejected.
    lean: bool = False
    _import_cache: _ImportCache = field(default_factory=dict)
    _export_cache: _ExportCache = field(default_factory=dict)
    # _third_party's link per family: (source, local address, connected prefix) it was
    # computed for, and the prefix both ends share (None: none). Building an ip_network per
    # export miss cost ~1 s CPU per 100k attribute sets.
    _links: dict[Afi, tuple[Source, IPAddress, IPNetwork | None, IPNetwork | None]] = field(
        default_factory=dict
    )

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def up(self) -> bool:
        return self.source is not None

    def received(self) -> int:
        n = sum(len(t) for t in self.adj_in.values())
        if self.lean:
            n += self.accepted  # the accepted ones are in the Loc-RIB only
        if self.adj_in_paths:
            n += sum(len(t) for by_id in self.adj_in_paths.values() for t in by_id.values())
        return n

    @property
    def imports_all(self) -> bool:
        """Import policy `all`: the Loc-RIB gets the received attributes themselves."""
        return isinstance(self.settings.import_filter, AcceptAll)

    def path_source(self, path_id: int) -> Source:
        """The source of the neighbour's ADD-PATH path ``path_id`` (made on first use)."""
        src = self.path_sources.get(path_id)
        if src is None:
            assert self.source is not None
            src = self.stale_path_sources.get(path_id)
            if src is None or src.base is not self.source:  # not a resumed session's stale one
                src = self.source.for_path_id(path_id)
            self.path_sources[path_id] = src
        return src

    def advertised(self) -> int:
        return sum(len(t) for t in self.adj_out.values())

    def exports_none(self, afi: Afi) -> bool:
        """The export policy is ``none`` and nothing is left to withdraw: O(1), so the engine
        skips such a channel per UPDATE instead of running every change through it."""
        return self.settings.export_filter is REJECT_ALL and not self.adj_out.get(afi)

    def has_pending(self) -> bool:
        return any(self.pending.values()) or bool(self.eor_pending)

    # --- import ------------------------------------------------------------------------------

    def import_ok(self, attrs: PathAttrs) -> bool:
        """The protocol's own import checks: loops and a spoofed first AS are treat-as-withdraw."""
        s = self.settings
        src = self.source
        assert src is not None
        ebgp = s.ebgp
        path = attrs.as_path
        if len(path) == 1 and path[0][0] == SegType.AS_SEQUENCE:  # the usual path: one sequence
            asns = path[0][1]
            if ebgp and s.enforce_first_as and (not asns or asns[0] != src.asn):
                return False
            if asns.count(s.local_asn) > s.allow_local_as:
                return False
        else:
            if ebgp and s.enforce_first_as and attrs.neighbor_as() != src.asn:
                return False  # RFC 4271 6.3: the first AS must be the peer's (FRR's default)
            if path and sum(asns.count(s.local_asn) for _t, asns in path) > s.allow_local_as:
                return False  # our own AS in the path: a loop
        if not ebgp:
            if attrs.originator_id is not None and attrs.originator_id == _rid_text(s.router_id):
                return False  # RFC 4456 8: our own route reflected back
            if s.cluster in attrs.cluster_list:
                return False  # RFC 4456 8: a reflection loop
        return True

    def _finish_import(self, out: PathAttrs) -> PathAttrs:
        """`set.next_hop = "self"` on import: the neighbour itself (FRR's peer-address)."""
        nh = out.next_hop
        if nh is not None and is_self_next_hop(nh):
            assert self.source is not None
            peer = self.source.peer
            same_family = peer is not None and peer.version == nh.version
            out = out.with_(next_hop=peer if same_family else None)
        return out

    def _import_outcome(self, afi: Afi, attrs: PathAttrs) -> Outcome:
        src = self.source
        assert src is not None
        if not self.import_ok(attrs):
            return None
        flt = self.settings.import_filter
        if isinstance(flt, Policy) and flt.per_prefix:  # only policies have prefix lists
            return flt.plan(afi, attrs, src, self.settings.vrf, self._finish_import)
        out = flt.apply(afi, b"", attrs, src, self.settings.vrf)
        return out if out is None else self._finish_import(out)

    def import_outcome(self, afi: Afi, attrs: PathAttrs) -> Outcome:
        """The import checks and policy for one attribute set: the attributes to use, None
        (rejected), or, where the policy has prefix lists, a ``PrefixPlan`` that answers per
        prefix with those lists alone. Cached per attribute set: the rest of the policy runs
        once per set, not once per route."""
        key = (id(attrs), afi)
        hit = self._import_cache.get(key)
        if hit is not None:
            return hit[1]
        out = self._import_outcome(afi, attrs)
        if len(self._import_cache) > _CACHE_MAX:
            self._import_cache.clear()
        # The cache holds ``attrs`` itself so its id cannot be reused while the entry lives.
        self._import_cache[key] = (attrs, out)
        return out

    def import_attrs(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs) -> PathAttrs | None:
        """The attributes after the import checks and policy, or None when rejected."""
        out = self.import_outcome(afi, attrs)
        if isinstance(out, PrefixPlan):
            return out.result(afi, prefix)
        return out

    # --- export ------------------------------------------------------------------------------

    def export_attrs(self, afi: Afi, prefix: PrefixKey, path: Path) -> PathAttrs | None:
        """What this neighbour should be sent for ``path``, or None to send nothing."""
        src = path.source
        if src is self.source or (src.base is not None and src.base is self.source):
            return None  # never back to the neighbour it came from
        s = self.settings
        if src.kind == SourceKind.IBGP and not s.ebgp and not (src.rr_client or s.rr_client):
            # iBGP-learnt routes go to iBGP peers only by reflection (RFC 4456): from a client
            # to everyone, from a non-client to clients.
            return None
        flt = s.export_filter
        attrs = path.attrs
        if flt.per_prefix:
            return self._export(afi, prefix, attrs, src)
        # The family is part of the key: the same attributes (e.g. of a `network` in both
        # families) get a different "self" next hop per family. The source is too: reflection
        # writes its router id as ORIGINATOR_ID.
        key = (id(attrs), id(src), afi)
        hit = self._export_cache.get(key)
        if hit is not None:
            return hit[2]
        out = self._export(afi, prefix, attrs, src)
        if len(self._export_cache) > _CACHE_MAX:
            self._export_cache.clear()
        self._export_cache[key] = (attrs, src, out)
        return out

    def _export(self, afi: Afi, prefix: PrefixKey, attrs: PathAttrs, src: Source) -> PathAttrs | None:
        own = self.source
        if own is not None and src.peer is not None and src.peer == own.peer:
            return None  # an earlier session's path of this neighbour, still draining (rib/drain.py)
        comms = attrs.communities
        if comms:
            if NO_ADVERTISE in comms:
                return None
            if self.settings.ebgp and (NO_EXPORT in comms or NO_EXPORT_SUBCONFED in comms):
                return None
        filtered = self.settings.export_filter.apply(afi, prefix, attrs, src, self.settings.vrf)
        return None if filtered is None else self._transform(afi, attrs, filtered, src)

    def _transform(self, afi: Afi, orig: PathAttrs, attrs: PathAttrs, src: Source) -> PathAttrs | None:
        """The protocol's own export rules (RFC 4271 5.1, RFC 4456): AS_PATH, NEXT_HOP, LOCAL_PREF, MED.

        ``orig`` is the path before export policy: what the policy set on purpose (a next hop,
        a MED) is kept even where the protocol would otherwise replace it.
        """
        s = self.settings
        kind = src.kind
        self_nh = self.local_addrs.get(afi)
        nh = attrs.next_hop
        policy_nh = nh is not None and nh != orig.next_hop
        if nh is not None and is_self_next_hop(nh):
            nh, policy_nh = None, False
        if s.ebgp:
            if not policy_nh and not (s.next_hop_keep and nh is not None) and not self._third_party(afi, nh):
                nh = self_nh
            if nh is None:
                return None  # no address of this family on the session to announce as next hop
            # One with_ (one intern) for the whole rewrite: prepend() would intern a set of its
            # own, through dataclasses.replace, per exported attribute set.
            return attrs.with_(
                as_path=_prepended(attrs.as_path, s.local_asn),
                next_hop=nh,
                next_hop_ll=None,
                local_pref=None,
                # A MED learnt from one AS is not passed on to another (RFC 4271 5.1.4), unless
                # the export policy set it.
                med=attrs.med if kind == SourceKind.LOCAL or attrs.med != orig.med else None,
                originator_id=None,
                cluster_list=(),
            )
        if ((s.next_hop_self or kind == SourceKind.LOCAL) and not policy_nh) or nh is None:
            if self_nh is None:
                return None
            nh = self_nh
        lp = 100 if attrs.local_pref is None else attrs.local_pref
        if kind == SourceKind.IBGP:
            # Reflection (RFC 4456 8): the first reflector records the originator; every
            # reflector prepends its cluster id.
            oid = attrs.originator_id or _rid_text(src.router_id)
            clusters = (s.cluster, *attrs.cluster_list)
            return attrs.with_(
                next_hop=nh, next_hop_ll=None, local_pref=lp, originator_id=oid, cluster_list=clusters
            )
        return attrs.with_(next_hop=nh, next_hop_ll=None, local_pref=lp)

    def _third_party(self, afi: Afi, nh: IPAddress | None) -> bool:
        """Whether ``nh`` is on the link shared with the peer, so it can be passed on as is."""
        src = self.source
        local = self.local_addrs.get(afi)
        if nh is None or src is None or src.peer is None or local is None or nh == local:
            return False
        if nh.version != src.peer.version or nh == src.peer:
            return False
        conn = self.connected.get(afi)
        link = self._links.get(afi)
        if link is None or link[0] is not src or link[1] is not local or link[2] is not conn:
            if conn is not None:
                shared = conn if src.peer in conn else None
            else:
                shared = _shared_subnet(src.peer, local)
            link = self._links[afi] = (src, local, conn, shared)
        shared = link[3]
        return shared is not None and nh in shared

    def queue_export(self, afi: Afi, prefix: PrefixKey, path: Path | None) -> None:
        """Record that ``prefix`` should now be announced for ``path`` (or withdrawn: None)."""
        if afi not in self.afis or self.exports_none(afi):
            return
        if afi in self.add_path_tx:
            self.queue_export_paths(afi, (prefix,))
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

    def queue_export_many(self, afi: Afi, changes: list[Change]) -> None:
        """``queue_export`` for each change's best path (one UPDATE's changes at once).

        The prefixes of one UPDATE share their Path objects, so unless the export filter
        looks at prefixes, the export result is computed once per distinct best path.
        """
        if afi not in self.afis or self.exports_none(afi):
            return
        if afi in self.add_path_tx:
            self.queue_export_paths(afi, [c.prefix for c in changes])
            return
        adj = self.adj_out.setdefault(afi, {})
        pending: dict[PrefixKey, PathAttrs | None] | None = None
        per_prefix = self.settings.export_filter.per_prefix
        export_attrs = self.export_attrs
        last: Path | None = None
        last_out: PathAttrs | None = None
        for change in changes:
            best = change.best
            prefix = change.prefix
            if not best:
                out = None
            else:
                path = best[0]
                if path is last and not per_prefix:
                    out = last_out
                else:
                    out = last_out = export_attrs(afi, prefix, path)
                    last = path
            if out is None:
                if adj and adj.pop(prefix, None) is not None:
                    if pending is None:
                        pending = self.pending.setdefault(afi, {})
                    pending[prefix] = None
                continue
            if adj.get(prefix) is out:
                continue
            adj[prefix] = out
            if pending is None:
                pending = self.pending.setdefault(afi, {})
            pending[prefix] = out

    def queue_export_table(
        self, afi: Afi, prefixes: Iterable[PrefixKey], get: Callable[[PrefixKey], Dest | None]
    ) -> None:
        """``queue_export`` for each prefix's current best path (a slice of a table dump).

        A table's neighbouring prefixes came in one UPDATE and share their best Path, so the
        export result is computed once per run of them (unless the filter looks at prefixes):
        a 1M dump costs a dict lookup and two stores per prefix, not a full export call."""
        if afi not in self.afis or self.exports_none(afi):
            return
        if afi in self.add_path_tx:
            self.queue_export_paths(afi, [p for p in prefixes if (d := get(p)) is not None and d.selected])
            return
        adj = self.adj_out.setdefault(afi, {})
        pending = self.pending.setdefault(afi, {})
        per_prefix = self.settings.export_filter.per_prefix
        export_attrs = self.export_attrs
        adj_get = adj.get
        last: Path | None = None
        last_out: PathAttrs | None = None
        for prefix in prefixes:
            dest = get(prefix)
            if dest is None or not dest.selected:
                continue  # nothing to announce; a dump has nothing to withdraw either
            path = dest.selected[0]
            if path is not last or per_prefix:
                last_out = export_attrs(afi, prefix, path)
                last = path
            out = last_out
            if out is None:
                if adj_get(prefix) is not None:
                    del adj[prefix]
                    pending[prefix] = None
            elif adj_get(prefix) is not out:
                adj[prefix] = pending[prefix] = out
        if not pending:
            del self.pending[afi]

    def queue_export_paths(self, afi: Afi, prefixes: Iterable[PrefixKey]) -> None:
        """ADD-PATH send: advertise every usable path of each prefix that passes export, under
        the path id of its source (stable while that source lives), and withdraw the ids no
        longer advertised. Diffed per (prefix, path id) against the Adj-RIB-Out."""
        if afi not in self.afis or self.paths_of is None:
            return
        paths_of = self.paths_of(afi)
        adj = self.adj_out.setdefault(afi, {})
        ids = self.adj_out_ids.setdefault(afi, {})
        pending = self.pending.setdefault(afi, {})
        export_attrs = self.export_attrs
        # The prefixes of one UPDATE share their Path objects: export each once (unless the
        # policy looks at prefixes), with its path id, as (id bytes, result).
        memo: dict[int, tuple[Path, bytes, PathAttrs | None]] = {}
        per_prefix = self.settings.export_filter.per_prefix
        for prefix in prefixes:
            new: dict[bytes, PathAttrs] = {}
            for path in paths_of(prefix):
                hit = memo.get(id(path))
                if hit is None or per_prefix:
                    out = export_attrs(afi, prefix, path)
                    hit = memo[id(path)] = (path, path.source.tx_id.to_bytes(4, "big"), out)
                if hit[2] is not None:
                    new[hit[1] + prefix] = hit[2]
            for k in ids.get(prefix, ()):
                if k not in new and adj.pop(k, None) is not None:
                    pending[k] = None
            for k, out in new.items():
                if adj.get(k) is not out:
                    adj[k] = pending[k] = out
            if new:
                ids[prefix] = tuple(new)
            else:
                ids.pop(prefix, None)
        if not pending:
            del self.pending[afi]

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
        self.lean = False
        self.adj_out.clear()
        self.pending.clear()
        self.add_path_rx = self.add_path_tx = frozenset()
        self.adj_in_paths.clear()
        self.path_sources.clear()
        self.adj_out_ids.clear()
        self.eor_pending.clear()
        self.accepted = 0
        self._import_cache.clear()
        self._export_cache.clear()
        self._links.clear()
