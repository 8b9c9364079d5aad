# Admin endpoints, configuration sources and refusal, --help/--version and
# SIGTERM, against the real roomcastd.
# SPDX-License-Identifier: MIT
import json
import re
import signal
import socket
import time

import pytest

from harness import (SECRET, Checks, Node, clean_env, close_all, connect,
                     err, expect_close, free_port, metric, metric_names,
                     mint_jwt, ok, raw_http, recv_msgs, run, run_roomcastd,
                     wait_until)

ALL = dict(rooms=["*"], pub=["*"])

COUNTERS = ["roomcast_frames_in_total", "roomcast_frames_out_total",
            "roomcast_deliveries_total", "roomcast_bytes_out_total",
            "roomcast_slow_consumer_closes_total",
            "roomcast_rate_limited_total", "roomcast_bad_requests_total",
            "roomcast_auth_failures_total"]
GAUGES = ["roomcast_connections", "roomcast_rooms", "roomcast_queue_bytes"]
HISTOGRAMS = ["roomcast_publish_deliver_seconds"]


def test_healthz_readyz(node):
    st, body, _ = node.admin("/healthz")
    assert st == 200
    assert node.readyz() == 200


def test_admin_unknown_path_404(node):
    assert node.admin("/nope")[0] == 404


def test_stats_shape(node):
    st, body, hdrs = node.admin("/stats")
    assert st == 200
    ctype = {k.lower(): v for k, v in hdrs.items()}.get("content-type", "")
    assert ctype.startswith("application/json"), ctype
    s = json.loads(body)
    assert s["node"] == node.name
    assert s["connections"] == 0
    assert s["rooms"] == 0

    async def main():
        a = await connect(node, node.mint("a", **ALL))
        b = await connect(node, node.mint("b", **ALL))
        await ok(a, "join", room="x")
        await ok(b, "join", room="x")
        await ok(b, "join", room="y")
        s = node.stats()
        assert (s["node"], s["connections"], s["rooms"]) == (node.name, 2, 2)
        await ok(b, "leave", room="y")
        s = node.stats()
        assert (s["connections"], s["rooms"]) == (2, 1), s
        await close_all([a, b])
        wait_until(lambda: node.stats()["connections"] == 0, 5,
                   what="stats connections == 0")
        assert node.stats()["rooms"] == 0

    run(main(), 20)


def test_metrics_shape(node):
    # one auth failure so the labelled family has a series
    st, _, _ = raw_http(node.port, "/ws", headers={
        "Authorization": "Bearer abc.def"})
    assert st == 401

    async def main():
        a = await connect(node, node.mint("a", **ALL))
        await ok(a, "join", room="h")
        for i in range(3):
            await ok(a, "publish", room="h", data=i)
        await recv_msgs(a, 3)
        st, body, hdrs = node.admin("/metrics")
        assert st == 200
        ctype = {k.lower(): v for k, v in hdrs.items()}.get("content-type",
                                                            "")
        assert ctype.startswith("text/plain"), ctype
        text = body.decode()
        m = node.metrics()
        names = metric_names(m)
        for n in COUNTERS + GAUGES:
            assert n in names, f"{n} missing from /metrics"
        for h in HISTOGRAMS:
            for suffix in ("_bucket", "_sum", "_count"):
                assert h + suffix in names, f"{h}{suffix} missing"
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        for n in COUNTERS:
            assert types.get(n) == "counter", (n, types.get(n))
        for n in GAUGES:
            assert types.get(n) == "gauge", (n, types.get(n))
        for h in HISTOGRAMS:
            assert types.get(h) == "histogram", (h, types.get(h))

        assert metric(m, "roomcast_connections") == 1
        assert metric(m, "roomcast_rooms") == 1
        assert metric(m, "roomcast_deliveries_total") == 3
        assert metric(m, "roomcast_auth_failures_total",
                      reason="malformed") == 1
        # histogram: cumulative buckets ending in +Inf == _count
        h = "roomcast_publish_deliver_seconds"
        buckets = []
        for k, v in m.items():
            mm = re.fullmatch(h + r'_bucket\{le="([^"]+)"\}', k)
            if mm:
                le = mm.group(1)
                buckets.append((float("inf") if le == "+Inf" else float(le),
                                v))
        buckets.sort()
        assert len(buckets) >= 2 and buckets[-1][0] == float("inf"), buckets
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), buckets
        assert buckets[-1][1] == metric(m, h + "_count") == 3
        assert 0 <= metric(m, h + "_sum") < 3 * 5.0
        await close_all([a])

    run(main(), 20)


