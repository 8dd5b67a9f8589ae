"""`python -m lab up|status|down`: the live lab (our daemon with real FRR and BIRD neighbours).

`up` builds the namespaces of lab/scenarios.py, starts FRR, BIRD and bgpd, waits until every
scenario's routes are in the kernel, prints what it built and how to look, and leaves it
running. `down` stops exactly the
processes it started (by PID, from the state file) and deletes its namespaces.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.netns import Lab, run
from lab.peers import kernel_routes, wait_for
from lab.scenarios import ScenarioLab

STATE_DIR = Path(os.environ.get("BGPD_LAB_DIR", "/tmp/bgpd-lab"))
STATE = STATE_DIR / "state.json"
RED_TABLE = 500


def up() -> int:
    if STATE.exists():
        print(f"lab: already up (state in {STATE}); run `scripts/lab down` first", file=sys.stderr)
        return 1
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    sl = ScenarioLab(STATE_DIR, lab=Lab(prefix="lab"))
    sl.build()
    state: dict[str, object] = {"namespaces": sl.lab.namespaces, "pids": [], "us": sl.us, "socket": ""}
    STATE.write_text(json.dumps(state))
    try:
        sl.start()
        assert sl.bgpd is not None
        state["pids"] = sl.pids()
        state["socket"] = str(sl.bgpd.socket)
        state["frr_vty"] = str(sl.frr.vty) if sl.frr else ""
        STATE.write_text(json.dumps(state))
        wait_for(
            "routes of every scenario in the kernel",
            lambda: (
                "172.16.0.0/16" in (main := {r["dst"] for r in kernel_routes(sl.us, "main")})
                and "10.96.0.10" in main
                and any(r["dst"] == "192.0.2.0/24" for r in kernel_routes(sl.us, RED_TABLE))
            ),
            90,
        )
    except Exception as e:
        print(f"lab: failed to come up: {e}", file=sys.stderr)
        if sl.bgpd is not None:
            print(sl.bgpd.log_text()[-4000:], file=sys.stderr)
        state["pids"] = sl.pids()
        STATE.write_text(json.dumps(state))
        down()
        return 1
    us, sock = sl.us, state["socket"]
    cli = f"{Path(sys.executable).parent}/bgpd-cli --socket {sock}"
    ns = sl.ns
    print(
        f"""
lab is up: bgpd (AS 65010) in namespace {us}, with real FRR and BIRD neighbours:
  (a) transit:  dc (FRR, AS 65000, ns {ns["dc"]}) 10.92.0.2; spoke VPC routers (BIRD) spa AS 65020
      10.92.1.2 and spb AS 65021 10.92.2.2 via template "spoke" (next-hop-self, import/export policies)
  (b) multi-VRF: red (BIRD, AS 64512) 10.93.1.2 in VRF red = table 500; blue (BIRD, AS 64513)
      10.93.2.2 in VRF blue = table 501; both announce 192.0.2.0/24
  (c) anycast:  nodes n1 (AS 64601) 10.94.1.2 and n2 (AS 64602) 10.94.2.2 announce 10.96.0.0/12 and
      the VIP 10.96.0.10/32 (and fd96::/112, fd96::10/128): one kernel route, two next hops

Look:
  ip -n {us} route show                      # transit and anycast routes (main table)
  ip -n {us} route show table 500            # VRF red
  ip -n {us} route show table 501            # VRF blue
  {cli} show neighbors
  {cli} show routes
  {cli} show routes 10.96.0.10
  vtysh --vty_socket {state["frr_vty"]} -c 'show bgp ipv4 unicast'
  birdc -s {STATE_DIR}/spa/bird.ctl show route
  logs: {STATE_DIR}/us/bgpd.log, {STATE_DIR}/<name>/bird.log

Try: birdc -s {STATE_DIR}/n2/bird.ctl disable st4   (the VIP keeps one next hop)

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
    if state.get("frr_vty"):
        shutil.rmtree(state["frr_vty"], ignore_errors=True)
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
