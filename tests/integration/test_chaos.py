# Chaos against real processes: a real redis-server stalled (SIGSTOP for
# 6 s, then SIGCONT) during a fresh join, a join with since, a publish, a
# resume and a session save; Redis SIGKILLed mid-stream and restarted; and a
# real Sentinel setup (master, replica, three sentinels) switched over by
# SENTINEL FAILOVER and by a SIGKILL of the master, both under publish load.
# The CLI's redis-sentinel:// and --wait are tested here too.
#
# In every case: the node stays up (same PID), every request gets exactly
# one reply (ok or error), and every durable message acknowledged (ok with a
# seq; with WAIT when there are replicas) reaches every member exactly once,
# in seq order.
# SPDX-License-Identifier: MIT
import asyncio
import json
import time

import pytest

from harness import (PREFIX, Resp, RespError, Timeout, _recv_raw, open_ws,
                     run, run_cli, send_json, wait_until)
from sentinel_env import SentinelEnv, SentinelPublisher, _resp_call

ALL = dict(rooms=["*"], pub=["*"])
STALL_S = 6.0
RESUME_SECRET = "chaos-test-resume-secret-0123456789abcdef"
# messages caught up from history after a lost subscription: counted by
# the node (after the adapter rework) or by the Redis adapter (before)
M_CAUGHT = ("roomcast_catchup_messages_total",
            "roomcast_redis_recovered_messages_total")


def caught_up(node):
    m = node.metrics()
    return sum(m.get(k, 0) for k in M_CAUGHT)


# --------------------------------------------------------------------------
# a client that reads all the time and checks the reply rule

class Client:
    """A WebSocket client whose frames are read by a background task.
    request() sends a frame with a fresh id and waits for its reply; every
    reply is counted by id, so check() can assert one reply per request."""

    def __init__(self, name):
        self.name = name
        self.ws = None
        self.frames = []
        self.replies = {}   # id -> [reply frames]
        self.sent = {}      # id -> request frame
        self.ids = 0
        self.task = None
        self.closed = None  # close code once the server closed
        self.welcomes = []
        self.node = None

    async def open(self, node, token, resume=None, timeout=15.0):
        self.node = node
        q = {"resume": resume} if resume else None
        self.ws = await open_ws(node, token, query=q)
        w = await _recv_raw(self.ws, timeout)
        assert w.get("op") == "welcome", f"{self.name}: {w!r}"
        self.welcomes.append(w)
        self.task = asyncio.ensure_future(self._pump())
        return w

    async def _pump(self):
        try:
            while True:
                raw = await self.ws.recv()
                f = json.loads(raw)
                self.frames.append(f)
                if f.get("op") in ("ok", "error") and "id" in f:
                    self.replies.setdefault(f["id"], []).append(f)
                if f.get("op") == "welcome":
                    self.welcomes.append(f)
        except Exception as e:  # closed: keep the code
            self.closed = getattr(getattr(e, "rcvd", None), "code", 1006)

    async def request(self, op, timeout=20.0, **fields):
        self.ids += 1
        rid = self.ids
        frame = dict(op=op, id=rid, **fields)
        self.sent[rid] = frame
        await send_json(self.ws, frame)
        deadline = time.monotonic() + timeout
        while rid not in self.replies:
            if time.monotonic() > deadline:
                dead = "" if self.node.running() else (
                    f"; node {self.node.name} DIED (exit "
                    f"{self.node.proc.poll()}): "
                    + self.node.log_text().strip().splitlines()[-1])
                raise Timeout(f"{self.name}: no reply to {frame!r} in "
                              f"{timeout}s{dead}")
            await asyncio.sleep(0.01)
        return self.replies[rid][0]

    async def ok(self, op, **fields):
        r = await self.request(op, **fields)
        assert r["op"] == "ok", f"{self.name} {op} {fields}: {r!r}"
        return r

    def msgs(self, room=None):
        return [f for f in self.frames if f.get("op") == "msg"
                and (room is None or f["room"] == room)]

    def check_replies(self):
        """One reply per request, no reply without a request."""
        bad = {i: len(self.replies.get(i, [])) for i in self.sent
               if len(self.replies.get(i, [])) != 1}
        stray = set(self.replies) - set(self.sent)
        assert not bad, f"{self.name}: requests with != 1 reply: {bad}"
        assert not stray, f"{self.name}: replies to unknown ids {stray}"

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            await asyncio.wait([self.task], timeout=3)