# ---------------------------------------------------------------- config

def write_config(tmp_path, obj, name="roomcast.json"):
    p = tmp_path / name
    if isinstance(obj, str):
        p.write_text(obj)
    else:
        p.write_text(json.dumps(obj))
    return p


def config_node(tmp_path, extra=None, env=None, args=None, name="cfgnode"):
    n = Node(tmp_path / "nodes", name=name, with_defaults=False, env=env)
    cfg = {"listen": f"127.0.0.1:{n.port}",
           "admin_listen": f"127.0.0.1:{n.admin_port}",
           "jwt_secret": SECRET, "node_id": "from-file"}
    cfg.update(extra or {})
    p = write_config(tmp_path, cfg)
    n.cmd += ["--config", str(p)] + list(args or [])
    return n


@pytest.fixture
def owned(request):
    started = []
    request.node.rc_nodes = started
    yield started
    problems = []
    for n in started:
        try:
            if n.proc is not None:
                n.stop()
        except AssertionError as e:
            problems.append(str(e))
        finally:
            n.kill()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_config_file(tmp_path, owned):
    n = config_node(tmp_path, {"max_rooms": 2})
    owned.append(n)
    n.start()
    assert n.stats()["node"] == "from-file"

    async def main():
        a = await connect(n, mint_jwt(SECRET, "a", **ALL))
        await ok(a, "join", room="1")
        await ok(a, "join", room="2")
        await err(a, "join", "too_many_rooms", room="3")
        await close_all([a])

    run(main(), 15)


def test_flag_beats_env_beats_file(tmp_path, owned):
    env = clean_env(ROOMCAST_NODE_ID="from-env")
    n = config_node(tmp_path, env=env, name="envnode")
    owned.append(n)
    n.start()
    assert n.stats()["node"] == "from-env"
    n.stop()
    n2 = config_node(tmp_path, env=env, args=["--node-id", "from-flag"],
                     name="flagnode")
    owned.append(n2)
    n2.start()
    assert n2.stats()["node"] == "from-flag"


def base_args():
    return ["--listen", f"127.0.0.1:{free_port()}",
            "--admin-listen", f"127.0.0.1:{free_port()}",
            "--jwt-secret", SECRET]


BAD_CONFIGS = [
    # (file content, words of which stderr must hold at least one)
    ({"bogus_key": 1}, ["bogus_key"]),
    ({"max_rooms": "lots"}, ["max_rooms"]),
    ({"max_rooms": -1}, ["max_rooms"]),
    ({"max_frame": 1.5}, ["max_frame"]),
    ({"listen": "not-an-address"}, ["listen"]),
    ({"listen": 8080}, ["listen"]),
    ({"rate_limit": "fast"}, ["rate_limit"]),
    ({"jwt_leeway_ms": []}, ["jwt_leeway_ms"]),
    ({"log_level": "chatty"}, ["log_level"]),
    ("{not json", ["json", "roomcast.json"]),
    ("[1, 2]", ["object", "roomcast.json", "json"]),
    ("", ["json", "roomcast.json", "empty"]),
]


@pytest.mark.parametrize("content,words", BAD_CONFIGS,
                         ids=[str(i) for i in range(len(BAD_CONFIGS))])
def test_bad_config_file_refused(tmp_path, content, words):
    p = write_config(tmp_path, content)
    rc, out, err, dt = run_roomcastd(base_args() + ["--config", str(p)],
                                     timeout=5)
    assert rc != 0, (rc, out, err)
    assert dt < 5
    low = err.lower()
    assert any(w.lower() in low for w in words), \
        f"stderr does not name any of {words}: {err!r}"


