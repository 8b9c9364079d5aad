#!/usr/bin/env python3
"""loadtest/plot.py: draw compare_fanout.sh's results as SVG (python3
standard library only; the SVG is written by hand).

    python3 loadtest/plot.py RESULTS.jsonl [MORE.jsonl ...] [--out-dir DIR]

Reads the JSON lines compare_fanout.sh (and compare_idle.sh) append, one run
each: {"system", "scenario", "rate", "report": {...roomcast-load's JSON}}.
Writes, for the "fanout" lines:
  DIR/fanout-p99.svg         p99 latency (ms, log scale) against publish
                             rate, one line per system, a 50 ms guide line
  DIR/fanout-deliveries.svg  deliveries/s against publish rate, and below it
                             deliveries per gateway CPU-second (all nodes)
DIR defaults to docs/img at the repo root. A run that lost messages (or
failed: "ok" false) is drawn as a hollow marker. When a system has several
runs at one rate, the last one in the files wins. It also prints the
results as Markdown tables on stdout (fanout, and idle when there are idle
lines), for docs/BENCHMARKS.md.
SPDX-License-Identifier: MIT
"""
import argparse
import json
import math
import os
import sys

COLORS = {"roomcast": "#1f77b4", "socketio": "#d62728"}
DASH = {"socketio": "7 4"}  # so equal values still show both lines
OTHER = ["#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
W, H = 720, 420                          # one panel
ML, MR, MT, MB = 80, 150, 40, 55         # margins: legend on the right
FONT = 'font-family="sans-serif" font-size="12"'


def esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def load(paths):
    runs = {}
    idle = []
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    d = json.loads(line)
                except ValueError:
                    print("%s:%d: not JSON, skipped" % (path, n),
                          file=sys.stderr)
                    continue
                if d.get("scenario") == "idle":
                    idle.append(d)
                elif d.get("scenario", "fanout") == "fanout":
                    runs[(d["system"], float(d["rate"]))] = d
    return runs, idle


def color(system, systems):
    if system in COLORS:
        return COLORS[system]
    others = [s for s in systems if s not in COLORS]
    return OTHER[others.index(system) % len(OTHER)]


def nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    t = math.floor(lo / step) * step
    out = [round(t, 10)]
    while out[-1] < hi - step * 1e-9:  # the last tick is >= hi
        t += step
        out.append(round(t, 10))
    return out


def fmt(v):
    if v >= 1e6:
        return "%gM" % (v / 1e6)
    if v >= 1e3:
        return "%gk" % (v / 1e3)
    return "%g" % v


class Panel:
    """One chart: x linear, y linear or log10; y0 is its top in the SVG."""

    def __init__(self, y0, xlo, xhi, ylo, yhi, log):
        self.y0, self.xlo, self.xhi = y0, xlo, xhi
        self.ylo, self.yhi, self.log = ylo, yhi, log

    def x(self, v):
        return ML + (v - self.xlo) / (self.xhi - self.xlo) * (W - ML - MR)

    def y(self, v):
        if self.log:
            v, lo, hi = (math.log10(max(v, 1e-9)), math.log10(self.ylo),
                         math.log10(self.yhi))
        else:
            lo, hi = self.ylo, self.yhi
        return self.y0 + MT + (1 - (v - lo) / (hi - lo)) * (H - MT - MB)


def axes(out, p, xticks, yticks, title, xlabel, ylabel, sub=""):
    top, bot = p.y0 + MT, p.y0 + H - MB
    out.append('<text x="%d" y="%d" font-family="sans-serif" font-size="14" '
               'font-weight="bold">%s</text>' % (ML, p.y0 + 18, esc(title)))
    if sub:
        out.append('<text x="%d" y="%d" %s fill="#555">%s</text>'
                   % (ML, p.y0 + 33, FONT, esc(sub)))
    for t in xticks:
        x = p.x(t)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" '
                   'stroke="#e5e5e5"/>' % (x, top, x, bot))
        out.append('<text x="%.1f" y="%d" %s text-anchor="middle">%s</text>'
                   % (x, bot + 16, FONT, fmt(t)))
    for t in yticks:
        y = p.y(t)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" '
                   'stroke="#e5e5e5"/>' % (ML, y, W - MR, y))
        out.append('<text x="%d" y="%.1f" %s text-anchor="end">%s</text>'
                   % (ML - 6, y + 4, FONT, fmt(t)))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" '
               'stroke="#333"/>' % (ML, top, W - ML - MR, bot - top))
    out.append('<text x="%d" y="%d" %s text-anchor="middle">%s</text>'
               % ((ML + W - MR) // 2, bot + 38, FONT, esc(xlabel)))
    out.append('<text x="%d" y="%d" %s text-anchor="middle" '
               'transform="rotate(-90 %d %d)">%s</text>'
               % (18, (top + bot) // 2, FONT, 18, (top + bot) // 2,
                  esc(ylabel)))


def series(out, p, systems, pts):
    """pts: system -> [(x, y, ok)]."""
    for i, s in enumerate(systems):
        c = color(s, systems)
        xy = [(p.x(a), p.y(b), ok) for a, b, ok in pts.get(s, [])]
        if not xy:
            continue
        dash = ('stroke-dasharray="%s" ' % DASH[s]) if s in DASH else ""
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" %s'
                   'points="%s"/>' % (c, dash, " ".join(
                       "%.1f,%.1f" % (a, b) for a, b, _ in xy)))
        for a, b, ok in xy:
            if i % 2:  # squares for every other system
                out.append('<rect x="%.1f" y="%.1f" width="8" height="8" '
                           'stroke="%s" stroke-width="2" fill="%s"/>'
                           % (a - 4, b - 4, c, c if ok else "white"))
            else:
                out.append('<circle cx="%.1f" cy="%.1f" r="4" stroke="%s" '
                           'stroke-width="2" fill="%s"/>'
                           % (a, b, c, c if ok else "white"))
        ly = p.y0 + MT + 10 + 20 * i
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" '
                   'stroke-width="2" %s/>' % (W - MR + 12, ly, W - MR + 34,
                                              ly, c, dash))
        out.append('<text x="%d" y="%d" %s>%s</text>'
                   % (W - MR + 40, ly + 4, FONT, esc(s)))
    ly = p.y0 + MT + 10 + 20 * len(systems) + 6
    out.append('<circle cx="%d" cy="%d" r="4" stroke="#555" '
               'stroke-width="2" fill="white"/>' % (W - MR + 23, ly))
    out.append('<text x="%d" y="%d" %s>lost / not ok</text>'
               % (W - MR + 40, ly + 4, FONT))