async def until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {what} "
                                 f"(last {v!r})")
        await asyncio.sleep(0.05)


def assert_room(c, room, want_seqs, may=()):
    """c got room's msgs in strictly increasing seq order, each seq once,
    every seq of want_seqs, and nothing but want_seqs and may."""
    got = [f["seq"] for f in c.msgs(room)]
    assert got == sorted(set(got)), \
        f"{c.name} {room}: out of order or duplicated: {got}"
    missing = sorted(set(want_seqs) - set(got))
    assert not missing, f"{c.name} {room}: missing {missing} (got {got})"
    extra = sorted(set(got) - set(want_seqs) - set(may))
    assert not extra, f"{c.name} {room}: unexpected seqs {extra}"


def fcall(redis, room, data):
    return int(redis.call("FCALL", "roomcast_publish", "1", room,
                          json.dumps(data)))


async def ready_again(nodes, timeout=20.0):
    await until(lambda: all(n.readyz() == 200 for n in nodes), timeout,
                "/readyz 200 on every node")


def same_pid(node, pid):
    assert node.running() and node.proc.pid == pid, \
        f"{node.name}: the node died (rc {node.proc.poll()})"
    assert node.healthz() == 200


async def stall(redis, seconds=STALL_S):
    """SIGSTOP Redis, SIGCONT seconds later (a task: await it)."""
    redis.pause()
    try:
        await asyncio.sleep(seconds)
    finally:
        redis.resume()


# --------------------------------------------------------------------------
# Redis stalled (SIGSTOP 6 s)

def test_stall_during_fresh_join(redis, rnodes):
    """(a) A join of a room new to the node while Redis does not answer:
    one reply; after SIGCONT the node is ready again and the room works."""
    a = rnodes("A")
    pid = a.proc.pid

    async def main():
        warm, c = Client("warm"), Client("c")
        await warm.open(a, a.mint("warm", **ALL))
        await c.open(a, a.mint("c", **ALL))
        await warm.ok("join", room="warm")
        s_warm0 = fcall(redis, "warm", {"n": 0})
        await until(lambda: warm.msgs("warm"), 5, "warm msg")
        st = asyncio.ensure_future(stall(redis))
        await asyncio.sleep(0.3)
        r = await c.request("join", room="fresh", timeout=20)
        await st
        await ready_again([a])
        if r["op"] == "error":
            await c.ok("join", room="fresh")
        s_f = fcall(redis, "fresh", {"n": 1})
        s_w = fcall(redis, "warm", {"n": 2})
        await until(lambda: c.msgs("fresh") and len(warm.msgs("warm")) >= 2,
                    10, "msgs after the stall")
        await asyncio.sleep(0.3)
        assert_room(c, "fresh", [s_f])
        assert_room(warm, "warm", [s_warm0, s_w])
        c.check_replies()
        warm.check_replies()
        print(f"fresh join during the stall: {r['op']} "
              f"{r.get('code', '')}")
        await c.close()
        await warm.close()

    run(main(), 60)
    same_pid(a, pid)


def test_stall_during_join_since(redis, rnodes):
    """(b) join with since (a history read) during the stall: one reply;
    whether ok or error, the client ends with every message after since
    once, in order (rejoining with since after an error)."""
    a = rnodes("A")
    pid = a.proc.pid

    async def main():
        m, c = Client("member"), Client("c")
        await m.open(a, a.mint("m", **ALL))
        await c.open(a, a.mint("c", **ALL))
        await m.ok("join", room="h")
        seqs = [fcall(redis, "h", {"n": i}) for i in range(5)]
        since = seqs[0]
        st = asyncio.ensure_future(stall(redis))
        await asyncio.sleep(0.3)
        r = await c.request("join", room="h", since=since, timeout=20)
        await st
        await ready_again([a])
        if r["op"] == "error":
            await c.ok("join", room="h", since=since)
        more = [fcall(redis, "h", {"n": 5 + i}) for i in range(3)]
        await until(lambda: len(c.msgs("h")) >= 7 and
                    len(m.msgs("h")) >= 8, 10, "history and live")
        await asyncio.sleep(0.3)
        assert_room(c, "h", seqs[1:] + more)
        assert_room(m, "h", seqs + more)
        c.check_replies()
        print(f"join since during the stall: {r['op']} {r.get('code', '')}")
        await c.close()
        await m.close()

    run(main(), 60)
    same_pid(a, pid)