@pytest.mark.parametrize("args,words", [
    (["--bogus-flag", "1"], ["bogus-flag", "bogus_flag"]),
    (["--max-rooms", "lots"], ["max-rooms", "max_rooms"]),
    (["--listen", "nowhere"], ["listen"]),
    (["--config", "/nonexistent/roomcast.json"],
     ["/nonexistent/roomcast.json"]),
])
def test_bad_flags_refused(args, words):
    rc, out, err, dt = run_roomcastd(base_args() + args, timeout=5)
    assert rc != 0, (rc, out, err)
    low = err.lower()
    assert any(w.lower() in low for w in words), (words, err)


def test_bad_env_refused():
    env = clean_env(ROOMCAST_MAX_ROOMS="lots")
    rc, out, err, dt = run_roomcastd(base_args(), timeout=5, env=env)
    assert rc != 0, (rc, out, err)
    assert "max_rooms" in err.lower() or "roomcast_max_rooms" in err.lower(), \
        err


def test_no_jwt_secret_refused():
    rc, out, err, dt = run_roomcastd(
        ["--listen", f"127.0.0.1:{free_port()}",
         "--admin-listen", f"127.0.0.1:{free_port()}"], timeout=5)
    assert rc != 0, (rc, out, err)
    assert "jwt" in err.lower(), err


def test_port_in_use_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        rc, out, err, dt = run_roomcastd(
            ["--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{free_port()}",
             "--jwt-secret", SECRET], timeout=5)
        assert rc != 0, (rc, out, err)
        assert err.strip(), "no reason on stderr"
    finally:
        s.close()


def test_help_exits_0():
    rc, out, err, dt = run_roomcastd(["--help"], timeout=5)
    assert rc == 0, (rc, err)
    text = out.lower()
    for key in ("listen", "admin", "jwt", "max", "rate", "tls", "config"):
        assert key in text, f"--help does not mention {key}: {out!r}"


def test_version_exits_0():
    rc, out, err, dt = run_roomcastd(["--version"], timeout=5)
    assert rc == 0, (rc, err)
    assert re.search(r"\d+\.\d+\.\d+", out), out


def test_sigterm_idle_exits_0(nodes):
    n = nodes()
    t0 = time.monotonic()
    n.signal(signal.SIGTERM)
    rc = n.wait_exit(10)
    assert rc == 0, (rc, n.log_tail())
    assert time.monotonic() - t0 < 5


def test_sigterm_closes_clients_and_exits_0(nodes):
    """PROTOCOL 4: SIGTERM drains: `reconnect` (after_ms, resume), queued
    frames flushed, close 1012, exit 0 once the clients are gone."""
    n = nodes()

    async def main():
        check = Checks()
        a = await connect(n, n.mint("a", **ALL))
        await ok(a, "join", room="r")
        t0 = time.monotonic()
        n.signal(signal.SIGTERM)
        code, frames = await expect_close(a, 15)
        check(code == 1012, f"close code {code}, expected 1012; frames "
                            f"{frames!r}")
        rec = [f for f in frames if isinstance(f, dict)
               and f.get("op") == "reconnect"]
        if check(len(rec) == 1, f"expected one reconnect frame: {frames!r}"):
            check(isinstance(rec[0].get("after_ms"), int), repr(rec))
            check(isinstance(rec[0].get("resume"), str), repr(rec))
        rc = n.wait_exit(35)
        check(rc == 0, f"exit code {rc}, expected 0")
        check(time.monotonic() - t0 < 35, "exit took too long")
        check.done()

    run(main(), 60)


def test_second_sigterm_exits_at_once(nodes):
    n = nodes()

    async def main():
        a = await connect(n, n.mint("a", **ALL))
        n.signal(signal.SIGTERM)
        time.sleep(0.05)
        n.signal(signal.SIGTERM)
        rc = n.wait_exit(3)
        assert rc is not None, "still running 3 s after a second SIGTERM"
        n.expect_exit = None  # the contract does not fix this exit code
        await close_all([a])

    run(main(), 20)
