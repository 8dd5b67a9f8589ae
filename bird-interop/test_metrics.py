"""The Prometheus endpoint with real BIRD peers: per-neighbour, RIB and FIB figures."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lab.peers import wait_for
from lab.topology import SkeletonLab, running_skeleton

pytestmark = [pytest.mark.root, pytest.mark.interop]

METRICS = '\n[metrics]\nlisten = "127.0.0.1:9179"\n'


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SkeletonLab]:
    with running_skeleton(tmp_path_factory.mktemp("metrics"), METRICS) as sk:
        yield sk


def scrape(lab: SkeletonLab, path: str = "/metrics") -> tuple[int, str]:
    code = (
        "import urllib.request, urllib.error, sys\n"
        "try:\n"
        f"    r = urllib.request.urlopen('http://127.0.0.1:9179{path}', timeout=5)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    out = subprocess.run(
        ["ip", "netns", "exec", lab.us, sys.executable, "-c", code], capture_output=True, text=True
    )
    status, _, body = out.stdout.partition("\n")
    return int(status or 0), body


def value(body: str, name: str, **labels: str) -> float | None:
    for line in body.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_show_neighbors_rib_and_fib(lab: SkeletonLab) -> None:
    wait_for(
        "b2 routes counted",
        lambda: value(scrape(lab)[1], "bgpd_neighbor_prefixes_received", neighbor="10.91.2.2") == 2.0,
        40,
    )
    status, body = scrape(lab)
    assert status == 200
    assert value(body, "bgpd_neighbor_up", neighbor="10.91.1.2", asn="65002", vrf="red") == 1.0
    assert value(body, "bgpd_neighbor_state", neighbor="10.91.1.2", state="Established") == 1.0
    assert value(body, "bgpd_neighbor_state", neighbor="10.91.1.2", state="Idle") == 0.0
    assert (value(body, "bgpd_neighbor_uptime_seconds", neighbor="10.91.1.2") or 0) > 0
    assert value(body, "bgpd_neighbor_prefixes_accepted", neighbor="10.91.2.2") == 2.0
    assert (value(body, "bgpd_neighbor_prefixes_advertised", neighbor="10.91.2.2") or 0) >= 1
    assert (value(body, "bgpd_neighbor_updates_in_total", neighbor="10.91.2.2") or 0) >= 1
    # 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and our 10.96.0.0/12
    wait_for("RIB count", lambda: value(scrape(lab)[1], "bgpd_rib_routes", vrf="red", afi="ipv4") == 4.0, 20)
    body = scrape(lab)[1]
    assert value(body, "bgpd_rib_paths", vrf="red", afi="ipv4") == 5.0
    assert value(body, "bgpd_fib_routes") == 4.0  # 3 IPv4 + 1 IPv6 (the local networks are not installed)
    assert (value(body, "bgpd_fib_operations_total") or 0) >= 4
    assert value(body, "bgpd_fib_errors_total") == 0.0
    assert value(body, "bgpd_fib_backlog") == 0.0  # all written: nothing queued behind the kernel
    assert value(body, "bgpd_fib_input_pauses_total") == 0.0  # 4 routes never fill the queue
    assert re.search(r"^process_resident_memory_bytes \d", body, re.M)


def test_metrics_unknown_path_is_404_and_daemon_keeps_serving(lab: SkeletonLab) -> None:
    assert scrape(lab, "/nope")[0] == 404
    assert scrape(lab)[0] == 200
    assert lab.bgpd is not None and lab.bgpd.running
