"""`python -m lab up|status|down`: the live lab (our daemon between two BIRD routers).

`up` builds the namespaces, starts BIRD and bgpd, waits until routes are in kernel table
500, prints what it built and how to look, and leaves it running. `down` stops exactly the
processes it started (by PID, from the state file) and deletes its namespaces.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.netns import Lab, run
from lab.peers import kernel_routes, wait_for
from lab.topology import RED_TABLE, SkeletonLab

STATE_DIR = Path(os.environ.get("BGPD_LAB_DIR", "/tmp/bgpd-lab"))
STATE = STATE_DIR / "state.json"


def up() -> int:
    if STATE.exists():
        print(f"lab: already up (state in {STATE}); run `scripts/lab down` first", file=sys.stderr)
        return 1
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    sk = SkeletonLab(STATE_DIR, lab=Lab(prefix="lab"))
    sk.build()
    state = {"namespaces": sk.lab.namespaces, "pids": [], "us": sk.us, "socket": ""}

    def save() -> None:
        procs = [b.proc for b in sk.birds.values()] + ([sk.bgpd.proc] if sk.bgpd else [])
        state["pids"] = [p.pid for p in procs if p is not None]
        STATE.write_text(json.dumps(state))

    try:
        sk.start_birds()
        save()
        bgpd = sk.start_bgpd()
        state["socket"] = str(bgpd.socket)
        save()
        wait_for(
            "BIRD routes in kernel table 500",
            lambda: (
                {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"}
                <= {r["dst"] for r in kernel_routes(sk.us, RED_TABLE)}
            ),
            60,
        )
    except Exception as e:
        print(f"lab: failed to come up: {e}", file=sys.stderr)
        if sk.bgpd is not None:
            print(sk.bgpd.log_text()[-4000:], file=sys.stderr)
        down()
        return 1
    us, sock = sk.us, state["socket"]
    cli = f"{Path(sys.executable).parent}/bgpd-cli --socket {sock}"
    print(
        f"""
lab is up: bgpd (AS 65010) in namespace {us} peers with BIRD b1 and b2 (AS 65002) in VRF red.
  b1: 10.91.1.2 fd91:1::2 announces 192.0.2.0/24 198.51.100.0/24 2001:db8:100::/48
  b2: 10.91.2.2 fd91:2::2 announces 192.0.2.0/24 203.0.113.0/24 2001:db8:100::/48
  we announce 10.96.0.0/12 and fd96::/48 (see them in BIRD).

Look:
  ip -n {us} route show table {RED_TABLE}
  ip -n {us} -6 route show table {RED_TABLE}
  {cli} show neighbors
  {cli} show routes
  birdc -s {STATE_DIR}/b1/bird.ctl show route
  logs: {STATE_DIR}/us/bgpd.log, {STATE_DIR}/b1/bird.log, {STATE_DIR}/b2/bird.log

Tear down:
  scripts/lab down
"""
    )
    print(run("ip", "route", "show", "table", str(RED_TABLE), ns=us).stdout)
    return 0


def down() -> int:
    if not STATE.exists():
        print("lab: not up")
        return 0
    state = json.loads(STATE.read_text())
    for pid in state.get("pids", []):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    time.sleep(1.5)
    for pid in state.get("pids", []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    Lab(namespaces=list(state.get("namespaces", []))).close()
    STATE.unlink()
    print("lab: torn down")
    return 0


def status() -> int:
    if not STATE.exists():
        print("lab: not up")
        return 1
    state = json.loads(STATE.read_text())
    print(run("ip", "route", "show", "table", str(RED_TABLE), ns=state["us"], check=False).stdout)
    subprocess.run(
        [sys.executable, "-m", "bgpd.cli", "--socket", state["socket"], "show", "neighbors"], check=False
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="lab")
    ap.add_argument("command", choices=["up", "down", "status"])
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("lab: needs root (network namespaces)", file=sys.stderr)
        return 1
    return {"up": up, "down": down, "status": status}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
