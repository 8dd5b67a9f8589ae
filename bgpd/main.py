"""`bgpd`: run the daemon (`--config FILE`) or validate a config (`--check-config FILE`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bgpd.config.errors import ConfigError
from bgpd.config.toml import load_config
from bgpd.log import get_logger, setup_logging


def _summary(path: str) -> str:
    cfg = load_config(path)
    return (
        f"{path}: OK: AS {cfg.router.asn}, router id {cfg.router.router_id}, "
        f"{len(cfg.neighbors)} neighbors, {len(cfg.vrfs)} VRFs, {len(cfg.networks)} networks, "
        f"{len(cfg.policies)} policies"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bgpd", description="BGP routing daemon")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", metavar="FILE", help="run the daemon with this config")
    group.add_argument("--check-config", metavar="FILE", help="validate the config and exit")
    args = ap.parse_args(argv)

    if args.check_config:
        try:
            from bgpd.daemon import build_filters

            build_filters(load_config(args.check_config))
            print(_summary(args.check_config))
        except ConfigError as e:
            for issue in e.issues:
                print(issue, file=sys.stderr)
            return 1
        return 0

    try:
        config = load_config(args.config)
    except ConfigError as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        return 1
    setup_logging(config.log.level)
    from bgpd.daemon import Daemon

    try:
        daemon = Daemon(config)
    except ConfigError as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        return 1
    try:
        return asyncio.run(daemon.run())
    except OSError as e:
        get_logger().error("fatal", error=str(e))
        print(f"bgpd: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
