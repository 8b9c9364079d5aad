# Subprotocol negotiation and HTTP-level answers of the client port.
# SPDX-License-Identifier: MIT
import socket
import time

import pytest
import websockets

from harness import (REPO, close_all, connect, ok, open_ws, raw_http,
                     recv_msgs, run)

ALL = dict(rooms=["*"], pub=["*"])


def test_offer_roomcast_v1_selected(node):
    async def main():
        a = await connect(node, node.mint("a", **ALL),
                          subprotocols=["roomcast.v1"])
        assert a.subprotocol == "roomcast.v1"
        await ok(a, "ping")
        await close_all([a])

    run(main(), 10)


def test_offer_several_including_v1_selects_v1(node):
    async def main():
        a = await connect(node, node.mint("a", **ALL),
                          subprotocols=["chat.v9", "roomcast.v1", "mqtt"])
        assert a.subprotocol == "roomcast.v1"
        await ok(a, "ping")
        await close_all([a])

    run(main(), 10)


def test_offer_none_accepted(node):
    async def main():
        a = await connect(node, node.mint("a", **ALL), subprotocols=None)
        assert a.subprotocol is None
        await ok(a, "join", room="r")
        await ok(a, "publish", room="r", data=1)
        assert (await recv_msgs(a, 1))[0]["data"] == 1
        await close_all([a])

    run(main(), 10)


@pytest.mark.parametrize("offer", [["chat.v9"], ["roomcast.v2", "mqtt"],
                                   ["ROOMCAST.V1"]])
def test_offer_only_others_refused(node, offer):
    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            await open_ws(node, node.mint("a", **ALL), subprotocols=offer)
        assert ei.value.status_code == 400

    run(main(), 10)
    st, hdrs, _ = raw_http(node.port, "/ws", headers={
        "Authorization": "Bearer " + node.mint("a", **ALL),
        "Sec-WebSocket-Protocol": ", ".join(offer)})
    assert st == 400, st
    assert "sec-websocket-protocol" not in hdrs


def test_selected_header_on_101(node):
    st, hdrs, _ = raw_http(node.port, "/ws", headers={
        "Authorization": "Bearer " + node.mint("a", **ALL),
        "Sec-WebSocket-Protocol": "x.v1, roomcast.v1"})
    assert st == 101
    assert hdrs.get("sec-websocket-protocol") == "roomcast.v1"
    assert hdrs.get("upgrade", "").lower() == "websocket"


@pytest.mark.parametrize("path", ["/", "/nope", "/ws/extra", "/wss", "/WS"])
def test_wrong_path_404(node, path):
    tok = node.mint("a", **ALL)
    st, _, _ = raw_http(node.port, path,
                        headers={"Authorization": "Bearer " + tok})
    assert st == 404, (path, st)

    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            await open_ws(node, tok, path=path)
        assert ei.value.status_code == 404

    run(main(), 10)


def test_custom_ws_path(nodes):
    node = nodes(flags={"ws_path": "/realtime"})

    async def main():
        a = await connect(node, node.mint("a", **ALL))  # node.url() uses it
        assert node.url().endswith("/realtime")
        await ok(a, "ping")
        await close_all([a])
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            await open_ws(node, node.mint("a", **ALL), path="/ws")
        assert ei.value.status_code == 404

    run(main(), 10)


def test_query_string_does_not_change_path(node):
    tok = node.mint("a", **ALL)
    st, _, _ = raw_http(node.port, "/ws?foo=bar&token=" + tok)
    assert st == 101


JS = (REPO / "clients" / "js" / "roomcast.js").read_bytes()


def _get(port, path, headers=None):
    """One GET on a fresh connection, the body read to content-length (or
    until the server closes): (status, headers, body)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def test_serves_the_js_client(node):
    st, hdrs, body = _get(node.port, "/roomcast.js")
    assert st == 200
    assert body == JS  # the very file of clients/js, whole
    assert hdrs["content-type"].startswith("text/javascript")
    assert hdrs["access-control-allow-origin"] == "*"
    assert "max-age" in hdrs["cache-control"]
    assert int(hdrs["content-length"]) == len(JS)
    # Revalidation: the same ETag answers 304 with no body.
    st, hdrs2, body = _get(node.port, "/roomcast.js",
                           {"If-None-Match": hdrs["etag"]})
    assert st == 304 and body == b""
    assert hdrs2["etag"] == hdrs["etag"]
    st, _, body = _get(node.port, "/roomcast.js", {"If-None-Match": '"x"'})
    assert st == 200 and body == JS


def test_js_client_to_a_slow_reader(node):
    """The module goes out in pieces from WRITEABLE: a reader with a tiny
    receive buffer that reads slowly still gets every byte, and the node
    keeps serving WebSocket clients meanwhile."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.settimeout(10)
    s.connect(("127.0.0.1", node.port))
    s.sendall(b"GET /roomcast.js HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)  # the node fills the window and waits for WRITEABLE

    async def main():
        a = await connect(node, node.mint("a", **ALL))
        await ok(a, "ping")
        await close_all([a])

    run(main(), 10)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, _, body = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    while len(body) < len(JS):
        chunk = s.recv(4096)
        assert chunk, "closed early"
        body += chunk
        time.sleep(0.001)
    assert body == JS
    s.close()


def test_js_client_only_by_get(node):
    st, _, _ = raw_http(node.port, "/roomcast.js", upgrade=False,
                        method="POST")
    assert st == 426
