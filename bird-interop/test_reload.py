"""Config reload against real BIRD peers: only what changed is touched, no session reset."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from lab.peers import Bgpd, Bird, wait_for
from lab.topology import SkeletonLab, bgpd_config, running_skeleton

pytestmark = [pytest.mark.root, pytest.mark.interop]

B1 = 'address = "10.91.1.2"\nasn = 65002\ntemplate = "bird"\n'

EXTRA_NETWORK = """
[[network]]
prefix = "10.200.0.0/16"
vrf = "red"
"""

POLICY_TO_B1 = """
[policy.to-b1]
[[policy.to-b1.term]]
match.prefix = ["10.96.0.0/12"]
action = "accept"
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SkeletonLab]:
    with running_skeleton(tmp_path_factory.mktemp("reload")) as sk:
        yield sk


def neighbor(bgpd: Bgpd, address: str) -> dict:  # type: ignore[type-arg]
    return bgpd.cli_json("show", "neighbors", address)["neighbors"][0]  # type: ignore[no-any-return]


def bird_since(bird: Bird, proto: str) -> str:
    """The Since column of `birdc show protocols NAME`: changes whenever the session restarts."""
    for line in bird.birdc("show", "protocols", proto).splitlines():
        parts = line.split()
        if parts and parts[0] == proto:
            return parts[4]
    return ""


def write_config(lab: SkeletonLab, extra: str = "", b1_extra: str = "") -> None:
    assert lab.bgpd is not None
    text = bgpd_config(lab.bgpd.workdir, extra)
    if b1_extra:
        assert B1 in text
        text = text.replace(B1, B1 + b1_extra)
    lab.bgpd.config_path.write_text(text)


def bird_has(bird: Bird, prefix: str) -> bool:
    return prefix in bird.birdc("show", "route", prefix)


def test_reload_adds_a_network_and_keeps_every_session(lab: SkeletonLab) -> None:
    bgpd, b1 = lab.bgpd, lab.birds["b1"]
    assert bgpd is not None
    before = neighbor(bgpd, "10.91.1.2")
    since = bird_since(b1, "us4")
    write_config(lab, EXTRA_NETWORK)
    out = bgpd.cli("reload")
    assert "0 restarted" in out.stdout and "0 removed" in out.stdout
    wait_for("10.200.0.0/16 in BIRD b1", lambda: bird_has(b1, "10.200.0.0/16"), 15)
    after = neighbor(bgpd, "10.91.1.2")
    assert after["state"] == "Established"
    assert after["uptime_s"] >= before["uptime_s"]  # the same session, still counting
    assert after["flaps"] == before["flaps"]
    assert bird_since(b1, "us4") == since


def test_reload_with_a_bad_config_changes_nothing(lab: SkeletonLab) -> None:
    bgpd = lab.bgpd
    assert bgpd is not None
    before = neighbor(bgpd, "10.91.1.2")
    good = bgpd.config_path.read_text()
    bgpd.config_path.write_text(good.replace("hold_time = 9", "hold_tme = 9"))
    try:
        out = bgpd.cli("reload", check=False)
        assert out.returncode == 1
        assert str(bgpd.config_path) in out.stderr and "template.bird.hold_tme" in out.stderr
        assert "Traceback" not in out.stderr
        assert bgpd.running
        after = neighbor(bgpd, "10.91.1.2")
        assert after["state"] == "Established" and after["uptime_s"] >= before["uptime_s"]
    finally:
        bgpd.config_path.write_text(good)


def test_export_policy_change_is_applied_without_a_reset(lab: SkeletonLab) -> None:
    bgpd, b1 = lab.bgpd, lab.birds["b1"]
    assert bgpd is not None
    wait_for("10.200.0.0/16 in BIRD b1", lambda: bird_has(b1, "10.200.0.0/16"), 15)
    since = bird_since(b1, "us4")
    write_config(lab, EXTRA_NETWORK + POLICY_TO_B1, b1_extra='export = "to-b1"\n')
    out = bgpd.cli("reload")
    assert "1 re-filtered" in out.stdout and "0 restarted" in out.stdout
    wait_for("10.200.0.0/16 withdrawn from b1", lambda: not bird_has(b1, "10.200.0.0/16"), 15)
    assert bird_has(b1, "10.96.0.0/12")
    assert bird_since(b1, "us4") == since
    assert bird_has(lab.birds["b2"], "10.200.0.0/16")  # b2's export is unchanged


