"""The control socket is 0660 with the configured group: a user outside the group is refused."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgpd.cli import main as cli_main
from lab.peers import Bgpd
from tests.support.netns import Lab, need_root


@pytest.fixture
def daemon() -> Iterator[Bgpd]:
    need_root()
    try:
        grp.getgrnam("frr")
    except KeyError:
        pytest.skip("needs the group 'frr' (installed with FRR) as the socket's group")
    # A directory every user can traverse (pytest's tmp_path is private to root).
    work = Path(tempfile.mkdtemp(prefix="bgpd-ctl-"))
    os.chmod(work, 0o755)
    config = f"""
[router]
asn = 65010
router_id = "10.0.0.1"
listen = []

[control]
socket = "{work}/bgpd.sock"
group = "frr"

[kernel]
enabled = false
"""
    with Lab() as lab:
        ns = lab.ns("ctl")
        d = Bgpd(ns, work, "bgpd", config=config).start()
        try:
            yield d
        finally:
            d.stop()
            shutil.rmtree(work, ignore_errors=True)


def cli_as(user: str, socket: Path) -> tuple[int, str, str]:
    """Run bgpd-cli's main() as ``user`` in a forked child (root drops to the user's ids).

    Forking keeps the already loaded interpreter: the user need not be able to read root's
    Python installation.
    """
    pw = pwd.getpwnam(user)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 99
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.setgroups(os.getgrouplist(user, pw.pw_gid))
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            sys.stdout = os.fdopen(1, "w", closefd=False)
            sys.stderr = os.fdopen(2, "w", closefd=False)
            code = cli_main(["--socket", str(socket), "show", "vrfs"])
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r) as o, os.fdopen(err_r) as e:
        stdout, stderr = o.read(), e.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), stdout, stderr


def test_socket_mode_and_group(daemon: Bgpd) -> None:
    st = daemon.socket.stat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == grp.getgrnam("frr").gr_gid


def test_user_in_the_group_may_use_it_others_are_refused(daemon: Bgpd) -> None:
    rc, out, err = cli_as("frr", daemon.socket)  # the frr user is in group frr
    assert rc == 0, err
    assert "main" in out
    rc, out, err = cli_as("nobody", daemon.socket)
    assert rc == 1
    assert err.strip().startswith("bgpd-cli: ") and "permission denied" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert daemon.running