def svg(path, height, body):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" '
                'height="%d" viewBox="0 0 %d %d">\n' % (W, height, W, height))
        f.write('<rect width="100%" height="100%" fill="white"/>\n')
        f.write("\n".join(body) + "\n</svg>\n")
    print("wrote %s" % path, file=sys.stderr)


def subtitle(runs):
    d = next(iter(runs.values()))
    return "%s clients, %s rooms, %s nodes per system, %s-byte messages, " \
        "%g s per step" % (
        d.get("n", "?"), d.get("rooms", "?"), d.get("nodes", "?"),
        d.get("size", "?"), d.get("duration_s", 0))


def plot_p99(runs, systems, path):
    pts = {}
    for (s, rate), d in sorted(runs.items(), key=lambda kv: kv[0][1]):
        r = d.get("report") or {}
        p99 = r.get("latency_us", {}).get("p99")
        if p99 is not None:
            pts.setdefault(s, []).append((rate, p99 / 1e3, bool(r.get("ok"))))
    ys = [b for v in pts.values() for _, b, _ in v] + [50.0]
    rates = [rate for _, rate in runs]
    lo = 10 ** math.floor(math.log10(max(min(ys), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(ys) * 1.05))
    p = Panel(0, 0, max(nice_ticks(0, max(rates))), lo, hi, True)
    yt = [10 ** e for e in range(int(round(math.log10(lo))),
                                 int(round(math.log10(hi))) + 1)]
    out = []
    axes(out, p, nice_ticks(0, max(rates)), yt, "fan-out: p99 latency",
         "publish rate (messages/s)", "p99 publish-to-deliver (ms, log)",
         subtitle(runs))
    y50 = p.y(50)
    out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" '
               'stroke-dasharray="6 4"/>' % (ML, y50, W - MR, y50))
    out.append('<text x="%d" y="%.1f" %s fill="#555">50 ms</text>'
               % (ML + 4, y50 - 4, FONT))
    series(out, p, systems, pts)
    svg(path, H, out)


