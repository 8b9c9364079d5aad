#!/usr/bin/env bash
# loadtest/scenarios/soak.sh: a fixed fanout load for a long time, sampling
# the gateway's RSS, open fds and CPU every SAMPLE seconds ("series").
# Usage: [N=10000] [ROOMS=100] [RATE=100] [DURATION=300] [SAMPLE=5]
#        soak.sh [flags...]
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib.sh"
lt_start_gateway
lt_run soak -n "${N:-10000}" --rooms "${ROOMS:-100}" --per-client 1 \
    --rate "${RATE:-100}" --duration "${DURATION:-300}" \
    --sample-interval "${SAMPLE:-5}" --ramp "${RAMP:-2000}" "$@"
