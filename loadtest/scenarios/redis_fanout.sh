#!/usr/bin/env bash
# loadtest/scenarios/redis_fanout.sh: NODES gateways on one private Redis,
# clients spread round-robin over them, messages published straight into
# Redis (FCALL roomcast_publish, pipelined). --gateway-pid is given for
# every node, so "gateway" RSS, CPU and deliveries_per_cpu_s are the sum
# over all nodes (redis-server is not included); REDIS_CPU_OUT=FILE also
# writes redis-server's CPU seconds (utime+stime) before and after the run
# there. CLUSTER=M: a Redis Cluster of M masters instead of one Redis
# (redis-cluster:// for the nodes and the publisher; CPU summed over them).
# Usage: [NODES=2] [N=2000] [ROOMS=20] [RATE=100] [DURATION=10] [SIZE=100]
#        [CLUSTER=M] redis_fanout.sh [roomcast-load flags...]
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib_redis.sh"
lr_cpu() {
    local pid t=0
    for pid in "$@"; do
        t=$(awk -v t="$t" '{print t + ($14+$15)/100}' "/proc/$pid/stat")
    done
    echo "$t"
}
if [ -n "${CLUSTER:-}" ]; then
    lr_start_cluster "$CLUSTER"
else
    lr_start_redis
    REDIS_PIDS=("$REDIS_PID")
fi
lr_start_nodes "${NODES:-2}"
targets=$(printf '127.0.0.1:%s,' "${NODE_PORTS[@]}")
mapfile -t gwpids < <(lt_pid_flags "${NODE_PIDS[@]}")
r0=$(lr_cpu "${REDIS_PIDS[@]}")
rc=0
"$RC_LOAD" fanout --targets "${targets%,}" --secret-file "$LT_SECRET_FILE" \
    "${gwpids[@]}" "${LT_LOAD_EXTRA[@]}" --via redis \
    --redis-url "${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}" \
    -n "${N:-2000}" --rooms "${ROOMS:-20}" --per-client 1 \
    --rate "${RATE:-100}" --duration "${DURATION:-10}" --size "${SIZE:-100}" \
    --ramp "${RAMP:-2000}" "$@" || rc=$?
r1=$(lr_cpu "${REDIS_PIDS[@]}")
if [ -n "${REDIS_CPU_OUT:-}" ]; then
    echo "redis_cpu_s_before=$r0 redis_cpu_s_after=$r1" >"$REDIS_CPU_OUT"
fi
echo "redis-server cpu: $r0 -> $r1 s" >&2
exit "$rc"
