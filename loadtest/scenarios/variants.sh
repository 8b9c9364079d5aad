#!/usr/bin/env bash
# loadtest/scenarios/variants.sh: one fan-out through Redis
# (redis_fanout.sh) under several gateway variants, back to back. For each
# of REPEAT rounds and each rate in RATES, every variant of VARIANTS runs
# once, in order, on fresh processes, so the variants of one round are a
# few seconds apart. A variant is a set of environment assignments for
# redis_fanout.sh (VARIANTS separates variants with ';'), e.g.
#   VARIANTS="WORKERS=1;WORKERS=2"        1 worker against 2
#   VARIANTS="WORKERS=1;WORKERS=1 TLS=1"  ws against wss
# One JSON line per run on stdout:
#   {"round":i,"rate":R,"variant":"WORKERS=2","deliveries_per_cpu_s":..,
#    "gateway_cpu_s":..,"redis_cpu_s":..,"p99_us":..,"ok":..,"report":{..}}
# and the median deliveries per gateway CPU-second and p99 per (rate,
# variant) on stderr at the end.
# Usage: [VARIANTS="WORKERS=1;WORKERS=2"] [RATES="500 1000"] [REPEAT=3]
#        [N=10000] [ROOMS=100] [DURATION=10] [NODES=1] variants.sh
#        [roomcast-load flags...]
# SPDX-License-Identifier: MIT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VARIANTS=${VARIANTS:-WORKERS=1;WORKERS=2}
RATES=${RATES:-500 1000} REPEAT=${REPEAT:-3}
N=${N:-10000} ROOMS=${ROOMS:-100} DURATION=${DURATION:-10} NODES=${NODES:-1}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-variants.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
IFS=';' read -r -a vlist <<<"$VARIANTS"
for i in $(seq 1 "$REPEAT"); do
    for r in $RATES; do
        for v in "${vlist[@]}"; do
            rc=0
            # shellcheck disable=SC2086
            env $v NODES="$NODES" N="$N" ROOMS="$ROOMS" RATE="$r" \
                DURATION="$DURATION" REDIS_CPU_OUT="$TMP/cpu" \
                "$HERE/redis_fanout.sh" "$@" >"$TMP/fan.json" \
                2>"$TMP/fan.log" || rc=$?
            python3 - "$i" "$r" "$v" "$rc" "$TMP/fan.json" "$TMP/cpu" <<'PY'
import json, re, sys
i, r, v, rc, fan, cpu = sys.argv[1:]
f = {}
for line in reversed(open(fan).read().splitlines()):
    try:
        f = json.loads(line)
        break
    except ValueError:
        continue
rcpu = None
try:
    d = dict(re.findall(r"(\w+)=([\d.]+)", open(cpu).read()))
    rcpu = float(d["redis_cpu_s_after"]) - float(d["redis_cpu_s_before"])
except (OSError, KeyError, ValueError):
    pass
g = f.get("gateway", {})
print(json.dumps({"round": int(i), "rate": float(r), "variant": v,
                  "exit": int(rc),
                  "deliveries_per_cpu_s": g.get("deliveries_per_cpu_s"),
                  "gateway_cpu_s": g.get("cpu_measure_s"),
                  "redis_cpu_s": rcpu,
                  "p99_us": f.get("latency_us", {}).get("p99"),
                  "ok": bool(f.get("ok")), "report": f or None},
                 separators=(",", ":")), flush=True)
PY
            rm -f "$TMP/cpu"
        done
    done
done | tee "$TMP/all.jsonl"
python3 - "$TMP/all.jsonl" <<'EOF' >&2
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = []
for r in rows:
    if (r["rate"], r["variant"]) not in keys:
        keys.append((r["rate"], r["variant"]))
for rate, v in keys:
    rs = [r for r in rows if r["rate"] == rate and r["variant"] == v]
    d = [r["deliveries_per_cpu_s"] for r in rs if r["deliveries_per_cpu_s"]]
    p = [r["p99_us"] for r in rs if r["p99_us"] is not None]
    print(f"rate {rate:.0f} {v}: median deliveries/CPU-s "
          f"{statistics.median(d) if d else float('nan'):.0f} of "
          f"{[round(x) for x in d]}, median p99 "
          f"{statistics.median(p) / 1e3 if p else float('nan'):.2f} ms, "
          f"ok {sum(r['ok'] for r in rs)}/{len(rs)}")
EOF
