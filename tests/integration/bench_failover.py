# Redis failover figures for docs/BENCHMARKS.md: a real Sentinel setup
# (sentinel_env.py: master with min-replicas-to-write 1, one replica, three
# sentinels, down-after-milliseconds 1000) under a WAIT 1 publisher (one
# publish every 5 ms over two rooms); the master is SIGKILLed. Measured from
# the SIGKILL: the sentinels name the replica (ROLE master), the first
# publish acknowledged by WAIT 1 again (the killed server is started again,
# empty, as the new master's replica as soon as the switch is seen: the
# new master refuses writes while it has no replica), and, when roomcastd
# takes redis-sentinel:// URLs, its /readyz 200 again and the messages its
# catch-up delivered (roomcast_redis_recovered_messages_total).
#
#   /usr/bin/python3 tests/integration/bench_failover.py [--runs 3]
# SPDX-License-Identifier: MIT
import argparse
import asyncio
import os
import threading
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Node, connect, ok, recv_json, wait_until  # noqa: E402
from sentinel_env import SentinelEnv, SentinelPublisher  # noqa: E402

# messages caught up from history after a lost subscription: counted by
# the node (after the adapter rework) or by the Redis adapter (before)
M_CAUGHT = ("roomcast_catchup_messages_total",
            "roomcast_redis_recovered_messages_total")


def caught_up(node):
    m = node.metrics()
    return sum(m.get(k, 0) for k in M_CAUGHT)


class Member(threading.Thread):
    """A WebSocket client in b0 and b1 on the node (so the node subscribes
    and has something to catch up), counting the msgs it gets."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node, self.msgs, self.stop = node, 0, threading.Event()
        self.joined = threading.Event()

    def run(self):
        asyncio.run(self.main())

    async def main(self):
        ws = await connect(self.node, self.node.mint("bench", rooms=["*"]))
        for r in ("b0", "b1"):
            await ok(ws, "join", room=r)
        self.joined.set()
        while not self.stop.is_set():
            try:
                f = await recv_json(ws, 0.2)
            except AssertionError:
                continue
            if f.get("op") == "msg":
                self.msgs += 1
        await ws.close()


def one_run(workdir, with_node):
    env = SentinelEnv(os.path.join(workdir, "sentinel")).start()
    node, pub = None, None
    try:
        if with_node:
            node = Node(os.path.join(workdir, "nodes"), name="A",
                        flags={"redis_url": env.url,
                               "key_prefix": "roomcast:"})
            try:
                node.start()
                node.wait_ready(15)
            except AssertionError as e:
                if "not supported yet" not in node.log_text():
                    raise
                print(f"  roomcastd: {str(e).splitlines()[0]}; node "
                      "figures n/a", file=sys.stderr)
                node = None
        if node is None:
            # the function library: a node on the master itself loads it
            loader = Node(os.path.join(workdir, "nodes"), name="loader",
                          flags={"redis_url": env.master.url})
            loader.start()
            loader.wait_ready(10)
            loader.stop()
        member = None
        if node:
            member = Member(node)
            member.start()
            member.joined.wait(10)
        pub = SentinelPublisher(env, ["b0", "b1"], wait=1, wait_ms=200)
        time.sleep(2.0)
        old = env.master_port()
        rec0 = caught_up(node) if node else 0
        t0 = time.monotonic()
        env.by_port(old).kill()
        new = env.wait_new_master(old, 30)
        t_switch = time.monotonic() - t0
        env.restart_as_replica(old, new)
        t_ready = None
        if node:
            wait_until(lambda: node.readyz() == 200, 30, interval=0.02,
                       what="readyz 200")
            t_ready = time.monotonic() - t0
        time.sleep(2.0)
        lines = pub.stop()
        pub = None
        firsts = [ln[5] for ln in lines
                  if ln[0] == "ok" and ln[4] and ln[5] > t0]
        t_pub = (firsts[0] - t0) if firsts else None
        rec = (caught_up(node) - rec0) if node else None
        errs = sum(1 for ln in lines if ln[0] == "err")
        if member:
            member.stop.set()
            member.join(5)
        return dict(switch=t_switch, pub=t_pub, ready=t_ready,
                    recovered=rec, errors=errs)
    finally:
        if pub:
            pub.kill()
        if node:
            node.stop(expect=None)
        env.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    results = []
    for i in range(a.runs):
        with tempfile.TemporaryDirectory(prefix="rc_failover_") as d:
            r = one_run(d, with_node=True)
        results.append(r)
        print(f"run {i + 1}: " + ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r.items()))
    for k in ("switch", "pub", "ready", "recovered"):
        vals = [r[k] for r in results if r[k] is not None]
        if vals:
            print(f"median {k}: {statistics.median(vals):.2f}")
        else:
            print(f"median {k}: n/a")


if __name__ == "__main__":
    main()
