"""Text rendering of the daemon's answers (birdc habits), from INTERFACE.md-shaped data."""

from __future__ import annotations

from typing import Any

import pytest

from bgpd.cli_format import (
    fmt_duration,
    render,
    render_counts,
    render_message,
    render_neighbors,
    render_routes,
    render_vrfs,
)


def path(peer: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "best": False,
        "ecmp": False,
        "peer": peer,
        "next_hop": peer,
        "as_path": [64512],
        "origin": "igp",
        "local_pref": 100,
        "med": None,
        "communities": [],
        "large_communities": [],
        "source": "ebgp",
        "age_s": 12.5,
    }
    base.update(kw)
    return base


ROUTES = {
    "routes": [
        {
            "vrf": "main",
            "table": 254,
            "prefix": "10.96.0.0/12",
            "paths": [
                path("local", best=True, ecmp=True, next_hop=None, as_path=[], source="local", age_s=3725)
            ],
        },
        {
            "vrf": "red",
            "table": 500,
            "prefix": "192.0.2.0/24",
            "paths": [
                path(
                    "172.16.1.140",
                    best=True,
                    ecmp=True,
                    communities=["65010:100", "65010:1"],
                    large_communities=["65010:1:2"],
                ),
                path("172.16.1.141", ecmp=True, as_path=[64513], med=5, age_s=100000),
                path(
                    "172.16.1.142",
                    as_path=[64514, 64515],
                    origin="incomplete",
                    local_pref=90,
                    age_s=1,
                    reason="lower local preference",
                ),
            ],
        },
        {
            "vrf": "red",
            "table": 500,
            "prefix": "2001:db8::/32",
            "paths": [path("2001:db8::2", best=True, ecmp=True, as_path=[64512, 64520], origin="egp")],
        },
    ]
}


def test_routes_birdc_style() -> None:
    assert render_routes(ROUTES) == "\n".join(
        [
            "Table main (kernel table 254):",
            "10.96.0.0/12         unicast [local 01:02:05] * (100) [i]",
            "",
            "Table red (kernel table 500):",
            "192.0.2.0/24         unicast [172.16.1.140 00:00:12] * ecmp (100) [AS64512i]",
            "\tvia 172.16.1.140",
            "\tBGP.community: (65010,100) (65010,1)",
            "\tBGP.large_community: (65010, 1, 2)",
            "                     unicast [172.16.1.141 1d03h46m] * ecmp (100) [AS64513i]",
            "\tvia 172.16.1.141",
            "\tBGP.med: 5",
            "                     unicast [172.16.1.142 00:00:01] (90) [AS64515?]",
            "\tvia 172.16.1.142",
            "\tnot best: lower local preference",
            "2001:db8::/32        unicast [2001:db8::2 00:00:12] * (100) [AS64520e]",
            "\tvia 2001:db8::2",
        ]
    )


def test_single_path_has_no_ecmp_mark() -> None:
    # INTERFACE.md's own sample: best and ecmp both true for a lone path.
    data = {
        "routes": [
            {
                "vrf": "red",
                "table": 500,
                "prefix": "192.0.2.0/24",
                "paths": [path("172.16.1.140", best=True, ecmp=True)],
            }
        ]
    }
    text = render_routes(data)
    assert "* (100) [AS64512i]" in text and "ecmp" not in text


def test_routes_tolerate_missing_optional_keys() -> None:
    data = {
        "routes": [
            {
                "vrf": "main",
                "prefix": "10.0.0.0/8",
                "paths": [{"best": True, "peer": "10.0.0.2", "as_path": [1]}],
            }
        ]
    }
    assert render_routes(data) == "Table main:\n10.0.0.0/8           unicast [10.0.0.2 -] * [AS1?]"


def test_integer_communities_are_rendered_too() -> None:
    data = {
        "routes": [
            {
                "vrf": "main",
                "table": 254,
                "prefix": "10.0.0.0/8",
                "paths": [
                    path(
                        "10.0.0.2",
                        best=True,
                        communities=[(65010 << 16) | 7, "no_export"],
                        large_communities=[[1, 2, 3]],
                    )
                ],
            }
        ]
    }
    text = render_routes(data)
    assert "\tBGP.community: (65010,7) no_export" in text
    assert "\tBGP.large_community: (1, 2, 3)" in text


def test_no_routes() -> None:
    assert render_routes({"routes": []}) == "No routes."
    assert render("routes", {}) == "No routes."


