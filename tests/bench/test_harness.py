"""bench/run end to end on a small table: our daemon and BIRD in namespaces, real kernel tables.

A benchmark is not a timed test: this only checks that the harness runs, that both daemons
converge, and that the figures it writes are sane. It needs neither GoBGP nor ExaBGP.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

ROOT = Path(__file__).resolve().parent.parent.parent
N = 2000


def test_harness_small_table(tmp_path: Path) -> None:
    need_root()
    if shutil.which("bird") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run"), "--prefixes", str(N), "--daemons", "bgpd,bird",
         "--scenarios", "load,withdraw", "--runs", "1", "--json", str(out), "--timeout", "30",
         "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=150, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads(out.read_text())
    got = {(r["scenario"], r["daemon"]) for r in records}
    assert got == {("load", "bgpd"), ("load", "bird"), ("withdraw", "bgpd"), ("withdraw", "bird")}
    for r in records:
        where = f"{r['scenario']}/{r['daemon']}: {r}"
        assert r["converged"] is True, where
        assert r["n"] == N, where
        assert r["runs"] == 1, where
        # Both write a kernel table: RIB and kernel times are measured, positive and bounded.
        for key in ("rib_s", "kernel_s"):
            assert isinstance(r[key], float | int) and 0 <= r[key] < 30, where
        assert 0 <= r["cpu_s"] < 30, where
        # A daemon process holds at least a MiB and, for 2000 routes, far less than a GiB.
        assert 1 < r["rss_mib"] < 1024, where
    # The printed table carries the ratio to BIRD for our daemon.
    assert "vs BIRD" in proc.stdout and "x (kernel_s)" in proc.stdout, proc.stdout
