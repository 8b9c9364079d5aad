# loadtest/scenarios/lib.sh: shared by the scenario scripts (sourced, not
# run). Starts a private roomcastd on free loopback ports with a random
# secret, runs roomcast-load against it, and stops that gateway (by the PID
# we started, nothing else) on exit, whatever happens.
# SPDX-License-Identifier: MIT
set -euo pipefail

LT_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LT_REPO=$(cd "$LT_HERE/../.." && pwd)
ROOMCASTD=${ROOMCASTD:-$LT_REPO/build/gateway/roomcastd}
RC_LOAD=${RC_LOAD:-$LT_REPO/build/loadtest/roomcast-load}
ROOMCASTD_ARGS=${ROOMCASTD_ARGS:-}   # extra gateway flags, word-split
LT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-load.XXXXXX")
GW_PID=

lt_die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

lt_cleanup() {
    lt_stop_gateway
    rm -rf "$LT_TMP"
}
trap lt_cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1, below the kernel's ephemeral range
# (ip_local_port_range) when there is room there: a port the kernel picked
# for us can be handed out again for an outgoing connection (a node's Redis
# link, a curl health check) before the gateway binds it, which a port
# outside that range cannot. The small race with another listener is
# acceptable for a benchmark.
lt_free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - <<'PY'
import random, socket
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    lo = 32768
for port in ([random.randrange(10000, lo) for _ in range(200)]
             if lo > 11000 else []) + [0]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(s.getsockname()[1])
        break
    except OSError:
        pass
    finally:
        s.close()
PY
        return
    fi
    local p
    for _ in $(seq 1 100); do
        p=$((10000 + RANDOM % 20000))
        if ! ss -ltnH "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return
        fi
    done
    lt_die "no free port found"
}

lt_start_gateway() {
    [ -x "$ROOMCASTD" ] || lt_die "no gateway at $ROOMCASTD (set ROOMCASTD)"
    [ -x "$RC_LOAD" ] || lt_die "no roomcast-load at $RC_LOAD (set RC_LOAD)"
    GW_PORT=$(lt_free_port)
    GW_ADMIN=$(lt_free_port)
    # Secret in a 0600 file, never on a command line (ps shows those).
    LT_SECRET_FILE=$LT_TMP/secret
    (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$LT_SECRET_FILE")
    # shellcheck disable=SC2086
    "$ROOMCASTD" --listen "127.0.0.1:$GW_PORT" \
        --admin-listen "127.0.0.1:$GW_ADMIN" \
        --jwt-secret-file "$LT_SECRET_FILE" \
        --rate-limit 1000000 --rate-burst 1000000 \
        --log-level warn $ROOMCASTD_ARGS \
        >"$LT_TMP/gateway.log" 2>&1 &
    GW_PID=$!
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$GW_ADMIN/healthz" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$LT_TMP/gateway.log" >&2
    lt_die "the gateway did not come up"
}

# SIGTERM drains (the gateway exits once its clients are gone); a second
# SIGTERM exits at once; SIGKILL if even that is ignored.
lt_stop_gateway() {
    [ -n "$GW_PID" ] || return 0
    local pid=$GW_PID
    GW_PID=
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    sleep 0.5
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# lt_run SCENARIO [flags...]: one run against the gateway; JSON on stdout.
lt_run() {
    local scenario=$1
    shift
    local rc=0
    "$RC_LOAD" "$scenario" --target "127.0.0.1:$GW_PORT" \
        --secret-file "$LT_SECRET_FILE" --gateway-pid "$GW_PID" "$@" || rc=$?
    if [ "$rc" -ne 0 ] && [ -s "$LT_TMP/gateway.log" ]; then
        echo "--- gateway log (tail)" >&2
        tail -n 20 "$LT_TMP/gateway.log" >&2
    fi
    return "$rc"
}
