# Redis faults never take a node down (issue 11): a stalled Redis (SIGSTOP)
# with requests in flight, forged durable envelopes sent with a raw PUBLISH,
# the seq bound of JavaScript's exact integers, and WAIT for replicas.
# Every test runs a real redis-server and real roomcastd nodes, is bounded
# in time, and stops what it started by PID.
# SPDX-License-Identifier: MIT
import asyncio
import os
import signal
import time

from harness import (PREFIX, RedisServer, close_all, connect, drain_frames,
                     ok, recv_msgs, request, run)

ALL = dict(rooms=["*"], pub=["*"])
MAX_SAFE = 2 ** 53 - 1


def chan(room):
    return f"{PREFIX}{{{room}}}"


def fcall(redis, room, data):
    return redis.call("FCALL", "roomcast_publish", "1", chan(room), data)


def test_stall_with_a_join_in_flight_keeps_the_node_up(redis, rnodes):
    """Redis stopped for 6 s; 0.3 s in, a client joins a room new to this
    node. When the probe declares Redis down, the join is failed: the node
    must stay up (same PID) and the client gets exactly one reply per
    request."""
    a = rnodes("A")
    pid = a.proc.pid

    async def main():
        c = await connect(a, a.mint("c", **ALL))
        await ok(c, "join", room="old")
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(0.3)
            rid = 100
            await c.send('{"op":"join","id":%d,"room":"new"}' % rid)
            frames = await drain_frames(c, 5.7)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        frames += await drain_frames(c, 3.0)
        replies = [f for f in frames if f.get("id") == rid]
        assert len(replies) == 1, frames
        assert replies[0]["op"] in ("ok", "error"), replies
        assert a.running() and a.proc.pid == pid, a.log_tail()
        # the node comes back and serves the room
        deadline = time.monotonic() + 10
        while a.readyz() != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert a.readyz() == 200, a.log_tail()
        r = await request(c, "join", room="new2")
        assert r["op"] == "ok", r
        s = fcall(redis, "new2", "1")
        got = await recv_msgs(c, 1, room="new2")
        assert got[0]["seq"] == s
        await close_all([c])

    run(main(), 40)
    assert a.running() and a.proc.pid == pid, a.log_tail()
