from __future__ import annotations

from rib.prefix import Afi
from rib.route import Change
from rib.table import LocRib
from tests.unit.rib.helpers import attrs, ebgp, key, path

P = key("10.0.0.0/8")
Q = key("192.0.2.0/24")
A = ebgp("192.0.2.1", 65001, rid=1)
B = ebgp("192.0.2.2", 65001, rid=2)
C = ebgp("192.0.2.3", 65003, rid=3)


def table(ecmp: int = 8, relax: bool = False) -> LocRib:
    return LocRib("red", Afi.IPV4, ecmp, relax)


def test_first_path_is_a_change() -> None:
    t = table()
    pa = path(A, path=(65001,), nh="192.0.2.1")
    ch = t.update(P, pa)
    assert ch == Change("red", Afi.IPV4, P, (pa,))
    assert len(t) == 1 and t.path_count == 1
    dest = t.get(P)
    assert dest is not None and dest.paths == (pa,) and dest.selected == (pa,)
    assert t.get(Q) is None


def test_worse_second_path_changes_nothing_but_is_kept() -> None:
    t = table(ecmp=1)
    pa = path(A, path=(65001,), nh="192.0.2.1")
    t.update(P, pa)
    pc = path(C, path=(65003, 1), nh="192.0.2.3")
    assert t.update(P, pc) is None
    assert t.path_count == 2 and len(t) == 1
    dest = t.get(P)
    assert dest is not None and dest.selected == (pa,) and pc in dest.paths


def test_better_second_path_is_a_change() -> None:
    t = table()
    pc = path(C, path=(65003, 1), nh="192.0.2.3")
    t.update(P, pc)
    pa = path(A, path=(65001,), nh="192.0.2.1")
    ch = t.update(P, pa)
    assert ch is not None and ch.best == (pa,)


def test_identical_reannouncement_is_no_change() -> None:
    t = table()
    a = attrs(path=(65001,), nh="192.0.2.1")
    t.update(P, path(A, a, since=1.0))
    assert t.update(P, path(A, a, since=2.0)) is None
    assert t.path_count == 1
    # Equal attributes are the same interned object, so this is identical too.
    assert t.update(P, path(A, attrs(path=(65001,), nh="192.0.2.1"))) is None


def test_reannouncement_with_new_attrs_replaces_the_path() -> None:
    t = table()
    t.update(P, path(A, path=(65001,), nh="192.0.2.1", med=1))
    new = path(A, path=(65001,), nh="192.0.2.1", med=2)
    ch = t.update(P, new)
    assert ch is not None and ch.best == (new,)
    dest = t.get(P)
    assert dest is not None and dest.paths == (new,)
    assert t.path_count == 1


def test_new_attrs_on_an_unselected_path_is_no_change() -> None:
    t = table(ecmp=1)
    pa = path(A, path=(65001,), nh="192.0.2.1")
    t.update(P, pa)
    t.update(P, path(C, path=(65003, 1), nh="192.0.2.3"))
    assert t.update(P, path(C, path=(65003, 1, 2), nh="192.0.2.3")) is None
    assert t.path_count == 2


def test_withdraw_of_an_unselected_path_is_no_change() -> None:
    t = table(ecmp=1)
    pa = path(A, path=(65001,), nh="192.0.2.1")
    t.update(P, pa)
    t.update(P, path(C, path=(65003, 1), nh="192.0.2.3"))
    assert t.withdraw(P, C) is None
    assert t.path_count == 1
    dest = t.get(P)
    assert dest is not None and dest.paths == (pa,)


def test_withdraw_of_the_best_selects_the_next() -> None:
    t = table()
    pa = path(A, path=(65001,), nh="192.0.2.1")
    pc = path(C, path=(65003, 1), nh="192.0.2.3")
    t.update(P, pa)
    t.update(P, pc)
    ch = t.withdraw(P, A)
    assert ch == Change("red", Afi.IPV4, P, (pc,))
    assert t.path_count == 1


def test_withdraw_of_the_last_path_removes_the_prefix() -> None:
    t = table()
    t.update(P, path(A, path=(65001,), nh="192.0.2.1"))
    t.update(Q, path(A, path=(65001,), nh="192.0.2.1"))
    ch = t.withdraw(P, A)
    assert ch == Change("red", Afi.IPV4, P, ())
    assert t.get(P) is None
    assert len(t) == 1 and t.path_count == 1
    assert [k for k, _ in t.items()] == [Q]
    # Withdrawing again (or an unknown prefix) is harmless.
    assert t.withdraw(P, A) is None
    assert t.withdraw(key("203.0.113.0/24"), A) is None
    assert t.path_count == 1


