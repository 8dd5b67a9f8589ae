"""`bgpd --check-config` and `bgpd --config` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOOD = """
[router]
asn = 65010
router_id = "10.0.0.1"
listen = []

[[neighbor]]
address = "10.0.0.2"
asn = 65001
"""

BAD = """
[router]
asn = 65010
router_id = "10.0.0.300"

[[neighbor]]
address = "10.0.0.2"
hold_tim = 30

[[neighbor]]
address = "10.0.0.x"
asn = 65001
"""


def bgpd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bgpd.main", *args], capture_output=True, text=True, timeout=30
    )


def test_check_config_ok_prints_one_summary_line_and_rfc8212_warnings(tmp_path: Path) -> None:
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    out = bgpd("--check-config", str(f))
    assert out.returncode == 0
    assert out.stdout.strip().splitlines() == [
        f"{f}: OK: AS 65010, router id 10.0.0.1, 1 neighbor, 1 VRF, 0 networks, 0 policies"
    ]
    assert f"{f}: neighbor[0].import: warning" in out.stderr and "RFC 8212" in out.stderr


def test_check_config_lists_every_error_with_file_key_and_reason(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    out = bgpd("--check-config", str(f))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert f"{f}: router.router_id: " in lines[0] and "dotted-quad" in lines[0]
    assert any(
        line.startswith(f"{f}: neighbor[0].hold_tim: unknown key") and "hold_time" in line for line in lines
    )
    assert any(line.startswith(f"{f}: neighbor[0].asn: missing") for line in lines)
    assert any(line.startswith(f"{f}: neighbor[1].address: ") for line in lines)
    assert "Traceback" not in out.stderr


def test_run_with_bad_config_exits_1_without_traceback(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    out = bgpd("--config", str(f))
    assert out.returncode == 1
    assert "router.router_id" in out.stderr and "Traceback" not in out.stderr


def test_missing_file_is_named(tmp_path: Path) -> None:
    out = bgpd("--check-config", str(tmp_path / "nope.toml"))
    assert out.returncode == 1
    assert out.stderr.strip() == f"{tmp_path / 'nope.toml'}: (file): no such file"
