#!/usr/bin/env bash
# loadtest/scenarios/idle.sh: memory per idle connection. N clients connect
# and join one room each; the gateway's RSS is sampled before connecting and
# after everything joined and settled: rss_per_conn_bytes in "gateway".
# With WORKERS=N set the node runs with --workers N (N > 1: a supervisor
# and N workers on one port, which needs Redis): a private redis-server is
# started for it whatever N, so that 1 and 2 workers compare on the same
# adapter, and RSS and CPU are summed over the supervisor and every worker.
# Unset: one node with the local adapter, as before. STATS_OUT=FILE
# appends the node's /stats (one JSON line a second) there while the run
# lasts (connections per worker).
# Usage: [N=10000] [ROOMS=100] [WORKERS=] [STATS_OUT=] idle.sh
#        [roomcast-load flags...]
# SPDX-License-Identifier: MIT
if [ -n "${WORKERS:-}" ]; then
    . "$(dirname "$0")/lib_redis.sh"
    lr_start_redis
    lr_start_nodes 1
    GW_PID=${NODE_PIDS[0]} GW_PORT=${NODE_PORTS[0]} GW_ADMIN=${NODE_ADMINS[0]}
else
    . "$(dirname "$0")/lib.sh"
    lt_start_gateway
fi
if [ -n "${STATS_OUT:-}" ]; then
    (while kill -0 "$GW_PID" 2>/dev/null; do
        curl -fsS "http://127.0.0.1:$GW_ADMIN/stats" 2>/dev/null &&
            echo
        sleep 1
    done) >>"$STATS_OUT" &
fi
lt_run idle -n "${N:-10000}" --rooms "${ROOMS:-100}" --per-client 1 \
    --ramp "${RAMP:-2000}" --settle "${SETTLE:-2}" "$@"
