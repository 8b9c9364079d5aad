#!/usr/bin/env bash
# loadtest/scenarios/broadcast.sh: every client in one room; messages are
# published one at a time and each is timed from publish to its last
# delivery ("broadcast".median_last_delivery_ms).
# Usage: [N=10000] [MESSAGES=5] [SIZE=100] broadcast.sh [flags...]
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib.sh"
lt_start_gateway
lt_run broadcast -n "${N:-10000}" --messages "${MESSAGES:-5}" \
    --size "${SIZE:-100}" --interval "${INTERVAL:-0.5}" \
    --ramp "${RAMP:-2000}" "$@"
