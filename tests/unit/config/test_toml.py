"""The TOML loader: every rule reports file, key path and reason; all problems come at once."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from bgpd.config.errors import ConfigError, ConfigIssue
from bgpd.config.model import Config
from bgpd.config.toml import load_config, parse_config, parse_prefix_match, summarize
from rib.attrs import parse_community
from rib.prefix import Afi, parse_prefix

SRC = "test.toml"
ROUTER = '[router]\nasn = 65010\nrouter_id = "10.0.0.1"\n'

# INTERFACE.md's sample, verbatim: the contract's own example must load.
SAMPLE = """
[router]
asn = 65010                    # local ASN; 4-byte ASNs allowed
router_id = "10.0.0.1"
listen = ["0.0.0.0", "::"]     # addresses to accept sessions on; [] = no listener
port = 179
multipath_relax = false        # ECMP across paths from different neighbour ASes (same AS-path length)

[control]
socket = "/run/bgpd/bgpd.sock"

[log]
level = "info"                 # debug | info | warning | error

[kernel]
enabled = true                 # false = RIB only, nothing written to the kernel
protocol = 186                 # rtm_protocol of our routes ("proto bgp" in `ip route`)
ecmp = 8                       # most next hops in one kernel route
persist = false                # keep our kernel routes when the daemon stops

[vrf.red]                      # VRF "main" (kernel table 254) always exists
table = 500

[template.spoke]               # any neighbor key may be set in a template
hold_time = 90
next_hop_self = true

[[neighbor]]
address = "10.99.0.2"
asn = 65001
template = "spoke"             # optional
vrf = "red"                    # optional, default "main": routes from this peer go to that VRF's table
description = "spoke VPC A"
source_address = "10.99.0.1"   # optional: bind the session to this local address
passive = false                # true: only accept, never connect
hold_time = 90
password = "secret"            # optional: TCP MD5 (RFC 2385)
ttl_security = false           # GTSM (RFC 5082)
import = "all"                 # "all" | "none" | a policy name
export = "none"                # "all" | "none" | a policy name
next_hop_self = false
max_prefixes = 0               # 0 = no limit
address_families = ["ipv4", "ipv6"]
graceful_restart = true        # RFC 4724, both roles
restart_time = 120             # seconds a peer may take to come back (we advertise ours the same way)
add_path = "off"               # "off" | "receive" | "send" | "both" (RFC 7911)

[[network]]                    # routes this router originates (e.g. a service CIDR, a /32 service VIP)
prefix = "10.96.0.0/12"
vrf = "main"

