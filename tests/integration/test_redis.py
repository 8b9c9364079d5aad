# The Redis adapter against a real redis-server and real roomcastd nodes:
# fan-out across nodes exactly once and in seq order, interest-based
# subscriptions, history recovery and the join seam, a Redis crash and
# restart under load, join/leave churn against PUBSUB CHANNELS, the
# roomcast CLI (publish, nodes, drain), and pub/sub liveness (a killed
# subscription link, and a silently dead one found by the probe).
# SPDX-License-Identifier: MIT
import asyncio
import json
import select
import socket
import threading
import time
from collections import Counter

from harness import (PREFIX, Checks, Publisher, Timeout, assert_no_msgs,
                     close_all, connect, drain_frames, err, expect_close, ok,
                     recv_json, recv_msgs, request, run, run_cli, wait_until)

ALL = dict(rooms=["*"], pub=["*"])

M_RECEIVED = "roomcast_redis_messages_received_total"
M_DURABLE = "roomcast_redis_durable_received_total"
M_EPHEMERAL = "roomcast_redis_ephemeral_received_total"
M_BAD = "roomcast_redis_dropped_bad_total"
M_FORGED = "roomcast_redis_dropped_forged_total"
M_SUBSCRIBED = "roomcast_redis_subscribed_rooms"
M_RECONNECTS = "roomcast_redis_reconnects_total"
M_RESUBSCRIBED = "roomcast_redis_resubscribed_rooms_total"
M_RECOVERED = "roomcast_catchup_messages_total"
M_PROBE_FAIL = "roomcast_redis_probe_failures_total"
M_UP = "roomcast_redis_up"


def chan(room):
    return f"{PREFIX}{{{room}}}"


