#!/usr/bin/env bash
# loadtest/scenarios/compare_idle.sh: memory per idle connection, roomcast
# and the Socket.IO peer in one run (issue 5). roomcast: idle.sh (one
# roomcastd, local adapter: an idle client costs the same with Redis);
# Socket.IO: socketio_idle.sh with SIO_NODES (default 1) servers and the
# Redis adapter. Both on fresh processes, N clients in ROOMS rooms, one JSON
# line each appended to OUT:
#   {"system":..,"scenario":"idle","n":N,"rooms":..,"nodes":..,"exit":RC,
#    "report":{...}}   (gateway.rss_per_conn_bytes is the number)
# Usage: [N=10000] [ROOMS=100] [SETTLE=2] [SIO_NODES=1]
#        [SYSTEMS="roomcast socketio"]
#        [OUT=loadtest/results/compare-idle-DATE.jsonl] compare_idle.sh
# SPDX-License-Identifier: MIT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${N:-10000} ROOMS=${ROOMS:-100} SETTLE=${SETTLE:-2}
SIO_NODES=${SIO_NODES:-1}
SYSTEMS=${SYSTEMS:-roomcast socketio}
OUT=${OUT:-$REPO/loadtest/results/compare-idle-$(date +%Y%m%d-%H%M%S).jsonl}
LOG=${OUT%.jsonl}.log
mkdir -p "$(dirname "$OUT")"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-compare.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

echo "compare_idle.sh: writing $OUT" >&2
for s in $SYSTEMS; do
    rc=0
    case $s in
    roomcast)
        nodes=1
        N=$N ROOMS=$ROOMS SETTLE=$SETTLE "$HERE/idle.sh" \
            >"$TMP/out" 2>>"$LOG" || rc=$?
        ;;
    socketio)
        nodes=$SIO_NODES
        NODES=$SIO_NODES N=$N ROOMS=$ROOMS SETTLE=$SETTLE \
            "$HERE/socketio_idle.sh" >"$TMP/out" 2>>"$LOG" || rc=$?
        ;;
    *) echo "compare_idle.sh: unknown system '$s'" >&2; exit 1 ;;
    esac
    python3 - "$s" "$rc" "$TMP/out" "$OUT" "$N" "$ROOMS" "$nodes" <<'PY'
import json, sys
system, rc, out, dest, n, rooms, nodes = sys.argv[1:8]
report = None
for line in reversed(open(out).read().splitlines()):
    try:
        report = json.loads(line)
        break
    except ValueError:
        continue
with open(dest, "a") as f:
    f.write(json.dumps({"system": system, "scenario": "idle", "n": int(n),
                        "rooms": int(rooms), "nodes": int(nodes),
                        "exit": int(rc), "report": report},
                       separators=(",", ":")) + "\n")
g = (report or {}).get("gateway", {})
print("%-9s n %6s  ok %-5s rss/conn %s bytes  rss %s MiB" % (
    system, n, bool(report and report.get("ok")),
    "%.0f" % g["rss_per_conn_bytes"] if "rss_per_conn_bytes" in g else "-",
    "%.1f" % (g["measure_start"]["rss_bytes"] / 2**20)
    if "measure_start" in g else "-"), file=sys.stderr)
PY
done
echo "compare_idle.sh: wrote $OUT" >&2