[policy.to-spokes]             # ordered terms, the first that matches decides; no match = reject
[[policy.to-spokes.term]]
match.prefix = ["10.0.0.0/8 le 24", "192.168.0.0/16"]
match.community = ["65010:100"]
action = "accept"
set.local_pref = 200
set.community_add = ["65010:1"]
"""


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, SRC)
    assert info.value.issues, "a ConfigError always carries at least one issue"
    return info.value.issues


def only_issue(text: str) -> ConfigIssue:
    found = issues_of(text)
    assert len(found) == 1, [str(i) for i in found]
    return found[0]


def assert_issue(text: str, key: str, reason: str) -> None:
    """Exactly one issue, naming the file, this key path and a reason containing ``reason``."""
    issue = only_issue(text)
    assert issue.file == SRC
    assert issue.key == key, str(issue)
    assert reason in issue.reason, str(issue)
    assert str(issue) == f"{SRC}: {key}: {issue.reason}"


def neighbor(body: str, asn: int = 65001, address: str = "10.0.0.2") -> str:
    return f'\n[[neighbor]]\naddress = "{address}"\nasn = {asn}\n{body}\n'


def ok(text: str) -> Config:
    return parse_config(text, SRC)


# --- the contract's sample --------------------------------------------------------------------------


def test_interface_sample_loads_with_every_value() -> None:
    cfg = parse_config(SAMPLE, "sample.toml")
    assert cfg.source == "sample.toml"
    assert (cfg.router.asn, cfg.router.router_id, cfg.router.port) == (65010, "10.0.0.1", 179)
    assert cfg.router.listen == ["0.0.0.0", "::"]
    assert cfg.router.multipath_relax is False
    assert cfg.control.socket == "/run/bgpd/bgpd.sock" and cfg.control.group is None
    assert cfg.log.level == "info"
    assert (cfg.kernel.enabled, cfg.kernel.protocol, cfg.kernel.ecmp, cfg.kernel.persist) == (
        True,
        186,
        8,
        False,
    )
    assert {n: v.table for n, v in cfg.vrfs.items()} == {"main": 254, "red": 500}
    assert cfg.vrf_table("red") == 500
    [nb] = cfg.neighbors
    assert nb.address == ipaddress.ip_address("10.99.0.2") and nb.key == "10.99.0.2"
    assert (nb.asn, nb.vrf, nb.template, nb.description) == (65001, "red", "spoke", "spoke VPC A")
    assert nb.source_address == ipaddress.ip_address("10.99.0.1")
    assert (nb.passive, nb.hold_time, nb.password, nb.ttl_security) == (False, 90, "secret", False)
    assert (nb.import_, nb.export, nb.import_defaulted, nb.export_defaulted) == ("all", "none", False, False)
    assert nb.next_hop_self is False  # the neighbor's own value beats the template's true
    assert nb.max_prefixes == 0 and nb.address_families == [Afi.IPV4, Afi.IPV6]
    assert (nb.graceful_restart, nb.restart_time, nb.add_path) == (True, 120, "off")
    [net] = cfg.networks
    assert (net.afi, net.prefix, net.text, net.vrf) == (
        Afi.IPV4,
        parse_prefix("10.96.0.0/12")[1],
        "10.96.0.0/12",
        "main",
    )
    pol = cfg.policies["to-spokes"]
    [term] = pol.terms
    assert term.action == "accept"
    assert term.match == {"prefix": ["10.0.0.0/8 le 24", "192.168.0.0/16"], "community": ["65010:100"]}
    assert term.set == {"local_pref": 200, "community_add": ["65010:1"]}


def test_minimal_config_gets_the_model_defaults() -> None:
    cfg = ok(ROUTER)
    assert cfg.vrfs["main"].table == 254 and list(cfg.vrfs) == ["main"]
    assert cfg.neighbors == [] and cfg.networks == [] and cfg.policies == {}
    assert cfg.router.listen == ["0.0.0.0", "::"] and cfg.router.port == 179
    assert cfg.control.socket == "/run/bgpd/bgpd.sock" and cfg.log.level == "info"


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bgpd.toml"
    p.write_text(SAMPLE)
    cfg = load_config(str(p))
    assert cfg.source == str(p)
    assert summarize(cfg) == f"{p}: OK: AS 65010, router id 10.0.0.1, 1 neighbor, 2 VRFs, 1 network, 1 policy"


# --- file and syntax problems -----------------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [issue] = info.value.issues
    assert issue.file == path and issue.key == "(file)" and issue.reason == "no such file"
    assert str(info.value) == f"{path}: (file): no such file"


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert info.value.issues[0].reason == "is a directory, not a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "secret.toml"
    p.write_text(ROUTER)
    p.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_config(str(p))
    assert info.value.issues[0].reason == "permission denied"


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "latin1.toml"
    p.write_bytes(ROUTER.encode() + b'[[neighbor]]\ndescription = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(p))
    assert info.value.issues[0].key == "(file)"
    assert "not valid UTF-8 (line 5)" in info.value.issues[0].reason


def test_syntax_error_is_one_issue_with_line_and_column() -> None:
    issue = only_issue(ROUTER + "[[neighbor]]\naddress = 10.0.0.2\n")
    assert issue.key == "(syntax)"
    assert "line 5" in issue.reason and "column" in issue.reason


def test_every_problem_is_reported_at_once() -> None:
    text = (
        '[router]\nasn = 0\nrouter_id = "nope"\n[kernel]\necmp = 0\n'
        + neighbor("hold_time = 1", asn=70000000000)
        + '[[network]]\nprefix = "10.0.0.1/8"\n'
    )
    keys = [i.key for i in issues_of(text)]
    assert keys == [
        "router.asn",
        "router.router_id",
        "kernel.ecmp",
        "neighbor[0].asn",
        "neighbor[0].hold_time",
        "network[0].prefix",
    ]
    err = ConfigError(issues_of(text))
    assert str(err).count("\n") == len(keys) - 1


def test_issues_follow_the_order_of_the_file() -> None:
    # Policies are checked before neighbors (neighbors refer to them), but reported where they are.
    text = ROUTER + neighbor("hold_time = 1") + '[policy.p]\n[[policy.p.term]]\naction = "drop"\n'
    assert [i.key for i in issues_of(text)] == ["neighbor[0].hold_time", "policy.p.term[0].action"]


# --- unknown keys -----------------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_closest() -> None:
    assert_issue(ROUTER + '[[nieghbor]]\naddress = "10.0.0.2"\n', "nieghbor", "did you mean 'neighbor'?")


def test_unknown_neighbor_key_names_the_index_and_suggests() -> None:
    text = (
        ROUTER
        + neighbor("")
        + neighbor("", address="10.0.0.3")
        + neighbor("hold_tim = 90", address="10.0.0.4")
    )
    assert_issue(text, "neighbor[2].hold_tim", "unknown key (did you mean 'hold_time'?)")


@pytest.mark.parametrize(("habit", "ours"), [("remote_as", "asn"), ("update_source", "source_address")])
def test_bird_and_frr_habits_get_a_suggestion(habit: str, ours: str) -> None:
    assert_issue(ROUTER + neighbor(f"{habit} = 1"), f"neighbor[0].{habit}", f"did you mean '{ours}'?")


def test_unknown_key_without_close_match_lists_small_sets() -> None:
    assert_issue(ROUTER + "[log]\nfoo = 1\n", "log.foo", "unknown key (valid keys: level)")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (ROUTER.replace("[router]\n", "[router]\nas = 1\n"), "router.as"),
        (ROUTER + "[kernel]\necmp_max = 4\n", "kernel.ecmp_max"),
        (ROUTER + '[control]\nsock = "/x"\n', "control.sock"),
        (ROUTER + "[vrf.red]\ntable = 5\ntabel = 6\n", "vrf.red.tabel"),
        (ROUTER + '[[network]]\nprefix = "10.0.0.0/8"\ncommunity = ["1:1"]\n', "network[0].community"),
        (ROUTER + "[template.t]\nhold = 3\n", "template.t.hold"),
        (ROUTER + "[policy.p]\nterms = []\n", "policy.p.terms"),
        (
            ROUTER + '[policy.p]\n[[policy.p.term]]\naction = "accept"\nmatch.prefx = "10.0.0.0/8"\n',
            "policy.p.term[0].match.prefx",
        ),
        (
            ROUTER + '[policy.p]\n[[policy.p.term]]\naction = "accept"\nset.localpref = 1\n',
            "policy.p.term[0].set.localpref",
        ),
        (ROUTER + '[policy.p]\n[[policy.p.term]]\naction = "accept"\nthen = 1\n', "policy.p.term[0].then"),
        (ROUTER + '[vrf."my vrf"]\ntable = 5\nx = 1\n', 'vrf."my vrf".x'),
    ],
)
def test_unknown_keys_everywhere(text: str, key: str) -> None:
    found = issues_of(text)
    assert key in [i.key for i in found]
    assert any(i.key == key and i.reason.startswith("unknown key") for i in found)


# --- types and required keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ('asn = "65001"', "neighbor[0].asn", 'expected an integer, got a string ("65001") (write numbers'),
        ("asn = true", "neighbor[0].asn", "expected an integer, got a boolean (true)"),
        ("hold_time = 90.0", "neighbor[0].hold_time", "expected an integer, got a float (90.0)"),
        ('passive = "true"', "neighbor[0].passive", "expected true or false, got a string"),
        ("description = 5", "neighbor[0].description", "expected a string, got an integer (5)"),
        ('address_families = "ipv4"', "neighbor[0].address_families", "expected an array, got a string"),
        ("password = 1", "neighbor[0].password", "expected a string"),
    ],
)
def test_wrong_types(body: str, key: str, reason: str) -> None:
    text = ROUTER + '[[neighbor]]\naddress = "10.0.0.2"\n' + body + ("\nasn = 1" if "asn" not in body else "")
    assert_issue(text, key, reason)


def test_section_of_the_wrong_type() -> None:
    assert_issue("kernel = 5\n" + ROUTER, "kernel", "expected a table, got an integer (5)")
    assert_issue(ROUTER + "kernel = 5\n", "router.kernel", "must come before the first [table] header")
    assert_issue(
        ROUTER + '[neighbor]\naddress = "10.0.0.2"\n',
        "neighbor",
        "expected an array of tables ([[neighbor]])",
    )


def test_missing_router_keys() -> None:
    found = issues_of("[router]\nport = 179\n")
    assert [(i.key, i.reason) for i in found] == [
        ("router.asn", "missing (required)"),
        ("router.router_id", "missing (required)"),
    ]
    assert [i.key for i in issues_of("")] == ["router.asn", "router.router_id"]


def test_missing_neighbor_address_and_asn() -> None:
    found = issues_of(ROUTER + '[[neighbor]]\ndescription = "x"\n')
    assert [(i.key, i.reason) for i in found] == [
        ("neighbor[0].address", "missing (required)"),
        ("neighbor[0].asn", "missing (required)"),
    ]


def test_neighbor_asn_may_come_from_its_template() -> None:
    cfg = ok(ROUTER + "[template.t]\nasn = 65001\n" + '[[neighbor]]\naddress = "10.0.0.2"\ntemplate = "t"\n')
    assert cfg.neighbors[0].asn == 65001


def test_missing_asn_mentions_the_template() -> None:
    text = ROUTER + "[template.t]\nhold_time = 30\n" + '[[neighbor]]\naddress = "10.0.0.2"\ntemplate = "t"\n'
    assert_issue(text, "neighbor[0].asn", "missing (required; not in template 't' either)")


# --- ranges and formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("asn", [0, 4294967296, -1])
def test_asn_out_of_range(asn: int) -> None:
    assert_issue(
        f'[router]\nasn = {asn}\nrouter_id = "10.0.0.1"\n', "router.asn", "out of range (1..4294967295)"
    )
    assert_issue(ROUTER + neighbor("", asn=asn), "neighbor[0].asn", "out of range (1..4294967295)")


def test_four_byte_asns_are_fine() -> None:
    cfg = ok('[router]\nasn = 4294967295\nrouter_id = "10.0.0.1"\n' + neighbor("", asn=4200000000))
    assert cfg.router.asn == 4294967295 and cfg.neighbors[0].asn == 4200000000


@pytest.mark.parametrize(
    ("rid", "reason"),
    [
        ("10.0.0.256", "not a dotted-quad IPv4 address"),
        ("2001:db8::1", "not a dotted-quad IPv4 address"),
        ("10.0.0", "not a dotted-quad IPv4 address"),
        ("0.0.0.0", "must be non-zero"),
    ],
)
def test_router_id_is_a_dotted_quad(rid: str, reason: str) -> None:
    assert_issue(f'[router]\nasn = 1\nrouter_id = "{rid}"\n', "router.router_id", reason)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (ROUTER + neighbor("", address="10.0.0.300"), "neighbor[0].address"),
        (ROUTER + neighbor("", address="spoke-a"), "neighbor[0].address"),
        (ROUTER + neighbor('source_address = "10.0.0"'), "neighbor[0].source_address"),
        (ROUTER.replace("[router]\n", '[router]\nlisten = ["0.0.0.0", "any"]\n'), "router.listen[1]"),
    ],
)
def test_addresses_must_be_ips(text: str, key: str) -> None:
    assert_issue(text, key, "is not a valid IPv4 or IPv6 address")


def test_neighbor_address_cannot_be_unspecified_or_multicast() -> None:
    assert_issue(
        ROUTER + neighbor("", address="0.0.0.0"), "neighbor[0].address", "cannot be a neighbor address"
    )
    assert_issue(
        ROUTER + neighbor("", address="ff02::1"), "neighbor[0].address", "cannot be a neighbor address"
    )


def test_source_address_family_must_match() -> None:
    text = ROUTER + neighbor('source_address = "2001:db8::1"')
    assert_issue(text, "neighbor[0].source_address", "is IPv6 but the neighbor address 10.0.0.2 is IPv4")


@pytest.mark.parametrize("port", [0, 65536])
def test_ports(port: int) -> None:
    assert_issue(ROUTER.replace("[router]\n", f"[router]\nport = {port}\n"), "router.port", "(1..65535)")
    assert_issue(ROUTER + neighbor(f"port = {port}"), "neighbor[0].port", "(1..65535)")


def test_neighbor_port_and_connect_retry() -> None:
    nb = ok(ROUTER + neighbor("port = 1179\nconnect_retry = 0.5")).neighbors[0]
    assert nb.port == 1179 and nb.connect_retry == 0.5
    assert ok(ROUTER + neighbor("connect_retry = 3")).neighbors[0].connect_retry == 3.0
    assert_issue(ROUTER + neighbor("connect_retry = 0"), "neighbor[0].connect_retry", "out of range")
    assert_issue(ROUTER + neighbor('connect_retry = "5s"'), "neighbor[0].connect_retry", "expected a number")


@pytest.mark.parametrize("hold", [1, 2, 65536, -3])
def test_bad_hold_times(hold: int) -> None:
    assert_issue(
        ROUTER + neighbor(f"hold_time = {hold}"), "neighbor[0].hold_time", "0 = no keepalives, or 3..65535"
    )


@pytest.mark.parametrize("hold", [0, 3, 65535])
def test_good_hold_times(hold: int) -> None:
    assert ok(ROUTER + neighbor(f"hold_time = {hold}")).neighbors[0].hold_time == hold


@pytest.mark.parametrize(
    ("proto", "reason"),
    [(0, "out of range (1..255)"), (256, "out of range (1..255)"), (1, "reserved"), (4, "reserved")],
)
def test_kernel_protocol(proto: int, reason: str) -> None:
    assert_issue(ROUTER + f"[kernel]\nprotocol = {proto}\n", "kernel.protocol", reason)


def test_kernel_protocol_5_is_the_lowest_allowed() -> None:
    assert ok(ROUTER + "[kernel]\nprotocol = 5\n").kernel.protocol == 5


@pytest.mark.parametrize("ecmp", [0, 257])
def test_kernel_ecmp_range(ecmp: int) -> None:
    assert_issue(ROUTER + f"[kernel]\necmp = {ecmp}\n", "kernel.ecmp", "out of range (1..256)")


def test_kernel_ecmp_limits_are_allowed() -> None:
    assert ok(ROUTER + "[kernel]\necmp = 1\n").kernel.ecmp == 1
    assert ok(ROUTER + "[kernel]\necmp = 256\n").kernel.ecmp == 256


def test_log_level() -> None:
    assert_issue(ROUTER + '[log]\nlevel = "verbose"\n', "log.level", '"verbose" is not one of debug, info')
    assert ok(ROUTER + '[log]\nlevel = "debug"\n').log.level == "debug"


def test_control_section() -> None:
    cfg = ok(ROUTER + '[control]\nsocket = "/tmp/b.sock"\ngroup = "bgpd"\n')
    assert (cfg.control.socket, cfg.control.group) == ("/tmp/b.sock", "bgpd")
    assert_issue(ROUTER + "[control]\ngroup = 5\n", "control.group", "expected a string")
    assert_issue(
        ROUTER + f'[control]\nsocket = "/{"x" * 120}"\n', "control.socket", "limit of a Unix socket path"
    )


# --- VRFs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", [0, 253, 254, 255])
def test_reserved_tables_for_other_vrfs(table: int) -> None:
    found = issues_of(ROUTER + f"[vrf.red]\ntable = {table}\n")
    assert len(found) == 1 and found[0].key == "vrf.red.table"
    assert "reserved" in found[0].reason or "out of range" in found[0].reason


def test_vrf_table_range() -> None:
    assert_issue(ROUTER + "[vrf.red]\ntable = 4294967296\n", "vrf.red.table", "out of range (1..4294967295)")
    assert ok(ROUTER + "[vrf.red]\ntable = 4294967295\n").vrfs["red"].table == 4294967295


def test_vrf_table_is_required() -> None:
    assert_issue(ROUTER + "[vrf.red]\n", "vrf.red.table", "missing (required)")


def test_vrf_tables_are_not_shared() -> None:
    assert_issue(
        ROUTER + "[vrf.red]\ntable = 500\n[vrf.blue]\ntable = 500\n",
        "vrf.blue.table",
        "table 500 is already used by vrf 'red'",
    )


def test_vrf_main_only_with_254() -> None:
    assert ok(ROUTER + "[vrf.main]\ntable = 254\n").vrfs["main"].table == 254
    assert_issue(ROUTER + "[vrf.main]\ntable = 500\n", "vrf.main.table", "always kernel table 254")


def test_neighbor_vrf_must_exist() -> None:
    assert_issue(
        ROUTER + "[vrf.red]\ntable = 5\n" + neighbor('vrf = "blue"'),
        "neighbor[0].vrf",
        "no vrf 'blue' (defined: main, red)",
    )
    assert ok(ROUTER + "[vrf.red]\ntable = 5\n" + neighbor('vrf = "red"')).neighbors[0].vrf == "red"


# --- neighbors --------------------------------------------------------------------------------------


def test_neighbor_addresses_are_unique() -> None:
    text = ROUTER + neighbor("") + neighbor("", address="10.0.0.3") + neighbor("", address="10.0.0.2")
    assert_issue(text, "neighbor[2].address", "10.0.0.2 is already neighbor[0]")


def test_ipv6_addresses_compare_normalised() -> None:
    text = ROUTER + neighbor("", address="2001:db8::1") + neighbor("", address="2001:DB8:0::1")
    assert_issue(text, "neighbor[1].address", "2001:db8::1 is already neighbor[0]")


def test_template_must_exist() -> None:
    text = ROUTER + "[template.spoke]\nhold_time = 30\n" + neighbor('template = "hub"')
    assert_issue(text, "neighbor[0].template", "no template 'hub' (defined: spoke)")


@pytest.mark.parametrize("value", ["all", "none", "p"])
def test_import_export_accepts_keywords_and_policies(value: str) -> None:
    pol = '[policy.p]\n[[policy.p.term]]\naction = "accept"\n'
    nb = ok(ROUTER + pol + neighbor(f'import = "{value}"\nexport = "{value}"')).neighbors[0]
    assert (nb.import_, nb.export) == (value, value)


def test_import_export_must_name_a_policy() -> None:
    assert_issue(
        ROUTER + neighbor('import = "in"'),
        "neighbor[0].import",
        '"in" is neither all, none nor a defined policy (no policies defined)',
    )
    pol = '[policy.p]\n[[policy.p.term]]\naction = "accept"\n'
    assert_issue(ROUTER + pol + neighbor('export = "ALL"'), "neighbor[0].export", "(policies: p)")


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        ('["ipv4", "ipv5"]', "neighbor[0].address_families[1]", '"ipv5" is not one of ipv4, ipv6'),
        ("[]", "neighbor[0].address_families", "must not be empty"),
        ('["ipv6", "ipv6"]', "neighbor[0].address_families[1]", "listed twice"),
    ],
)
def test_address_families(value: str, key: str, reason: str) -> None:
    assert_issue(ROUTER + neighbor(f"address_families = {value}"), key, reason)


def test_address_families_subset() -> None:
    assert ok(ROUTER + neighbor('address_families = ["ipv6"]')).neighbors[0].address_families == [Afi.IPV6]


@pytest.mark.parametrize("mode", ["off", "receive", "send", "both"])
def test_add_path_modes(mode: str) -> None:
    assert ok(ROUTER + neighbor(f'add_path = "{mode}"')).neighbors[0].add_path == mode


def test_add_path_bad_mode() -> None:
    assert_issue(
        ROUTER + neighbor('add_path = "on"'), "neighbor[0].add_path", '"on" is not one of off, receive'
    )


def test_other_neighbor_ranges() -> None:
    assert_issue(ROUTER + neighbor("max_prefixes = -1"), "neighbor[0].max_prefixes", "out of range")
    assert_issue(ROUTER + neighbor("restart_time = 4096"), "neighbor[0].restart_time", "(0..4095)")
    assert_issue(ROUTER + neighbor("multihop = 0"), "neighbor[0].multihop", "(1..255)")
    assert_issue(ROUTER + neighbor(f'password = "{"k" * 81}"'), "neighbor[0].password", "80 bytes")
    assert_issue(
        ROUTER + neighbor("ttl_security = true\nmultihop = 2"),
        "neighbor[0].ttl_security",
        "cannot be combined with multihop",
    )


# --- templates --------------------------------------------------------------------------------------


def test_template_values_are_inherited_and_overridden() -> None:
    text = (
        ROUTER
        + '[vrf.red]\ntable = 500\n[template.spoke]\nhold_time = 30\nvrf = "red"\nnext_hop_self = true\n'
        + 'address_families = ["ipv4"]\n'
        + neighbor('template = "spoke"')
        + neighbor('template = "spoke"\nhold_time = 9\naddress_families = ["ipv6"]', address="10.0.0.3")
        + neighbor("", address="10.0.0.4")
    )
    a, b, c = ok(text).neighbors
    assert (a.hold_time, a.vrf, a.next_hop_self, a.address_families) == (30, "red", True, [Afi.IPV4])
    assert (b.hold_time, b.vrf, b.next_hop_self, b.address_families) == (9, "red", True, [Afi.IPV6])
    assert (c.hold_time, c.vrf, c.next_hop_self, c.template) == (90, "main", False, None)


def test_template_rejects_address_and_template() -> None:
    found = issues_of(ROUTER + '[template.t]\naddress = "10.0.0.1"\ntemplate = "u"\n')
    assert [i.key for i in found] == ["template.t.address", "template.t.template"]
    assert "not allowed in a template" in found[0].reason


def test_template_errors_name_the_template_once() -> None:
    text = (
        ROUTER
        + '[template.spoke]\nhold_time = 2\nvrf = "nope"\n'
        + neighbor('template = "spoke"')
        + neighbor('template = "spoke"', address="10.0.0.3")
    )
    assert [i.key for i in issues_of(text)] == ["template.spoke.hold_time", "template.spoke.vrf"]


# --- RFC 8212 ---------------------------------------------------------------------------------------


def test_ebgp_without_policies_exchanges_nothing() -> None:
    nb = ok(ROUTER + neighbor("", asn=65001)).neighbors[0]
    assert (nb.import_, nb.export, nb.import_defaulted, nb.export_defaulted) == ("none", "none", True, True)


def test_ibgp_defaults_to_all() -> None:
    nb = ok(ROUTER + neighbor("", asn=65010)).neighbors[0]
    assert (nb.import_, nb.export, nb.import_defaulted, nb.export_defaulted) == ("all", "all", False, False)


def test_ebgp_with_one_direction_given() -> None:
    nb = ok(ROUTER + neighbor('import = "all"')).neighbors[0]
    assert (nb.import_, nb.export, nb.import_defaulted, nb.export_defaulted) == ("all", "none", False, True)


def test_policy_from_the_template_counts_as_given() -> None:
    text = ROUTER + '[template.t]\nimport = "all"\nexport = "all"\n' + neighbor('template = "t"')
    nb = ok(text).neighbors[0]
    assert (nb.import_, nb.export, nb.import_defaulted, nb.export_defaulted) == ("all", "all", False, False)


def test_ebgp_is_judged_on_the_template_asn() -> None:
    text = ROUTER + "[template.t]\nasn = 65010\n" + '[[neighbor]]\naddress = "10.0.0.2"\ntemplate = "t"\n'
    assert ok(text).neighbors[0].import_ == "all"


# --- networks ---------------------------------------------------------------------------------------


def test_networks() -> None:
    text = (
        ROUTER
        + '[vrf.red]\ntable = 500\n[[network]]\nprefix = "2001:db8::/32"\nvrf = "red"\n'
        + ('communities = ["65010:1", "no_export"]\nmed = 5\n')
    )
    [net] = ok(text).networks
    assert (net.afi, net.text, net.vrf, net.med) == (Afi.IPV6, "2001:db8::/32", "red", 5)
    assert net.communities == [parse_community("65010:1"), 0xFFFFFF01]


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ('prefix = "10.0.0.1/8"', "network[0].prefix", 'host bits set (did you mean "10.0.0.0/8"?)'),
        ('prefix = "10.0.0.0/33"', "network[0].prefix", "not a valid prefix"),
        ('prefix = "10.0.0.0/8"\nvrf = "red"', "network[0].vrf", "no vrf 'red'"),
        ('prefix = "10.0.0.0/8"\ncommunities = ["65536:1"]', "network[0].communities[0]", "0..65535"),
        ('prefix = "10.0.0.0/8"\ncommunities = ["1:2", "x"]', "network[0].communities[1]", "not ASN:VALUE"),
        ('prefix = "10.0.0.0/8"\nmed = -1', "network[0].med", "out of range"),
        ('vrf = "main"', "network[0].prefix", "missing (required)"),
    ],
)
def test_network_problems(body: str, key: str, reason: str) -> None:
    assert_issue(ROUTER + "[[network]]\n" + body + "\n", key, reason)


def test_duplicate_network() -> None:
    text = ROUTER + '[[network]]\nprefix = "10.0.0.0/8"\n[[network]]\nprefix = "10.0.0.0/8"\n'
    assert_issue(text, "network[1].prefix", "10.0.0.0/8 in vrf 'main' is already network[0]")


# --- policies ---------------------------------------------------------------------------------------

POL = ROUTER + "[policy.to-spokes]\n[[policy.to-spokes.term]]\n"


def test_policy_terms_are_stored_as_given() -> None:
    text = POL + 'match.prefix = "10.0.0.0/8 ge 16 le 24"\naction = "next"\nset.med = 7\n'
    text += '[[policy.to-spokes.term]]\naction = "reject"\n'
    t0, t1 = ok(text).policies["to-spokes"].terms
    assert (t0.match, t0.action, t0.set) == ({"prefix": "10.0.0.0/8 ge 16 le 24"}, "next", {"med": 7})
    assert (t1.match, t1.action, t1.set) == ({}, "reject", {})


def test_empty_policy_is_allowed() -> None:
    assert ok(ROUTER + "[policy.deny]\n").policies["deny"].terms == []


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ('action = "drop"', "policy.to-spokes.term[0].action", '"drop" is not one of accept, reject, next'),
        ("set.local_pref = 1", "policy.to-spokes.term[0].action", "missing (required: accept, reject, next)"),
        (
            'action = "accept"\nmatch.prefix = ["10.0.0.0/8 le 33"]',
            "policy.to-spokes.term[0].match.prefix[0]",
            "le 33 is out of range (8..32)",
        ),
        (
            'action = "accept"\nmatch.prefix = ["10.0.0.0/8", "10.1.0.0/8"]',
            "policy.to-spokes.term[0].match.prefix[1]",
            "host bits set",
        ),
        (
            'action = "accept"\nmatch.prefix = ["10.0.0.0/8 lt 9"]',
            "policy.to-spokes.term[0].match.prefix[0]",
            "expected PREFIX [ge N] [le N]",
        ),
        (
            'action = "accept"\nmatch.community = ["65010"]',
            "policy.to-spokes.term[0].match.community[0]",
            "not ASN:VALUE",
        ),
        (
            'action = "accept"\nset.local_pref = "high"',
            "policy.to-spokes.term[0].set.local_pref",
            "expected an integer",
        ),
        (
            'action = "accept"\nset.community_add = []',
            "policy.to-spokes.term[0].set.community_add",
            "must not be empty",
        ),
        ('action = "accept"\nmatch = 5', "policy.to-spokes.term[0].match", "expected a table"),
    ],
)
def test_policy_problems(body: str, key: str, reason: str) -> None:
    assert_issue(POL + body + "\n", key, reason)


def test_policy_cannot_be_named_like_a_keyword() -> None:
    assert_issue(
        ROUTER + '[policy.all]\n[[policy.all.term]]\naction = "accept"\n',
        "policy.all",
        "keyword of import/export",
    )


def test_policy_with_errors_still_counts_as_defined() -> None:
    # The broken policy is reported; the neighbor naming it is not reported a second time.
    text = ROUTER + '[policy.p]\n[[policy.p.term]]\naction = "drop"\n' + neighbor('import = "p"')
    assert [i.key for i in issues_of(text)] == ["policy.p.term[0].action"]


# --- prefix match parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ge", "le"),
    [
        ("10.0.0.0/8", 8, 8),
        ("10.0.0.0/8 le 24", 8, 24),
        ("10.0.0.0/8 ge 16", 16, 32),
        ("10.0.0.0/8 ge 16 le 24", 16, 24),
        ("10.0.0.0/8 le 24 ge 16", 16, 24),
        ("2001:db8::/32 le 64", 32, 64),
    ],
)
def test_parse_prefix_match(text: str, ge: int, le: int) -> None:
    net, lo, hi = parse_prefix_match(text)
    assert net == ipaddress.ip_network(text.split()[0]) and (lo, hi) == (ge, le)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "10.0.0.0/8 le",
        "10.0.0.0/8 le x",
        "10.0.0.0/8 le 4",
        "10.0.0.0/8 ge 20 le 10",
        "10.0.0.0/8 le 9 le 10",
        "x/8",
    ],
)
def test_parse_prefix_match_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_prefix_match(text)


# --- the error types --------------------------------------------------------------------------------


def test_issue_and_error_strings() -> None:
    a = ConfigIssue("f.toml", "neighbor[2].asn", "missing (required)")
    b = ConfigIssue("f.toml", "router.asn", "ASN 0 is out of range (1..4294967295)")
    assert str(a) == "f.toml: neighbor[2].asn: missing (required)"
    err = ConfigError([a, b])
    assert err.issues == [a, b]
    assert str(err) == f"{a}\n{b}"
