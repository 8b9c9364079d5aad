# Limits against the real roomcastd: max_frame (1009), rate limit
# (rate_limited, then 4008), bad requests (bad_request, connection kept),
# slow consumers (4009, others unaffected), and the metrics that count them.
# SPDX-License-Identifier: MIT
import asyncio
import json
import socket
import time

import websockets

from harness import (SUBPROTOCOL, Checks, _init_ws, _recv_raw, assert_no_msgs,
                     close_all, connect, expect_close, metric, ok, recv_msgs,
                     request, run, send_json, wait_reply, wait_until,
                     ws_kwargs)

ALL = dict(rooms=["*"], pub=["*"])


def test_oversized_frame_1009(nodes):
    node = nodes(flags={"max_frame": 1024})

    async def main():
        a = await connect(node, node.mint("a", **ALL))
        # a frame just under the limit is fine
        frame = {"op": "publish", "id": 1, "room": "r", "data": ""}
        frame["data"] = "x" * (1000 - len(json.dumps(frame)))
        assert len(json.dumps(frame)) == 1000
        await send_json(a, frame)
        r = await _recv_raw(a, 5)
        assert r["op"] == "ok" and r["id"] == 1, r
        # one over the limit closes with 1009
        frame["id"] = 2
        frame["data"] = "x" * (2000 - 40)
        await send_json(a, frame)
        code, frames = await expect_close(a, 5)
        assert code == 1009, (code, frames)
        assert not any(isinstance(f, dict) and f.get("id") == 2
                       for f in frames), frames
        # the node is fine
        b = await connect(node, node.mint("b", **ALL))
        await ok(b, "ping")
        await close_all([b])

    run(main(), 20)


def test_oversized_frame_default_64k(node):
    async def main():
        a = await connect(node, node.mint("a", **ALL))
        await send_json(a, {"op": "publish", "id": 1, "room": "r",
                            "data": "y" * (65536 + 100)})
        code, frames = await expect_close(a, 5)
        assert code == 1009, (code, frames)

    run(main(), 20)


def test_flood_rate_limited_then_4008(nodes):
    node = nodes(flags={"rate_limit": 10, "rate_burst": 20})

    async def main():
        a = await connect(node, node.mint("a", **ALL))
        bystander = await connect(node, node.mint("b", **ALL))
        replies = []
        sent = 0
        closed = asyncio.Event()

        async def reader():
            try:
                while True:
                    replies.append(json.loads(await a.recv()))
            except websockets.exceptions.ConnectionClosed as e:
                closed.set()
                return e.rcvd.code if e.rcvd is not None else 1006

        async def writer():
            nonlocal sent
            for i in range(1, 301):
                if closed.is_set():
                    return
                try:
                    await send_json(a, {"op": "ping", "id": i})
                except websockets.exceptions.ConnectionClosed:
                    return
                sent = i
                await asyncio.sleep(0.001)

        rtask = asyncio.create_task(reader())
        await writer()
        code = await asyncio.wait_for(rtask, 10)
        oks = [f.get("id") for f in replies if f["op"] == "ok"]
        limited = [f for f in replies
                   if f["op"] == "error" and f.get("code") == "rate_limited"]
        other = [f for f in replies if f not in limited and f["op"] != "ok"]
        problems = []
        if code != 4008:
            problems.append(f"close code {code}, expected 4008")
        if other:
            problems.append(f"unexpected replies {other[:3]!r}")
        # the burst: the first 20 pings all answered ok, each once
        if oks[:20] != list(range(1, 21)):
            problems.append(f"first oks {oks[:25]!r}")
        if len(set(oks)) != len(oks):
            problems.append("duplicate ok replies")
        # refill at 10/s over well under a second of flooding
        if len(oks) > 30:
            problems.append(f"{len(oks)} oks (burst 20, 10/s)")
        if not limited:
            problems.append("no rate_limited reply")
        # every request with an id gets a reply with that id (PROTOCOL 2)
        no_id = [f for f in limited if not isinstance(f.get("id"), int)]
        if no_id:
            problems.append(f"{len(no_id)} of {len(limited)} rate_limited "
                            f"replies carry no id, e.g. {no_id[0]!r}")
        ids = [f.get("id") for f in limited if "id" in f]
        if len(set(ids)) != len(ids) or set(ids) & set(oks):
            problems.append("a request answered twice")
        # closed once it kept flooding: not after all 300 frames
        if sent >= 300:
            problems.append("not closed after 300 frames in ~0.4 s")
        assert not problems, (problems, f"sent={sent}",
                              f"replies={len(replies)}")
        # the rest of the node is unaffected
        await ok(bystander, "ping")
        m = node.metrics()
        assert metric(m, "roomcast_rate_limited_total") >= len(limited), m
        await close_all([bystander])

    run(main(), 30)


