# Rooms against the real roomcastd: join/leave/publish, fan-out exactly
# once with consecutive seqs, room name rules, max_rooms, claim checks, and
# 1,000 clients in one room.
# SPDX-License-Identifier: MIT
import asyncio
import time

from harness import (assert_no_msgs, close_all, connect, err, metric, ok,
                     recv_msgs, run)

ALL = dict(rooms=["*"], pub=["*"])

PAYLOADS = [{"n": 1, "nested": {"a": [1, 2, {"b": None}]}},
            "text with unicode: caf\u00e9 \u2713 \U0001F600",
            42, -7.5, None, True, False, [1, "two", 3.0], {}, [], ""]


def test_publish_fanout_exactly_once(node):
    async def main():
        members = [await connect(node, node.mint(f"m{i}", **ALL))
                   for i in range(3)]
        outsider = await connect(node, node.mint("outsider", **ALL))
        publisher = await connect(node, node.mint("pub", **ALL))
        for m in members:
            r = await ok(m, "join", room="lobby")
            assert r["room"] == "lobby"
            assert r["seq"] == 0, f"fresh room must report seq 0: {r!r}"
        # the publisher is also a member: it gets its own messages once
        await ok(publisher, "join", room="lobby")
        await ok(outsider, "join", room="elsewhere")

        seqs = []
        for data in PAYLOADS:
            r = await ok(publisher, "publish", room="lobby", data=data)
            assert r["room"] == "lobby"
            seqs.append(r["seq"])
        assert seqs == list(range(1, len(PAYLOADS) + 1)), seqs

        for ws in members + [publisher]:
            got = await recv_msgs(ws, len(PAYLOADS), timeout=5)
            assert [g["seq"] for g in got] == seqs
            assert [g["data"] for g in got] == PAYLOADS
            assert all(g["room"] == "lobby" for g in got)
            assert all(set(g) == {"op", "room", "seq", "data"} for g in got), \
                got
            await assert_no_msgs(ws, 0.3)  # no duplicates
        await assert_no_msgs(outsider, 0.3)

        # other room, independent seq
        r = await ok(publisher, "publish", room="elsewhere", data="x")
        assert r["seq"] == 1
        got = await recv_msgs(outsider, 1, timeout=5)
        assert got[0] == {"op": "msg", "room": "elsewhere", "seq": 1,
                          "data": "x"}
        for ws in members:
            await assert_no_msgs(ws, 0.2)

        # a late joiner sees the room's latest seq, then only new messages
        late = await connect(node, node.mint("late", **ALL))
        r = await ok(late, "join", room="lobby")
        assert r["seq"] == len(PAYLOADS)
        await assert_no_msgs(late, 0.3)
        await close_all(members + [outsider, publisher, late])

    run(main(), 30)


def test_publisher_not_member_gets_nothing(node):
    async def main():
        member = await connect(node, node.mint("m", **ALL))
        publisher = await connect(node, node.mint("p", **ALL))
        await ok(member, "join", room="r")
        for i in range(5):
            await ok(publisher, "publish", room="r", data=i)
        got = await recv_msgs(member, 5)
        assert [g["data"] for g in got] == [0, 1, 2, 3, 4]
        await assert_no_msgs(publisher, 0.3)
        await close_all([member, publisher])

    run(main(), 20)


def test_leave_stops_delivery(node):
    async def main():
        a = await connect(node, node.mint("a", **ALL))
        b = await connect(node, node.mint("b", **ALL))
        p = await connect(node, node.mint("p", **ALL))
        await ok(a, "join", room="r")
        await ok(b, "join", room="r")
        await ok(p, "publish", room="r", data="one")
        assert (await recv_msgs(a, 1))[0]["data"] == "one"
        assert (await recv_msgs(b, 1))[0]["data"] == "one"
        r = await ok(a, "leave", room="r")
        assert r["room"] == "r"
        r = await ok(p, "publish", room="r", data="two")
        assert r["seq"] == 2
        got = await recv_msgs(b, 1)
        assert got[0]["data"] == "two" and got[0]["seq"] == 2
        await assert_no_msgs(a, 0.5)
        # leaving again: not joined any more
        await err(a, "leave", "not_joined", room="r")
        # and rejoining resumes delivery
        await ok(a, "join", room="r")
        await ok(p, "publish", room="r", data="three")
        got = await recv_msgs(a, 1)
        assert got[0]["data"] == "three" and got[0]["seq"] == 3
        await close_all([a, b, p])

    run(main(), 20)


def test_join_idempotent(node):
    async def main():
        a = await connect(node, node.mint("a", **ALL))
        r1 = await ok(a, "join", room="twice")
        r2 = await ok(a, "join", room="twice")
        assert r1["room"] == r2["room"] == "twice"
        assert r1["seq"] == r2["seq"] == 0
        await ok(a, "publish", room="twice", data={"k": "v"})
        got = await recv_msgs(a, 1)
        assert got[0] == {"op": "msg", "room": "twice", "seq": 1,
                          "data": {"k": "v"}}
        await assert_no_msgs(a, 0.5)  # once, not twice
        # one leave is enough to stop delivery
        await ok(a, "leave", room="twice")
        await err(a, "leave", "not_joined", room="twice")
        await close_all([a])

    run(main(), 20)


def test_leave_never_joined(node):
    async def main():
        a = await connect(node, node.mint("a", **ALL))
        r = await err(a, "leave", "not_joined", room="never")
        assert r["id"] == 1
        await ok(a, "ping")
        await close_all([a])

    run(main(), 10)


