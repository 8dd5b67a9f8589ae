"""Chart of the load scenario from bench/run --json files: load time and peak RSS per daemon.

    .venv/bin/python bench/chart.py OUT.png RESULTS.json [RESULTS.json ...]

One group of bars per table size found in the files (e.g. 100k and 1M). Time is the kernel
time where the daemon writes a kernel table, else the RIB time (GoBGP, ExaBGP: hatched).
Needs matplotlib (bench/setup.sh installs it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ORDER = ["bgpd", "bird", "frr", "gobgp", "exabgp"]
COLORS = {"bgpd": "#d62728", "bird": "#1f77b4", "frr": "#2ca02c", "gobgp": "#9467bd", "exabgp": "#8c564b"}


def main() -> int:
    out = Path(sys.argv[1])
    recs = [r for f in sys.argv[2:] for r in json.loads(Path(f).read_text()) if r["scenario"] == "load"]
    sizes = sorted({r["n"] for r in recs})
    daemons = [d for d in ORDER if any(r["daemon"] == d for r in recs)]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / max(1, len(daemons))
    for j, d in enumerate(daemons):
        for i, n in enumerate(sizes):
            r = next((r for r in recs if r["daemon"] == d and r["n"] == n), None)
            if r is None:
                continue
            x = i + (j - (len(daemons) - 1) / 2) * width
            rib_only = r.get("kernel_s") is None
            t = r.get("rib_s") if rib_only else r.get("kernel_s")
            label = d if i == 0 else None
            if t is not None and r.get("converged"):
                ax_t.bar(x, t, width, color=COLORS[d], hatch="//" if rib_only else None, label=label)
                ax_t.annotate(f"{t:.1f}", (x, t), ha="center", va="bottom", fontsize=7)
            else:
                ax_t.annotate("timeout", (x, 0), ha="center", va="bottom", fontsize=7, rotation=90)
            if r.get("rss_mib") is not None:
                ax_m.bar(x, r["rss_mib"], width, color=COLORS[d], label=label)
                ax_m.annotate(f"{r['rss_mib']:.0f}", (x, r["rss_mib"]), ha="center", va="bottom", fontsize=7)
    ticks = [f"{n // 1000}k IPv4" if n < 1_000_000 else f"{n / 1e6:g}M IPv4" for n in sizes]
    for ax, title in ((ax_t, "load: seconds to kernel table (hatched: RIB only)"), (ax_m, "peak RSS (MiB)")):
        ax.set_xticks(range(len(sizes)), ticks)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    ax_t.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
