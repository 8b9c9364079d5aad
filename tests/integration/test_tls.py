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


# --------------------------------------------------------------------------
# The profile: Mozilla "intermediate" by default, tls_min_version and
# tls_ciphers for those who must differ (issue 15).

def handshake(n, args):
    """True when `openssl s_client ARGS` completes a handshake with n."""
    p = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{n.port}",
         "-servername", "127.0.0.1"] + args,
        input=b"", capture_output=True, timeout=15)
    out = p.stdout.decode(errors="replace")
    return "Cipher is (NONE)" not in out and "Cipher is " in out


def test_default_profile_is_intermediate(tls_node):
    n = tls_node
    # CBC without forward secrecy, and the old versions: refused
    assert not handshake(n, ["-tls1_2", "-cipher", "AES128-SHA"])
    assert not handshake(n, ["-tls1_2", "-cipher", "AES256-GCM-SHA384"])
    assert not handshake(n, ["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"])
    # forward-secret AEAD on 1.2, and 1.3: accepted
    assert handshake(n, ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"])
    assert handshake(n, ["-tls1_2", "-cipher",
                         "ECDHE-RSA-CHACHA20-POLY1305"])
    assert handshake(n, ["-tls1_3"])


def test_min_version_and_ciphers_keys(nodes, tmp_path):
    cert, key = make_cert(tmp_path)
    n = nodes(flags={"tls_cert": cert, "tls_key": key,
                     "tls_min_version": "1.3"})
    assert not handshake(n, ["-tls1_2", "-cipher",
                             "ECDHE-RSA-AES128-GCM-SHA256"])
    assert handshake(n, ["-tls1_3"])
    m = nodes(flags={"tls_cert": cert, "tls_key": key,
                     "tls_ciphers": "ECDHE-RSA-AES256-GCM-SHA384"})
    assert handshake(m, ["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"])
    assert not handshake(m, ["-tls1_2", "-cipher",
                             "ECDHE-RSA-AES128-GCM-SHA256"])


def test_bad_tls_values_refused_at_start(tmp_path):
    from harness import SECRET, free_port, run_roomcastd
    cert, key = make_cert(tmp_path)
    base = ["--jwt-secret", SECRET, "--listen", f"127.0.0.1:{free_port()}",
            "--admin-listen", f"127.0.0.1:{free_port()}",
            "--tls-cert", str(cert), "--tls-key", str(key)]
    for extra, needle in ((["--tls-min-version", "1.1"], "tls_min_version"),
                          (["--tls-min-version", "tls1.3"], "tls_min_version"),
                          (["--tls-ciphers", "NOT-A-CIPHER"], "tls_ciphers")):
        rc, _, err, _ = run_roomcastd(base + extra)
        assert rc == 2 and needle in err, (extra, rc, err)


# --------------------------------------------------------------------------
# SIGHUP: the certificate and key again, no client dropped; a bad pair is
# refused and the old one stays.

def served_cert(n):
    """The DER of the certificate n presents to a new handshake."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    import socket
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def der(cert_path):
    return ssl.PEM_cert_to_DER_cert(cert_path.read_text())


def rotate(live_cert, live_key, src_cert, src_key):
    """Replace the files in place, as cert-manager or certbot do."""
    live_cert.write_bytes(src_cert.read_bytes())
    live_key.write_bytes(src_key.read_bytes())


def reload_case(n, tmp_path, cert, key, wait_reloads):
    import signal
    import time
    from harness import wait_until
    a_der = der(cert)
    assert served_cert(n) == a_der

    async def main():
        old = await connect(n, n.mint("old", **ALL))
        await ok(old, "join", room="r")
        (tmp_path / "b").mkdir()
        cert_b, key_b = make_cert(tmp_path / "b")
        rotate(cert, key, cert_b, key_b)
        n.signal(signal.SIGHUP)
        wait_until(lambda: wait_reloads("ok") >= 1, 10,
                   what="the reload counted")
        # the open connection goes on; a new one sees certificate B
        await ok(old, "ping")
        assert served_cert(n) == der(cert_b)
        new = await connect(n, n.mint("new", **ALL))
        await ok(new, "join", room="r")
        await ok(new, "publish", room="r", data={"after": "reload"})
        for ws in (old, new):
            got = await recv_msgs(ws, 1)
            assert got[0]["data"] == {"after": "reload"}
        # a key that is not the certificate's: refused, B stays
        (tmp_path / "c").mkdir()
        _, key_c = make_cert(tmp_path / "c")
        key.write_bytes(key_c.read_bytes())
        n.signal(signal.SIGHUP)
        wait_until(lambda: wait_reloads("error") >= 1, 10,
                   what="the refused reload counted")
        time.sleep(0.2)
        assert served_cert(n) == der(cert_b)
        await ok(old, "ping")
        # garbage in the certificate file: refused too
        cert.write_text("not a certificate\n")
        n.signal(signal.SIGHUP)
        wait_until(lambda: wait_reloads("error") >= 2, 10,
                   what="the second refused reload counted")
        assert served_cert(n) == der(cert_b)
        await close_all([old, new])

    run(main(), 60)


def test_sighup_reloads_the_pair(nodes, tmp_path):
    (tmp_path / "live").mkdir()
    cert, key = make_cert(tmp_path / "live")
    n = nodes(flags={"tls_cert": cert, "tls_key": key})
    n.ssl_context = ssl.create_default_context()
    n.ssl_context.check_hostname = False
    n.ssl_context.verify_mode = ssl.CERT_NONE
    reload_case(n, tmp_path, cert, key,
                lambda r: n.m("roomcast_tls_reloads_total", result=r))
    log = n.log_text()
    assert "event=tls_reload result=ok" in log
    assert "event=tls_reload result=error" in log
    assert "the old pair stays" in log


def test_sighup_reaches_every_worker(redis, nodes, tmp_path):
    from harness import redis_flags
    (tmp_path / "live").mkdir()
    cert, key = make_cert(tmp_path / "live")
    n = nodes(flags=redis_flags(redis, workers=2, tls_cert=cert,
                                tls_key=key))
    n.wait_ready(15)
    n.ssl_context = ssl.create_default_context()
    n.ssl_context.check_hostname = False
    n.ssl_context.verify_mode = ssl.CERT_NONE
    # the supervisor's /metrics sums the workers': both must have reloaded
    reload_case(n, tmp_path, cert, key,
                lambda r: n.m("roomcast_tls_reloads_total", result=r) / 2)
