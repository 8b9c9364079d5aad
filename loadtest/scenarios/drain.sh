#!/usr/bin/env bash
# loadtest/scenarios/drain.sh: two gateways A and B on one private Redis;
# N clients on A in R rooms; a Redis publisher at RATE to every room; after
# TERM_AFTER s of publishing, roomcast-load sends SIGTERM to A and every
# client told to reconnect waits after_ms, reconnects to B with resume=, and
# its per-room seq check goes on across both connections. Reports A's
# SIGTERM-to-exit time, resumes per 0.5 s on B, lost and duplicated.
# Usage: [N=19000] [ROOMS=100] [RATE=100] [WINDOW_MS=10000] [DURATION=20]
#        [TERM_AFTER=2] [RAMP=4000] [LOAD_WORKERS=N/9500] [SRC_ADDRS=4]
#        drain.sh [roomcast-load flags...]
# LOAD_WORKERS is roomcast-load's --workers (client processes); WORKERS,
# as in every lib.sh script, is the gateways' --workers.
# SPDX-License-Identifier: MIT
. "$(dirname "$0")/lib_redis.sh"
N=${N:-19000}
ROOMCASTD_ARGS="--drain-window-ms ${WINDOW_MS:-10000} ${ROOMCASTD_ARGS:-}"
lr_start_redis
lr_start_nodes 2
rc=0
"$RC_LOAD" drain --target "127.0.0.1:${NODE_PORTS[0]}" \
    --resume-target "127.0.0.1:${NODE_PORTS[1]}" \
    --term-pid "${NODE_PIDS[0]}" --gateway-pid "${NODE_PIDS[1]}" \
    --secret-file "$LT_SECRET_FILE" --via redis \
    --redis-url "redis://127.0.0.1:$REDIS_PORT" \
    -n "$N" --rooms "${ROOMS:-100}" --per-client 1 \
    --workers "${LOAD_WORKERS:-$(( (N + 9499) / 9500 ))}" \
    --src-addrs "${SRC_ADDRS:-4}" \
    --rate "${RATE:-100}" --duration "${DURATION:-20}" \
    --term-after "${TERM_AFTER:-2}" --drain 10 \
    --ramp "${RAMP:-4000}" "$@" || rc=$?
echo "--- node B resume metrics" >&2
curl -fsS "http://127.0.0.1:${NODE_ADMINS[1]}/metrics" 2>/dev/null |
    grep -E '^roomcast_resume' >&2 || true
a_rc=0
wait "${NODE_PIDS[0]}" 2>/dev/null || a_rc=$?
echo "node A exit status: $a_rc" >&2
NODE_PIDS[0]=
exit "$rc"
