#!/usr/bin/env bash
# loadtest/scenarios/compare_fanout.sh: roomcast and the Socket.IO peer side
# by side in one run (issue 5). At each publish rate in RATES it runs
# roomcast (redis_fanout.sh: NODES roomcastd on one Redis) and then
# Socket.IO (socketio_fanout.sh: NODES Socket.IO servers with the Redis
# adapter), each on fresh processes, same N, ROOMS, SIZE, DURATION, and
# appends one JSON line per run to OUT:
#   {"system":"roomcast"|"socketio","scenario":"fanout","rate":R,"n":N,
#    "rooms":..,"nodes":..,"size":..,"duration_s":..,"exit":RC,
#    "redis_cpu_s":S,"report":{...roomcast-load's JSON, or null}}
# A system stops stepping once a step passed its limit (p99 > LIMIT_MS, or
# ok false: messages lost, or a failed/timed-out run), after one more
# step (EXTRA more); a run that printed no report at all is tried once
# more first. loadtest/plot.py draws OUT.
# Usage: [RATES="100 250 500 750 1000 1500 2000 3000"] [N=10000] [ROOMS=100]
#        [SIZE=100] [DURATION=10] [NODES=2] [LIMIT_MS=50] [EXTRA=1]
#        [SYSTEMS="roomcast socketio"] [OUT=loadtest/results/compare-DATE.jsonl]
#        [RC_ARGS=...] [SIO_LOAD_ARGS=...] compare_fanout.sh
# RC_ARGS / SIO_LOAD_ARGS: extra roomcast-load flags for one system's runs
# (word-split), e.g. RC_ARGS=--ephemeral. Everything each run starts is
# stopped by that run's script; stderr goes to OUT with .log for .jsonl.
# SPDX-License-Identifier: MIT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RATES=${RATES:-100 250 500 750 1000 1500 2000 3000}
N=${N:-10000} ROOMS=${ROOMS:-100} SIZE=${SIZE:-100}
DURATION=${DURATION:-10} NODES=${NODES:-2}
LIMIT_MS=${LIMIT_MS:-50} EXTRA=${EXTRA:-1}
SYSTEMS=${SYSTEMS:-roomcast socketio}
OUT=${OUT:-$REPO/loadtest/results/compare-$(date +%Y%m%d-%H%M%S).jsonl}
LOG=${OUT%.jsonl}.log
mkdir -p "$(dirname "$OUT")"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-compare.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# record SYSTEM RATE RC STDOUT_FILE CPU_FILE: append the line to OUT, print
# "over" when this step passed the limit.
record() {
    python3 - "$@" "$OUT" "$LIMIT_MS" "$N" "$ROOMS" "$NODES" "$SIZE" \
        "$DURATION" <<'PY'
import json, re, sys
(system, rate, rc, out, cpu, dest, limit, n, rooms, nodes, size,
 dur) = sys.argv[1:13]
report = None
for line in reversed(open(out).read().splitlines()):
    try:
        report = json.loads(line)
        break
    except ValueError:
        continue
redis_cpu = None
try:
    v = dict(re.findall(r"(\w+)=([\d.]+)", open(cpu).read()))
    redis_cpu = float(v["redis_cpu_s_after"]) - float(v["redis_cpu_s_before"])
except (OSError, KeyError, ValueError):
    pass
line = {"system": system, "scenario": "fanout", "rate": float(rate),
        "n": int(n), "rooms": int(rooms), "nodes": int(nodes),
        "size": int(size), "duration_s": float(dur), "exit": int(rc),
        "redis_cpu_s": redis_cpu, "report": report}
with open(dest, "a") as f:
    f.write(json.dumps(line, separators=(",", ":")) + "\n")
p99 = (report or {}).get("latency_us", {}).get("p99")
ok = bool(report and report.get("ok"))
lost = report and report["expected_deliveries"] - report["deliveries"]
print("%-9s rate %7s  ok %-5s p99 %9s ms  deliveries/s %10s  lost %s" % (
    system, rate, ok, "-" if p99 is None else "%.2f" % (p99 / 1e3),
    "-" if not report else "%.0f" % report["deliveries_per_s"], lost),
    file=sys.stderr)
if not ok or p99 is None or p99 > float(limit) * 1000:
    print("over")
PY
}

declare -A left=()
for s in $SYSTEMS; do
    case $s in
    roomcast | socketio) left[$s]=-1 ;; # -1: under the limit so far
    *) echo "compare_fanout.sh: unknown system '$s'" >&2; exit 1 ;;
    esac
done
echo "compare_fanout.sh: writing $OUT" >&2
for rate in $RATES; do
    any=0
    for s in $SYSTEMS; do
        [ "${left[$s]}" -ne 0 ] || continue
        any=1
        # A run that could not start (no report: a port taken, a node
        # that did not come up) is tried once more before it counts.
        for attempt in 1 2; do
            rc=0
            if [ "$s" = roomcast ]; then
                # shellcheck disable=SC2086
                NODES=$NODES N=$N ROOMS=$ROOMS RATE=$rate SIZE=$SIZE \
                    DURATION=$DURATION REDIS_CPU_OUT=$TMP/cpu \
                    "$HERE/redis_fanout.sh" ${RC_ARGS:-} \
                    >"$TMP/out" 2>>"$LOG" || rc=$?
            else
                # shellcheck disable=SC2086
                NODES=$NODES N=$N ROOMS=$ROOMS RATE=$rate SIZE=$SIZE \
                    DURATION=$DURATION REDIS_CPU_OUT=$TMP/cpu \
                    "$HERE/socketio_fanout.sh" ${SIO_LOAD_ARGS:-} \
                    >"$TMP/out" 2>>"$LOG" || rc=$?
            fi
            grep -q '^{' "$TMP/out" && break
            echo "compare_fanout.sh: $s at $rate: no report (exit $rc)" \
                "attempt $attempt" >&2
        done
        over=$(record "$s" "$rate" "$rc" "$TMP/out" "$TMP/cpu")
        rm -f "$TMP/cpu"
        if [ -n "$over" ] && [ "${left[$s]}" -lt 0 ]; then
            left[$s]=$EXTRA
        elif [ "${left[$s]}" -gt 0 ]; then
            left[$s]=$((left[$s] - 1))
        fi
    done
    [ "$any" -eq 1 ] || break
done
echo "compare_fanout.sh: wrote $OUT (python3 loadtest/plot.py $OUT)" >&2
