# The load-balancer kit (deploy/haproxy/haproxy.cfg, deploy/nginx/
# roomcast.conf) run for real: Debian's haproxy and nginx in front of two
# real roomcastd nodes on a real redis-server. The committed files are
# rendered with the test's ports (and nginx's log path), never copied: a
# change to the kit is what this test runs.
#
# - HAProxy: ~50 clients connect through it, durable messages flow, one node
#   drains (SIGTERM); its clients follow `reconnect` back through HAProxy to
#   the other node and resume, with no durable message lost or duplicated.
# - HAProxy: a 503 from a draining node at the upgrade is retried on the
#   other node (retry-on 503), even before the health check noticed.
# - nginx: the file passes `nginx -t`; a client gets welcome and a message
#   through it; a draining node's 503 is retried on the other node.
# Every process is started on free loopback ports and stopped by PID.
# SPDX-License-Identifier: MIT
import asyncio
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
import websockets
import websockets.exceptions

from harness import (REPO, SUBPROTOCOL, Publisher, free_port, mint_jwt,
                     run, wait_until, ws_kwargs)

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
NGINX_CONF = REPO / "deploy" / "nginx" / "roomcast.conf"
RESUME_SECRET = "lb-test-resume-secret-0123456789abcdef"
ALL = {"rooms": ["*"], "pub": ["*"]}


# --------------------------------------------------------------------------
# rendering the committed files

def _sub(pattern, repl, text, want, what):
    """re.sub with MULTILINE that must match exactly `want` times: when the
    kit's file changes shape, the test says so instead of running a config
    that still points at 10.0.0.x."""
    out, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    assert n == want, (f"rendering {what}: pattern {pattern!r} matched {n} "
                       f"times, expected {want}")
    return out


def render_haproxy(path, front_port, stats_port, servers):
    """deploy/haproxy/haproxy.cfg with `bind :80` on 127.0.0.1:front_port,
    the stats listener on stats_port, and each `server` line (in order) on
    servers[i] = (client_port, check_port)."""
    text = HAPROXY_CFG.read_text()
    text = _sub(r"^(\s*bind\s+):80\s*$", rf"\g<1>127.0.0.1:{front_port}",
                text, 1, "frontend bind")
    text = _sub(r"^(\s*bind\s+)127\.0\.0\.1:8404\s*$",
                rf"\g<1>127.0.0.1:{stats_port}", text, 1, "stats bind")
    it = iter(servers)

    def srv(m):
        port, check = next(it)
        return f"{m.group(1)}127.0.0.1:{port}{m.group(2)}{check}"
    text = _sub(r"^(\s*server\s+\S+\s+)\S+:\d+(\s.*\bport\s+)\d+", srv, text,
                len(servers), "server lines")
    path.write_text(text)
    return path


def render_nginx(prefix, listen_port, upstream_ports):
    """A throwaway nginx prefix: nginx.conf (its own pid, error log and temp
    paths) that includes deploy/nginx/roomcast.conf rendered with
    listen_port, the upstream servers on upstream_ports and the access log
    in the prefix. Returns (nginx.conf, access log)."""
    prefix.mkdir(parents=True, exist_ok=True)
    access = prefix / "roomcast.access.log"
    text = NGINX_CONF.read_text()
    text = _sub(r"^(\s*listen\s+)80;", rf"\g<1>127.0.0.1:{listen_port};",
                text, 1, "listen")
    it = iter(upstream_ports)
    text = _sub(r"^(\s*server\s+)\S+:\d+(\s)",
                lambda m: f"{m.group(1)}127.0.0.1:{next(it)}{m.group(2)}",
                text, len(upstream_ports), "upstream servers")
    text = _sub(r"^(\s*access_log\s+)\S+", rf"\g<1>{access}", text, 1,
                "access_log")
    (prefix / "roomcast.conf").write_text(text)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / d).mkdir(exist_ok=True)
        os.chmod(prefix / d, 0o777)  # workers may run as another user
    conf = prefix / "nginx.conf"
    conf.write_text(f"""worker_processes 1;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/roomcast.conf;
}}
""")
    return conf, access


