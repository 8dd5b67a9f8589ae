"""Named policies against a real BIRD: an export policy passes only the intended prefixes (seen
with birdc) and an import policy sets local-pref and communities (seen with bgpd-cli)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from lab.peers import wait_for
from lab.topology_multivrf import PEERS, MultiVrfLab
from tests.support.netns import need_root

pytestmark = [pytest.mark.root, pytest.mark.interop]

POLICIES = """
[policy.from-red]
[[policy.from-red.term]]
match.community = "65101:*"
action = "accept"
set.local_pref = 250
set.community_add = ["65010:1"]
set.large_community_add = ["65010:2:3"]
[[policy.from-red.term]]
match.prefix = "192.0.2.0/24"
match.as_path = "^65101$"
match.source = "ebgp"
action = "accept"
set.med = 5

[policy.to-red]
[[policy.to-red.term]]
match.prefix = ["10.96.0.0/12", "10.97.0.0/16 le 24"]
match.source = "local"
action = "accept"
set.prepend = 2
set.med = 77
"""


@pytest.fixture(scope="module")
def pl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiVrfLab]:
    need_root()
    if shutil.which("bird") is None or shutil.which("birdc") is None:
        pytest.skip("needs BIRD 2 (apt-get install bird2)")
    lab = MultiVrfLab(tmp_path_factory.mktemp("policy")).build()
    try:
        lab.start_birds()
        lab.start_bgpd(policies={"red": ("from-red", "to-red")}, extra=POLICIES)
        wait_for("both sessions Established", lab.established, 40)
        yield lab
    except BaseException:
        lab.dump_logs()
        raise
    finally:
        lab.close()


def test_export_policy_passes_only_the_intended_prefixes(pl: MultiVrfLab) -> None:
    red = pl.birds["red"]
    out = wait_for(
        "10.96.0.0/12 and 10.97.1.0/24 at the red peer",
        lambda: (
            "10.97.1.0/24" in (o := red.birdc("show", "route", "protocol", "tous"))
            and "10.96.0.0/12" in o
            and o
        ),
        30,
    )
    assert "10.98.0.0/16" not in out  # our third network: no term accepts it
    detail = red.birdc("show", "route", "10.96.0.0/12", "all")
    assert "BGP.as_path: 65010 65010 65010" in detail, detail  # prepend 2, then the eBGP prepend
    assert "BGP.med: 77" in detail, detail
    assert "BGP.next_hop: 10.92.1.1" in detail, detail
    neighbors = {n["address"]: n for n in pl.bgpd.cli_json("show", "neighbors")["neighbors"]}  # type: ignore[union-attr]
    assert neighbors[PEERS["red"]["v4"][1]]["advertised"] == 2


def test_import_policy_sets_local_pref_and_communities(pl: MultiVrfLab) -> None:
    assert pl.bgpd is not None
    data = wait_for(
        "198.51.100.0/24 in vrf red",
        lambda: (d := pl.bgpd.cli_json("show", "routes", "--vrf", "red", "198.51.100.0/24"))["routes"] and d,  # type: ignore[union-attr]
        20,
    )
    [path] = data["routes"][0]["paths"]
    assert path["local_pref"] == 250
    assert path["communities"] == ["65101:7", "65010:1"]
    assert path["large_communities"] == ["65010:2:3"]
    red192 = wait_for(
        "192.0.2.0/24 in vrf red",
        lambda: (d := pl.bgpd.cli_json("show", "routes", "--vrf", "red", "192.0.2.0/24"))["routes"] and d,  # type: ignore[union-attr]
        20,
    )
    [p192] = red192["routes"][0]["paths"]
    assert (p192["local_pref"], p192["med"], p192["communities"]) == (None, 5, [])
    # Blue's peer has no policy (all): its copy of 192.0.2.0/24 is untouched.
    blue = wait_for(
        "192.0.2.0/24 in vrf blue",
        lambda: (d := pl.bgpd.cli_json("show", "routes", "--vrf", "blue", "192.0.2.0/24"))["routes"] and d,  # type: ignore[union-attr]
        20,
    )
    [pblue] = blue["routes"][0]["paths"]
    assert pblue["med"] is None
