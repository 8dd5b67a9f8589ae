"""`bgpd-cli neighbor ADDRESS disable|enable|reset|refresh` against a real BIRD peer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.peers import kernel_routes, wait_for
from lab.topology import RED_TABLE, SkeletonLab, running_skeleton

pytestmark = [pytest.mark.root, pytest.mark.interop]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SkeletonLab]:
    with running_skeleton(tmp_path_factory.mktemp("cmds")) as sk:
        yield sk


def n(lab: SkeletonLab) -> dict:  # type: ignore[type-arg]
    assert lab.bgpd is not None
    return lab.bgpd.cli_json("show", "neighbors", "10.91.1.2")["neighbors"][0]  # type: ignore[no-any-return]


def b1_routes(lab: SkeletonLab) -> bool:
    return "198.51.100.0/24" in {r["dst"] for r in kernel_routes(lab.us, RED_TABLE)}


def test_disable_shuts_the_session_down_and_enable_brings_it_back(lab: SkeletonLab) -> None:
    assert lab.bgpd is not None
    wait_for("b1's routes", lambda: b1_routes(lab), 20)
    out = lab.bgpd.cli("neighbor", "10.91.1.2", "disable")
    assert "disable" in out.stdout
    wait_for(
        "BIRD sees the shutdown",
        lambda: "Administrative shutdown" in lab.birds["b1"].birdc("show", "protocols", "all", "us4"),
        15,
    )
    assert n(lab)["state"] != "Established" and n(lab)["enabled"] is False
    wait_for("b1's routes gone", lambda: not b1_routes(lab), 10)
    # Disabled means disabled: BIRD's reconnects are refused.
    assert n(lab)["state"] != "Established"
    lab.bgpd.cli("neighbor", "10.91.1.2", "enable")
    wait_for("re-established", lambda: n(lab)["state"] == "Established", 30)
    wait_for("b1's routes back", lambda: b1_routes(lab), 15)


def test_reset_counts_a_flap_and_reconnects(lab: SkeletonLab) -> None:
    assert lab.bgpd is not None
    wait_for("Established", lambda: n(lab)["state"] == "Established", 30)
    flaps = n(lab)["flaps"]
    lab.bgpd.cli("neighbor", "10.91.1.2", "reset")
    wait_for("flap counted", lambda: n(lab)["flaps"] == flaps + 1, 15)
    wait_for("re-established", lambda: n(lab)["state"] == "Established", 30)
    assert "Received: Administrative reset" in lab.birds["b1"].log_text()


def test_refresh_asks_the_peer_to_send_its_routes_again(lab: SkeletonLab) -> None:
    assert lab.bgpd is not None
    wait_for("Established with routes", lambda: n(lab)["state"] == "Established" and b1_routes(lab), 30)
    before = n(lab)
    lab.bgpd.cli("neighbor", "10.91.1.2", "refresh")
    after = wait_for(
        "BIRD re-sent its routes", lambda: (a := n(lab))["updates_in"] > before["updates_in"] and a, 15
    )
    assert after["uptime_s"] >= before["uptime_s"] and after["flaps"] == before["flaps"]
    assert after["received"] == before["received"]  # the same routes again, no duplicates
    assert b1_routes(lab)


def test_wrong_neighbor_or_action_is_a_one_line_error(lab: SkeletonLab) -> None:
    assert lab.bgpd is not None
    out = lab.bgpd.cli("neighbor", "10.9.9.9", "reset", check=False)
    assert out.returncode != 0 and out.stderr.strip() == "bgpd-cli: no neighbor 10.9.9.9"
    out = lab.bgpd.cli("neighbor", "10.91.1.2", "explode", check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
