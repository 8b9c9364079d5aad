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

from harness import mint_jwt, raw_http, wait_until
from test_resume_promise import RawWS, fcall_publish_many

TOO_LONG = b'{"error":"unauthorized","reason":"too_long"}'


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
