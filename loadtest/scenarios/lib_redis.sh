# loadtest/scenarios/lib_redis.sh: shared by the multi-node scenario scripts
# (sourced, not run). Starts a private redis-server and NODES roomcastd
# nodes sharing it (same JWT and resume secrets, each on free loopback
# ports), and stops every one of them by the PID we started on exit.
# lr_start_cluster M starts a Redis Cluster of M masters (no replicas)
# instead: REDIS_URL is then redis-cluster://..., REDIS_PIDS every server.
# SPDX-License-Identifier: MIT
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_PID=
REDIS_PIDS=()
REDIS_URL=
NODE_PIDS=()
NODE_PORTS=()
NODE_ADMINS=()

lr_cleanup() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${NODE_PIDS[@]}"; do
        [ -n "$pid" ] || continue
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for pid in $REDIS_PID "${REDIS_PIDS[@]}"; do
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$LT_TMP"
}
trap lr_cleanup EXIT

lr_start_redis() {
    REDIS_PORT=$(lt_free_port)
    mkdir -p "$LT_TMP/redis"
    "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$LT_TMP/redis" >"$LT_TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 1 100); do
        if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
            return 0
        fi
        sleep 0.05
    done
    cat "$LT_TMP/redis.log" >&2
    lt_die "redis-server did not come up"
}

# lr_start_cluster M: M masters with cluster-enabled (each port's bus port,
# +10000, free too), created with redis-cli --cluster create (no replicas),
# waited for (cluster_state:ok on every node).
lr_start_cluster() {
    local m=$1 k port ports=() addrs=()
    for k in $(seq 1 "$m"); do
        while :; do
            port=$((20000 + RANDOM % 12000))
            if ! ss -ltnH "( sport = :$port or sport = :$((port + 10000)) )"                 2>/dev/null | grep -q .; then
                break
            fi
        done
        mkdir -p "$LT_TMP/redis-$port"
        "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save ''             --appendonly no --dir "$LT_TMP/redis-$port"             --cluster-enabled yes --cluster-config-file nodes.conf             --cluster-node-timeout 2000             >"$LT_TMP/redis-$port.log" 2>&1 &
        REDIS_PIDS+=("$!")
        ports+=("$port")
        addrs+=("127.0.0.1:$port")
    done
    for port in "${ports[@]}"; do
        for _ in $(seq 1 100); do
            redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
            sleep 0.05
        done
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0         --cluster-yes >"$LT_TMP/cluster-create.log" 2>&1 ||
        { cat "$LT_TMP/cluster-create.log" >&2; lt_die "cluster create failed"; }
    for port in "${ports[@]}"; do
        for _ in $(seq 1 200); do
            redis-cli -p "$port" cluster info 2>/dev/null |
                grep -q 'cluster_state:ok' && break
            sleep 0.05
        done
    done
    REDIS_PORT=${ports[0]}
    REDIS_URL="redis-cluster://$(IFS=,; echo "${addrs[*]}")"
}

# lr_start_nodes K: K gateways on the Redis above.
lr_start_nodes() {
    local k port admin
    lt_gw_extra
    LT_SECRET_FILE=$LT_TMP/secret
    (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$LT_SECRET_FILE"
     od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$LT_TMP/resume_secret")
    for k in $(seq 0 $(($1 - 1))); do
        port=$(lt_free_port)
        admin=$(lt_free_port)
        # shellcheck disable=SC2086
        "$ROOMCASTD" --listen "127.0.0.1:$port" \
            --admin-listen "127.0.0.1:$admin" \
            --jwt-secret-file "$LT_SECRET_FILE" \
            --redis-url "${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}" \
            --node-id "n$k" \
            --resume-secret-file "$LT_TMP/resume_secret" \
            --rate-limit 1000000 --rate-burst 1000000 \
            "${LT_GW_EXTRA[@]}" $ROOMCASTD_ARGS \
            >"$LT_TMP/node$k.log" 2>&1 &
        NODE_PIDS+=("$!")
        NODE_PORTS+=("$port")
        NODE_ADMINS+=("$admin")
    done
    for k in $(seq 0 $(($1 - 1))); do
        for _ in $(seq 1 100); do
            curl -fsS "http://127.0.0.1:${NODE_ADMINS[$k]}/healthz" \
                >/dev/null 2>&1 && break
            kill -0 "${NODE_PIDS[$k]}" 2>/dev/null || break
            sleep 0.05
        done
        curl -fsS "http://127.0.0.1:${NODE_ADMINS[$k]}/healthz" >/dev/null \
            2>&1 || { cat "$LT_TMP/node$k.log" >&2; lt_die "node $k did not come up"; }
        lt_wait_ready "${NODE_ADMINS[$k]}" "${NODE_PIDS[$k]}"
    done
}
