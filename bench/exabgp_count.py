"""ExaBGP API process for the benchmark: counts the prefixes ExaBGP parsed and hands over.

ExaBGP writes one JSON object per received UPDATE on our stdin; we keep announced minus
withdrawn prefixes and a thread writes the number to the file named on the command line every
0.1 s when it changed, so that bench/run can read it without talking to ExaBGP.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def main() -> int:
    path = sys.argv[1]
    count = [0]

    def writer() -> None:
        written = -1
        while True:
            if count[0] != written:
                written = count[0]
                tmp = path + ".tmp"
                with open(tmp, "w") as f:
                    f.write(f"{written}\n")
                os.replace(tmp, path)
            time.sleep(0.1)

    threading.Thread(target=writer, daemon=True).start()
    n = 0
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        upd = msg.get("neighbor", {}).get("message", {}).get("update")
        if upd is None:
            continue
        for by_nh in upd.get("announce", {}).values():
            for nlris in by_nh.values():
                n += len(nlris)
        for nlris in upd.get("withdraw", {}).values():
            n -= len(nlris)
        count[0] = n
    time.sleep(0.3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
