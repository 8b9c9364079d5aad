# `workers` (PROTOCOL.md sections 6 and 7, docs/WORKERS.md): one roomcastd
# node runs two worker processes on one client port (SO_REUSEPORT) under a
# supervisor, against a real redis-server. Clients land on both workers and
# one room's messages reach members on both; the admin listener sums the
# workers; a worker killed with SIGKILL is replaced and its clients come
# back (join with since) without losing a durable message; SIGTERM drains
# both and the node exits 0 with no worker left; `workers` 2 without
# redis_url is refused. Every process is stopped by PID at teardown.
# SPDX-License-Identifier: MIT
import asyncio
import json
import os
import signal
import time

import websockets.exceptions

from harness import (Timeout, connect, ok, recv_json, recv_msgs, run,
                     run_cli, run_roomcastd, wait_until)

ALL = dict(rooms=["*"], pub=["*"])
RESUME_SECRET = "workers-test-resume-secret-0123456789abcdef"
ROOM = "chat:workers"


def worker_flags(**more):
    flags = {"workers": 2, "resume_secret": RESUME_SECRET,
             "drain_window_ms": 500, "drain_timeout_ms": 5000}
    flags.update(more)
    return flags


def per_worker(node):
    return node.stats()["workers"]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def spread_clients(node, want=10, limit=60):
    """Connect clients until both workers hold some (the kernel picks the
    worker by the connection's hash); return them, all joined to ROOM."""
    wss = []
    while len(wss) < limit:
        for _ in range(want if not wss else 4):
            ws = await connect(node, node.mint(f"u{len(wss)}", **ALL))
            await ok(ws, "join", room=ROOM)
            wss.append(ws)
        await asyncio.sleep(0.6)  # the supervisor polls every 250 ms
        conns = [w.get("connections", 0) for w in per_worker(node)]
        if len(conns) == 2 and min(conns) > 0 and sum(conns) == len(wss):
            return wss
    raise AssertionError(f"clients never spread over both workers: {conns}")


def test_workers_without_redis_is_refused():
    rc, _, err, _ = run_roomcastd(["--workers", "2", "--dev-no-auth",
                                   "--listen", "127.0.0.1:1",
                                   "--admin-listen", "127.0.0.1:1"])
    assert rc == 2, err
    assert "workers" in err and "redis_url" in err and "Redis" in err, err


def test_two_workers_one_port_fanout_and_sums(redis, rnodes):
    node = rnodes(name="wn1", flags=worker_flags())

    async def body():
        wss = await spread_clients(node)
        pub = wss[0]
        await ok(pub, "publish", room=ROOM, data={"n": 1})
        for ws in wss:
            (m,) = await recv_msgs(ws, 1, timeout=10, room=ROOM)
            assert m["data"] == {"n": 1}
        n = len(wss)

        def summed():
            m = node.metrics()
            st = per_worker(node)
            return (m.get("roomcast_connections") == n
                    and m.get("roomcast_deliveries_total") == n
                    and sum(w["deliveries"] for w in st) == n
                    and all(w["deliveries"] > 0 for w in st)
                    and m.get("roomcast_workers") == 2
                    and m.get("roomcast_workers_up") == 2
                    and m.get("roomcast_ready") == 1) and m
        m = wait_until(summed, 10, what="/metrics sums both workers")
        # a histogram sums bucket by bucket: +Inf counts every delivery
        inf = [v for k, v in m.items()
               if k.startswith("roomcast_publish_deliver_seconds_bucket")
               and "+Inf" in k]
        assert inf == [n], m
        st = node.stats()
        assert st["connections"] == n and len(st["workers"]) == 2
        assert st["node"] == "wn1" and st["ready"] is True
        for ws in wss:
            await ws.close()

    run(body(), timeout=90)
    assert node.readyz() == 200
    # one registry entry for the node, with its worker count
    rc, out, err = run_cli("nodes", "--json", "--redis", redis.url,
                           "--prefix", "roomcast:")
    assert rc == 0, err
    flat = json.loads(out)
    ids = [e["id"] for e in flat]
    assert ids == ["wn1"], out
    assert flat[0]["workers"] == 2, out
    rc, out, err = run_cli("nodes", "--redis", redis.url,
                           "--prefix", "roomcast:")
    assert rc == 0 and "wn1" in out and "WORKERS" in out, out