def test_stall_during_publish(redis, rnodes):
    """(c) A client publish during the stall: one reply. Acknowledged (ok
    with a seq): every member gets it once. An error means "unknown": the
    message may still arrive (Redis ran the FCALL after SIGCONT), at most
    once."""
    a, b = rnodes("A"), rnodes("B")
    pids = (a.proc.pid, b.proc.pid)

    async def main():
        p, ma, mb = Client("pub"), Client("ma"), Client("mb")
        await p.open(a, a.mint("p", **ALL))
        await ma.open(a, a.mint("ma", **ALL))
        await mb.open(b, b.mint("mb", **ALL))
        for c in (p, ma, mb):
            await c.ok("join", room="pr")
        s0 = (await p.ok("publish", room="pr", data={"n": 0}))["seq"]
        st = asyncio.ensure_future(stall(redis))
        await asyncio.sleep(0.3)
        r = await p.request("publish", room="pr", data={"n": 1}, timeout=20)
        await st
        await ready_again([a, b])
        s2 = (await p.ok("publish", room="pr", data={"n": 2}))["seq"]
        want = [s0, s2] + ([r["seq"]] if r["op"] == "ok" else [])
        may = () if r["op"] == "ok" else (s0 + 1,)
        await until(lambda: all(c.msgs("pr") and
                                c.msgs("pr")[-1]["seq"] == s2
                                for c in (p, ma, mb)), 10, "last publish")
        await asyncio.sleep(0.3)
        for c in (p, ma, mb):
            assert_room(c, "pr", want, may)
            c.check_replies()
        print(f"publish during the stall: {r['op']} {r.get('code', '')}; "
              f"delivered: {[f['data'] for f in ma.msgs('pr')]}")
        for c in (p, ma, mb):
            await c.close()

    run(main(), 60)
    same_pid(a, pids[0])
    same_pid(b, pids[1])


def test_stall_during_resume(redis, rnodes):
    """(d) A drains; its client comes back on B with its resume token while
    Redis is stopped: exactly one welcome; resumed or not, the client ends
    with every message of its room once, in order (joining with since when
    the resume was refused)."""
    flags = {"resume_secret": RESUME_SECRET, "drain_window_ms": 200}
    a, b = rnodes("A", flags=flags), rnodes("B", flags=flags)
    pid_b = b.proc.pid

    async def main():
        c = Client("c")
        tok = a.mint("c", **ALL)
        await c.open(a, tok)
        await c.ok("join", room="rr")
        seqs = [fcall(redis, "rr", {"n": i}) for i in range(2)]
        await until(lambda: len(c.msgs("rr")) == 2, 5, "before the drain")
        st, _, _ = a.admin("/drain", method="POST")
        assert st in (200, 202), st
        rec = await until(lambda: [f for f in c.frames
                                   if f.get("op") == "reconnect"], 10,
                          "reconnect frame")
        await until(lambda: c.closed is not None, 10, "close after drain")
        assert a.wait_exit(10) == 0
        seqs.append(fcall(redis, "rr", {"n": 2}))  # missed while away
        c2 = Client("c2")
        st = asyncio.ensure_future(stall(redis))
        await asyncio.sleep(0.3)
        w = await c2.open(b, tok, resume=rec[0]["resume"], timeout=20)
        await st
        await ready_again([b])
        if w.get("resumed"):
            assert [x["room"] for x in w["rooms"]] == ["rr"], w
        else:
            await c2.ok("join", room="rr", since=seqs[1])
        seqs += [fcall(redis, "rr", {"n": 3 + i}) for i in range(2)]
        await until(lambda: c2.msgs("rr") and
                    c2.msgs("rr")[-1]["seq"] == seqs[-1], 10, "caught up")
        await asyncio.sleep(0.3)
        assert_room(c2, "rr", seqs[2:])
        assert len(c2.welcomes) == 1, c2.welcomes
        c2.check_replies()
        print(f"resume during the stall: resumed={w.get('resumed')}")
        await c2.close()

    run(main(), 60)
    same_pid(b, pid_b)