async def await_until(pred, timeout, interval=0.05, what="condition"):
    """wait_until for async tests: the loop keeps reading frames."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what} (last value {last!r})")
        await asyncio.sleep(interval)


def by_room(msgs):
    out = {}
    for f in msgs:
        out.setdefault(f["room"], []).append(f)
    return out


def seqs_of(msgs):
    return [f.get("seq") for f in msgs]


def consecutive(seqs):
    return all(b == a + 1 for a, b in zip(seqs, seqs[1:]))


def fcall_via_redis_cli(redis, items):
    """Publish [(room, data)] durably through one redis-cli process (one
    FCALL per stdin line); return the seqs it printed, in order."""
    lines = []
    for room, data in items:
        js = json.dumps(data, separators=(",", ":"))
        assert "'" not in js
        lines.append(f"FCALL roomcast_publish 1 {room} '{js}'")
    out = redis.cli(stdin="\n".join(lines) + "\n", timeout=30)
    seqs = [int(x) for x in out.split("\n")]
    assert len(seqs) == len(items), out[-500:]
    return seqs


# --------------------------------------------------------------------------
# 1. fan-out across two nodes

N_FANOUT = 25


def test_two_nodes_fanout_exactly_once_in_order(redis, rnodes):
    a, b = rnodes("A"), rnodes("B")
    # room -> members (node, client name); r4 only on B, r5 only on A
    plan = {
        "a0": (a, ["r0", "r1", "r2", "r5"]),
        "a1": (a, ["r0", "r3"]),
        "b0": (b, ["r0", "r1", "r4"]),
        "b1": (b, ["r2", "r3"]),
        "b2": (b, ["r0"]),
    }
    rooms = [f"r{i}" for i in range(6)]

    async def main():
        ws = {}
        for name, (node, rs) in plan.items():
            ws[name] = await connect(node, node.mint(name, **ALL))
            for r in rs:
                j = await ok(ws[name], "join", room=r)
                assert j["seq"] == 0, f"fresh room {r}: {j!r}"
        # both nodes subscribe to exactly the rooms they have members in
        await await_until(lambda: (a.m(M_SUBSCRIBED), b.m(M_SUBSCRIBED))
                          == (5, 5), 5, what="subscriptions")
        assert redis.channels() == {chan(r) for r in rooms}

        # durable, through redis-cli: interleaved over the rooms
        items = [(r, {"k": k, "room": r}) for k in range(N_FANOUT)
                 for r in rooms]
        seqs = fcall_via_redis_cli(redis, items)
        want = {r: [s for (rr, _), s in zip(items, seqs) if rr == r]
                for r in rooms}
        for r in rooms:
            assert consecutive(want[r]), f"{r}: seqs not consecutive " \
                                         f"{want[r]}"
            assert want[r][0] > 1_000_000, \
                f"{r}: seq {want[r][0]} is not on an epoch base"
        for name, (node, rs) in plan.items():
            got = await recv_msgs(ws[name], N_FANOUT * len(rs), timeout=10)
            per = by_room(got)
            assert set(per) == set(rs), (name, set(per))
            for r in rs:
                assert seqs_of(per[r]) == want[r], \
                    f"{name} {r}: {seqs_of(per[r])} != {want[r]}"
                assert [f["data"] for f in per[r]] == \
                    [{"k": k, "room": r} for k in range(N_FANOUT)]
        await asyncio.gather(*(assert_no_msgs(w, 0.3) for w in ws.values()))
        durable_a = a.m(M_DURABLE)
        durable_b = b.m(M_DURABLE)
        assert durable_a == 5 * N_FANOUT, f"A got {durable_a} durable"
        assert durable_b == 5 * N_FANOUT, f"B got {durable_b} durable"

        # ephemeral: no seq; PUBLISH counts one receiver per node
        assert redis.cli("PUBLISH", chan("r0"), '{"e":1}') == "2"
        assert redis.cli("PUBLISH", chan("r5"), '{"e":5}') == "1"
        for name in ("a0", "a1", "b0", "b2"):
            f = (await recv_msgs(ws[name], 1, timeout=5))[0]
            assert f == {"op": "msg", "room": "r0", "data": {"e": 1}}, f
        f = (await recv_msgs(ws["a0"], 1, timeout=5))[0]
        assert f == {"op": "msg", "room": "r5", "data": {"e": 5}}, f
        assert a.m(M_EPHEMERAL) == 2 and b.m(M_EPHEMERAL) == 1

        # malformed: dropped, counted, never delivered. A good ephemeral
        # sent after them arrives first: pub/sub keeps order, so a bad one
        # that got through would have come before it.
        # (a durable envelope without a valid MAC is counted as forged)
        bad_a = a.m(M_BAD) + a.m(M_FORGED)
        bad_b = b.m(M_BAD) + b.m(M_FORGED)
        for payload in ("not json", "{", "d|x|1|{}", "d|5|1", "", "[1,]"):
            assert redis.cli("PUBLISH", chan("r0"), payload) == "2"
        assert redis.cli("PUBLISH", chan("r0"), '"after"') == "2"
        for name in ("a0", "a1", "b0", "b2"):
            f = (await recv_msgs(ws[name], 1, timeout=5))[0]
            assert f == {"op": "msg", "room": "r0", "data": "after"}, \
                f"{name}: a malformed message reached the client: {f!r}"
        assert a.m(M_BAD) + a.m(M_FORGED) == bad_a + 6, (bad_a, a.m(M_BAD))
        assert b.m(M_BAD) + b.m(M_FORGED) == bad_b + 6, (bad_b, b.m(M_BAD))
        # durable data that is not JSON: its seq is used, it is dropped
        s_bad = int(redis.cli("FCALL", "roomcast_publish", "1", "r1",
                              "oops"))
        assert s_bad == want["r1"][-1] + 1
        s_good = int(redis.cli("FCALL", "roomcast_publish", "1", "r1",
                               '"fine"'))
        assert s_good == s_bad + 1
        for name in ("a0", "b0"):
            f = (await recv_msgs(ws[name], 1, timeout=5))[0]
            assert (f["seq"], f["data"]) == (s_good, "fine"), \
                f"{name}: {f!r}"
        assert a.m(M_BAD) + a.m(M_FORGED) == bad_a + 7
        assert b.m(M_BAD) + b.m(M_FORGED) == bad_b + 7

        # a client publish goes through Redis: ok carries the seq, members
        # on the other node get it
        r = await ok(ws["a1"], "publish", room="r1", data={"via": "ws"})
        assert r["seq"] == s_good + 1, r
        for name in ("a0", "b0"):
            f = (await recv_msgs(ws[name], 1, timeout=5))[0]
            assert f == {"op": "msg", "room": "r1", "seq": s_good + 1,
                         "data": {"via": "ws"}}, f"{name}: {f!r}"
        r = await ok(ws["b1"], "publish", room="r5", data="from B")
        f = (await recv_msgs(ws["a0"], 1, timeout=5))[0]
        assert f == {"op": "msg", "room": "r5", "seq": r["seq"],
                     "data": "from B"}, f
        await asyncio.gather(*(assert_no_msgs(w, 0.3) for w in ws.values()))
        assert a.m("roomcast_deliveries_total") > 0
        await close_all(list(ws.values()))

    run(main(), 60)


def test_publish_by_key_form_is_the_bare_room_form(redis, rnodes):
    """PROTOCOL.md section 5: FCALL roomcast_publish 1 <prefix>{<room>}
    <data> (the room's key) numbers, keeps and publishes exactly as the
    bare-room form: one seq sequence, one history, one channel."""
    a, b = rnodes("A"), rnodes("B")
    room = "kf:lobby"

    def publish(key, k):
        return redis.call("FCALL", "roomcast_publish", "1", key,
                          json.dumps({"k": k}))

    async def main():
        ca = await connect(a, a.mint("ca", **ALL))
        cb = await connect(b, b.mint("cb", **ALL))
        await ok(ca, "join", room=room)
        await ok(cb, "join", room=room)
        seqs = [publish(room, 0), publish(chan(room), 1),
                publish(room, 2), publish(chan(room), 3)]
        assert consecutive(seqs), seqs
        for w in (ca, cb):
            got = await recv_msgs(w, 4, timeout=5)
            assert got == [{"op": "msg", "room": room, "seq": s,
                            "data": {"k": k}}
                           for k, s in enumerate(seqs)], got
        # the key form touched the room's own keys, no others
        # (one stream at P{room}: the whole durable state, PROTOCOL.md 5)
        assert redis.cli("EXISTS", chan(chan(room))) == "0"
        assert redis.cli("TYPE", chan(room)) == "stream"
        assert redis.cli("XLEN", chan(room)) == "4"
        # one history: a join with since replays both forms in order
        d = await connect(b, b.mint("d", **ALL))
        r = await ok(d, "join", room=room, since=seqs[0])
        assert r["recovered"] is True and r["seq"] == seqs[-1], r
        got = await recv_msgs(d, 3, timeout=5)
        assert seqs_of(got) == seqs[1:], got
        # a client publish continues the same sequence
        r = await ok(ca, "publish", room=room, data="ws")
        assert r["seq"] == seqs[-1] + 1, r
        await close_all([ca, cb, d])

    run(main(), 30)


# --------------------------------------------------------------------------
# 2. interest-based subscriptions

def test_interest_only_nodes_with_members_subscribe(redis, rnodes):
    a, b = rnodes("A"), rnodes("B")
    rooms = [f"x{i}" for i in range(5)]

    async def main():
        ca = await connect(a, a.mint("ca", **ALL))
        cb = await connect(b, b.mint("cb", **ALL))  # on B, in no room
        for r in rooms:
            await ok(ca, "join", room=r)
        await await_until(lambda: a.m(M_SUBSCRIBED) == 5, 5,
                          what="A subscribed")
        with redis.conn() as c:
            for k in range(10):
                for r in rooms:
                    c.call("FCALL", "roomcast_publish", "1", r,
                           json.dumps({"k": k}))
        await recv_msgs(ca, 50, timeout=10)
        assert a.m(M_RECEIVED) == 50
        assert b.m(M_RECEIVED) == 0, "B received messages for rooms it " \
                                     "has no members in"
        assert b.m(M_SUBSCRIBED) == 0
        assert redis.channels() == {chan(r) for r in rooms}
        numsub = redis.call("PUBSUB", "NUMSUB", *(chan(r) for r in rooms))
        assert numsub[1::2] == [1] * 5, numsub

        # B gains interest in x0 only
        await ok(cb, "join", room="x0")
        await await_until(lambda: b.m(M_SUBSCRIBED) == 1, 5,
                          what="B subscribed to x0")
        assert redis.call("PUBSUB", "NUMSUB", chan("x0"))[1] == 2
        for r in ("x0", "x1", "x2"):
            redis.call("FCALL", "roomcast_publish", "1", r, '"late"')
        f = (await recv_msgs(cb, 1, timeout=5))[0]
        assert (f["room"], f["data"]) == ("x0", "late")
        await recv_msgs(ca, 3, timeout=5)
        assert b.m(M_RECEIVED) == 1, b.m(M_RECEIVED)

        # and loses it: B unsubscribes ~2 s after its last member left
        await ok(cb, "leave", room="x0")
        t0 = time.monotonic()
        await await_until(lambda: b.m(M_SUBSCRIBED) == 0, 6,
                          what="B unsubscribed from x0")
        assert time.monotonic() - t0 >= 1.0, \
            "unsubscribed at once; expected a delay of about 2 s"
        assert redis.call("PUBSUB", "NUMSUB", chan("x0"))[1] == 1
        redis.call("FCALL", "roomcast_publish", "1", "x0", '"gone"')
        await recv_msgs(ca, 1, timeout=5)
        assert b.m(M_RECEIVED) == 1
        await assert_no_msgs(cb, 0.3)
        await close_all([ca, cb])

    run(main(), 40)


# --------------------------------------------------------------------------
# 3. recovery with since, epochs, and the join seam under load

def test_recovery_since_history_and_epochs(redis, rnodes):
    hist = {"history_size": 5}
    a, b = rnodes("A", flags=hist), rnodes("B", flags=hist)

    def publish(room, k):
        return redis.call("FCALL", "roomcast_publish", "1", room,
                          json.dumps({"k": k}))

    async def main():
        c = await connect(a, a.mint("c", **ALL))
        await ok(c, "join", room="h")
        s = [publish("h", k) for k in range(3)]
        got = await recv_msgs(c, 3)
        assert seqs_of(got) == s and consecutive(s)
        last = s[-1]
        await ok(c, "leave", room="h")
        missed = [publish("h", k) for k in range(3, 7)]  # 4 <= history 5
        await assert_no_msgs(c, 0.2)

        # rejoin with since on the same node: exactly the missed ones
        r = await ok(c, "join", room="h", since=last)
        assert r["recovered"] is True and r["seq"] == missed[-1], r
        got = await recv_msgs(c, 4)
        assert seqs_of(got) == missed
        assert [g["data"]["k"] for g in got] == [3, 4, 5, 6]
        await assert_no_msgs(c, 0.3)

        # the same from the other node (history lives in Redis)
        d = await connect(b, b.mint("d", **ALL))
        r = await ok(d, "join", room="h", since=last)
        assert r["recovered"] is True and r["seq"] == missed[-1], r
        assert seqs_of(await recv_msgs(d, 4)) == missed
        await assert_no_msgs(d, 0.3)
        # since == latest: recovered, nothing to replay
        await ok(d, "leave", room="h")
        r = await ok(d, "join", room="h", since=missed[-1])
        assert r["recovered"] is True, r
        await assert_no_msgs(d, 0.3)

        # since older than the history (size 5): recovered false, and the
        # retained messages follow
        await ok(c, "leave", room="h")
        more = [publish("h", k) for k in range(7, 17)]
        r = await ok(c, "join", room="h", since=missed[-1])
        assert r["recovered"] is False, r
        assert r["seq"] == more[-1]
        got = await recv_msgs(c, 5)
        assert seqs_of(got) == more[-5:], seqs_of(got)
        await assert_no_msgs(c, 0.3)
        # d stayed: it saw every one of them live
        assert seqs_of(await recv_msgs(d, 10)) == more

        # since 0 on a room whose history holds its first message
        s0 = [publish("fresh", k) for k in range(2)]
        r = await ok(c, "join", room="fresh", since=0)
        assert r["recovered"] is True and r["seq"] == s0[-1], r
        assert seqs_of(await recv_msgs(c, 2)) == s0

        # lost keys start a new, higher epoch: an old since is not
        # recovered, and nothing of the old epoch is replayed
        await ok(d, "leave", room="h")
        redis.call("DEL", f"{PREFIX}{{h}}")
        n1 = publish("h", 100)
        assert n1 > more[-1] + 1, (n1, more[-1])
        got = await recv_msgs(c, 1)
        assert seqs_of(got) == [n1]
        r = await ok(d, "join", room="h", since=more[-1])
        assert r["recovered"] is False and r["seq"] == n1, r
        got = await recv_msgs(d, 1)
        assert seqs_of(got) == [n1] and got[0]["data"] == {"k": 100}
        await assert_no_msgs(d, 0.3)
        await close_all([c, d])

    run(main(), 40)


N_SEAM = 100


def test_join_since_seam_under_continuous_publishing(redis, rnodes):
    """100 clients join with since=S while a publisher process publishes
    without pause: each gets S+1 .. last, no gap, no duplicate."""
    hist = {"history_size": 20000}
    a, b = rnodes("A", flags=hist), rnodes("B", flags=hist)

    async def main():
        watcher = await connect(a, a.mint("w", **ALL))
        await ok(watcher, "join", room="seam")
        pub = Publisher(redis.port, ["seam"], interval=0.004)
        try:
            first = await recv_msgs(watcher, 30, timeout=10)
            since = first[9]["seq"]

            async def joiner(i):
                node = a if i % 2 else b
                await asyncio.sleep((i % 25) * 0.04)  # spread over ~1 s
                ws = await connect(node, node.mint(f"j{i}", **ALL),
                                   timeout=15)
                r = await request(ws, "join", timeout=15, room="seam",
                                  since=since)
                return ws, r

            joined = await asyncio.gather(*(joiner(i)
                                            for i in range(N_SEAM)))
            await asyncio.sleep(0.5)
        finally:
            lines = pub.stop()
        errors = [ln for ln in lines if ln[0] != "ok"]
        assert not errors, f"publisher errors: {errors[:5]}"
        seqs = [s for _, _, s in pub.accepted()]
        assert consecutive(seqs), "publisher seqs not consecutive"
        last = seqs[-1]
        want = list(range(since + 1, last + 1))
        assert len(want) > 100, f"too few messages ({len(want)}) to test"

        wss = [w for w, _ in joined]
        for i, (w, r) in enumerate(joined):
            assert r.get("op") == "ok" and r.get("recovered") is True, \
                f"client {i}: {r!r}"

        async def take(w):
            # until the last seq, or what came within the bound (a client
            # that lost the last message is reported with the others)
            got = []
            deadline = time.monotonic() + 20
            while not (got and got[-1]["seq"] >= last):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    f = await recv_json(w, left)
                except Timeout:
                    break
                if f.get("op") == "msg":
                    got.append(f)
            return got

        results = await asyncio.gather(*(take(w) for w in wss + [watcher]))
        check = Checks()
        wseq = seqs_of(first) + seqs_of(results[-1])
        wwant = list(range(wseq[0], last + 1))
        check(wseq == wwant, f"watcher on A (joined before): missing "
                             f"{sorted(set(wwant) - set(wseq))[:10]}")
        for i, got in enumerate(results[:-1]):
            s = seqs_of(got)
            dups = sorted(x for x, c in Counter(s).items() if c > 1)
            node = "A" if i % 2 else "B"
            check(s == want, (
                f"client {i} on {node} (since {since}, join ok seq "
                f"{joined[i][1].get('seq')}): {len(s)} msgs of "
                f"{len(want)}; missing {sorted(set(want) - set(s))[:5]}, "
                f"duplicated {dups[:5]}"
                f", out of order "
                f"{[(x, y) for x, y in zip(s, s[1:]) if y <= x][:3]}"))
        if len(check.problems) > 12:
            n = len(check.problems)
            check.problems[10:] = [f"... and {n - 10} more clients"]
        check.done()
        extra = await asyncio.gather(*(drain_frames(w, 0.3)
                                       for w in wss[:20]))
        assert not [f for fs in extra for f in fs if f.get("op") == "msg"]
        print(f"seam: since {since}, {len(want)} msgs, {N_SEAM} joiners")
        await close_all(wss + [watcher])

    run(main(), 60)


# --------------------------------------------------------------------------
# 4. Redis crash and restart under a running publisher

def test_redis_killed_and_restarted_mid_stream(redis, rnodes):
    # A node comes back after its own reconnect backoff (up to ~1.5 s here,
    # more under ASan), and catches up from the history of the epoch that
    # started when the empty Redis took its first publish. 100 messages a
    # room (the default) is 1 s of this publisher: a node back later found
    # its oldest ones trimmed and said so (catchup_gap), and the test
    # counted them lost. The history here holds 20 s, so every message
    # acknowledged after the restart must arrive.
    hist = {"history_size": 2000}
    a, b = rnodes("A", flags=hist), rnodes("B", flags=hist)
    rooms = ["o0", "o1"]

    async def main():
        clients = []
        for node, name in ((a, "ca"), (b, "cb"), (a, "ca2")):
            w = await connect(node, node.mint(name, **ALL))
            for r in rooms:
                await ok(w, "join", room=r)
            clients.append(w)
        await await_until(lambda: a.m(M_SUBSCRIBED) == 2
                          and b.m(M_SUBSCRIBED) == 2, 5, what="subscribed")
        rec_a, rec_b = a.m(M_RECONNECTS), b.m(M_RECONNECTS)
        received = [[] for _ in clients]

        async def pump(i, w, stop):
            while not stop.is_set():
                try:
                    f = await recv_json(w, 0.2)
                except Timeout:
                    continue
                if f.get("op") == "msg":
                    received[i].append(f)

        side = await connect(a, a.mint("side", **ALL))  # no pump
        stop = asyncio.Event()
        pumps = [asyncio.ensure_future(pump(i, w, stop))
                 for i, w in enumerate(clients)]
        pub = Publisher(redis.port, rooms, interval=0.005)
        try:
            await await_until(lambda: len(received[0]) >= 40, 10,
                              what="traffic before the crash")
            redis.kill()
            t_kill = time.monotonic()
            await await_until(lambda: a.readyz() == 503 and
                              b.readyz() == 503, 5,
                              what="/readyz 503 on both nodes")
            assert a.m(M_UP) == 0
            # nothing can be numbered or read while Redis is away
            await err(side, "publish", "internal", room="o0", data=1)
            await err(side, "join", "internal", room="o0")
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t_kill)))
            redis.start()
            await await_until(lambda: a.readyz() == 200 and
                              b.readyz() == 200, 10,
                              what="/readyz 200 after the restart")
            await asyncio.sleep(1.0)
        finally:
            lines = pub.stop()
        assert a.m(M_RECONNECTS) > rec_a and b.m(M_RECONNECTS) > rec_b
        assert a.m(M_RESUBSCRIBED) >= 2 and b.m(M_RESUBSCRIBED) >= 2
        acc = {r: [(k, s) for k, _, s in pub.accepted(r)] for r in rooms}
        attempted = {r: {k for _, k, rr, _ in lines if rr == r}
                     for r in rooms}
        for r in rooms:
            s = [x for _, x in acc[r]]
            assert s == sorted(set(s)), f"{r}: accepted seqs not increasing"
        errs = [ln for ln in lines if ln[0] != "ok"]
        assert errs, "the publisher never saw the outage"
        oks_after = [ln for ln in lines[lines.index(errs[-1]):]
                     if ln[0] == "ok"]
        assert len(oks_after) > 20, "too few publishes after the restart"
        last = {r: acc[r][-1][1] for r in rooms}

        def complete(i):
            per = by_room(received[i])
            return all(per.get(r) and per[r][-1]["seq"] >= last[r]
                       for r in rooms)

        try:
            await await_until(lambda: all(complete(i)
                                          for i in range(len(clients))),
                              15, what="every client caught up")
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.gather(*pumps)
        # Redis answers the FCALL's caller before it writes the PUBLISH to
        # the subscribers (its pending-write list is LIFO), and this Redis
        # keeps nothing across the SIGKILL: the one publish acknowledged
        # just before the crash may be lost by Redis itself, before any
        # node saw it. It is excused only if it reached no client at all;
        # everything else acknowledged must arrive everywhere.
        first_err = lines.index(errs[0])
        oks_before = [ln for ln in lines[:first_err] if ln[0] == "ok"]
        seen = {f["data"]["k"] for got in received for f in got}
        excused = {oks_before[-1][1]} - seen if oks_before else set()
        for i, got in enumerate(received):
            per = by_room(got)
            for r in rooms:
                s = seqs_of(per.get(r, []))
                ks = [f["data"]["k"] for f in per.get(r, [])]
                assert all(x < y for x, y in zip(s, s[1:])), \
                    f"client {i} {r}: seqs not strictly increasing: " \
                    f"{[(x, y) for x, y in zip(s, s[1:]) if x >= y][:5]}"
                assert len(ks) == len(set(ks)), f"client {i} {r}: dup k"
                missing = [(k, q) for k, q in acc[r]
                           if q not in set(s) and k not in excused]
                assert not missing, (
                    f"client {i} {r}: {len(missing)} accepted messages "
                    f"never arrived, e.g. {missing[:5]}")
                stray = set(ks) - attempted[r]
                assert not stray, f"client {i} {r}: unknown k {stray}"
        print(f"outage: {len(errs)} failed publishes, "
              f"{sum(len(v) for v in acc.values())} accepted, "
              f"{len(excused)} lost by Redis in the crash, recovered "
              f"A={a.m(M_RECOVERED)} B={b.m(M_RECOVERED)}")
        await close_all(clients + [side])

    run(main(), 60)


# --------------------------------------------------------------------------
# 5. churn

N_CHURN = 1000
N_ROOMS = 100


def test_messages_sent_before_the_command_link_died_are_delivered(
        redis, rnodes):
    """Redis wrote messages to the subscription link, then the command link
    died, and the loop saw the command link's EOF first (here forced: the
    node is stopped, its command link killed, then the messages published,
    so epoll reports the command link first). Tearing both links down must
    not throw away what is already in the subscription socket: with a
    one-message history nothing could catch it up afterwards."""
    import signal as sig
    n = rnodes("A", flags={"history_size": 1})
    count = 40

    async def main():
        w = await connect(n, n.mint("c", **ALL))
        await ok(w, "join", room="d0")
        await await_until(lambda: n.m(M_SUBSCRIBED) == 1, 5,
                          what="subscribed")
        rec = n.m(M_RECONNECTS)
        n.signal(sig.SIGSTOP)
        try:
            with redis.conn() as c:
                killed = c.call("CLIENT", "KILL", "TYPE", "normal",
                                "SKIPME", "yes")
                assert killed >= 1, "the node's command link was not found"
                seqs = [c.call("FCALL", "roomcast_publish", "1", "d0",
                               json.dumps({"k": k}))
                        for k in range(count)]
        finally:
            n.signal(sig.SIGCONT)
        got = await recv_msgs(w, count, timeout=10)
        assert [f["seq"] for f in got] == [int(x) for x in seqs], \
            f"got {[f['data']['k'] for f in got]}"
        await await_until(lambda: n.m(M_RECONNECTS) > rec
                          and n.readyz() == 200, 10, what="the node back up")
        await assert_no_msgs(w, 0.3)
        await close_all([w])

    run(main(), 30)


def test_promoted_replica_never_reuses_a_seq(redis, rnodes, tmp_path):
    """Split brain at a failover: the replica is promoted while the old
    master still takes a publish (subscribers see its seq, the new master
    never gets it). The new master's next publish must not hand out that
    seq again (clients would drop the acknowledged message as a
    duplicate): it starts a new epoch above it."""
    from harness import RedisServer
    n = rnodes("A")  # loads the function library (replicated below)
    rep = RedisServer(tmp_path / "replica", name="replica",
                      extra=["--replicaof", f"127.0.0.1 {redis.port}"])
    rep.start()
    try:
        # In sync as both ends see it: the replica's link is up and the
        # master streams to it (its side reads "online" only once it has
        # reaped the RDB child: writes before that wait in its buffer).
        wait_until(lambda: b"master_link_status:up" in
                   rep.call("INFO", "replication")
                   and b"state=online" in redis.call("INFO", "replication"),
                   10, what="the replica in sync")
        first = [redis.call("FCALL", "roomcast_publish", "1", "sb",
                            json.dumps({"k": k})) for k in range(3)]
        assert redis.call("WAIT", "1", "3000") == 1
        # WAIT counts acknowledged offsets; read the replica itself before
        # promoting it, or the promotion may race the last writes.
        wait_until(lambda: rep.call("XLEN", PREFIX + "{sb}") == 3, 5,
                   what="the three publishes on the replica")
        wait_until(lambda: rep.call("FUNCTION", "LIST"), 5,
                   what="the library on the replica")
        rep.call("REPLICAOF", "NO", "ONE")          # promoted
        old = redis.call("FCALL", "roomcast_publish", "1", "sb",
                         json.dumps({"k": "old"}))  # never replicated
        assert old == first[-1] + 1
        new = rep.call("FCALL", "roomcast_publish", "1", "sb",
                       json.dumps({"k": "new"}))
        assert new > old, f"seq {new} reused after the promotion"
        again = rep.call("FCALL", "roomcast_publish", "1", "sb",
                         json.dumps({"k": "again"}))
        assert again == new + 1, "the new epoch goes on one by one"
        # the history on the new master: the old epoch, then the new one
        h = rep.call("FCALL", "roomcast_history", "1", "sb", str(first[0]))
        seqs = [int(e.split(b"|")[0]) for e in h[2:]]
        assert seqs == first[1:] + [new, again], h
        assert int(h[1]) == new - 1, "latest entry's epoch is the new base"
    finally:
        rep.stop()
        rep.kill()
    n.stop()


def test_churn_subscriptions_follow_members(redis, rnodes):
    node = rnodes("A", flags={"rate_limit": 1000, "rate_burst": 1000})
    half = N_ROOMS // 2

    def final_room(i, rnd):
        return f"c{(i * 7 + rnd) % half + half * (rnd % 2)}"

    def tmp_room(i, rnd):
        return f"c{(i * 13 + rnd + 5) % N_ROOMS}"

    async def one(i):
        return await connect(node, node.mint(f"u{i}", rooms=["c*"],
                                             pub=[]), timeout=20)

    async def main():
        clients = []
        for start in range(0, N_CHURN, 100):
            clients += await asyncio.gather(
                *(one(i) for i in range(start, min(start + 100, N_CHURN))))
        current = [None] * N_CHURN

        async def step(i, rnd):
            w = clients[i]
            if current[i] is not None:
                await ok(w, "leave", room=current[i], timeout=20)
            t = tmp_room(i, rnd)
            await ok(w, "join", room=t, timeout=20)
            await ok(w, "leave", room=t, timeout=20)
            current[i] = final_room(i, rnd)
            await ok(w, "join", room=current[i], timeout=20)

        async def churn_round(rnd):
            await asyncio.gather(*(step(i, rnd) for i in range(N_CHURN)))

        async def quiet_check(rnd, exact):
            want = set(current)
            assert node.m("roomcast_rooms") == len(want)
            chans = redis.channels()
            missing = {chan(r) for r in want} - chans
            assert not missing, f"round {rnd}: rooms with members but no " \
                                f"subscription: {sorted(missing)[:5]}"
            if exact:
                await await_until(
                    lambda: redis.channels() == {chan(r) for r in want},
                    6, what=f"round {rnd}: PUBSUB CHANNELS == node rooms")
                # the node counts a room unsubscribed when Redis's
                # confirmation arrives, a moment after PUBSUB CHANNELS
                # already shows it
                await await_until(
                    lambda: node.m(M_SUBSCRIBED) == len(want), 3,
                    what=f"round {rnd}: subscribed_rooms == node rooms")
            # every member still gets its room's messages, once
            with redis.conn() as c:
                for r in sorted(want):
                    c.send("FCALL", "roomcast_publish", "1", r,
                           json.dumps({"rnd": rnd, "room": r}))
                for r in sorted(want):
                    c.read()
            got = await asyncio.gather(*(recv_msgs(w, 1, timeout=15)
                                         for w in clients))
            for i, g in enumerate(got):
                assert g[0]["data"] == {"rnd": rnd, "room": current[i]}, \
                    f"client {i} in {current[i]}: {g[0]!r}"
            extra = await asyncio.gather(*(drain_frames(w, 0.2)
                                           for w in clients[:100]))
            assert not [f for fs in extra for f in fs
                        if f.get("op") == "msg"], "duplicate deliveries"

        # phase 1: rounds back to back, checked at each quiet point
        for rnd in range(3):
            await churn_round(rnd)
            await quiet_check(rnd, exact=(rnd == 2))
        # phase 2: rejoin rooms just as their unsubscribe comes due (the
        # halves alternate, the delay is ~2 s)
        for rnd in range(3, 6):
            t0 = time.monotonic()
            await churn_round(rnd)
            await asyncio.sleep(max(0.0, 2.05 - (time.monotonic() - t0)))
        await quiet_check(5, exact=True)

        # everyone leaves: no room, no subscription
        await asyncio.gather(*(ok(clients[i], "leave", room=current[i],
                                  timeout=20) for i in range(N_CHURN)))
        assert node.m("roomcast_rooms") == 0
        t0 = time.monotonic()
        await await_until(lambda: redis.channels() == set(), 6,
                          what="PUBSUB CHANNELS empty")
        print(f"churn: channels gone {time.monotonic() - t0:.1f}s after "
              "the last leave")
        assert node.m(M_SUBSCRIBED) == 0
        assert node.m("roomcast_rooms") == 0
        await close_all(clients)

    run(main(), 100)


# --------------------------------------------------------------------------
# 6. the roomcast CLI

def parse_table(out):
    lines = [ln for ln in out.splitlines() if ln.strip()]
    head = lines[0].split()
    assert head == ["ID", "ADDR", "STATE", "WORKERS", "CONNS", "ROOMS",
                    "AGE"], lines
    return {cells[0]: dict(zip(head, cells))
            for cells in (ln.split() for ln in lines[1:])}


def test_cli_publish_nodes_drain(redis, rnodes):
    a = rnodes("A")
    b = rnodes("B", flags={"drain_window_ms": 300})
    url = ["--redis", redis.url]

    async def main():
        ca = await connect(a, a.mint("ca", **ALL))
        ca2 = await connect(a, a.mint("ca2", **ALL))
        cb = await connect(b, b.mint("cb", **ALL))
        await ok(ca, "join", room="cli")
        await ok(cb, "join", room="cli")

        rc, out, errs = run_cli("publish", "cli", '{"x":[1,2]}', *url)
        assert rc == 0, errs
        seq = int(out.strip())
        for w in (ca, cb):
            f = (await recv_msgs(w, 1))[0]
            assert f == {"op": "msg", "room": "cli", "seq": seq,
                         "data": {"x": [1, 2]}}, f
        # the default URL comes from ROOMCAST_REDIS_URL
        rc, out, errs = run_cli("publish", "cli", "-5",
                                env={"ROOMCAST_REDIS_URL": redis.url})
        assert rc == 0 and int(out) == seq + 1, (rc, out, errs)
        rc, out, errs = run_cli("publish", "cli", "-", *url,
                                stdin='{"from": "stdin"}\n')
        assert rc == 0 and int(out) == seq + 2, (rc, out, errs)
        rc, out, errs = run_cli("publish", "--ephemeral", "cli", '"eph"',
                                *url)
        assert rc == 0, errs
        for w in (ca, cb):
            got = await recv_msgs(w, 3)
            assert got[0] == {"op": "msg", "room": "cli", "seq": seq + 1,
                              "data": -5}
            assert got[1]["data"] == {"from": "stdin"}
            assert got[2] == {"op": "msg", "room": "cli", "data": "eph"}, \
                got[2]
        for bad in ('{"x":', "not json", "[1,]", "", "{} {}"):
            rc, out, errs = run_cli("publish", "cli", bad, *url)
            assert rc == 2, (bad, rc, out, errs)
            assert "JSON" in errs, errs
        rc, _, errs = run_cli("publish", "cli", "1", "--ephemeral", *url)
        assert rc == 0
        rc, _, errs = run_cli("publish", "bad room", "1", *url)
        assert rc == 2, errs
        rc, _, errs = run_cli("publish", "cli", "1", "--redis",
                              "redis://127.0.0.1:1")
        assert rc == 1 and "connect" in errs, errs
        for w in (ca, cb):
            f = (await recv_msgs(w, 1))[0]
            assert f == {"op": "msg", "room": "cli", "data": 1}, f
            await assert_no_msgs(w, 0.3)

        # nodes: both, with their connection counts (heartbeat every 2 s)
        def table():
            rc, out, errs = run_cli("nodes", *url)
            assert rc == 0, errs
            t = parse_table(out)
            ok_ = (set(t) == {"A", "B"} and t["A"]["CONNS"] == "2"
                   and t["B"]["CONNS"] == "1")
            return t if ok_ else None

        t = wait_until(table, 6, interval=0.2, what="roomcast nodes")
        assert t["A"]["STATE"] == t["B"]["STATE"] == "serving", t
        assert t["A"]["ADDR"] == f"127.0.0.1:{a.port}", t
        assert t["B"]["ROOMS"] == "1", t
        rc, out, errs = run_cli("nodes", "--json", *url)
        assert rc == 0, errs
        js = {e["id"]: e for e in json.loads(out)}
        assert js["A"]["connections"] == 2 and js["B"]["connections"] == 1
        assert 0 <= js["A"]["age_ms"] < 5000, js
        rc, out, errs = run_cli("nodes", "--prefix", "other:", *url)
        assert rc == 0 and parse_table(out) == {}, (out, errs)

        # drain of an unknown node: exit 1, nothing happens
        rc, out, errs = run_cli("drain", "Z", *url)
        assert rc == 1 and "Z" in errs, (rc, out, errs)
        assert a.readyz() == 200 and b.readyz() == 200

        # drain B: B stops taking clients, its client is told to
        # reconnect and closed with 1012, B exits 0; A is unaffected
        rc, out, errs = run_cli("drain", "B", *url)
        assert rc == 0, (rc, out, errs)
        code, frames = await expect_close(cb, 10)
        assert code == 1012, (code, frames)
        assert any(isinstance(f, dict) and f.get("op") == "reconnect"
                   for f in frames), frames
        rcb = b.wait_exit(10)
        assert rcb == 0, f"B exited with {rcb}"
        assert a.readyz() == 200 and a.running()
        rc, out, errs = run_cli("publish", "cli", '"after drain"', *url)
        assert rc == 0
        f = (await recv_msgs(ca, 1))[0]
        assert f["data"] == "after drain"
        rc, out, _ = run_cli("nodes", *url)
        assert set(parse_table(out)) == {"A"}, out
        rc, out, errs = run_cli("drain", "B", *url)
        assert rc == 1, "drain of a node that is gone must fail"
        await close_all([ca, ca2])

    run(main(), 60)


def test_cli_drain_readyz_503_while_clients_remain(redis, rnodes):
    """Between `roomcast drain` and its exit, the node answers /readyz 503
    and refuses new upgrades."""
    b = rnodes("B", flags={"drain_window_ms": 3000,
                           "drain_timeout_ms": 10000})

    async def main():
        clients = [await connect(b, b.mint(f"c{i}", **ALL))
                   for i in range(20)]
        rc, out, errs = run_cli("drain", "B", "--redis", redis.url)
        assert rc == 0, errs
        await await_until(lambda: b.readyz() == 503, 3,
                          what="/readyz 503 after drain")
        still = [w for w in clients if w.open]
        assert still, "every client was closed at once; cannot observe"
        assert b.running()

        def b_state():
            rc, out, _ = run_cli("nodes", "--json", "--redis", redis.url)
            return rc == 0 and [e.get("state") for e in json.loads(out)]

        await await_until(lambda: b_state() == ["draining"], 3,
                          interval=0.2, what="roomcast nodes: B draining")
        codes = await asyncio.gather(*(expect_close(w, 12)
                                       for w in clients))
        assert {c for c, _ in codes} == {1012}, codes
        assert b.wait_exit(10) == 0

    run(main(), 40)


# --------------------------------------------------------------------------
# 7. pub/sub liveness

def test_killed_pubsub_link_is_noticed_and_recovered(redis, rnodes):
    a = rnodes("A")

    async def main():
        c = await connect(a, a.mint("c", **ALL))
        await ok(c, "join", room="live")
        s1 = redis.call("FCALL", "roomcast_publish", "1", "live", '"one"')
        assert seqs_of(await recv_msgs(c, 1)) == [s1]
        rec = a.m(M_RECONNECTS)
        killed = int(redis.cli("CLIENT", "KILL", "TYPE", "pubsub"))
        assert killed >= 1
        # published while the node has no subscription: caught up later
        s2 = redis.call("FCALL", "roomcast_publish", "1", "live", '"two"')
        await await_until(lambda: a.m(M_RECONNECTS) > rec, 5,
                          what="the node to reconnect")
        await await_until(lambda: a.readyz() == 200, 5, what="ready")
        await await_until(lambda: redis.channels() == {chan("live")}, 5,
                          what="resubscribed")
        s3 = redis.call("FCALL", "roomcast_publish", "1", "live", '"three"')
        got = await recv_msgs(c, 2, timeout=5)
        assert seqs_of(got) == [s2, s3], got
        assert [g["data"] for g in got] == ["two", "three"]
        await assert_no_msgs(c, 0.3)
        await close_all([c])

    run(main(), 30)


def test_killed_pubsub_link_room_without_traffic_yet(redis, rnodes):
    """A room joined before its first message: a message published while
    the node resubscribes after its subscription link was killed still
    reaches the member (history catch-up covers it too)."""
    a = rnodes("A")

    async def main():
        c = await connect(a, a.mint("c", **ALL))
        j = await ok(c, "join", room="fresh")
        assert j["seq"] == 0
        rec = a.m(M_RECONNECTS)
        assert int(redis.cli("CLIENT", "KILL", "TYPE", "pubsub")) >= 1
        s1 = redis.call("FCALL", "roomcast_publish", "1", "fresh", '"gap"')
        await await_until(lambda: a.m(M_RECONNECTS) > rec
                          and redis.channels() == {chan("fresh")}, 5,
                          what="reconnected and resubscribed")
        s2 = redis.call("FCALL", "roomcast_publish", "1", "fresh", '"next"')
        got = await drain_frames(c, 1.0)
        msgs = [f for f in got if f.get("op") == "msg"]
        assert seqs_of(msgs) == [s1, s2], (
            f"expected seqs {[s1, s2]} (the first published while the node "
            f"was resubscribing), got {msgs!r}")
        await close_all([c])

    run(main(), 30)


class FreezingProxy:
    """A TCP proxy to Redis that can freeze one connection: stop moving
    its bytes either way while keeping it open, as a dead NAT entry or a
    half-open socket would. The subscription link is the connection whose
    client sends SUBSCRIBE."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.pairs = []  # dicts: client, server, subscriber, frozen
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            socks = [self.lsock]
            with self.lock:
                live = [p for p in self.pairs if not p["frozen"]
                        and not p["closed"]]
            for p in live:
                socks += [p["client"], p["server"]]
            try:
                rd, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                continue
            for s in rd:
                if s is self.lsock:
                    self._accept()
                    continue
                p = next((p for p in live
                          if s in (p["client"], p["server"])), None)
                if p is None or p["frozen"]:
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close(p)
                    continue
                if s is p["client"] and b"SUBSCRIBE" in data.upper():
                    p["subscriber"] = True
                peer = p["server"] if s is p["client"] else p["client"]
                try:
                    peer.sendall(data)
                except OSError:
                    self._close(p)

    def _accept(self):
        c, _ = self.lsock.accept()
        try:
            s = socket.create_connection(("127.0.0.1", self.target), 2)
        except OSError:
            c.close()
            return
        with self.lock:
            self.pairs.append({"client": c, "server": s, "closed": False,
                               "subscriber": False, "frozen": False})

    def _close(self, p):
        p["closed"] = True
        for s in (p["client"], p["server"]):
            try:
                s.close()
            except OSError:
                pass

    def freeze_subscribers(self):
        with self.lock:
            n = 0
            for p in self.pairs:
                if p["subscriber"] and not p["closed"]:
                    p["frozen"] = True
                    n += 1
            return n

    def close(self):
        self.stopping = True
        self.thread.join(2)
        for p in self.pairs:
            self._close(p)
        self.lsock.close()


