#!/usr/bin/env bash
# loadtest/scenarios/backlog.sh: "messages back up": redis_fanout.sh with
# --burst, so every publish tick writes BURST messages to one room at once
# and each member of that room has BURST frames queued on its connection at
# the same moment. RATE stays messages/s in total (RATE/BURST ticks/s).
# Usage: [NODES=1] [N=10000] [ROOMS=100] [RATE=1000] [BURST=10]
#        [DURATION=10] [SIZE=100] backlog.sh [roomcast-load flags...]
# SPDX-License-Identifier: MIT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
NODES=${NODES:-1} N=${N:-10000} ROOMS=${ROOMS:-100} RATE=${RATE:-1000} \
    exec "$HERE/redis_fanout.sh" --burst "${BURST:-10}" "$@"