def test_stall_during_session_save(redis, rnodes):
    """(e) A client leaves on its own while Redis is stopped (the node
    saves its session): the node stays up and serves its other clients;
    the resume token afterwards gives one welcome (resumed, or quietly
    refused), and nothing is lost either way."""
    flags = {"resume_secret": RESUME_SECRET}
    a = rnodes("A", flags=flags)
    pid = a.proc.pid

    async def main():
        c, other = Client("c"), Client("other")
        tok = a.mint("c", **ALL)
        w = await c.open(a, tok)
        await other.open(a, a.mint("o", **ALL))
        for x in (c, other):
            await x.ok("join", room="ss")
        seqs = [fcall(redis, "ss", {"n": 0})]
        await until(lambda: c.msgs("ss"), 5, "first msg")
        st = asyncio.ensure_future(stall(redis))
        await asyncio.sleep(0.3)
        await c.close()
        await st
        await ready_again([a])
        seqs.append(fcall(redis, "ss", {"n": 1}))
        c2 = Client("c2")
        w2 = await c2.open(a, tok, resume=w["resume"])
        if not w2.get("resumed"):
            await c2.ok("join", room="ss", since=seqs[0])
        seqs.append(fcall(redis, "ss", {"n": 2}))
        await until(lambda: c2.msgs("ss") and
                    c2.msgs("ss")[-1]["seq"] == seqs[-1] and
                    other.msgs("ss") and
                    other.msgs("ss")[-1]["seq"] == seqs[-1], 10, "caught up")
        await asyncio.sleep(0.3)
        assert_room(c2, "ss", seqs[1:])
        assert_room(other, "ss", seqs)
        assert len(c2.welcomes) == 1
        for x in (c2, other):
            x.check_replies()
        print(f"resume after a save during the stall: "
              f"resumed={w2.get('resumed')}")
        await c2.close()
        await other.close()

    run(main(), 60)
    same_pid(a, pid)


# --------------------------------------------------------------------------
# Redis SIGKILLed mid-stream and restarted (empty)

def test_kill_redis_mid_stream_ws_publishes(redis, rnodes):
    """A client publishes through the gateway every 20 ms while Redis is
    SIGKILLed and restarted 1 s later: every publish gets one reply, both
    nodes stay up, every acknowledged seq reaches the members on both
    nodes once, in order (Redis may lose the one publish it acknowledged
    just before it died: it answers the caller before it writes the
    PUBLISH, and it keeps nothing)."""
    a, b = rnodes("A"), rnodes("B")
    pids = (a.proc.pid, b.proc.pid)

    async def main():
        p, ma, mb = Client("pub"), Client("ma"), Client("mb")
        await p.open(a, a.mint("p", **ALL))
        await ma.open(a, a.mint("ma", **ALL))
        await mb.open(b, b.mint("mb", **ALL))
        for c in (p, ma, mb):
            await c.ok("join", room="kr")
        replies = []
        stop = asyncio.Event()

        async def publisher():
            n = 0
            while not stop.is_set():
                r = await p.request("publish", room="kr", data={"n": n})
                replies.append((n, r))
                n += 1
                await asyncio.sleep(0.02)

        pt = asyncio.ensure_future(publisher())
        await until(lambda: len(replies) >= 20, 10, "traffic")
        redis.kill()
        await asyncio.sleep(1.0)
        redis.start()
        await ready_again([a, b])
        n_after = len(replies)
        await until(lambda: len(replies) >= n_after + 20, 10,
                    "traffic after the restart")
        stop.set()
        await pt
        acked = [(n, r["seq"]) for n, r in replies if r["op"] == "ok"]
        errs = [n for n, r in replies if r["op"] != "ok"]
        last = acked[-1][1]
        await until(lambda: all(c.msgs("kr") and
                                c.msgs("kr")[-1]["seq"] == last
                                for c in (ma, mb)), 10, "caught up")
        await asyncio.sleep(0.3)
        first_err = errs[0] if errs else None
        before = [x for x in acked if first_err is None or x[0] < first_err]
        for c in (ma, mb):
            got = {f["data"]["n"] for f in c.msgs("kr")}
            lost = [x for x in acked if x[0] not in got]
            excused = [before[-1]] if before else []
            assert all(x in excused for x in lost), \
                f"{c.name}: acknowledged publishes lost: {lost[:5]}"
            s = [f["seq"] for f in c.msgs("kr")]
            assert s == sorted(set(s)), f"{c.name}: order/dup"
            ns = [f["data"]["n"] for f in c.msgs("kr")]
            assert len(ns) == len(set(ns)), f"{c.name}: dup"
        p.check_replies()
        print(f"kill: {len(acked)} acked, {len(errs)} errors")
        for c in (p, ma, mb):
            await c.close()

    run(main(), 60)
    same_pid(a, pids[0])
    same_pid(b, pids[1])