def test_silent_pubsub_link_found_by_probe(redis, nodes):
    """A subscription link that stays open but carries nothing any more is
    found by the probe and replaced, within a few seconds."""
    proxy = FreezingProxy(redis.port)
    a = None
    try:
        a = nodes(flags={"redis_url": f"redis://127.0.0.1:{proxy.port}",
                         "key_prefix": PREFIX}, name="A")
        a.wait_ready(10)

        async def main():
            c = await connect(a, a.mint("c", **ALL))
            await ok(c, "join", room="quiet")
            # and a room that has not seen a message yet
            await ok(c, "join", room="new")
            s1 = redis.call("FCALL", "roomcast_publish", "1", "quiet", "1")
            assert seqs_of(await recv_msgs(c, 1)) == [s1]
            fails, rec = a.m(M_PROBE_FAIL), a.m(M_RECONNECTS)
            assert proxy.freeze_subscribers() == 1
            t0 = time.monotonic()
            # published into the dead link: only history has them
            s2 = redis.call("FCALL", "roomcast_publish", "1", "quiet", "2")
            n1 = redis.call("FCALL", "roomcast_publish", "1", "new", "1")
            await await_until(lambda: a.m(M_PROBE_FAIL) > fails, 8,
                              what="a probe failure")
            t_detect = time.monotonic() - t0
            await await_until(lambda: a.m(M_RECONNECTS) > rec
                              and a.readyz() == 200, 5,
                              what="reconnected")
            s3 = redis.call("FCALL", "roomcast_publish", "1", "quiet", "3")
            n2 = redis.call("FCALL", "roomcast_publish", "1", "new", "2")
            got = by_room(await drain_frames(c, 1.0))
            assert seqs_of(got.get("quiet", [])) == [s2, s3], got
            assert seqs_of(got.get("new", [])) == [n1, n2], (
                f"room without earlier traffic: expected {[n1, n2]} (the "
                f"first published while the link was dead), got {got!r}")
            print(f"probe: silent link found after {t_detect:.1f}s")
            assert t_detect < 6, t_detect
            await close_all([c])

        run(main(), 30)
    finally:
        # the node goes before the proxy it talks through
        if a is not None and a.proc is not None:
            a.stop()
        proxy.close()


def test_stop_while_redis_is_down_exits_clean(redis, rnodes):
    """SIGTERM while the node is reconnecting to a dead Redis: the link
    still connecting is freed, the loop ends empty, exit 0 (under the
    sanitizer build a leaked hiredis context fails the exit code)."""
    a = rnodes("A")

    async def main():
        w = await connect(a, a.mint("c", **ALL))
        await ok(w, "join", room="x")
        redis.kill()
        await await_until(lambda: a.readyz() == 503, 5,
                          what="/readyz 503 with Redis gone")
        # let a few reconnect attempts start (backoff from ~100 ms)
        await asyncio.sleep(1.0)
        await close_all([w])

    run(main())
    assert a.stop(expect=0) == 0
    assert "loop_not_empty" not in a.log_text(), a.log_tail()
