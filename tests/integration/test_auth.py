# Authentication against the real roomcastd: the three token sources, HTTP
# 401 before the upgrade, 4001 after it, claims, expiry, refresh, and the
# auth failure metrics.
# SPDX-License-Identifier: MIT
import asyncio
import json
import time

import pytest
import websockets

from harness import (SECRET, _recv_raw, assert_no_msgs, close_all, connect,
                     err, expect_close, metric, mint_jwt, ok, open_ws,
                     raw_http, recv_msgs, run, send_json, tamper_signature)

ALL = dict(rooms=["*"], pub=["*"])


def bad_tokens(secret=SECRET):
    now = int(time.time())
    good = mint_jwt(secret, "u", **ALL)
    return {
        "expired": mint_jwt(secret, "u", exp=now - 120, iat=now - 300, **ALL),
        "bad_signature": tamper_signature(good),
        "bad_signature_other_secret": mint_jwt("not-the-secret", "u", **ALL),
        "malformed": "abc.def",
        "malformed_garbage": "!!!.???.***",
        "bad_alg": mint_jwt(secret, "u", alg="none", **ALL),
        "bad_alg_hs512": mint_jwt(secret, "u", alg="HS512", **ALL),
        "no_exp": mint_jwt(secret, "u", omit=("exp",), **ALL),
        "not_yet_valid": mint_jwt(secret, "u", nbf=now + 600, **ALL),
        "bad_sub": mint_jwt(secret, None, **ALL),
        "bad_sub_empty": mint_jwt(secret, "", **ALL),
        "bad_claims": mint_jwt(secret, "u", rooms="lobby", pub=["*"]),
        "bad_claims_pub": mint_jwt(secret, "u", rooms=["*"], pub=[1, 2]),
    }


def reason_of(case):
    for r in ("bad_signature", "malformed", "bad_alg", "bad_sub",
              "bad_claims"):
        if case.startswith(r):
            return r
    return case


def check_welcome(ws, node):
    w = ws.rc_welcome
    assert w["op"] == "welcome"
    assert isinstance(w["session"], str) and w["session"], w
    assert w["node"] == node.name, w
    assert isinstance(w["resume"], str) and w["resume"], w
    assert w["heartbeat_ms"] == 25000, w
    assert w["resumed"] is False, w


@pytest.mark.parametrize("via", ["header", "query", "frame"])
def test_token_sources(node, via):
    async def main():
        a = await connect(node, node.mint("alice", **ALL), via=via)
        check_welcome(a, node)
        assert a.subprotocol == "roomcast.v1"
        await ok(a, "join", room="r")
        await ok(a, "publish", room="r", data=via)
        got = await recv_msgs(a, 1)
        assert got[0]["data"] == via
        await close_all([a])

    run(main(), 20)


def test_sessions_are_distinct(node):
    async def main():
        a = await connect(node, node.mint("same", **ALL))
        b = await connect(node, node.mint("same", **ALL))
        assert a.rc_welcome["session"] != b.rc_welcome["session"]
        assert a.rc_welcome["resume"] != b.rc_welcome["resume"]
        await close_all([a, b])

    run(main(), 10)


def test_header_beats_query(node):
    good = node.mint("u", **ALL)
    bad = tamper_signature(good)
    # a good header wins over a bad query token
    st, _, _ = raw_http(node.port, "/ws?token=" + bad,
                        headers={"Authorization": "Bearer " + good,
                                 "Sec-WebSocket-Protocol": "roomcast.v1"})
    assert st == 101
    # a bad header is refused even with a good query token
    st, _, body = raw_http(node.port, "/ws?token=" + good,
                           headers={"Authorization": "Bearer " + bad})
    assert st == 401
    assert json.loads(body) == {"error": "unauthorized",
                                "reason": "bad_signature"}


CASES = sorted(bad_tokens())


@pytest.mark.parametrize("case", CASES)
def test_bad_header_token_401(node, case):
    tok = bad_tokens()[case]
    st, hdrs, body = raw_http(node.port, "/ws",
                              headers={"Authorization": "Bearer " + tok})
    assert st == 401, (st, body)
    assert json.loads(body) == {"error": "unauthorized",
                                "reason": reason_of(case)}, body

    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            await open_ws(node, tok, via="header")
        assert ei.value.status_code == 401

    run(main(), 10)


@pytest.mark.parametrize("case", ["expired", "bad_signature", "malformed",
                                  "bad_alg", "no_exp"])
def test_bad_query_token_401(node, case):
    import urllib.parse
    tok = bad_tokens()[case]
    st, _, body = raw_http(node.port,
                           "/ws?token=" + urllib.parse.quote(tok, safe=""))
    assert st == 401, (st, body)
    assert json.loads(body) == {"error": "unauthorized",
                                "reason": reason_of(case)}, body

    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            await open_ws(node, tok, via="query")
        assert ei.value.status_code == 401

    run(main(), 10)