def test_rate_limit_recovers_when_client_slows_down(nodes):
    node = nodes(flags={"rate_limit": 10, "rate_burst": 20})

    async def main():
        a = await connect(node, node.mint("a", **ALL))
        for i in range(1, 26):
            await send_json(a, {"op": "ping", "id": i})
        got = [await _recv_raw(a, 5) for _ in range(25)]
        assert [f.get("id") for f in got[:20]] == list(range(1, 21)), got
        assert all(f["op"] == "ok" for f in got[:20]), got
        rest = got[20:]
        assert any(f.get("code") == "rate_limited" for f in rest), rest
        assert [f.get("id") for f in rest] == list(range(21, 26)), \
            f"replies to ids 21..25 must carry their ids: {rest!r}"
        # stop; the bucket refills; requests are served again
        await asyncio.sleep(1.5)
        for _ in range(5):
            await ok(a, "ping")
        await close_all([a])

    run(main(), 20)


BAD_FRAMES = [
    # (raw text, expected id in the reply or None)
    ("{not json", None),
    ("", None),
    ("[1,2,3]", None),
    ('"just a string"', None),
    ("42", None),
    ("null", None),
    ('{"id": 11}', 11),                                    # missing op
    ('{"op": 5, "id": 12}', 12),                           # op not a string
    ('{"op": "dance", "id": 13}', 13),                     # unknown op
    ('{"op": "join", "id": 14, "room": 5}', 14),           # room a number
    ('{"op": "join", "id": 15}', 15),                      # room missing
    ('{"op": "join", "id": "16", "room": "r"}', None),     # id a string
    ('{"op": "publish", "id": 17, "room": "r"}', 17),      # data missing
    ('{"op": "publish", "id": 18, "data": 1}', 18),        # room missing
    ('{"op": "leave", "id": 19, "room": ["r"]}', 19),      # room an array
    ('{"op": "refresh", "id": 20}', 20),                   # token missing
    ('{"op": "refresh", "id": 21, "token": 7}', 21),       # token a number
]


def test_bad_requests_keep_connection(node):
    async def main():
        a = await connect(node, node.mint("a", **ALL))
        before = metric(node.metrics(), "roomcast_bad_requests_total")
        assert before == 0
        for raw, rid in BAD_FRAMES:
            await a.send(raw)
            f = await _recv_raw(a, 5)
            assert f.get("op") == "error", (raw, f)
            assert f.get("code") == "bad_request", (raw, f)
            assert isinstance(f.get("message"), str), (raw, f)
            if rid is not None:
                assert f.get("id") == rid, (raw, f)
            # still usable
            r = await ok(a, "ping")
            assert r["op"] == "ok"
        # and it still joins and receives
        await ok(a, "join", room="r")
        await ok(a, "publish", room="r", data="after")
        got = await recv_msgs(a, 1)
        assert got[0]["data"] == "after"
        m = node.metrics()
        assert metric(m, "roomcast_bad_requests_total") == len(BAD_FRAMES), \
            {k: v for k, v in m.items() if "bad" in k}
        await close_all([a])

    run(main(), 30)


def test_deliveries_and_connection_metrics(node):
    async def main():
        m0 = node.metrics()
        assert metric(m0, "roomcast_connections") == 0
        assert metric(m0, "roomcast_deliveries_total") == 0
        a = await connect(node, node.mint("a", **ALL))
        b = await connect(node, node.mint("b", **ALL))
        c = await connect(node, node.mint("c", **ALL))
        await ok(a, "join", room="m")
        await ok(b, "join", room="m")
        await ok(c, "join", room="other")
        m1 = node.metrics()
        assert metric(m1, "roomcast_connections") == 3
        assert metric(m1, "roomcast_rooms") == 2
        for i in range(5):
            await ok(c, "publish", room="m", data=i)
        await recv_msgs(a, 5)
        await recv_msgs(b, 5)
        m2 = node.metrics()
        assert metric(m2, "roomcast_deliveries_total") == 10
        assert metric(m2, "roomcast_frames_in_total") >= \
            metric(m1, "roomcast_frames_in_total") + 5
        assert metric(m2, "roomcast_frames_out_total") >= \
            metric(m1, "roomcast_frames_out_total") + 15
        assert metric(m2, "roomcast_bytes_out_total") > \
            metric(m1, "roomcast_bytes_out_total")
        assert metric(m2, "roomcast_publish_deliver_seconds_count") >= 5
        await close_all([a, b, c])
        wait_until(lambda: metric(node.metrics(), "roomcast_connections")
                   == 0, 5, what="roomcast_connections == 0")
        wait_until(lambda: metric(node.metrics(), "roomcast_rooms") == 0, 5,
                   what="roomcast_rooms == 0")
        assert node.stats()["connections"] == 0

    run(main(), 30)


SLOW_MSGS = 2000  # 8 MB: more than any kernel send buffer (tcp_wmem max 4 MB)
MSG_BYTES = 4096


