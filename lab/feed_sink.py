"""A big table through us, between two BIRDs: the lab of the load tests in bird-interop/.

    feed (BIRD, AS 65001) NET.0.2 -- ROUTES /32, 16 per community --> us (bgpd, AS 65010)
    us NET.1.1 -- what we export --> sink (BIRD, eBGP AS 65003 or iBGP)

One place for the BIRD and bgpd configs and the start order (bgpd, then the sink Established,
then the feed), so each test names only what it varies: the subnet, the table size, the sink's
AS and hold time, our kernel, and any extra neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgpd.control import request
from lab.netns import Lab
from lab.peers import Bgpd, Bird, Process, wait_for

US_ASN = 65010
FEED_ASN = 65001


@dataclass(slots=True)
class FeedSinkSpec:
    net: str  # the first two octets: us-feed on NET.0.0/24, us-sink on NET.1.0/24
    routes: int
    sink_asn: int = 65003  # US_ASN: iBGP (BIRD `direct`, our next_hop_self)
    sink_hold: int = 9
    kernel: bool = True
    extra_neighbors: str = ""  # bgpd [[neighbor]] sections after the feed's and the sink's
    us_feed: str = field(init=False)
    feed: str = field(init=False)
    us_sink: str = field(init=False)
    sink: str = field(init=False)

    def __post_init__(self) -> None:
        self.us_feed, self.feed = f"{self.net}.0.1", f"{self.net}.0.2"
        self.us_sink, self.sink = f"{self.net}.1.1", f"{self.net}.1.2"

    @property
    def ibgp_sink(self) -> bool:
        return self.sink_asn == US_ASN

    def feed_config(self) -> str:
        # 16 prefixes per community: routes/16 attribute sets (12.5k for 200k).
        routes = "\n".join(
            f"  route 10.{200 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 blackhole"
            f" {{ bgp_community.add(({FEED_ASN}, {i // 16})); }};"
            for i in range(self.routes)
        )
        return f"""router id {self.feed};
protocol device {{ }}
protocol static feedroutes {{
  ipv4;
{routes}
}}
protocol bgp us1 {{
  local {self.feed} as {FEED_ASN};
  neighbor {self.us_feed} as {US_ASN};
  hold time 240;
  connect retry time 2;
  ipv4 {{ import none; export all; }};
}}
"""

    def sink_config(self) -> str:
        return f"""router id {self.sink};
protocol device {{ }}
protocol bgp us1 {{
  local {self.sink} as {self.sink_asn};
  neighbor {self.us_sink} as {US_ASN};
{"  direct;" if self.ibgp_sink else ""}
  hold time {self.sink_hold};
  keepalive time {self.sink_hold // 3};
  connect retry time 2;
  ipv4 {{ import all; export none; }};
}}
"""

    def bgpd_config(self, workdir: Path) -> str:
        kernel = "" if self.kernel else "\n[kernel]\nenabled = false\n"
        return f"""
[router]
asn = {US_ASN}
router_id = "{self.us_feed}"
listen = ["0.0.0.0"]
{kernel}
[control]
socket = "{workdir}/bgpd.sock"

[[neighbor]]
address = "{self.feed}"
asn = {FEED_ASN}
import = "all"
export = "none"
hold_time = 240
connect_retry = 1

[[neighbor]]
address = "{self.sink}"
asn = {self.sink_asn}
import = "none"
export = "all"
{"next_hop_self = true" if self.ibgp_sink else ""}
hold_time = {self.sink_hold}
connect_retry = 1
{self.extra_neighbors}"""


@dataclass
class FeedSinkLab:
    """The namespaces "us", "feed" and "sink" (and ``extra``), linked to "us"; its processes."""

    workdir: Path
    spec: FeedSinkSpec
    lab: Lab = field(default_factory=Lab)
    ns: dict[str, str] = field(default_factory=dict)
    feed: Bird | None = None
    sink: Bird | None = None
    bgpd: Bgpd | None = None
    others: list[Process] = field(default_factory=list)  # stopped first by close()

    def build(self, *extra: str) -> FeedSinkLab:
        s = self.spec
        for name in ("us", "feed", "sink", *extra):
            self.ns[name] = self.lab.ns(name)
        self.lab.link(self.ns["us"], self.ns["feed"], [f"{s.us_feed}/24"], [f"{s.feed}/24"], name="vf")
        self.lab.link(self.ns["us"], self.ns["sink"], [f"{s.us_sink}/24"], [f"{s.sink}/24"], name="vk")
        return self

    def start_bgpd(self) -> Bgpd:
        wd = self.workdir / "us"
        wd.mkdir(parents=True, exist_ok=True)
        self.bgpd = Bgpd(self.ns["us"], wd, "bgpd", config=self.spec.bgpd_config(wd)).start()
        return self.bgpd

    def start_sink(self) -> Bird:
        """The sink, Established with us before it returns."""
        sink = self.spec.sink
        self.sink = Bird(self.ns["sink"], self.workdir / "sink", "bird", config=self.spec.sink_config())
        self.sink.start()
        wait_for("sink Established", lambda: self.neighbor(sink)["state"] == "Established", 30)
        return self.sink

    def start_feed(self) -> Bird:
        self.feed = Bird(self.ns["feed"], self.workdir / "feed", "bird", config=self.spec.feed_config())
        return self.feed.start()

    def close(self, failed: bool = False) -> None:
        """Stop everything by PID and delete the namespaces; with ``failed``, print the logs."""
        if failed and self.bgpd is not None:
            print(f"--- bgpd log ---\n{self.bgpd.log_text()[-15000:]}")
        if failed and self.sink is not None:
            print(f"--- sink log ---\n{self.sink.log_text()[-5000:]}")
        for p in (*self.others, self.bgpd, self.feed, self.sink):
            if p is not None:
                p.stop()
        self.lab.close()

    def neighbor(self, address: str) -> dict[str, Any]:
        """Our `show neighbors` entry for ``address``, from the control socket."""
        assert self.bgpd is not None
        resp = request(str(self.bgpd.socket), ["show", "neighbors"], {}, timeout=10.0)
        assert resp.get("ok"), resp
        found: dict[str, Any] = next(n for n in resp["data"]["neighbors"] if n["address"] == address)
        return found

    def sink_protocol(self) -> tuple[str, str, int]:
        """BIRD's view of its session with us: (state, since, routes imported)."""
        assert self.sink is not None
        state = since = ""
        routes = 0
        for line in self.sink.birdc("show", "protocols", "all", "us1").splitlines():
            parts = line.split()
            if parts[:1] == ["us1"]:
                state, since = parts[3], parts[4]  # Name Proto Table State Since Info
            elif parts[:1] == ["Routes:"]:
                routes = int(parts[1])  # "Routes: N imported, ..."
        return state, since, routes
