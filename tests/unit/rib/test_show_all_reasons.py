"""`show routes --all`: every losing path says which decision step it lost on."""

from __future__ import annotations

from bgpd.views import routes_json
from rib.decision import Decision
from rib.prefix import Afi
from rib.table import LocRib
from tests.unit.rib.helpers import ebgp, key, path


def test_all_paths_with_the_step_they_lost_on() -> None:
    t = LocRib("red", Afi.IPV4, decision=Decision(always_compare_med=True))
    p = key("192.0.2.0/24")
    best = path(ebgp("10.0.0.1", 65001), path=(65001,), nh="10.0.0.1", med=5)
    longer = path(ebgp("10.0.0.2", 65002), path=(65002, 65100), nh="10.0.0.2")
    # Another neighbour AS: only always_compare_med makes its higher MED lose.
    higher_med = path(ebgp("10.0.0.3", 65003), path=(65003,), nh="10.0.0.3", med=9)
    for x in (longer, higher_med, best):
        t.update(p, x)
    [route] = routes_json([("red", 500, t)], None, True, 0.0)["routes"]
    got = {q["peer"]: (q["best"], q.get("reason")) for q in route["paths"]}
    assert got == {
        "10.0.0.1": (True, None),
        "10.0.0.2": (False, "lost on AS path length"),
        "10.0.0.3": (False, "lost on MED"),
    }
    # Without --all only the selection is shown.
    [route] = routes_json([("red", 500, t)], None, False, 0.0)["routes"]
    assert [q["peer"] for q in route["paths"]] == ["10.0.0.1"]
