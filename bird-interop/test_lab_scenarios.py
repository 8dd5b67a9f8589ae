"""The lab's three scenarios with real FRR and BIRD: transit router, multi-VRF, anycast VIPs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from lab.peers import kernel_routes, route_gateways, wait_for
from lab.scenarios import PEERS, ScenarioLab
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioLab]:
    need_root()
    for tool in ("bird", "birdc", "vtysh"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt-get install bird2 frr)")
    sl = ScenarioLab(tmp_path_factory.mktemp("scenarios")).build()
    try:
        sl.start()
        assert sl.bgpd is not None
        wait_for(
            "all sessions Established",
            lambda: all(
                n["state"] == "Established" for n in sl.bgpd.cli_json("show", "neighbors")["neighbors"]
            ),  # type: ignore[union-attr]
            60,
        )
        yield sl
    except BaseException:
        if sl.bgpd is not None:
            print(sl.bgpd.log_text()[-10000:])
        if sl.frr is not None:
            print(sl.frr.log_text()[-5000:])
        raise
    finally:
        sl.close()


def ours(lab: ScenarioLab, table: int | str, family: int = 4) -> dict[str, set[str]]:
    """Our routes in a kernel table by prefix (`ip -j` writes a host route without its /32)."""
    full = 32 if family == 4 else 128
    return {
        r["dst"] if "/" in r["dst"] else f"{r['dst']}/{full}": route_gateways(r)
        for r in kernel_routes(lab.us, table, family)
        if r.get("protocol") in (186, "186", "bgp")
    }


def frr_routes(lab: ScenarioLab) -> dict[str, set[str]]:
    assert lab.frr is not None
    data = lab.frr.json("show bgp ipv4 unicast json")
    out: dict[str, set[str]] = {}
    for prefix, paths in data.get("routes", {}).items():
        for p in paths:
            if p.get("valid") and p.get("pathFrom") == "external" and p.get("nexthops"):
                out.setdefault(prefix, set()).update(nh["ip"] for nh in p["nexthops"])
    return out


def bird_route(lab: ScenarioLab, name: str, prefix: str) -> str:
    return lab.birds[name].birdc("show", "route", prefix, "all")


def test_transit_the_data_centre_learns_only_the_vpcs_and_services(lab: ScenarioLab) -> None:
    routes = wait_for(
        "spoke CIDRs in FRR",
        lambda: {"10.20.0.0/16", "10.21.0.0/16", "10.96.0.10/32"} <= (r := frr_routes(lab)).keys() and r,
        30,
    )
    us = PEERS["dc"]["us"]
    assert routes["10.20.0.0/16"] == {us} and routes["10.21.0.0/16"] == {us}
    assert "10.20.1.0/24" in routes
    assert "192.168.99.0/24" not in routes  # spoke A's stray prefix: stopped by import policy
    assert "172.16.0.0/16" not in routes or routes["172.16.0.0/16"] != {us}  # never reflected back


def test_transit_spokes_learn_the_data_centre_with_next_hop_self(lab: ScenarioLab) -> None:
    out = wait_for(
        "172.16.0.0/16 in spoke A",
        lambda: "172.16.0.0/16" in (o := bird_route(lab, "spa", "172.16.0.0/16")) and o,
        30,
    )
    assert f"via {PEERS['spa']['us']}" in out and "65010 65000" in out
    assert "10.21.0.0/16" in bird_route(lab, "spa", "10.21.0.0/16")  # the other spoke, through us
    assert "172.17.5.0/24" in bird_route(lab, "spb", "172.17.5.0/24")
    # What the export policy keeps away from the spokes.
    assert "198.18.0.0/15" not in lab.birds["spa"].birdc("show", "route")
    assert "192.168.99.0/24" not in lab.birds["spb"].birdc("show", "route")
    # Our own kernel: DC and spoke routes in main, the filtered ones absent.
    k = ours(lab, "main")
    assert k["172.16.0.0/16"] == {PEERS["dc"]["them"]} and k["10.20.0.0/16"] == {PEERS["spa"]["them"]}
    assert "198.18.0.0/15" not in k and "192.168.99.0/24" not in k


def test_multi_vrf_overlapping_prefix_lands_in_each_vrfs_own_table(lab: ScenarioLab) -> None:
    wait_for("192.0.2.0/24 in table 500", lambda: "192.0.2.0/24" in ours(lab, 500), 30)
    wait_for("192.0.2.0/24 in table 501", lambda: "192.0.2.0/24" in ours(lab, 501), 30)
    assert ours(lab, 500)["192.0.2.0/24"] == {PEERS["red"]["them"]}
    assert ours(lab, 501)["192.0.2.0/24"] == {PEERS["blu"]["them"]}
    assert "192.0.2.0/24" not in ours(lab, "main")
    assert lab.bgpd is not None
    data = lab.bgpd.cli_json("show", "routes", "192.0.2.0/24")["routes"]
    assert sorted((r["vrf"], r["table"], r["paths"][0]["peer"]) for r in data) == [
        ("blue", 501, PEERS["blu"]["them"]),
        ("red", 500, PEERS["red"]["them"]),
    ]
    # Neither VRF's route leaks to the transit peers.
    assert "192.0.2.0/24" not in frr_routes(lab)


def test_anycast_vip_one_route_both_nodes_then_one(lab: ScenarioLab) -> None:
    both = {PEERS["n1"]["them"], PEERS["n2"]["them"]}
    wait_for("VIP with both next hops", lambda: ours(lab, "main").get("10.96.0.10/32") == both, 30)
    assert ours(lab, "main")["10.96.0.0/12"] == both
    both6 = {PEERS["n1"]["v6"][1], PEERS["n2"]["v6"][1]}
    wait_for("IPv6 VIP with both next hops", lambda: ours(lab, "main", 6).get("fd96::10/128") == both6, 30)
    n2 = lab.birds["n2"]
    n2.birdc("disable", "st4")
    try:
        wait_for(
            "VIP with node 1 only",
            lambda: ours(lab, "main").get("10.96.0.10/32") == {PEERS["n1"]["them"]},
            15,
        )
        assert ours(lab, "main")["10.96.0.0/12"] == {PEERS["n1"]["them"]}
    finally:
        n2.birdc("enable", "st4")
    wait_for("VIP back on both", lambda: ours(lab, "main").get("10.96.0.10/32") == both, 15)
