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
# WORKERS=N: every gateway gets --workers N (a supervisor and N worker
# processes on one port; N > 1 needs Redis, see idle.sh), its readiness is
# awaited on /readyz, and the load tool samples the supervisor and every
# worker (--gateway-pid each). Unset: the gateway flags stay as before.
WORKERS=${WORKERS:-}
# TLS=1: every gateway serves wss with a fresh self-signed certificate
# (TLS_KEY: ec, P-256, default; or rsa, 2048 bits) and the load tool
# connects with --tls.
TLS=${TLS:-}
TLS_KEY=${TLS_KEY:-ec}
LT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-load.XXXXXX")
GW_PID=
LT_GW_EXTRA=()  # gateway flags from WORKERS and TLS
LT_LOAD_EXTRA=() # roomcast-load flags from TLS

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

# Fills LT_GW_EXTRA and LT_LOAD_EXTRA from WORKERS and TLS (once).
lt_gw_extra() {
    [ "${#LT_GW_EXTRA[@]}" -eq 0 ] || return 0
    LT_GW_EXTRA=(--log-level warn) # a harmless first element: "done"
    if [ -n "$WORKERS" ]; then
        LT_GW_EXTRA+=(--workers "$WORKERS")
    fi
    if [ -n "$TLS" ]; then
        case $TLS_KEY in
        rsa) set -- -newkey rsa:2048 ;;
        *) set -- -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 ;;
        esac
        openssl req -x509 "$@" -nodes -days 2 -subj /CN=127.0.0.1 \
            -keyout "$LT_TMP/tls.key" -out "$LT_TMP/tls.crt" 2>/dev/null ||
            lt_die "openssl could not make a certificate"
        chmod 600 "$LT_TMP/tls.key"
        LT_GW_EXTRA+=(--tls-cert "$LT_TMP/tls.crt" --tls-key "$LT_TMP/tls.key")
        LT_LOAD_EXTRA=(--tls)
    fi
}

# lt_wait_ready ADMIN PID: with WORKERS, wait (10 s at most) until the
# supervisor says every worker is ready, so that pgrep finds them all.
lt_wait_ready() {
    [ -n "$WORKERS" ] || return 0
    for _ in $(seq 1 200); do
        curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    lt_die "the gateway's workers did not become ready"
}

# lt_pid_flags PID...: "--gateway-pid P" for each PID and, with WORKERS,
# for each of its children (the workers), one word per line.
lt_pid_flags() {
    local p c
    for p in "$@"; do
        printf -- '--gateway-pid\n%s\n' "$p"
        [ -n "$WORKERS" ] || continue
        for c in $(pgrep -P "$p"); do
            printf -- '--gateway-pid\n%s\n' "$c"
        done
    done
}

lt_start_gateway() {
    lt_gw_extra
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
        "${LT_GW_EXTRA[@]}" $ROOMCASTD_ARGS \
        >"$LT_TMP/gateway.log" 2>&1 &
    GW_PID=$!
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$GW_ADMIN/healthz" >/dev/null 2>&1; then
            lt_wait_ready "$GW_ADMIN" "$GW_PID"
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
    local pids
    mapfile -t pids < <(lt_pid_flags "$GW_PID")
    "$RC_LOAD" "$scenario" --target "127.0.0.1:$GW_PORT" \
        --secret-file "$LT_SECRET_FILE" "${pids[@]}" \
        "${LT_LOAD_EXTRA[@]}" "$@" || rc=$?
    if [ "$rc" -ne 0 ] && [ -s "$LT_TMP/gateway.log" ]; then
        echo "--- gateway log (tail)" >&2
        tail -n 20 "$LT_TMP/gateway.log" >&2
    fi
    return "$rc"
}
