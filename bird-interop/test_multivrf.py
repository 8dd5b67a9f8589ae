"""Two VRFs, one BIRD peer in each, the same prefix from both: it never crosses VRFs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from lab.peers import kernel_routes, route_gateways, wait_for
from lab.topology_multivrf import PEERS, TABLES, MultiVrfLab
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

RED_PEER, BLUE_PEER = PEERS["red"]["v4"][1], PEERS["blue"]["v4"][1]


@pytest.fixture(scope="module")
def mv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiVrfLab]:
    need_root()
    if shutil.which("bird") is None or shutil.which("birdc") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")
    lab = MultiVrfLab(tmp_path_factory.mktemp("multivrf")).build()
    try:
        lab.start_birds()
        lab.start_bgpd()
        wait_for("both sessions Established", lab.established, 40)
        yield lab
    except BaseException:
        lab.dump_logs()
        raise
    finally:
        lab.close()


def ours(lab: MultiVrfLab, table: int) -> dict[str, set[str]]:
    return {
        r["dst"]: route_gateways(r)
        for r in kernel_routes(lab.us, table, 4)
        if r.get("protocol") in (186, "186", "bgp")
    }


def test_same_prefix_lands_in_each_vrfs_table_via_its_own_peer(mv: MultiVrfLab) -> None:
    red = wait_for(
        "red routes in table 500",
        lambda: {"192.0.2.0/24", "198.51.100.0/24"} <= (r := ours(mv, TABLES["red"])).keys() and r,
        30,
    )
    blue = wait_for(
        "blue routes in table 501",
        lambda: {"192.0.2.0/24", "203.0.113.0/24"} <= (r := ours(mv, TABLES["blue"])).keys() and r,
        30,
    )
    # One next hop each: the two announcements of 192.0.2.0/24 never meet (no ECMP across VRFs).
    assert red["192.0.2.0/24"] == {RED_PEER}
    assert blue["192.0.2.0/24"] == {BLUE_PEER}
    assert "203.0.113.0/24" not in red and "198.51.100.0/24" not in blue
    main = {r["dst"] for r in kernel_routes(mv.us, "main", 4)}
    assert not {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"} & main


def test_show_routes_per_vrf(mv: MultiVrfLab) -> None:
    assert mv.bgpd is not None
    for vrf, peer in (("red", RED_PEER), ("blue", BLUE_PEER)):
        data = wait_for(
            f"192.0.2.0/24 in vrf {vrf}",
            lambda v=vrf: (
                (d := mv.bgpd.cli_json("show", "routes", "--vrf", v, "192.0.2.0/24"))["routes"] and d
            ),  # type: ignore[union-attr]
            20,
        )
        [route] = data["routes"]
        assert route["vrf"] == vrf and route["table"] == TABLES[vrf]
        assert [p["peer"] for p in route["paths"]] == [peer]
    both = mv.bgpd.cli_json("show", "routes", "--all", "192.0.2.0/24")["routes"]
    assert sorted((r["vrf"], len(r["paths"])) for r in both) == [("blue", 1), ("red", 1)]


def test_export_stays_within_the_vrf(mv: MultiVrfLab) -> None:
    red, blue = mv.birds["red"], mv.birds["blue"]
    # Our red networks reach the red peer...
    out = wait_for(
        "10.96.0.0/12 at the red peer",
        lambda: "10.96.0.0/12" in (o := red.birdc("show", "route", "protocol", "tous")) and o,
        30,
    )
    assert "10.97.1.0/24" in out
    # ...and blue's routes do not (nor the other way round).
    assert "203.0.113.0/24" not in out
    wait_for(
        "blue's session exported its End-of-RIB",
        lambda: "Established" in blue.protocol_state("tous"),
        20,
    )
    blue_out = blue.birdc("show", "route", "protocol", "tous")
    for p in ("10.96.0.0/12", "10.97.1.0/24", "198.51.100.0/24"):
        assert p not in blue_out, blue_out
    neighbors = {n["address"]: n for n in mv.bgpd.cli_json("show", "neighbors")["neighbors"]}  # type: ignore[union-attr]
    assert neighbors[BLUE_PEER]["advertised"] == 0
    assert neighbors[RED_PEER]["advertised"] == 3


def blackholes(lab: MultiVrfLab, table: int) -> set[str]:
    return {r["dst"] for r in kernel_routes(lab.us, table, 4) if r.get("type") == "blackhole"}


def test_network_blackhole_route_follows_the_config(mv: MultiVrfLab) -> None:
    assert mv.bgpd is not None
    assert blackholes(mv, TABLES["red"]) == {"10.96.0.0/12"}
    assert blackholes(mv, TABLES["blue"]) == set()
    # Reload without it: the blackhole goes at once, the announcement stays.
    conf = mv.bgpd.config_path.read_text()
    mv.bgpd.config_path.write_text(conf.replace("blackhole = true", ""))
    mv.bgpd.cli("reload")
    assert blackholes(mv, TABLES["red"]) == set()
    assert "10.96.0.0/12" in mv.birds["red"].birdc("show", "route", "protocol", "tous")
    # And back.
    mv.bgpd.config_path.write_text(conf)
    mv.bgpd.cli("reload")
    assert blackholes(mv, TABLES["red"]) == {"10.96.0.0/12"}


def test_blackhole_removed_at_shutdown(mv: MultiVrfLab) -> None:
    assert mv.bgpd is not None
    mv.bgpd.stop()
    assert blackholes(mv, TABLES["red"]) == set()
