#!/usr/bin/env bash
# loadtest/scenarios/socketio_idle.sh: idle.sh for the Socket.IO peer:
# memory per idle connection. N clients connect and join one room each;
# rss_per_conn_bytes in "gateway" is (RSS after settling - RSS before
# connecting) / established, summed over the NODES Socket.IO processes
# (default 1, like idle.sh's single roomcastd; the Redis adapter is on, as
# it must be for more than one node).
# Usage: [NODES=1] [N=10000] [ROOMS=100] [SETTLE=2] socketio_idle.sh [flags...]
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib_sio.sh"
lr_start_redis
ls_start_sio_nodes "${NODES:-1}"
ls_run idle -n "${N:-10000}" --rooms "${ROOMS:-100}" --per-client 1 \
    --ramp "${RAMP:-2000}" --settle "${SETTLE:-2}" "$@"