# --------------------------------------------------------------------------
# Sentinel

@pytest.fixture
def sentinel(tmp_path, request):
    """Master, replicas (1, or request.param), three sentinels."""
    env = SentinelEnv(tmp_path / "sentinel",
                      replicas=getattr(request, "param", 1))
    request.node.rc_redis = env.rc_redis
    try:
        env.start()
    except BaseException:
        env.stop()
        raise
    yield env
    env.stop()


def snodes(nodes, env, *names, **flags):
    f = {"redis_url": env.url, "key_prefix": PREFIX,
         "resume_secret": RESUME_SECRET}
    f.update(flags)
    out = []
    for name in names:
        n = nodes(flags=f, name=name)
        n.wait_ready(15)
        out.append(n)
    return out


def lost_detail(env, members, acked, lost, room, t0):
    """What a failure needs to be understood: each lost publish's seq and
    time (seconds after the switch began), who got it, the seqs each
    member got around it, and whether the current master's stream has it."""
    out = []
    for k in lost[:3]:
        ln = next(x for x in acked if x[1] == k)
        seq = ln[3]
        who = [c.name for c in members
               if any(f["data"].get("k") == k for f in c.msgs(room))]
        near = {c.name: [f["seq"] for f in c.msgs(room)
                         if abs(f["seq"] - seq) <= 3] for c in members}
        try:
            port = env.master_port()
            has = _resp_call(port, "XRANGE", PREFIX + "{" + room + "}",
                             f"{seq}-0", f"{seq}-0") if port else "?"
        except Exception as e:  # diagnostics only
            has = repr(e)
        out.append(f"k={k} seq={seq} at t{ln[5] - t0:+.3f}s got-by={who} "
                   f"near={near} master-has={bool(has)}")
    return "; ".join(out)


