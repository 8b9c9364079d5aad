# Subprotocol negotiation and HTTP-level answers of the client port.
# SPDX-License-Identifier: MIT
import pytest
import websockets

from harness import (close_all, connect, ok, open_ws, raw_http, recv_msgs,
                     run)

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