def test_counts_table() -> None:
    data = {
        "counts": [
            {"vrf": "main", "afi": "ipv4", "routes": 3, "paths": 5},
            {"vrf": "main", "afi": "ipv6", "routes": 0, "paths": 0},
            {"vrf": "red", "afi": "ipv4", "routes": 120, "paths": 240},
        ]
    }
    assert render_counts(data) == "\n".join(
        [
            "VRF    AFI   Routes  Paths",
            "main   ipv4       3      5",
            "main   ipv6       0      0",
            "red    ipv4     120    240",
            "Total           123    245",
        ]
    )
    one = render_counts({"counts": [{"vrf": "main", "afi": "ipv4", "routes": 1, "paths": 1}]})
    assert "Total" not in one
    assert render_counts({"counts": []}) == "No routes."


NEIGHBORS = {
    "neighbors": [
        {
            "address": "10.99.0.2",
            "asn": 65001,
            "vrf": "red",
            "state": "Established",
            "uptime_s": 3725.2,
            "received": 10,
            "accepted": 9,
            "advertised": 5,
            "last_error": None,
            "description": "spoke VPC A",
            "hold_time": 90,
            "flaps": 1,
            "capabilities": ["route-refresh", "4-octet-as"],
            "negotiated": {"hold_time": 90, "families": ["ipv4", "ipv6"]},
        },
        {
            "address": "2001:db8::2",
            "asn": 4200000000,
            "vrf": "main",
            "state": "Active",
            "uptime_s": None,
            "received": 0,
            "accepted": 0,
            "advertised": 0,
            "last_error": "Socket: Connection refused",
        },
        {
            "address": "10.99.0.3",
            "asn": 65003,
            "vrf": "main",
            "state": "Idle",
            "uptime_s": 200000,
            "received": None,
            "accepted": None,
            "advertised": None,
            "last_error": None,
            "enabled": False,
        },
    ]
}


def test_neighbors_like_show_protocols() -> None:
    assert render_neighbors(NEIGHBORS) == "\n".join(
        [
            "Address              AS  VRF   State  Since     Info",
            "10.99.0.2         65001  red   up     01:02:05  Established  rcvd/acc/adv 10/9/5",
            "2001:db8::2  4200000000  main  start  -         Active  Socket: Connection refused",
            "10.99.0.3         65003  main  down   2d07h33m  Idle",
        ]
    )


def test_neighbor_details() -> None:
    one = {"neighbors": NEIGHBORS["neighbors"][:1]}
    assert render("neighbors", one, detail=True) == "\n".join(
        [
            "Address       AS  VRF  State  Since     Info",
            "10.99.0.2  65001  red  up     01:02:05  Established  rcvd/acc/adv 10/9/5",
            "  Description:        spoke VPC A",
            "  Prefixes:           10 received, 9 accepted, 5 advertised",
            "  Last error:         -",
            "  Hold time:          90",
            "  Flaps:              1",
            "  Capabilities:       route-refresh, 4-octet-as",
            "  Negotiated:         hold_time=90, families=ipv4 ipv6",
        ]
    )


def test_no_neighbors() -> None:
    assert render_neighbors({"neighbors": []}) == "No neighbors."


def test_vrfs_table() -> None:
    data = {
        "vrfs": [
            {"name": "main", "table": 254, "routes_ipv4": 3, "routes_ipv6": 0, "neighbors": 1},
            {
                "name": "red",
                "table": 500,
                "routes_ipv4": 1,
                "routes_ipv6": 2,
                "neighbors": ["10.99.0.2", "10.99.0.3"],
            },
        ]
    }
    assert render_vrfs(data) == "\n".join(
        [
            "Name  Table  IPv4 routes  IPv6 routes  Neighbors",
            "main    254            3            0          1",
            "red     500            1            2          2",
        ]
    )
    assert render_vrfs({"vrfs": []}) == "No VRFs."


def test_message() -> None:
    assert render_message({"message": "neighbor 10.0.0.2: reset done"}) == "neighbor 10.0.0.2: reset done"
    assert render("message", {}) == "OK"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "00:00:00"),
        (12.9, "00:00:12"),
        (3725, "01:02:05"),
        (86399, "23:59:59"),
        (86400, "1d00h00m"),
        (200000, "2d07h33m"),
        (-5, "00:00:00"),
    ],
)
def test_durations(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_neighbor_details_nest_mappings_like_birdc() -> None:
    n = {
        "address": "10.92.0.2",
        "asn": 65000,
        "vrf": "main",
        "state": "Established",
        "uptime_s": 5,
        "received": 1,
        "accepted": 1,
        "advertised": 1,
        "last_error": None,
        "negotiated": {"hold_time": 9, "capabilities": {"extended_message": True, "hostname": "dc"}},
    }
    lines = render("neighbors", {"neighbors": [n]}, detail=True).splitlines()
    assert lines[-5:] == [
        "  Negotiated:",
        "    hold time:        9",
        "    capabilities:",
        "      extended message: yes",
        "      hostname:         dc",
    ]
