#!/usr/bin/env python3
"""loadtest/plot_soak.py: draw a soak_redis.sh run (python3 standard
library only; the SVG helpers are plot.py's).

    python3 loadtest/plot_soak.py OUT_DIR [--svg FILE]

Reads OUT_DIR/soak.json (the series: RSS, fds, window p50/p99/max),
OUT_DIR/redis_memory.tsv and OUT_DIR/churn.json, and writes one SVG of four
panels against time: the node's RSS (MiB), its open fds, Redis used_memory
(MiB), and delivery latency p50/p99 (ms) per sample window. Prints a
Markdown summary (first/last/min/max per quantity and the least-squares
slope per 10 minutes over the second half of the run, when the history is
full) for docs/BENCHMARKS.md.
SPDX-License-Identifier: MIT
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot  # noqa: E402  (the SVG helpers)


def slope_per_10min(pts):
    """Least-squares slope of [(t_s, v)], per 600 s."""
    n = len(pts)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    den = sum((t - mt) ** 2 for t, _ in pts)
    return 0.0 if den == 0 else 600 * sum(
        (t - mt) * (v - mv) for t, v in pts) / den


def panel(out, y0, pts_by_name, title, ylabel, tmax):
    """From 0 up: a flat line looks flat, a trend shows against its size."""
    vals = [v for pts in pts_by_name.values() for _, v in pts]
    hi = max(vals) if vals else 1
    yt = plot.nice_ticks(0.0, hi * 1.15 if hi > 0 else 1)
    xt = plot.nice_ticks(0, tmax)
    p = plot.Panel(y0, 0, xt[-1], yt[0], yt[-1], False)
    plot.axes(out, p, xt, yt, title, "time (s)", ylabel)
    names = list(pts_by_name)
    plot.series(out, p, names, {k: [(t, v, True) for t, v in pts]
                                for k, pts in pts_by_name.items()})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--svg", default=None)
    a = ap.parse_args()
    soak = json.load(open(os.path.join(a.dir, "soak.json")))
    series = [s for s in soak.get("series", []) if s["t_s"] > 0]
    mem = []
    with open(os.path.join(a.dir, "redis_memory.tsv")) as f:
        next(f)
        for ln in f:
            t, v = ln.split()
            mem.append((float(t), int(v)))
    # the memory sampler starts with the script: shift it to the soak's
    # measure phase (the ramp and joins came first)
    t_shift = mem[0][0] if mem else 0
    ramp = soak["connections"].get("ramp_wall_s", 0) + 3
    mem = [(t - t_shift - ramp, v) for t, v in mem if t - t_shift - ramp >= 0]
    tmax = max(s["t_s"] for s in series)
    rss = [(s["t_s"], s["rss_bytes"] / 2**20) for s in series]
    fds = [(s["t_s"], s["fds"]) for s in series]
    p50 = [(s["t_s"], s["p50_ms"]) for s in series if s.get("lat_count")]
    p99 = [(s["t_s"], s["p99_ms"]) for s in series if s.get("lat_count")]
    rmem = [(t, v / 2**20) for t, v in mem if t <= tmax + 10]
    out = []
    panel(out, 0, {"node RSS": rss}, "roomcastd RSS", "MiB", tmax)
    panel(out, plot.H, {"open fds": fds}, "roomcastd open fds", "fds", tmax)
    panel(out, 2 * plot.H, {"used_memory": rmem}, "Redis used_memory",
          "MiB", tmax)
    panel(out, 3 * plot.H, {"p99": p99, "p50": p50},
          "delivery latency per %gs window" % (
              series[1]["t_s"] - series[0]["t_s"] if len(series) > 1 else 0),
          "ms", tmax)
    path = a.svg or os.path.join(a.dir, "soak.svg")
    plot.svg(path, 4 * plot.H, out)

    half = tmax / 2
    print("| quantity | first | last | min | max | slope / 10 min "
          "(2nd half) |")
    print("|---|---|---|---|---|---|")
    for name, pts, f in (("node RSS (MiB)", rss, "%.1f"),
                         ("node open fds", fds, "%d"),
                         ("Redis used_memory (MiB)", rmem, "%.2f"),
                         ("p50 (ms)", p50, "%.2f"),
                         ("p99 (ms)", p99, "%.2f")):
        if not pts:
            continue
        vs = [v for _, v in pts]
        print("| %s | %s | %s | %s | %s | %+.3f |" % (
            name, f % vs[0], f % vs[-1], f % min(vs), f % max(vs),
            slope_per_10min([(t, v) for t, v in pts if t >= half])))
    d = soak
    dur = max(tmax, 1)
    churn = {}
    try:
        churn = json.load(open(os.path.join(a.dir, "churn.json")))
    except (OSError, ValueError):
        pass
    print()
    print("deliveries %d (%.0f/s), gaps %s, duplicates %s, publishes acked "
          "%s of %s; churn cycles %s (%.1f/s), failed %s" % (
              d.get("deliveries", 0), d.get("deliveries", 0) / dur,
              d.get("gaps", "?"),
              d.get("duplicates", "?"),
              d["publishes"]["acked"], d["publishes"]["sent"],
              churn.get("churn", {}).get("cycles_completed", "?"),
              churn.get("churn", {}).get("cycles_per_s", 0),
              churn.get("churn", {}).get("cycles_failed", "?")))


if __name__ == "__main__":
    main()
