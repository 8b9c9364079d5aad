# The cost of redis_wait_replicas for docs/BENCHMARKS.md: one roomcastd on
# a real redis-server with one real replica (loopback), a WebSocket client
# that publishes durable messages through the node, with
# redis_wait_replicas 0 and then 1 (WAIT 1 after each FCALL), interleaved
# in each round on fresh nodes. Measured per variant: the publish -> ok
# latency one at a time (p50, p99), and publishes/s with 64 in flight.
#
#   /usr/bin/python3 tests/integration/bench_wait.py [--rounds 3]
# SPDX-License-Identifier: MIT
import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Node, RedisServer, connect, ok, recv_json,  # noqa: E402
                     redis_flags, send_json, wait_until)

ALL = {"rooms": ["*"], "pub": ["*"]}
SEQ = 500       # publishes one at a time
WINDOWED = 4000  # publishes with WINDOW in flight
WINDOW = 64


def wait_calls(master):
    """WAITs Redis has run (INFO commandstats)."""
    for line in master.call("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_wait:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


async def measure(node):
    ws = await connect(node, node.mint("bench", **ALL))
    await ok(ws, "join", room="w")
    lat = []
    for i in range(SEQ):
        t0 = time.perf_counter()
        await ok(ws, "publish", room="w", data=i)
        lat.append((time.perf_counter() - t0) * 1000)
        # our own message comes back as a msg: read it before the next
        while (await recv_json(ws))["op"] != "msg":
            pass
    # WINDOW requests in flight; replies and msgs interleave
    sent = acked = 0
    t0 = time.perf_counter()
    while acked < WINDOWED:
        while sent < WINDOWED and sent - acked < WINDOW:
            sent += 1
            await send_json(ws, {"op": "publish", "id": 1000000 + sent,
                                 "room": "w", "data": sent})
        f = await recv_json(ws, 10)
        if f["op"] == "ok":
            acked += 1
        elif f["op"] == "error":
            raise AssertionError(f)
    rate = WINDOWED / (time.perf_counter() - t0)
    await ws.close()
    return pct(lat, 0.5), pct(lat, 0.99), rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_wait.")
    master = RedisServer(os.path.join(tmp, "master"), name="master").start()
    rep = RedisServer(os.path.join(tmp, "replica"), name="replica",
                      extra=["--replicaof",
                             f"127.0.0.1 {master.port}"]).start()
    res = {0: [], 1: []}
    try:
        wait_until(lambda: b"state=online" in
                   master.call("INFO", "replication"), 15,
                   what="the replica online")
        for r in range(args.rounds):
            for w in (0, 1):
                n = Node(os.path.join(tmp, f"n{r}{w}"), name=f"n{r}{w}",
                         flags=redis_flags(master, redis_wait_replicas=w,
                                           rate_limit=100000,
                                           rate_burst=100000))
                n.start()
                n.wait_ready(10)
                waits0 = wait_calls(master)
                try:
                    res[w].append(asyncio.run(measure(n)))
                finally:
                    n.stop()
                waits = wait_calls(master) - waits0
                # the variant is what it says: one WAIT per publish, or none
                assert waits == (SEQ + WINDOWED) * w, waits
                p50, p99, rate = res[w][-1]
                print(f"round {r + 1} wait={w}: p50 {p50:.3f} ms, "
                      f"p99 {p99:.3f} ms, {rate:,.0f} publishes/s, "
                      f"{waits} WAITs", flush=True)
    finally:
        rep.stop()
        master.stop()
    for w in (0, 1):
        p50 = statistics.median(x[0] for x in res[w])
        p99 = statistics.median(x[1] for x in res[w])
        rate = statistics.median(x[2] for x in res[w])
        print(f"median wait={w}: p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
              f"{rate:,.0f} publishes/s")


if __name__ == "__main__":
    main()
