"""RFC 8538 (graceful restart over a NOTIFICATION, Cease/Hard Reset) against a real FRR.

Topology and helpers are test_graceful_restart.py's FRR part: our daemon in VRF red (table
500) with one FRR neighbour (AS 65003) that announces two prefixes and has graceful restart on;
FRR 8.4 sets the N bit by default. A netlink monitor records every deletion in table 500.

(a) A hold timer expires (FRR's bgpd is stopped with SIGSTOP, so we send Hold Timer Expired):
    with the N bit both sides keep the other's routes, stale, and the kernel loses nothing;
    with `graceful_notification = false` the old behaviour: FRR's routes are deleted at once.
(b) The other way round (we are stopped, FRR's hold timer expires): FRR keeps our routes stale.
(c) An administrative reset is a Hard Reset, from either side: the routes go at once.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
from test_graceful_restart import (  # type: ignore[import-not-found]
    FRR4,
    FRR_ASN,
    FRR_DROP,
    FRR_KEEP,
    RED_TABLE,
    US4,
    frr_lab,
    frr_routes,
    frr_us_config,
    monitor,
    neighbor,
    ours,
    routes,
)

from lab.peers import Bgpd, wait_for
from lab.topology import SkeletonLab

pytestmark = [pytest.mark.root, pytest.mark.interop]
__all__ = ["frr_lab"]  # the fixture, used by name

OUR_NETS = ("10.98.0.0/16", "10.99.0.0/16")
FRR_NETS = {FRR_KEEP, FRR_DROP}
# Long enough that a helper never runs out of restart time while the other side is stopped.
RESTART_TIME = 40


def start(lab: SkeletonLab, frr: Any, n_bit: bool = True) -> Bgpd:
    frr.vtysh(
        "configure terminal", f"router bgp {FRR_ASN}", f"bgp graceful-restart restart-time {RESTART_TIME}"
    )
    wd = lab.workdir / "us"
    wd.mkdir(parents=True, exist_ok=True)
    conf = frr_us_config(wd, restarting=False).replace(
        "hold_time = 9\n", f"hold_time = 9\nrestart_time = {RESTART_TIME}\n"
    )
    if not n_bit:
        conf = conf.replace("hold_time = 9\n", "hold_time = 9\ngraceful_notification = false\n")
    lab.bgpd = Bgpd(lab.us, wd, "bgpd", config=conf).start()
    bgpd = lab.bgpd
    wait_for("FRR up", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    wait_for("FRR's routes in the kernel", lambda: set(ours(lab)) >= FRR_NETS or None, 30)
    wait_for("FRR has ours", lambda: set(OUR_NETS) <= set(frr_routes(frr)) or None, 20)
    caps = neighbor(bgpd, FRR4)["negotiated"]["capabilities"]
    assert caps["graceful_restart"] is True
    assert caps["graceful_notification"] is n_bit, caps
    assert caps["peer"]["graceful_restart"]["restart_flags"] & 0x4, "FRR 8.4 sets the N bit by default"
    return bgpd


def frr_neighbor(frr: Any) -> dict[str, Any]:
    return frr.json(f"show bgp neighbors {US4} json")[US4]  # type: ignore[no-any-return]


def frr_keeps_ours_stale(frr: Any) -> bool:
    got = frr_routes(frr)
    return all(p in got and got[p][0].get("stale") for p in OUR_NETS)


@pytest.mark.parametrize("n_bit", [True, False], ids=["n_bit", "no_n_bit"])
def test_our_hold_timer_expires(frr_lab: tuple[SkeletonLab, Any], n_bit: bool) -> None:
    lab, frr = frr_lab
    bgpd = start(lab, frr, n_bit)
    mon = monitor(lab)
    frr.bgpd.signal(signal.SIGSTOP)  # FRR's bgpd goes silent; its socket stays open
    try:
        wait_for("our hold timer", lambda: neighbor(bgpd, FRR4)["state"] != "Established", 20)
        nb = neighbor(bgpd, FRR4)
        assert nb["last_notification"] == "sent Hold Timer Expired", nb
        gr = nb["graceful_restart"]
        if n_bit:
            # RFC 8538 4.1: a NOTIFICATION other than Hard Reset starts the helper procedures.
            assert gr["state"] == "restarting" and gr["stale"] == 2, gr
            assert set(ours(lab)) >= FRR_NETS
            assert all(p["stale"] for p in routes(bgpd)[FRR_KEEP])
        else:
            assert gr["state"] == "none" and gr["stale"] == 0, gr
            wait_for("FRR's routes deleted", lambda: not (FRR_NETS & set(ours(lab))) or None, 10)
    finally:
        frr.bgpd.signal(signal.SIGCONT)
    wait_for("FRR back", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    wait_for("FRR's routes in the kernel", lambda: set(ours(lab)) >= FRR_NETS or None, 30)
    if n_bit:
        wait_for("recovered", lambda: neighbor(bgpd, FRR4)["graceful_restart"]["state"] == "none", 30)
        assert not any(p["stale"] for p in routes(bgpd)[FRR_KEEP])
        assert mon.deleted(RED_TABLE) == set(), "a route vanished from the kernel during the restart"
    else:
        assert mon.deleted(RED_TABLE) == FRR_NETS


def test_frr_hold_timer_expires_and_frr_keeps_ours(frr_lab: tuple[SkeletonLab, Any]) -> None:
    lab, frr = frr_lab
    bgpd = start(lab, frr)
    mon = monitor(lab)
    bgpd.signal(signal.SIGSTOP)
    try:
        # FRR's hold timer (9 s) expires; with the N bit it keeps our routes, stale.
        assert wait_for("FRR marks ours stale", lambda: frr_keeps_ours_stale(frr) or None, 25)
        assert frr.peer_state(US4) != "Established"
    finally:
        bgpd.signal(signal.SIGCONT)
    # We read FRR's Hold Timer Expired: a soft NOTIFICATION, so we keep FRR's routes too.
    wait_for("FRR back", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    nb = neighbor(bgpd, FRR4)
    assert nb["flaps"] >= 1 and "Hold Timer Expired" in (nb["last_notification"] or ""), nb
    wait_for("FRR refreshed ours", lambda: not frr_keeps_ours_stale(frr) or None, 30)
    assert set(OUR_NETS) <= set(frr_routes(frr))
    wait_for("we recovered", lambda: neighbor(bgpd, FRR4)["graceful_restart"]["state"] == "none", 30)
    assert mon.deleted(RED_TABLE) == set(), "a route vanished from the kernel during the restart"


def test_administrative_reset_is_a_hard_reset(frr_lab: tuple[SkeletonLab, Any]) -> None:
    lab, frr = frr_lab
    bgpd = start(lab, frr)
    mon = monitor(lab)
    # Ours: Cease/Administrative Reset goes as a Hard Reset; FRR must not keep our routes.
    bgpd.cli("neighbor", FRR4, "reset")
    wait_for("FRR saw the Hard Reset", lambda: frr_neighbor(frr).get("lastNotificationHardReset") or None, 20)
    assert "Hard Reset" in (neighbor(bgpd, FRR4)["last_notification"] or "")
    assert "(Cease / Administrative Reset" in neighbor(bgpd, FRR4)["last_notification"]
    assert neighbor(bgpd, FRR4)["graceful_restart"]["stale"] == 0
    wait_for("FRR back", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    wait_for("FRR's routes in the kernel", lambda: set(ours(lab)) >= FRR_NETS or None, 30)
    assert mon.deleted(RED_TABLE) == FRR_NETS  # deleted at once, not kept stale
    wait_for("FRR has ours", lambda: set(OUR_NETS) <= set(frr_routes(frr)) or None, 20)
    # FRR's: `clear bgp` sends a Hard Reset too (FRR's default "bgp hard-administrative-reset").
    flaps = neighbor(bgpd, FRR4)["flaps"]
    mon2 = monitor(lab)
    frr.vtysh(f"clear bgp {US4}")
    wait_for("the reset seen", lambda: neighbor(bgpd, FRR4)["flaps"] > flaps or None, 20)
    last = neighbor(bgpd, FRR4)["last_notification"] or ""
    assert last.startswith("received Cease / Hard Reset (Cease / Administrative Reset"), last
    assert neighbor(bgpd, FRR4)["graceful_restart"]["stale"] == 0
    wait_for("FRR back", lambda: neighbor(bgpd, FRR4)["state"] == "Established", 40)
    wait_for("FRR's routes in the kernel", lambda: set(ours(lab)) >= FRR_NETS or None, 30)
    assert mon2.deleted(RED_TABLE) == FRR_NETS
    # Stopping the daemon (no restarting-speaker role) is an Administrative Shutdown, so a Hard
    # Reset too: FRR drops our routes at once instead of keeping them for the restart time.
    bgpd.stop()
    wait_for("FRR dropped ours", lambda: not (set(OUR_NETS) & set(frr_routes(frr))) or None, 5)
    assert frr_neighbor(frr).get("lastNotificationHardReset") is True