def failover_under_load(env, nodes, how):
    """Nodes A and B on the sentinel URL; members in two rooms on both;
    a backend publisher (FCALL + WAIT for every replica) and a client
    publishing through A; then the master is switched (how: "failover" or
    "kill")."""
    # The outage (a few seconds at 100 publishes/s per room) must fit in
    # the history for catch-up to be complete (docs/REDIS.md).
    a, b = snodes(nodes, env, "A", "B", history_size=2000)
    pids = (a.proc.pid, b.proc.pid)
    rooms = ["f0", "f1"]
    out = {}

    async def main():
        members = []
        for node, name in ((a, "ma"), (b, "mb"), (a, "ma2")):
            c = Client(name)
            await c.open(node, node.mint(name, **ALL))
            for r in rooms:
                await c.ok("join", room=r)
            members.append(c)
        p = Client("wspub")
        await p.open(a, a.mint("p", **ALL))
        replies = []
        stop = asyncio.Event()

        async def ws_publisher():
            n = 0
            while not stop.is_set():
                r = await p.request("publish", room="f0",
                                    data={"ws": n}, timeout=30)
                replies.append((n, r))
                n += 1
                await asyncio.sleep(0.05)

        # WAIT for every replica: with two, a write the old master takes
        # after the promotion is still confirmed by the replica that has
        # not been moved yet, and that one is resynced from the new master
        # (the write is lost): WAIT 1 would not tell.
        pub = SentinelPublisher(env, rooms, wait=len(env.replicas),
                                wait_ms=200)
        pt = asyncio.ensure_future(ws_publisher())
        try:
            await until(lambda: len(members[0].msgs()) >= 40, 10,
                        "traffic before the switch")
            old = env.master_port()
            rec0 = caught_up(a) + caught_up(b)
            t0 = time.monotonic()
            if how == "kill":
                env.by_port(old).kill()
            else:
                env.failover()
            seen_503 = set()
            if how == "kill":
                # The new master has no replica, and with
                # min-replicas-to-write it refuses writes (FUNCTION LOAD,
                # publishes) until one is back: start the killed one again,
                # empty, as its replica, as an operator would.
                new = env.wait_new_master(old, 30)
                env.restart_as_replica(old, new)

            def ready():
                for n in (a, b):
                    if n.readyz() != 200:
                        seen_503.add(n.name)
                return env.master_port() not in (None, old) and \
                    all(n.readyz() == 200 for n in (a, b))
            await until(ready, 30, "new master and both nodes ready")
            out["ready_s"] = time.monotonic() - t0
            out["seen_503"] = sorted(seen_503)
            await asyncio.sleep(3.0)
        finally:
            stop.set()
            lines = pub.stop()
            await pt
        out["recovered"] = caught_up(a) + caught_up(b) - rec0
        acked = [ln for ln in lines if ln[0] == "ok" and ln[4]]
        out["acked"], out["lines"] = len(acked), len(lines)
        after = [ln for ln in acked if ln[1] > max(
            (x[1] for x in lines if x[0] == "err"), default=-1)]
        assert len(after) > 10, "too few acked publishes after the switch"
        last = {r: max(ln[3] for ln in acked if ln[2] == r) for r in rooms}
        await until(lambda: all(c.msgs(r) and c.msgs(r)[-1]["seq"] >= last[r]
                                for c in members for r in rooms), 15,
                    "every member caught up")
        await asyncio.sleep(0.5)
        for c in members:
            for r in rooms:
                fs = c.msgs(r)
                s = [f["seq"] for f in fs]
                assert s == sorted(set(s)), \
                    f"{c.name} {r}: out of order or duplicated seqs"
                ks = [f["data"].get("k") for f in fs if "k" in f["data"]]
                assert len(ks) == len(set(ks)), f"{c.name} {r}: dup k"
                lost = [ln[1] for ln in acked
                        if ln[2] == r and ln[1] not in set(ks)]
                assert not lost, (f"{c.name} {r}: {len(lost)} acknowledged "
                                  f"(WAIT) publishes lost: {lost[:10]}; "
                                  + lost_detail(env, members, acked, lost,
                                                r, t0))
            ws_acked = {r["seq"] for _, r in replies if r["op"] == "ok"}
            got = {f["seq"] for f in c.msgs("f0") if "ws" in f["data"]}
            out.setdefault("ws_lost", 0)
            out["ws_lost"] += len(ws_acked - got)
        p.check_replies()
        out["ws_ok"] = sum(1 for _, r in replies if r["op"] == "ok")
        out["ws_err"] = sum(1 for _, r in replies if r["op"] != "ok")
        for c in members + [p]:
            await c.close()

    run(main(), 90)
    same_pid(a, pids[0])
    same_pid(b, pids[1])
    print(f"FAILOVER {how}: ready after {out['ready_s']:.2f}s "
          f"(503 seen on {out['seen_503']}), recovered {out['recovered']:.0f}"
          f", {out['acked']} acked of {out['lines']} attempts, ws ok "
          f"{out['ws_ok']} err {out['ws_err']} (acked but not delivered "
          f"{out['ws_lost']})")
    return out


def test_sentinel_no_master_readyz_503(sentinel, nodes):
    """A master name no sentinel knows: the node runs (/healthz 200) and is
    not ready (/readyz 503) while no master is confirmed; a second node
    with the right name is ready, and `roomcast nodes` through the
    sentinels lists only that one."""
    env = sentinel
    bad = nodes(flags={"redis_url": env.url.split("#")[0] + "#nosuch",
                       "key_prefix": PREFIX}, name="lost")
    (good,) = snodes(nodes, env, "good")
    t_end = time.monotonic() + 2.0
    while time.monotonic() < t_end:
        assert bad.healthz() == 200 and bad.readyz() == 503
        time.sleep(0.2)
    rc, out, err = run_cli("nodes", "--json", "--redis", env.url)
    assert rc == 0 and [n["id"] for n in json.loads(out)] == ["good"], \
        (out, err)


