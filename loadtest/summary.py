#!/usr/bin/env python3
"""loadtest/summary.py: the tables of docs/BENCHMARKS.md from one
bench_all.sh directory (python3 standard library only).

Every ratio is taken against the ceiling measured in the same directory
(calibrate.json, calibrate_broadcast.json), so all numbers come from one run.

Usage: python3 loadtest/summary.py loadtest/results/bench-DATE
SPDX-License-Identifier: MIT
"""
import json
import statistics
import sys
from pathlib import Path


def load(d, name):
    p = d / name
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None


def lines(d, name):
    p = d / name
    if not p.exists():
        return []
    out = []
    for ln in p.read_text().splitlines():
        ln = ln.strip()
        if ln:
            out.append(json.loads(ln))
    return out


def ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"


def k(x):
    return "-" if x is None else f"{x / 1000:,.1f}k"


def pct(a, b):
    return "-" if not a or not b else f"{100.0 * a / b:.0f} %"


def table(head, rows):
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = Path(sys.argv[1])
    print(f"Results: `{d}`\n")
    m = d / "machine.txt"
    if m.exists():
        print("Machine: " + "; ".join(m.read_text().split("\n")).strip("; "))
        print()

    cal = load(d, "calibrate.json") or {}
    ceiling = cal.get("sends_per_cpu_s")
    print("### Ceiling (calibrate, streamed round-robin)\n")
    table(["sockets", "frame bytes", "send()s", "send()s per CPU-s",
           "send()s per s"],
          [[cal.get("connections", {}).get("connected"),
            cal.get("config", {}).get("size", 100), cal.get("sends"),
            k(ceiling), k(cal.get("sends_per_s"))]])

    print("### fanout through Redis, two nodes each, roomcast vs Socket.IO\n")
    runs = lines(d, "compare-fanout.jsonl")
    rows = []
    for r in sorted(runs, key=lambda x: (x["rate"], x["system"])):
        rep = r.get("report") or {}
        lat = rep.get("latency_us", {})
        gw = rep.get("gateway", {})
        dpc = gw.get("deliveries_per_cpu_s")
        lost = None
        if rep:
            lost = max(0, rep.get("expected_deliveries", 0)
                       - rep.get("deliveries", 0)) + rep.get("gaps", 0)
        paced = (load(d, f"calibrate_paced_{r['rate']:.0f}.json") or {}).get(
            "sends_per_cpu_s")
        rows.append([
            f"{r['rate']:.0f}", r["system"], rep.get("ok"),
            k(rep.get("deliveries_per_s")), ms(lat.get("p50")),
            ms(lat.get("p99")), ms(lat.get("max")), lost,
            f"{gw.get('cpu_measure_frac', 0):.2f}" if gw else "-",
            k(dpc), pct(dpc, ceiling), k(paced), pct(dpc, paced),
            rep.get("tool", {}).get("host_saturated")])
    table(["msgs/s", "system", "ok", "deliveries/s", "p50 ms", "p99 ms",
           "max ms", "lost", "gateway cores", "deliveries per gateway CPU-s",
           "of ceiling", "paced ceiling", "of paced ceiling",
           "host saturated"], rows)

    best = {}
    for r in runs:
        rep = r.get("report") or {}
        p99 = rep.get("latency_us", {}).get("p99")
        if rep.get("ok") and p99 is not None and p99 < 50000:
            best[r["system"]] = max(best.get(r["system"], (0, 0)),
                                    (r["rate"], rep["deliveries_per_s"]))
    by = {}
    for r in runs:
        rep = r.get("report") or {}
        by.setdefault(r["rate"], {})[r["system"]] = rep
    cmp_rows = []
    for rate in sorted(by):
        a, b = by[rate].get("roomcast"), by[rate].get("socketio")
        if not a or not b:
            continue
        pa = a.get("latency_us", {}).get("p99")
        pb = b.get("latency_us", {}).get("p99")
        ca = a.get("gateway", {}).get("deliveries_per_cpu_s")
        cb = b.get("gateway", {}).get("deliveries_per_cpu_s")
        cmp_rows.append([
            f"{rate:.0f}", ms(pa), ms(pb),
            f"{pa / pb:.2f}" if pa and pb else "-",
            f"{cb / ca:.2f}" if ca and cb else "-"])
    print("Side by side (CPU per delivery ratio = roomcast's CPU per delivery "
          "/ Socket.IO's):\n")
    table(["msgs/s", "roomcast p99 ms", "Socket.IO p99 ms", "p99 ratio",
           "CPU per delivery ratio"], cmp_rows)
    print("Highest rate with p99 < 50 ms and no loss: "
          + ", ".join(f"{s} {v[0]:.0f} msgs/s ({v[1] / 1000:.0f}k "
                      "deliveries/s)" for s, v in sorted(best.items()))
          + "\n")

    print("### idle: memory per connection\n")
    rows = []
    big = load(d, "idle_big.json")
    if big:
        c = big["connections"]
        rows.append(["roomcast", c["established"],
                     f"{c['connect_rate_per_s']:,.0f}",
                     f"{big['gateway']['rss_per_conn_bytes']:,.0f}", "-"])
    idle = lines(d, "compare-idle.jsonl")
    rc = {r["system"]: r.get("report") or {} for r in idle}
    for s in ("roomcast", "socketio"):
        rep = rc.get(s)
        if not rep:
            continue
        c = rep["connections"]
        per = rep["gateway"]["rss_per_conn_bytes"]
        ref = rc.get("socketio", {}).get("gateway", {}).get(
            "rss_per_conn_bytes")
        rows.append([s, c["established"], f"{c['connect_rate_per_s']:,.0f}",
                     f"{per:,.0f}", pct(per, ref)])
    table(["system", "clients", "connects/s", "RSS bytes per connection",
           "of Socket.IO's"], rows)

    print("### broadcast: one message to every member\n")
    b = load(d, "broadcast.json") or {}
    cb = load(d, "calibrate_broadcast.json") or {}
    bl = b.get("broadcast", {}).get("median_last_delivery_ms")
    bf = b.get("broadcast", {}).get("median_first_delivery_ms")
    cw = cb.get("broadcast", {}).get("median_write_all_ms")
    cd = cb.get("broadcast", {}).get("median_deliver_all_ms")
    table(["members", "roomcast: publish to last member (median ms)",
           "first member (ms)", "calibrate: write all (ms)",
           "calibrate: all read (ms)", "ratio to write all"],
          [[b.get("broadcast", {}).get("members"), bl, bf, cw, cd,
            f"{bl / cw:.2f}" if bl and cw else "-"]])

    print("### backlog: ten frames queued per client at once\n")
    bk = load(d, "backlog.json") or {}
    g = bk.get("gateway", {})
    lat = bk.get("latency_us", {})
    table(["msgs/s", "burst", "ok", "deliveries/s", "p99 ms",
           "deliveries per gateway CPU-s", "times the ceiling"],
          [[bk.get("config", {}).get("rate_per_s"),
            bk.get("config", {}).get("burst"), bk.get("ok"),
            k(bk.get("deliveries_per_s")), ms(lat.get("p99")),
            k(g.get("deliveries_per_cpu_s")),
            f"{g['deliveries_per_cpu_s'] / ceiling:.1f}"
            if g.get("deliveries_per_cpu_s") and ceiling else "-"]])

    print("### churn and soak\n")
    ch = load(d, "churn.json") or {}
    cc = ch.get("churn", {})
    cg = ch.get("gateway", {})
    table(["client slots", "cycles", "failed", "cycles/s", "RSS before (MiB)",
           "RSS after (MiB)", "fds before", "fds after"],
          [[ch.get("config", {}).get("connections"),
            cc.get("cycles_completed"), cc.get("cycles_failed"),
            cc.get("cycles_per_s"),
            f"{cg.get('before_connect', {}).get('rss_bytes', 0) / 2**20:.1f}",
            f"{cg.get('after_close', {}).get('rss_bytes', 0) / 2**20:.1f}",
            cg.get("before_connect", {}).get("fds"),
            cg.get("after_close", {}).get("fds")]])
    so = load(d, "soak.json") or {}
    ser = so.get("series") or []
    if ser:
        rss = [s["rss_bytes"] for s in ser]
        fds = [s["fds"] for s in ser]
        t_end = ser[-1]["t_s"]
        late = next(i for i, x in enumerate(ser) if x["t_s"] >= t_end - 20)
        table(["clients", "msgs/s", "seconds", "ok", "samples",
               "RSS first/median/last (MiB)", "RSS growth, last 20 s",
               "fds min/max", "p99 ms"],
              [[so.get("connections", {}).get("established"),
                so.get("config", {}).get("rate_per_s"),
                f"{ser[-1]['t_s']:.0f}", so.get("ok"), len(ser),
                f"{rss[0] / 2**20:.1f} / "
                f"{statistics.median(rss) / 2**20:.1f} / "
                f"{rss[-1] / 2**20:.1f}",
                f"{(rss[-1] - rss[late]) / 2**10:+.0f} KiB",
                f"{min(fds)} / {max(fds)}",
                ms(so.get("latency_us", {}).get("p99"))]])


if __name__ == "__main__":
    main()