# --------------------------------------------------------------------------
# balancer processes

class Balancer:
    """One haproxy or nginx in the foreground, output to a log file,
    stopped by PID."""

    def __init__(self, cmd, log_path, port):
        self.cmd = [str(c) for c in cmd]
        self.log_path = log_path
        self.port = port
        self.proc = None

    def start(self, timeout=10.0):
        exe = self.cmd[0]
        assert os.path.exists(exe), (f"{exe} not installed (scripts/deps "
                                     "installs haproxy and nginx)")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.cmd[0]} exited with "
                                     f"{self.proc.returncode}\n"
                                     + self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_until(listening, timeout, what=f"{exe} listening")
        return self

    def stop(self, timeout=10.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def log_tail(self, n=40):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


@pytest.fixture
def balancers():
    """Factory: balancers(cmd, log_path, port) -> a started Balancer,
    stopped by PID at teardown (before the nodes and Redis)."""
    started = []

    def factory(cmd, log_path, port):
        b = Balancer(cmd, log_path, port)
        started.append(b)
        return b.start()
    yield factory
    for b in started:
        b.stop()


def haproxy_stats(stats_port):
    """HAProxy's CSV stats: {(pxname, svname): row dict}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/stats;csv",
                                timeout=5) as r:
        text = r.read().decode()
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {(row["pxname"], row["svname"]): row for row in rows}


def server_status(stats_port, name):
    return haproxy_stats(stats_port)[("roomcast_nodes", name)]["status"]


def start_haproxy(balancers, tmp_path, servers):
    front, stats = free_port(), free_port()
    cfg = render_haproxy(tmp_path / "haproxy.cfg", front, stats, servers)
    chk = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True,
                         text=True, timeout=10)
    assert chk.returncode == 0, f"haproxy -c: {chk.stdout}{chk.stderr}"
    # -n: the kit's maxconn 100000 needs ~200k descriptors; this machine
    # allows 20000 per process, the test needs a few hundred
    hp = balancers([HAPROXY, "-f", cfg, "-db", "-n", "4000"],
                   tmp_path / "haproxy.log", front)
    hp.stats_port = stats
    return hp


def lb_nodes(rnodes, **more):
    flags = {"resume_secret": RESUME_SECRET}
    flags.update(more)
    return rnodes("A", flags=flags), rnodes("B", flags=dict(flags))


# --------------------------------------------------------------------------
# WebSocket clients through a balancer

async def lb_connect(port, token, resume=None, timeout=10.0):
    """Connect through the balancer on port; return (ws, welcome)."""
    url = f"ws://127.0.0.1:{port}/ws"
    if resume:
        url += "?resume=" + resume
    ws = await websockets.connect(
        url, subprotocols=[SUBPROTOCOL],
        extra_headers={"Authorization": "Bearer " + token}, **ws_kwargs())
    try:
        w = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        assert w.get("op") == "welcome", f"expected welcome, got {w!r}"
        return ws, w
    except BaseException:
        await ws.close()
        raise


async def request(ws, rid, op, timeout=5.0, **fields):
    """Send a request, return its reply; other frames are returned too."""
    await ws.send(json.dumps(dict(op=op, id=rid, **fields)))
    other = []
    deadline = time.monotonic() + timeout
    while True:
        f = json.loads(await asyncio.wait_for(
            ws.recv(), max(0.01, deadline - time.monotonic())))
        if f.get("id") == rid and f.get("op") in ("ok", "error"):
            return f, other
        other.append(f)


class LbClient:
    """One client of the drain scenario: joins the rooms, records every msg
    seq, follows `reconnect` through the balancer with its resume token."""

    def __init__(self, i, port, rooms):
        self.i = i
        self.port = port
        self.rooms = rooms
        self.token = mint_jwt(sub=f"lb{i}", ttl=600, **ALL)
        self.seqs = {r: [] for r in rooms}
        self.base = {}
        self.nodes = []       # welcome.node of each connection
        self.welcomes = []
        self.closes = []      # close codes seen
        self.reconnects = []  # reconnect frames
        self.errors = []

    def record(self, f):
        if f.get("op") == "msg":
            self.seqs[f["room"]].append(f.get("seq"))
        elif f.get("op") == "reconnect":
            self.reconnects.append(f)

    def done(self, targets):
        return targets is not None and all(
            self.seqs[r] and self.seqs[r][-1] >= t or t <= self.base[r]
            for r, t in targets.items())

    async def run(self, joined, state, deadline):
        ws, w = await lb_connect(self.port, self.token)
        self.nodes.append(w["node"])
        self.welcomes.append(w)
        for n, room in enumerate(self.rooms, 1):
            r, other = await request(ws, n, "join", room=room)
            assert r["op"] == "ok", r
            self.base[room] = r["seq"]
            for f in other:
                self.record(f)
        joined.append(self.i)
        while time.monotonic() < deadline:
            if self.done(state.get("targets")):
                await ws.close()
                return
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.25)
            except asyncio.TimeoutError:
                continue
            except websockets.exceptions.ConnectionClosed as e:
                self.closes.append(e.rcvd.code if e.rcvd else 1006)
                if not self.reconnects:
                    self.errors.append(f"closed {self.closes[-1]} without "
                                       "reconnect")
                    return
                adv = self.reconnects[-1]
                await asyncio.sleep(adv["after_ms"] / 1000.0)
                try:
                    ws, w = await lb_connect(self.port, self.token,
                                             resume=adv["resume"])
                except Exception as ex:  # a refusal the LB did not retry
                    self.errors.append(f"reconnect failed: {ex!r}")
                    return
                self.nodes.append(w["node"])
                self.welcomes.append(w)
                continue
            self.record(json.loads(raw))
        self.errors.append("deadline")
        await ws.close()


# --------------------------------------------------------------------------
# HAProxy

def test_haproxy_drain_moves_clients_without_loss(redis, rnodes, balancers,
                                                  tmp_path):
    """~50 clients through HAProxy, durable messages at ~50/s in two rooms;
    SIGTERM on one node: its clients get reconnect + 1012, come back
    through HAProxy to the other node with resume, and every client has
    every durable seq published after its join, once, in order."""
    nclients, rooms = 50, ["lb:a", "lb:b"]
    a, b = lb_nodes(rnodes, drain_window_ms=4000, drain_timeout_ms=20000)
    hp = start_haproxy(balancers, tmp_path,
                       [(a.port, a.admin_port), (b.port, b.admin_port)])
    wait_until(lambda: server_status(hp.stats_port, "node1") == "UP"
               and server_status(hp.stats_port, "node2") == "UP", 10,
               what="both nodes UP in haproxy")

    clients = [LbClient(i, hp.port, rooms) for i in range(nclients)]
    state = {}
    pub = None

    async def main():
        nonlocal pub
        joined = []
        deadline = time.monotonic() + 60
        tasks = [asyncio.ensure_future(c.run(joined, state, deadline))
                 for c in clients]
        t0 = time.monotonic()
        while len(joined) < nclients:
            failed = [t for t in tasks if t.done()]
            for t in failed:
                t.result()  # raises what went wrong
            assert time.monotonic() - t0 < 20, f"{len(joined)} joined"
            await asyncio.sleep(0.05)
        on = {n: sum(1 for c in clients if c.nodes[0] == n) for n in "AB"}
        print(f"haproxy leastconn spread: {on}")
        assert on["A"] >= 10 and on["B"] >= 10, on

        pub = Publisher(redis.port, rooms, interval=0.02)
        await asyncio.sleep(1.0)
        t_term = time.monotonic()
        a.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        down_seen = None
        while a.running():
            if down_seen is None and \
                    server_status(hp.stats_port, "node1").startswith("DOWN"):
                down_seen = time.monotonic() - t_term
            assert time.monotonic() - t_term < 20, "A still draining"
            await asyncio.sleep(0.1)
        t_exit = time.monotonic() - t_term
        await asyncio.sleep(1.0)  # publishing goes on, on B alone
        lines = await asyncio.get_running_loop().run_in_executor(
            None, pub.stop)
        acc = pub.accepted()
        errs = [ln for ln in lines if ln[0] != "ok"]
        assert not errs, errs[:5]
        state["accepted"] = acc
        state["targets"] = {r: max(s for _, rr, s in acc if rr == r)
                            for r in rooms}
        await asyncio.gather(*tasks)
        st = haproxy_stats(hp.stats_port)
        be = st[("roomcast_nodes", "BACKEND")]
        print(f"A exited {t_exit:.1f}s after SIGTERM; haproxy saw it DOWN "
              f"after {down_seen}s; backend retries={be['wretr']} "
              f"redispatches={be['wredis']} node1 5xx="
              f"{st[('roomcast_nodes', 'node1')]['hrsp_5xx']}; "
              f"{len(acc)} messages published")
        assert down_seen is not None, "haproxy never marked A DOWN"

    try:
        run(main(), 90)
    finally:
        if pub is not None:
            pub.kill()
    assert a.wait_exit(1) == 0, a.log_tail()

    acc = state["accepted"]
    problems = []
    moved = 0
    for c in clients:
        problems += [f"client {c.i}: {e}" for e in c.errors]
        for r in rooms:
            want = sorted(s for _, rr, s in acc if rr == r and s > c.base[r])
            got = c.seqs[r]
            dups = len(got) - len(set(got))
            lost = sorted(set(want) - set(got))
            if dups or lost or got != sorted(got) or set(got) != set(want):
                problems.append(f"client {c.i} room {r}: {dups} duplicated, "
                                f"{len(lost)} lost (first {lost[:3]}), "
                                f"in order: {got == sorted(got)}, extra: "
                                f"{sorted(set(got) - set(want))[:3]}")
        if c.nodes[0] == "A":
            moved += 1
            if not (c.reconnects and c.closes[:1] == [1012]
                    and c.nodes[1:] == ["B"] and c.welcomes[1]["resumed"]
                    and sorted(x["room"] for x in c.welcomes[1]["rooms"])
                    == rooms):
                problems.append(f"client {c.i} (on A): closes {c.closes}, "
                                f"nodes {c.nodes}, reconnects "
                                f"{len(c.reconnects)}, second welcome "
                                f"{c.welcomes[1:]!r}"[:300])
        elif c.nodes != ["B"] or c.reconnects:
            problems.append(f"client {c.i} (on B) moved: {c.nodes}")
    print(f"{moved} clients moved from A to B through haproxy; "
          f"{len(acc)} durable messages, checked per client")
    assert not problems, "\n".join(problems[:20])


def test_haproxy_retries_a_draining_nodes_503(redis, rnodes, balancers,
                                              tmp_path):
    """retry-on 503: A drains but its health check is pointed at B's admin
    port (so HAProxy keeps A UP, as in the seconds before a check notices);
    every upgrade HAProxy sends to A gets 503 and is retried on B: the
    client only ever sees B."""
    a, b = lb_nodes(rnodes, drain_window_ms=30000, drain_timeout_ms=30000)
    hp = start_haproxy(balancers, tmp_path,
                       [(a.port, b.admin_port), (b.port, b.admin_port)])
    wait_until(lambda: server_status(hp.stats_port, "node1") == "UP"
               and server_status(hp.stats_port, "node2") == "UP", 10,
               what="both nodes UP in haproxy")

    async def main():
        # one client held on A keeps it draining for the whole window
        hold, w = None, None
        for _ in range(4):
            ws, w = await lb_connect(hp.port, mint_jwt(sub="hold", **ALL))
            if w["node"] == "A":
                hold = ws
                break
            await ws.close()
        assert hold is not None, "leastconn never picked A"
        st, _, _ = a.admin("/drain", method="POST")
        assert st == 202, st
        wait_until(lambda: a.readyz() == 503, 5, what="A /readyz 503")
        wss = []
        for i in range(8):
            ws, w = await lb_connect(hp.port, mint_jwt(sub=f"r{i}", **ALL))
            assert w["node"] == "B", w
            wss.append(ws)
        refused = a.m("roomcast_upgrades_refused_total")
        be = haproxy_stats(hp.stats_port)[("roomcast_nodes", "BACKEND")]
        print(f"A refused {refused:.0f} upgrades; haproxy retries "
              f"{be['wretr']}, redispatches {be['wredis']}")
        assert refused >= 1 and int(be["wretr"] or 0) >= 1, (refused, be)
        for ws in wss + [hold]:
            await ws.close()

    run(main(), 40)
    # the held client is gone: A's drain is done, it exits 0 by itself
    assert a.wait_exit(5) == 0, a.log_tail()


# --------------------------------------------------------------------------
# nginx

def test_nginx_config_connect_and_503_retry(redis, rnodes, balancers,
                                            tmp_path):
    """deploy/nginx/roomcast.conf passes `nginx -t`; a client reaches a node
    through it (welcome, join, a durable message with its seq); a draining
    node's 503 at the upgrade is retried on the other node."""
    a, b = lb_nodes(rnodes, drain_window_ms=30000, drain_timeout_ms=30000)
    port = free_port()
    prefix = tmp_path / "nginx"
    conf, access = render_nginx(prefix, port, [a.port, b.port])
    base = [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"),
            "-c", str(conf)]
    assert os.path.exists(NGINX), "nginx not installed (scripts/deps)"
    t = subprocess.run(base + ["-t"], capture_output=True, text=True,
                       timeout=10)
    assert t.returncode == 0 and "test is successful" in t.stderr, \
        t.stdout + t.stderr
    ng = balancers(base + ["-g", "daemon off;"], prefix / "nginx.out", port)

    async def main():
        ws, w = await lb_connect(port, mint_jwt(sub="n0", **ALL))
        r, _ = await request(ws, 1, "join", room="ng:x")
        assert r["op"] == "ok", r
        seq = redis.call("FCALL", "roomcast_publish", "1", "ng:x",
                         '{"via":"nginx"}')
        f = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert f == {"op": "msg", "room": "ng:x", "seq": seq,
                     "data": {"via": "nginx"}}, f
        await ws.close()

        # A drains; a client held on it directly keeps it draining
        hold = await websockets.connect(
            a.url(), subprotocols=[SUBPROTOCOL], extra_headers={
                "Authorization": "Bearer " + mint_jwt(sub="hold", **ALL)},
            **ws_kwargs())
        st, _, _ = a.admin("/drain", method="POST")
        assert st == 202, st
        wait_until(lambda: a.readyz() == 503, 5, what="A /readyz 503")
        wss = []
        for i in range(6):
            ws, w = await lb_connect(port, mint_jwt(sub=f"n{i}", **ALL))
            assert w["node"] == "B", w
            wss.append(ws)
        refused = a.m("roomcast_upgrades_refused_total")
        for ws in wss + [hold]:
            await ws.close()

        # nginx logs a WebSocket request when it ends
        def retried():
            return [ln for ln in access.read_text().splitlines()
                    if "upstream_status=503, 101" in ln]
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_until(lambda: len(access.read_text()
                                                 .splitlines()) >= 7, 5,
                                     what="nginx access log lines"))
        print(f"A refused {refused:.0f} upgrades; nginx lines retried "
              f"503 -> 101: {len(retried())}")
        assert refused >= 1 and retried(), (refused, access.read_text())

    try:
        run(main(), 40)
    finally:
        if ng.proc.poll() is not None:
            raise AssertionError("nginx died\n" + ng.log_tail())
    assert a.wait_exit(5) == 0, a.log_tail()
