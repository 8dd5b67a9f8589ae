"""``bgpd-cli``: ask the running daemon over its control socket (see ``bgpd.control`` for the protocol).

Arguments are checked here, before the daemon is asked, so a typo gets a one-line answer and exit
status 2 even when the daemon is down. Exit status: 0 success, 1 the daemon is unreachable or
reported an error, 2 wrong command or argument. Never a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from bgpd import cli_format
from bgpd.control import ControlClientError, request

DEFAULT_SOCKET = "/run/bgpd/bgpd.sock"
DEFAULT_TIMEOUT = 10.0
NEIGHBOR_ACTIONS = ("reset", "disable", "enable", "refresh")
SHOW_OBJECTS = ("routes", "neighbors", "protocols", "vrfs")
COMMAND_LIST = "show routes, show neighbors, show vrfs, reload, neighbor ADDRESS reset|disable|enable|refresh"
ROUTES_OPTIONS = "--vrf NAME, --all, --count"

USAGE = f"""\
usage: bgpd-cli [--socket PATH] [--json] [--timeout SECONDS] COMMAND

commands:
  show routes [--vrf NAME] [--all] [PREFIX]  the Loc-RIB: best and ECMP paths (--all: every path);
                                             PREFIX: an address (longest match) or a prefix (exact)
  show routes --count [--vrf NAME]           routes and paths per VRF and address family
  show neighbors [ADDRESS]                   sessions; with ADDRESS, in detail (alias: show protocols)
  show vrfs                                  VRFs, their kernel tables and route counts
  reload                                     re-read the configuration file
  neighbor ADDRESS reset|disable|enable|refresh

options:
  --socket PATH       the daemon's control socket (default: $BGPD_SOCKET or {DEFAULT_SOCKET})
  --json              print the daemon's answer as JSON
  --timeout SECONDS   how long to wait for an answer (default: {DEFAULT_TIMEOUT:g})

