"""RuleWriter against the real kernel's policy routing rules, in a throwaway namespace (root only)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from fib.model import RuleSpec
from fib.netlink import RuleWriter
from rib.prefix import Afi
from tests.netns.test_fib_netlink import in_netns, ip_cmd, ns

__all__ = ["ns"]

pytestmark = pytest.mark.root


def rules(ns: str, family: str) -> list[tuple[object, ...]]:
    """Every rule but the kernel's three, as (priority, from, iif, fwmark, table, protocol)."""
    out = []
    for r in json.loads(ip_cmd(ns, f"{family} -N -j rule show")):
        if r.get("priority") in (0, 32766, 32767):
            continue
        src = r["src"] if "srclen" not in r else f"{r['src']}/{r['srclen']}"
        out.append(
            (r["priority"], src, r.get("iif"), r.get("fwmark"), str(r["table"]), str(r.get("protocol")))
        )
    return sorted(out)


@pytest.fixture
def writer(ns: str) -> Iterator[RuleWriter]:
    """Used from inside the namespace: each call opens its netlink socket in the calling thread."""
    with in_netns(ns):
        w = RuleWriter(protocol=186)
        yield w
        w.close()


def test_rules_written_replaced_and_removed(ns: str, writer: RuleWriter) -> None:
    ip_cmd(ns, "rule add from 192.0.2.0/24 table 600 priority 500")  # someone else's: never touched
    ip_cmd(ns, "rule add fwmark 7 table 500 priority 1000 protocol 186")  # ours, left by an earlier run
    specs = [
        RuleSpec(500, 1000, None, "10.10.0.0/16"),
        RuleSpec(500, 1000, None, "fd10::/48"),
        RuleSpec(500, 900, None, None, "veth1"),
        RuleSpec(70000, 1000, None, None, None, 10),
        RuleSpec(501, 1001, Afi.IPV4, None, None, 11),
    ]
    assert writer.sync(specs) == []
    other = (500, "192.0.2.0/24", None, None, "600", "None")
    assert rules(ns, "-4") == sorted([
        other,
        (900, "all", "veth1", None, "500", "186"),
        (1000, "10.10.0.0/16", None, None, "500", "186"),
        (1000, "all", None, "0xa", "70000", "186"),
        (1001, "all", None, "0xb", "501", "186"),
    ])  # fmt: skip
    assert rules(ns, "-6") == sorted([
        (900, "all", "veth1", None, "500", "186"),
        (1000, "fd10::/48", None, None, "500", "186"),
        (1000, "all", None, "0xa", "70000", "186"),
    ])  # fmt: skip
    assert writer.sync(specs) == []  # idempotent
    assert len(rules(ns, "-4")) == 5

    assert writer.remove_all() == []
    assert rules(ns, "-4") == [other]
    assert rules(ns, "-6") == []


def test_refused_rule_is_reported_not_raised(ns: str, writer: RuleWriter) -> None:
    errors = writer.sync([RuleSpec(500, 1000, None, None, "x" * 40)])  # a name the kernel refuses
    assert len(errors) == 2 and all("ip rule add" in e and "iif " + "x" * 40 in e for e in errors)
