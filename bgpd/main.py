"""`bgpd`: run the daemon (`--config FILE`) or validate a config (`--check-config FILE`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bgpd.config.errors import ConfigError
from bgpd.config.toml import load_config, summarize
from bgpd.log import get_logger, setup_logging


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bgpd", description="BGP routing daemon")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", metavar="FILE", help="run the daemon with this config")
    group.add_argument("--check-config", metavar="FILE", help="validate the config and exit")
    args = ap.parse_args(argv)

    if args.check_config:
        try:
            from bgpd.daemon import build_filters

            config = load_config(args.check_config)
            build_filters(config)
            print(summarize(config))
            for i, n in enumerate(config.neighbors):
                for what, defaulted in (("import", n.import_defaulted), ("export", n.export_defaulted)):
                    if defaulted:
                        print(
                            f"{config.source}: neighbor[{i}].{what}: warning: not set for eBGP neighbor "
                            f"{n.address}: no routes {'accepted' if what == 'import' else 'announced'} "
                            "(RFC 8212)",
                            file=sys.stderr,
                        )
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