@pytest.mark.parametrize("frame", [
    {"op": "auth", "token": "BAD_SIGNATURE"},
    {"op": "auth", "token": "EXPIRED"},
    {"op": "auth", "token": "abc.def"},
    {"op": "auth", "token": "x" * 9000},           # too_long
    {"op": "auth", "token": 5},
    {"op": "auth"},
    {"op": "ping", "id": 1},                        # not an auth frame
    {"op": "join", "id": 1, "room": "r"},
])
def test_bad_first_frame_4001(node, frame):
    frame = dict(frame)
    if frame.get("token") == "BAD_SIGNATURE":
        frame["token"] = bad_tokens()["bad_signature"]
    if frame.get("token") == "EXPIRED":
        frame["token"] = bad_tokens()["expired"]

    async def main():
        ws = await open_ws(node)
        await send_json(ws, frame)
        code, frames = await expect_close(ws, 5)
        assert code == 4001, (code, frames)
        assert not any(isinstance(f, dict) and f.get("op") in
                       ("welcome", "ok") for f in frames), frames

    run(main(), 15)


def test_first_frame_not_json_4001(node):
    async def main():
        ws = await open_ws(node)
        await ws.send("hello")
        code, frames = await expect_close(ws, 5)
        assert code == 4001, (code, frames)

    run(main(), 15)


def test_auth_timeout_4001(nodes):
    node = nodes(flags={"auth_timeout_ms": 500})

    async def main():
        ws = await open_ws(node)
        t0 = time.monotonic()
        code, frames = await expect_close(ws, 5)
        dt = time.monotonic() - t0
        assert code == 4001, (code, frames)
        assert 0.3 <= dt <= 2.5, dt
        # an auth frame in time still works on this node
        b = await connect(node, node.mint("b", **ALL), via="frame")
        await ok(b, "ping")
        await close_all([b])

    run(main(), 15)


def test_default_leeway_30s(node):
    now = int(time.time())
    tok = mint_jwt(SECRET, "late", exp=now - 10, iat=now - 100, **ALL)
    tok_too_late = mint_jwt(SECRET, "late", exp=now - 40, iat=now - 100,
                            **ALL)

    async def main():
        a = await connect(node, tok)
        await ok(a, "ping")
        await close_all([a])
        st, _, body = raw_http(node.port, "/ws", headers={
            "Authorization": "Bearer " + tok_too_late})
        assert st == 401 and json.loads(body)["reason"] == "expired"

    run(main(), 15)


def test_issuer_and_audience(nodes):
    node = nodes(flags={"jwt_issuer": "https://issuer.test",
                        "jwt_audience": "roomcast"})

    def attempt(tok):
        st, _, body = raw_http(node.port, "/ws", headers={
            "Authorization": "Bearer " + tok})
        return st, (json.loads(body) if st == 401 else None)

    good = node.mint("u", iss="https://issuer.test", aud="roomcast", **ALL)
    assert attempt(good)[0] == 101
    good_list = node.mint("u", iss="https://issuer.test",
                          aud=["other", "roomcast"], **ALL)
    assert attempt(good_list)[0] == 101
    assert attempt(node.mint("u", iss="https://evil.test", aud="roomcast",
                             **ALL))[1]["reason"] == "bad_issuer"
    assert attempt(node.mint("u", aud="roomcast", **ALL))[1]["reason"] == \
        "bad_issuer"
    assert attempt(node.mint("u", iss="https://issuer.test", aud="other",
                             **ALL))[1]["reason"] == "bad_audience"
    assert attempt(node.mint("u", iss="https://issuer.test",
                             **ALL))[1]["reason"] == "bad_audience"


def test_forbidden_join_outside_rights(node):
    async def main():
        a = await connect(node, node.mint("a", rooms=["team:*"],
                                          pub=["team:a"]))
        await ok(a, "join", room="team:a")
        await err(a, "join", "forbidden", room="admin")
        await err(a, "publish", "forbidden", room="team:b", data=1)
        await ok(a, "ping")
        await close_all([a])

    run(main(), 10)


def test_token_expiry_closes_4001(nodes):
    node = nodes(flags={"jwt_leeway_ms": 0})

    async def main():
        exp = int(time.time()) + 2
        a = await connect(node, node.mint("short", exp=exp, **ALL))
        await ok(a, "join", room="r")
        await ok(a, "publish", room="r", data="before")
        assert (await recv_msgs(a, 1))[0]["data"] == "before"
        code, frames = await expect_close(a, 6)
        closed_at = time.time()
        assert code == 4001, (code, frames)
        errors = [f for f in frames if isinstance(f, dict)
                  and f.get("op") == "error"]
        assert errors and errors[-1]["code"] == "token_expired", frames
        assert closed_at >= exp - 0.05, (closed_at, exp)
        assert closed_at <= exp + 2.5, (closed_at, exp)

    run(main(), 20)