def test_sighup_reloads_too(lab: SkeletonLab) -> None:
    bgpd, b2 = lab.bgpd, lab.birds["b2"]
    assert bgpd is not None
    write_config(lab, POLICY_TO_B1, b1_extra='export = "to-b1"\n')  # the extra network goes away
    bgpd.signal(signal.SIGHUP)
    wait_for("10.200.0.0/16 withdrawn from b2", lambda: not bird_has(b2, "10.200.0.0/16"), 15)
    assert bgpd.running and neighbor(bgpd, "10.91.2.2")["state"] == "Established"
    assert '"reload done"' in bgpd.log_text() or "reload done" in bgpd.log_text()


def test_vrf_table_change_moves_the_routes_without_a_reset(lab: SkeletonLab) -> None:
    from lab.peers import kernel_routes

    bgpd = lab.bgpd
    assert bgpd is not None
    wait_for("routes in 500", lambda: len(kernel_routes(lab.us, 500)) >= 3, 15)
    before = neighbor(bgpd, "10.91.1.2")
    text = bgpd.config_path.read_text()
    assert "table = 500" in text
    bgpd.config_path.write_text(text.replace("table = 500", "table = 502"))
    out = bgpd.cli("reload")
    assert "0 restarted" in out.stdout and "routes moved" in out.stdout
    moved = wait_for(
        "routes in table 502",
        lambda: (
            {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"}
            <= {r["dst"] for r in kernel_routes(lab.us, 502)}
            and kernel_routes(lab.us, 502)
        ),
        15,
    )
    ecmp = next(r for r in moved if r["dst"] == "192.0.2.0/24")
    assert len(ecmp["nexthops"]) == 2
    wait_for("table 500 emptied", lambda: kernel_routes(lab.us, 500) == [], 15)
    assert {r["dst"] for r in kernel_routes(lab.us, 502, 6)} >= {"2001:db8:100::/48"}
    after = neighbor(bgpd, "10.91.1.2")
    assert after["state"] == "Established" and after["uptime_s"] >= before["uptime_s"]
    shown = bgpd.cli_json("show", "routes", "--vrf", "red", "192.0.2.0/24")["routes"]
    assert shown[0]["table"] == 502


def test_removed_neighbor_gets_peer_deconfigured_and_comes_back_when_added(lab: SkeletonLab) -> None:
    bgpd, b2 = lab.bgpd, lab.birds["b2"]
    assert bgpd is not None
    full = bgpd.config_path.read_text()
    b2v4 = 'address = "10.91.2.2"\nasn = 65002\ntemplate = "bird"\naddress_families = ["ipv4"]\n'
    assert "[[neighbor]]\n" + b2v4 in full
    bgpd.config_path.write_text(full.replace("[[neighbor]]\n" + b2v4, ""))
    out = bgpd.cli("reload")
    assert "1 removed" in out.stdout and "0 restarted" in out.stdout
    wait_for("BIRD told", lambda: "Received: Peer de-configured" in b2.log_text(), 15)
    assert all(n["address"] != "10.91.2.2" for n in bgpd.cli_json("show", "neighbors")["neighbors"])
    assert neighbor(bgpd, "fd91:2::2")["state"] == "Established"  # b2's IPv6 session is another neighbour
    bgpd.config_path.write_text(full)
    out = bgpd.cli("reload")
    assert "1 neighbors added" in out.stdout
    wait_for("b2 back", lambda: neighbor(bgpd, "10.91.2.2")["state"] == "Established", 40)
