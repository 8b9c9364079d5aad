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


def test_forged_durable_publish_changes_nothing(redis, rnodes):
    """PROTOCOL.md section 5: a raw PUBLISH may add ephemeral messages, but
    never change a room's seq or stop later durable messages."""
    a = rnodes("A")

    async def main():
        c = await connect(a, a.mint("c", **ALL))
        await ok(c, "join", room="chat:1")
        forged0 = a.m("roomcast_redis_dropped_forged_total")
        # the seq 2^64-1 that used to block every later message
        redis.call("PUBLISH", chan("chat:1"), "d|18446744073709551615|0|{}")
        seqs = [fcall(redis, "chat:1", '{"n":%d}' % i) for i in range(3)]
        got = await recv_msgs(c, 3, room="chat:1")
        assert [f["seq"] for f in got] == seqs, got
        assert [f["data"] for f in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
        # a forged envelope in the new layout with the plausible next seq
        nxt = seqs[-1] + 1
        redis.call("PUBLISH", chan("chat:1"),
                   "d|%d|0|%s|{\"forged\":1}" % (nxt, "0" * 32))
        s = fcall(redis, "chat:1", '"real"')
        assert s == nxt
        got = await recv_msgs(c, 1, room="chat:1")
        assert got[0] == {"op": "msg", "room": "chat:1", "seq": nxt,
                          "data": "real"}, got
        # raw JSON is still an ephemeral message
        redis.call("PUBLISH", chan("chat:1"), '{"typing":true}')
        got = await recv_msgs(c, 1, room="chat:1")
        assert got[0] == {"op": "msg", "room": "chat:1",
                          "data": {"typing": True}}, got
        frames = await drain_frames(c, 0.3)
        assert not [f for f in frames if f.get("op") == "msg"], frames
        assert a.m("roomcast_redis_dropped_forged_total") == forged0 + 2
        await close_all([c])

    run(main(), 30)


def test_seq_bound_is_javascripts_exact_integers(redis, rnodes):
    """A room whose seq reaches 2^53-1 refuses publishes (an error, no
    wrap), and no seq above 2^53-1 ever reaches a client, even when Redis
    holds one."""
    a = rnodes("A")
    meta = chan("big") + ":meta"
    redis.call("HSET", meta, "epoch", "1", "seq", str(MAX_SAFE - 1))

    async def main():
        c = await connect(a, a.mint("c", **ALL))
        await ok(c, "join", room="big")
        assert fcall(redis, "big", '"last"') == MAX_SAFE
        got = await recv_msgs(c, 1, room="big")
        assert got[0]["seq"] == MAX_SAFE
        try:
            fcall(redis, "big", '"over"')
            raise AssertionError("a publish past 2^53-1 was taken")
        except Exception as e:  # RespError: the function's error reply
            assert "2^53-1" in str(e), e
        r = await request(c, "publish", room="big", data="over")
        assert r["op"] == "error" and r["code"] == "internal", r
        # the room moved into its stream (P{room}) on that first publish
        last = redis.call("XREVRANGE", chan("big"), "+", "-", "COUNT", "1")
        assert last[0][0] == f"{MAX_SAFE}-0".encode(), last
        assert redis.call("EXISTS", meta) == 0
        # a seq Redis holds above the bound (or below zero) is refused on
        # read: the join is answered, never with such a seq
        bad0 = a.m("roomcast_redis_dropped_bad_seq_total")
        for room, seq in (("huge", str(2 ** 60)), ("neg", "-5")):
            redis.call("HSET", chan(room) + ":meta", "epoch", "1",
                       "seq", seq)
            r = await request(c, "join", room=room)
            assert r["op"] in ("ok", "error"), r
            assert r["op"] == "error" or r.get("seq", 0) <= MAX_SAFE, r
        assert a.m("roomcast_redis_dropped_bad_seq_total") >= bad0 + 2
        frames = await drain_frames(c, 0.3)
        for f in frames:
            assert f.get("seq", 0) <= MAX_SAFE, f
        await close_all([c])

    run(main(), 30)


def test_failed_select_is_not_ready(redis, nodes):
    """SELECT of a db the server does not have: the node never comes up on
    db 0, and says why."""
    a = nodes(flags={"redis_url": redis.url + "/20", "key_prefix": PREFIX},
              name="A")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert a.readyz() == 503
        time.sleep(0.2)
    log = a.log_text()
    assert "redis_select_failed" in log and "db=20" in log, a.log_tail()


def test_subscribe_refused_fails_the_join_and_retries(redis, nodes):
    """An ACL that refuses a room's channel: the join gets an error reply
    (not silence), the refusal is counted, and once the ACL allows it the
    room works (nothing stays stuck)."""
    redis.call("ACL", "SETUSER", "gw", "on", ">gwpass", "~*", "+@all",
               "resetchannels", "&" + PREFIX + "ctl:*",
               "&" + PREFIX + "{ok*")
    a = nodes(flags={"redis_url": f"redis://gw:gwpass@127.0.0.1:{redis.port}",
                     "key_prefix": PREFIX}, name="A")
    a.wait_ready(10)

    async def main():
        c = await connect(a, a.mint("c", **ALL))
        await ok(c, "join", room="ok1")
        r = await request(c, "join", room="secret", timeout=8)
        assert r["op"] == "error", r
        assert a.m("roomcast_redis_subscribe_refused_total") >= 1
        assert a.readyz() == 200
        # still serving the allowed room
        s = fcall(redis, "ok1", "1")
        assert (await recv_msgs(c, 1, room="ok1"))[0]["seq"] == s
        redis.call("ACL", "SETUSER", "gw", "&" + PREFIX + "{secret}")
        r = await request(c, "join", room="secret", timeout=8)
        assert r["op"] == "ok", r
        s = fcall(redis, "secret", "2")
        assert (await recv_msgs(c, 1, room="secret"))[0]["seq"] == s
        await close_all([c])

    run(main(), 40)


def test_wait_replicas(redis, tmp_path, rnodes):
    """redis_wait_replicas=1: a durable publish is acknowledged once a
    replica has it; with the replica stopped the publisher gets an error
    naming replication, within redis_wait_timeout_ms."""
    rep = RedisServer(tmp_path / "replica", name="replica").start()
    try:
        rep.call("REPLICAOF", "127.0.0.1", str(redis.port))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            info = redis.call("INFO", "replication").decode()
            if "connected_slaves:1" in info and "state=online" in info:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("replica did not come online")
        a = rnodes("A", flags={"redis_wait_replicas": "1",
                               "redis_wait_timeout_ms": "1500"})

        async def main():
            c = await connect(a, a.mint("c", **ALL))
            await ok(c, "join", room="w")
            # a replica that just synced may lag once on a loaded machine
            for _ in range(3):
                r = await request(c, "publish", room="w", data=1)
                if r["op"] == "ok":
                    break
            assert r["op"] == "ok" and r["seq"] > 0, r
            fails0 = a.m("roomcast_redis_replication_failures_total")
            os.kill(rep.proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                r = await request(c, "publish", room="w", data=2)
                dt = time.monotonic() - t0
            finally:
                os.kill(rep.proc.pid, signal.SIGCONT)
            assert r["op"] == "error" and r["code"] == "internal", r
            assert "replication" in r["message"], r
            assert 1.4 < dt < 5, dt
            assert a.m("roomcast_redis_replication_failures_total") == \
                fails0 + 1
            await close_all([c])

        run(main(), 40)
    finally:
        rep.stop()
        rep.kill()


def test_command_accounting_with_auth_on_both_links(redis, nodes):
    """AUTH on both links (an ACL user): the command link's in-flight count
    is exact: 0 at rest, one per publish stalled in a stopped Redis, 0
    again once they are answered (the subscription link's AUTH reply is
    not the command link's)."""
    redis.call("ACL", "SETUSER", "gw", "on", ">gwpass", "~*", "&*", "+@all")
    a = nodes(flags={"redis_url": f"redis://gw:gwpass@127.0.0.1:{redis.port}",
                     "key_prefix": PREFIX}, name="A")
    a.wait_ready(10)
    g = "roomcast_redis_commands_in_flight"

    async def main():
        c = await connect(a, a.mint("c", **ALL))
        await ok(c, "join", room="acc")
        await asyncio.sleep(0.3)
        assert a.m(g) in (0, 1)  # 1: a registry refresh on its way
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            for i in range(3):
                await c.send('{"op":"publish","id":%d,"room":"acc",'
                             '"data":%d}' % (50 + i, i))
            await asyncio.sleep(0.5)
            # (the registry refresh, every 2 s, may have joined them)
            assert a.m(g) in (3, 4), a.m(g)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        frames = await drain_frames(c, 1.0)
        replies = [f for f in frames if f.get("id") in (50, 51, 52)]
        assert [f["op"] for f in replies] == ["ok"] * 3, frames
        await asyncio.sleep(0.3)
        assert a.m(g) == 0, a.m(g)
        await close_all([c])

    run(main(), 30)
