#!/usr/bin/env bash
# loadtest/scenarios/socketio_fanout.sh: redis_fanout.sh for the Socket.IO
# peer (loadtest/peers/socketio): NODES Socket.IO 4 servers with
# @socket.io/redis-adapter on one private Redis, clients round-robin over
# them, messages PUBLISHed straight into Redis as the adapter writes them
# (roomcast-load --proto socketio --via redis). "gateway" sums every node.
# Usage: [NODES=2] [N=2000] [ROOMS=20] [RATE=100] [DURATION=10] [SIZE=100]
#        socketio_fanout.sh [roomcast-load flags...]
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib_sio.sh"
lr_cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
lr_start_redis
ls_start_sio_nodes "${NODES:-2}"
r0=$(lr_cpu "$REDIS_PID")
rc=0
ls_run fanout -n "${N:-2000}" --rooms "${ROOMS:-20}" --per-client 1 \
    --rate "${RATE:-100}" --duration "${DURATION:-10}" --size "${SIZE:-100}" \
    --ramp "${RAMP:-2000}" "$@" || rc=$?
r1=$(lr_cpu "$REDIS_PID")
if [ -n "${REDIS_CPU_OUT:-}" ]; then
    echo "redis_cpu_s_before=$r0 redis_cpu_s_after=$r1" >"$REDIS_CPU_OUT"
fi
echo "redis-server cpu: $r0 -> $r1 s" >&2
exit "$rc"
