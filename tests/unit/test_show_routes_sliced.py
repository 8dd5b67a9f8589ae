"""`show routes` of a big table is built and encoded in slices: the loop keeps turning (sessions,
timers, other CLI requests) and the answer is the same JSON as the one-piece view."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bgpd import daemon as daemon_mod
from bgpd.config.toml import load_config
from bgpd.control import ControlServer, request
from bgpd.daemon import Daemon
from bgpd.views import routes_json
from rib.attrs import PathAttrs, intern
from rib.prefix import Afi
from tests.support.daemon import write_config

ROUTES = daemon_mod.SLICED_ROUTES + 5_000


def make_daemon(tmp_path: Path) -> Daemon:
    conf = write_config(tmp_path, "\n[kernel]\nenabled = false\n")
    d = Daemon(load_config(str(conf)))
    attrs = intern(PathAttrs(med=7))
    for i in range(ROUTES):
        key = bytes([32]) + ((10 << 24) + i).to_bytes(4, "big")
        d.rib.originate("main", Afi.IPV4, key, attrs, 0.0)
    return d


async def test_a_big_show_routes_answers_in_slices_with_the_same_json(tmp_path: Path) -> None:
    d = make_daemon(tmp_path)
    sock = str(tmp_path / "bgpd.sock")
    server = ControlServer(sock, d.handle_command)
    await server.start()
    turns = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    tick = asyncio.create_task(ticker())
    try:
        args = {"vrf": None, "all": False, "prefix": None, "count": False}
        loop = asyncio.get_running_loop()
        resp = await loop.run_in_executor(None, lambda: request(sock, ["show", "routes"], args, timeout=60))
        done.set()
        await tick
    finally:
        await server.close()
    assert resp["ok"], resp
    routes = resp["data"]["routes"]
    assert len(routes) == ROUTES
    assert routes[0]["prefix"] == "10.0.0.0/32" and routes[0]["paths"][0]["med"] == 7
    # The same JSON as the one-piece view (with the same clock for the route ages).
    now = d.started_at
    whole = routes_json(d._tables(None), None, False, now, None, d.graceful.is_stale)
    for r in (routes, whole["routes"]):
        for entry in r:
            for p in entry["paths"]:
                p.pop("age_s")
    assert routes == whole["routes"]
    # The loop got a turn at least once per slice while the answer was built.
    assert turns >= ROUTES // daemon_mod.ROUTES_SLICE


async def test_a_small_show_routes_is_answered_in_one_piece(tmp_path: Path) -> None:
    d = make_daemon(tmp_path)
    d.rib.table("main", Afi.IPV4).dests.clear()  # below the threshold: the plain dict view
    out = await d.handle_command(["show", "routes"], {"prefix": None})
    assert out == {"routes": []}
    json.dumps(out)