async def connect_slow(node, token):
    """A client with a tiny receive buffer that stops reading after the
    welcome and the join."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", node.port))
    s.setblocking(False)
    ws = await websockets.connect(
        node.url(), sock=s, subprotocols=[SUBPROTOCOL],
        extra_headers={"Authorization": "Bearer " + token},
        **ws_kwargs(node, max_queue=1, read_limit=1024))
    _init_ws(ws)
    w = await _recv_raw(ws, 5)
    assert w["op"] == "welcome", w
    return ws


def test_slow_consumer_4009(nodes):
    # max_publish must fit the small queue (config refuses it otherwise).
    node = nodes(flags={"outbound_queue_bytes": 65536, "max_publish": 32768,
                        "rate_limit": 100000,
                        "rate_burst": 100000})

    async def main():
        slow = await connect_slow(node, node.mint("slow", **ALL))
        await ok(slow, "join", room="flood")
        fast = [await connect(node, node.mint(f"fast{i}", **ALL))
                for i in range(2)]
        for f in fast:
            await ok(f, "join", room="flood")
        pub = await connect(node, node.mint("pub", **ALL))
        pad = "z" * (MSG_BYTES - 64)

        received = [[] for _ in fast]

        async def reader(i, ws):
            while len(received[i]) < SLOW_MSGS:
                received[i].extend(await recv_msgs(ws, 1, timeout=30))
            return received[i]

        async def publish_all():
            # Keep the fast clients close behind (at most LAG messages, far
            # less than their kernel buffers hold), so only the slow client
            # can build up a server-side queue.
            seqs = []
            window, lag = 8, 16
            for start in range(0, SLOW_MSGS, window):
                deadline = time.monotonic() + 30
                while min(len(r) for r in received) < start - lag:
                    assert time.monotonic() < deadline, "fast clients stuck"
                    await asyncio.sleep(0.001)
                ids = []
                for k in range(start, min(start + window, SLOW_MSGS)):
                    rid = next(pub.rc_ids)
                    ids.append(rid)
                    await send_json(pub, {"op": "publish", "id": rid,
                                          "room": "flood",
                                          "data": {"k": k, "pad": pad}})
                for rid in ids:
                    r = await wait_reply(pub, rid, 10)
                    assert r["op"] == "ok", r
                    seqs.append(r["seq"])
            return seqs

        results = await asyncio.gather(
            publish_all(), *(reader(i, f) for i, f in enumerate(fast)))
        seqs = results[0]
        assert seqs == list(range(1, SLOW_MSGS + 1))
        for got in results[1:]:
            assert [g["seq"] for g in got] == seqs
            assert [g["data"]["k"] for g in got] == list(range(SLOW_MSGS))

        # the slow one was closed with 4009; what it got is in order
        check = Checks()
        code, frames = await expect_close(slow, 15)
        msgs = [f for f in frames if isinstance(f, dict)
                and f.get("op") == "msg"]
        check(code == 4009, f"slow client closed with {code}, expected 4009 "
                            f"(after {len(msgs)} msgs)")
        got_seqs = [f["seq"] for f in msgs]
        check(got_seqs == list(range(1, len(got_seqs) + 1)),
              f"slow client seqs not 1..n: {got_seqs[:50]}")
        check(len(got_seqs) < SLOW_MSGS, "slow client got everything")
        print(f"slow client got {len(got_seqs)} msgs before close {code}")

        m = node.metrics()
        check(metric(m, "roomcast_slow_consumer_closes_total") == 1,
              "roomcast_slow_consumer_closes_total = "
              f"{metric(m, 'roomcast_slow_consumer_closes_total')}, want 1")
        q = metric(m, "roomcast_queue_bytes")
        check(q is not None and q >= 0, f"roomcast_queue_bytes = {q}")
        try:
            wait_until(lambda: metric(node.metrics(), "roomcast_connections")
                       == 3, 5, what="roomcast_connections == 3")
        except AssertionError as e:
            check(False, str(e))
        await close_all(fast + [pub])
        for name in ("roomcast_connections", "roomcast_queue_bytes"):
            try:
                wait_until(lambda: metric(node.metrics(), name) == 0, 5,
                           what=f"{name} == 0")
            except AssertionError as e:
                check(False, str(e))
        check.done()

    run(main(), 90)


def test_ping_pong_many_requests_pipelined(node):
    """Pipelined requests are answered once each, in order."""
    async def main():
        a = await connect(node, node.mint("a", **ALL))
        for i in range(1, 51):
            await send_json(a, {"op": "ping", "id": i})
        ids = [(await _recv_raw(a, 5))["id"] for _ in range(50)]
        assert ids == list(range(1, 51))
        await assert_no_msgs(a, 0.2)
        r = await request(a, "ping")
        assert r["op"] == "ok"
        await close_all([a])

    run(main(), 20)