def test_withdraw_of_an_unknown_source_changes_nothing() -> None:
    t = table()
    t.update(P, path(A, path=(65001,), nh="192.0.2.1"))
    assert t.withdraw(P, B) is None
    assert t.path_count == 1


def test_path_count_over_many_prefixes_and_sources() -> None:
    t = table()
    prefixes = [key(f"10.{i}.0.0/16") for i in range(10)]
    for p in prefixes:
        for s in (A, B, C):
            t.update(p, path(s, path=(s.asn,), nh=str(s.peer)))
    assert len(t) == 10 and t.path_count == 30
    for p in prefixes:
        t.withdraw(p, B)
    assert len(t) == 10 and t.path_count == 20
    for p in prefixes[:4]:
        t.withdraw(p, A)
        t.withdraw(p, C)
    assert len(t) == 6 and t.path_count == 12
    assert t.path_count == sum(len(d.paths) for _, d in t.items())


def test_ecmp_set_grows_and_shrinks() -> None:
    t = table()
    pa = path(A, path=(65001, 65100), nh="192.0.2.1")
    pb = path(B, path=(65001, 65100), nh="192.0.2.2")
    assert t.update(P, pa) == Change("red", Afi.IPV4, P, (pa,))
    ch = t.update(P, pb)
    assert ch is not None and ch.best == (pa, pb)  # best first (router id 1), then the ECMP peer
    dest = t.get(P)
    assert dest is not None and dest.selected == (pa, pb)
    ch = t.withdraw(P, B)
    assert ch is not None and ch.best == (pa,)
    ch = t.update(P, pb)
    assert ch is not None and ch.best == (pa, pb)
    ch = t.withdraw(P, A)
    assert ch is not None and ch.best == (pb,)


def test_ecmp_member_with_new_attrs_leaves_the_set() -> None:
    t = table()
    pa = path(A, path=(65001, 65100), nh="192.0.2.1")
    t.update(P, pa)
    t.update(P, path(B, path=(65001, 65100), nh="192.0.2.2"))
    ch = t.update(P, path(B, path=(65001, 1, 65100), nh="192.0.2.2"))  # longer now
    assert ch is not None and ch.best == (pa,)


def test_ecmp_off_does_not_report_equal_paths() -> None:
    t = table(ecmp=1)
    pa = path(A, path=(65001, 65100), nh="192.0.2.1")
    t.update(P, pa)
    assert t.update(P, path(B, path=(65001, 65100), nh="192.0.2.2")) is None


def test_multipath_relax_table_setting() -> None:
    strict, relaxed = table(relax=False), table(relax=True)
    pa = path(A, path=(65001, 65100), nh="192.0.2.1")
    pc = path(C, path=(65003, 65100), nh="192.0.2.3")
    for t in (strict, relaxed):
        t.update(P, pa)
    assert strict.update(P, pc) is None
    ch = relaxed.update(P, pc)
    assert ch is not None and ch.best == (pa, pc)


def test_reselect_all_after_an_ecmp_change() -> None:
    t = table()
    pa = path(A, path=(65001, 65100), nh="192.0.2.1")
    pb = path(B, path=(65001, 65100), nh="192.0.2.2")
    t.update(P, pa)
    t.update(P, pb)
    t.update(Q, path(C, path=(65003,), nh="192.0.2.3"))
    assert t.reselect_all() == []  # nothing changed
    t.ecmp = 1
    assert t.reselect_all() == [Change("red", Afi.IPV4, P, (pa,))]
    t.ecmp = 8
    assert t.reselect_all() == [Change("red", Afi.IPV4, P, (pa, pb))]


def test_change_carries_vrf_and_family() -> None:
    t = LocRib("blue", Afi.IPV6)
    p6 = key("2001:db8::/32")
    ch = t.update(p6, path(A, path=(65001,), nh="2001:db8::1"))
    assert ch is not None and (ch.vrf, ch.afi, ch.prefix) == ("blue", Afi.IPV6, p6)
