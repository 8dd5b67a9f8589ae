"""Processes in namespaces: our daemon and real BIRD, each with its files in a work directory.

Each wrapper starts exactly one process and stops it by its own PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll ``fn`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def kernel_routes(ns: str, table: int | str, family: int = 4) -> list[dict[str, Any]]:
    """`ip -j route show table N` in a namespace, parsed."""
    out = subprocess.run(
        ["ip", "-n", ns, f"-{family}", "-j", "route", "show", "table", str(table)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        return []
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def route_gateways(route: dict[str, Any]) -> set[str]:
    if "nexthops" in route:
        return {nh["gateway"] for nh in route["nexthops"] if "gateway" in nh}
    return {route["gateway"]} if "gateway" in route else set()


@dataclass
class Process:
    ns: str
    workdir: Path
    name: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"

    def _spawn(self, argv: list[str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env={**os.environ, "PYTHONPATH": str(ROOT), **self.extra_env},
            start_new_session=True,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case a test paused it
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class Bird(Process):
    config: str = ""

    @property
    def socket(self) -> Path:
        return self.workdir / f"{self.name}.ctl"

    def start(self) -> Bird:
        conf = self.workdir / f"{self.name}.conf"
        conf.write_text(self.config)
        check = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"BIRD config {conf} rejected: {check.stderr.strip()}")
        self._spawn(
            ["bird", "-f", "-c", str(conf), "-s", str(self.socket), "-P", str(self.workdir / "bird.pid")]
        )
        wait_for(f"BIRD {self.name} control socket", lambda: self.socket.exists() or None, 15)
        return self

    def birdc(self, *cmd: str) -> str:
        out = subprocess.run(
            ["birdc", "-s", str(self.socket), *cmd], capture_output=True, text=True, timeout=30
        )
        return out.stdout

    def protocol_state(self, proto: str) -> str:
        """The Info column of `show protocols NAME` (e.g. "Established")."""
        for line in self.birdc("show", "protocols", proto).splitlines():
            parts = line.split()
            if parts and parts[0] == proto:
                return " ".join(parts[5:]) if len(parts) > 5 else ""
        return ""


@dataclass
class Bgpd(Process):
    config: str = ""

    @property
    def socket(self) -> Path:
        return self.workdir / "bgpd.sock"

    @property
    def config_path(self) -> Path:
        return self.workdir / "bgpd.toml"

    def start(self, wait: bool = True) -> Bgpd:
        self.config_path.write_text(self.config)
        self._spawn([sys.executable, "-m", "bgpd.main", "--config", str(self.config_path)])
        if wait:
            wait_for(
                "bgpd control socket", lambda: self.socket.exists() or (not self.running and "exited"), 20
            )
            if not self.running:
                raise RuntimeError(f"bgpd exited at start:\n{self.log_text()}")
        return self

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "bgpd.cli", "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"bgpd-cli {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
        return out

    def cli_json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.cli("--json", *args).stdout)  # type: ignore[no-any-return]

    def neighbor_state(self, address: str) -> str:
        for n in self.cli_json("show", "neighbors")["neighbors"]:
            if n["address"] == address:
                return str(n["state"])
        return ""
