#!/usr/bin/env bash
# loadtest/scenarios/churn.sh: N client slots each looping connect -> join
# -> leave -> close for DURATION seconds, new connections at RAMP/s; cycle
# counts, and the gateway's RSS and fds before and after (leaks show there).
# Usage: [N=1000] [RAMP=1000] [DURATION=10] churn.sh [flags...]
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib.sh"
lt_start_gateway
lt_run churn -n "${N:-1000}" --rooms "${ROOMS:-100}" \
    --per-client "${PER_CLIENT:-1}" --ramp "${RAMP:-1000}" \
    --duration "${DURATION:-10}" --settle "${SETTLE:-1}" "$@"
