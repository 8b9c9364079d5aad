# wss:// against the real roomcastd with a throwaway self-signed certificate
# made by the openssl CLI.
# SPDX-License-Identifier: MIT
import asyncio
import ssl
import subprocess

import pytest
import websockets

from harness import (close_all, connect, open_ws, ok, raw_http, recv_msgs,
                     run, ws_kwargs)

ALL = dict(rooms=["*"], pub=["*"])


def make_cert(d, cn="127.0.0.1"):
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-subj", f"/CN={cn}", "-days", "1",
         "-addext", f"subjectAltName=IP:{cn}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def tls_node(nodes, tmp_path):
    cert, key = make_cert(tmp_path)
    n = nodes(flags={"tls_cert": cert, "tls_key": key})
    ctx = ssl.create_default_context(cafile=str(cert))
    n.ssl_context = ctx
    n.cert = cert
    return n


@pytest.mark.parametrize("via", ["header", "query", "frame"])
def test_wss_join_publish_receive(tls_node, via):
    n = tls_node
    assert n.url().startswith("wss://")

    async def main():
        a = await connect(n, n.mint("a", **ALL), via=via)
        b = await connect(n, n.mint("b", **ALL), via=via)
        assert a.rc_welcome["node"] == n.name
        await ok(a, "join", room="secure")
        await ok(b, "join", room="secure")
        payloads = [{"i": i, "s": "t" * (i * 500)} for i in range(20)]
        for p in payloads:
            await ok(b, "publish", room="secure", data=p)
        for ws in (a, b):
            got = await recv_msgs(ws, len(payloads))
            assert [g["data"] for g in got] == payloads
            assert [g["seq"] for g in got] == list(range(1, 21))
        await close_all([a, b])

    run(main(), 30)


def test_wss_large_messages(tls_node):
    """Messages bigger than one TLS record (16 KiB) arrive whole."""
    n = tls_node

    async def main():
        a = await connect(n, n.mint("a", **ALL))
        await ok(a, "join", room="big")
        data = "B" * 60000
        await ok(a, "publish", room="big", data=data)
        got = await recv_msgs(a, 1)
        assert got[0]["data"] == data
        await close_all([a])

    run(main(), 20)


def test_untrusted_cert_refused_by_client(tls_node):
    """Sanity of the test itself: without trusting the cert the client
    refuses, so the passing tests above really verified it."""
    n = tls_node

    async def main():
        with pytest.raises(ssl.SSLCertVerificationError):
            await websockets.connect(
                n.url(), **ws_kwargs(None, ssl=ssl.create_default_context()))

    run(main(), 15)


def test_plain_ws_to_tls_port_fails(tls_node):
    n = tls_node

    async def main():
        url = n.url().replace("wss://", "ws://", 1)
        with pytest.raises((websockets.exceptions.InvalidHandshake,
                            websockets.exceptions.InvalidMessage,
                            ConnectionError, OSError, EOFError,
                            asyncio.TimeoutError)):
            ws = await websockets.connect(
                url, extra_headers={
                    "Authorization": "Bearer " + n.mint("a", **ALL)},
                **ws_kwargs(None, open_timeout=5))
            await ws.close()
        # and the TLS listener still works afterwards
        a = await connect(n, n.mint("a", **ALL))
        await ok(a, "ping")
        await close_all([a])

    run(main(), 20)


def test_plain_http_to_tls_port_not_served(tls_node):
    n = tls_node
    try:
        st, _, body = raw_http(n.port, "/ws", timeout=3)
    except (AssertionError, OSError):
        return  # no HTTP answer at all: fine
    assert st not in (101, 200, 401), (st, body)


def test_tls_bad_token_still_401(tls_node):
    n = tls_node

    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            await open_ws(n, "abc.def")
        assert ei.value.status_code == 401

    run(main(), 15)