def test_killed_worker_is_replaced_and_clients_lose_nothing(redis, rnodes):
    node = rnodes(name="wn2", flags=worker_flags())
    total = 60

    pubseqs = []

    async def follower(ws, sub, seqs, stop):
        """Read ROOM; after a drop, reconnect and join with since."""
        while True:
            try:
                f = await recv_json(ws, timeout=0.5)
                if f.get("op") == "msg" and f.get("room") == ROOM:
                    seqs.append(f["seq"])
            except Timeout:
                if stop.is_set() and seqs and seqs[-1] == pubseqs[-1]:
                    return ws
            except (websockets.exceptions.ConnectionClosed, OSError):
                for _ in range(100):
                    try:
                        ws = await connect(node, node.mint(sub, **ALL))
                        break
                    except (OSError, websockets.exceptions.WebSocketException):
                        await asyncio.sleep(0.1)
                since = seqs[-1] if seqs else 0
                r = await ok(ws, "join", room=ROOM, since=since)
                assert r.get("recovered") is True, r
                seqs.append(("rejoined", since))

    async def body():
        wss = await spread_clients(node)
        # durable seqs start at 1 once everyone has joined
        victim = per_worker(node)[1]
        vpid, vconns = victim["pid"], victim["connections"]
        assert vconns > 0
        stop = asyncio.Event()
        seqs = [[] for _ in wss]
        tasks = [asyncio.ensure_future(follower(ws, f"u{i}", seqs[i], stop))
                 for i, ws in enumerate(wss)]
        for k in range(1, total + 1):
            pubseqs.append(int(redis.call("FCALL", "roomcast_publish", "1",
                                          ROOM, json.dumps({"k": k}))))
            if k == 20:
                os.kill(vpid, signal.SIGKILL)
            await asyncio.sleep(0.03)
        stop.set()
        try:
            done = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        except asyncio.TimeoutError:
            raise AssertionError("followers stuck: " + repr(
                [(i, s[-3:], len(s)) for i, s in enumerate(seqs)]))
        rejoined = 0
        for s in seqs:
            got = [x for x in s if not isinstance(x, tuple)]
            rejoined += len(s) - len(got)
            # every durable message once, in order, across the kill
            assert got == pubseqs, (s, pubseqs)
        assert rejoined >= vconns, (rejoined, vconns)
        for ws in done:
            await ws.close()
        return vpid

    vpid = run(body(), timeout=120)
    assert not alive(vpid)

    def replaced():
        w = per_worker(node)[1]
        return w["alive"] and w["pid"] != vpid and w["ready"] and w
    w = wait_until(replaced, 15, what="worker 1 replaced")
    assert w["restarts"] == 1
    wait_until(lambda: node.readyz() == 200, 10, what="node ready again")
    assert node.m("roomcast_worker_restarts_total") == 1
    log = node.log_text()
    assert f"event=worker_exit worker=1 pid={vpid}" in log
    assert "signal=9" in log and "event=worker_restart worker=1" in log


def test_sigterm_drains_every_worker_and_exits_0(redis, rnodes):
    node = rnodes(name="wn3", flags=worker_flags())
    pids = [w["pid"] for w in per_worker(node)]

    async def body():
        wss = await spread_clients(node)
        node.signal(signal.SIGTERM)
        told = 0
        for ws in wss:
            while True:
                try:
                    f = await recv_json(ws, timeout=10)
                except websockets.exceptions.ConnectionClosed as e:
                    assert e.rcvd is not None and e.rcvd.code == 1012, e
                    break
                if f.get("op") == "reconnect":
                    assert f.get("resume"), f
                    told += 1
        assert told == len(wss)

    run(body(), timeout=60)
    rc = node.wait_exit(15)
    assert rc == 0, node.log_tail()
    for p in pids:
        wait_until(lambda: not alive(p), 5, what=f"worker {p} gone")
    assert "event=supervisor_done code=0" in node.log_text()
