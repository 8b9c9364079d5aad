#!/usr/bin/env bash
# loadtest/scenarios/calibrate.sh: the physical ceiling with no gateway: N
# loopback TCP connections, one send() per frame per socket. Pass
# --broadcast for the time to write one frame to all N sockets, or
# --rate/--rooms/--duration to write as many frames as that fanout delivers.
# Usage: [N=10000] [SIZE=100] calibrate.sh [--broadcast] [flags...]
# SPDX-License-Identifier: MIT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RC_LOAD=${RC_LOAD:-$REPO/build/loadtest/roomcast-load}
[ -x "$RC_LOAD" ] || { echo "no roomcast-load at $RC_LOAD" >&2; exit 1; }
exec "$RC_LOAD" calibrate -n "${N:-10000}" --size "${SIZE:-100}" "$@"
