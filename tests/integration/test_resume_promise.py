# Resume keeps its promise (PROTOCOL section 4), against the real roomcastd
# on a real redis-server, with raw WebSocket clients (a plain socket that
# can stop reading, and hold a half-open link): after a 4009 the resume
# replays from the last frame written to the socket, however much was
# missed (the replay is paced through the same queue bound); a resume
# while the old connection still looks alive takes the session over; and
# `welcome` is the first frame even when a request races it.
# SPDX-License-Identifier: MIT
import base64
import json
import os
import socket
import time

from harness import SUBPROTOCOL, metric, mint_jwt, wait_until

RESUME_SECRET = "resume-promise-secret-0123456789abcdef0123"
PREFIX = "roomcast:"


class RawWS:
    """A WebSocket client on a plain socket: it reads only when asked."""

    def __init__(self, node, token=None, query="", rcvbuf=None, timeout=10.0,
                 after=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect(("127.0.0.1", node.port))
        key = base64.b64encode(os.urandom(16)).decode()
        hdrs = [f"GET /ws{query} HTTP/1.1", f"Host: 127.0.0.1:{node.port}",
                "Upgrade: websocket", "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                f"Sec-WebSocket-Protocol: {SUBPROTOCOL}"]
        if token:
            hdrs.append(f"Authorization: Bearer {token}")
        req = ("\r\n".join(hdrs) + "\r\n\r\n").encode()
        self.s.sendall(req)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            assert chunk, f"closed during the upgrade: {self.buf!r}"
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.close_code = None
        self.opcodes = []  # of every frame received, pings included
        if after:  # sent in one write as soon as the 101 arrived
            self.s.sendall(b"".join(self.frame(f) for f in after))

    @staticmethod
    def frame(obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        hdr = bytes([0x81])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            hdr += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def send(self, obj):
        self.s.sendall(self.frame(obj))

    def _parse(self):
        """One frame from buf, or None when incomplete."""
        b = self.buf
        if len(b) < 2:
            return None
        op, n, i = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, i = int.from_bytes(b[2:4], "big"), 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, i = int.from_bytes(b[2:10], "big"), 10
        if len(b) < i + n:
            return None
        self.buf = b[i + n:]
        self.opcodes.append(op)
        return op, b[i:i + n]

    def frames(self, timeout=5.0, until_close=False, count=None):
        """JSON frames read within timeout (until the close frame, or until
        count frames arrived). Pings are skipped."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                op, payload = f
                if op == 8:
                    self.close_code = (int.from_bytes(payload[:2], "big")
                                       if len(payload) >= 2 else 1005)
                    return out
                if op == 9:  # a live client answers pings
                    mask = os.urandom(4)
                    self.s.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask +
                                   bytes(b ^ mask[i % 4]
                                         for i, b in enumerate(payload)))
                    continue
                if op == 1:
                    out.append(json.loads(payload))
                    if count is not None and len(out) >= count:
                        return out
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                return out
            except ConnectionResetError:
                return out
            if not chunk:
                if self.close_code is None:
                    self.close_code = 1006
                return out
            self.buf += chunk

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def fcall_publish_many(redis, room, datas):
    """Durable publishes, pipelined on one RESP connection; their seqs."""
    out = []
    with redis.conn(timeout=30.0) as c:
        for i in range(0, len(datas), 500):
            part = datas[i:i + 500]
            for d in part:
                c.send("FCALL", "roomcast_publish", "1", room,
                       json.dumps(d, separators=(",", ":")))
            out.extend(int(c.read()) for _ in part)
    return out


def rnode(rnodes, name="n1", **flags):
    f = {"resume_secret": RESUME_SECRET}
    f.update(flags)
    return rnodes(name=name, flags=f)


def test_resume_after_4009_starts_at_what_was_written(rnodes, redis):
    """A client that stopped reading is closed with 4009; everything it
    missed (more than its 64 KiB queue bound, and beyond the kernel's
    socket buffers) comes back on resume, from the first frame it never
    got, with recovered: true, no gap and no duplicate."""
    n = rnode(rnodes, outbound_queue_bytes=65536, max_publish=32768,
              history_size=20000)
    room = "slow"
    jwt = mint_jwt(sub="slowpoke", rooms=["*"])
    c = RawWS(n, jwt, rcvbuf=4096)
    try:
        w = c.frames(count=1)[0]
        assert w["op"] == "welcome", w
        c.send({"op": "join", "id": 1, "room": room})
        ok = c.frames(count=1)
        assert ok and ok[0]["op"] == "ok", ok
        pad = "x" * 900
        total = 6000
        seqs = fcall_publish_many(redis, room,
                                  [{"k": k, "p": pad} for k in range(total)])
        wait_until(lambda: n.m("roomcast_slow_consumer_closes_total") >= 1,
                   20, what="the 4009")
        got = c.frames(timeout=20, until_close=True)
        assert c.close_code == 4009, c.close_code
        have = [f["seq"] for f in got if f.get("op") == "msg"]
        assert have, "the client read nothing before the 4009"
        assert have == list(range(have[0], have[-1] + 1)), "gap before 4009"
        assert have[-1] < seqs[-1], "nothing was dropped: no test"
    finally:
        c.close()
    wait_until(lambda: n.m("roomcast_connections") == 0, 10,
               what="the old connection freed")
    r = RawWS(n, jwt, query="?resume=" + w["resume"])
    try:
        frames = r.frames(timeout=30, count=1 + (seqs[-1] - have[-1]))
        assert frames[0]["op"] == "welcome", frames[0]
        wel = frames[0]
        assert wel["resumed"] is True, wel
        rooms = {x["room"]: x for x in wel["rooms"]}
        assert rooms[room]["recovered"] is True, wel
        replay = [f["seq"] for f in frames[1:] if f.get("op") == "msg"]
        assert replay, "nothing replayed"
        assert replay[0] == have[-1] + 1, \
            (f"read up to #{have[-1]} before the 4009, resume replayed "
             f"from #{replay[0]}: {replay[0] - have[-1] - 1} lost")
        assert replay == list(range(have[-1] + 1, seqs[-1] + 1)), \
            f"replay has a gap or duplicate: {len(replay)} frames"
        assert r.close_code is None, f"closed during the replay: " \
            f"{r.close_code}"
        assert n.m("roomcast_replays_paced_total") >= 1
    finally:
        r.close()


def test_resume_while_old_link_looks_alive_takes_the_session_over(rnodes,
                                                                    redis):
    """The client's old link is half-open (the node still thinks it is
    alive) when it reconnects with its resume token: the new connection
    gets the rooms and position, the old one is closed, and live traffic
    continues on the new one without a gap or a duplicate."""
    n = rnode(rnodes)
    room = "half-open"
    jwt = mint_jwt(sub="phone", rooms=["*"])
    old = RawWS(n, jwt)
    new = None
    try:
        w = old.frames(count=1)[0]
        assert w["op"] == "welcome", w
        old.send({"op": "join", "id": 1, "room": room})
        assert old.frames(count=1)[0]["op"] == "ok"
        seqs = fcall_publish_many(redis, room, [{"k": k} for k in range(3)])
        got = old.frames(count=3)
        assert [f["seq"] for f in got] == seqs, got
        # the old socket stays open (the node cannot tell it is dead)
        new = RawWS(n, jwt, query="?resume=" + w["resume"])
        wel = new.frames(count=1)[0]
        assert wel["op"] == "welcome", wel
        assert wel["resumed"] is True, f"token burnt by a takeover: {wel!r}"
        assert [r["room"] for r in wel["rooms"]] == [room], wel
        assert wel["rooms"][0]["recovered"] is True, wel
        later = fcall_publish_many(redis, room, [{"k": k} for k in (3, 4)])
        fr = new.frames(timeout=5, count=2)
        assert [f.get("seq") for f in fr] == later, \
            f"after the takeover: {fr!r} (want {later}, no replay of {seqs})"
        old.frames(timeout=5, until_close=True)
        assert old.close_code in (1000, 1006), old.close_code
        assert n.m("roomcast_resume_takeovers_total") == 1
    finally:
        old.close()
        if new:
            new.close()


def test_welcome_is_the_first_frame_of_a_resume(rnodes, redis):
    """Requests sent right after the upgrade, while the resume is looked up
    in Redis (held up there by CLIENT PAUSE ... WRITE), are answered after
    the welcome, not before; the same for a request right behind an auth
    frame."""
    n = rnode(rnodes)
    jwt = mint_jwt(sub="eager", rooms=["*"])
    c = RawWS(n, jwt)
    try:
        w = c.frames(count=1)[0]
        c.send({"op": "join", "id": 1, "room": "eager"})
        assert c.frames(count=1)[0]["op"] == "ok"
    finally:
        c.close()
    wait_until(lambda: n.m("roomcast_connections") == 0, 10,
               what="the first connection freed")
    redis.call("CLIENT", "PAUSE", "300", "WRITE")
    r = RawWS(n, jwt, query="?resume=" + w["resume"],
              after=[{"op": "ping", "id": 7}, {"op": "join", "id": 8,
                                                "room": "other"}])
    try:
        fr = r.frames(timeout=5, count=3)
        assert [f["op"] for f in fr][:1] == ["welcome"], \
            f"a reply went out before the welcome: {fr!r}"
        assert fr[0]["resumed"] is True, fr[0]
        assert [(f["op"], f.get("id")) for f in fr[1:]] == \
            [("ok", 7), ("ok", 8)], fr
        tok = fr[0]["resume"]
    finally:
        r.close()
    wait_until(lambda: n.m("roomcast_connections") == 0, 10,
               what="the second connection freed")
    # the token in an auth frame, a ping in the same packet
    redis.call("CLIENT", "PAUSE", "300", "WRITE")
    r = RawWS(n, None)
    try:
        r.s.sendall(r.frame({"op": "auth", "token": jwt, "resume": tok}) +
                    r.frame({"op": "ping", "id": 9}))
        fr = r.frames(timeout=5, count=2)
        assert [f["op"] for f in fr] == ["welcome", "ok"], fr
        assert fr[0]["resumed"] is True, fr[0]
    finally:
        r.close()


def test_rate_limit_during_a_resume_answers_after_the_welcome(rnodes,
                                                              redis):
    """Requests over the rate limit that arrive while the resume is looked
    up are refused (rate_limited) after the welcome, in order with the
    others, never before it."""
    n = rnode(rnodes, rate_limit=1, rate_burst=2)
    jwt = mint_jwt(sub="hasty", rooms=["*"])
    c = RawWS(n, jwt)
    try:
        w = c.frames(count=1)[0]
    finally:
        c.close()
    wait_until(lambda: n.m("roomcast_connections") == 0, 10,
               what="the first connection freed")
    redis.call("CLIENT", "PAUSE", "300", "WRITE")
    r = RawWS(n, jwt, query="?resume=" + w["resume"],
              after=[{"op": "ping", "id": i} for i in range(1, 5)])
    try:
        fr = r.frames(timeout=5, count=5)
        assert fr and fr[0]["op"] == "welcome", \
            f"a frame went out before the welcome: {fr!r}"
        assert [(f["op"], f.get("id"), f.get("code")) for f in fr[1:]] == [
            ("ok", 1, None), ("ok", 2, None), ("error", 3, "rate_limited"),
            ("error", 4, "rate_limited")], fr
    finally:
        r.close()


def test_resume_on_another_node_while_old_link_looks_alive(rnodes, redis):
    """The same, across nodes: the client's link to A is half-open (A
    still sees it answer its pings) when it resumes on B. A keeps the
    session's snapshot current (at each heartbeat when positions moved), so
    B restores the rooms from where A had written."""
    a = rnode(rnodes, "A", heartbeat_ms=1000)
    b = rnode(rnodes, "B", heartbeat_ms=1000)
    room = "roaming"
    jwt = mint_jwt(sub="roamer", rooms=["*"])
    old = RawWS(a, jwt)
    new = None
    try:
        w = old.frames(count=1)[0]
        old.send({"op": "join", "id": 1, "room": room})
        assert old.frames(count=1)[0]["op"] == "ok"
        seqs = fcall_publish_many(redis, room, [{"k": k} for k in range(3)])
        assert [f["seq"] for f in old.frames(count=3)] == seqs
        old.frames(timeout=2.5)  # a heartbeat or two; pings answered
        new = RawWS(b, jwt, query="?resume=" + w["resume"])
        wel = new.frames(count=1)[0]
        assert wel["op"] == "welcome", wel
        assert wel["resumed"] is True, \
            f"resume on B while A's link looked alive: {wel!r}"
        assert [r["room"] for r in wel["rooms"]] == [room], wel
        later = fcall_publish_many(redis, room, [{"k": k} for k in (3, 4)])
        fr = [f for f in new.frames(timeout=5, count=2)]
        assert [f.get("seq") for f in fr] == later, fr
    finally:
        old.close()
        if new:
            new.close()


def test_no_heartbeat_before_the_welcome(rnodes, redis):
    """A resume held up in Redis (CLIENT PAUSE) for several heartbeat
    intervals: the first frame the client gets is still the welcome."""
    n = rnode(rnodes, heartbeat_ms=100)
    jwt = mint_jwt(sub="hb", rooms=["*"])
    c = RawWS(n, jwt)
    try:
        w = c.frames(count=1)[0]
        c.send({"op": "join", "id": 1, "room": "hb"})
        assert c.frames(count=1)[0]["op"] == "ok"
    finally:
        c.close()
    wait_until(lambda: n.m("roomcast_connections") == 0, 10,
               what="the connection freed")
    redis.call("CLIENT", "PAUSE", "600", "ALL")
    r = RawWS(n, jwt, query="?resume=" + w["resume"])
    try:
        fr = r.frames(timeout=5, count=1)
        assert fr and fr[0]["op"] == "welcome", fr
        assert r.opcodes[0] == 1, \
            f"frames before the welcome: opcodes {r.opcodes[:5]}"
    finally:
        r.close()
