#!/usr/bin/env bash
# Tests of the roomcast JS client: npm ci, then node --test against real
# roomcastd nodes (ROOMCASTD, default build/gateway/roomcastd) and a real
# redis-server (lb.test.mjs also Debian's haproxy and nginx); then the
# demo's browser test in Debian's headless chromium. Never downloads a browser.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/../.." && pwd)
export ROOMCASTD=$(realpath -m "${ROOMCASTD:-$repo/build/gateway/roomcastd}")
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
[ -x "$ROOMCASTD" ] || { echo "run.sh: no roomcastd at $ROOMCASTD (set ROOMCASTD)" >&2; exit 1; }
cd "$here"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
timeout 600 node --test --test-concurrency=1 --test-timeout=120000 test/client.test.mjs
# Debian's haproxy and nginx in front of two nodes (deploy/ rendered, not copied)
timeout 300 node --test --test-concurrency=1 --test-timeout=180000 test/lb.test.mjs
# scripts/deps installs Debian's chromium: a missing browser fails here.
timeout 300 node --test --test-timeout=120000 test/browser.mjs