def test_sentinel_failover_under_load(sentinel, nodes):
    """With one replica, the promoted one refuses writes
    (min-replicas-to-write 1), so the nodes are not ready, until Sentinel
    has turned the old master into its replica: about 10 s. (With two
    replicas the nodes are back in about 1 s, but then a write the old
    master takes after the promotion is confirmed by the replica not yet
    moved, and lost: WAIT 1 no longer tells, WAIT 2 confirms nothing until
    the old master is a replica again.)"""
    out = failover_under_load(sentinel, nodes, "failover")
    assert out["ws_lost"] == 0


def test_sentinel_master_killed_under_load(sentinel, nodes):
    out = failover_under_load(sentinel, nodes, "kill")
    assert out["ws_lost"] == 0
    assert out["seen_503"], "/readyz never said 503 without a master"


# --------------------------------------------------------------------------
# the CLI on Sentinel, and --wait

def test_cli_sentinel_cluster_and_wait(sentinel, redis):
    env = sentinel
    # publish needs the function library, which a node loads: load it with
    # a node-less FUNCTION LOAD is not ours to do; publish --ephemeral and
    # nodes/drain work without it, and FCALL errors name the cause.
    rc, out, err = run_cli("nodes", "--redis", env.url)
    assert rc == 0, err
    assert "no live node" in err
    rc, out, err = run_cli("drain", "nobody", "--redis", env.url)
    assert rc == 1 and "no node 'nobody'" in err, err
    rc, out, err = run_cli("publish", "r", "1", "--ephemeral",
                           "--redis", env.url)
    assert rc == 0, err
    # a master name no sentinel knows
    bad = env.url.split("#")[0] + "#nosuch"
    rc, out, err = run_cli("publish", "r", "1", "--redis", bad)
    assert rc == 1 and "no sentinel named a master" in err, err
    # cluster (tests/integration/test_cluster.py runs a real one): a seed
    # nobody listens on fails with a message, exit 1
    for cmd in (["publish", "r", "1"], ["nodes"], ["drain", "x"]):
        rc, out, err = run_cli(*cmd, "--redis", "redis-cluster://127.0.0.1:1")
        assert rc == 1 and err.strip(), (cmd, rc, err)
    # usage errors of --wait
    for args in (["--wait", "x"], ["--wait", "1", "--ephemeral"],
                 ["--wait-timeout-ms", "5"], ["--wait", "1",
                                              "--wait-timeout-ms", "0"]):
        rc, out, err = run_cli("publish", "r", "1", *args, "--redis",
                               env.url)
        assert rc == 2, (args, rc, err)


def test_cli_publish_wait(redis, sentinel, nodes):
    """publish through the sentinel URL (a node loaded the library), with
    --wait 1: exit 0 and the seq, and the replica has it; with --wait 2
    (one replica only): the seq is printed, exit 1, and the message says
    how many confirmed. nodes and drain find the node through the
    sentinels. On a Redis without replicas --wait 1 fails the same way."""
    env = sentinel
    # the node talks to the master directly: this tests the CLI, not the
    # adapter's Sentinel support
    a = nodes(flags={"redis_url": env.master.url, "key_prefix": PREFIX},
              name="A")
    a.wait_ready(10)
    rc, out, err = run_cli("publish", "w", '{"x":1}', "--wait", "1",
                           "--redis", env.url)
    assert rc == 0, err
    s1 = int(out)
    rc, out, err = run_cli("publish", "w", '{"x":2}', "--wait", "2",
                           "--wait-timeout-ms", "300", "--redis", env.url)
    assert rc == 1, (rc, out, err)
    assert int(out) == s1 + 1
    assert "only 1 of 2 replicas" in err, err
    # the room's one key is a stream whose entry ids carry the seq
    last = env.replica.call("XREVRANGE", PREFIX + "{w}", "+", "-", "COUNT",
                            "1")
    assert last and last[0][0] == f"{s1 + 1}-0".encode(), last
    rc, out, err = run_cli("nodes", "--redis", env.url, "--json")
    assert rc == 0 and [n["id"] for n in json.loads(out)] == ["A"], \
        (out, err)
    rc, out, err = run_cli("drain", "A", "--redis", env.url)
    assert rc == 0, err
    assert a.wait_exit(15) == 0
    # a plain Redis (a node there loaded the library): no replica confirms
    nodes(flags={"redis_url": redis.url, "key_prefix": PREFIX},
          name="P").wait_ready(10)
    t0 = time.monotonic()
    rc, out, err = run_cli("publish", "x", "1", "--wait", "1",
                           "--wait-timeout-ms", "200", "--redis", redis.url)
    assert rc == 1 and int(out) > 0, (rc, out, err)
    assert "only 0 of 1 replicas" in err, err
    assert 0.2 <= time.monotonic() - t0 < 5


