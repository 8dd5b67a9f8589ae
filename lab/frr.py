"""FRR (zebra + bgpd) in a namespace, with its sockets and files in a work directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.peers import Process, wait_for

FRR_DIR = Path("/usr/lib/frr")


@dataclass
class Frr:
    """zebra and bgpd for one router; ``config`` is an frr.conf (both daemons read it)."""

    ns: str
    workdir: Path
    config: str
    zebra: Process | None = None
    bgpd: Process | None = None
    # FRR drops to user frr: its sockets live in a directory of its own that frr can reach
    # (a test's tmp_path is private to root). Logs stay in ``workdir``.
    rundir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bgpd-lab-frr-")))

    @property
    def vty(self) -> Path:
        return self.rundir

    def start(self) -> Frr:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.rundir / "frr.conf"
        conf.write_text(self.config)
        shutil.chown(self.rundir, "frr", "frr")
        shutil.chown(conf, "frr", "frr")
        run = self.rundir
        common = [
            "-f",
            str(conf),
            "-z",
            str(run / "zserv.api"),
            "--vty_socket",
            str(run),
            "-u",
            "frr",
            "-g",
            "frr",
        ]
        self.zebra = Process(self.ns, self.workdir, "zebra")
        self.zebra._spawn([str(FRR_DIR / "zebra"), *common, "-i", str(run / "zebra.pid")])
        wait_for("zebra's socket", lambda: (run / "zserv.api").exists() or None, 15)
        self.bgpd = Process(self.ns, self.workdir, "bgpd")
        self.bgpd._spawn([str(FRR_DIR / "bgpd"), *common, "-i", str(run / "bgpd.pid"), "-p", "179"])
        wait_for("FRR bgpd's vty", lambda: (run / "bgpd.vty").exists() or None, 15)
        return self

    def respawn_bgpd(self, config: str | None = None) -> None:
        """bgpd again after it died (zebra stays: a restart), reading ``config`` when given."""
        run = self.rundir
        if config is not None:
            (run / "frr.conf").write_text(config)
        (run / "bgpd.vty").unlink(missing_ok=True)
        self.bgpd = Process(self.ns, self.workdir, "bgpd")
        self.bgpd._spawn(
            [
                str(FRR_DIR / "bgpd"),
                *("-f", str(run / "frr.conf"), "-z", str(run / "zserv.api"), "--vty_socket", str(run)),
                *("-u", "frr", "-g", "frr", "-i", str(run / "bgpd.pid"), "-p", "179"),
            ]
        )
        wait_for("FRR bgpd's vty", lambda: (run / "bgpd.vty").exists() or None, 15)

    def vtysh(self, *commands: str) -> str:
        args = ["vtysh", "--vty_socket", str(self.vty)]
        for c in commands:
            args += ["-c", c]
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout

    def json(self, command: str) -> Any:
        out = self.vtysh(command)
        return json.loads(out) if out.strip() else {}

    def peer_state(self, address: str) -> str:
        data = self.json("show bgp summary json")
        for fam in data.values():
            peer = fam.get("peers", {}).get(address) if isinstance(fam, dict) else None
            if peer:
                return str(peer.get("state", ""))
        return ""

    def stop(self) -> None:
        for p in (self.bgpd, self.zebra):
            if p is not None:
                p.stop()
        shutil.rmtree(self.rundir, ignore_errors=True)

    def log_text(self) -> str:
        return "".join(p.log_text() for p in (self.zebra, self.bgpd) if p is not None)