"show" words may be abbreviated: "sh ro" is "show routes"."""


class UsageError(Exception):
    """A wrong command or argument: the message is printed after ``bgpd-cli: `` (exit status 2)."""


@dataclass(slots=True)
class Invocation:
    command: list[str]  # as sent to the daemon
    args: dict[str, Any]
    view: str  # how to render the answer (cli_format.render)
    detail: bool = False
    socket: str = DEFAULT_SOCKET
    json: bool = False
    timeout: float = DEFAULT_TIMEOUT
    help: bool = False
    words: list[str] = field(default_factory=list)  # the command as typed, for messages


def _expand(word: str, choices: Sequence[str]) -> str | None:
    """birdc-style abbreviation: a unique prefix of a keyword stands for it."""
    if word in choices:
        return word
    hits = [c for c in choices if c.startswith(word)]
    return hits[0] if len(hits) == 1 and word else None


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"'{text}' is not an IP address") from None


def _prefix(text: str) -> str:
    """An address (longest match) or a prefix (exact match), normalised."""
    if "/" not in text:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise UsageError(f"'{text}' is not an address or prefix") from None
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as e:
        if "host bits set" in str(e):
            fixed = ipaddress.ip_network(text, strict=False)
            raise UsageError(f"'{text}' has host bits set (did you mean {fixed}?)") from None
        raise UsageError(f"'{text}' is not an address or prefix") from None


def _unknown(words: Sequence[str]) -> UsageError:
    return UsageError(f"unknown command '{' '.join(words)}' (try: {COMMAND_LIST})")


def _no_args(name: str, rest: Sequence[str]) -> None:
    if rest:
        raise UsageError(f"'{name}' takes no arguments (got '{' '.join(rest)}')")


def _show_routes(rest: list[str]) -> tuple[dict[str, Any], str]:
    args: dict[str, Any] = {"vrf": None, "all": False, "prefix": None, "count": False}
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "--vrf" or word.startswith("--vrf="):
            if "=" in word:
                value = word.split("=", 1)[1]
            elif i + 1 < len(rest) and not rest[i + 1].startswith("-"):
                i += 1
                value = rest[i]
            else:
                value = ""
            if not value:
                raise UsageError("--vrf needs a VRF name")
            args["vrf"] = value
        elif word == "--all":
            args["all"] = True
        elif word == "--count":
            args["count"] = True
        elif word.startswith("-"):
            raise UsageError(f"unknown option '{word}' for 'show routes' (options: {ROUTES_OPTIONS})")
        elif args["prefix"] is not None:
            raise UsageError(f"'show routes' takes one PREFIX (got '{args['prefix']}' and '{word}')")
        else:
            args["prefix"] = _prefix(word)
        i += 1
    if args["count"] and (args["all"] or args["prefix"] is not None):
        raise UsageError("'show routes --count' takes only --vrf NAME")
    return args, "counts" if args["count"] else "routes"


def _parse_command(words: list[str]) -> tuple[list[str], dict[str, Any], str, bool]:
    """(command sent to the daemon, its args, the view to render, detail) for the words typed."""
    first = words[0]
    if first == "reload":
        _no_args("reload", words[1:])
        return ["reload"], {}, "message", False
    if first == "neighbor":
        rest = words[1:]
        usage = f"usage: neighbor ADDRESS {'|'.join(NEIGHBOR_ACTIONS)}"
        if len(rest) != 2:
            raise UsageError(usage)
        addr, action = rest
        if addr in NEIGHBOR_ACTIONS and action not in NEIGHBOR_ACTIONS:
            raise UsageError(f"{usage} (the address comes first: neighbor {action} {addr})")
        if action not in NEIGHBOR_ACTIONS:
            raise UsageError(f"unknown neighbor action '{action}' ({usage})")
        target = _address(addr)
        return ["neighbor", target, action], {"address": target}, "message", False
    if _expand(first, ("show",)) is None or len(words) < 2:
        if first in ("show", "sh") or _expand(first, ("show",)):
            raise UsageError("show what? (try: show routes, show neighbors, show vrfs)")
        raise _unknown(words)
    what = _expand(words[1], SHOW_OBJECTS)
    rest = words[2:]
    if what == "routes":
        args, view = _show_routes(rest)
        return ["show", "routes"], args, view, False
    if what in ("neighbors", "protocols"):
        if len(rest) > 1:
            raise UsageError(f"'show {what}' takes at most one ADDRESS (got '{' '.join(rest)}')")
        peer = _address(rest[0]) if rest else None
        return ["show", "neighbors"], {"address": peer}, "neighbors", peer is not None
    if what == "vrfs":
        _no_args("show vrfs", rest)
        return ["show", "vrfs"], {}, "vrfs", False
    raise _unknown(words[:2])


def parse_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Invocation:
    """Global options may come anywhere (``bgpd-cli show routes --json`` works). Raises UsageError."""
    env = os.environ if environ is None else environ
    sock = env.get("BGPD_SOCKET") or DEFAULT_SOCKET
    as_json = False
    timeout = DEFAULT_TIMEOUT
    words: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if arg in ("-h", "--help") or (arg == "help" and not words):
            return Invocation([], {}, "", help=True)
        if arg in ("--json", "-j"):
            as_json = True
        elif name in ("--socket", "-s", "--timeout"):
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                value = ""
            if not value:
                raise UsageError(f"{name} needs a value")
            if name == "--timeout":
                try:
                    timeout = float(value)
                except ValueError:
                    timeout = -1.0
                if not 0 < timeout <= 3600:
                    raise UsageError(f"--timeout: '{value}' is not a number of seconds (0..3600)")
            else:
                sock = value
        elif arg.startswith("-") and not words:
            raise UsageError(f"unknown option '{arg}' (options: --socket PATH, --json, --timeout SECONDS)")
        else:
            words.append(arg)
        i += 1
    if not words:
        raise UsageError(f"no command given (try: {COMMAND_LIST}; or --help)")
    command, args, view, detail = _parse_command(words)
    return Invocation(command, args, view, detail, sock, as_json, timeout, words=words)


def _print(text: str, stream: TextIO) -> None:
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def _run(argv: Sequence[str]) -> int:
    try:
        inv = parse_args(argv)
    except UsageError as e:
        _print(f"bgpd-cli: {e}", sys.stderr)
        return 2
    if inv.help:
        _print(USAGE, sys.stdout)
        return 0
    try:
        resp = request(inv.socket, inv.command, inv.args, timeout=inv.timeout)
    except ControlClientError as e:
        _print(f"bgpd-cli: {e}", sys.stderr)
        return 1
    if not resp["ok"]:
        _print(f"bgpd-cli: {resp['error']}", sys.stderr)
        return 1
    data = resp["data"]
    if inv.json:
        _print(json.dumps(data, indent=2), sys.stdout)
        return 0
    try:
        text = cli_format.render(inv.view, data, inv.detail)
    except Exception as e:  # an answer of an unexpected shape (another daemon version): show it raw
        why = f"{type(e).__name__}: {e}"
        _print(f"bgpd-cli: cannot render the answer as text ({why}); JSON follows", sys.stderr)
        text = json.dumps(data, indent=2)
    _print(text, sys.stdout)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `bgpd-cli show routes | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not complain either.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
