#!/usr/bin/env bash
# loadtest/scenarios/efficiency.sh: the fanout efficiency ratio, repeated.
# For each of REPEAT rounds and each rate in RATES, the ceiling in the
# fanout's shape (calibrate --paced) and then the fanout itself through
# Redis on NODES nodes, back to back, so each ratio compares two
# measurements taken a few seconds apart. One JSON line per pair:
#   {"round":i,"rate":R,"ceiling":send()s per CPU-s,
#    "deliveries_per_cpu_s":..,"ratio":..,"p99_us":..,"ok":..}
# and the median ratio per rate on stderr at the end.
# Usage: [RATES="500 1000"] [REPEAT=3] [N=10000] [ROOMS=100] [DURATION=10]
#        [NODES=2] efficiency.sh
# SPDX-License-Identifier: MIT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RATES=${RATES:-500 1000} REPEAT=${REPEAT:-3}
N=${N:-10000} ROOMS=${ROOMS:-100} DURATION=${DURATION:-10} NODES=${NODES:-2}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-eff.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
for i in $(seq 1 "$REPEAT"); do
    for r in $RATES; do
        N=$N "$HERE/calibrate.sh" --paced --rooms "$ROOMS" --rate "$r" \
            --duration "$DURATION" >"$TMP/cal.json" 2>/dev/null || true
        NODES=$NODES N=$N ROOMS=$ROOMS RATE=$r DURATION=$DURATION \
            "$HERE/redis_fanout.sh" >"$TMP/fan.json" 2>/dev/null || true
        python3 - "$i" "$r" "$TMP/cal.json" "$TMP/fan.json" <<'EOF'
import json, sys
i, r, cal, fan = sys.argv[1:]
def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return {}
c, f = load(cal), load(fan)
ceil = c.get("sends_per_cpu_s")
dpc = f.get("gateway", {}).get("deliveries_per_cpu_s")
print(json.dumps({"round": int(i), "rate": float(r), "ceiling": ceil,
                  "deliveries_per_cpu_s": dpc,
                  "ratio": dpc / ceil if dpc and ceil else None,
                  "p99_us": f.get("latency_us", {}).get("p99"),
                  "ok": bool(f.get("ok") and c.get("ok"))}), flush=True)
EOF
    done
done | tee "$TMP/all.jsonl"
python3 - "$TMP/all.jsonl" <<'EOF' >&2
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for rate in sorted({r["rate"] for r in rows}):
    rs = [r["ratio"] for r in rows if r["rate"] == rate and r["ratio"]]
    if rs:
        print(f"rate {rate:.0f}: median ratio {statistics.median(rs):.2f} "
              f"over {len(rs)} (min {min(rs):.2f}, max {max(rs):.2f})")
    else:
        print(f"rate {rate:.0f}: no ratio (a run failed, or the nodes used "
              f"under one clock tick of CPU)")
EOF
