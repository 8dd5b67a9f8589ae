"""The daemon's side of a slice-wise session-down withdrawal (rib/drain.py): the edges.

A whole Daemon with an in-memory kernel; the neighbour's routes are put in its channel directly
(no session needed). A VRF removed by a reload while its paths drain has them withdrawn from its
kernel table before the table is forgotten; a stop with ``persist`` mid-drain leaves none of
them in the kernel either.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from bgpd.config.toml import load_config
from bgpd.daemon import Daemon
from fib.memory import MemoryFib
from rib.attrs import PathAttrs, SegType, intern
from rib.drain import SLICE
from rib.prefix import Afi, PrefixKey, make_key
from rib.route import Source, SourceKind
from tests.support.daemon import write_config

V4 = Afi.IPV4
PEER = "127.0.0.2"
ROUTES = 3 * SLICE + 5  # several slices


def config(tmp_path: Path, with_red: bool = True, persist: bool = False) -> Path:
    red = f"""
[vrf.red]
table = 500

[[neighbor]]
address = "{PEER}"
asn = 65001
vrf = "red"
passive = true
import = "all"
export = "all"
"""
    kernel = f"""
[kernel]
persist = {"true" if persist else "false"}
"""
    return write_config(tmp_path, kernel + (red if with_red else ""))


def prefixes() -> list[PrefixKey]:
    return [make_key(24, bytes([20, i // 256, i % 256, 0])) for i in range(ROUTES)]


async def loaded(conf: Path, kernel: MemoryFib) -> Daemon:
    d = Daemon(load_config(str(conf)), fib_backend=kernel)
    await d.start()
    ch = d.peers[PEER].channel
    src = Source(SourceKind.EBGP, ipaddress.ip_address(PEER), 65001, 2, PEER)
    d.rib.channel_up(ch, src, [V4])
    attrs = intern(PathAttrs(as_path=((SegType.AS_SEQUENCE, (65001,)),), next_hop=ipaddress.ip_address(PEER)))
    keys = prefixes()
    for i in range(0, ROUTES, 100):
        d.rib.receive(ch, [(V4, attrs, keys[i : i + 100])], [], 1.0)
    assert d.fib is not None
    await d.fib.wait_idle()
    assert len(kernel.table(500, V4)) == ROUTES
    # The session ends: captured, nothing withdrawn yet (the daemon's slices come on later turns).
    d.rib.channel_down(ch)
    d._drain_started()
    assert d.rib.draining and len(d.rib.table("red", V4)) == ROUTES
    return d


async def test_a_vrf_removed_by_reload_mid_drain_leaves_its_kernel_table_empty(tmp_path: Path) -> None:
    kernel = MemoryFib()
    d = await loaded(config(tmp_path), kernel)
    try:
        config(tmp_path, with_red=False)
        result = await d.reload()
        assert "1 removed" in result["message"]
        assert not d.rib.draining and len(d.rib.table("red", V4)) == 0
        assert d.fib is not None
        await d.fib.wait_idle()
        assert kernel.table(500, V4) == {}
    finally:
        await d.shutdown()


async def test_a_stop_with_persist_mid_drain_keeps_none_of_the_drained_routes(tmp_path: Path) -> None:
    kernel = MemoryFib()
    d = await loaded(config(tmp_path, persist=True), kernel)
    await d.shutdown()
    assert kernel.table(500, V4) == {}
