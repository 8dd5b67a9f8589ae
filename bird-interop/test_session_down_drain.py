"""A full-ish table's session going down, against real BIRDs and the real kernel: sliced withdrawal.

    feed (BIRD, AS 65001) 10.76.0.2 -- 100k /32 --> us (bgpd, AS 65010, kernel table main)
    us 10.76.1.1 -- the same 100k --> sink (BIRD, AS 65003, hold time 9 s)

(100k: BGPD_DRAIN_ROUTES.)

Once the 100k are in our kernel table and at the sink, the feed's session is disabled from the
CLI: its routes leave our kernel and the sink in slices (rib/drain.py), the daemon logs
`withdrawals done` with the number of slices, `show neighbors` says `withdrawing` meanwhile and
answers within a second every time, and the sink's session never drops. Then the feed is
enabled and reset once its table is back: its new session may come up while the old paths
still drain; in the end the kernel and the sink hold exactly the 100k again.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgpd.control import request
from lab.feed_sink import FeedSinkLab, FeedSinkSpec
from lab.peers import Bgpd, wait_for
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

ROUTES = int(os.environ.get("BGPD_DRAIN_ROUTES", "100000"))
LOAD_TIMEOUT = max(240.0, ROUTES / 2000)  # seconds for the table to reach our kernel and the sink
SPEC = FeedSinkSpec("10.76", ROUTES, sink_asn=65003, sink_hold=9)
FEED, SINK = SPEC.feed, SPEC.sink
CLI_BOUND = 1.0


@dataclass
class DrainLab(FeedSinkLab):
    def ask(self, cmd: list[str], **args: Any) -> tuple[float, dict[str, Any]]:
        assert self.bgpd is not None
        t = time.monotonic()
        resp = request(str(self.bgpd.socket), cmd, args, timeout=10.0)
        assert resp.get("ok"), resp
        return time.monotonic() - t, resp["data"]

    def kernel_count(self) -> int:
        """Our routes (proto 186) in the main table of our namespace."""
        out = subprocess.run(
            ["ip", "-n", self.ns["us"], "-4", "route", "show", "table", "main", "proto", "186"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return len(out.splitlines())

    def loaded(self) -> bool:
        return self.kernel_count() == ROUTES and self.sink_protocol()[2] == ROUTES


@pytest.fixture
def dl(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DrainLab]:
    need_root()
    lab = DrainLab(tmp_path, SPEC)
    try:
        lab.build()
        lab.start_bgpd()
        lab.start_sink()
        lab.start_feed()
        wait_for("100k in our kernel and at the sink", lab.loaded, LOAD_TIMEOUT, interval=1.0)
        yield lab
    finally:
        rep = getattr(request.node, "rep_call", None)
        lab.close(failed=rep is None or rep.failed)


def drain_logs(bgpd: Bgpd) -> list[dict[str, Any]]:
    out = []
    for line in bgpd.log_text().splitlines():
        if "withdrawals done" in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def test_disable_withdraws_in_slices_and_reconnect_ends_with_the_table(dl: DrainLab) -> None:
    assert dl.bgpd is not None
    state0, since0, _ = dl.sink_protocol()
    assert state0 == "up"
    sink_flaps = dl.neighbor(SINK)["flaps"]
    done_before = len(drain_logs(dl.bgpd))

    took, data = dl.ask(["neighbor", FEED, "disable"])
    times = [took]
    withdrawing: list[int] = []
    views: list[tuple[str, str, int]] = []
    kernel: list[int] = []
    deadline = time.monotonic() + LOAD_TIMEOUT
    while True:
        t, data = dl.ask(["show", "neighbors"])
        times.append(t)
        feed = next(n for n in data["neighbors"] if n["address"] == FEED)
        assert feed["received"] == 0 and feed["accepted"] == 0  # its counters: 0 at once
        withdrawing.append(feed["withdrawing"])
        kernel.append(dl.kernel_count())
        views.append(dl.sink_protocol())
        if kernel[-1] == 0 and views[-1][2] == 0 and feed["withdrawing"] == 0:
            break
        assert time.monotonic() < deadline, (kernel[-1], views[-1], feed["withdrawing"])
        time.sleep(0.05)
    # The withdrawal was seen under way (not all at once), in slices the log counts.
    assert max(withdrawing) > 0 or any(0 < k < ROUTES for k in kernel), (withdrawing[:5], kernel[:5])
    logs = drain_logs(dl.bgpd)[done_before:]
    assert logs and logs[-1]["slices"] > 1, logs
    assert max(times) < CLI_BOUND, f"slowest show neighbors {max(times):.3f}s"
    # The sink got every withdrawal and never lost its session.
    assert all(v[0] == "up" and v[1] == since0 for v in views), views[-3:]
    assert dl.neighbor(SINK)["flaps"] == sink_flaps
    print(
        f"\n{ROUTES} withdrawn in {logs[-1]['slices']} slices, {logs[-1]['seconds']} s; "
        f"withdrawing seen up to {max(withdrawing)}; {len(times)} show neighbors, worst {max(times):.3f} s"
    )

    # Back, then reset once loaded: the feed reconnects (BIRD retries after 2 s) while its old
    # paths may still drain; the end state is its whole table again, once.
    dl.ask(["neighbor", FEED, "enable"])
    wait_for("100k back in our kernel and at the sink", dl.loaded, LOAD_TIMEOUT, interval=1.0)
    dl.ask(["neighbor", FEED, "reset"])
    wait_for("the feed Established again", lambda: dl.neighbor(FEED)["state"] == "Established", 60)
    wait_for(
        "100k again, nothing left to withdraw",
        lambda: (
            dl.loaded() and dl.neighbor(FEED)["withdrawing"] == 0 and dl.neighbor(FEED)["received"] == ROUTES
        ),
        LOAD_TIMEOUT,
        interval=1.0,
    )
    _t, routes = dl.ask(["show", "routes"], count=True)
    assert json.dumps(routes).count(str(ROUTES)) >= 1, routes
    state, since, n = dl.sink_protocol()
    assert (state, since, n) == ("up", since0, ROUTES)
    assert dl.neighbor(SINK)["flaps"] == sink_flaps
