#!/usr/bin/env bash
# loadtest/scenarios/idle.sh: memory per idle connection. N clients connect
# and join one room each; the gateway's RSS is sampled before connecting and
# after everything joined and settled: rss_per_conn_bytes in "gateway".
# Usage: [N=10000] [ROOMS=100] idle.sh [roomcast-load flags...]
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib.sh"
lt_start_gateway
lt_run idle -n "${N:-10000}" --rooms "${ROOMS:-100}" --per-client 1 \
    --ramp "${RAMP:-2000}" --settle "${SETTLE:-2}" "$@"
