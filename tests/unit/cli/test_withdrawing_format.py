"""`show neighbors` text: a neighbour whose last session's paths are still being withdrawn says so."""

from __future__ import annotations

from bgpd.cli_format import render_neighbors


def neighbor(**kw: object) -> dict[str, object]:
    n: dict[str, object] = {"address": "10.99.0.2", "asn": 65001, "vrf": "main", "state": "Active"}
    n.update(kw)
    return n


def test_withdrawing_shows_in_the_info_column_until_done() -> None:
    busy = render_neighbors({"neighbors": [neighbor(last_error="hold timer expired", withdrawing=512000)]})
    assert "hold timer expired  (withdrawing 512000 prefixes)" in busy
    done = render_neighbors({"neighbors": [neighbor(withdrawing=0)]})
    assert "withdrawing" not in done
    # Established (a new session while the old one's paths drain): the counters, as before.
    up = render_neighbors({"neighbors": [neighbor(state="Established", received=3, withdrawing=9)]})
    assert "rcvd/acc/adv 3/" in up
