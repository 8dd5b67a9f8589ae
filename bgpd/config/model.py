"""The configuration model: what the daemon runs from, independent of any file syntax.

The TOML loader (``bgpd.config.toml``) builds it today; a BIRD-style front end (the
configuration Calico generates) can build the same objects later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rib.prefix import Afi, IPAddress, PrefixKey

MAIN_VRF = "main"
MAIN_TABLE = 254

FilterSpec = str  # "all" | "none" | a policy name


@dataclass(slots=True)
class RouterConfig:
    asn: int
    router_id: str
    listen: list[str] = field(default_factory=lambda: ["0.0.0.0", "::"])
    port: int = 179
    multipath_relax: bool = False
    always_compare_med: bool = False  # compare MED between paths from different neighbour ASes
    prefer_older: bool = False  # RFC 5004: keep the older of two eBGP paths before the router id
    cluster_id: str | None = None  # route-reflector cluster id (default: router_id)
    # Restarting-speaker role (RFC 4724 4.1): a stop keeps the kernel routes and closes sessions
    # without NOTIFICATION; a start keeps the routes found until the peers' End-of-RIB.
    graceful_restart: bool = False


@dataclass(slots=True)
class ControlConfig:
    socket: str = "/run/bgpd/bgpd.sock"
    group: str | None = None  # group that may use the socket (mode 0660)


@dataclass(slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(slots=True)
class KernelConfig:
    enabled: bool = True
    protocol: int = 186
    ecmp: int = 8
    persist: bool = False
    # Next hops must be reachable through the kernel's (non-BGP) routes to be usable; their
    # route's metric is the IGP cost of the decision process.
    resolve_next_hops: bool = True


@dataclass(slots=True)
class MetricsConfig:
    listen: str | None = None  # "127.0.0.1:9179": serve Prometheus metrics there; None = off


DEFAULT_RULE_PRIORITY = 1000  # before the main table's rule (32766), after local (0)


@dataclass(frozen=True, slots=True)
class VrfRule:
    """One `ip rule` steering traffic into a VRF's table: every selector given must match."""

    priority: int
    source: str | None = None  # a prefix ("10.10.0.0/16"): also fixes the family
    iif: str | None = None  # incoming interface name
    fwmark: int | None = None


@dataclass(slots=True)
class VrfConfig:
    name: str
    table: int
    rules: list[VrfRule] = field(default_factory=list)
    # An l3mdev VRF device (`ip link add red type vrf table 100`): the VRF's sessions bind to it
    # (SO_BINDTODEVICE). None: table-only mode, the sessions use the main table's routes.
    device: str | None = None


@dataclass(slots=True)
class NeighborConfig:
    address: IPAddress
    asn: int
    vrf: str = MAIN_VRF
    template: str | None = None
    description: str = ""
    source_address: IPAddress | None = None
    passive: bool = False
    port: int = 179  # the peer's TCP port (tests and labs run peers on other ports)
    hold_time: int = 90
    connect_retry: float = 5.0  # first reconnect delay; doubles up to 60 s while attempts fail
    password: str | None = None
    ttl_security: bool = False
    multihop: int | None = None
    import_: FilterSpec = "all"
    export: FilterSpec = "all"
    # True where the file gave no import/export for an eBGP peer (RFC 8212): logged at start-up.
    import_defaulted: bool = False
    export_defaulted: bool = False
    next_hop_self: bool = False
    max_prefixes: int = 0
    # After a max_prefixes Cease: seconds until we reconnect (0: down until enable/reset).
    max_prefixes_restart: int = 0
    address_families: list[Afi] = field(default_factory=lambda: [Afi.IPV4, Afi.IPV6])
    graceful_restart: bool = True
    graceful_notification: bool = True  # RFC 8538 N bit (FRR's "graceful-restart notification")
    restart_time: int = 120
    stale_time: int = 360  # helper: stale routes of a peer that came back go after this without End-of-RIB
    # RFC 9687: seconds our output may make no progress before the session ends with
    # NOTIFICATION 8 (None: max(480, 2 x the negotiated hold time); 0: never).
    send_hold_time: int | None = None
    add_path: Literal["off", "receive", "send", "both"] = "off"
    route_reflector_client: bool = False  # RFC 4456: reflect iBGP routes to and from this peer
    allow_local_as: int = 0  # accept paths carrying our ASN up to this many times (BIRD)
    enforce_first_as: bool = True  # eBGP: the path must start with the peer's ASN (off: route servers)
    next_hop_keep: bool = False  # eBGP: announce the next hop unchanged (BIRD's next hop keep)

    @property
    def key(self) -> str:
        return str(self.address)


@dataclass(slots=True)
class NetworkConfig:
    afi: Afi
    prefix: PrefixKey
    text: str  # as written, for messages
    vrf: str = MAIN_VRF
    communities: list[int] = field(default_factory=list)
    med: int | None = None
    blackhole: bool = False  # also install a kernel blackhole route for the prefix (Calico's blocks)


@dataclass(frozen=True, slots=True)
class RedistributeConfig:
    """Kernel routes (one table, some protocols) or connected subnets announced as local routes."""

    vrf: str = MAIN_VRF
    kernel_table: int | None = None  # routes another daemon (or `ip route`) puts in this table
    protocols: tuple[int, ...] = ()  # their rtm_protocol; () = any but ours
    connected: bool = False  # the interfaces' subnets
    policy: str = "all"  # an import policy ("all" | "none" | a policy name)


@dataclass(slots=True)
class PolicyTerm:
    """One term of a named policy. Matching and actions are interpreted by ``policy/``."""

    match: dict[str, object] = field(default_factory=dict)
    action: Literal["accept", "reject", "next"] = "accept"
    set: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class PolicyConfig:
    name: str
    terms: list[PolicyTerm] = field(default_factory=list)


@dataclass(slots=True)
class Config:
    router: RouterConfig
    control: ControlConfig = field(default_factory=ControlConfig)
    log: LogConfig = field(default_factory=LogConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    vrfs: dict[str, VrfConfig] = field(default_factory=dict)  # always holds "main" -> 254
    neighbors: list[NeighborConfig] = field(default_factory=list)
    networks: list[NetworkConfig] = field(default_factory=list)
    policies: dict[str, PolicyConfig] = field(default_factory=dict)
    redistribute: list[RedistributeConfig] = field(default_factory=list)
    source: str = ""  # the file it came from

    def vrf_table(self, vrf: str) -> int:
        return self.vrfs[vrf].table