def test_refresh_extends_connection(nodes):
    node = nodes(flags={"jwt_leeway_ms": 0})

    async def main():
        exp = int(time.time()) + 2
        a = await connect(node, node.mint("alice", exp=exp, **ALL))
        await ok(a, "join", room="r")
        new_exp = int(time.time()) + 60
        r = await ok(a, "refresh", token=node.mint("alice", exp=new_exp,
                                                   **ALL))
        assert r["exp"] == new_exp, r
        await asyncio.sleep(max(0.0, exp - time.time()) + 1.5)
        await ok(a, "ping")
        p = await connect(node, node.mint("p", **ALL))
        await ok(p, "publish", room="r", data="still here")
        got = await recv_msgs(a, 1)
        assert got[0]["data"] == "still here"
        frames = [f for f in list(a.rc_pending) if f.get("op") == "error"]
        assert not frames, frames
        await close_all([a, p])

    run(main(), 20)


def test_refresh_leaves_rooms_no_longer_allowed(node):
    async def main():
        a = await connect(node, node.mint("alice", rooms=["keep", "drop"]))
        await ok(a, "join", room="keep")
        await ok(a, "join", room="drop")
        p = await connect(node, node.mint("p", **ALL))
        await ok(p, "publish", room="drop", data="d1")
        assert (await recv_msgs(a, 1))[0]["data"] == "d1"

        r = await ok(a, "refresh", token=node.mint("alice", rooms=["keep"]))
        assert isinstance(r["exp"], int), r
        await ok(p, "publish", room="drop", data="d2")
        await ok(p, "publish", room="keep", data="k1")
        got = await recv_msgs(a, 1)
        assert got[0]["room"] == "keep" and got[0]["data"] == "k1", got
        await assert_no_msgs(a, 0.5)
        await err(a, "leave", "not_joined", room="drop")
        await err(a, "join", "forbidden", room="drop")
        await ok(a, "leave", room="keep")
        await close_all([a, p])

    run(main(), 20)


def test_refresh_other_sub_refused(node):
    async def main():
        a = await connect(node, node.mint("alice", rooms=["r"]))
        await ok(a, "join", room="r")
        await err(a, "refresh", "unauthorized",
                  token=node.mint("mallory", rooms=["*"], pub=["*"]))
        # still alice, with alice's rights
        await err(a, "join", "forbidden", room="other")
        await ok(a, "ping")
        # a refresh token that does not verify is refused too
        await err(a, "refresh", "unauthorized",
                  token=tamper_signature(node.mint("alice", rooms=["r"])))
        await ok(a, "ping")
        await close_all([a])

    run(main(), 15)


def test_auth_failures_counted_by_reason(node):
    toks = bad_tokens()

    def header(tok):
        st, _, _ = raw_http(node.port, "/ws",
                            headers={"Authorization": "Bearer " + tok})
        assert st == 401

    def query(tok):
        import urllib.parse
        st, _, _ = raw_http(node.port, "/ws?token="
                            + urllib.parse.quote(tok, safe=""))
        assert st == 401

    header(toks["expired"])
    query(toks["expired"])
    header(toks["bad_signature"])
    header(toks["malformed"])
    header(toks["bad_alg"])
    header(toks["bad_alg_hs512"])
    header(toks["no_exp"])

    async def frame_fail():
        ws = await open_ws(node)
        await send_json(ws, {"op": "auth", "token": toks["bad_signature"]})
        code, _ = await expect_close(ws, 5)
        assert code == 4001

    run(frame_fail(), 10)
    m = node.metrics()
    want = {"expired": 2, "bad_signature": 2, "malformed": 1, "bad_alg": 2,
            "no_exp": 1}
    got = {r: metric(m, "roomcast_auth_failures_total", reason=r)
           for r in want}
    assert got == want, {k: v for k, v in m.items() if "auth" in k}
    # successes are not failures
    total = sum(v for k, v in m.items()
                if k.startswith("roomcast_auth_failures_total"))
    assert total == sum(want.values())


def test_welcome_first_then_requests(node):
    """Nothing but welcome comes before the client speaks."""
    async def main():
        ws = await open_ws(node, node.mint("a", **ALL))
        w = await _recv_raw(ws, 5)
        assert w["op"] == "welcome"
        ws.rc_welcome = w
        check_welcome(ws, node)
        await assert_no_msgs(ws, 0.3)
        assert not ws.rc_pending
        await close_all([ws])

    run(main(), 10)
