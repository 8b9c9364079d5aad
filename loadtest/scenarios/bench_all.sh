#!/usr/bin/env bash
# loadtest/scenarios/bench_all.sh: every benchmark of docs/BENCHMARKS.md in
# one run, on this machine, one after the other (never two at once: they
# would measure each other). Each result is one JSON file in OUT_DIR;
# compare_*.sh write JSON lines there too. loadtest/summary.py turns the
# directory into the tables of docs/BENCHMARKS.md, loadtest/plot.py draws
# the fanout comparison.
# Usage: [OUT_DIR=loadtest/results/bench-DATE] [RATES="..."] [SOAK_S=120]
#        [QUICK=1] bench_all.sh
# QUICK=1 runs every step small and short (a check of the pipeline, not a
# measurement). Takes about 20 minutes in full.
# SPDX-License-Identifier: MIT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT_DIR=${OUT_DIR:-$REPO/loadtest/results/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT_DIR"
if [ -n "${QUICK:-}" ]; then
    BIG=2000 MID=1000 SOAK_S=${SOAK_S:-10} DUR=3
    RATES=${RATES:-"100 500"}
else
    BIG=19000 MID=10000 SOAK_S=${SOAK_S:-120} DUR=10
    RATES=${RATES:-"250 500 750 1000 1250 1500 2000"}
fi
step() { # step NAME CMD...: run one benchmark, its JSON to NAME.json
    local name=$1
    shift
    echo "bench_all: $name" >&2
    "$@" >"$OUT_DIR/$name.json" 2>"$OUT_DIR/$name.log" ||
        echo "bench_all: $name exited $?" >&2
}
{
    date -u +%FT%TZ
    uname -srm
    nproc
    grep -m1 'model name' /proc/cpuinfo || true
    free -b | awk '/Mem:/{print "mem_bytes " $2}'
    git -C "$REPO" rev-parse --short HEAD
} >"$OUT_DIR/machine.txt"

# The ceiling: one process, one send() per 100-byte frame, the fanout's
# socket count, streamed round-robin; then the time to write one frame to
# every socket.
step calibrate env N="$MID" "$HERE/calibrate.sh" --rooms 100 --rate 1000 \
    --duration "$DUR"
step calibrate_broadcast env N="$MID" "$HERE/calibrate.sh" --broadcast \
    --messages 5
step broadcast env N="$MID" MESSAGES=5 "$HERE/broadcast.sh"
# Connections and memory: one process holding BIG clients, then the idle
# comparison with Socket.IO.
step idle_big env N="$BIG" RAMP=10000 "$HERE/idle.sh" --workers 2
N=$MID OUT="$OUT_DIR/compare-idle.jsonl" "$HERE/compare_idle.sh" ||
    echo "bench_all: compare_idle exited $?" >&2
# The ceiling in the fanout's own shape at each rate: bursts of one send()
# per member, paced, readers asleep between them.
for r in $RATES; do
    step "calibrate_paced_$r" env N="$MID" "$HERE/calibrate.sh" --paced \
        --rooms 100 --rate "$r" --duration "$DUR"
done
# Fanout through Redis, two nodes each, rate stepped.
N=$MID DURATION=$DUR RATES=$RATES OUT="$OUT_DIR/compare-fanout.jsonl" \
    "$HERE/compare_fanout.sh" || echo "bench_all: compare_fanout exited $?" >&2
# Backlog: ten frames queued per client at once, one node.
step backlog env N="$MID" RATE=2000 BURST=10 DURATION="$DUR" \
    "$HERE/backlog.sh"
step churn env N=1000 DURATION="$DUR" "$HERE/churn.sh"
step soak env N="$MID" RATE=100 DURATION="$SOAK_S" SAMPLE=5 "$HERE/soak.sh"
echo "bench_all: results in $OUT_DIR" >&2
