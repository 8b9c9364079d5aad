# Bounded by design: what an unauthenticated or authenticated client can
# make a node hold, against the real roomcastd (and a real redis-server
# where history is read): over-long tokens and subprotocol lists are
# answered with HTTP, not dropped or upgraded; a socket before auth cannot
# make the node buffer max_frame; slow headers cannot hold every header
# slot; history reads in flight are bounded per connection and per node,
# with roomcast_bounds_hit_total{reason} counting each time a bound bites.
# SPDX-License-Identifier: MIT
import os
import socket
import time

import pytest

from harness import ROOMCASTD, mint_jwt, raw_http, wait_until
from test_resume_promise import RawWS, fcall_publish_many

TOO_LONG = b'{"error":"unauthorized","reason":"too_long"}'
# AddressSanitizer's shadow memory and quarantine make RSS meaningless
with open(ROOMCASTD, "rb") as _f:
    UNDER_ASAN = b"__asan_init" in _f.read()


@pytest.mark.parametrize("size", [9000, 12000, 20000])
def test_long_header_token_answered_401(nodes, size):
    n = nodes()
    st, _, body = raw_http(n.port, "/ws", headers={
        "Authorization": "Bearer " + "a" * size})
    assert (st, body) == (401, TOO_LONG)


@pytest.mark.parametrize("size", [8800, 12000, 20000])
def test_long_query_token_refused_401_not_upgraded(nodes, size):
    n = nodes()
    st, _, body = raw_http(n.port, "/ws?token=" + "a" * size)
    assert (st, body) == (401, TOO_LONG)
    assert n.m("roomcast_bounds_hit_total", reason="token_too_long") == 1
    assert n.m("roomcast_pending_auth") == 0