def test_room_names(node):
    bad = ["", "a" * 129, "has space", "caf\u00e9", "tab\there", "semi;colon",
           "quote\"d", "new\nline", "\u2603"]
    good = ["a", "a" * 128, "A-Z_a.z:0/9@x", "chat:general", "u/42@host"]

    async def main():
        a = await connect(node, node.mint("a", **ALL))
        for name in bad:
            r = await err(a, "join", "bad_room", room=name)
            assert "room" not in r or r["room"] == name
            await err(a, "publish", "bad_room", room=name, data=1)
        for name in good:
            r = await ok(a, "join", room=name)
            assert r["room"] == name
            r = await ok(a, "publish", room=name, data=name)
            got = await recv_msgs(a, 1, room=name)
            assert got[0]["data"] == name and got[0]["seq"] == r["seq"] == 1
        st = node.stats()
        assert st["rooms"] == len(good), st
        await close_all([a])

    run(main(), 20)


def test_max_rooms(nodes):
    node = nodes(flags={"max_rooms": 3})

    async def main():
        a = await connect(node, node.mint("a", **ALL))
        for r in ("r1", "r2", "r3"):
            await ok(a, "join", room=r)
        await err(a, "join", "too_many_rooms", room="r4")
        await ok(a, "join", room="r1")  # already joined: still fine
        await ok(a, "leave", room="r1")
        await ok(a, "join", room="r4")
        await err(a, "join", "too_many_rooms", room="r1")
        # the refused join did not join: nothing arrives from r1
        p = await connect(node, node.mint("p", **ALL))
        await ok(p, "publish", room="r1", data="no")
        await ok(p, "publish", room="r4", data="yes")
        got = await recv_msgs(a, 1)
        assert got[0]["room"] == "r4" and got[0]["data"] == "yes"
        await assert_no_msgs(a, 0.3)
        # the limit is per connection
        b = await connect(node, node.mint("b", **ALL))
        for r in ("r1", "r2", "r3"):
            await ok(b, "join", room=r)
        await close_all([a, b, p])

    run(main(), 20)


def test_forbidden_outside_claims(node):
    async def main():
        tok = node.mint("c", rooms=["chat:*", "lobby"], pub=["chat:general"])
        a = await connect(node, tok)
        await ok(a, "join", room="chat:x")
        await ok(a, "join", room="chat:general")
        await ok(a, "join", room="lobby")
        await err(a, "join", "forbidden", room="other")
        await err(a, "join", "forbidden", room="lobby2")
        await err(a, "join", "forbidden", room="chat")  # prefix is "chat:"
        await err(a, "publish", "forbidden", room="chat:x", data=1)
        await err(a, "publish", "forbidden", room="lobby", data=1)
        r = await ok(a, "publish", room="chat:general", data="hi")
        assert r["seq"] == 1
        got = await recv_msgs(a, 1)
        assert got[0]["room"] == "chat:general"
        # no msg from refused publishes
        await assert_no_msgs(a, 0.3)

        # no pub claim: may publish nowhere
        b = await connect(node, node.mint("b", rooms=["*"]))
        await ok(b, "join", room="chat:x")
        await err(b, "publish", "forbidden", room="chat:x", data=1)
        # no rooms claim: may join nothing
        c = await connect(node, node.mint("c2", pub=["*"]))
        await err(c, "join", "forbidden", room="chat:x")
        await ok(c, "publish", room="chat:x", data=2)
        got = await recv_msgs(a, 1)
        assert got[0] == {"op": "msg", "room": "chat:x", "seq": 1, "data": 2}
        await close_all([a, b, c])

    run(main(), 20)


N_CLIENTS = 1000
N_MSGS = 100


def test_thousand_clients_one_room(nodes):
    # rate limit off the publisher's path: 100 publishes fit the default
    # burst, but say so explicitly
    node = nodes(flags={"rate_limit": 1000, "rate_burst": 1000})

    async def one(i):
        ws = await connect(node, node.mint(f"u{i}", rooms=["big"]),
                           timeout=20)
        r = await ok(ws, "join", room="big", timeout=20)
        assert r["seq"] == 0
        return ws

    async def main():
        t0 = time.monotonic()
        clients = []
        for start in range(0, N_CLIENTS, 100):
            batch = await asyncio.gather(
                *(one(i) for i in range(start, min(start + 100, N_CLIENTS))))
            clients.extend(batch)
        assert len(clients) == N_CLIENTS
        pub = await connect(node, node.mint("pub", pub=["big"]))
        st = node.stats()
        assert st["connections"] == N_CLIENTS + 1, st
        m = node.metrics()
        assert metric(m, "roomcast_connections") == N_CLIENTS + 1
        t_conn = time.monotonic() - t0

        async def publish_all():
            seqs = []
            for k in range(N_MSGS):
                r = await ok(pub, "publish", room="big",
                             data={"k": k, "pad": "x" * 64}, timeout=20)
                seqs.append(r["seq"])
            return seqs

        async def collect(ws):
            return await recv_msgs(ws, N_MSGS, timeout=45)

        results = await asyncio.gather(publish_all(),
                                       *(collect(ws) for ws in clients))
        seqs, got = results[0], results[1:]
        assert seqs == list(range(1, N_MSGS + 1))
        for i, g in enumerate(got):
            assert [f["seq"] for f in g] == seqs, f"client {i}"
            assert [f["data"]["k"] for f in g] == list(range(N_MSGS)), \
                f"client {i}"
        # nothing extra
        extra = await asyncio.gather(*(assert_no_msgs(ws, 0.3)
                                       for ws in clients[:50]))
        assert len(extra) == 50
        m = node.metrics()
        assert metric(m, "roomcast_deliveries_total") == N_CLIENTS * N_MSGS
        t_all = time.monotonic() - t0
        print(f"connect {N_CLIENTS}: {t_conn:.1f}s, total {t_all:.1f}s")
        await close_all(clients + [pub])

    run(main(), 90)
