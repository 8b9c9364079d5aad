#!/usr/bin/env bash
# loadtest/scenarios/soak_redis.sh: the long soak of issue 15. One private
# Redis and one roomcastd on it; N clients in ROOMS rooms receive RATE
# messages/s published straight into Redis (FCALL roomcast_publish), while
# a second load process churns CHURN connections/s on the same node
# (connect, join, leave, close, in rooms of their own), for DURATION
# seconds. Every SAMPLE seconds: the node's RSS and open fds and the
# delivery latency (p50, p99, max) of that window (the soak's "series"),
# and Redis's used_memory (INFO memory, sampled here with redis-cli).
#
# Writes OUT_DIR/soak.json (the soak run), OUT_DIR/churn.json (the churn
# run) and OUT_DIR/redis_memory.tsv (t_s, used_memory); loadtest/plot.py
# soak OUT_DIR draws them. Everything started here is stopped by PID.
# Usage: [N=10000] [ROOMS=100] [RATE=500] [CHURN=50] [DURATION=1800]
#        [SAMPLE=10] [OUT_DIR=loadtest/results/soak-DATE] soak_redis.sh
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib_redis.sh"

n=${N:-10000}
rooms=${ROOMS:-100}
rate=${RATE:-500}
churn=${CHURN:-50}
duration=${DURATION:-1800}
sample=${SAMPLE:-10}
out=${OUT_DIR:-$LT_REPO/loadtest/results/soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"

lr_start_redis
lr_start_nodes 1
redis_url=redis://127.0.0.1:$REDIS_PORT
target=127.0.0.1:${NODE_PORTS[0]}
CHURN_PID=
MEM_PID=

soak_cleanup() {
    local pid
    for pid in $CHURN_PID $MEM_PID; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    lr_cleanup
}
trap soak_cleanup EXIT

# Redis memory, every SAMPLE seconds, for the soak's whole length (bounded).
(
    t0=$(date +%s.%N)
    printf 't_s\tused_memory\n'
    end=$(($(date +%s) + duration + 120))
    while [ "$(date +%s)" -lt "$end" ]; do
        m=$(redis-cli -p "$REDIS_PORT" info memory 2>/dev/null |
            awk -F: '/^used_memory:/ {print $2+0}')
        printf '%s\t%s\n' "$(awk -v a="$(date +%s.%N)" -v b="$t0" \
            'BEGIN { printf "%.1f", a - b }')" "${m:-0}"
        sleep "$sample"
    done
) >"$out/redis_memory.tsv" &
MEM_PID=$!

# The soak: connect and join first (ramp), then publish for DURATION.
rc=0
"$RC_LOAD" soak --target "$target" --secret-file "$LT_SECRET_FILE" \
    --gateway-pid "${NODE_PIDS[0]}" --via redis --redis-url "$redis_url" \
    -n "$n" --rooms "$rooms" --per-client 1 --rate "$rate" \
    --duration "$duration" --sample-interval "$sample" \
    --ramp "${RAMP:-2000}" --size "${SIZE:-100}" \
    >"$out/soak.json" &
soak_pid=$!
# The churn starts once the soak's clients are in (N/RAMP s plus joins),
# and runs as long as the publishing does.
sleep $((n / ${RAMP:-2000} + 5))
CHURN_SLOTS=${CHURN_SLOTS:-$((churn > 0 ? churn : 1))}
if [ "$churn" -gt 0 ]; then
    "$RC_LOAD" churn --target "$target" --secret-file "$LT_SECRET_FILE" \
        -n "$CHURN_SLOTS" --rooms "$rooms" --room-prefix churn: \
        --ramp "$churn" --duration "$duration" \
        >"$out/churn.json" 2>"$out/churn.err" &
    CHURN_PID=$!
fi
wait "$soak_pid" || rc=$?
if [ -n "$CHURN_PID" ]; then
    wait "$CHURN_PID" || true
    CHURN_PID=
fi
kill -TERM "$MEM_PID" 2>/dev/null || true
wait "$MEM_PID" 2>/dev/null || true
MEM_PID=
grep -E 'level=(warn|error)' "$LT_TMP/node0.log" | tail -n 20 >"$out/node_warnings.log" || true
echo "soak_redis: results in $out" >&2
exit "$rc"