@pytest.mark.parametrize("size", [4000, 20000, 60000])
def test_big_cookie_header_does_not_cost_the_upgrade(nodes, size):
    """A browser sends every cookie of the site with the upgrade; roomcast
    reads none. A Cookie header larger than the header buffer (10 KiB) made
    lws drop the socket with no answer; it is skipped, and the client
    connects."""
    n = nodes()
    st, _, _ = raw_http(n.port, "/ws", headers={
        "Authorization": "Bearer " + mint_jwt(rooms=["*"]),
        "Cookie": "; ".join(f"c{i}=" + "v" * 90 for i in range(size // 95))})
    assert st == 101
    assert "level=warn" not in n.log_text(), "a warning per browser upgrade"


def test_long_resume_argument_is_ignored_not_refused(nodes):
    n = nodes()
    tok = mint_jwt(rooms=["*"])
    st, _, _ = raw_http(n.port, "/ws?resume=" + "b" * 9000 + "&token=" + tok)
    assert st == 101


@pytest.mark.parametrize("offer,status", [
    (", ".join(f"chat.v{i}" for i in range(30)), 431),  # 300 bytes
    (", ".join(f"chat.v{i}" for i in range(30)) + ", roomcast.v1", 431),
    ("p" * 300, 431),
    ("q" * 70 + ", roomcast.v1", 400),  # a name lws cannot hold
    (", ".join(f"c{i}" for i in range(25)) + ", roomcast.v1", 101),
])
def test_long_subprotocol_header_answered(nodes, offer, status):
    n = nodes()
    st, _, _ = raw_http(n.port, "/ws", headers={
        "Authorization": "Bearer " + mint_jwt(rooms=["*"]),
        "Sec-WebSocket-Protocol": offer})
    assert st == status, (len(offer), st)


def test_first_frame_capped_before_auth(nodes):
    """max_frame is 16 MiB, but a socket that has not authenticated is
    closed (1009) as soon as its first frame announces more than a token
    needs: the node never buffers it."""
    n = nodes(flags={"max_frame": 16 << 20, "auth_timeout_ms": 20000})
    c = RawWS(n, None)
    try:
        size = 4 << 20
        mask = os.urandom(4)
        hdr = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + mask
        c.s.sendall(hdr + b"\0" * 65536)  # a first slice of it
        t0 = time.monotonic()
        c.frames(timeout=5, until_close=True)
        assert c.close_code == 1009, c.close_code
        assert time.monotonic() - t0 < 3
        assert n.m("roomcast_bounds_hit_total", reason="first_frame") == 1
    finally:
        c.close()
    # an auth frame of ordinary size still works
    c = RawWS(n, None)
    try:
        c.send({"op": "auth", "token": mint_jwt(rooms=["*"]),
                "pad": "x" * 4000})
        assert c.frames(count=1)[0]["op"] == "welcome"
    finally:
        c.close()


def _join_all(c, rooms, since=0, first_id=1):
    c.s.sendall(b"".join(
        c.frame({"op": "join", "id": first_id + i, "room": r, "since": since})
        for i, r in enumerate(rooms)))


def _replies(frames):
    return {f["id"]: f for f in frames if f.get("op") in ("ok", "error")}


def test_history_reads_bounded_per_connection(rnodes, redis):
    """One client's joins with since are at most 4 history reads in flight
    (Redis is held by CLIENT PAUSE so none answers meanwhile): the rest are
    refused with rate_limited, counted, and the client stays connected."""
    n = rnodes(name="n1")
    rooms = [f"amp{i}" for i in range(6)]
    for r in rooms:
        fcall_publish_many(redis, r, [{"r": r, "k": k} for k in range(3)])
    c = RawWS(n, mint_jwt(rooms=["*"]))
    try:
        assert c.frames(count=1)[0]["op"] == "welcome"
        redis.call("CLIENT", "PAUSE", "400", "ALL")
        _join_all(c, rooms)
        fr = c.frames(timeout=5, count=6 + 4 * 3)
        rep = _replies(fr)
        assert sorted(rep) == list(range(1, 7)), fr
        okd = [i for i, f in rep.items() if f["op"] == "ok"]
        refused = [f for f in rep.values() if f["op"] == "error"]
        assert len(okd) == 4, rep
        assert all(f["code"] == "rate_limited" for f in refused), refused
        msgs = [f for f in fr if f.get("op") == "msg"]
        assert len(msgs) == 4 * 3, msgs
        assert n.m("roomcast_bounds_hit_total",
                   reason="history_per_conn") == 2
        c.send({"op": "ping", "id": 99})
        assert _replies(c.frames(count=1)).get(99, {}).get("op") == "ok"
    finally:
        c.close()


def test_history_reads_bounded_per_node_wait_their_turn(rnodes, redis):
    """With history_size x max_publish at its maximum the node allows 16
    reads in flight: 5 clients x 4 joins (20 reads, Redis paused) leave 4
    waiting; they are served in turn when reads end, none refused, every
    replay whole."""
    # outbound_queue_bytes must hold one max_publish message (config).
    n = rnodes(name="n1", flags={"history_size": 100000,
                                 "max_publish": 16 << 20,
                                 "outbound_queue_bytes": 17 << 20})
    clients = []
    try:
        for i in range(5):
            c = RawWS(n, mint_jwt(sub=f"u{i}", rooms=["*"]))
            assert c.frames(count=1)[0]["op"] == "welcome"
            clients.append(c)
        want = {f"nd{i}": fcall_publish_many(redis, f"nd{i}",
                                             [{"k": k} for k in range(5)])
                for i in range(4)}
        redis.call("CLIENT", "PAUSE", "400", "ALL")
        for c in clients:
            _join_all(c, [f"nd{i}" for i in range(4)])
        # while Redis is paused: 16 in flight, 4 waiting
        wait_until(lambda: n.m("roomcast_history_reads_waiting") == 4, 2,
                   what="4 reads waiting")
        assert n.m("roomcast_history_reads_in_flight") == 16
        for c in clients:
            fr = c.frames(timeout=10, count=4 + 4 * 5)
            rep = _replies(fr)
            assert [rep[i]["op"] for i in (1, 2, 3, 4)] == ["ok"] * 4, rep
            for i in range(4):
                seqs = [f["seq"] for f in fr if f.get("op") == "msg"
                        and f["room"] == f"nd{i}"]
                assert seqs == want[f"nd{i}"], (i, seqs)
        assert n.m("roomcast_bounds_hit_total",
                   reason="history_per_node") >= 4
        assert n.m("roomcast_history_reads_in_flight") == 0
        assert n.m("roomcast_history_reads_waiting") == 0
    finally:
        for c in clients:
            c.close()


def test_resume_reads_few_rooms_at_once_and_bounds_held_history(rnodes,
                                                                 redis):
    """A resume of 12 rooms reads 8 at a time; history past 8 MiB is not
    held for the welcome but read again after it: every room comes back,
    every missed message arrives in order, no gap, no duplicate."""
    n = rnodes(name="n1", flags={"resume_secret": "b" * 40,
                                 "history_size": 3000})
    rooms = [f"big{i:02d}" for i in range(12)]
    jwt = mint_jwt(sub="many", rooms=["*"])
    c = RawWS(n, jwt)
    try:
        w = c.frames(count=1)[0]
        c.s.sendall(b"".join(
            c.frame({"op": "join", "id": i + 1, "room": r})
            for i, r in enumerate(rooms)))
        assert len(_replies(c.frames(count=12))) == 12
    finally:
        c.close()
    wait_until(lambda: n.m("roomcast_connections") == 0, 10,
               what="the connection freed")
    pad = "p" * 1000
    per_room = 1000  # 12 rooms x ~1 MB: past the 8 MiB held for a welcome
    want = {r: fcall_publish_many(redis, r, [{"k": k, "p": pad}
                                             for k in range(per_room)])
            for r in rooms}
    r = RawWS(n, jwt, query="?resume=" + w["resume"])
    try:
        fr = r.frames(timeout=60, count=1 + 12 * per_room)
        assert fr[0]["op"] == "welcome" and fr[0]["resumed"] is True
        assert sorted(x["room"] for x in fr[0]["rooms"]) == rooms
        for room in rooms:
            seqs = [f["seq"] for f in fr[1:] if f.get("op") == "msg"
                    and f["room"] == room]
            assert seqs == want[room], \
                (room, len(seqs), seqs[:3])
        assert n.m("roomcast_bounds_hit_total", reason="resume_rooms") == 1
        assert n.m("roomcast_bounds_hit_total", reason="resume_bytes") >= 1
    finally:
        r.close()


def _rss_kb(node):
    with open(f"/proc/{node.proc.pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0])


def _ws_request(port, token=None):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    req = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if token:
        req += f"Authorization: Bearer {token}\r\n"
    return (req + "\r\n").encode()


def test_slow_headers_cannot_hold_the_header_slots(nodes):
    """300 sockets send their request one byte every 0.5 s (more than the
    256 header slots): each is cut within the time allowed for a whole
    request (3 s), and real clients arriving behind them are upgraded in
    a few seconds, not starved (lws's default: 64 slots held 10 s each)."""
    n = nodes(flags={"max_connections": 100000})
    rss0 = _rss_kb(n)
    slow = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", n.port))
            s.setblocking(False)
            slow.append(s)
        req = _ws_request(n.port)
        t0 = time.monotonic()
        cut = {}
        lat = []
        tok = mint_jwt(rooms=["*"])
        pos = 0
        deadline = t0 + 10
        next_real = t0 + 0.5
        while time.monotonic() < deadline and (len(cut) < len(slow)
                                               or len(lat) < 5):
            if pos < len(req):
                for i, s in enumerate(slow):
                    if i in cut:
                        continue
                    try:
                        s.send(req[pos:pos + 1])
                    except OSError:
                        cut[i] = time.monotonic() - t0
                pos += 1
            for i, s in enumerate(slow):
                if i not in cut:
                    try:
                        if s.recv(1) == b"":
                            cut[i] = time.monotonic() - t0
                    except BlockingIOError:
                        pass
                    except OSError:
                        cut[i] = time.monotonic() - t0
            if len(lat) < 5 and time.monotonic() >= next_real:
                t1 = time.monotonic()
                st, _, _ = raw_http(n.port, "/ws", timeout=10, headers={
                    "Authorization": "Bearer " + tok})
                lat.append((st, time.monotonic() - t1))
                next_real = time.monotonic() + 0.2
            if len(lat) == 1 and rss0 is not None:
                rss_peak = _rss_kb(n)
                rss0_seen, rss0 = rss0, None
            time.sleep(0.5)
        assert [st for st, _ in lat] == [101] * 5, lat
        assert max(t for _, t in lat) < 4.5, lat
        assert len(cut) == len(slow), f"{len(slow) - len(cut)} still open"
        # 3 s from when a socket got its slot (the ones queued behind the
        # 256 slots get theirs when the first are cut); detected on our
        # next 0.5 s tick
        times = sorted(cut.values())
        assert times[255] < 4.5 and times[-1] < 8.0, (times[255], times[-1])
        print(f"slots: 300 slow sockets, RSS {rss0_seen} -> {rss_peak} kB, "
              f"real clients {[round(t, 2) for _, t in lat]} s")
    finally:
        for s in slow:
            s.close()


def _upgrade_from(src, port, tok, timeout=5.0):
    """(status, seconds) of one upgrade sent from source address src."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(src, 0))
    try:
        s.sendall(_ws_request(port, tok))
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                chunk = b""  # closed at accept
            if not chunk:
                break
            buf += chunk
        return (int(buf.split()[1]) if buf else 0), time.monotonic() - t0
    finally:
        s.close()


def test_slow_headers_bounded_per_source_address(nodes):
    """max_pending_per_source 32: of 300 sockets trickling their request
    from 127.0.0.1, 32 hold a header slot and the rest are closed at
    accept, so clients from 127.0.0.2 are upgraded at once instead of
    queueing behind them; sockets whose request is whole do not count, and
    once lws cuts the 32 (3 s) the address is served again."""
    n = nodes(flags={"max_connections": 100000,
                     "max_pending_per_source": 32})
    tok = mint_jwt(rooms=["*"])
    # upgraded clients (request whole) never count against the bound
    for _ in range(40):
        assert _upgrade_from("127.0.0.1", n.port, tok)[0] == 101
    slow, gone = [], 0
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
            s.sendall(b"GET /ws HTTP/1.1\r\n")
            s.setblocking(False)
            slow.append(s)
        time.sleep(0.5)
        for s in slow:
            try:
                if s.recv(1) == b"":
                    gone += 1
            except BlockingIOError:
                pass
            except OSError:
                gone += 1
        assert gone == 300 - 32, gone
        assert n.m("roomcast_bounds_hit_total",
                   reason="pending_per_source") == 268
        lat = [_upgrade_from("127.0.0.2", n.port, tok) for _ in range(5)]
        assert [st for st, _ in lat] == [101] * 5, lat
        assert max(t for _, t in lat) < 1.0, lat
        # the 32 are cut within the time for a whole request; then
        # 127.0.0.1 is served again
        wait_until(lambda: _upgrade_from("127.0.0.1", n.port, tok,
                                         timeout=2)[0] == 101, 6,
                   what="127.0.0.1 served again")
    finally:
        for s in slow:
            s.close()


def test_3000_tokenless_sockets_1024_pending_rest_503(nodes):
    """Sockets upgraded without a token wait for their first frame: at most
    max_pending_auth (1,024 by default) of them; the rest are refused with
    503 before the upgrade, and the node's memory stays small."""
    n = nodes(flags={"max_connections": 100000, "auth_timeout_ms": 30000})
    rss0 = _rss_kb(n)
    socks, statuses = [], []
    try:
        for _ in range(3000):
            s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
            s.sendall(_ws_request(n.port))
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            statuses.append(int(buf.split()[1]) if buf else 0)
            if statuses[-1] == 101:
                socks.append(s)
            else:
                s.close()
        assert statuses.count(101) == 1024, statuses.count(101)
        assert statuses.count(503) == 3000 - 1024
        assert n.m("roomcast_pending_auth") == 1024
        grew = _rss_kb(n) - rss0
        print(f"3000 token-less sockets: RSS +{grew} kB")
        if not UNDER_ASAN:
            assert grew < 8 * 1024, f"RSS grew {grew} kB"
    finally:
        for s in socks:
            s.close()