# --------------------------------------------------------------------------
# deploy/sentinel: the committed configs start and agree

def test_deploy_sentinel_configs(tmp_path):
    """deploy/sentinel/*.conf, with loopback addresses, free ports and a
    temp dir put in: the servers and sentinels start, the sentinels agree
    on master and replica, and the master refuses writes once its replica
    is gone (min-replicas-to-write)."""
    import re
    import subprocess
    from harness import REPO, free_port
    from sentinel_env import REDIS_SENTINEL, _resp_call
    src = REPO / "deploy" / "sentinel"
    conf = json.loads((src / "roomcastd.json").read_text())
    assert conf["redis_url"].startswith("redis-sentinel://")
    assert conf["redis_url"].endswith("#roomcast")
    ports = {"10.0.0.5 6379": free_port(), "10.0.0.6 6379": free_port()}
    sports = [free_port() for _ in range(3)]
    procs = []

    def render(name, bind_ip, port):
        t = (src / name).read_text()
        for addr, p in ports.items():
            t = t.replace(addr, f"127.0.0.1 {p}")
        t = re.sub(r"(?m)^bind .*$", "bind 127.0.0.1", t)
        t = re.sub(r"(?m)^port .*$", f"port {port}", t)
        own = tmp_path / (name + ".d")  # AOF files must not be shared
        own.mkdir(exist_ok=True)
        t = re.sub(r"(?m)^dir .*$", f"dir {own}", t)
        out = tmp_path / name
        out.write_text(t + f"\nlogfile {tmp_path / name}.log\n")
        return out

    try:
        for name, ip, p in (("redis-master.conf", "10.0.0.5",
                             ports["10.0.0.5 6379"]),
                            ("redis-replica.conf", "10.0.0.6",
                             ports["10.0.0.6 6379"])):
            procs.append(subprocess.Popen(
                ["redis-server", str(render(name, ip, p))],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        mport, rport = ports["10.0.0.5 6379"], ports["10.0.0.6 6379"]
        wait_until(lambda: _resp_call(rport, "INFO", "replication") and
                   b"master_link_status:up" in
                   _resp_call(rport, "INFO", "replication"), 10,
                   what="replica in sync")
        for i, sp in enumerate(sports):
            procs.append(subprocess.Popen(
                [REDIS_SENTINEL, str(render(f"sentinel-{i + 1}.conf",
                                            None, sp))],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))

        def agree():
            for sp in sports:
                r = _resp_call(sp, "SENTINEL", "get-master-addr-by-name",
                               "roomcast")
                if not r or int(r[1]) != mport:
                    return False
                peers = _resp_call(sp, "SENTINEL", "sentinels", "roomcast")
                if not isinstance(peers, list) or len(peers) != 2:
                    return False
            return True
        wait_until(agree, 20, interval=0.2, what="sentinels agree")
        assert _resp_call(mport, "SET", "k", "v") == "OK"
        procs[1].kill()
        procs[1].wait()

        def refused():
            try:
                with Resp(mport) as c:
                    c.call("SET", "k", "v2")
            except RespError as e:
                return "NOREPLICAS" in str(e)
            return False
        wait_until(refused, 10, interval=0.2,
                   what="NOREPLICAS without the replica")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
