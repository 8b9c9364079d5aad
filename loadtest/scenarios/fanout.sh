#!/usr/bin/env bash
# loadtest/scenarios/fanout.sh: R rooms of N/R members each, a steady
# publish rate through the gateway, delivery latency and counts.
# Usage: [N=10000] [ROOMS=100] [RATE=100] [DURATION=10] [SIZE=100]
#        fanout.sh [roomcast-load flags...]
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib.sh"
lt_start_gateway
lt_run fanout -n "${N:-10000}" --rooms "${ROOMS:-100}" --per-client 1 \
    --rate "${RATE:-100}" --duration "${DURATION:-10}" --size "${SIZE:-100}" \
    --ramp "${RAMP:-2000}" "$@"
