# loadtest/scenarios/lib_sio.sh: shared by the Socket.IO scenario scripts
# (sourced, not run). Makes sure node and the peer's node_modules are there
# (npm ci from the committed lock, once), starts a private redis-server
# (lib_redis.sh) and NODES Socket.IO servers (loadtest/peers/socketio) on
# it, each on a port the kernel picks, and stops all of them by the PIDs we
# started on exit (lr_cleanup: the servers exit on SIGTERM).
# SPDX-License-Identifier: MIT
. "$(dirname "${BASH_SOURCE[0]}")/lib_redis.sh"

SIO_DIR=$LT_REPO/loadtest/peers/socketio
NODE=${NODE:-node}
NPM=${NPM:-npm}
SIO_ARGS=${SIO_ARGS:-}   # extra server.js flags, word-split

# node and npm, from Debian if missing (idempotent; needs root or sudo).
ls_ensure_node() {
    command -v "$NODE" >/dev/null 2>&1 && command -v "$NPM" >/dev/null 2>&1 &&
        return 0
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "$(basename "$0"): installing nodejs and npm (apt-get)" >&2
    $sudo apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            nodejs npm >&2 || lt_die "could not install nodejs and npm"
}

# node_modules from the lock, once: a later run finds them (and npm's own
# record of the install no older than the lock) and skips this.
ls_ensure_modules() {
    [ -d "$SIO_DIR/node_modules/socket.io" ] &&
        [ -d "$SIO_DIR/node_modules/@socket.io/redis-adapter" ] &&
        [ -d "$SIO_DIR/node_modules/redis" ] &&
        ! [ "$SIO_DIR/package-lock.json" -nt \
            "$SIO_DIR/node_modules/.package-lock.json" ] && return 0
    echo "$(basename "$0"): npm ci in $SIO_DIR" >&2
    if [ -f "$SIO_DIR/package-lock.json" ]; then
        (cd "$SIO_DIR" && "$NPM" ci --no-audit --no-fund >&2)
    else
        (cd "$SIO_DIR" && "$NPM" install --no-audit --no-fund >&2)
    fi || lt_die "npm could not install the Socket.IO peer"
}

# ls_start_sio_nodes K: K Socket.IO servers on the Redis above; fills
# NODE_PIDS and NODE_PORTS (as lr_start_nodes does for roomcastd).
ls_start_sio_nodes() {
    local k port log
    [ -x "$RC_LOAD" ] || lt_die "no roomcast-load at $RC_LOAD (set RC_LOAD)"
    ls_ensure_node
    ls_ensure_modules
    LT_SECRET_FILE=$LT_TMP/secret
    (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$LT_SECRET_FILE")
    for k in $(seq 0 $(($1 - 1))); do
        # shellcheck disable=SC2086
        "$NODE" "$SIO_DIR/server.js" --port 0 \
            --redis-url "redis://127.0.0.1:$REDIS_PORT" \
            --jwt-secret-file "$LT_SECRET_FILE" $SIO_ARGS \
            >"$LT_TMP/sio$k.out" 2>"$LT_TMP/sio$k.log" &
        NODE_PIDS+=("$!")
    done
    for k in $(seq 0 $(($1 - 1))); do
        log=$LT_TMP/sio$k.out
        port=
        for _ in $(seq 1 200); do
            port=$(awk '$1 == "ready" {print $2; exit}' "$log" 2>/dev/null)
            [ -n "$port" ] && break
            kill -0 "${NODE_PIDS[$k]}" 2>/dev/null || break
            sleep 0.05
        done
        [ -n "$port" ] || { cat "$LT_TMP/sio$k.log" >&2
                            lt_die "Socket.IO node $k did not come up"; }
        NODE_PORTS+=("$port")
    done
}

# ls_run SCENARIO [flags...]: roomcast-load --proto socketio against every
# node (clients round-robin), sampling all of them; JSON on stdout.
ls_run() {
    local scenario=$1 pid rc=0 targets
    shift
    local gwpids=()
    for pid in "${NODE_PIDS[@]}"; do gwpids+=(--gateway-pid "$pid"); done
    targets=$(printf '127.0.0.1:%s,' "${NODE_PORTS[@]}")
    "$RC_LOAD" "$scenario" --proto socketio --targets "${targets%,}" \
        --secret-file "$LT_SECRET_FILE" "${gwpids[@]}" --via redis \
        --redis-url "redis://127.0.0.1:$REDIS_PORT" "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        for log in "$LT_TMP"/sio*.log; do
            [ -s "$log" ] || continue
            echo "--- $(basename "$log") (tail)" >&2
            tail -n 20 "$log" >&2
        done
    fi
    return "$rc"
}
