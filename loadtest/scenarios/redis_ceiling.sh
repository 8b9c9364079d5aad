#!/usr/bin/env bash
# loadtest/scenarios/redis_ceiling.sh: the durable publish ceiling of Redis
# itself, without a gateway in the path: one roomcastd loads the function
# library (and subscribes to nothing), then redis-benchmark sends FCALL
# roomcast_publish (50 connections, pipeline 16, COUNT calls, a 100-byte
# data). Prints redis-benchmark's requests/s and redis-server's CPU
# seconds (summed over every server).
# One Redis: 1,000 rooms (roomcast:{r<random>}). CLUSTER=M: M masters;
# redis-benchmark --cluster replaces {tag} with a tag of each master's
# slots, so each master gets one room (roomcast:{<tag>}).
# Usage: [CLUSTER=M] [COUNT=1000000] redis_ceiling.sh
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
lr_start_nodes 1
sleep 1
data='{"t":1,"pad":"'$(printf 'x%.0s' $(seq 1 84))'"}'
r0=$(lr_cpu "${REDIS_PIDS[@]}")
if [ -n "${CLUSTER:-}" ]; then
    redis-benchmark -p "$REDIS_PORT" --cluster -c 50 -n "${COUNT:-1000000}" \
        -P 16 -q FCALL roomcast_publish 1 'roomcast:{tag}' "$data"
else
    redis-benchmark -p "$REDIS_PORT" -c 50 -n "${COUNT:-1000000}" -P 16 \
        -r 1000 -q FCALL roomcast_publish 1 'roomcast:{r__rand_int__}' "$data"
fi | tr '\r' '\n' | grep 'requests per second'
r1=$(lr_cpu "${REDIS_PIDS[@]}")
echo "redis-server cpu: $r0 -> $r1 s"
