# Heartbeat and write coalescing against the real roomcastd: a peer that
# never answers pings is dropped after two intervals while a live one stays;
# frames queued together for one client leave in one socket write; a
# client with room is written from the flush, a full one after WRITEABLE.
# SPDX-License-Identifier: MIT
import asyncio
import base64
import json
import os
import socket
import time

from harness import close_all, connect, metric, recv_msgs, request, run

ALL = dict(rooms=["*"], pub=["*"])


def masked_text(payload):
    """One client-to-server text frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    hdr = bytes([0x81, 0x80 | n]) if n < 126 else \
        bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def silent_client(node, token):
    """A raw WebSocket client that upgrades and then never writes a byte:
    it reads what the server sends and never answers pings."""
    s = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "closed during the upgrade"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    return s, head.split(b"\r\n\r\n", 1)[1]


def read_until_closed(s, rest, deadline):
    """Read frames until the server drops the socket; return (seconds it
    took, number of pings seen)."""
    t0 = time.monotonic()
    buf, pings = rest, 0
    s.settimeout(0.2)
    while time.monotonic() < deadline:
        while len(buf) >= 2:
            op, ln = buf[0] & 0x0F, buf[1] & 0x7F
            hl = 2 + (2 if ln == 126 else 8 if ln == 127 else 0)
            if len(buf) < hl:
                break
            if ln == 126:
                ln = int.from_bytes(buf[2:4], "big")
            elif ln == 127:
                ln = int.from_bytes(buf[2:10], "big")
            if len(buf) < hl + ln:
                break
            pings += op == 0x9
            buf = buf[hl + ln:]
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - t0, pings
        if not chunk:
            return time.monotonic() - t0, pings
        buf += chunk
    raise AssertionError("the silent peer was never dropped")


def test_silent_peer_dropped_after_two_intervals(nodes):
    hb = 300
    node = nodes(flags={"heartbeat_ms": hb})

    async def main():
        live = await connect(node, node.mint("live", **ALL))
        s, rest = silent_client(node, node.mint("silent", **ALL))
        loop = asyncio.get_running_loop()
        took, pings = await loop.run_in_executor(
            None, read_until_closed, s, rest, time.monotonic() + 10)
        s.close()
        # pinged, then dropped after 2 intervals of silence (plus one
        # sweep period), not before
        assert pings >= 1, pings
        assert 2 * hb / 1000 * 0.9 <= took <= 4 * hb / 1000 + 1.0, took
        # the client that answers pings is still served
        r = await request(live, "ping")
        assert r["op"] == "ok", r
        m = node.metrics()
        assert metric(m, "roomcast_heartbeat_closes_total") == 1, m
        await close_all([live])

    run(main())


def test_queued_frames_share_one_write(nodes):
    node = nodes(flags={"rate_limit": 100000, "rate_burst": 100000})
    n = 300

    async def main():
        sub = await connect(node, node.mint("sub", **ALL))
        pub = await connect(node, node.mint("pub", **ALL))
        await request(sub, "join", room="burst")
        before = node.metrics()
        # n publishes in one TCP write: the node reads them in one go, so
        # their msg frames queue up for sub before its next WRITEABLE
        pub.transport.write(b"".join(
            masked_text(json.dumps({"op": "publish", "id": i,
                                    "room": "burst", "data": i}).encode())
            for i in range(1, n + 1)))
        got = await recv_msgs(sub, n, timeout=20)
        assert [g["seq"] for g in got] == list(range(1, n + 1)), got[:3]
        after = node.metrics()
        frames = (metric(after, "roomcast_frames_out_total")
                  - metric(before, "roomcast_frames_out_total"))
        writes = (metric(after, "roomcast_writes_total")
                  - metric(before, "roomcast_writes_total"))
        # 2n frames (n msgs to sub, n oks to pub) in fewer writes. lws
        # reads 144 bytes (RX_CHUNK + LWS_PRE) per wakeup and returns to
        # the loop, so each iteration handles about two of these publishes:
        # at least two frames per write, not all of them in one.
        assert frames >= 2 * n, (frames, writes)
        assert writes * 2 <= frames, (frames, writes)
        await close_all([sub, pub])

    run(main())


def test_fanout_writes_without_waiting_for_writeable(nodes):
    """A client whose socket has room is written at the end of the loop
    iteration that queued its frame (the flush), not after a WRITEABLE
    round trip: every write of a fan-out is a direct one."""
    node = nodes(flags={"rate_limit": 100000, "rate_burst": 100000})
    k = 40

    async def main():
        subs = [await connect(node, node.mint(f"s{i}", **ALL))
                for i in range(k)]
        for s in subs:
            await request(s, "join", room="fan")
        pub = await connect(node, node.mint("pub", **ALL))
        before = node.metrics()
        await request(pub, "publish", room="fan", data={"x": 1})
        for s in subs:
            got = await recv_msgs(s, 1, timeout=5)
            assert got[0]["data"] == {"x": 1}, got
        after = node.metrics()

        def d(name):
            return metric(after, name) - metric(before, name)
        # k msgs plus the publisher's ok, each in its own write, all direct
        assert d("roomcast_frames_out_total") >= k + 1
        assert d("roomcast_direct_writes_total") >= k + 1, after
        assert d("roomcast_direct_writes_total") == \
            d("roomcast_writes_total"), (before, after)
        await close_all(subs + [pub])

    run(main())


def test_backlog_past_the_socket_buffer_arrives_whole_and_in_order(nodes):
    """A subscriber that stops reading lets the kernel buffer fill: writes
    go short, lws keeps the rest, later frames wait for WRITEABLE. When it
    reads again every frame arrives intact, in seq order."""
    # ~7.5 MB: past the node's send buffer (tcp_wmem max 4 MiB) and the
    # client's small window, under a raised queue bound
    node = nodes(flags={"rate_limit": 100000, "rate_burst": 100000,
                        "outbound_queue_bytes": 16 << 20})
    n, pad = 250, "y" * 30000

    async def main():
        # a small receive window, so the node's socket fills long before
        # it all is out (set before connect: it sizes the window)
        small = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        small.connect(("127.0.0.1", node.port))
        sub = await connect(node, node.mint("sub", **ALL), sock=small)
        pub = await connect(node, node.mint("pub", **ALL))
        await request(sub, "join", room="slow")
        before = node.metrics()
        sub.transport.pause_reading()
        for i in range(1, n + 1):
            await request(pub, "publish", room="slow",
                          data={"i": i, "pad": pad})
        m = node.metrics()
        assert metric(m, "roomcast_slow_consumer_closes_total") == 0, m
        sub.transport.resume_reading()
        got = await recv_msgs(sub, n, timeout=30)
        assert [g["seq"] for g in got] == list(range(1, n + 1))
        assert all(g["data"] == {"i": i + 1, "pad": pad}
                   for i, g in enumerate(got))
        after = node.metrics()

        def d(name):
            return metric(after, name) - metric(before, name)
        # the backlog went out through WRITEABLE, coalesced
        waited = d("roomcast_writes_total") - \
            d("roomcast_direct_writes_total")
        assert waited > 0, (before, after)
        assert d("roomcast_writes_total") < 2 * n, (before, after)
        await close_all([sub, pub])

    run(main())
