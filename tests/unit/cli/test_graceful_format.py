"""`bgpd-cli show neighbors` for a neighbour we are keeping stale routes of (graceful restart)."""

from __future__ import annotations

from bgpd.cli_format import render_neighbors


def test_restarting_neighbor_info_says_stale_count_and_time_left() -> None:
    n = {
        "address": "10.0.0.2",
        "asn": 65001,
        "vrf": "red",
        "state": "Active",
        "uptime_s": None,
        "last_error": "connection closed by peer",
        "graceful_restart": {"state": "restarting", "stale": 1200, "time_left_s": 97.5},
    }
    text = render_neighbors({"neighbors": [n]})
    assert "Active  graceful restart: 1200 stale, 97.5s left" in text
    n["graceful_restart"] = {"state": "none", "stale": 0, "time_left_s": None}
    assert "Active  connection closed by peer" in render_neighbors({"neighbors": [n]})