def plot_deliveries(runs, systems, path):
    rate_pts, cpu_pts = {}, {}
    for (s, rate), d in sorted(runs.items(), key=lambda kv: kv[0][1]):
        r = d.get("report") or {}
        ok = bool(r.get("ok"))
        if "deliveries_per_s" in r:
            rate_pts.setdefault(s, []).append((rate, r["deliveries_per_s"],
                                               ok))
        per_cpu = r.get("gateway", {}).get("deliveries_per_cpu_s")
        if per_cpu:
            cpu_pts.setdefault(s, []).append((rate, per_cpu, ok))
    rates = [rate for _, rate in runs]
    xt = nice_ticks(0, max(rates))
    out = []
    d0 = next(iter(runs.values()))
    # every member of a room gets every message: rate * N / rooms
    fan = float(d0.get("n", 0)) / float(d0.get("rooms", 1) or 1)
    ys = [b for v in rate_pts.values() for _, b, _ in v] or [1]
    yt = nice_ticks(0, max(ys + [max(rates) * fan]))
    p = Panel(0, 0, max(xt), 0, max(yt), False)
    axes(out, p, xt, yt, "fan-out: deliveries/s",
         "publish rate (messages/s)", "deliveries/s", subtitle(runs))
    if fan > 0:
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" '
                   'stroke="#999" stroke-dasharray="2 3"/>'
                   % (p.x(0), p.y(0), p.x(max(rates)),
                      p.y(max(rates) * fan)))
        mid = max(rates) * 0.6
        out.append('<text x="%.1f" y="%.1f" %s fill="#777">'
                   'rate x %g members</text>'
                   % (p.x(mid) + 8, p.y(mid * fan) + 16, FONT, fan))
    series(out, p, systems, rate_pts)
    ys = [b for v in cpu_pts.values() for _, b, _ in v] or [1]
    yt = nice_ticks(0, max(ys))
    p = Panel(H, 0, max(xt), 0, max(yt), False)
    axes(out, p, xt, yt,
         "fan-out: deliveries per gateway CPU-second",
         "publish rate (messages/s)", "deliveries / CPU-s",
         "CPU of every node of the system (not Redis, not the load tool)")
    series(out, p, systems, cpu_pts)
    svg(path, 2 * H, out)


def num(v, f="%.1f"):
    return "-" if v is None else f % v


def tables(runs, idle, systems):
    if runs:
        print("| rate/s | system | ok | p50 ms | p99 ms | deliveries/s | "
              "gateway CPU (cores) | deliveries/CPU-s | RSS MiB |")
        print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
        for (s, rate), d in sorted(runs.items(),
                                   key=lambda kv: (kv[0][1],
                                                   systems.index(kv[0][0]))):
            r = d.get("report") or {}
            lat = r.get("latency_us", {})
            g = r.get("gateway", {})
            print("| %g | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                rate, s, "yes" if r.get("ok") else "**no**",
                num(lat.get("p50", 0) / 1e3 if "p50" in lat else None, "%.2f"),
                num(lat.get("p99", 0) / 1e3 if "p99" in lat else None, "%.2f"),
                num(r.get("deliveries_per_s"), "%.0f"),
                num(g.get("cpu_measure_frac"), "%.2f"),
                num(g.get("deliveries_per_cpu_s"), "%.0f"),
                num(g["measure_end"]["rss_bytes"] / 2**20
                    if "measure_end" in g else None)))
    if idle:
        print()
        print("| system | nodes | clients | RSS before MiB | RSS joined MiB "
              "| bytes/connection |")
        print("|---|---:|---:|---:|---:|---:|")
        for d in idle:
            g = (d.get("report") or {}).get("gateway", {})
            print("| %s | %s | %s | %s | %s | %s |" % (
                d["system"], d.get("nodes", "?"),
                (d.get("report") or {}).get("connections", {})
                .get("established", "-"),
                num(g["before_connect"]["rss_bytes"] / 2**20
                    if "before_connect" in g else None),
                num(g["measure_start"]["rss_bytes"] / 2**20
                    if "measure_start" in g else None),
                num(g.get("rss_per_conn_bytes"), "%.0f")))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="compare_*.sh JSON lines")
    ap.add_argument("--out-dir", default=os.path.join(here, "..", "docs",
                                                      "img"))
    ap.add_argument("--no-table", action="store_true",
                    help="do not print the Markdown tables")
    a = ap.parse_args()
    runs, idle = load(a.files)
    systems = []
    for s in ["roomcast", "socketio"] + sorted({s for s, _ in runs} |
                                               {d["system"] for d in idle}):
        if s not in systems and (any(k[0] == s for k in runs) or
                                 any(d["system"] == s for d in idle)):
            systems.append(s)
    if runs:
        plot_p99(runs, systems, os.path.join(a.out_dir, "fanout-p99.svg"))
        plot_deliveries(runs, systems,
                        os.path.join(a.out_dir, "fanout-deliveries.svg"))
    elif not idle:
        print("plot.py: no fanout or idle lines in %s" % " ".join(a.files),
              file=sys.stderr)
        return 1
    if not a.no_table:
        tables(runs, idle, systems)
    return 0


if __name__ == "__main__":
    sys.exit(main())
